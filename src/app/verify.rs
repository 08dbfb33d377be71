//! The app wing's checks, from one script per app server: the site answers through nginx and
//! gunicorn, Django's checks and migrations, the tenants of a multi-tenant project, the
//! background processes and the broker.

use crate::config::identifier::shell_word;
use crate::config::{Config, Server};
use crate::engine::vars::Vars;
use crate::model::verification::Verification;

/// An HTTP status from the on-server script's JSON: a number, or what happened instead.
fn status_text(value: &serde_json::Value) -> String {
    value
        .as_i64()
        .map(|s| s.to_string())
        .unwrap_or_else(|| value.as_str().unwrap_or("?").to_string())
}

pub fn app_checks(v: &mut Verification, config: &Config, server: &Server, out: &str) {
    let name = &server.name;
    for line in out.lines().filter_map(|l| l.strip_prefix("unit=")) {
        let (unit, state) = line.split_once(' ').unwrap_or((line, ""));
        v.add(
            name,
            &format!("{unit} active"),
            state == "active",
            state,
            &format!("systemctl start {unit}; see journalctl -u {unit}"),
        );
    }
    // A singleton (beat) runs on one server only: anywhere else it would fire twice.
    for line in out.lines().filter_map(|l| l.strip_prefix("elsewhere=")) {
        let (unit, state) = line.split_once(' ').unwrap_or((line, ""));
        v.add(
            name,
            &format!("{unit} not running here"),
            state != "active" && state != "activating",
            state,
            &format!("run tandem apply: it stops and removes {unit} on servers it does not run on"),
        );
    }
    gunicorn_checks(v, name, out);
    let json: serde_json::Value = out
        .lines()
        .find_map(|l| l.strip_prefix("json="))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    let released = !out.lines().any(|l| l.starts_with("error="));
    if released {
        // From the release's record (in the JSON) or, without one, from Django.
        let m = json["migrations"]
            .as_str()
            .or_else(|| out.lines().find_map(|l| l.strip_prefix("migrations=")))
            .unwrap_or("not checked");
        let migrate = if config.django.is_multi_tenant() {
            "migrate_schemas"
        } else {
            "migrate"
        };
        v.add(name, "no unapplied migrations", m == "ok", m,
            &format!("run `tandem deploy` (it runs manage.py {migrate}), or look at `manage.py showmigrations`"));
    }
    if config.django.is_multi_tenant() {
        let public = out
            .lines()
            .find_map(|l| l.strip_prefix("public_tenant="))
            .unwrap_or("unknown");
        v.add(name, "the public tenant exists", public == "yes", public,
            "django-tenants needs a tenant with schema_name 'public' and a domain row for the apex: run `tandem deploy`");
    }
    if let Some(err) = out.lines().find_map(|l| l.strip_prefix("error=")) {
        v.add(
            name,
            "app checks",
            false,
            err,
            "run tandem apply (or deploy) to ship a release",
        );
        return;
    }
    let tcp = json["tcp"].as_str().unwrap_or("no answer");
    v.add(name, "TCP to the database's internal IP:5432", tcp == "ok", tcp,
        "check that PostgreSQL runs and listens on the internal IP, and that ufw on the db server allows this app server");
    match json["settings"].as_array() {
        Some(s) => {
            let got: Vec<&str> = s.iter().filter_map(|x| x.as_str()).collect();
            v.add(
                name,
                "login with the app's credentials",
                true,
                format!("as {}", config.database.role),
                "",
            );
            v.add(name, "Django's role settings", got == ["UTF8", "read committed", "UTC"], got.join(", "),
                "run tandem apply: it sets client_encoding, default_transaction_isolation and timezone on the role");
        }
        None => {
            let err = json["login"].as_str().unwrap_or("no answer");
            let hint = if err.contains("no pg_hba.conf entry") {
                "pg_hba.conf has no line for this app server: run tandem apply"
            } else if err.contains("password authentication failed") {
                "the role's password differs from the env file's: run tandem apply with the right password"
            } else {
                "check that PostgreSQL is running on the db server (systemctl status postgresql)"
            };
            v.add(name, "login with the app's credentials", false, err, hint);
        }
    }
    if let Some(broker) = config.broker_server() {
        let got = json["broker"].as_str().unwrap_or("no answer");
        v.add(
            name,
            "broker (Redis) login with the app's credentials",
            got == "ok",
            got,
            &format!(
                "check that redis-server runs on {} and that ufw there allows this app server to 6379; run tandem apply",
                broker.name
            ),
        );
    }
    let https = config.tls.enabled();
    if https {
        for (host, location) in json["redirect"].as_object().into_iter().flatten() {
            if host == "tandem-unknown-host.invalid" {
                continue;
            }
            let location = location.as_str().unwrap_or("");
            let status = status_text(&json["http"][host]);
            let want = format!("https://{host}/");
            v.add(
                name,
                &format!("http://{host} redirects to https"),
                status == "301" && location == want,
                format!("HTTP {status} {location}"),
                "the port-80 server must answer 301 to https://: run tandem apply",
            );
        }
    }
    // Nothing asked when the release collected no static file.
    if let Some(got) = json["static"].as_str() {
        v.add(
            name,
            "nginx serves the live release's static files",
            got.starts_with("ok "),
            got,
            "run tandem apply: it collects the live release's static files into it and writes the nginx site that serves them",
        );
    }
    let answers = if https { &json["https"] } else { &json["http"] };
    let unknown = json["http"]["tandem-unknown-host.invalid"].clone();
    if !unknown.is_null() {
        let status = status_text(&unknown);
        v.add(
            name,
            "nginx refuses unknown host names",
            status == "closed",
            format!("unknown Host: {status}"),
            "the default_server with `return 444` is missing: run tandem apply",
        );
    }
    if let Some(http) = answers.as_object() {
        for (host, status) in http {
            let status = status_text(status);
            if host == "tandem-unknown-host.invalid" {
                continue;
            } else {
                // A wildcard is probed with a made-up tenant: nginx must hand it to Django,
                // which may well say 404 (no such tenant); 400 and 5xx are failures.
                let ok = if host.starts_with("tandem-verify.") {
                    status.len() == 3 && status != "400" && !status.starts_with('5')
                } else {
                    status.starts_with('2') || status.starts_with('3')
                };
                let hint = if status == "400" {
                    "Django answered 400 Bad Request: the host is missing from ALLOWED_HOSTS (the env file's DJANGO_ALLOWED_HOSTS), or, for tenants, no tenant has this domain"
                } else if status == "502" {
                    "nginx cannot reach gunicorn: systemctl status gunicorn-<project>.socket/.service"
                } else {
                    "check nginx (nginx -t; systemctl status nginx) and the site's server_name"
                };
                let scheme = if https { "https" } else { "http" };
                v.add(
                    name,
                    &format!("nginx answers {scheme}://{host}"),
                    ok,
                    format!("HTTP {status}"),
                    hint,
                );
            }
        }
    }
}

/// `migrate_schemas --check` and the public tenant's row in one Django process (`manage.py
/// shell -c`, inside double quotes: no `"`, `$` or backquote here). `--check` ends the
/// command with exit status 1 when a schema has unapplied migrations.
const TENANT_CHECKS: &str = include_str!("../../scripts/verify/tenant_checks.py");

/// Shell lines (inside the release directory) that print `migrations=ok|unapplied` and, for
/// multi-tenant projects, `public_tenant=yes|no`: one Django start either way.
fn migrations_check(config: &Config, vars: &Vars) -> String {
    let manage = format!(
        "({environment}; runuser -u {user} -- \"$R/venv/bin/python\" manage.py",
        environment = crate::resource::script::django_environment(
            &shell_word(&vars.paths.env_file),
            &format!("\"$R\"/{}", shell_word(&vars.django.static_dir)),
        ),
        user = shell_word(&vars.user),
    );
    if config.django.is_multi_tenant() {
        format!("{manage} shell -c \"{TENANT_CHECKS}\" 2>/dev/null)\n")
    } else {
        format!(
            "if {manage} migrate --check >/dev/null 2>&1); then echo migrations=ok; else echo migrations=unapplied; fi\n"
        )
    }
}

pub fn app_script(config: &Config, vars: &Vars) -> String {
    let hosts: Vec<String> = config
        .domains
        .iter()
        .map(|d| match d.strip_prefix("*.") {
            Some(apex) => format!("tandem-verify.{apex}"),
            None => d.clone(),
        })
        .collect();
    let multi_tenant = config.django.is_multi_tenant();
    let python = APP_PY
        .replace(
            "HOSTS",
            &serde_json::to_string(&hosts).unwrap_or_else(|_| "[]".into()),
        )
        .replace(
            "TANDEM_HTTPS",
            if config.tls.enabled() {
                "True"
            } else {
                "False"
            },
        )
        .replace("TANDEM_RECORD", if multi_tenant { "False" } else { "True" })
        .replace(
            "TANDEM_STATIC_DIR",
            &serde_json::to_string(&vars.django.static_dir).unwrap_or_default(),
        )
        .replace(
            "TANDEM_STATIC_URL",
            &serde_json::to_string(&vars.django.static_url).unwrap_or_default(),
        )
        .replace("RECORD", crate::resource::release::MIGRATIONS_RECORD);
    let django = migrations_check(config, vars);
    format!(
        // Units are read after the HTTP requests: with socket activation the service starts
        // on the first request.
        // Without a usable migrations record (tenants, a release from before records, a
        // changed migration file) Django itself checks: a Django start, the slow part. For
        // tenants it runs beside the other checks; its lines go through a file so that they
        // cannot land inside the JSON line.
        "R={current}\n\
         if cd \"$R\" 2>/dev/null; then\n\
         M=$(mktemp)\n\
         {beside}\
         OUT=$(set -a; . {env}; set +a; runuser -u {user} -- \"$R/venv/bin/python\" - <<'TANDEM_PY'\n{python}TANDEM_PY\n)\n\
         printf '%s\\n' \"$OUT\"\n\
         {after}\
         wait; cat \"$M\"; rm -f \"$M\"\n\
         else echo 'error=no current release'; fi\n\
         {units}{elsewhere}\
         echo \"current=$(basename \"$(readlink {current})\")\"\n\
         {gunicorn}\n",
        beside = if multi_tenant {
            format!("( {django} ) >\"$M\" &\n")
        } else {
            String::new()
        },
        after = if multi_tenant {
            String::new()
        } else {
            format!("case \"$OUT\" in *'\"migrations\": '*) ;; *) ( {django} ) >\"$M\" ;; esac\n")
        },
        units = units_state(
            "unit",
            std::iter::once(&vars.units.socket).chain(vars.processes.here.iter().map(|p| &p.unit)),
        ),
        elsewhere = units_state("elsewhere", &vars.processes.elsewhere),
        current = shell_word(&vars.paths.current),
        env = shell_word(&vars.paths.env_file),
        user = shell_word(&vars.user),
        gunicorn = crate::resource::release::gunicorn_units_query(vars),
    )
}

/// Shell printing `PREFIX=UNIT STATE` for each of `units`, all asked in one `systemctl
/// is-active` (it answers a line each, in order); nothing when there are none.
fn units_state<'a>(prefix: &str, units: impl IntoIterator<Item = &'a String>) -> String {
    let words: Vec<String> = units.into_iter().map(|u| shell_word(u)).collect();
    match words.is_empty() {
        true => String::new(),
        false => format!(
            "set -- {}; for s in $(systemctl is-active -- \"$@\"); do echo \"{prefix}=$1 $s\"; shift; done\n",
            words.join(" ")
        ),
    }
}

/// gunicorn's two units take turns (scripts/release/switch.sh): exactly one serves, and it
/// runs the release `current` names. Two at once, or one on another release, is a switch cut
/// off midway (two releases answering side by side).
fn gunicorn_checks(v: &mut Verification, name: &str, out: &str) {
    let units = crate::model::state::gunicorn_units(out);
    if units.is_empty() {
        return;
    }
    let current = out
        .lines()
        .find_map(|l| l.strip_prefix("current="))
        .unwrap_or("");
    let live: Vec<_> = units.iter().filter(|u| u.state == "active").collect();
    let names = units
        .iter()
        .map(|u| u.unit)
        .collect::<Vec<_>>()
        .join(" or ");
    let states = units
        .iter()
        .map(|u| format!("{} {}", u.unit, u.state))
        .collect::<Vec<_>>()
        .join(", ");
    v.add(
        name,
        &format!("one gunicorn serves ({names})"),
        live.len() == 1,
        &states,
        "`tandem restart gunicorn` leaves one (a switch was cut off, or a unit was started by hand); see journalctl -u for each",
    );
    if let [unit] = live.as_slice() {
        v.add(
            name,
            "gunicorn runs the live release",
            !current.is_empty() && unit.release == current,
            format!("{} runs {}, current is {current}", unit.unit, unit.release),
            "`tandem restart gunicorn` starts it on the release `current` names",
        );
    }
}

/// Runs on an app server as root: TCP and a real login with the app's credentials (read from
/// the env file by the app's own Python, never on a command line), Django's role settings,
/// nginx for each domain and for an unknown host, gunicorn units.
/// The app server's side of verify, run by the app's Python with its env file: the database
/// login (libpq through ctypes), nginx for each domain, a static file, the broker. `HOSTS`,
/// `TANDEM_HTTPS`, `TANDEM_RECORD`, `TANDEM_STATIC_DIR`, `TANDEM_STATIC_URL` and `RECORD` are
/// filled in.
const APP_PY: &str = include_str!("../../scripts/verify/app.py");

#[cfg(test)]
mod tests {
    use super::*;

    /// verify's app script parses and its Python compiles, plain and multi-tenant, with HTTPS
    /// on and off.
    #[test]
    fn the_app_script_parses_and_its_python_compiles() {
        use crate::resource::table::{assert_python_heredocs_compile, assert_shell_syntax};
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::testing::shop(dir.path());
        let vars = Vars::for_paths(&config, &config.servers[1]);
        for tenants in [false, true] {
            if tenants {
                config.django.migrate = crate::config::MigrateCommand::MigrateSchemas;
                config.domains.push("*.shop.example.com".into());
                config.tls.mode = crate::config::TlsMode::Off;
            }
            let script = app_script(&config, &vars);
            let what = format!("verify's app script (tenants {tenants})");
            assert_shell_syntax(&script, &what);
            assert_python_heredocs_compile(&script, &what);
        }
    }

    /// The units' lines of the app script (after its checks of the release), run with the
    /// system's sh: each unit asked once, all of them in one `systemctl is-active`, gunicorn's
    /// two in one `systemctl show`.
    #[test]
    fn the_units_are_asked_in_one_systemctl_each_way() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::testing::shop_with(
            dir.path(),
            "  - {name: app2, role: app, ssh: app2, fqdn: app2.example.com, internal_ip: 10.0.0.4}\n",
            "processes:\n  - {name: worker, command: celery -A shop worker}\n  - {name: beat, command: celery -A shop beat, singleton: true, servers: [app2]}\nbroker: {password: {env: R}}\n",
        );
        let vars = Vars::for_paths(&config, &config.servers[1]);
        let script = app_script(&config, &vars);
        let (_, units) = script
            .split_once("else echo 'error=no current release'; fi\n")
            .expect("the units' part");
        // Sockets and the worker run, the rest does not; `show` answers as systemd does.
        let bin = crate::resource::table::fake_systemctl(
            dir.path(),
            "echo \"$*\" >>\"$LOG\"\ncase $1 in\n\
             is-active) shift 2; for u; do case $u in *.socket|*-worker.service) echo active ;; *) echo inactive ;; esac; done ;;\n\
             show) printf 'MainPID=0\\nId=gunicorn-shop.service\\nActiveState=inactive\\n\\nMainPID=0\\nId=gunicorn-shop-bridge.service\\nActiveState=inactive\\n' ;;\n\
             esac\n",
        );
        let log = dir.path().join("log");
        let out = std::process::Command::new("sh")
            .args(["-c", units])
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("LOG", &log)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("current="))
            .collect();
        assert_eq!(
            lines,
            [
                "unit=gunicorn-shop.socket active",
                "unit=shop-worker.service active",
                "elsewhere=shop-beat.service inactive",
                "gunicorn=gunicorn-shop.service inactive ",
                "gunicorn=gunicorn-shop-bridge.service inactive ",
            ]
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap().lines().count(),
            3,
            "one systemctl for the units, one for those elsewhere, one for gunicorn's"
        );
    }

    #[test]
    fn the_tenant_checks_survive_the_shells_double_quotes() {
        assert!(!TENANT_CHECKS.contains(['"', '$', '`', '\\']));
    }

    /// (name, ok, detail) of the app checks named `name` for app script output `out`.
    fn app_result(out: &str, name: &str) -> Option<(bool, String)> {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::testing::shop(dir.path());
        let mut v = Verification::default();
        app_checks(&mut v, &config, &config.servers[1], out);
        v.checks
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| (c.ok, c.detail))
    }

    /// One of gunicorn's two units serves, either, on the release `current` names; two at
    /// once, none, or one on another release (a switch cut off) fail.
    #[test]
    fn one_gunicorn_serves_the_live_release() {
        let one = "one gunicorn serves (gunicorn-shop.service or gunicorn-shop-bridge.service)";
        let live = "gunicorn runs the live release";
        let out = |service: &str, bridge: &str, current: &str| {
            format!(
                "current={current}\ngunicorn=gunicorn-shop.service {service}\n\
                 gunicorn=gunicorn-shop-bridge.service {bridge}\n"
            )
        };
        let bridge_serves = out("inactive ", "active r2", "r2");
        assert_eq!(app_result(&bridge_serves, one).map(|r| r.0), Some(true));
        assert_eq!(
            app_result(&bridge_serves, live),
            Some((
                true,
                "gunicorn-shop-bridge.service runs r2, current is r2".into()
            ))
        );
        let service_serves = out("active r2", "inactive ", "r2");
        assert_eq!(app_result(&service_serves, live).map(|r| r.0), Some(true));
        let both = out("active r1", "active r2", "r2");
        assert_eq!(
            app_result(&both, one),
            Some((
                false,
                "gunicorn-shop.service active, gunicorn-shop-bridge.service active".into()
            ))
        );
        assert_eq!(app_result(&both, live), None);
        let old = out("active r1", "inactive ", "r2");
        assert_eq!(app_result(&old, live).map(|r| r.0), Some(false));
        let none = out("inactive ", "failed ", "r2");
        assert_eq!(app_result(&none, one).map(|r| r.0), Some(false));
    }

    /// nginx must answer a static file's URL with the live release's file; a release that
    /// collected none asks nothing.
    #[test]
    fn nginx_serves_the_live_releases_static_files() {
        let check = "nginx serves the live release's static files";
        let out = |got: &str| format!("json={{\"tcp\": \"ok\", \"static\": \"{got}\"}}\n");
        assert_eq!(
            app_result(&out("ok /static/admin/css/base.css"), check).map(|r| r.0),
            Some(true)
        );
        for bad in [
            "HTTP 404 for /static/admin/css/base.css",
            "HTTP 200 for /static/admin/css/base.css, not the release's file",
            "the live release has no .tandem-public/static",
        ] {
            assert_eq!(app_result(&out(bad), check), Some((false, bad.into())));
        }
        assert_eq!(app_result("json={\"tcp\": \"ok\"}\n", check), None);
    }

    #[test]
    fn migrations_come_from_the_record_or_from_django() {
        let json = |m: &str| format!("json={{\"tcp\": \"ok\"{m}}}\n");
        let check = "no unapplied migrations";
        assert_eq!(
            app_result(&json(", \"migrations\": \"ok\""), check),
            Some((true, "ok".into()))
        );
        let missing = app_result(
            &json(", \"migrations\": \"unapplied: shop.0002_price\""),
            check,
        );
        assert_eq!(missing, Some((false, "unapplied: shop.0002_price".into())));
        // No usable record: the line Django's check printed.
        assert_eq!(
            app_result(&format!("{}migrations=unapplied\n", json("")), check),
            Some((false, "unapplied".into()))
        );
        assert_eq!(
            app_result(&json(""), check),
            Some((false, "not checked".into()))
        );
    }

    #[test]
    fn django_checks_migrations_only_without_a_usable_record() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::testing::shop(dir.path());
        let script = app_script(&config, &Vars::for_paths(&config, &config.servers[1]));
        let (python, after) = script
            .split_once("TANDEM_PY\n)")
            .expect("the Python checks");
        assert!(
            python.contains("'.tandem-migrations'")
                && python.contains("recorded_migrations() if True")
        );
        assert!(
            !python.contains("migrate --check"),
            "Django starts only when needed"
        );
        assert!(after.contains("*'\"migrations\": '*) ;; *)") && after.contains("migrate --check"));
    }
}
