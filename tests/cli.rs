//! The real binary on good and bad input: exit codes, and errors that name file:line:column,
//! the field and the fix on one screen.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

mod support;

use support::config::{KEY, good_config};

/// A directory with `tandem.yml` holding `text` and a Django project under `app/`.
fn workspace(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("app")).unwrap();
    support::config::django_project(&dir.path().join("app"));
    let path = dir.path().join("tandem.yml");
    fs::write(&path, text).unwrap();
    (dir, path)
}

/// `good_config()` with `line` added under `database:` (after the password).
fn with_database_line(line: &str) -> String {
    good_config().replace(
        "  password: {env: TANDEM_DB_PASSWORD}\n",
        &format!("  password: {{env: TANDEM_DB_PASSWORD}}\n  {line}\n"),
    )
}

/// `tandem render -c PATH --out DIR/out`, which must succeed; returns the output directory.
fn render_ok(dir: &Path, path: &Path) -> PathBuf {
    let out = dir.join("out");
    tandem()
        .args(["render", "-c"])
        .arg(path)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    out
}

fn tandem() -> Command {
    Command::cargo_bin("tandem").unwrap()
}

fn check(path: &Path) -> (i32, String) {
    let out = tandem()
        .arg("check")
        .arg("-c")
        .arg(path)
        .env_remove("TANDEM_DB_PASSWORD")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn good_config_checks_without_the_secret() {
    let (_dir, path) = workspace(&good_config());
    let (code, stderr) = check(&path);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("ok, 2 servers"), "{stderr}");
}

/// A project whose requirements would fail its first release is stopped at `check`, with
/// every missing piece named at once.
#[test]
fn requirements_without_gunicorn_a_driver_or_celery_fail_the_check() {
    let config = good_config() + "processes:\n  - {name: worker, command: celery -A shop worker}\n";
    let (dir, path) = workspace(&config);
    let requirements = dir.path().join("app/requirements.txt");
    fs::write(&requirements, "Django>=4.2  # no server, no driver\n").unwrap();
    let (code, stderr) = check(&path);
    assert_eq!(code, 1, "{stderr}");
    let source_line = config
        .lines()
        .position(|l| l.trim_start().starts_with("source:"))
        .unwrap()
        + 1;
    for says in [
        "requirements.txt does not install gunicorn",
        "requirements.txt installs no PostgreSQL driver",
        "process `worker` runs celery, which requirements.txt does not install",
    ] {
        assert!(stderr.contains(says), "{says}:\n{stderr}");
    }
    assert!(
        stderr.contains(&format!("tandem.yml:{source_line}:")),
        "points at `source:`:\n{stderr}"
    );
    // Through an include, with extras and pins, all is well.
    fs::write(&requirements, "-r base.txt\ncelery[redis]==5.4\n").unwrap();
    fs::write(
        dir.path().join("app/base.txt"),
        "gunicorn>=22\npsycopg2-binary  # the driver\n",
    )
    .unwrap();
    let (code, stderr) = check(&path);
    assert_eq!(code, 0, "{stderr}");
}

#[derive(Debug)]
struct Bad {
    what: &'static str,
    from: &'static str,
    to: &'static str,
    /// `tandem.yml:LINE:` must appear.
    line: u32,
    says: &'static str,
}

const BAD: &[Bad] = &[
    Bad {
        what: "a health path with a space (it goes into a request line)",
        from: "  settings_module: shop.settings\n",
        to: "  settings_module: shop.settings\n  health: {path: \"/up now\"}\n",
        line: 22,
        says: "`/up now` is not a URL path",
    },
    Bad {
        what: "a health status that is no HTTP status",
        from: "  settings_module: shop.settings\n",
        to: "  settings_module: shop.settings\n  health: {status: 20}\n",
        line: 22,
        says: "20 is not an HTTP status",
    },
    Bad {
        what: "a health timeout no release can wait",
        from: "  settings_module: shop.settings\n",
        to: "  settings_module: shop.settings\n  health: {timeout: 0}\n",
        line: 22,
        says: "django.health.timeout",
    },
    Bad {
        what: "an app setting that tandem writes itself",
        from: "  settings_module: shop.settings\n",
        to: "  settings_module: shop.settings\n  env: {DATABASE_URL: postgres://x}\n",
        line: 22,
        says: "`DATABASE_URL` is set by tandem",
    },
    Bad {
        what: "an app setting whose name is no variable name",
        from: "  settings_module: shop.settings\n",
        to: "  settings_module: shop.settings\n  env: {\"MY-SETTING\": x}\n",
        line: 22,
        says: "`MY-SETTING` is not an environment variable name",
    },
    Bad {
        what: "a secret given inline instead of its variable",
        from: "  settings_module: shop.settings\n",
        to: "  settings_module: shop.settings\n  secret_env: {DSN: {env: \"https://k3y@sentry\"}}\n",
        line: 22,
        says: "value not shown",
    },
    Bad {
        what: "a name that is both a setting and a secret",
        from: "  settings_module: shop.settings\n",
        to: "  settings_module: shop.settings\n  env: {DSN: x}\n  secret_env: {DSN: {env: SENTRY_DSN}}\n",
        line: 23,
        says: "in both django.env and django.secret_env",
    },
    Bad {
        what: "settings module that names no file",
        from: "  settings_module: shop.settings",
        to: "  settings_module: shop.setings",
        line: 21,
        says: "`shop.setings` names no file",
    },
    Bad {
        what: "wsgi module that names no file",
        from: "  wsgi_module: shop.wsgi",
        to: "  wsgi_module: shop.wgsi",
        line: 20,
        says: "`shop.wgsi` names no file",
    },
    Bad {
        what: "a server reached as root, whose login apply turns off",
        from: "    ssh: deploy@app1.example.com\n",
        to: "    ssh: root@app1.example.com\n",
        line: 10,
        says: "logs in as root, and apply turns root's SSH login off",
    },
    Bad {
        what: "requirements file missing",
        from: "  settings_module: shop.settings\n",
        to: "  settings_module: shop.settings\n  requirements: reqs/prod.txt\n",
        line: 22,
        says: "reqs/prod.txt does not exist",
    },
    Bad {
        what: "workers in words",
        from: "  settings_module: shop.settings\n",
        to: "  settings_module: shop.settings\n  workers: three\n",
        line: 22,
        says: "whole number of gunicorn workers",
    },
    Bad {
        what: "a role that is no typo of a known one",
        from: "    role: db",
        to: "    role: web",
        line: 4,
        says: "write one of: db, app",
    },
    Bad {
        what: "a tab on line 2",
        from: "servers:",
        to: "\tservers:",
        line: 2,
        says: "indent with spaces",
    },
    Bad {
        what: "typo in a field",
        from: "    internal_ip: 10.0.0.2",
        to: "    internal_ipp: 10.0.0.2",
        line: 12,
        says: "did you mean `internal_ip`",
    },
    Bad {
        what: "unknown top-level field",
        from: "domains:",
        to: "domain:",
        line: 13,
        says: "did you mean `domains`",
    },
    Bad {
        what: "not an IP",
        from: "10.0.0.3",
        to: "10.0.0.300",
        line: 7,
        says: "`10.0.0.300` is not an IP address",
    },
    Bad {
        what: "shared internal IP",
        from: "10.0.0.2",
        to: "10.0.0.3",
        line: 12,
        says: "also the internal_ip of server `db`",
    },
    Bad {
        what: "duplicate server name",
        from: "name: app1",
        to: "name: db",
        line: 8,
        says: "used twice",
    },
    Bad {
        what: "unsafe project name",
        from: "project: shop",
        to: "project: \"shop; rm -rf /\"",
        line: 1,
        says: "not a safe name",
    },
    Bad {
        what: "unsafe role name",
        from: "  role: shop",
        to: "  role: Shop-Owner",
        line: 16,
        says: "database.role",
    },
    Bad {
        what: "unsafe database name",
        from: "  name: shop\n",
        to: "  name: \"x\\\"; DROP\"\n",
        line: 15,
        says: "database.name",
    },
    Bad {
        what: "missing password source",
        from: "  password: {env: TANDEM_DB_PASSWORD}\n",
        to: "",
        line: 16,
        says: "missing field `password`",
    },
    Bad {
        what: "password given inline",
        from: "{env: TANDEM_DB_PASSWORD}",
        to: "hunter2",
        line: 17,
        says: "unknown value `<not shown>`",
    },
    Bad {
        what: "bad role",
        from: "role: app",
        to: "role: web",
        line: 9,
        says: "unknown value `web`",
    },
    Bad {
        what: "no db server",
        from: "role: db",
        to: "role: app",
        line: 3,
        says: "0 servers have `role: db`",
    },
    Bad {
        what: "two db servers without a witness",
        from: "role: app",
        to: "role: db",
        line: 3,
        says: "two db servers need a third server for the cluster's consensus",
    },
    Bad {
        what: "the app's role named like the cluster's own",
        from: "  role: shop",
        to: "  role: tandem_replicator",
        line: 16,
        says: "`tandem_` are tandem's own roles",
    },
    Bad {
        what: "bad fqdn",
        from: "fqdn: db.example.com",
        to: "fqdn: db",
        line: 6,
        says: "not a fully qualified domain name",
    },
    Bad {
        what: "ssh option injection",
        from: "ssh: deploy@db.example.com",
        to: "ssh: -oProxyCommand=evil",
        line: 5,
        says: "not an SSH destination",
    },
    Bad {
        what: "bad domain",
        from: "[shop.example.com]",
        to: "[\"shop example\"]",
        line: 13,
        says: "not a domain name",
    },
    Bad {
        what: "bad wsgi module",
        from: "shop.wsgi",
        to: "shop/wsgi.py",
        line: 20,
        says: "not a Python module path",
    },
    Bad {
        what: "no authorized key",
        from: "  authorized_keys: [\"",
        to: "  authorized_keys: []\n  #[\"",
        line: 0,
        says: "nobody could log in",
    },
    Bad {
        what: "bad port type",
        from: "ssh:\n",
        to: "ssh:\n  port: lots\n",
        line: 23,
        says: "port",
    },
    Bad {
        what: "invalid YAML",
        from: "domains: [shop.example.com]",
        to: "domains: [shop.example.com",
        line: 14,
        says: "",
    },
    Bad {
        what: "loopback internal IP",
        from: "10.0.0.2",
        to: "127.0.0.1",
        line: 12,
        says: "cannot be a server's internal address",
    },
    Bad {
        what: "source without manage.py",
        from: "source: app",
        to: "source: nowhere",
        line: 19,
        says: "has no manage.py",
    },
    Bad {
        what: "unknown migrate command",
        from: "  settings_module: shop.settings\n",
        to: "  settings_module: shop.settings\n  migrate: syncdb\n",
        line: 22,
        says: "unknown value `syncdb`",
    },
    Bad {
        what: "SQL in the password's variable name",
        from: "{env: TANDEM_DB_PASSWORD}",
        to: "{env: \"X'; DROP DATABASE shop; --\"}",
        line: 17,
        says: "not an environment variable name",
    },
    Bad {
        what: "ssh host read as an option",
        from: "ssh: deploy@db.example.com",
        to: "ssh: deploy@-oProxyCommand=evil",
        line: 5,
        says: "cannot start with `-`",
    },
    Bad {
        what: "ssh port out of range",
        from: "ssh: deploy@db.example.com",
        to: "ssh: deploy@db.example.com:99999",
        line: 5,
        says: "not between 1 and 65535",
    },
    Bad {
        what: "ssh port 0",
        from: "ssh: deploy@db.example.com",
        to: "ssh: deploy@db.example.com:0",
        line: 5,
        says: "not between 1 and 65535",
    },
    Bad {
        what: "the superuser as the app's role",
        from: "  role: shop",
        to: "  role: postgres",
        line: 16,
        says: "PostgreSQL's superuser",
    },
    Bad {
        what: "a pg_ role",
        from: "  role: shop",
        to: "  role: pg_monitor",
        line: 16,
        says: "reserved for PostgreSQL's own roles",
    },
    Bad {
        what: "the maintenance database",
        from: "  name: shop\n",
        to: "  name: postgres\n",
        line: 15,
        says: "maintenance database",
    },
    Bad {
        what: "a template database",
        from: "  name: shop\n",
        to: "  name: template1\n",
        line: 15,
        says: "templates",
    },
    Bad {
        what: "a system account as deploy user",
        from: "ssh:\n",
        to: "ssh:\n  deploy_user: nobody\n",
        line: 23,
        says: "is a system account",
    },
    Bad {
        what: "the project's user as deploy user",
        from: "ssh:\n",
        to: "ssh:\n  deploy_user: shop\n",
        line: 23,
        says: "the project's own user",
    },
    Bad {
        what: "a system account as project",
        from: "project: shop",
        to: "project: postgres",
        line: 1,
        says: "is a system account",
    },
    Bad {
        what: "two servers, one ssh destination",
        from: "ssh: deploy@app1.example.com",
        to: "ssh: deploy@db.example.com",
        line: 10,
        says: "also the ssh destination of server `db`",
    },
    Bad {
        what: "two servers, one fqdn",
        from: "fqdn: app1.example.com",
        to: "fqdn: DB.example.com.",
        line: 11,
        says: "also the fqdn of server `db`",
    },
    Bad {
        what: "IPv4-mapped IPv6",
        from: "10.0.0.2",
        to: "\"::ffff:10.0.0.3\"",
        line: 12,
        says: "written in IPv6 form",
    },
    Bad {
        what: "IPv4 link-local",
        from: "10.0.0.2",
        to: "169.254.10.2",
        line: 12,
        says: "is a link-local address",
    },
    Bad {
        what: "IPv6 link-local",
        from: "10.0.0.2",
        to: "\"fe80::2\"",
        line: 12,
        says: "is a link-local address",
    },
    Bad {
        what: "static and media share a prefix",
        from: "  settings_module: shop.settings\n",
        to: "  settings_module: shop.settings\n  static_url: /media/\n",
        line: 22,
        says: "overlaps",
    },
    Bad {
        what: "dot-dot in static_url",
        from: "  settings_module: shop.settings\n",
        to: "  settings_module: shop.settings\n  static_url: /static/../etc/\n",
        line: 22,
        says: "not a URL path prefix",
    },
    Bad {
        what: "double slash in media_url",
        from: "  settings_module: shop.settings\n",
        to: "  settings_module: shop.settings\n  media_url: //media/\n",
        line: 22,
        says: "not a URL path prefix",
    },
    Bad {
        what: "SQL in an extension name",
        from: "  password: {env: TANDEM_DB_PASSWORD}\n",
        to: "  password: {env: TANDEM_DB_PASSWORD}\n  extensions: [\"x\\\"; DROP\"]\n",
        line: 18,
        says: "not an extension name",
    },
    Bad {
        what: "a key-shaped line that is no key",
        from: "  authorized_keys: [\"",
        to: "  authorized_keys: [\"ssh-ed25519 AAAAAAAAAAAAAAAAAAAAAAAAAAAA x\", \"",
        line: 23,
        says: "not an SSH public key line",
    },
];

#[test]
fn bad_configs_get_a_located_one_screen_error() {
    assert!(BAD.len() >= 15);
    let failures: Vec<String> = BAD
        .iter()
        .filter_map(|bad| {
            std::panic::catch_unwind(|| check_bad(bad))
                .err()
                .map(|_| bad.what.to_string())
        })
        .collect();
    assert!(failures.is_empty(), "failed: {failures:?}");
}

fn check_bad(bad: &Bad) {
    {
        let good = good_config();
        assert!(
            good.contains(bad.from),
            "{}: pattern not in base config",
            bad.what
        );
        let (_dir, path) = workspace(&good.replacen(bad.from, bad.to, 1));
        let (code, stderr) = check(&path);
        assert_eq!(code, 1, "{}: exit code\n{stderr}", bad.what);
        assert!(
            !stderr.contains("panicked"),
            "{}: panic\n{stderr}",
            bad.what
        );
        assert!(
            stderr.contains(bad.says),
            "{}: expected {:?} in\n{stderr}",
            bad.what,
            bad.says
        );
        if bad.line > 0 {
            let at = format!("tandem.yml:{}:", bad.line);
            assert!(
                stderr.contains(&at),
                "{}: expected {at} in\n{stderr}",
                bad.what
            );
        } else {
            assert!(
                stderr.contains("tandem.yml"),
                "{}: no file name in\n{stderr}",
                bad.what
            );
        }
        assert!(stderr.contains("fix:"), "{}: no fix in\n{stderr}", bad.what);
        assert!(
            stderr.lines().count() <= 24,
            "{}: longer than a screen\n{stderr}",
            bad.what
        );
    }
}

#[test]
fn public_internal_ip_is_a_warning_not_an_error() {
    let (_dir, path) = workspace(&good_config().replace("10.0.0.2", "203.0.113.7"));
    let (code, stderr) = check(&path);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning:") && stderr.contains("public address"),
        "{stderr}"
    );
    assert!(stderr.contains("tandem.yml:12:"), "{stderr}");
}

#[test]
fn superuser_is_warned_about() {
    let text = good_config().replace("  role: shop\n", "  role: shop\n  superuser: true\n");
    let (_dir, path) = workspace(&text);
    let (code, stderr) = check(&path);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("superuser") && stderr.contains("extensions"),
        "{stderr}"
    );
}

#[test]
fn a_config_error_does_not_claim_that_check_changed_nothing() {
    let (_dir, path) = workspace(&good_config().replace("10.0.0.3", "10.0.0.300"));
    let (code, stderr) = check(&path);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("1 error(s) in the config; no server was contacted."),
        "{stderr}"
    );
    assert!(!stderr.contains("nothing was changed"), "{stderr}");
}

#[test]
fn mistakes_in_three_sections_are_all_reported_in_one_pass() {
    let text = good_config()
        .replace(
            "  settings_module: shop.settings\n",
            "  settings_module: shop.settings\n  workers: lots\n",
        )
        .replace("  - name: app1\n", "  - nme: app1\n")
        .replace("tls:\n", "tls:\n  mode: sometimes\n");
    let (_dir, path) = workspace(&text);
    let (code, stderr) = check(&path);
    assert_eq!(code, 1);
    for wanted in [
        "unknown field `nme`",
        "invalid u16",
        "unknown value `sometimes`",
        "3 error(s) in the config",
    ] {
        assert!(stderr.contains(wanted), "no `{wanted}` in:\n{stderr}");
    }
}

#[test]
fn usage_errors_exit_1_and_help_and_version_exit_0() {
    for args in [
        &["plan", "--detailed-exitcode", "--lock-wiat", "5"][..],
        &["frobnicate"],
        &["check", "--config"],
        &["render", "--postgres-version", "abc", "--out", "x"],
    ] {
        let out = tandem().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("error:"),
            "{args:?}"
        );
    }
    for args in [&["--help"][..], &["--version"], &["plan", "--help"]] {
        let out = tandem().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}

/// `--version` says what `cargo -vV` says of cargo: which commit (this checkout's), when,
/// for which target; `-V` is its first line.
#[test]
fn the_version_names_the_commit_the_dates_and_the_target() {
    let run = |flag: &str| {
        let out = tandem().arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let long = run("--version");
    let fact = |key: &str| -> String {
        long.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key}:\n{long}"))
            .to_string()
    };
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert_eq!(fact("commit-hash"), head, "{long}");
    assert_eq!(fact("release"), env!("CARGO_PKG_VERSION"));
    for key in ["commit-date", "build-date"] {
        let date = fact(key);
        let digits: String = date.chars().filter(char::is_ascii_digit).collect();
        assert!(date.len() == 10 && digits.len() == 8, "{key}: {date}");
    }
    let target = fact("target");
    assert!(target.contains("-linux-"), "{target}");
    let short = run("-V");
    assert_eq!(short.lines().count(), 1, "{short}");
    assert_eq!(short.trim(), long.lines().next().unwrap());
    assert!(short.contains(&head[..12]), "{short}");
}

/// With --json a failure is a document on stdout too (the exit code is still 1): the config's
/// diagnostics with place and fix, a missing secret named, nothing secret in it.
#[test]
fn a_json_command_that_fails_says_so_in_json() {
    let secret = "hunter2-inline-secret";
    let config = with_database_line("").replace(
        "  password: {env: TANDEM_DB_PASSWORD}\n",
        &format!("  password: {secret}\n"),
    );
    let (_dir, path) = workspace(&config);
    for command in [
        &["plan", "--json"][..],
        &["verify", "--json"],
        &["apply", "--yes", "--json"],
    ] {
        let out = tandem()
            .args(command)
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{command:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains(secret), "{stdout}");
        let doc: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON document");
        assert_eq!(doc["format_version"], 1);
        assert_eq!(doc["ok"], false);
        let diagnostics = doc["error"]["diagnostics"].as_array().unwrap();
        let line = config.lines().position(|l| l.contains(secret)).unwrap() as u64 + 1;
        let password = diagnostics
            .iter()
            .find(|d| d["line"] == line)
            .unwrap_or_else(|| panic!("line {line}: {stdout}"));
        assert!(password["fix"].is_string(), "{stdout}");
    }
    // A secret that is not set: named, with its variable.
    let (_dir, path) = workspace(&good_config());
    let out = tandem()
        .args(["plan", "--json", "-c"])
        .arg(&path)
        .env_remove("TANDEM_DB_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("$TANDEM_DB_PASSWORD, which is not set"),
        "{message}"
    );
}

/// `restore --in-place` replaces data: on a terminal it asks, like apply (a `no` contacts no
/// server); without one it needs --yes.
#[test]
fn an_in_place_restore_asks_first() {
    let config = good_config().replace(
        "domains:",
        "  - name: vault\n    role: backup\n    ssh: deploy@vault.example.com\n    fqdn: vault.example.com\n    internal_ip: 10.0.0.5\ndomains:",
    ) + "backup:\n  encryption_key: {env: TANDEM_BACKUP_KEY}\n";
    let (_dir, path) = workspace(&config);
    let piped = tandem()
        .args(["restore", "--in-place", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(piped.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&piped.stderr).contains("add --yes to go ahead"));
    // On a terminal (script(1) gives it one), answered `no`.
    let command = format!(
        "{} restore --in-place -c {}",
        assert_cmd::cargo::cargo_bin("tandem").display(),
        path.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"no\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("Restore in place? Type yes:"), "{said}");
    assert!(said.contains("not restored"), "{said}");
    assert!(!said.contains("connecting"), "{said}");
}

/// A tandem flag written among manage.py's words goes to manage.py: tandem says so.
#[test]
fn a_tandem_flag_after_manage_words_is_pointed_out() {
    let (_dir, path) = workspace(&good_config());
    let out = tandem()
        .args(["manage", "-c"])
        .arg(&path)
        .args(["check", "--server", "app2"])
        .arg("--ssh-config=/dev/null")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "warning: --server, --ssh-config after manage.py's arguments go to manage.py"
        ),
        "{stderr}"
    );
}

#[test]
fn each_command_offers_only_the_flags_it_uses() {
    let help = |command: &str| {
        let out = tandem().args([command, "--help"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for command in ["plan", "verify"] {
        let text = help(command);
        assert!(text.contains("--ssh-config"), "{command}: {text}");
        for unused in ["--lock-wait", "--postgres-version", "--yes"] {
            assert!(!text.contains(unused), "{command} offers {unused}");
        }
    }
    // One spelling picks servers: --server, a list where a list makes sense (`--only` is a
    // hidden alias on the planning commands).
    for command in [
        "plan", "verify", "apply", "deploy", "rollback", "manage", "logs", "audit", "restart",
    ] {
        let text = help(command);
        assert!(text.contains("--server"), "{command} lacks --server");
        assert!(!text.contains("--only"), "{command} offers --only");
    }
    for command in ["plan", "logs", "audit", "restart"] {
        assert!(
            help(command).contains("--server <NAME[,NAME]>"),
            "{command}"
        );
    }
    for command in ["apply", "deploy", "rollback"] {
        let text = help(command);
        for used in ["--lock-wait", "--yes", "--ssh-config"] {
            assert!(text.contains(used), "{command} lacks {used}");
        }
        assert!(!text.contains("--postgres-version"), "{command}");
    }
    for command in ["check", "render"] {
        let text = help(command);
        assert!(text.contains("--postgres-version"), "{command}");
        assert!(!text.contains("--ssh-config"), "{command}");
    }
    // Template overrides only where templates are rendered.
    let help_of = |words: &[&str]| {
        let out = tandem().args(words).arg("--help").output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for words in [
        &["manage"][..],
        &["logs"],
        &["releases"],
        &["audit"],
        &["tenant", "list"],
        &["tenant", "add"],
        &["backup"],
        &["backup", "list"],
        &["restore"],
        &["restart"],
        &["lock", "status"],
        &["rollback"],
        &["status"],
    ] {
        let text = help_of(words);
        assert!(text.contains("--ssh-config"), "{words:?}: {text}");
        assert!(
            !text.contains("--overrides"),
            "{words:?} offers --overrides"
        );
    }
    for words in [
        &["plan"][..],
        &["apply"],
        &["verify"],
        &["check"],
        &["render"],
    ] {
        assert!(help_of(words).contains("--overrides"), "{words:?}");
    }
}

#[test]
fn colour_only_when_asked_for_or_on_a_terminal() {
    let (_dir, path) = workspace(&good_config().replace("10.0.0.3", "10.0.0.300"));
    let stderr = |extra: &[&str]| {
        let out = tandem()
            .args(["check", "-c"])
            .arg(&path)
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(stderr(&["--color", "always"]).contains("\x1b[1;31merror: "));
    // Not a terminal here: auto means none.
    assert!(!stderr(&[]).contains('\x1b'));
    assert!(!stderr(&["--color", "never"]).contains('\x1b'));
}

/// The screens people read, as they read them: `--help` and two config errors.
#[test]
fn screens() {
    let help = tandem().arg("--help").output().unwrap();
    insta::assert_snapshot!("help", String::from_utf8_lossy(&help.stdout));
    for (name, from, to) in [
        ("unknown_role", "    role: db", "    role: web"),
        ("tab", "servers:", "\tservers:"),
    ] {
        let (dir, _) = workspace(&good_config().replacen(from, to, 1));
        let out = tandem()
            .current_dir(dir.path())
            .arg("check")
            .output()
            .unwrap();
        insta::assert_snapshot!(name, String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let out = tandem().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("verify"),
            "{shell}: no subcommand in the script"
        );
    }
    let man = tandem().arg("man").output().unwrap();
    assert!(man.status.success());
    assert!(String::from_utf8_lossy(&man.stdout).starts_with(".ie"));
}

#[test]
fn bash_completes_server_names_from_the_config_the_line_names() {
    // Completion works while the config is being written: here it is not valid yet.
    let (dir, path) = workspace(&good_config().replace("project: shop", "project: Shop!"));
    let bin = Path::new(env!("CARGO_BIN_EXE_tandem")).parent().unwrap();
    let complete = |words: &str, cword: usize| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source <(tandem completions bash); COMP_WORDS=({words}); COMP_CWORD={cword}; \
                 COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
                 _tandem_with_servers tandem \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
                 echo \"${{COMPREPLY[*]}}\""
            ))
            .current_dir(dir.path())
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let config = path.display().to_string();
    assert_eq!(complete("tandem plan --server ''", 3), "db app1");
    assert_eq!(complete("tandem plan --server a", 3), "app1");
    assert_eq!(
        complete(&format!("tandem apply -c {config} --server db,a"), 5),
        "db,app1"
    );
    assert_eq!(complete("tandem deploy --server = ''", 4), "db app1");
    // A hostile config (a cloned repository's) cannot make the completion run anything.
    let pwned = dir.path().join("pwned");
    fs::write(
        &path,
        good_config().replace(
            "  - name: db\n",
            &format!("  - name: \"$(touch {})\"\n", pwned.display()),
        ),
    )
    .unwrap();
    assert_eq!(complete("tandem plan --server ''", 3), "app1");
    assert!(
        !pwned.exists(),
        "the completion ran a command from the config"
    );
    // Elsewhere, clap's own completion answers.
    assert!(complete("tandem pla", 1).contains("plan"));
}

#[test]
fn a_closed_stdout_ends_tandem_quietly() {
    // The reader is gone before tandem writes a byte, as with `tandem ... | head -0`.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("tandem"))
        .args(["completions", "bash"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(141));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "not quiet");
}

#[test]
fn a_closed_stderr_ends_tandem_quietly_too() {
    // `tandem check -c bad.yml 2>&1 | head -1`: the reader gone, every command that writes to
    // stderr ends with 141 (a panic gave 101, and in the middle of apply would stop it anywhere).
    let (dir, good) = workspace(&good_config());
    let bad = dir.path().join("bad.yml");
    fs::write(&bad, "project: [\n").unwrap();
    let empty = dir.path().join("empty");
    let rendered = dir.path().join("rendered");
    let cases: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["check".into(), "-c".into(), bad.clone().into()],
        vec!["check".into(), "-c".into(), good.clone().into()],
        vec![
            "render".into(),
            "-c".into(),
            good.clone().into(),
            "--out".into(),
            rendered.into(),
        ],
        vec!["init".into(), empty.into()],
        vec!["plan".into(), "-c".into(), bad.into()],
        vec![
            "logs".into(),
            "-c".into(),
            dir.path().join("missing.yml").into(),
        ],
    ];
    fs::create_dir(dir.path().join("empty")).unwrap();
    for args in cases {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("tandem"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(writer)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(141), "{args:?}");
    }
}

#[test]
fn init_writes_a_starter_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    tandem()
        .current_dir(dir.path())
        .arg("init")
        .assert()
        .success();
    let written = fs::read_to_string(dir.path().join("tandem.yml")).unwrap();
    assert!(written.contains("password: {env: TANDEM_DB_PASSWORD}"));
    fs::write(dir.path().join("tandem.yml"), "mine").unwrap();
    let out = tandem()
        .current_dir(dir.path())
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never overwrites"));
    assert_eq!(
        fs::read_to_string(dir.path().join("tandem.yml")).unwrap(),
        "mine"
    );
    // Given a directory, the config goes in it.
    fs::create_dir(dir.path().join("site")).unwrap();
    tandem()
        .current_dir(dir.path())
        .args(["init", "site"])
        .assert()
        .success();
    assert!(
        fs::read_to_string(dir.path().join("site/tandem.yml"))
            .unwrap()
            .contains("project:")
    );
}

/// In a Django project, init fills in what the project says (manage.py's settings module, the
/// wsgi module beside it, the requirements file, multi-tenancy) and says what it read; check
/// then finds nothing wrong with the django section.
#[test]
fn init_reads_the_project_it_is_written_for() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("acme-site");
    let files = [
        (
            "manage.py",
            "import os\n# DJANGO_SETTINGS_MODULE is set below\ndef main():\n    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings.production')\n",
        ),
        ("config/__init__.py", ""),
        ("config/settings/__init__.py", ""),
        ("config/settings/production.py", ""),
        (
            "config/wsgi.py",
            "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n",
        ),
        (
            "requirements/production.txt",
            "Django>=5\ngunicorn\npsycopg[binary]\ndjango-tenants>=3.6\ncelery[redis]\n",
        ),
    ];
    for (file, text) in files {
        let path = site.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    let out = tandem().current_dir(&site).arg("init").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("settings config.settings.production, wsgi config.wsgi, project `acme_site`"),
        "{said}"
    );
    assert!(
        said.contains("multi-tenant") && said.contains("installs celery"),
        "{said}"
    );
    let written = fs::read_to_string(site.join("tandem.yml")).unwrap();
    for line in [
        "project: acme_site",
        "  settings_module: config.settings.production",
        "  wsgi_module: config.wsgi",
        "  requirements: requirements/production.txt",
        "  migrate: migrate_schemas",
        "celery -A config worker",
    ] {
        assert!(written.contains(line), "{line}:\n{written}");
    }
    let (_, stderr) = check(&site.join("tandem.yml"));
    assert!(!stderr.contains("django."), "{stderr}");
    // Without a project, it says so and writes the plain starter.
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let out = tandem().current_dir(&empty).arg("init").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no manage.py"));
    assert!(
        fs::read_to_string(empty.join("tandem.yml"))
            .unwrap()
            .contains("project: myproject")
    );
}

#[test]
fn render_writes_per_host_trees_and_refuses_a_full_directory() {
    let (dir, path) = workspace(&good_config());
    let out = dir.path().join("out");
    tandem()
        .args(["render", "-c"])
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let site = fs::read_to_string(out.join("app1/etc/nginx/sites-available/shop")).unwrap();
    assert!(site.contains("server_name shop.example.com;"), "{site}");
    let hba =
        fs::read_to_string(out.join("db/etc/postgresql/15/main/pg_hba.conf.tandem-block")).unwrap();
    assert!(
        hba.contains("host    shop    shop    10.0.0.2/32    scram-sha-256"),
        "{hba}"
    );
    let env = fs::read_to_string(out.join("app1/etc/shop/env")).unwrap();
    assert!(env.contains("DATABASE_PASSWORD=\"<redacted"), "{env}");
    let again = tandem()
        .args(["render", "-c"])
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}

#[test]
fn overridden_template_is_used_and_a_broken_one_is_reported() {
    let (dir, path) = workspace(&good_config());
    let overrides = dir.path().join("overrides/templates/postgres");
    fs::create_dir_all(&overrides).unwrap();
    fs::write(
        overrides.join("00-tandem.conf"),
        "# custom\nmax_connections = 50\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    tandem()
        .args(["render", "-c"])
        .arg(&path)
        .arg("--overrides")
        .arg(dir.path().join("overrides"))
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let conf =
        fs::read_to_string(out.join("db/etc/postgresql/15/main/conf.d/00-tandem.conf")).unwrap();
    assert_eq!(conf, "# custom\nmax_connections = 50\n");

    fs::write(overrides.join("00-tandem.conf"), "{{ no_such_variable }}\n").unwrap();
    let out = check_with_overrides(&path, &dir.path().join("overrides"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("00-tandem.conf") && stderr.contains("server db"),
        "{stderr}"
    );
}

/// `tandem check -c PATH --overrides DIR`.
fn check_with_overrides(path: &Path, overrides: &Path) -> std::process::Output {
    tandem()
        .args(["check", "-c"])
        .arg(path)
        .arg("--overrides")
        .arg(overrides)
        .output()
        .unwrap()
}

#[test]
fn broken_playbook_override_is_rejected_at_load() {
    let (dir, path) = workspace(&good_config());
    let books = dir.path().join("overrides/playbooks");
    fs::create_dir_all(&books).unwrap();
    fs::write(
        books.join("db.yml"),
        "steps:\n  - kind: postgres_rol\n    name: x\n",
    )
    .unwrap();
    let out = check_with_overrides(&path, &dir.path().join("overrides"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("db.yml:2:") && stderr.contains("postgres_role"),
        "{stderr}"
    );
}

/// `check` refuses `text` (exit 1, a `tandem.yml:` position) without echoing the `hunter2`
/// that `case` pasted where a secret's source belongs.
fn assert_refused_without_echo(text: &str, case: &str) {
    let (_dir, path) = workspace(text);
    let (code, stderr) = check(&path);
    assert_eq!(code, 1, "{case:?}: {stderr}");
    assert!(!stderr.contains("hunter2"), "{case:?} echoed:\n{stderr}");
    assert!(stderr.contains("tandem.yml:"), "{case:?}: {stderr}");
}

#[test]
fn a_password_written_inline_is_never_echoed() {
    for inline in [
        "  password: hunter2\n",
        "  password: \"hunter2 with spaces\"\n",
        "  password:\n    hunter2\n",
        "  password: {value: hunter2}\n",
        "  password: {env: hunter2 is my password}\n",
    ] {
        let text = good_config().replace("  password: {env: TANDEM_DB_PASSWORD}\n", inline);
        assert_refused_without_echo(&text, inline);
    }
}

#[test]
fn a_secret_pasted_into_secret_env_is_never_echoed() {
    for inline in [
        "  secret_env: {DSN: {env: \"https://hunter2@sentry\"}}\n",
        "  secret_env: {DSN: hunter2-pasted}\n",
        "  secret_env:\n    DSN: {env: hunter2 is the dsn}\n",
        "  secret_env:\n    DSN:\n      hunter2\n",
    ] {
        let text = good_config().replace(
            "  settings_module: shop.settings\n",
            &format!("  settings_module: shop.settings\n{inline}"),
        );
        assert_refused_without_echo(&text, inline);
    }
}

#[test]
fn a_tsig_or_dns_secret_pasted_into_the_config_is_never_echoed() {
    for dns in [
        "rfc2136: {nameserver: '10.0.0.5:53', tsig_key: k, tsig_secret: {env: \"hunter2+base64==\"}}",
        "rfc2136: {nameserver: '10.0.0.5:53', tsig_key: k, tsig_secret: hunter2}",
        "lego: {provider: cloudflare, secret_env: {CF_DNS_API_TOKEN: hunter2-token}}",
        "lego: {provider: cloudflare, secret_env: {CF_DNS_API_TOKEN: {env: \"hunter2 token\"}}}",
    ] {
        let text = good_config()
            .replace(
                "domains: [shop.example.com]",
                "domains: [\"*.shop.example.com\"]",
            )
            .replace(
                "    email: ops@example.com\n",
                &format!("    email: ops@example.com\n    dns:\n      {dns}\n"),
            );
        assert_refused_without_echo(&text, dns);
    }
}

#[test]
fn a_huge_value_is_reported_with_a_bounded_excerpt() {
    let huge = "x".repeat(10 * 1024 * 1024);
    let (_dir, path) =
        workspace(&good_config().replace("project: shop", &format!("project: {huge}")));
    let (code, stderr) = check(&path);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("tandem.yml:1:"),
        "{}",
        &stderr[..2000.min(stderr.len())]
    );
    assert!(stderr.len() < 4_000, "{} bytes of error", stderr.len());
}

#[test]
fn key_files_must_be_small_regular_files_holding_only_public_keys() {
    let (dir, path) = workspace(&good_config());
    let fifo = dir.path().join("fifo.pub");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let private = dir.path().join("id_ed25519");
    fs::write(
        &private,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    let mixed = dir.path().join("mixed.pub");
    fs::write(&mixed, format!("{KEY}\nnot a key at all\n")).unwrap();
    for (file, says) in [
        (fifo.display().to_string(), "not a regular file"),
        ("/dev/zero".to_string(), "not a regular file"),
        (private.display().to_string(), "PRIVATE key"),
        (
            mixed.display().to_string(),
            "key 2 of 2 is not an SSH public key line",
        ),
    ] {
        let text = good_config().replace(
            "  authorized_keys: [",
            &format!("  authorized_key_files: [\"{file}\"]\n  authorized_keys: ["),
        );
        fs::write(&path, text).unwrap();
        // A hang here (a FIFO opened for reading) is the bug this guards against.
        let out = tandem()
            .arg("check")
            .arg("-c")
            .arg(&path)
            .timeout(std::time::Duration::from_secs(30))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        assert!(
            stderr.contains(says),
            "{file}: expected {says:?} in {stderr}"
        );
    }
}

#[test]
fn extensions_with_a_dash_are_allowed_and_quoted() {
    let (dir, path) = workspace(&with_database_line("extensions: [uuid-ossp, citext]"));
    let out = render_ok(dir.path(), &path);
    let sql = fs::read_to_string(out.join("db/tandem/postgres.sql")).unwrap();
    assert!(
        sql.contains("CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\";"),
        "{sql}"
    );
}

#[test]
fn postgres_version_must_be_a_number() {
    let (dir, path) = workspace(&good_config());
    for bad in ["../../../../../escaped", "abc", "15/../..", "0"] {
        let out = dir.path().join("out");
        let run = tandem()
            .args(["render", "-c"])
            .arg(&path)
            .args(["--postgres-version", bad, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(!run.status.success(), "{bad} accepted");
        assert!(!out.exists(), "{bad}: something was written");
        assert!(String::from_utf8_lossy(&run.stderr).contains("--postgres-version"));
    }
    assert!(!dir.path().join("escaped").exists());
}

#[test]
fn database_allow_admits_exactly_the_listed_machines() {
    let text = with_database_line("allow: [10.0.0.9]");
    let (dir, path) = workspace(&text);
    let out = render_ok(dir.path(), &path);
    let hba =
        fs::read_to_string(out.join("db/etc/postgresql/15/main/pg_hba.conf.tandem-block")).unwrap();
    assert!(
        hba.contains("host    shop    shop    10.0.0.2/32    scram-sha-256\n")
            && hba.contains(
                "host    shop    shop    10.0.0.9/32    scram-sha-256    # database.allow\n"
            ),
        "{hba}"
    );
    let ufw = fs::read_to_string(out.join("db/tandem/ufw.sh")).unwrap();
    assert!(
        ufw.contains("ufw allow proto tcp from 10.0.0.9 to any port 5432 comment 'tandem: postgresql from allowed 10.0.0.9'"),
        "{ufw}"
    );
    for (allow, says) in [
        ("[10.0.0.2]", "is an app server"),
        ("[10.0.0.9, 10.0.0.9]", "listed twice"),
        ("[0.0.0.0]", "cannot be a server's internal address"),
        ("[10.0.0.0/8]", "not an IP address"),
    ] {
        fs::write(&path, text.replace("[10.0.0.9]", allow)).unwrap();
        let (code, stderr) = check(&path);
        assert_eq!(code, 1, "{allow}: {stderr}");
        assert!(
            stderr.contains(says) && stderr.contains("tandem.yml:18:"),
            "{allow}: {stderr}"
        );
    }
}
