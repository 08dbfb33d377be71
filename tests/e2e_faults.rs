//! tandem's promises under faults, on real lab servers: drift that opens the database is found
//! and closed, hand edits are reported, a stopped PostgreSQL is started, a config that fails
//! its check is put back, overlapping runs and the apt lock are waited for, a killed run leaves
//! nothing running here and the next run converges (connections kept between runs too), and
//! a key set the operator does not hold is rolled back by the lockout guard. Every scenario gets fresh servers.

mod support;

use std::process::{Child, Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use support::lab::Suite;
use support::scenario::{Scenario, assert_ok, text};

/// Waits up to `limit` for `condition`, polling; false when it never held.
fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(250));
    }
    condition()
}

/// Does a TCP connection from the outsider to the database's port open within 3 s?
fn outsider_reaches_postgres(s: &Scenario) -> bool {
    let probe = format!(
        "python3 -c 'import socket; socket.create_connection((\"{}\", 5432), timeout=3).close()'",
        s.db.ip
    );
    s.outsider.ssh(&probe).status.success()
}

fn plan_exit(s: &Scenario) -> (Option<i32>, String) {
    let plan = s.run(&["plan", "--detailed-exitcode"]);
    (plan.status.code(), text(&plan.stdout) + &text(&plan.stderr))
}

#[test]
fn drift_that_opens_the_database_is_found_and_closed() {
    let lab = lab_or_skip!();
    let s = Scenario::new(lab, Suite::Bookworm);
    assert_ok("first apply", &s.apply_fresh());

    // By hand: a trust line for everyone outside tandem's block, 5432 open to the world, and
    // an edit to the nginx site.
    s.sudo_ok(
        &s.db,
        "for f in /etc/postgresql/*/main/pg_hba.conf; do echo 'host all all 0.0.0.0/0 trust' >>\"$f\"; done && \
         systemctl reload postgresql && ufw allow 5432 >/dev/null",
    );
    s.sudo_ok(
        &s.app,
        "echo '# edited by hand' >>/etc/nginx/sites-available/timesheet",
    );
    assert!(
        outsider_reaches_postgres(&s),
        "the hand-made hole is not open: the test proves nothing"
    );

    let (code, shown) = plan_exit(&s);
    assert_eq!(code, Some(2), "{shown}");
    assert!(
        shown.contains("disable 1 line(s) admitting machines other than the app servers"),
        "{shown}"
    );
    assert!(shown.contains("-host all all 0.0.0.0/0 trust"), "{shown}");
    assert!(
        shown.contains("- ufw rule allow from anywhere to port 5432/any"),
        "{shown}"
    );

    let verify = s.run(&["verify"]);
    let report = text(&verify.stdout) + &text(&verify.stderr);
    assert_eq!(verify.status.code(), Some(1), "{report}");
    assert!(
        report.contains("/etc/nginx/sites-available/timesheet")
            && report.contains("managed files as tandem writes them"),
        "verify does not report the hand-edited site:\n{report}"
    );

    assert_ok("apply closes the hole", &s.run(&["apply", "--yes"]));
    assert!(!outsider_reaches_postgres(&s), "5432 still open");
    let hba = s.sudo_ok(&s.db, "cat /etc/postgresql/*/main/pg_hba.conf");
    assert!(
        hba.contains(
            "# disabled by tandem (admits more than the app servers): host all all 0.0.0.0/0 trust"
        ),
        "{hba}"
    );
    let (code, shown) = plan_exit(&s);
    assert_eq!(code, Some(0), "after apply:\n{shown}");

    // A reload an interrupted run owed (its change written, its handler never run) is run by
    // the next apply; handlers that ran leave nothing owed.
    let owed = s.sudo_ok(&s.db, "ls -A /var/lib/tandem/owed");
    assert_eq!(owed.trim(), "", "handlers that ran are still owed");
    s.sudo_ok(&s.db, ": >'/var/lib/tandem/owed/reload postgresql'");
    let (code, shown) = plan_exit(&s);
    assert_eq!(code, Some(2), "{shown}");
    assert!(
        shown.contains("reload postgresql (owed by an earlier run that did not finish)"),
        "{shown}"
    );
    let apply = s.run(&["apply", "--yes"]);
    assert_ok("apply runs the owed handler", &apply);
    assert!(
        text(&apply.stderr).contains("handler reload postgresql ok"),
        "{}",
        text(&apply.stderr)
    );
    assert_eq!(s.sudo_ok(&s.db, "ls -A /var/lib/tandem/owed").trim(), "");

    // PostgreSQL stopped on a converged server: said so, nothing to create.
    s.sudo_ok(&s.db, "systemctl stop postgresql");
    let (code, shown) = plan_exit(&s);
    assert_eq!(code, Some(2), "{shown}");
    assert!(shown.contains("installed but stopped"), "{shown}");
    assert!(
        !shown.contains("+ role")
            && !shown.contains("+ database")
            && !shown.contains("not installed"),
        "plans as if PostgreSQL were missing:\n{shown}"
    );
    assert_ok("apply starts PostgreSQL", &s.run(&["apply", "--yes"]));
    let (code, shown) = plan_exit(&s);
    assert_eq!(code, Some(0), "after starting PostgreSQL:\n{shown}");

    // A site that fails `nginx -t` never stays in place.
    let before = s.sudo_ok(&s.app, "cat /etc/nginx/sites-available/timesheet");
    let overrides = s.dir.path().join("overrides/templates/nginx");
    std::fs::create_dir_all(&overrides).unwrap();
    std::fs::write(
        overrides.join("site.conf"),
        "server { listen 80; no_such_directive on; }\n",
    )
    .unwrap();
    let broken = s.run(&[
        "apply",
        "--yes",
        "--overrides",
        s.dir.path().join("overrides").to_str().unwrap(),
    ]);
    let stderr = text(&broken.stderr);
    assert_eq!(broken.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("put back as before this run"), "{stderr}");
    let after = s.sudo_ok(&s.app, "cat /etc/nginx/sites-available/timesheet");
    assert_eq!(after, before, "the broken site stayed on disk");
    s.sudo_ok(&s.app, "nginx -t 2>&1 && systemctl restart nginx");
}

#[test]
fn overlapping_applies_converge_and_wait_for_the_apt_lock() {
    let lab = lab_or_skip!();
    let s = Scenario::new(lab, Suite::Bookworm);
    // Another apt (unattended-upgrades, a person) holds dpkg's lock for a while, the way apt
    // itself takes it (fcntl), detached from this SSH session.
    s.db.run(
        "setsid python3 -c 'import fcntl, time; f = open(\"/var/lib/dpkg/lock-frontend\", \"w\"); \
         fcntl.lockf(f, fcntl.LOCK_EX); time.sleep(20)' </dev/null >/dev/null 2>&1 &",
    );
    let both: Vec<Child> = (0..2)
        .map(|_| {
            // A fresh provision takes minutes: the second run waits for all of it.
            s.tandem(&[
                "apply",
                "--yes",
                "--bootstrap-user",
                "root",
                "--lock-wait",
                "900",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = both
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for (i, out) in outputs.iter().enumerate() {
        assert_ok(&format!("apply {i}"), out);
    }
    // The one that waited planned after the other had finished: nothing left to do.
    let idle = outputs
        .iter()
        .filter(|o| text(&o.stdout).contains("No changes"))
        .count();
    assert_eq!(
        idle,
        1,
        "exactly one run should find the work done:\n{}\n---\n{}",
        text(&outputs[0].stdout),
        text(&outputs[1].stdout)
    );
    let (code, shown) = plan_exit(&s);
    assert_eq!(code, Some(0), "{shown}");

    // Remote work of a cut-off run (here: a process holding the work lock the way a killed
    // run's apt or release does) is waited for, and said so, before a new run starts.
    s.sudo_ok(
        &s.db,
        "setsid flock -s /var/lib/tandem/work.lock sleep 8 </dev/null >/dev/null 2>&1 &",
    );
    // `lock status` shows it, and another run's lock held, without taking either.
    s.sudo_ok(
        &s.db,
        "printf 'ci@elsewhere run 99\\n' >/var/lib/tandem/lock.owner; \
         setsid flock -o /var/lib/tandem/lock sleep 6 </dev/null >/dev/null 2>&1 &",
    );
    let locks = s.run(&["lock", "status"]);
    assert_ok("lock status", &locks);
    let said = text(&locks.stdout);
    assert!(
        said.contains("db: held by ci@elsewhere run 99 for")
            && said.contains("remote work of a cut-off run still runs")
            && said.contains("app1: free"),
        "{said}"
    );
    let out = s.run(&["apply", "--yes"]);
    assert_ok("apply while cut-off work runs", &out);
    assert!(
        text(&out.stderr).contains("remote work of an earlier run that was cut off"),
        "{}",
        text(&out.stderr)
    );
}

/// Starts a tandem run in the background, waits until `busy` is true on a server (its remote
/// work is under way), then kills it with SIGKILL. Its pid, or `None` when it finished first.
fn kill_when(mut run: Command, busy: impl Fn() -> bool, what: &str) -> Option<u32> {
    let mut child = run
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = wait_for(Duration::from_secs(300), || {
        busy() || child.try_wait().unwrap().is_some()
    });
    assert!(started, "{what} never started");
    if child.try_wait().unwrap().is_some() {
        return None;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    Some(pid)
}

/// Starts `run`, reads the first line of its stderr and closes it: tandem must end with 141
/// (as SIGPIPE would), not a panic. Its pid.
fn stopped_by_a_closed_stderr(mut run: Command) -> u32 {
    let mut child = run
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    {
        use std::io::BufRead;
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        stderr.read_line(&mut first).unwrap();
        assert!(!first.is_empty(), "nothing on stderr");
    } // the reader is gone here
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(141), "a closed stderr");
    pid
}

/// After tandem (pid) died: its SSH masters and control sockets go too.
fn assert_nothing_left_of(pid: u32) {
    let mark = format!("tandem-ssh-{pid}-");
    let gone = wait_for(Duration::from_secs(20), || {
        let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
        let dirs = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with(&mark));
        !text(&ps.stdout).contains(&mark) && !dirs
    });
    assert!(
        gone,
        "ssh masters or sockets of the killed run {pid} are still here"
    );
}

#[test]
fn a_killed_run_leaves_nothing_behind_and_the_next_run_converges() {
    let lab = lab_or_skip!();
    let s = Scenario::new(lab, Suite::Bookworm);

    // Killed while apt installs PostgreSQL on the db server.
    let pid = kill_when(
        s.tandem(&["apply", "--yes", "--bootstrap-user", "root"]),
        || s.db.ssh("pgrep -x apt-get").status.success(),
        "apt on the db server",
    )
    .expect("apt of a fresh server takes long enough to be caught");
    assert_nothing_left_of(pid);
    // Then an apply whose progress reader goes away after its first line (`tandem apply 2>&1
    // | head -1`): it stops quietly before its next change, 141, no panic.
    let pid = stopped_by_a_closed_stderr(s.tandem(&["apply", "--yes", "--bootstrap-user", "root"]));
    assert_nothing_left_of(pid);
    let again = s.apply_fresh();
    assert_ok("apply after the killed one", &again);
    let audit = s.sudo_ok(&s.db, "cat /var/lib/tandem/audit.log");
    assert!(
        audit.contains(&format!("-{pid} by=")) && audit.contains("started: + apt install"),
        "the killed run's package install is not in the audit log:\n{audit}"
    );
    let (code, shown) = plan_exit(&s);
    assert_eq!(code, Some(0), "{shown}");

    // Killed during a release of changed code (Django's checks, migrate or collectstatic on
    // the app server). A release takes seconds: tried again with new code if it was too quick.
    let mut killed = None;
    for attempt in 0..4 {
        std::fs::write(
            s.dir.path().join("timesheet/timesheet/killed_release.py"),
            format!("# change {attempt}\n"),
        )
        .unwrap();
        killed = kill_when(
            s.tandem(&["deploy", "--yes"]),
            || {
                s.sudo(&s.app, "pgrep -f 'manage.py' >/dev/null")
                    .status
                    .success()
            },
            "the release on the app server",
        );
        if killed.is_some() {
            break;
        }
    }
    let pid = killed.expect("no release could be caught running in 4 tries");
    assert_nothing_left_of(pid);
    assert_ok("deploy after the killed one", &s.run(&["deploy", "--yes"]));
    let (code, shown) = plan_exit(&s);
    assert_eq!(code, Some(0), "{shown}");

    // Whoever read its progress goes away during a release (`tandem deploy 2>&1 | head -1`):
    // tandem stops quietly before its next change, exit 141, no panic; the next run converges.
    std::fs::write(
        s.dir.path().join("timesheet/timesheet/killed_release.py"),
        "# change after the closed stderr\n",
    )
    .unwrap();
    let pid = stopped_by_a_closed_stderr(s.tandem(&["deploy", "--yes"]));
    assert_nothing_left_of(pid);
    assert_ok(
        "deploy after the closed stderr",
        &s.run(&["deploy", "--yes"]),
    );
    let (code, shown) = plan_exit(&s);
    assert_eq!(code, Some(0), "{shown}");
    assert_ok("verify", &s.run(&["verify"]));

    kept_connections_are_reused_and_survive_faults(&s);
}

/// `tandem COMMAND --ssh-persist 30` with its kept connections under `store`'s parent (as
/// `$XDG_RUNTIME_DIR`).
/// Through a copy of the lab's ssh config made in `runtime` (by `kept_connections_...`): the
/// lab rewrites its own whenever a parallel test boots or removes a server, and the config's
/// mtime is part of a kept connection's key, so runs through it would not meet their masters.
fn kept(s: &Scenario, runtime: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = s.tandem_via(args, &runtime.join("ssh_config"));
    cmd.arg("--ssh-persist")
        .arg("30")
        .env("XDG_RUNTIME_DIR", runtime);
    cmd
}

/// The pid of each kept master in `store` (`ssh -O check` on its socket), by pointer name.
fn kept_masters(store: &std::path::Path) -> Vec<(String, String)> {
    let mut masters = Vec::new();
    for entry in std::fs::read_dir(store).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.contains('.') {
            continue;
        }
        let dir = std::fs::read_to_string(entry.path()).unwrap();
        let check = Command::new("ssh")
            .args(["-F", "/dev/null", "-S"])
            .arg(store.join(dir.trim()).join("master"))
            .args(["-O", "check", "tandem"])
            .output()
            .unwrap();
        let said = text(&check.stderr);
        let pid = said
            .split("pid=")
            .nth(1)
            .map(|r| r.trim_end_matches([')', '\n', '\r']).to_string())
            .unwrap_or_else(|| format!("not running: {said}"));
        masters.push((name, pid));
    }
    masters.sort();
    masters
}

/// `--ssh-persist`: the next run reuses the connections; runs at once never share one; a run
/// killed over a kept connection does not keep the servers' locks; masters that died are
/// replaced; a store others can enter is refused.
fn kept_connections_are_reused_and_survive_faults(s: &Scenario) {
    let runtime = s.dir.path().join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::copy(&s.lab.ssh_config, runtime.join("ssh_config")).unwrap();
    let store = runtime.join("tandem-ssh");

    assert_ok(
        "plan, keeping connections",
        &kept(s, &runtime, &["plan"]).output().unwrap(),
    );
    let first = kept_masters(&store);
    assert_eq!(first.len(), 2, "one kept master per server: {first:?}");
    assert!(
        first.iter().all(|(_, pid)| pid.parse::<u32>().is_ok()),
        "{first:?}"
    );
    let plan = kept(s, &runtime, &["plan", "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stderr));
    assert_eq!(
        kept_masters(&store),
        first,
        "the second run made new connections"
    );

    // Two runs at once: each has connections of its own (sshd's MaxSessions counts a
    // connection's channels), both converge.
    let both: Vec<Child> = (0..2)
        .map(|_| {
            kept(s, &runtime, &["plan", "--detailed-exitcode"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in both {
        let out = run.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }

    // Killed during a release over kept connections: the next run gets the locks and
    // converges (the lock holder's channel ends with the killed run, not with the master).
    std::fs::write(
        s.dir.path().join("timesheet/timesheet/killed_release.py"),
        "# change over kept connections\n",
    )
    .unwrap();
    let killed = kill_when(
        kept(s, &runtime, &["deploy", "--yes"]),
        || {
            s.sudo(&s.app, "pgrep -f 'manage.py' >/dev/null")
                .status
                .success()
        },
        "the release over kept connections",
    );
    let again = kept(s, &runtime, &["deploy", "--yes"]).output().unwrap();
    assert_ok(
        &format!("deploy after the run killed over kept connections ({killed:?})"),
        &again,
    );
    let plan = kept(s, &runtime, &["plan", "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stderr));

    // Masters that died (a reboot of this machine's network, say): replaced, not an error.
    let mut killed = Vec::new();
    for (_, pid) in kept_masters(&store) {
        if let Ok(pid) = pid.parse::<u32>() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            killed.push(pid.to_string());
        }
    }
    let plan = kept(s, &runtime, &["plan", "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stderr));
    // Two running masters, new ones. (Pointers to dead ones may remain under another key: the
    // lab's shared ssh config changes when a parallel test boots a server, and its mtime is
    // part of the key; the sweep removes them later.)
    let replaced = kept_masters(&store);
    let running: Vec<&String> = replaced
        .iter()
        .map(|(_, pid)| pid)
        .filter(|pid| pid.parse::<u32>().is_ok())
        .collect();
    assert!(
        running.len() == 2 && running.iter().all(|pid| !killed.contains(pid)),
        "{replaced:?} (killed: {killed:?})"
    );

    // A store others can enter is refused, naming it; nothing connects through it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
    let refused = kept(s, &runtime, &["plan"]).output().unwrap();
    assert_ne!(refused.status.code(), Some(0));
    let said = text(&refused.stderr);
    assert!(
        said.contains("tandem-ssh") && said.contains("nobody else can enter"),
        "{said}"
    );
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();

    // Nothing outlives the test: the kept masters are ended.
    for (_, pid) in kept_masters(&store) {
        if let Ok(pid) = pid.parse::<u32>() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

#[test]
fn a_key_set_the_operator_does_not_hold_is_rolled_back() {
    let lab = lab_or_skip!();
    let s = Scenario::new(lab, Suite::Bookworm);
    assert_ok("first apply", &s.apply_fresh());

    // A key nobody here holds replaces the operator's.
    let stranger = s.dir.path().join("stranger");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(made.success());
    let config = std::fs::read_to_string(s.config_path()).unwrap();
    let key_line = config
        .lines()
        .find(|l| l.contains("authorized_key_files"))
        .unwrap()
        .to_string();
    std::fs::write(
        s.config_path(),
        config.replace(
            &key_line,
            &format!("  authorized_key_files: [{}.pub]", stranger.display()),
        ),
    )
    .unwrap();

    let out = s.run(&["apply", "--yes"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("authorized_keys") && stderr.contains("restored"),
        "{stderr}"
    );
    assert!(stderr.contains("a new connection works again"), "{stderr}");
    // The operator still gets in as the deploy user, with sudo, on both servers.
    for server in [&s.db, &s.app] {
        let keys = s.sudo_ok(server, "cat ~deploy/.ssh/authorized_keys");
        assert!(
            !keys.contains(&std::fs::read_to_string(stranger.with_extension("pub")).unwrap()),
            "{}: the stranger's key stayed",
            server.name
        );
    }
}

#[test]
fn a_server_that_reboots_during_apply_converges_on_the_next_run() {
    let lab = lab_or_skip!();
    let s = Scenario::new(lab, Suite::Bookworm);
    s.db.run("touch /run/before-reboot");
    let apply = s
        .tandem(&["apply", "--yes", "--bootstrap-user", "root"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The db server goes down in the middle of installing PostgreSQL.
    let busy = wait_for(Duration::from_secs(300), || {
        s.db.ssh("pgrep -x dpkg || pgrep -x apt-get")
            .status
            .success()
    });
    assert!(busy, "apt never ran on the db server");
    let _ = s.db.ssh("systemctl reboot");
    let out = apply.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "apply cannot have finished with its db server rebooting"
    );
    assert!(
        s.db.wait_until("! test -e /run/before-reboot", Duration::from_secs(120)),
        "the db server did not come back"
    );
    assert_ok("apply after the reboot", &s.apply_fresh());
    let (code, shown) = plan_exit(&s);
    assert_eq!(code, Some(0), "{shown}");
}

#[test]
fn a_correct_sshd_change_survives_sshd_refusing_connections_for_a_moment() {
    let lab = lab_or_skip!();
    let s = Scenario::new(lab, Suite::Bookworm);
    assert_ok("first apply", &s.apply_fresh());
    // As on a loaded host right after `reload ssh`: new connections are refused (established
    // ones, like tandem's own, carry on) until one has been refused, at most 60 s. Counted,
    // not timed, so a slow or a fast machine meets it alike.
    let reject = "INPUT -p tcp --dport 22 --syn -j REJECT --reject-with tcp-reset";
    s.sudo_ok(
        &s.db,
        &format!(
            "cat >/usr/local/sbin/flap-off <<'SH'
#!/bin/sh
i=0
while [ $i -lt 300 ]; do
  n=$(iptables -L INPUT -v -n -x | awk '/REJECT/ && /dpt:22/ {{print $1; exit}}')
  [ \"${{n:-0}}\" -ge 1 ] && break
  sleep 0.2; i=$((i+1))
done
iptables -D {reject}
SH
chmod 755 /usr/local/sbin/flap-off
mkdir -p /etc/systemd/system/ssh.service.d && cat >/etc/systemd/system/ssh.service.d/flap.conf <<'UNIT'
[Service]
ExecReload=
ExecReload=/usr/sbin/iptables -I {reject}
ExecReload=/usr/bin/systemd-run --no-block /usr/local/sbin/flap-off
ExecReload=/usr/sbin/sshd -t
ExecReload=/bin/kill -HUP $MAINPID
UNIT
systemctl daemon-reload"
        ),
    );
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/ssh/00-tandem.conf"),
    )
    .unwrap();
    let overrides = s.dir.path().join("overrides/templates/ssh");
    std::fs::create_dir_all(&overrides).unwrap();
    std::fs::write(
        overrides.join("00-tandem.conf"),
        format!("{template}ClientAliveInterval 120\n"),
    )
    .unwrap();
    let out = s.run(&[
        "apply",
        "--yes",
        "--overrides",
        s.dir.path().join("overrides").to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_ok("apply of a correct sshd change", &out);
    assert!(
        stderr.contains("SSH not confirmed yet (attempt 1"),
        "the refusal never happened, so this proves nothing:\n{stderr}"
    );
    let sshd = s.sudo_ok(&s.db, "sshd -T | grep -i clientaliveinterval");
    assert!(sshd.contains("120"), "the change was rolled back: {sshd}");

    // The first connection of a run meets the same refusal (as `tandem verify` right after
    // someone reloaded sshd did in CI): it is retried, not fatal.
    s.sudo_ok(
        &s.db,
        &format!("iptables -I {reject} && systemd-run --no-block /usr/local/sbin/flap-off"),
    );
    let out = s.run(&[
        "plan",
        "--overrides",
        s.dir.path().join("overrides").to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "plan after a refusal:\n{stderr}"
    );
    assert!(
        stderr.contains("cannot connect yet (attempt 1"),
        "the refusal never happened, so this proves nothing:\n{stderr}"
    );
}
