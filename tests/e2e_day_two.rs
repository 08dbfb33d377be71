//! Day two on a real deployment: `manage` (a superuser made through it logs in to the admin
//! through nginx; manage.py's exit status comes back), `logs` (a request just made shows up),
//! `releases` and `rollback --to`, and `audit`.

mod support;

use std::io::Write;
use std::process::Stdio;

use support::lab::Suite;
use support::scenario::{Scenario, assert_ok, fetch, text};

/// Logs in to the Django admin through nginx, from `s.outsider`: the login page's CSRF token,
/// then the form. Returns the status and Location of the answer to the POST.
fn admin_login(s: &Scenario, user: &str, password: &str) -> String {
    let script = r#"python3 - <<'EOF'
import http.client, re, urllib.parse
def ask(method, path, body=None, cookies=""):
    c = http.client.HTTPConnection('IP', 80, timeout=10)
    headers = {'Host': 'timesheet.lab.test', 'Cookie': cookies}
    if body is not None:
        headers['Content-Type'] = 'application/x-www-form-urlencoded'
        headers['Referer'] = 'http://timesheet.lab.test/admin/login/'
    c.request(method, path, body=body, headers=headers)
    return c.getresponse()
r = ask('GET', '/admin/login/')
page = r.read().decode()
csrf = re.search(r'csrftoken=([^;]+)', r.getheader('Set-Cookie') or '').group(1)
token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
form = urllib.parse.urlencode({'csrfmiddlewaretoken': token, 'username': 'USER', 'password': 'PASSWORD', 'next': '/admin/'})
r = ask('POST', '/admin/login/?next=/admin/', form, 'csrftoken=' + csrf)
print(r.status, r.getheader('Location'))
EOF"#
    .replace("IP", &s.app.ip)
    .replace("USER", user)
    .replace("PASSWORD", password);
    text(&s.outsider.ssh(&script).stdout).trim().to_string()
}

/// The scenario's config with `django.env` and `django.secret_env` (from a file beside it).
fn with_app_env(s: &Scenario, public: &str, secret: &str) {
    std::fs::write(s.dir.path().join("probe-secret"), format!("{secret}\n")).unwrap();
    let base: String = std::fs::read_to_string(s.config_path())
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("  env: ") && !l.starts_with("  secret_env: "))
        .map(|l| format!("{l}\n"))
        .collect();
    let config = base.replacen(
        "django:\n",
        &format!(
            "django:\n  env: {{PROBE_PUBLIC: {public}}}\n  secret_env: {{PROBE_SECRET: {{file: probe-secret}}}}\n"
        ),
        1,
    );
    std::fs::write(s.config_path(), config).unwrap();
}

/// Runs `python` in `manage.py shell` through `tandem manage`, its stdin not a terminal.
fn manage_shell(s: &Scenario, python: &str) -> std::process::Output {
    let mut shell = s
        .tandem(&["manage", "--", "shell"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(python.as_bytes())
        .unwrap();
    shell.wait_with_output().unwrap()
}

#[test]
fn app_settings_and_secrets_reach_django_and_never_the_screen() {
    let lab = lab_or_skip!();
    let s = Scenario::new(lab, Suite::Bookworm);
    let secret = format!("s3cret-{}-value", std::process::id());
    with_app_env(&s, "first-setting", &secret);
    let apply = s.apply_fresh();
    assert_ok("first apply", &apply);
    let everything = |out: &std::process::Output| text(&out.stdout) + &text(&out.stderr);
    assert!(
        !everything(&apply).contains(&secret),
        "the secret was shown by apply"
    );

    // Django sees both, and a DATABASE_URL whose password decodes to the real one.
    let seen = manage_shell(
        &s,
        &format!(
            "import os, urllib.parse\n\
             print('public', os.environ['PROBE_PUBLIC'])\n\
             print('secret', os.environ['PROBE_SECRET'] == {secret:?})\n\
             u = urllib.parse.urlsplit(os.environ['DATABASE_URL'])\n\
             print('url', u.scheme, u.username, urllib.parse.unquote(u.password) == os.environ['DATABASE_PASSWORD'], u.hostname, u.port, u.path)\n\
             print('csrf', os.environ['CSRF_TRUSTED_ORIGINS'])\n"
        ),
    );
    assert_ok("manage -- shell", &seen);
    let seen = text(&seen.stdout);
    for expected in [
        "public first-setting",
        "secret True",
        "csrf http://timesheet.lab.test",
    ] {
        assert!(seen.contains(expected), "{expected} missing:\n{seen}");
    }
    assert!(
        seen.contains(&format!(
            "url postgres timesheet True {} 5432 /timesheet",
            s.db.ip
        )),
        "{seen}"
    );

    // A changed setting shows as a diff; a changed secret only as changed. Neither value of
    // the secret appears anywhere: plan, its JSON, apply, the audit log.
    let new_secret = format!("n3w-{secret}");
    with_app_env(&s, "second-setting", &new_secret);
    let plan = s.run(&["plan"]);
    let shown = everything(&plan);
    for expected in [
        "-PROBE_PUBLIC=\"first-setting\"",
        "+PROBE_PUBLIC=\"second-setting\"",
        "+PROBE_SECRET=<hidden, changed>",
        "restart gunicorn",
    ] {
        assert!(shown.contains(expected), "{expected} missing:\n{shown}");
    }
    let json = s.run(&["plan", "--json"]);
    let applied = s.run(&["apply", "--yes", "--json"]);
    assert_ok("apply of the new settings", &applied);
    let audit = s.run(&["audit", "-n", "500"]);
    for (what, out) in [
        ("plan", &plan),
        ("plan --json", &json),
        ("apply --json", &applied),
        ("audit", &audit),
    ] {
        for value in [&secret, &new_secret] {
            assert!(
                !everything(out).contains(value.as_str()),
                "{what} shows the secret"
            );
        }
    }
    let seen = text(
        &manage_shell(
            &s,
            &format!("import os\nprint(os.environ['PROBE_SECRET'] == {new_secret:?})\n"),
        )
        .stdout,
    );
    assert!(
        seen.contains("True"),
        "the new secret did not reach Django: {seen}"
    );
}

#[test]
fn manage_logs_releases_rollback_to_and_audit() {
    let lab = lab_or_skip!();
    let s = Scenario::new(lab, Suite::Bookworm);
    assert_ok("first apply", &s.apply_fresh());

    // `manage` without a terminal streams: a shell script on stdin makes a superuser.
    let made = manage_shell(
        &s,
        "from django.contrib.auth.models import User\n\
         User.objects.create_superuser('ops', 'ops@lab.test', 'n0t-s3cret-lab-only')\n\
         print('made', User.objects.filter(is_superuser=True).count())\n",
    );
    assert_ok("manage -- shell", &made);
    assert!(
        text(&made.stdout).contains("made 1"),
        "{}",
        text(&made.stdout)
    );
    assert_eq!(
        admin_login(&s, "ops", "n0t-s3cret-lab-only"),
        "302 /admin/",
        "the superuser made through manage cannot log in"
    );
    assert_eq!(
        admin_login(&s, "ops", "wrong"),
        "200 None",
        "a wrong password must not log in: this check would prove nothing"
    );
    // manage.py's exit status is tandem's.
    let unknown = s.run(&["manage", "--", "no_such_command"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown.stderr));
    assert!(text(&unknown.stderr).contains("Unknown command"));

    // `logs` shows a request made a moment ago, prefixed with its server and log.
    let probe = format!("/tandem-logs-probe-{}", std::process::id());
    let (status, _) = fetch(&s.outsider, &s.app.ip, "timesheet.lab.test", &probe);
    assert_eq!(status, "404");
    let logs = s.run(&["logs", "nginx", "-n", "20"]);
    assert_ok("logs", &logs);
    let shown = text(&logs.stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("app1 | nginx access.log | ") && l.contains(&probe)),
        "{shown}"
    );
    let db_logs = s.run(&["logs", "--server", "db", "postgresql", "-n", "5"]);
    assert_ok("logs of the db server", &db_logs);
    assert!(
        text(&db_logs.stdout)
            .lines()
            .all(|l| l.starts_with("db | postgresql ")),
        "{}",
        text(&db_logs.stdout)
    );

    // --server: the run works on the servers named and says which it skipped (`--only`, the
    // old spelling, still works).
    let only = s.run(&["plan", "--server", "app1"]);
    assert_ok("plan --server app1", &only);
    assert!(
        text(&only.stderr).contains("--server: skipping db"),
        "{}",
        text(&only.stderr)
    );
    assert!(
        text(&only.stdout).contains("app1 (debian") && !text(&only.stdout).contains("db (debian"),
        "{}",
        text(&only.stdout)
    );
    let checked = s.run(&["verify", "--only", "app1", "--json"]);
    assert_ok("verify --only app1", &checked);
    let doc: serde_json::Value = serde_json::from_slice(&checked.stdout).unwrap();
    let names: Vec<&str> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"PostgreSQL answers"), "{names:?}");
    let unknown = s.run(&["plan", "--only", "app9"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("servers: db, app1"),
        "{}",
        text(&unknown.stderr)
    );

    // A second release, then the list, then back to the first with --to.
    let template = s
        .dir
        .path()
        .join("timesheet/entries/templates/entries/list.html");
    let original = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &template,
        original.replace(">Timesheet</h1>", ">Timesheet v2</h1>"),
    )
    .unwrap();
    // A release ships code and needs no secret: none of the config's variables is set.
    let deploy = s
        .tandem(&["deploy", "--yes"])
        .env_remove("TANDEM_DB_PASSWORD")
        .env_remove("TANDEM_BACKUP_KEY")
        .env_remove("TANDEM_REDIS_PASSWORD")
        .output()
        .unwrap();
    assert_ok("deploy without the secrets", &deploy);
    assert!(
        text(&deploy.stderr).contains("secret(s) not read (a release needs none"),
        "{}",
        text(&deploy.stderr)
    );
    // verify uses a secret only to compare the files made from it: without the secrets it
    // names those files as not compared and passes on everything else.
    let verify = s
        .tandem(&["verify"])
        .env_remove("TANDEM_DB_PASSWORD")
        .env_remove("TANDEM_BACKUP_KEY")
        .env_remove("TANDEM_REDIS_PASSWORD")
        .output()
        .unwrap();
    assert_ok("verify without the secrets", &verify);
    assert!(
        text(&verify.stdout)
            .contains("not compared (made from a secret not read): /etc/timesheet/env"),
        "{}",
        text(&verify.stdout)
    );
    let listed = s.run(&["releases", "--json"]);
    assert_ok("releases", &listed);
    let doc: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let releases = doc["servers"][0]["releases"].as_array().unwrap().clone();
    assert_eq!(releases.len(), 2, "{doc}");
    assert_eq!(releases[1]["current"], true, "the newest is live: {doc}");
    assert!(
        releases[1]["by"].as_str().unwrap().contains('@'),
        "who shipped it is recorded: {doc}"
    );
    let first = releases[0]["id"].as_str().unwrap().to_string();
    let screen = text(&s.run(&["releases"]).stdout);
    assert!(
        screen.contains(&format!("    {first}")) && screen.contains("(current)"),
        "{screen}"
    );
    // What a broken-into server writes for the screen is shown, not obeyed by the terminal:
    // a window title and a clipboard write (OSC 52) in who shipped the first release.
    s.sudo_ok(
        &s.app,
        &format!("printf 'ops\\033]0;pwned\\007\\033]52;c;ZXZpbA==\\007\\n' >/srv/timesheet/releases/{first}/.tandem-deployed-by"),
    );
    let screen = text(&s.run(&["releases"]).stdout);
    assert!(
        screen.contains("ops\\x1b]0;pwned\\x07\\x1b]52;c;ZXZpbA==\\x07")
            && !screen.contains('\x1b'),
        "{screen:?}"
    );

    let missing = s.run(&["rollback", "--yes", "--to", "20000101T000000Z-nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains(&first),
        "the error lists what is kept"
    );
    // An emergency rollback needs no secret: none of the config's variables is set.
    let rollback = s
        .tandem(&["rollback", "--yes", "--to", &first])
        .env_remove("TANDEM_DB_PASSWORD")
        .env_remove("TANDEM_BACKUP_KEY")
        .env_remove("TANDEM_REDIS_PASSWORD")
        .output()
        .unwrap();
    assert_ok("rollback --to, without the secrets", &rollback);
    let (_, page) = fetch(&s.outsider, &s.app.ip, "timesheet.lab.test", "/");
    assert!(
        page.contains(">Timesheet</h1>") && !page.contains("v2"),
        "{page}"
    );

    // A restart without a release: gunicorn's other unit takes over (a new main process),
    // nginx is reloaded after its check, and the site still serves.
    let serving = |s: &Scenario| {
        s.sudo_ok(
            &s.app,
            "for u in gunicorn-timesheet.service gunicorn-timesheet-bridge.service; do \
             systemctl is-active --quiet $u && echo \"$u serves (pid $(systemctl show -p MainPID --value $u))\"; done; true",
        )
        .trim()
        .to_string()
    };
    let before = serving(&s);
    let restart = s.run(&["restart", "gunicorn", "nginx"]);
    assert_ok("restart", &restart);
    let said = text(&restart.stdout);
    let after = serving(&s);
    assert!(!after.contains('\n'), "one unit serves: {after}");
    assert_ne!(before, after, "gunicorn was not restarted:\n{said}");
    assert!(
        said.contains(&format!("app1: restarted gunicorn: {after}"))
            && said.contains("app1: reloaded nginx"),
        "{said}"
    );
    let (_, page) = fetch(&s.outsider, &s.app.ip, "timesheet.lab.test", "/");
    assert!(page.contains(">Timesheet</h1>"), "{page}");

    // One screen of it all, no secret needed.
    let status = s
        .tandem(&["status"])
        .env_remove("TANDEM_DB_PASSWORD")
        .output()
        .unwrap();
    let screen = text(&status.stdout);
    assert_eq!(
        status.status.code(),
        Some(0),
        "{screen}{}",
        text(&status.stderr)
    );
    assert!(
        screen.contains("db (db): PostgreSQL 15/main online")
            && screen.contains(&format!("app1 (app): release {first}"))
            && screen.contains(&format!("{} active", after.split(' ').next().unwrap()))
            && screen.contains("lock free"),
        "{screen}"
    );

    // The audit log says what ran, on every server.
    let audit = s.run(&["audit", "-n", "200"]);
    assert_ok("audit", &audit);
    let audit = text(&audit.stdout);
    assert!(audit.lines().any(|l| l.starts_with("db | ")), "{audit}");
    assert!(
        audit
            .lines()
            .any(|l| l.starts_with("app1 | ") && l.contains("~ current: ")),
        "the rollback is in the audit log:\n{audit}"
    );
}
