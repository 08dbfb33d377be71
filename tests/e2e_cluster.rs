//! The database cluster on real servers: two db servers and a witness from a fresh start
//! (apply, a clean plan, verify), then the failover drill under a load of writes through
//! Django: the primary's power is cut, the standby takes over with no tandem run, every
//! acknowledged write is still there (`database.synchronous: true`), and the old primary,
//! powered on again, rejoins as the standby; plan is clean and verify passes again.

mod support;

use std::time::{Duration, Instant};

use support::lab::Suite;
use support::scenario::{Scenario, assert_ok, text};

const WRITER: &str = include_str!("drill/writer.py");

/// The writer's log on the app server: (time, acknowledged id) of each write that succeeded,
/// and the times of those that failed.
fn writes(s: &Scenario) -> (Vec<(f64, u64)>, Vec<f64>) {
    let log = s.sudo_ok(&s.app, "cat /tmp/drill.log 2>/dev/null || true");
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

#[test]
fn a_cluster_fails_over_under_writes_and_the_old_primary_rejoins() {
    let lab = lab_or_skip!();
    let s = Scenario::new(lab.clone(), Suite::Bookworm);
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
    s.edit_config(
        "  extensions: []\n",
        "  extensions: []\n  synchronous: true\n",
    );
    s.add_config("acknowledge: [no-backup]\n");

    let started = Instant::now();
    assert_ok("apply on five fresh servers", &s.apply_fresh());
    let mut report = format!(
        "apply from fresh: {:.1} s\n",
        started.elapsed().as_secs_f64()
    );
    assert_ok("plan after apply", &s.run(&["plan", "--detailed-exitcode"]));
    let verify = s.run(&["verify"]);
    assert_ok("verify", &verify);
    let out = text(&verify.stdout);
    for check in [
        "the database cluster has one primary (db)",
        "db2: standby streams from the primary (streaming",
        "db2: synchronous standby (database.synchronous)",
        "witness: etcd member of the cluster's consensus",
    ] {
        assert!(out.contains(check), "verify lacks `{check}`:\n{out}");
    }

    // The load: Django writes through the app's own settings, in the background.
    let p = s.project();
    s.sudo_ok(
        &s.app,
        &format!("cat >/tmp/writer.py <<'PY'\n{WRITER}PY\nrm -f /tmp/drill.log"),
    );
    s.sudo_ok(
        &s.app,
        &format!(
            "cd /srv/{p}/current && set -a && . /etc/{p}/env && set +a && \
             DRILL_SECONDS=150 DRILL_LOG=/tmp/drill.log nohup runuser -u {p} -- ./venv/bin/python manage.py shell \
             -c 'exec(open(\"/tmp/writer.py\").read())' >/tmp/writer.out 2>&1 &"
        ),
    );
    wait_for(
        "the writer's first 100 writes",
        Duration::from_secs(60),
        || writes(&s).0.len() >= 100,
    );

    // 1. The primary's power is cut.
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
    // Every acknowledged write is on the new primary (synchronous mode).
    let acked: Vec<String> = ok.iter().map(|(_, id)| id.to_string()).collect();
    let found = s.manage_shell(&format!(
        "from entries.models import Entry\nids = [{}]\nprint('present', Entry.objects.filter(id__in=ids).count(), len(ids))",
        acked.join(",")
    ));
    let present = found
        .lines()
        .find_map(|l| l.strip_prefix("present "))
        .unwrap_or_else(|| panic!("no count: {found}"));
    let (have, want) = present.split_once(' ').unwrap();
    assert_eq!(
        have,
        want.trim(),
        "acknowledged writes lost in the failover"
    );
    report.push_str(&format!(
        "acknowledged writes before the check: {want}, all present\n"
    ));

    // 2. The old primary is powered on: it rejoins as the standby, nothing to apply.
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
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("cluster-drill.log"), &report).unwrap();
    drop((db2, witness));
}
