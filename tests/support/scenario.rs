//! An end-to-end scenario: fresh lab servers (db, app, outsider), a tandem.yml pointing at
//! them, and the real `tandem` binary run against them over real SSH.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::lab::{Lab, Server, Suite, ssh_stdin};

pub const PASSWORD: &str = "c0rrect h0rse \"battery\" $taple";

/// Redis's password in scenarios with a broker.
pub const BROKER_PASSWORD: &str = "r3dis p@ss \"quoted\" \\ back";

/// The backup repository's passphrase in scenarios with a backup server.
pub const BACKUP_KEY: &str = "b4ckup p4ss 'quoted' $and=equals";

/// Which example app a scenario deploys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Example {
    /// examples/timesheet: plain Django.
    Timesheet,
    /// examples/tenants: django-tenants, tenants on subdomains.
    Tenants,
}

pub struct Scenario {
    pub example: Example,
    pub lab: Lab,
    pub db: Server,
    pub app: Server,
    pub outsider: Server,
    pub dir: tempfile::TempDir,
    /// internal_ip written for app1 (normally `app.ip`).
    pub app_internal_ip: String,
    /// More app servers (app2, app3, ...), after `app` in the config.
    pub more_apps: Vec<Server>,
    /// The config's `tls:` block (HTTPS off unless a test asks for it).
    pub tls: std::cell::RefCell<String>,
    /// The config's `domains:` (the example's unless a test sets them).
    pub domains: std::cell::RefCell<Option<String>>,
    /// The `role: backup` server holding the repository, when the scenario has backups.
    pub backup: Option<Server>,
    /// YAML appended to the config (`processes:`, `broker:`), and text replacements made in
    /// it (e.g. settings added under `django:`).
    pub extra: std::cell::RefCell<String>,
    pub edits: std::cell::RefCell<Vec<(String, String)>>,
}

impl Scenario {
    pub fn new(lab: Lab, suite: Suite) -> Scenario {
        Scenario::with_example(lab, suite, Example::Timesheet)
    }

    pub fn with_example(lab: Lab, suite: Suite, example: Example) -> Scenario {
        Scenario::with_apps(lab, suite, example, 1)
    }

    /// `apps` app servers (app1 is `app`, the others `more_apps`).
    pub fn with_apps(lab: Lab, suite: Suite, example: Example, apps: usize) -> Scenario {
        Scenario::build(lab, suite, example, apps, false)
    }

    /// One app server and a backup server with `backup:` in the config.
    pub fn with_backup(lab: Lab, suite: Suite, example: Example) -> Scenario {
        Scenario::build(lab, suite, example, 1, true)
    }

    /// `apps` app servers and a backup server with `backup:` in the config.
    pub fn with_apps_and_backup(lab: Lab, suite: Suite, example: Example, apps: usize) -> Scenario {
        Scenario::build(lab, suite, example, apps, true)
    }

    fn build(lab: Lab, suite: Suite, example: Example, apps: usize, backup: bool) -> Scenario {
        let mut servers = lab.servers(2 + apps + usize::from(backup), suite);
        let backup = backup.then(|| servers.pop().unwrap());
        let more_apps = servers.split_off(3);
        let outsider = servers.pop().unwrap();
        let app = servers.pop().unwrap();
        let db = servers.pop().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let source_dir = match example {
            Example::Timesheet => "timesheet",
            Example::Tenants => "tenants",
        };
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(source_dir);
        copy_dir(&source, &dir.path().join(source_dir));
        let app_internal_ip = app.ip.clone();
        let s = Scenario {
            example,
            lab,
            db,
            app,
            outsider,
            dir,
            app_internal_ip,
            more_apps,
            tls: std::cell::RefCell::new("tls:\n  mode: off\n".into()),
            domains: std::cell::RefCell::new(None),
            backup,
            extra: std::cell::RefCell::new(String::new()),
            edits: std::cell::RefCell::new(Vec::new()),
        };
        s.write_config();
        s
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("tandem.yml")
    }

    /// The example's project name: its system user, /srv and /etc directories.
    pub fn project(&self) -> &'static str {
        match self.example {
            Example::Timesheet => "timesheet",
            Example::Tenants => "crowdminder",
        }
    }

    /// Runs `python` in the current release's `manage.py shell` on the app server, as the app
    /// user with its env file; returns what it printed.
    pub fn manage_shell(&self, python: &str) -> String {
        let p = self.project();
        self.sudo_ok(
            &self.app,
            &format!(
                "cd /srv/{p}/current && set -a && . /etc/{p}/env && set +a && \
                 runuser -u {p} -- ./venv/bin/python manage.py shell <<'PY'\n{python}\nPY"
            ),
        )
    }

    /// Replaces the config's `tls:` block (`block` starts with `tls:`).
    pub fn set_tls(&self, block: &str) {
        *self.tls.borrow_mut() = block.to_string();
        self.write_config();
    }

    /// Replaces the config's `domains:` (a YAML list).
    pub fn set_domains(&self, list: &str) {
        *self.domains.borrow_mut() = Some(list.to_string());
        self.write_config();
    }

    /// Appends `yaml` to the config (top-level keys such as `processes:`).
    pub fn add_config(&self, yaml: &str) {
        self.extra.borrow_mut().push_str(yaml);
        self.write_config();
    }

    /// Replaces `from` with `to` in the written config.
    pub fn edit_config(&self, from: &str, to: &str) {
        self.edits.borrow_mut().push((from.into(), to.into()));
        self.write_config();
    }

    /// Every app server: app1 (`app`), then `more_apps`.
    pub fn apps(&self) -> Vec<&Server> {
        std::iter::once(&self.app).chain(&self.more_apps).collect()
    }

    pub fn write_config(&self) {
        // The tenants example also asks for extensions, as examples/tenants.yml does.
        let project = self.project();
        let (source, domains, migrate, extensions) = match self.example {
            Example::Timesheet => ("timesheet", "[timesheet.lab.test]", "migrate", "[]"),
            Example::Tenants => (
                "tenants",
                "[crowdminder.lab.test, \"*.crowdminder.lab.test\"]",
                "migrate_schemas",
                "[citext, pg_trgm]",
            ),
        };
        let chosen = self.domains.borrow().clone();
        let domains = chosen.as_deref().unwrap_or(domains);
        let text = format!(
            "project: {project}
servers:
  - name: db
    role: db
    ssh: deploy@{db}
    fqdn: db.lab.test
    internal_ip: {db_ip}
  - name: app1
    role: app
    ssh: deploy@{app}
    fqdn: app1.lab.test
    internal_ip: {app_ip}
{more_apps}{backup_server}domains: {domains}
database:
  name: {project}
  role: {project}
  password: {{env: TANDEM_DB_PASSWORD}}
  extensions: {extensions}
django:
  source: {source}
  wsgi_module: {project}.wsgi
  settings_module: {project}.settings
  migrate: {migrate}
ssh:
  authorized_key_files: [{key}.pub]
{tls}{backup}",
            db = self.db.name,
            db_ip = self.db.ip,
            app = self.app.name,
            app_ip = self.app_internal_ip,
            key = self.lab.key.display(),
            more_apps = self
                .more_apps
                .iter()
                .enumerate()
                .map(|(i, s)| format!(
                    "  - name: app{n}\n    role: app\n    ssh: deploy@{name}\n    fqdn: app{n}.lab.test\n    internal_ip: {ip}\n",
                    n = i + 2,
                    name = s.name,
                    ip = s.ip
                ))
                .collect::<String>(),
            tls = self.tls.borrow(),
            backup_server = self
                .backup
                .as_ref()
                .map(|s| format!(
                    "  - name: vault\n    role: backup\n    ssh: deploy@{}\n    fqdn: vault.lab.test\n    internal_ip: {}\n",
                    s.name, s.ip
                ))
                .unwrap_or_default(),
            backup = match self.backup {
                Some(_) => "backup:\n  encryption_key: {env: TANDEM_BACKUP_KEY}\n  schedule: hourly\n",
                None => "",
            },
        );
        let mut text = text + &self.extra.borrow();
        for (from, to) in self.edits.borrow().iter() {
            assert!(text.contains(from.as_str()), "the config has no `{from}`");
            text = text.replace(from.as_str(), to);
        }
        fs::write(self.config_path(), text).unwrap();
    }

    /// `tandem COMMAND -c tandem.yml --ssh-config <lab> [ARGS]` with the password in the
    /// environment (the options right after the command, `tenant add` included, so
    /// `manage -- ...` keeps its own).
    pub fn tandem(&self, args: &[&str]) -> Command {
        self.tandem_via(args, &self.lab.ssh_config)
    }

    /// `tandem` with another ssh config than the lab's.
    pub fn tandem_via(&self, args: &[&str], ssh_config: &std::path::Path) -> Command {
        let command_words = match (args[0], args.get(1)) {
            ("tenant", _) | ("lock", _) | ("db", _) | ("backup", Some(&"list")) => 2,
            _ => 1,
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
        cmd.args(&args[..command_words])
            .arg("-c")
            .arg(self.config_path())
            .arg("--ssh-config")
            .arg(ssh_config)
            .args(&args[command_words..])
            .env("TANDEM_DB_PASSWORD", PASSWORD)
            .env("TANDEM_BACKUP_KEY", BACKUP_KEY)
            .env("TANDEM_REDIS_PASSWORD", BROKER_PASSWORD)
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.tandem(args).output().expect("running tandem")
    }

    /// `plan --detailed-exitcode` must find nothing to change (exit 0); its output, for more
    /// checks.
    pub fn assert_converged(&self, what: &str) -> Output {
        let plan = self.run(&["plan", "--detailed-exitcode"]);
        assert_eq!(
            plan.status.code(),
            Some(0),
            "{what}: the plan is not clean:\n{}{}",
            text(&plan.stdout),
            text(&plan.stderr)
        );
        plan
    }

    /// A first apply on fresh servers: logs in as root until the deploy user exists.
    pub fn apply_fresh(&self) -> Output {
        self.run(&["apply", "--yes", "--bootstrap-user", "root"])
    }

    /// A first apply with one built-in file replaced through `--overrides` (`rel` is e.g.
    /// `templates/ssh/00-tandem.conf`).
    pub fn apply_fresh_with_override(&self, rel: &str, content: &str) -> Output {
        let overrides = self.dir.path().join("overrides");
        let path = overrides.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        let overrides = overrides.to_str().unwrap().to_string();
        self.run(&[
            "apply",
            "--yes",
            "--bootstrap-user",
            "root",
            "--overrides",
            &overrides,
        ])
    }

    /// Runs `script` on `server` as root: through the deploy user's sudo on servers tandem
    /// provisioned (root login is off there), directly on the outsider.
    pub fn sudo(&self, server: &Server, script: &str) -> Output {
        if server.name == self.outsider.name {
            return server.ssh(script);
        }
        let destination = format!("deploy@{}", server.name);
        ssh_stdin(&self.lab.ssh_config, &destination, "sudo sh -s", script)
    }

    pub fn sudo_ok(&self, server: &Server, script: &str) -> String {
        let out = self.sudo(server, script);
        assert!(
            out.status.success(),
            "on {}: `{script}` failed:\n{}{}",
            server.name,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

/// GET `path` from `ip` with `Host: host`, as seen from `from`: (status, body) or ("closed", "").
pub fn fetch(from: &Server, ip: &str, host: &str, path: &str) -> (String, String) {
    let script = r#"python3 - <<'EOF'
import http.client
c = http.client.HTTPConnection('IP', 80, timeout=10)
try:
    c.request('GET', 'PATH', headers={'Host': 'HOST'})
    r = c.getresponse()
    print(r.status)
    print(r.read().decode())
except (http.client.RemoteDisconnected, ConnectionResetError):
    print('closed')
EOF"#
        .replace("IP", ip)
        .replace("PATH", path)
        .replace("HOST", host);
    let out = text(&from.ssh(&script).stdout);
    let (status, body) = out.split_once('\n').unwrap_or((&out, ""));
    (status.trim().to_string(), body.to_string())
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Asserts a tandem run succeeded, showing its output otherwise.
pub fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The operator's own CA and a certificate for timesheet.lab.test signed by it, made with
/// openssl in `dir` (`ca.pem`, `site.crt`, `site.key`), valid `ca_days` and `site_days`.
#[allow(dead_code)] // not every test binary that includes support makes certificates
pub fn operator_certificate(dir: &Path, ca_name: &str, ca_days: u32, site_days: u32) {
    let made = Command::new("sh")
        .current_dir(dir)
        .arg("-c")
        .arg(format!(
            "set -e
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days {ca_days} \
  -subj /CN={ca_name} -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj /CN=timesheet.lab.test -keyout site.key -out site.csr 2>/dev/null
printf 'subjectAltName=DNS:timesheet.lab.test\\n' > ext
openssl x509 -req -in site.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days {site_days} -extfile ext -out site.crt 2>/dev/null"
        ))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made.stderr));
}
