//! Proof that lab servers are real servers: systemd as PID 1, apt and pip work, ufw filters
//! between servers, a reboot keeps the disk. Every test boots its own servers.

mod support;

use std::time::Duration;

use support::lab::{Server, Suite};

fn assert_real_server(server: &Server) {
    assert_eq!(
        server.run("ps -o comm= -p 1").trim(),
        "systemd",
        "PID 1 on {}",
        server.name
    );
    assert!(
        server.wait_until(
            "test \"$(systemctl is-system-running)\" = running",
            Duration::from_secs(60)
        ),
        "{} is not running cleanly: {}",
        server.name,
        server
            .ssh("systemctl is-system-running; systemctl --failed --no-legend")
            .stdout
            .escape_ascii()
    );
    assert_eq!(server.run("hostname").trim(), server.name);
    assert!(
        server
            .run("ip -4 -o addr show host0")
            .contains(&format!("{}/24", server.ip))
    );
    // A real server does not route: the lab must not leak the host's ip_forward=1.
    assert_eq!(server.run("cat /proc/sys/net/ipv4/ip_forward").trim(), "0");
    // Nothing tandem installs is preinstalled.
    for absent in ["ufw", "nginx", "psql"] {
        assert!(
            !server.ssh(&format!("command -v {absent}")).status.success(),
            "{absent} preinstalled"
        );
    }
}

#[test]
fn bookworm_server_runs_systemd_and_installs_from_apt_and_pip() {
    let lab = lab_or_skip!();
    let server = lab.server(Suite::Bookworm);
    assert_real_server(&server);
    assert!(
        server
            .run(". /etc/os-release; echo $VERSION_CODENAME")
            .contains("bookworm")
    );
    server.apt_install("python3-venv");
    server.run("python3 -m venv /tmp/venv");
    server.run("for i in 1 2 3; do /tmp/venv/bin/pip install -q six==1.16.0 && exit 0; sleep 3; done; exit 1");
    assert_eq!(
        server
            .run("/tmp/venv/bin/python -c 'import six; print(six.__version__)'")
            .trim(),
        "1.16.0"
    );
}

#[test]
fn trixie_server_runs_systemd_and_installs_from_apt() {
    let lab = lab_or_skip!();
    let server = lab.server(Suite::Trixie);
    assert_real_server(&server);
    assert!(
        server
            .run(". /etc/os-release; echo $VERSION_CODENAME")
            .contains("trixie")
    );
    server.apt_install("python3-venv");
    server.run("python3 -m venv /tmp/venv && /tmp/venv/bin/python -c 'print(1)'");
}

/// From `from`, does a TCP connection to `ip:port` open within 3 seconds?
fn connects(from: &Server, ip: &str, port: u16) -> bool {
    let probe = format!(
        "python3 -c 'import socket; socket.create_connection((\"{ip}\", {port}), timeout=3).close()'"
    );
    from.ssh(&probe).status.success()
}

#[test]
fn ufw_on_a_server_admits_only_the_allowed_peer() {
    let lab = lab_or_skip!();
    let mut servers = lab.servers(3, Suite::Bookworm);
    let outsider = servers.pop().unwrap();
    let app = servers.pop().unwrap();
    let db = servers.pop().unwrap();
    db.apt_install("ufw");
    // A listener on 5432 that outlives the SSH session.
    db.run("systemd-run --unit=listener python3 -m http.server 5432");
    assert!(db.wait_until("ss -ltn | grep -q ':5432 '", Duration::from_secs(10)));
    // Before ufw: both reach it, so the later refusal is ufw's doing.
    assert!(connects(&app, &db.ip, 5432));
    assert!(connects(&outsider, &db.ip, 5432));

    db.run(&format!(
        "ufw default deny incoming && ufw allow 22/tcp && ufw allow from {} to any port 5432 proto tcp && ufw --force enable",
        app.ip
    ));
    assert!(
        connects(&app, &db.ip, 5432),
        "the allowed app server is refused"
    );
    assert!(
        !connects(&outsider, &db.ip, 5432),
        "the outsider reaches port 5432"
    );
    // SSH from the host still works through the rule added before enabling.
    assert!(db.run("ufw status").contains("Status: active"));
    // Routed traffic is off, as on a real server.
    assert!(db.run("ufw status verbose").contains("disabled (routed)"));
}

/// A power cut (for the database failover drill): the server stops answering at once, nothing
/// of it runs, and powered on again it comes back with its disk and a fresh /run.
#[test]
fn a_server_whose_power_is_cut_comes_back_with_its_disk() {
    let lab = lab_or_skip!();
    let server = lab.server(Suite::Bookworm);
    server.run("echo kept > /root/marker && touch /run/gone-after-power-cut && sync");
    server.poweroff();
    let out = std::process::Command::new("ssh")
        .args(["-F"])
        .arg(&lab.ssh_config)
        .args([
            "-o",
            "ConnectTimeout=2",
            "-o",
            "BatchMode=yes",
            &server.name,
            "true",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{} still answers", server.name);
    server.start();
    assert_eq!(server.run("cat /root/marker").trim(), "kept");
    assert!(
        !server
            .ssh("test -e /run/gone-after-power-cut")
            .status
            .success()
    );
}

#[test]
fn a_rebooted_server_comes_back_with_its_disk() {
    let lab = lab_or_skip!();
    let server = lab.server(Suite::Bookworm);
    server.run("echo kept > /root/marker && touch /run/gone-after-reboot");
    // The connection drops as the server goes down; that is expected.
    let _ = server.ssh("systemctl reboot");
    assert!(
        server.wait_until(
            "test -e /root/marker && ! test -e /run/gone-after-reboot",
            Duration::from_secs(90)
        ),
        "{} did not come back from a reboot",
        server.name
    );
    assert_eq!(server.run("cat /root/marker").trim(), "kept");
    assert!(server.wait_until(
        "test \"$(systemctl is-system-running)\" = running",
        Duration::from_secs(60)
    ));
}
