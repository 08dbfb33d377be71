//! The database cluster on real servers, under a load of writes through Django: a running
//! single-db deployment gets a standby and a witness (converted in place: no acknowledged row
//! lost, the writes that failed meanwhile counted), then the failover drill: the primary's
//! power is cut, the standby takes over with no tandem run, every acknowledged write is still
//! there (`database.synchronous: true`), and the old primary, powered on again, rejoins as the
//! standby; plan is clean and verify passes again. Backups follow the primary: the repository
//! on a backup server takes them from the standby, the new primary archives after the
//! failover, and a restore of the latest moment (from a backup taken before it) has every
//! acknowledged row.

mod support;

use std::time::{Duration, Instant};

use support::lab::Suite;
use support::scenario::{Example, Scenario, assert_ok, text};

const WRITER: &str = include_str!("drill/writer.py");

/// The writer's log on the app server: (time, acknowledged id) of each write that succeeded,
/// and the times of those that failed.
fn writes(s: &Scenario) -> (Vec<(f64, u64)>, Vec<f64>) {
    writes_in(s, "/tmp/drill.log")
}

fn writes_in(s: &Scenario, log: &str) -> (Vec<(f64, u64)>, Vec<f64>) {
    let log = s.sudo_ok(&s.app, &format!("cat {log} 2>/dev/null || true"));
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for line in log.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["ok", t, id] => ok.push((t.parse().unwrap(), id.parse().unwrap())),
            ["fail", t, ..] => failed.push(t.parse().unwrap()),
            _ => {}
        }
    }
    (ok, failed)
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Starts the writer on the app server for `seconds` (a running one stopped first), with the
/// env file as it is now; its log is kept.
fn start_writer(s: &Scenario, seconds: u32) {
    s.sudo_ok(&s.app, "pkill -f /tmp/writer.py || true");
    spawn_writer(s, seconds, 0, "/tmp/drill.log");
}

/// A writer beside the others: `retries` tries again per write, logging to `log`.
fn spawn_writer(s: &Scenario, seconds: u32, retries: u32, log: &str) {
    let p = s.project();
    s.sudo_ok(&s.app, &format!("cat >/tmp/writer.py <<'PY'\n{WRITER}PY"));
    s.sudo_ok(
        &s.app,
        &format!(
            "cd /srv/{p}/current && set -a && . /etc/{p}/env && set +a && \
             DRILL_SECONDS={seconds} DRILL_RETRIES={retries} DRILL_LOG={log} nohup runuser -u {p} -- ./venv/bin/python manage.py shell \
             -c 'exec(open(\"/tmp/writer.py\").read())' >{log}.out 2>&1 &"
        ),
    );
}

/// How many of `ids` the database has, asked through Django on the app server.
fn present(s: &Scenario, ids: &[u64]) -> usize {
    let list: Vec<String> = ids.iter().map(u64::to_string).collect();
    let found = s.manage_shell(&format!(
        "from entries.models import Entry\nprint('present', Entry.objects.filter(id__in=[{}]).count())",
        list.join(",")
    ));
    found
        .lines()
        .find_map(|l| l.strip_prefix("present "))
        .unwrap_or_else(|| panic!("no count: {found}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_running_database_becomes_a_cluster_that_fails_over_under_writes() {
    let lab = lab_or_skip!();
    // Two app servers (both reach whichever db server is primary; the writes go through
    // app1's Django) and a backup server.
    let s = Scenario::with_apps_and_backup(lab.clone(), Suite::Bookworm, Example::Timesheet, 2);
    s.edit_config(
        "  extensions: []\n",
        "  extensions: []\n  synchronous: true\n",
    );
    assert_ok("apply with one db server", &s.apply_fresh());

    // A running single-db deployment under writes gets a standby and a witness.
    start_writer(&s, 900);
    wait_for(
        "the writer's first 50 writes",
        Duration::from_secs(60),
        || writes(&s).0.len() >= 50,
    );
    let mut more = s.lab.servers(2, Suite::Bookworm);
    let witness = more.pop().unwrap();
    let db2 = more.pop().unwrap();
    s.edit_config(
        "  - name: app1\n",
        &format!(
            "  - name: db2\n    role: db\n    ssh: deploy@{}\n    fqdn: db2.lab.test\n    internal_ip: {}\n\
             \x20 - name: witness\n    role: witness\n    ssh: deploy@{}\n    fqdn: witness.lab.test\n    internal_ip: {}\n\
             \x20 - name: app1\n",
            db2.name, db2.ip, witness.name, witness.ip
        ),
    );
    let plan = s.run(&["plan", "--bootstrap-user", "root"]);
    let planned = text(&plan.stdout);
    assert!(
        planned.contains("db hands PostgreSQL to Patroni, seeding cluster")
            && planned.contains("a few seconds without the database")
            && planned.contains("db2 joins cluster"),
        "the plan says what the conversion does:\n{planned}{}",
        text(&plan.stderr)
    );
    let started = Instant::now();
    let converting = now();
    assert_ok("apply adding the standby and the witness", &s.apply_fresh());
    let converted = now();
    // The env file now names both db servers: gunicorn was restarted by the apply; the writer,
    // a process of its own, is restarted here the same way.
    start_writer(&s, 900);
    let mut report = format!(
        "conversion of a running db server into a cluster (apply): {:.1} s\n",
        started.elapsed().as_secs_f64()
    );
    let (ok, failed) = writes(&s);
    let during: Vec<f64> = failed
        .iter()
        .copied()
        .filter(|t| *t >= converting && *t <= converted)
        .collect();
    report.push_str(&format!(
        "writes failed during the conversion: {} (between {:.1} s and {:.1} s into it)\n",
        during.len(),
        during.first().map_or(0.0, |t| t - converting),
        during.last().map_or(0.0, |t| t - converting)
    ));
    let acked: Vec<u64> = ok.iter().map(|(_, id)| *id).collect();
    assert_eq!(
        present(&s, &acked),
        acked.len(),
        "rows acknowledged before and during the conversion are all there"
    );
    assert_ok(
        "plan after the conversion",
        &s.run(&["plan", "--detailed-exitcode"]),
    );
    let verify = s.run(&["verify"]);
    assert_ok("verify", &verify);
    let out = text(&verify.stdout);
    for check in [
        "the database cluster has one primary (db)",
        "db2: standby streams from the primary (streaming",
        "db2: synchronous standby (database.synchronous)",
        "witness: etcd member of the cluster's consensus",
        "witness: 2380 (etcd peers) closed to this machine",
        "db2: 8008 (Patroni) closed to this machine",
        "db2: backup repository reachable",
        "db2: WAL archiving works",
        "app2: login with the app's credentials",
    ] {
        assert!(out.contains(check), "verify lacks `{check}`:\n{out}");
    }
    // A backup of the cluster is taken from the standby (pgBackRest waits for its replay).
    let backing = Instant::now();
    assert_ok("backup of the cluster", &s.run(&["backup"]));
    report.push_str(&format!(
        "backup (incremental, from the standby): {:.1} s\n",
        backing.elapsed().as_secs_f64()
    ));
    let vault = s.backup.as_ref().unwrap();
    let log = s.sudo_ok(vault, "cat /var/log/pgbackrest/timesheet-backup.log");
    assert!(
        log.contains("replay on the standby"),
        "the backup was not taken from the standby:\n{log}"
    );
    let status = s.run(&["db", "status"]);
    assert_ok("db status", &status);
    let shown = text(&status.stdout);
    assert!(
        shown.contains("cluster timesheet: healthy")
            && shown.contains("(synchronous standby: db2)"),
        "{shown}"
    );

    // `tandem status` counts the standby's PostgreSQL (online,recovery), Patroni and etcd.
    let overall = s.run(&["status"]);
    assert_ok("status of the cluster's servers", &overall);
    assert!(
        text(&overall.stdout).contains("etcd active"),
        "{}",
        text(&overall.stdout)
    );

    // The primary's power is cut under the same writes.
    let cut = now();
    s.db.poweroff();
    wait_for(
        "a write after the primary's power was cut",
        Duration::from_secs(90),
        || writes(&s).0.iter().any(|(t, _)| *t > cut + 0.5),
    );
    let (ok, failed) = writes(&s);
    let first = ok.iter().map(|(t, _)| *t).find(|t| *t > cut + 0.5).unwrap();
    report.push_str(&format!(
        "power cut to first acknowledged write: {:.1} s; writes failed meanwhile: {}\n",
        first - cut,
        failed.iter().filter(|t| **t >= cut).count()
    ));
    let down = s.run(&["db", "status"]);
    assert_eq!(
        down.status.code(),
        Some(1),
        "db status says a member is down"
    );
    assert!(
        text(&down.stdout).contains("db2              primary"),
        "{}",
        text(&down.stdout)
    );
    // Every acknowledged write is on the new primary (synchronous mode).
    let acked: Vec<u64> = ok.iter().map(|(_, id)| *id).collect();
    assert_eq!(
        present(&s, &acked),
        acked.len(),
        "acknowledged writes lost in the failover"
    );
    report.push_str(&format!(
        "acknowledged writes: {}, all present\n",
        acked.len()
    ));

    // The old primary is powered on: it rejoins as the standby, nothing to apply.
    let back = Instant::now();
    s.db.start();
    wait_for(
        "the old primary rejoining as a streaming standby",
        Duration::from_secs(180),
        || {
            let v = s.run(&["verify"]);
            v.status.success()
                && text(&v.stdout).contains("the database cluster has one primary (db2)")
        },
    );
    report.push_str(&format!(
        "power on to verify passing with db as the standby: {:.1} s\n",
        back.elapsed().as_secs_f64()
    ));
    assert_ok(
        "plan after the failover",
        &s.run(&["plan", "--detailed-exitcode"]),
    );
    let (ok_end, _) = writes(&s);
    assert!(
        ok_end.len() > ok.len(),
        "the writes went on after the failover"
    );

    // Archiving followed the primary: the latest moment, restored from the backup taken
    // before the failover (into a scratch PostgreSQL on the primary, db2), has every row
    // acknowledged before the restore began.
    let acked: Vec<u64> = ok_end.iter().map(|(_, id)| *id).collect();
    let restoring = Instant::now();
    let restored = s.run(&["restore"]);
    assert_ok("restore of the cluster's latest moment", &restored);
    assert!(
        text(&restored.stdout).contains("db2: restored to the latest archived moment"),
        "{}",
        text(&restored.stdout)
    );
    let list: Vec<String> = acked.iter().map(u64::to_string).collect();
    let found = s.sudo_ok(
        &db2,
        &format!(
            "runuser -u postgres -- psql -XAtq -p 5439 -d timesheet -c 'select count(*) from entries_entry where id in ({})'",
            list.join(",")
        ),
    );
    assert_eq!(
        found.trim(),
        acked.len().to_string(),
        "rows acknowledged before the restore, across the failover, in the restored database"
    );
    s.sudo_ok(&db2, "systemctl stop tandem-restore-timesheet");
    report.push_str(&format!(
        "restore of the latest moment across the failover (scratch, on db2): {:.1} s, {} acknowledged rows all there\n",
        restoring.elapsed().as_secs_f64(),
        acked.len()
    ));

    // In place, to a moment after the failover: the writes stop (as the app would be, which
    // the restore stops), a moment is noted, rows written after it; the cluster is rebuilt
    // around its primary from the restored data, the standby copied from it. Every row of
    // the moment is there, none after it, and the cluster is whole again.
    s.sudo_ok(&s.app, "pkill -f /tmp/writer.py || true");
    std::thread::sleep(Duration::from_millis(500));
    let (ok, _) = writes(&s);
    let acked: Vec<u64> = ok.iter().map(|(_, id)| *id).collect();
    let moment = s
        .sudo_ok(
            &db2,
            "runuser -u postgres -- psql -XAtq -d timesheet -c 'select now()::text'",
        )
        .trim()
        .to_string();
    std::thread::sleep(Duration::from_millis(1100));
    let after = s.manage_shell(
        "from entries.models import Entry\n\
         print('after', ' '.join(str(Entry.objects.create(person='after', project='x', hours=1, day='2026-01-01').id) for _ in range(3)))",
    );
    let after: Vec<u64> = after
        .lines()
        .find_map(|l| l.strip_prefix("after "))
        .unwrap()
        .split_whitespace()
        .map(|id| id.parse().unwrap())
        .collect();
    let in_place = Instant::now();
    let restored = s.run(&["restore", "--in-place", "--yes", "--time", &moment]);
    assert_ok("in-place restore of the cluster", &restored);
    report.push_str(&format!(
        "in-place restore of the cluster to a moment after the failover (rebuilt around db2): {:.1} s\n",
        in_place.elapsed().as_secs_f64()
    ));
    assert_eq!(
        present(&s, &acked),
        acked.len(),
        "rows of the moment in the restored cluster"
    );
    assert_eq!(present(&s, &after), 0, "rows after the moment are gone");
    wait_for(
        "verify after the in-place restore",
        Duration::from_secs(120),
        || {
            let v = s.run(&["verify"]);
            v.status.success()
                && text(&v.stdout).contains("the database cluster has one primary (db2)")
        },
    );
    assert_ok(
        "plan after the in-place restore",
        &s.run(&["plan", "--detailed-exitcode"]),
    );
    let mark = s.sudo_ok(
        &db2,
        &format!(
            "ETCDCTL_API=3 etcdctl --endpoints=http://{}:2379 get --print-value-only /tandem/timesheet/restoring",
            s.db.ip
        ),
    );
    assert_eq!(
        mark.trim(),
        "",
        "the restore's mark is gone once the cluster leads again"
    );
    // A restore that cannot be done (a moment before any backup) changes nothing: the cluster
    // is rebuilt on the data it had, every row still there.
    let failing = Instant::now();
    let refused = s.run(&[
        "restore",
        "--in-place",
        "--yes",
        "--time",
        "2020-01-01 00:00:00+00",
    ]);
    assert!(
        !refused.status.success()
            && text(&refused.stderr).contains("the cluster runs again on the data it had"),
        "{}{}",
        text(&refused.stdout),
        text(&refused.stderr)
    );
    report.push_str(&format!(
        "an in-place restore that fails (a moment before any backup): the cluster back on its data in {:.1} s\n",
        failing.elapsed().as_secs_f64()
    ));
    assert_eq!(
        present(&s, &acked),
        acked.len(),
        "rows after a failed restore"
    );
    wait_for(
        "verify after the failed restore",
        Duration::from_secs(120),
        || s.run(&["verify"]).status.success(),
    );
    start_writer(&s, 900);
    wait_for(
        "writes after the in-place restore",
        Duration::from_secs(60),
        || writes(&s).0.len() > ok.len() + 20,
    );

    // A planned switchover under the same writes puts the primary back on db; a second writer
    // that retries each failed write (up to 20 times, half a second apart) runs beside it.
    spawn_writer(&s, 60, 20, "/tmp/drill-retry.log");
    wait_for(
        "the retrying writer's first writes",
        Duration::from_secs(60),
        || writes_in(&s, "/tmp/drill-retry.log").0.len() >= 20,
    );
    let (_, failed_before) = writes(&s);
    let switching = Instant::now();
    let switched = s.run(&["db", "switchover"]);
    assert_ok("db switchover", &switched);
    let said = text(&switched.stdout);
    assert!(
        said.contains("db is the primary, db2 its standby"),
        "{said}"
    );
    report.push_str(&format!(
        "db switchover: {:.1} s; writes failed during it: {} (plain client), {} (retrying client)\n",
        switching.elapsed().as_secs_f64(),
        writes(&s).1.len() - failed_before.len(),
        writes_in(&s, "/tmp/drill-retry.log").1.len()
    ));
    let (retried_ok, _) = writes_in(&s, "/tmp/drill-retry.log");
    let retried: Vec<u64> = retried_ok.iter().map(|(_, id)| *id).collect();
    let refused = s.run(&["db", "switchover", "--to", "db"]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "switching to the primary is refused"
    );
    assert!(text(&refused.stderr).contains("db is the primary already"));
    wait_for(
        "verify after the switchover",
        Duration::from_secs(60),
        || {
            let v = s.run(&["verify"]);
            v.status.success()
                && text(&v.stdout).contains("the database cluster has one primary (db)")
        },
    );
    let (ok, _) = writes(&s);
    let acked: Vec<u64> = ok.iter().map(|(_, id)| *id).chain(retried).collect();
    assert_eq!(
        present(&s, &acked),
        acked.len(),
        "acknowledged writes lost in the switchover"
    );
    // etcd loses one member (the witness's): nothing changes for the writes.
    s.sudo_ok(&witness, "systemctl stop etcd");
    let one_lost = now();
    wait_for(
        "writes with one etcd member down",
        Duration::from_secs(30),
        || {
            writes(&s)
                .0
                .iter()
                .filter(|(t, _)| *t > one_lost + 10.0)
                .count()
                >= 20
        },
    );
    let (_, failed) = writes(&s);
    let failed_one = failed.iter().filter(|t| **t >= one_lost).count();
    assert_eq!(failed_one, 0, "no write fails while etcd keeps a majority");
    // It loses a second (db2's): no majority, so the primary stops taking writes rather than
    // risk a second primary (Patroni demotes it once its leader key cannot be renewed).
    s.sudo_ok(&db2, "systemctl stop etcd");
    let two_lost = now();
    wait_for(
        "the primary refusing writes without etcd's majority",
        Duration::from_secs(90),
        || writes(&s).1.iter().any(|t| *t > two_lost),
    );
    let refused_after = writes(&s)
        .1
        .iter()
        .copied()
        .find(|t| *t > two_lost)
        .unwrap()
        - two_lost;
    // The majority back: writes come back with no tandem run.
    s.sudo_ok(&witness, "systemctl start etcd");
    s.sudo_ok(&db2, "systemctl start etcd");
    let back = now();
    wait_for(
        "writes after etcd's majority came back",
        Duration::from_secs(120),
        || writes(&s).0.iter().any(|(t, _)| *t > back),
    );
    let writing_after = writes(&s)
        .0
        .iter()
        .map(|(t, _)| *t)
        .find(|t| *t > back)
        .unwrap()
        - back;
    report.push_str(&format!(
        "etcd: one member down, 0 writes failed; two down, writes refused {refused_after:.1} s after; majority back, writes again {writing_after:.1} s after\n"
    ));
    let (ok, _) = writes(&s);
    let acked: Vec<u64> = ok.iter().map(|(_, id)| *id).collect();
    assert_eq!(present(&s, &acked), acked.len(), "acknowledged writes lost");
    wait_for(
        "verify after etcd came back",
        Duration::from_secs(90),
        || s.run(&["verify"]).status.success(),
    );
    s.sudo_ok(&s.app, "pkill -f /tmp/writer.py || true");

    // A new database password: the replication roles' passwords derive from it, so apply sets
    // them on the primary as it writes Patroni's files; the standby streams again, and a
    // switchover (the old primary rewinds with its role) still works.
    let with_new_password = |args: &[&str]| {
        s.tandem(args)
            .env("TANDEM_DB_PASSWORD", "a new password, rotated")
            .output()
            .expect("running tandem")
    };
    // verify passes with the new password and names `primary` as the cluster's one primary.
    let verified_with_primary = |primary: &str| {
        let v = with_new_password(&["verify"]);
        v.status.success()
            && text(&v.stdout)
                .contains(&format!("the database cluster has one primary ({primary})"))
    };
    let plan = with_new_password(&["plan"]);
    assert!(
        text(&plan.stdout).contains(
            "~ cluster timesheet's roles tandem_replicator, tandem_rewind: password (derived from the database password)"
        ),
        "{}",
        text(&plan.stdout)
    );
    assert_ok(
        "apply with a new database password",
        &with_new_password(&["apply", "--yes"]),
    );
    wait_for(
        "the standby streaming with the new password",
        Duration::from_secs(60),
        || {
            let v = with_new_password(&["verify"]);
            v.status.success() && text(&v.stdout).contains("standby streams from the primary")
        },
    );
    assert_ok(
        "a switchover after the password change",
        &with_new_password(&["db", "switchover", "--to", "db2"]),
    );
    wait_for(
        "verify after the switchover with the new password",
        Duration::from_secs(60),
        || verified_with_primary("db2"),
    );
    let converged = with_new_password(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        converged.status.code(),
        Some(0),
        "the plan is clean with the new password:\n{}",
        text(&converged.stdout)
    );

    // An in-place restore cut off after it took the cluster's record out of etcd: its mark
    // names the member whose data must seed the cluster again (put here by hand, naming db2,
    // with both Patronis stopped). apply refuses to start the cluster from
    // the first db server's data instead, and says what to do; with the mark removed (the
    // restore given up), apply starts the cluster again from it.
    assert_ok(
        "a switchover back to db",
        &with_new_password(&["db", "switchover", "--to", "db"]),
    );
    wait_for("db as the primary again", Duration::from_secs(60), || {
        verified_with_primary("db")
    });
    let etcd = format!(
        "ETCDCTL_API=3 etcdctl --endpoints=http://{}:2379 --dial-timeout=2s --command-timeout=10s",
        s.db.ip
    );
    // Both at once, as a power cut of the pair would: db's configuration may still name db2 as
    // its synchronous standby (a seed's commit must not wait for it).
    let ssh_config = &s.lab.ssh_config;
    std::thread::scope(|both| {
        for name in [&db2.name, &s.db.name] {
            both.spawn(move || {
                let out = support::lab::ssh_stdin(
                    ssh_config,
                    &format!("deploy@{name}"),
                    "sudo sh -s",
                    "systemctl stop patroni@15-main.service",
                );
                assert!(
                    out.status.success(),
                    "stopping Patroni on {name}: {}",
                    text(&out.stderr)
                );
            });
        }
    });
    s.sudo_ok(
        &s.db,
        &format!(
            "{etcd} put /tandem/timesheet/restoring db2 && {etcd} del --prefix /service/timesheet/"
        ),
    );
    let refused = with_new_password(&["apply", "--yes"]);
    assert!(
        !refused.status.success()
            && text(&refused.stderr).contains("is being restored in place on db2"),
        "apply under a restore's mark:\n{}{}",
        text(&refused.stdout),
        text(&refused.stderr)
    );
    s.sudo_ok(&s.db, &format!("{etcd} del /tandem/timesheet/restoring"));
    assert_ok(
        "apply once the restore's mark is removed",
        &with_new_password(&["apply", "--yes"]),
    );
    wait_for(
        "the cluster started again from db",
        Duration::from_secs(120),
        || verified_with_primary("db"),
    );
    let converged = with_new_password(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        converged.status.code(),
        Some(0),
        "the plan is clean after the mark:\n{}",
        text(&converged.stdout)
    );

    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("cluster-drill.log"), &report).unwrap();
    drop((db2, witness));
}
