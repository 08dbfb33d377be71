//! The example Django app deployed by `tandem apply` onto fresh lab servers: the page, fetched
//! through nginx on the app server, shows rows stored on the database server; nginx serves the
//! static CSS and refuses unknown hosts; `deploy` ships a code change and `rollback` undoes it.

mod support;

use support::lab::Suite;
use support::scenario::{Example, Scenario, assert_ok, fetch, text};

#[test]
fn the_example_app_is_served_with_its_data_deployed_and_rolled_back() {
    let lab = lab_or_skip!();
    let s = Scenario::new(lab, Suite::Bookworm);
    // A domain longer than nginx's default server-name hash bucket holds (46 characters):
    // tandem sizes the bucket, else `nginx -t` refuses the site.
    let long = "a-long-host-name-for-the-customer-facing-shop.timesheet.lab.test";
    s.set_domains(&format!("[timesheet.lab.test, {long}]"));
    let first = s.apply_fresh();
    assert_ok("first apply", &first);
    // The fresh cluster's lines that pg_createcluster wrote above `include_dir` are not
    // overrides of tandem's drop-ins: nothing is commented out for nothing.
    let said = text(&first.stdout) + &text(&first.stderr);
    assert!(!said.contains("comment out"), "{said}");
    let (status, _) = fetch(&s.outsider, &s.app.ip, long, "/");
    assert_eq!(status, "200", "the long domain is not served");

    // Rows written by the app land on the database server and come back through nginx.
    s.manage_shell(
        "from entries.models import Entry; Entry.objects.create(person='Ada', project='tandem', hours=3.5, day='2026-11-27')",
    );
    let rows = s.sudo_ok(
        &s.db,
        "cd / && runuser -u postgres -- psql -XAt -d timesheet -c 'SELECT person FROM entries_entry'",
    );
    assert_eq!(rows.trim(), "Ada");
    let (status, page) = fetch(&s.outsider, &s.app.ip, "timesheet.lab.test", "/");
    assert_eq!(status, "200", "{page}");
    assert!(
        page.contains("<td>Ada</td>") && page.contains("<h1 id=\"title\">Timesheet</h1>"),
        "{page}"
    );

    // nginx serves the static files itself; unknown host names get no answer at all.
    let (status, css) = fetch(
        &s.outsider,
        &s.app.ip,
        "timesheet.lab.test",
        "/static/entries/style.css",
    );
    assert_eq!(status, "200");
    assert!(css.contains("rgb(0, 102, 51)"), "{css}");
    let (status, _) = fetch(&s.outsider, &s.app.ip, "evil.example", "/");
    assert_eq!(status, "closed", "unknown Host was answered");

    // Converged: nothing to do, the code included.
    s.assert_converged("second run");

    // A code change goes out with `deploy`, and `rollback` brings the old page back.
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
    // Its static files change too: each release has its own, so a rollback brings the old
    // ones back, and a file only the newer release has stays served after the rollback (the
    // release left is `previous`, for pages loaded before the switch).
    let static_dir = s.dir.path().join("timesheet/entries/static/entries");
    let css = std::fs::read_to_string(static_dir.join("style.css")).unwrap();
    std::fs::write(
        static_dir.join("style.css"),
        css.replace("rgb(0, 102, 51)", "rgb(0, 0, 153)"),
    )
    .unwrap();
    std::fs::write(static_dir.join("v2.css"), "h1 { font-weight: 900; }\n").unwrap();
    // And it brings a gunicorn.conf.py: tandem's own gunicorn settings file reads it, as
    // gunicorn itself would without `--config`, from the release that runs.
    std::fs::write(
        s.dir.path().join("timesheet/gunicorn.conf.py"),
        "access_log_format = 'from-the-release %(s)s %(U)s'\n",
    )
    .unwrap();
    let plan = s.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2));
    assert!(
        text(&plan.stdout).contains("+ release "),
        "{}",
        text(&plan.stdout)
    );
    // Like apply, deploy asks first; without a terminal to ask on it needs --yes.
    let unasked = s.run(&["deploy"]);
    assert_eq!(unasked.status.code(), Some(1));
    assert!(
        text(&unasked.stderr).contains("pass --yes"),
        "{}",
        text(&unasked.stderr)
    );
    assert!(
        text(&s.run(&["plan"]).stdout).contains("+ release "),
        "deploy without --yes shipped the release"
    );
    // -v streams the release's own output to stderr as it runs, prefixed by the server;
    // --json puts what ran, with timings, on stdout.
    let deploy = s.run(&["deploy", "--yes", "-v", "--json"]);
    assert_ok("deploy", &deploy);
    assert!(
        text(&deploy.stderr).contains("app1 | == manage.py check --deploy"),
        "{}",
        text(&deploy.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&deploy.stdout).expect("deploy --json is one JSON document");
    assert_eq!(doc["command"], "deploy");
    assert_eq!(doc["ok"], true);
    // The release in its two halves: built (code, venv), then taken live.
    let applied = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["server"] == "app1")
        .expect("app1 in the result")["applied"]
        .as_array()
        .expect("applied is a list");
    let what: Vec<&str> = applied
        .iter()
        .map(|a| a["what"].as_str().unwrap())
        .collect();
    assert!(
        what.len() == 2
            && what[0].starts_with("+ build release ")
            && what[1].starts_with("+ release "),
        "{what:?}"
    );
    for app in applied {
        assert!(app["seconds"].as_f64().unwrap() > 0.0, "{app}");
    }
    let (_, page) = fetch(&s.outsider, &s.app.ip, "timesheet.lab.test", "/");
    assert!(
        page.contains("Timesheet v2</h1>") && page.contains("<td>Ada</td>"),
        "{page}"
    );

    // gunicorn's access log lines for a request to / made after the server's time `since`:
    // waits (10 s at most) for one (journald takes them from gunicorn's stdout).
    let access_lines_of_a_request = || {
        let since = s.sudo_ok(&s.app, "date +%s");
        let (status, _) = fetch(&s.outsider, &s.app.ip, "timesheet.lab.test", "/");
        assert_eq!(status, "200");
        s.sudo_ok(
            &s.app,
            &format!(
                "for i in $(seq 50); do\n\
                 l=$(journalctl -u gunicorn-timesheet.service -u gunicorn-timesheet-bridge.service \
                 --since @{} --no-pager -o cat | grep -e 'from-the-release' -e '\"GET / HTTP/1')\n\
                 [ -z \"$l\" ] || {{ echo \"$l\"; exit 0; }}; sleep 0.2; done; exit 1",
                since.trim()
            ),
        )
    };
    let lines = access_lines_of_a_request();
    assert!(
        lines.contains("from-the-release 200 /"),
        "the release's gunicorn.conf.py was not read: {lines}"
    );
    // The gunicorn that serves yielded the CPU only while it loaded Django: its session has
    // the usual share again (a unit left at nice 10 would serve slower under load).
    let share = s.sudo_ok(
        &s.app,
        "for u in gunicorn-timesheet.service gunicorn-timesheet-bridge.service; do \
         [ \"$(systemctl is-active $u)\" = active ] || continue; \
         cat /proc/$(systemctl show -p MainPID --value $u)/autogroup; done",
    );
    assert!(
        share.trim().ends_with(" nice 0") && share.trim().lines().count() == 1,
        "the serving gunicorn's session: {share}"
    );
    let css_of = |path: &str| fetch(&s.outsider, &s.app.ip, "timesheet.lab.test", path);
    let release_hash = s.sudo_ok(&s.app, "cat /srv/timesheet/current/.tandem-release");
    let release_hash = release_hash.trim().to_string();
    assert!(!release_hash.is_empty());
    let (status, css) = css_of("/static/entries/style.css");
    assert!(
        status == "200" && css.contains("rgb(0, 0, 153)"),
        "{status} {css}"
    );

    assert_ok("rollback", &s.run(&["rollback", "--yes"]));
    let (status, page) = fetch(&s.outsider, &s.app.ip, "timesheet.lab.test", "/");
    assert_eq!(status, "200");
    assert!(
        page.contains(">Timesheet</h1>") && !page.contains("v2"),
        "{page}"
    );
    let (status, css) = css_of("/static/entries/style.css");
    assert!(
        status == "200" && css.contains("rgb(0, 102, 51)"),
        "the rollback kept the newer release's static file: {status} {css}"
    );
    let (status, css) = css_of("/static/entries/v2.css");
    assert!(status == "200" && css.contains("900"), "{status} {css}");
    let lines = access_lines_of_a_request();
    assert!(
        !lines.contains("from-the-release"),
        "the rolled-back release has no gunicorn.conf.py, yet: {lines}"
    );
    // Nothing but its static files is served from a release: not its code, not its marks.
    for path in [
        "/static/%2e%2e/%2e%2e/.tandem-release",
        "/static/%2e%2e/.tandem-release",
        "/static/..%2f..%2f.tandem-release",
    ] {
        let (status, body) = css_of(path);
        assert!(
            status != "200" && !body.contains(&release_hash),
            "{path}: {status} {body}"
        );
    }
    assert_eq!(
        s.sudo_ok(&s.app, "ls /srv/timesheet/releases | wc -l")
            .trim(),
        "2",
        "both releases are kept"
    );

    // The app server has no compiler until a requirement needs one: psycopg2 builds from
    // source (pg_config, gcc, Python's headers), so its release installs them and retries.
    assert!(
        !s.sudo(&s.app, "command -v gcc").status.success(),
        "a compiler on an app server whose requirements are all wheels"
    );
    let requirements = s.dir.path().join("timesheet/requirements.txt");
    let mut wanted = std::fs::read_to_string(&requirements).unwrap();
    wanted.push_str("psycopg2>=2.9\n");
    std::fs::write(&requirements, wanted).unwrap();
    let deploy = s.run(&["deploy", "--yes", "-v"]);
    assert_ok("deploy of a requirement built from source", &deploy);
    assert!(
        text(&deploy.stderr).contains("pip needs a compiler for a requirement"),
        "{}",
        text(&deploy.stderr)
    );
    s.sudo_ok(
        &s.app,
        "command -v gcc && /srv/timesheet/current/venv/bin/python -c 'import psycopg2'",
    );
    let (status, page) = fetch(&s.outsider, &s.app.ip, "timesheet.lab.test", "/");
    assert_eq!(status, "200");
    assert!(page.contains("<td>Ada</td>"), "{page}");
    s.assert_converged("after the compiled requirement");

    // A live release without static files of its own (as an older tandem left it, which
    // collected into one shared directory; here removed by hand): apply collects them into it.
    s.sudo_ok(&s.app, "rm -rf /srv/timesheet/current/.tandem-public");
    // (nginx falls back to the release before it, which has the first stylesheet.)
    let (status, css) = css_of("/static/entries/style.css");
    assert!(
        status == "200" && css.contains("rgb(0, 102, 51)"),
        "{status} {css}"
    );
    // verify names it.
    let verify = s.run(&["verify", "--json"]);
    assert_eq!(verify.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).expect("verify --json");
    let check = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "nginx serves the live release's static files")
        .expect("the static files check")
        .clone();
    assert!(
        check["ok"] == false
            && check["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("has no .tandem-public/static"),
        "{check}"
    );
    let plan = text(&s.run(&["plan"]).stdout);
    assert!(
        plan.contains("+ static files of release ") && !plan.contains("+ release "),
        "{plan}"
    );
    assert_ok("apply", &s.run(&["apply", "--yes"]));
    let (status, css) = css_of("/static/entries/style.css");
    // (The code live since the compiled requirement is the second one's.)
    assert!(
        status == "200" && css.contains("rgb(0, 0, 153)"),
        "{status} {css}"
    );
    s.assert_converged("after the static files came back");
}

/// Two app servers and releases that break only when a page is asked for. One whose view
/// raises passes `check --deploy` but not the health check Django's test client makes before
/// anything goes live: no server switches. One whose WSGI entry point answers 500 passes that
/// (the test client does not use it) and gunicorn starts on it: it goes live on app1, fails
/// the check through nginx there, and app1 goes back to the release it ran; app2 never
/// switches. Both keep serving the old page throughout; fixed, the next deploy rolls over both.
#[test]
fn a_release_that_fails_its_health_check_stops_on_the_first_app_server() {
    let lab = lab_or_skip!();
    let s = Scenario::with_apps(lab, Suite::Bookworm, Example::Timesheet, 2);
    s.edit_config(
        "  migrate: migrate\n",
        "  migrate: migrate\n  health: {timeout: 5}\n",
    );
    assert_ok("first apply", &s.apply_fresh());
    let app2 = &s.more_apps[0];
    let current = |server| s.sudo_ok(server, "readlink /srv/timesheet/current");
    let before = (current(&s.app), current(app2));
    let still_serving = |when: &str| {
        assert_eq!((current(&s.app), current(app2)), before, "{when}");
        for server in [&s.app, app2] {
            let (status, page) = fetch(&s.outsider, &server.ip, "timesheet.lab.test", "/");
            assert_eq!(status, "200", "{} {when}: {page}", server.name);
        }
    };
    let failed_deploy = |expected: &[&str]| {
        let deploy = s.run(&["deploy", "--yes"]);
        let said = text(&deploy.stdout) + &text(&deploy.stderr);
        assert_eq!(deploy.status.code(), Some(1), "{said}");
        for expected in expected {
            assert!(said.contains(expected), "no `{expected}` in:\n{said}");
        }
    };

    let views = s.dir.path().join("timesheet/entries/views.py");
    let good = std::fs::read_to_string(&views).unwrap();
    std::fs::write(
        &views,
        good.replace(
            "def entry_list(request):\n",
            "def entry_list(request):\n    raise RuntimeError(\"a release broken at request time\")\n",
        ),
    )
    .unwrap();
    failed_deploy(&[
        "health check failed before going live: / as timesheet.lab.test raised RuntimeError: a release broken at request time",
        "release not taken live: the release on app1 failed",
    ]);
    still_serving("after a release whose view raises");
    std::fs::write(&views, &good).unwrap();

    let wsgi = s.dir.path().join("timesheet/timesheet/wsgi.py");
    let entry = std::fs::read_to_string(&wsgi).unwrap();
    std::fs::write(
        &wsgi,
        format!(
            "{entry}\n_django = application\n\n\ndef application(environ, start_response):\n    start_response(\"500 Internal Server Error\", [(\"Content-Type\", \"text/plain\")])\n    return [b\"broken entry point\"]\n"
        ),
    )
    .unwrap();
    failed_deploy(&[
        "health check failed: http://timesheet.lab.test/ answered 500",
        "the new release failed its health check; running release:",
        "release not taken live: the release on app1 failed",
    ]);
    still_serving("after a release whose entry point answers 500");

    // A release gunicorn cannot start (its WSGI module raises on import: Django's checks and
    // test client never import it), once with each of gunicorn's two units serving (they take
    // turns): nothing moves, the serving unit keeps serving.
    std::fs::write(
        &wsgi,
        format!("{entry}\nraise RuntimeError(\"a release that does not start\")\n"),
    )
    .unwrap();
    // The units' states once the one that stopped is no longer `deactivating` (a switch goes
    // on once its workers have exited; gunicorn's master takes a moment more), 10 s at most.
    let serving = |server| {
        s.sudo_ok(
            server,
            "for i in $(seq 100); do\n\
             st=$(systemctl is-active gunicorn-timesheet.service gunicorn-timesheet-bridge.service | tr '\\n' ' ')\n\
             case $st in *deactivating*) sleep 0.1;; *) break;; esac; done; echo \"$st\" | tr -d '\\n'",
        )
    };
    for turn in ["active inactive ", "inactive active "] {
        if serving(&s.app).starts_with("active") != turn.starts_with("active") {
            assert_ok("restart gunicorn", &s.run(&["restart", "gunicorn"]));
        }
        assert_eq!(serving(&s.app), turn);
        failed_deploy(&[
            "gunicorn does not start on",
            "Error: a release that does not start",
            "gunicorn did not start on the new release; running release:",
            "release not taken live: the release on app1 failed",
        ]);
        still_serving(&format!(
            "after a release gunicorn does not start on ({turn})"
        ));
        assert_eq!(serving(&s.app), turn, "the serving unit changed");
    }
    std::fs::write(&wsgi, entry).unwrap();

    let template = s
        .dir
        .path()
        .join("timesheet/entries/templates/entries/list.html");
    let page = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &template,
        page.replace(">Timesheet</h1>", ">Timesheet v2</h1>"),
    )
    .unwrap();
    // A new migration is named by the plan before it runs.
    std::fs::write(
        s.dir.path().join("timesheet/entries/migrations/0002_noop.py"),
        "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n    dependencies = [(\"entries\", \"0001_initial\")]\n    operations = []\n",
    )
    .unwrap();
    let plan = text(&s.run(&["plan"]).stdout);
    assert!(plan.contains("entries/migrations/0002_noop.py"), "{plan}");
    assert!(!plan.contains("0001_initial"), "{plan}");
    assert_ok("deploy of the fixed release", &s.run(&["deploy", "--yes"]));
    for server in [&s.app, app2] {
        let (status, page) = fetch(&s.outsider, &server.ip, "timesheet.lab.test", "/");
        assert_eq!(status, "200");
        assert!(
            page.contains("Timesheet v2</h1>"),
            "{}: {page}",
            server.name
        );
    }
    s.assert_converged("after the rolled release");
}
