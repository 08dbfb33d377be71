//! The valid tandem.yml that the offline tests (CLI cases, the loader's property test) start
//! from: each case replaces one piece of it.

#![allow(dead_code)]

pub const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHYMxxG3vqHCA+eug0ptUklTD5djvx5I6fEUaBbLhMuQ op@x";

/// The files of the Django project `good_config` names, created in `dir` (its `source`).
pub fn django_project(dir: &std::path::Path) {
    for file in [
        "manage.py",
        "requirements.txt",
        "shop/settings.py",
        "shop/wsgi.py",
    ] {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text = match file {
            "requirements.txt" => "Django\ngunicorn\npsycopg[binary]\ncelery[redis]\n",
            _ => "",
        };
        std::fs::write(path, text).unwrap();
    }
}

/// A valid config; each bad case replaces one piece of it.
pub fn good_config() -> String {
    format!(
        "project: shop
servers:
  - name: db
    role: db
    ssh: deploy@db.example.com
    fqdn: db.example.com
    internal_ip: 10.0.0.3
  - name: app1
    role: app
    ssh: deploy@app1.example.com
    fqdn: app1.example.com
    internal_ip: 10.0.0.2
domains: [shop.example.com]
database:
  name: shop
  role: shop
  password: {{env: TANDEM_DB_PASSWORD}}
django:
  source: app
  wsgi_module: shop.wsgi
  settings_module: shop.settings
ssh:
  authorized_keys: [\"{KEY}\"]
tls:
  acme:
    email: ops@example.com
"
    )
}
