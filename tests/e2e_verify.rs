//! `tandem verify` on a real deployment: all checks pass after apply; then, one at a time,
//! something is broken by hand and verify must fail on the right check with the right hint,
//! and pass again once it is put back.

mod support;

use support::lab::Suite;
use support::scenario::{Scenario, assert_ok, text};

/// `(name, hint)` of every failed check, from `tandem verify --json`.
fn failures(s: &Scenario) -> Vec<(String, String)> {
    let out = s.run(&["verify", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify --json: {e}\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    assert_eq!(report["format_version"], 1, "verify --json is versioned");
    let failed: Vec<(String, String)> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["hint"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        out.status.code(),
        Some(if failed.is_empty() { 0 } else { 1 }),
        "exit code"
    );
    failed
}

fn assert_fails(s: &Scenario, what: &str, check: &str, hint_has: &str) {
    let failed = failures(s);
    let found = failed.iter().find(|(name, _)| name.contains(check));
    assert!(
        found.is_some(),
        "{what}: expected `{check}` to fail; failed: {failed:?}"
    );
    let (_, hint) = found.unwrap();
    assert!(
        hint.contains(hint_has),
        "{what}: hint `{hint}` lacks `{hint_has}`"
    );
}

#[test]
fn verify_passes_after_apply_and_names_each_breakage() {
    let lab = lab_or_skip!();
    let s = Scenario::new(lab, Suite::Bookworm);
    let apply = s.apply_fresh();
    assert_ok("first apply", &apply);
    assert!(
        text(&apply.stdout).contains("verify: all"),
        "apply ends with verify, on stdout:\n{}",
        text(&apply.stdout)
    );
    assert_eq!(failures(&s), vec![], "fresh deployment");
    // The cluster the package created started with tandem's listen_addresses and memory
    // settings (createcluster.d): a reload, no restart.
    let output = format!("{}{}", text(&apply.stdout), text(&apply.stderr));
    assert!(
        output.contains("handler reload postgresql ok") && !output.contains("restarted for"),
        "a fresh db server needs no PostgreSQL restart:\n{output}"
    );

    s.sudo_ok(&s.db, "systemctl stop postgresql");
    assert_fails(
        &s,
        "PostgreSQL stopped",
        "login with the app's credentials",
        "PostgreSQL is running",
    );
    s.sudo_ok(&s.db, "systemctl start postgresql");
    assert_eq!(failures(&s), vec![]);

    s.sudo_ok(&s.db, "ufw allow 5432/tcp");
    assert_fails(
        &s,
        "5432 open to all",
        "5432 open to the app servers only",
        "ufw delete",
    );
    assert_fails(
        &s,
        "5432 open to all",
        "5432 closed to this machine",
        "ufw status",
    );
    s.sudo_ok(&s.db, "ufw delete allow 5432/tcp");
    assert_eq!(failures(&s), vec![]);

    s.sudo_ok(&s.db, "sed -i '/scram-sha-256$/{/^host    timesheet/d}' /etc/postgresql/*/main/pg_hba.conf && systemctl reload postgresql");
    assert_fails(
        &s,
        "pg_hba line removed",
        "pg_hba.conf holds only the expected lines",
        "tandem apply",
    );
    assert_fails(
        &s,
        "pg_hba line removed",
        "login with the app's credentials",
        "pg_hba.conf has no line",
    );
    assert_ok("apply restores pg_hba", &s.run(&["apply", "--yes"]));

    // Settings of tandem's overridden by a file read after its conf.d: ALTER SYSTEM's
    // postgresql.auto.conf, and a line appended to postgresql.conf (below the include).
    // verify names them; plan shows, and apply makes, the change that takes them out.
    s.sudo_ok(
        &s.db,
        "runuser -u postgres -- psql -X -q -c \"ALTER SYSTEM SET listen_addresses = '*'\"",
    );
    s.sudo_ok(&s.db, "echo \"shared_buffers = '64MB'\" >>/etc/postgresql/15/main/postgresql.conf && systemctl restart postgresql");
    assert_fails(
        &s,
        "settings overridden by hand",
        "PostgreSQL takes tandem's settings from its conf.d",
        "database.settings",
    );
    let plan = s.run(&["plan"]);
    let shown = text(&plan.stdout);
    assert!(
        shown.contains("~ ALTER SYSTEM RESET listen_addresses")
            && shown.contains("~ /etc/postgresql/15/main/postgresql.conf: comment out line"),
        "the plan takes both out:\n{shown}"
    );
    let apply = s.run(&["apply", "--yes"]);
    assert_ok("apply takes the overrides out", &apply);
    let output = format!("{}{}", text(&apply.stdout), text(&apply.stderr));
    assert!(
        output.contains("restarted for"),
        "listen_addresses and shared_buffers need the restart:\n{output}"
    );
    assert_eq!(failures(&s), vec![], "tandem's settings in effect again");
    let conf = s.sudo_ok(&s.db, "tail -n 1 /etc/postgresql/15/main/postgresql.conf");
    assert!(
        conf.starts_with("# disabled by tandem (overrides its conf.d): shared_buffers"),
        "{conf}"
    );

    // Settings PostgreSQL refuses (a reload would keep the old values, and the next restart
    // would fail). One tandem can tell from the server's pg_settings: the plan says so and
    // apply stops before writing. One only PostgreSQL can tell (a time zone it does not
    // have): its own check (postgres -C) stops the reload, and the drop-in is put back.
    s.edit_config(
        "  extensions: []\n",
        "  extensions: []\n  settings: {work_mem: a b}\n",
    );
    let plan = s.run(&["plan"]);
    assert!(
        text(&plan.stdout).contains("! PostgreSQL refuses these settings")
            && text(&plan.stdout).contains("work_mem = 'a b': not a number"),
        "{}",
        text(&plan.stdout)
    );
    for (setting, says) in [
        ("work_mem: a b", "work_mem = 'a b': not a number"),
        (
            "log_timezone: Not/AZone",
            "invalid value for parameter \"log_timezone\"",
        ),
    ] {
        s.edit_config(
            "  settings: {work_mem: a b}\n",
            &format!("  settings: {{{setting}}}\n"),
        );
        let refused = s.run(&["apply", "--yes"]);
        let output = format!("{}{}", text(&refused.stdout), text(&refused.stderr));
        assert!(!refused.status.success(), "apply took {setting}:\n{output}");
        assert!(output.contains(says), "{setting}:\n{output}");
        let dropin = s.sudo_ok(
            &s.db,
            "cat /etc/postgresql/15/main/conf.d/10-tandem-tuning.conf",
        );
        let value = setting.split(": ").nth(1).unwrap();
        assert!(
            !dropin.contains(value),
            "the refused drop-in stayed:\n{dropin}"
        );
        s.edit_config(
            &format!("  settings: {{{setting}}}\n"),
            "  settings: {work_mem: a b}\n",
        );
    }
    s.sudo_ok(&s.db, "systemctl restart postgresql");
    s.edit_config("  settings: {work_mem: a b}\n", "");
    assert_eq!(
        failures(&s),
        vec![],
        "the refused settings left nothing behind"
    );

    s.sudo_ok(&s.app, "sed -i 's/^DJANGO_ALLOWED_HOSTS=.*/DJANGO_ALLOWED_HOSTS=other.example/' /etc/timesheet/env && systemctl restart gunicorn-timesheet.service");
    assert_fails(
        &s,
        "host missing from ALLOWED_HOSTS",
        "nginx answers http://timesheet.lab.test",
        "ALLOWED_HOSTS",
    );
    assert_ok("apply restores the env file", &s.run(&["apply", "--yes"]));

    s.sudo_ok(
        &s.app,
        "systemctl stop gunicorn-timesheet.socket gunicorn-timesheet.service",
    );
    assert_fails(
        &s,
        "gunicorn stopped",
        "gunicorn-timesheet.socket active",
        "systemctl start",
    );
    s.sudo_ok(&s.app, "systemctl start gunicorn-timesheet.socket");

    // gunicorn's idle unit started by hand on the live release, as a switch cut off midway
    // leaves them: verify names it, the plan finishes the switch, apply leaves one serving.
    s.sudo_ok(
        &s.app,
        "ln -sfn \"$(readlink /srv/timesheet/current)\" /srv/timesheet/next && systemctl start gunicorn-timesheet.service gunicorn-timesheet-bridge.service",
    );
    assert_fails(
        &s,
        "two gunicorn units at once",
        "one gunicorn serves",
        "tandem restart gunicorn",
    );
    let plan = text(&s.run(&["plan"]).stdout);
    assert!(
        plan.contains("~ gunicorn: one unit on") && plan.contains("run at once"),
        "{plan}"
    );
    assert_ok("apply finishing the switch", &s.run(&["apply", "--yes"]));
    let serving = s.sudo_ok(
        &s.app,
        "systemctl is-active gunicorn-timesheet.service gunicorn-timesheet-bridge.service | grep -c '^active$'; true",
    );
    assert_eq!(serving.trim(), "1", "one unit serves after the apply");
    s.assert_converged("after the switch was finished");

    s.sudo_ok(&s.app, "printf 'PasswordAuthentication yes\\nKbdInteractiveAuthentication yes\\nAuthenticationMethods any\\n' >/etc/ssh/sshd_config.d/00-aaa.conf && systemctl reload ssh");
    assert_fails(
        &s,
        "password SSH re-enabled",
        "SSH refuses passwords",
        "PasswordAuthentication",
    );
    s.sudo_ok(
        &s.app,
        "rm /etc/ssh/sshd_config.d/00-aaa.conf && systemctl reload ssh",
    );
    assert_eq!(failures(&s), vec![], "everything put back");
    migrations_checked_without_and_with_django(&s);
}

/// verify compares `django_migrations` with the rows the release recorded going live (no
/// Django start); a migration unapplied by hand fails it, and so does one added to the live
/// release by hand (the record is stale then: Django itself is asked).
fn migrations_checked_without_and_with_django(s: &Scenario) {
    let psql = |sql: &str| {
        format!(
            "cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d timesheet -c \"{sql}\""
        )
    };
    let record = "/srv/timesheet/current/.tandem-migrations";
    let recorded = s.sudo_ok(&s.app, &format!("cat {record}"));
    assert!(
        recorded.contains(r#"["entries", "0001_initial"]"#),
        "the release recorded its migrations: {recorded}"
    );

    s.sudo_ok(
        &s.db,
        &psql("DELETE FROM django_migrations WHERE app = 'entries' AND name = '0001_initial'"),
    );
    assert_fails(
        s,
        "a migration unapplied by hand",
        "no unapplied migrations",
        "tandem deploy",
    );
    let detail = verify_detail(s, "no unapplied migrations");
    assert!(
        detail.contains("entries.0001_initial"),
        "names the missing migration: {detail}"
    );
    s.sudo_ok(
        &s.db,
        &psql("INSERT INTO django_migrations (app, name, applied) VALUES ('entries', '0001_initial', now())"),
    );
    assert_eq!(failures(s), vec![], "the row put back");

    let added = "/srv/timesheet/current/entries/migrations/0002_by_hand.py";
    s.sudo_ok(
        &s.app,
        &format!(
            "printf 'from django.db import migrations\\n\\nclass Migration(migrations.Migration):\\n    dependencies = [(\"entries\", \"0001_initial\")]\\n    operations = []\\n' >{added} && chown timesheet: {added}"
        ),
    );
    assert_fails(
        s,
        "a migration added to the live release by hand",
        "no unapplied migrations",
        "tandem deploy",
    );
    s.sudo_ok(&s.app, &format!("rm {added}"));
    assert_eq!(failures(s), vec![], "the added migration removed");

    // A release from before records (or a lost record): Django is asked, and agrees.
    s.sudo_ok(&s.app, &format!("rm {record}"));
    assert_eq!(failures(s), vec![], "no record: Django's own check");
}

/// The detail of check `name` in `tandem verify --json`.
fn verify_detail(s: &Scenario, name: &str) -> String {
    let out = s.run(&["verify", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("verify --json");
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
        .and_then(|c| c["detail"].as_str())
        .unwrap_or_default()
        .to_string()
}
