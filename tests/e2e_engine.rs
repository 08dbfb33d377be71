//! tandem's engine against real lab servers over real SSH: fresh servers converge, a second
//! plan is empty, only the app server reaches PostgreSQL, secrets stay out of argv and output,
//! moved app servers are pruned, broken files never go live, and SSH lockouts are reverted.
//! Every scenario gets fresh servers.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::lab::{Server, Suite};
use support::scenario::{PASSWORD, Scenario, assert_ok, text};

/// From `from`, does a TCP connection to `ip:port` open within 3 seconds (optionally from a
/// given source address)?
fn connects(s: &Scenario, from: &Server, source: Option<&str>, ip: &str, port: u16) -> bool {
    let bind = source
        .map(|a| format!(", source_address=(\"{a}\", 0)"))
        .unwrap_or_default();
    let probe = format!(
        "python3 -c 'import socket; socket.create_connection((\"{ip}\", {port}), timeout=3{bind}).close()'"
    );
    s.sudo(from, &probe).status.success()
}

fn psql_from(s: &Scenario, server: &Server, sql: &str) -> std::process::Output {
    let script = format!(
        "PGPASSWORD={} PGCONNECT_TIMEOUT=5 psql -h {} -U timesheet -d timesheet -XAt -c {}",
        support::scenario::shell_quote(PASSWORD),
        s.db.ip,
        support::scenario::shell_quote(sql)
    );
    s.sudo(server, &script)
}

/// How the servers' sshd is started before tandem first sees them.
#[derive(Clone, Copy, PartialEq)]
enum Sshd {
    /// Debian's default: ssh.service.
    Service,
    /// As Ubuntu 24.04 ships it: ssh.socket listens and starts ssh.service on a connection
    /// (a config change is read by restarting the socket).
    Socket,
}

fn converge_and_check(suite: Suite, sshd: Sshd) {
    let lab = lab_or_skip!();
    let s = Scenario::new(lab, suite);
    if sshd == Sshd::Socket {
        for server in [&s.db, &s.app] {
            // Detached: stopping ssh.service must not take this very session down midway.
            server.run(
                "systemd-run --quiet --no-block sh -c \
                 'systemctl disable --now ssh.service; systemctl enable --now ssh.socket'",
            );
        }
        for server in [&s.db, &s.app] {
            let switched = (0..100).any(|_| {
                thread::sleep(Duration::from_millis(100));
                server
                    .ssh("systemctl is-enabled ssh.socket && ! systemctl is-enabled ssh.service")
                    .status
                    .success()
            });
            assert!(switched, "{}: sshd is not socket-activated", server.name);
        }
    }

    // Sample every process's command line on this machine while apply runs: the lab servers'
    // processes are visible from here too (one kernel), so this covers local and remote argv.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let sampler = {
        let (stop, seen) = (stop.clone(), seen.clone());
        thread::spawn(move || {
            let mut samples = 0;
            while !stop.load(Ordering::Relaxed) {
                let out = Command::new("ps").args(["-eo", "args"]).output().unwrap();
                let all = text(&out.stdout);
                if all.contains(PASSWORD) || all.contains("c0rrect") {
                    seen.lock().unwrap().push(all);
                }
                samples += 1;
                thread::sleep(Duration::from_millis(50));
            }
            samples
        })
    };
    let apply = s.apply_fresh();
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap();
    assert_ok("first apply", &apply);
    assert!(
        samples > 20,
        "too few ps samples ({samples}) to prove anything"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "the password appeared in a command line"
    );

    // A second plan finds nothing to do, with the documented exit code.
    let plan = s.assert_converged("second plan");
    assert!(
        text(&plan.stdout).contains("No changes"),
        "{}",
        text(&plan.stdout)
    );
    // PostgreSQL runs with the settings derived from the db server's machine (the lab's
    // containers see the host's memory and CPUs), shared_buffers after the restart it needs.
    let live = s.sudo_ok(
        &s.db,
        r#"awk '/^MemTotal:/ {print $2}' /proc/meminfo; nproc
runuser -u postgres -- psql -Atc "SELECT setting FROM pg_settings WHERE name IN ('shared_buffers', 'max_parallel_workers') ORDER BY name"
runuser -u postgres -- psql -Atc 'SELECT count(*) FROM pg_settings WHERE pending_restart'"#,
    );
    let live: Vec<u64> = live.lines().map(|l| l.trim().parse().unwrap()).collect();
    let (mem_kb, cpus) = (live[0], live[1]);
    // max_parallel_workers first (ORDER BY name), then shared_buffers in 8kB pages.
    assert_eq!(live[2], cpus, "max_parallel_workers");
    let want_mb = (mem_kb / 1024 / 4).clamp(128, 16 * 1024);
    assert_eq!(live[3] * 8 / 1024, want_mb, "shared_buffers (25% of RAM)");
    assert_eq!(live[4], 0, "a setting still waits for a restart");

    let json = s.run(&["plan", "--json"]);
    assert_ok("plan --json", &json);
    let parsed: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("plan --json is JSON");
    assert_eq!(parsed["hosts"].as_array().map(Vec::len), Some(2));
    for host in parsed["hosts"].as_array().unwrap() {
        assert_eq!(
            host["discovery"]["ssh_socket_activated"],
            sshd == Sshd::Socket,
            "{host}"
        );
    }
    assert_eq!(parsed["format_version"], 1, "plan --json is versioned");
    // A converged apply with --json: the document says nothing ran, and nothing else is on stdout.
    let again = s.run(&["apply", "--yes", "--json"]);
    assert_ok("converged apply --json", &again);
    let doc: serde_json::Value =
        serde_json::from_slice(&again.stdout).expect("apply --json is one JSON document");
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["command"], "apply");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["hosts"].as_array().map(Vec::len), Some(0), "{doc}");

    // The app server logs in over the internal network and sees Django's role settings.
    s.sudo_ok(
        &s.app,
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null",
    );
    // The outsider is reachable at all (so "blocked" below means the firewall).
    assert!(
        connects(&s, &s.outsider, None, &s.app.ip, 22),
        "outsider cannot reach the app's SSH"
    );
    let out = psql_from(
        &s,
        &s.app,
        "SHOW client_encoding; SHOW default_transaction_isolation; SHOW timezone;",
    );
    assert_eq!(
        text(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("|"),
        "UTF8|read|committed|UTC",
        "{}",
        text(&out.stderr)
    );

    // Nobody else reaches 5432; and with ufw off, pg_hba still turns the outsider away.
    assert!(connects(&s, &s.app, None, &s.db.ip, 5432));
    assert!(
        !connects(&s, &s.outsider, None, &s.db.ip, 5432),
        "outsider reaches 5432"
    );
    s.outsider.apt_install("postgresql-client");
    s.sudo_ok(&s.db, "ufw --force disable");
    let out = psql_from(&s, &s.outsider, "SELECT 1");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no pg_hba.conf entry"),
        "{}",
        text(&out.stderr)
    );
    s.sudo_ok(&s.db, "ufw --force enable");

    // Hardening: root and passwords refused, hostname is the FQDN.
    let root = Command::new("ssh")
        .arg("-F")
        .arg(&s.lab.ssh_config)
        .args([
            "-o",
            "BatchMode=yes",
            &format!("root@{}", s.db.name),
            "true",
        ])
        .output()
        .unwrap();
    assert!(!root.status.success(), "root login still works");
    assert_eq!(s.sudo_ok(&s.db, "hostname").trim(), "db.lab.test");
    let effective = s.sudo_ok(&s.app, "sshd -T");
    assert!(
        effective.contains("permitrootlogin no") && effective.contains("passwordauthentication no"),
        "{effective}"
    );

    // No secret in the plan, its JSON or the audit log.
    for (what, output) in [
        ("plan", text(&plan.stdout)),
        ("plan --json", text(&json.stdout)),
        ("apply", text(&apply.stdout) + &text(&apply.stderr)),
    ] {
        assert!(!output.contains("c0rrect"), "{what} shows the password");
        assert!(
            !output.contains("SCRAM-SHA-256$4096"),
            "{what} shows the verifier"
        );
    }
    for server in [&s.db, &s.app] {
        let audit = s.sudo_ok(
            server,
            "cat /var/lib/tandem/audit.log; stat -c %a /var/lib/tandem/audit.log",
        );
        assert!(
            audit.contains("applied:") && audit.trim_end().ends_with("600"),
            "{audit}"
        );
        assert!(
            !audit.contains("c0rrect") && !audit.contains("SCRAM-SHA-256$"),
            "audit log leaks: {audit}"
        );
    }
    let env_mode = s.sudo_ok(&s.app, "stat -c '%a %U' /etc/timesheet/env");
    assert_eq!(env_mode.trim(), "600 root");
}

#[test]
fn fresh_bookworm_servers_converge_and_only_the_app_reaches_postgres() {
    converge_and_check(Suite::Bookworm, Sshd::Service);
}

/// Debian 13 with sshd socket-activated as Ubuntu 24.04 ships it: the Ubuntu-shaped server.
#[test]
fn fresh_trixie_servers_with_socket_activated_sshd_converge_and_only_the_app_reaches_postgres() {
    converge_and_check(Suite::Trixie, Sshd::Socket);
}

#[test]
fn a_moved_app_server_gets_its_old_access_removed() {
    let lab = lab_or_skip!();
    let mut s = Scenario::new(lab, Suite::Bookworm);
    assert_ok("first apply", &s.apply_fresh());

    // The app server gets a new internal address (outside the lab's allocation range), and
    // talks to the database from it, as after a real move.
    let old_ip = s.app.ip.clone();
    let new_ip = format!("{}.250", old_ip.rsplit_once('.').unwrap().0);
    s.sudo_ok(
        &s.app,
        &format!(
            "ip addr add {new_ip}/24 dev host0 && ip route replace {}/32 dev host0 src {new_ip}",
            s.db.ip
        ),
    );
    s.app_internal_ip = new_ip.clone();
    s.write_config();

    let plan = s.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "{}{}",
        text(&plan.stdout),
        text(&plan.stderr)
    );
    let shown = text(&plan.stdout);
    assert!(
        shown.contains(&format!(
            "-host    timesheet    timesheet    {old_ip}/32    scram-sha-256"
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "+host    timesheet    timesheet    {new_ip}/32    scram-sha-256"
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "+ ufw allow proto tcp from {new_ip} to any port 5432"
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "- ufw allow proto tcp from {old_ip} to any port 5432"
        )),
        "{shown}"
    );

    assert_ok("apply after the move", &s.run(&["apply", "--yes"]));
    assert!(
        connects(&s, &s.app, Some(&new_ip), &s.db.ip, 5432),
        "new address refused"
    );
    assert!(
        !connects(&s, &s.app, Some(&old_ip), &s.db.ip, 5432),
        "old address still admitted"
    );
    let hba = s.sudo_ok(&s.db, "cat /etc/postgresql/*/main/pg_hba.conf");
    assert!(
        !hba.contains(&format!("{old_ip}/32")) && hba.contains(&format!("{new_ip}/32")),
        "{hba}"
    );
    s.assert_converged("after the move");
}

#[test]
fn a_broken_pg_hba_never_goes_live() {
    let lab = lab_or_skip!();
    let s = Scenario::new(lab, Suite::Bookworm);
    let out = s.apply_fresh_with_override(
        "templates/postgres/pg_hba.block",
        "# BEGIN tandem {{ project }}: broken on purpose\n\
         host {{ db.name }} {{ db.role }} 10.0.0.1/99 scram-sha-256\n\
         # END tandem {{ project }}\n",
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("pg_hba.conf rejected by PostgreSQL"),
        "{stderr}"
    );
    // Meanwhile the app server was provisioned and its release built (no database needed),
    // but nothing went live without the database.
    assert!(
        stderr.contains("release not taken live: the database server failed"),
        "{stderr}"
    );
    let app = s.sudo_ok(
        &s.app,
        "ls /srv/timesheet/releases/*/.tandem-built; test -e /srv/timesheet/current && echo LIVE; true",
    );
    assert!(
        app.contains(".tandem-built") && !app.contains("LIVE"),
        "{app}"
    );
    // The live file is Debian's own, untouched; PostgreSQL still serves.
    let hba = s.sudo_ok(&s.db, "cat /etc/postgresql/*/main/pg_hba.conf");
    assert!(
        !hba.contains("10.0.0.1/99") && !hba.contains("BEGIN tandem"),
        "{hba}"
    );
    let errors = s.sudo_ok(
        &s.db,
        "cd / && runuser -u postgres -- psql -XAtc \
         'SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL'",
    );
    assert_eq!(errors.trim(), "0");
    assert!(
        s.sudo(&s.db, "systemctl is-active postgresql")
            .status
            .success()
    );
}

#[test]
fn an_sshd_change_that_cuts_ssh_is_reverted_by_the_guard() {
    let lab = lab_or_skip!();
    let s = Scenario::new(lab, Suite::Bookworm);
    // sshd moves to a port that ufw does not open (and tandem's config does not say).
    let out = s.apply_fresh_with_override(
        "templates/ssh/00-tandem.conf",
        "Port 2222\nPermitRootLogin no\nPasswordAuthentication no\n",
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("new SSH connection failed") && stderr.contains("restored"),
        "{stderr}"
    );
    // SSH on the usual port works again the way it did before the run (root with the lab's
    // key: the guard put back sshd's drop-ins, sudoers.d and the deploy user's keys too).
    let sshd =
        s.db.run("sshd -T | grep -E '^port '; ls /etc/ssh/sshd_config.d/ /etc/sudoers.d/");
    assert!(
        sshd.contains("port 22") && !sshd.contains("port 2222"),
        "{sshd}"
    );
    assert!(!sshd.contains("00-tandem.conf"), "{sshd}");
    assert!(!sshd.contains("tandem-deploy"), "sudoers file left: {sshd}");
    let timers = s.db.run("systemctl list-timers --all");
    assert!(!timers.contains("tandem-guard"), "{timers}");
}
