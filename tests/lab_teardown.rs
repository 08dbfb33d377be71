//! The lab leaves the host as it found it: after servers go down, after `lab teardown`, and
//! after a run that was killed halfway (CI starts right after a session's processes are ended).
//! This file's tests run one at a time: they compare the whole host before and after.

mod support;

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use support::lab::Suite;

static HOST: Mutex<()> = Mutex::new(());

fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the lab may touch on the host: links, NAT and filter rules, ip_forward, mounts,
/// container processes and the lab's server directories. Zombies are left out: a killed
/// systemd-nspawn stays a zombie until PID 1 reaps it, and this machine's PID 1 reaps late
/// (or never); a zombie holds no mount, link or address, only a process-table entry.
fn host_state() -> String {
    sh("ip -o link show | cut -d: -f2 | sort; \
        iptables -t nat -S; iptables -S; \
        cat /proc/sys/net/ipv4/ip_forward; \
        cut -d' ' -f2 /proc/mounts | sort; \
        ps -e -o stat=,pid=,comm= | awk '$3 == \"systemd-nspawn\" && $1 !~ /^Z/ {print $2}'; \
        ls /var/lib/tandem-lab/servers 2>/dev/null")
}

fn lab_script(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/lab");
    let out = Command::new(script)
        .args(args)
        .output()
        .expect("running the lab script");
    assert!(
        out.status.success(),
        "lab {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn servers_going_down_leave_nothing_behind() {
    let _one_at_a_time = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let lab = lab_or_skip!();
    let before = host_state();
    {
        let servers = lab.servers(2, Suite::Bookworm);
        assert_ne!(
            host_state(),
            before,
            "the lab changed nothing: this test would prove nothing"
        );
        servers[0].run("true");
    }
    assert_eq!(host_state(), before);
}

#[test]
fn teardown_removes_every_server_and_the_network() {
    let _one_at_a_time = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let lab = lab_or_skip!();
    let before = host_state();
    let servers = lab.servers(2, Suite::Bookworm);
    lab_script(&["teardown"]);
    assert_eq!(host_state(), before);
    drop(servers); // `down` of servers already gone is harmless
    assert_eq!(host_state(), before);
}

#[test]
fn a_run_killed_halfway_is_cleaned_up_by_the_next() {
    let _one_at_a_time = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let lab = lab_or_skip!();
    let before = host_state();
    let server = lab.server(Suite::Bookworm);
    // What a session's end does: SIGKILL to the lab's own processes (supervisor and nspawn),
    // leaving the container's systemd, the overlay mount, the bridge and the NAT rule.
    let pid = std::fs::read_to_string(format!("/var/lib/tandem-lab/servers/{}/pid", server.name))
        .unwrap();
    let pid = pid.trim();
    sh(&format!(
        "pkill -KILL -P {pid} -x systemd-nspawn; kill -KILL {pid}"
    ));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        sh("cut -d' ' -f2 /proc/mounts").contains(&server.name),
        "the overlay should still be mounted"
    );
    lab_script(&["recover"]);
    assert_eq!(host_state(), before);
    // And the next server comes up normally.
    let next = lab.server(Suite::Bookworm);
    next.run("true");
}
