//! Backups end to end with real pgBackRest: a db server archiving WAL to an encrypted
//! repository on a `role: backup` server, base backups taken from there, and restores drilled
//! (into a scratch cluster and in place) to a noted moment; then the faults: a restore that
//! fails, an unreachable repository, a passphrase that does not open it, a lost cluster.

mod support;

use std::time::{Duration, Instant};

use support::lab::Suite;
use support::scenario::{BACKUP_KEY, Example, Scenario, assert_ok, fetch, text};

/// The rows of the drill table, as the app's own role reads them through Django.
fn rows(s: &Scenario) -> String {
    s.manage_shell(
        "from django.db import connection\n\
         c = connection.cursor()\n\
         c.execute(\"select coalesce(string_agg(n::text, ',' order by n), 'none') from drill\")\n\
         print('rows=' + c.fetchone()[0])",
    )
    .lines()
    .find_map(|l| l.strip_prefix("rows=").map(str::to_string))
    .unwrap_or_default()
}

/// SQL through the app's own role (Django's connection), committed.
fn app_sql(s: &Scenario, sql: &str) -> String {
    s.manage_shell(&format!(
        "from django.db import connection\n\
         c = connection.cursor()\n\
         c.execute(\"{sql}\")\n\
         print('out=' + (str(c.fetchone()[0]) if c.description else ''))"
    ))
    .lines()
    .find_map(|l| l.strip_prefix("out=").map(str::to_string))
    .unwrap_or_default()
}

fn site_serves(s: &Scenario) {
    let (status, _) = fetch(&s.outsider, &s.app.ip, "timesheet.lab.test", "/");
    assert_eq!(status, "200", "the site does not serve");
}

#[test]
fn the_drill_restores_the_rows_of_a_noted_moment() {
    let lab = lab_or_skip!();
    let s = Scenario::with_backup(lab, Suite::Bookworm, Example::Timesheet);
    let vault = s.backup.as_ref().unwrap();
    let out = s.apply_fresh();
    assert_ok("first apply", &out);
    let applied = text(&out.stdout) + &text(&out.stderr);
    assert!(!applied.contains(BACKUP_KEY), "the passphrase was echoed");
    // The repository is encrypted with the passphrase, which only the backup server holds.
    let conf = s.sudo_ok(
        vault,
        "stat -c '%a %U:%G' /etc/pgbackrest.conf; grep -c cipher-pass /etc/pgbackrest.conf",
    );
    assert_eq!(conf.trim(), "640 root:postgres\n1", "{conf}");
    let db_conf = s.sudo_ok(&s.db, "grep -c cipher /etc/pgbackrest.conf || true");
    assert_eq!(db_conf.trim(), "0", "the db server holds the passphrase");
    let plain = s.sudo_ok(
        vault,
        "grep -rl 'CREATE TABLE' /var/lib/pgbackrest/backup 2>/dev/null | head -n 1; echo end",
    );
    assert_eq!(
        plain.trim(),
        "end",
        "repository files readable without the key: {plain}"
    );
    let verify = s.run(&["verify"]);
    assert_ok("verify after the first apply", &verify);
    let report = text(&verify.stdout);
    for check in [
        "backup repository reachable",
        "recent backup",
        "WAL archiving works",
        "backup timer on",
    ] {
        assert!(report.contains(check), "verify lacks `{check}`:\n{report}");
    }

    // Rows through the app's own role, then a backup.
    app_sql(&s, "create table drill (n int primary key)");
    app_sql(&s, "insert into drill values (1), (2), (3)");
    let backup = s.run(&["backup"]);
    if !backup.status.success() {
        let journal = s.sudo_ok(
            vault,
            "journalctl -u tandem-backup-timesheet --no-pager -n 40; tail -n 40 /var/log/pgbackrest/*",
        );
        panic!(
            "tandem backup failed:\n{}\non the backup server:\n{journal}",
            text(&backup.stderr)
        );
    }
    assert!(
        text(&backup.stdout).contains("backup"),
        "{}",
        text(&backup.stdout)
    );
    let list = s.run(&["backup", "list"]);
    assert_ok("backup list", &list);
    let listed = text(&list.stdout);
    assert!(
        listed.matches("full").count() + listed.matches("incr").count() >= 2,
        "two backups expected (apply's first, then tandem backup):\n{listed}"
    );

    // A broken-into db server cannot destroy its backups: as postgres there, with the key
    // pgBackRest uses, the repository's forced command refuses what deletes or points
    // elsewhere; the backups are all still listed after.
    for (attempt, refused) in [
        (
            "pgbackrest --stanza=timesheet stop >/dev/null 2>&1\n\
             pgbackrest --stanza=timesheet --force stanza-delete; r=$?\n\
             pgbackrest --stanza=timesheet start >/dev/null 2>&1\n\
             exit $r",
            "not allowed from the database server",
        ),
        (
            "ssh -F /var/lib/postgresql/.ssh/config -o BatchMode=yes postgres@$(sed -n 's/^repo1-host=//p' /etc/pgbackrest.conf) \
             pgbackrest --stanza=timesheet --remote-type=repo --repo1-path=/var/lib/postgresql archive-push:remote",
            "--repo1-path",
        ),
        (
            "ssh -F /var/lib/postgresql/.ssh/config -o BatchMode=yes postgres@$(sed -n 's/^repo1-host=//p' /etc/pgbackrest.conf) \
             pgbackrest --stanza=timesheet expire",
            "expire",
        ),
    ] {
        let out = s.sudo(
            &s.db,
            &format!(
                "cd /tmp && runuser -u postgres -- sh -s 2>&1 <<'ATTEMPT'\n{attempt}\nATTEMPT\n"
            ),
        );
        let said = text(&out.stdout) + &text(&out.stderr);
        assert!(
            !out.status.success(),
            "`{attempt}` ran on the repository:\n{said}"
        );
        assert!(said.contains(refused), "`{attempt}`:\n{said}");
    }
    let still = s.run(&["backup", "list"]);
    assert_ok("backup list after the refused attempts", &still);
    let labels = |list: &str| -> Vec<String> {
        list.lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.starts_with("20"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        labels(&text(&still.stdout)),
        labels(&listed),
        "the backups changed"
    );

    // More rows, the moment, then a row after it and a dropped table.
    app_sql(&s, "insert into drill values (4), (5), (6)");
    let moment = app_sql(&s, "select now()::text");
    assert!(moment.contains('+'), "no moment noted: {moment}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    app_sql(&s, "insert into drill values (7)");
    app_sql(&s, "drop table drill");

    // Into the scratch cluster first: the running database keeps its (dropped) state.
    let scratch = s.run(&["restore", "--time", &moment]);
    assert_ok("restore into the scratch cluster", &scratch);
    let seen = s.sudo_ok(
        &s.db,
        "runuser -u postgres -- psql -XAtq -p 5439 -d timesheet -c \"select string_agg(n::text, ',' order by n) from drill\"",
    );
    assert_eq!(seen.trim(), "1,2,3,4,5,6", "scratch cluster rows");
    assert!(
        s.sudo(
            &s.db,
            "runuser -u postgres -- psql -XAtq -d timesheet -c 'select 1 from drill'"
        )
        .status
        .code()
            != Some(0),
        "the running database was changed by a scratch restore"
    );

    // Then in place: the rows are exactly those of the moment, the site serves.
    let refused = s.run(&["restore", "--time", &moment, "--in-place"]);
    assert!(
        !refused.status.success(),
        "--in-place without --yes went ahead"
    );
    let in_place = s.run(&["restore", "--time", &moment, "--in-place", "--yes"]);
    assert_ok("restore in place", &in_place);
    assert_eq!(rows(&s), "1,2,3,4,5,6");
    site_serves(&s);
    s.assert_converged("after the in-place restore");
    // Archiving goes on from the new timeline.
    let verify = s.run(&["verify"]);
    assert_ok("verify after the restore", &verify);
}

#[test]
fn an_unreachable_repository_fails_verify_but_not_apply_and_a_failed_restore_changes_nothing() {
    let lab = lab_or_skip!();
    let s = Scenario::with_backup(lab, Suite::Bookworm, Example::Timesheet);
    let vault = s.backup.as_ref().unwrap();
    assert_ok("first apply", &s.apply_fresh());
    app_sql(&s, "create table drill (n int primary key)");
    app_sql(&s, "insert into drill values (1), (2)");

    // A restore to a moment before any backup: pgBackRest or the recovery refuses, and the
    // running database is what it was.
    let failed = s.run(&[
        "restore",
        "--time",
        "2020-01-01 00:00:00+00",
        "--in-place",
        "--yes",
    ]);
    assert!(!failed.status.success(), "a restore to 2020 succeeded");
    let said = text(&failed.stderr);
    assert!(
        said.contains("nothing was changed") || said.contains("put back as it was"),
        "{said}"
    );
    assert_eq!(rows(&s), "1,2");
    site_serves(&s);

    // The repository unreachable from the db server (a firewall in between).
    s.sudo_ok(
        vault,
        &format!("iptables -I INPUT -s {} -j REJECT", s.db.ip),
    );
    let verify = s.run(&["verify"]);
    assert!(
        !verify.status.success(),
        "verify passed with the repository unreachable"
    );
    let report = text(&verify.stdout);
    let line = report
        .lines()
        .find(|l| l.contains("backup repository reachable"))
        .unwrap_or_else(|| panic!("no reachability check:\n{report}"));
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(report.contains("firewall"), "no hint:\n{report}");
    let apply = s.run(&["apply", "--yes"]);
    assert_ok("apply with the repository unreachable", &apply);
    site_serves(&s);
    s.sudo_ok(
        vault,
        &format!("iptables -D INPUT -s {} -j REJECT", s.db.ip),
    );
    // PostgreSQL's archiver retries a failed segment on its own schedule (up to a minute
    // after three failures): a new segment wakes it, and verify passes once it got through.
    let got_through = "su postgres -c \"psql -Atqc 'select pg_switch_wal() is not null and \
         coalesce(last_archived_time > last_failed_time, true) from pg_stat_archiver'\" \
         | grep -qx t";
    let deadline = Instant::now() + Duration::from_secs(120);
    while !s.sudo(&s.db, got_through).status.success() {
        assert!(
            Instant::now() < deadline,
            "the archiver never got through once the repository was reachable again"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_ok("verify once reachable again", &s.run(&["verify"]));

    // Another passphrase cannot open the backups already there: refused, the old one kept.
    let rekeyed = s
        .tandem(&["apply", "--yes"])
        .env("TANDEM_BACKUP_KEY", "an0ther passphrase")
        .output()
        .unwrap();
    assert!(
        !rekeyed.status.success(),
        "a new passphrase was written over the repository's"
    );
    let said = text(&rekeyed.stdout) + &text(&rekeyed.stderr);
    assert!(said.contains("cannot re-encrypt"), "{said}");
    assert!(
        !said.contains("an0ther passphrase"),
        "the passphrase was echoed"
    );
    assert_ok("a backup with the kept passphrase", &s.run(&["backup"]));

    // Disaster: the db server's cluster is lost and a fresh, empty one takes its place (its
    // own system identifier, none of tandem's files). apply provisions it again (the app has
    // no tables: its checks fail); restore in place brings the rows back from the repository.
    s.sudo_ok(
        &s.db,
        "pg_dropcluster --stop 15 main && pg_createcluster 15 main --start >/dev/null",
    );
    let reprovisioned = s.run(&["apply", "--yes"]);
    let said = text(&reprovisioned.stdout) + &text(&reprovisioned.stderr);
    assert!(
        said.contains("role timesheet: create"),
        "not provisioned again:\n{said}"
    );
    let recovered = s.run(&["restore", "--in-place", "--yes"]);
    assert_ok("restore in place onto the fresh cluster", &recovered);
    assert_eq!(rows(&s), "1,2");
    site_serves(&s);
    assert_ok("verify after the recovery", &s.run(&["verify"]));
}
