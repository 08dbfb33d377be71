//! Checks from this machine, as the world sees the servers: the database and Redis ports
//! closed, SSH refusing passwords and root, HTTPS as visitors get it. Each waits on the
//! network, so they all run at once, and `verify` runs them while it probes the servers.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::net::TcpStream;
use tokio::process::Command;

use super::Verification;
use crate::config::Destination;
use crate::config::{Config, Role, Server};
use crate::engine::transport::SshOptions;
use crate::tls::verify::{tls_checks_from_here, tls_roots};

/// How long a port may stay silent before it counts as closed, when nothing on the same
/// address answered to tell how long an answer takes.
const SILENCE: Duration = Duration::from_secs(3);
/// A kernel answers a connection to an open port within one round trip: a port that stays
/// silent this many times as long as sshd on the same address took to answer is filtered.
const ROUND_TRIPS: u32 = 20;
/// The shortest wait before silence counts, however short the round trip.
const MIN_SILENCE: Duration = Duration::from_millis(300);

/// Every check from this machine: `servers` are the ones this run works on (`--only`); the
/// database and broker ports are checked on their servers whatever the selection.
pub async fn from_here(config: &Config, servers: &[Server], options: &SshOptions) -> Verification {
    let db = config.db_server();
    let db_closed = closed_ports(
        db,
        &[(crate::postgres::PORT, "")],
        "the app servers' internal IPs may reach 5432",
        options,
    );
    let broker_closed = async {
        match config.broker_server() {
            Some(broker) => {
                let port = crate::config::processes::REDIS_PORT;
                closed_ports(
                    broker,
                    &[(port, " (Redis)")],
                    "the app servers' internal IPs may reach Redis",
                    options,
                )
                .await
            }
            None => Verification::default(),
        }
    };
    // A cluster's own ports (Patroni's REST API, etcd's client and peer ports) admit its
    // members only.
    let members: Vec<&Server> = config
        .cluster()
        .map(|c| c.etcd_members().collect())
        .unwrap_or_default();
    let cluster_closed = join_all(members.into_iter().map(|member| {
        // etcd's ports on every member, Patroni's on the db servers (the witness runs none).
        let ports = match member.role {
            Role::Db => &CLUSTER_PORTS[..],
            _ => &CLUSTER_PORTS[..2],
        };
        closed_ports(member, ports, "the cluster's members may reach it", options)
    }));
    let ssh = join_all(servers.iter().map(|s| ssh_checks(s, options)));
    let tls = join_all(
        servers
            .iter()
            .filter(|s| s.role == Role::App && config.tls.enabled())
            .map(|s| https_from_here(config, s, options)),
    );
    let (db_closed, broker_closed, cluster_closed, ssh, tls) =
        tokio::join!(db_closed, broker_closed, cluster_closed, ssh, tls);
    let mut v = Verification::default();
    for part in [db_closed, broker_closed]
        .into_iter()
        .chain(cluster_closed)
        .chain(ssh)
        .chain(tls)
    {
        v.checks.extend(part.checks);
    }
    v
}

/// Where `server` is reached from here: the host and port `ssh -G` resolves its destination
/// to (so aliases in the operator's ssh config count), and that host's addresses.
struct Reach {
    addresses: Vec<IpAddr>,
    ssh_port: u16,
}

async fn reach(server: &Server, options: &SshOptions) -> Reach {
    let mut reach = Reach {
        addresses: Vec::new(),
        ssh_port: 22,
    };
    // The config refused destinations that do not parse.
    let Ok(dest) = Destination::parse(&server.ssh) else {
        return reach;
    };
    let mut cmd = ssh_command(options);
    if let Some(port) = dest.port {
        cmd.args(["-p", &port.to_string()]);
    }
    let resolved = cmd
        .args(["-G", "--", &dest.host])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .ok()
        .filter(|out| out.status.success())
        .map(|out| SshG::parse(&String::from_utf8_lossy(&out.stdout)))
        .unwrap_or_default();
    reach.ssh_port = resolved.port.or(dest.port).unwrap_or(22);
    let hostname = resolved.hostname.unwrap_or(dest.host);
    if let Ok(found) = tokio::net::lookup_host((hostname.as_str(), reach.ssh_port)).await {
        for addr in found {
            if !reach.addresses.contains(&addr.ip()) {
                reach.addresses.push(addr.ip());
            }
        }
    }
    reach
}

/// The lines of `ssh -G` output that say where ssh really connects.
#[derive(Debug, Default, PartialEq)]
struct SshG {
    hostname: Option<String>,
    port: Option<u16>,
}

impl SshG {
    fn parse(output: &str) -> SshG {
        let value = |key: &str| {
            output
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
                .map(|v| v.trim().to_string())
        };
        SshG {
            hostname: value("hostname"),
            port: value("port").and_then(|p| p.parse().ok()),
        }
    }
}

/// A cluster's own ports, with their labels: etcd's client and peer ports, Patroni's REST API.
const CLUSTER_PORTS: [(u16, &str); 3] = {
    use crate::cluster::vars::{ETCD_CLIENT_PORT, ETCD_PEER_PORT, REST_PORT};
    [
        (ETCD_CLIENT_PORT, " (etcd)"),
        (ETCD_PEER_PORT, " (etcd peers)"),
        (REST_PORT, " (Patroni)"),
    ]
};

/// Each of `ports` (with its label) is closed to this machine on every address of `server` we
/// know of: its internal IP and whatever its SSH destination resolves to (its public address
/// in production), found once for all of them.
async fn closed_ports(
    server: &Server,
    ports: &[(u16, &str)],
    who: &str,
    options: &SshOptions,
) -> Verification {
    let reach = reach(server, options).await;
    let mut addresses = vec![server.internal_ip];
    for ip in reach.addresses {
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    let targets: Vec<(u16, &str, IpAddr)> = ports
        .iter()
        .flat_map(|&(port, label)| addresses.iter().map(move |&ip| (port, label, ip)))
        .collect();
    let answers = join_all(targets.iter().map(|&(port, _, ip)| {
        knock_apart(
            SocketAddr::new(ip, port),
            SocketAddr::new(ip, reach.ssh_port),
        )
    }))
    .await;
    let mut v = Verification::default();
    for (&(port, label, ip), answer) in targets.iter().zip(answers) {
        v.add(
            &server.name,
            &format!("{port}{label} closed to this machine at {ip}"),
            matches!(answer, Knock::Refused(_) | Knock::Silent { .. }),
            answer.to_string(),
            &format!(
                "only {who}: check `ufw status` on {} for wider rules",
                server.name
            ),
        );
    }
    v
}

/// What a connection to a port got.
#[derive(Debug)]
enum Knock {
    Accepted,
    /// This machine could not try (no thread or runtime for it): neither open nor closed.
    NotTried(String),
    /// Refused, or the network said it cannot get there.
    Refused(String),
    /// No answer within `waited`; `reference`: how long sshd on the same address took.
    Silent {
        waited: Duration,
        reference: Option<Duration>,
    },
}

impl std::fmt::Display for Knock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Knock::Accepted => write!(f, "accepted a connection"),
            Knock::NotTried(why) => write!(f, "not tried: {why}"),
            Knock::Refused(why) => write!(f, "refused ({why})"),
            Knock::Silent {
                waited,
                reference: Some(rtt),
            } => write!(
                f,
                "no answer in {:.2}s; sshd on the same address answered in {:.1}ms",
                waited.as_secs_f32(),
                rtt.as_secs_f64() * 1000.0
            ),
            Knock::Silent { waited, .. } => {
                write!(f, "no answer in {:.1}s", waited.as_secs_f32())
            }
        }
    }
}

/// Connects to `target`, and at the same moment to `reference` (sshd on the same address):
/// a filtered port never answers, so how long to wait comes from how long the reference took.
/// An open target answers about when the reference does (same host, same path), so the wait
/// is the reference's first answer plus `ROUND_TRIPS` round trips of a second connection to it
/// (at least `MIN_SILENCE`, at most `SILENCE`; `SILENCE` when it did not answer): a moment
/// when this machine was busy delays the first answer, not the round trip, and is not
/// multiplied.
async fn knock(target: SocketAddr, reference: SocketAddr) -> Knock {
    let started = Instant::now();
    let connect = TcpStream::connect(target);
    tokio::pin!(connect);
    let round_trip = || async {
        let sent = Instant::now();
        match tokio::time::timeout(SILENCE, TcpStream::connect(reference)).await {
            Ok(Ok(_)) => Some(sent.elapsed()),
            _ => None,
        }
    };
    let first = tokio::select! {
        answer = &mut connect => return Knock::of(answer),
        rtt = round_trip() => rtt.map(|_| started.elapsed()),
    };
    let reference = match first {
        Some(first) => {
            let again = tokio::select! {
                answer = &mut connect => return Knock::of(answer),
                rtt = round_trip() => rtt,
            };
            Some(Reference {
                first,
                round_trip: again.unwrap_or(first),
            })
        }
        None => None,
    };
    let waited = patience(reference);
    match tokio::time::timeout_at((started + waited).into(), connect).await {
        Ok(answer) => Knock::of(answer),
        Err(_) => Knock::Silent {
            waited,
            reference: reference.map(|r| r.round_trip),
        },
    }
}

/// `knock` on a thread and runtime of its own: the wait is measured from when the answers
/// arrive, which tandem's own runtime, busy planning the servers, can notice 100 ms late
/// (measured in the lab: a 148 ms "round trip" made the wait 3 s).
async fn knock_apart(target: SocketAddr, reference: SocketAddr) -> Knock {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("tandem-knock".into())
        .spawn(move || {
            let knocked = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|runtime| runtime.block_on(knock(target, reference)))
                .unwrap_or_else(|e| Knock::NotTried(format!("no runtime: {e}")));
            let _ = sender.send(knocked);
        });
    if let Err(e) = spawned {
        return Knock::NotTried(format!("no thread: {e}"));
    }
    receiver
        .await
        .unwrap_or_else(|_| Knock::NotTried("its thread ended without an answer".into()))
}

/// How sshd on the same address answered: its first answer (since both connections started)
/// and a second connection's round trip.
#[derive(Clone, Copy, Debug)]
struct Reference {
    first: Duration,
    round_trip: Duration,
}

fn patience(reference: Option<Reference>) -> Duration {
    match reference {
        Some(r) => (r.first + r.round_trip * ROUND_TRIPS).clamp(MIN_SILENCE, SILENCE),
        None => SILENCE,
    }
}

impl Knock {
    fn of(answer: std::io::Result<TcpStream>) -> Knock {
        match answer {
            Ok(_) => Knock::Accepted,
            Err(e) => Knock::Refused(e.kind().to_string()),
        }
    }
}

/// The system `ssh`, reading the operator's config file when one was given.
fn ssh_command(options: &SshOptions) -> Command {
    let mut cmd = Command::new("ssh");
    if let Some(file) = &options.config_file {
        cmd.arg("-F").arg(file);
    }
    cmd
}

/// Tries to log in with a password and as root, both at once: both must be refused by the
/// server itself.
async fn ssh_checks(server: &Server, options: &SshOptions) -> Verification {
    let mut v = Verification::default();
    let Ok(dest) = Destination::parse(&server.ssh) else {
        return v;
    };
    let attempt = |user: String, extra: &'static [&'static str]| {
        let mut cmd = ssh_command(options);
        if let Some(port) = dest.port {
            cmd.args(["-p", &port.to_string()]);
        }
        cmd.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-l",
            &user,
        ]);
        // Refused before anything passes over them: the classical key exchange (a tenth of
        // the post-quantum default's CPU here) is enough, offered first.
        cmd.args(["-o", "KexAlgorithms=^curve25519-sha256"]);
        // A login attempt of its own, never an open connection's (the user's ControlMaster).
        cmd.args(["-o", "ControlMaster=no", "-o", "ControlPath=none"]);
        cmd.args(extra).arg("--").arg(&dest.host).arg("true");
        cmd.stdin(std::process::Stdio::null()).output()
    };
    let user = dest.user.clone().unwrap_or_else(|| "root".into());
    let (password, root) = tokio::join!(
        attempt(
            user,
            &[
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "PreferredAuthentications=password,keyboard-interactive",
            ],
        ),
        attempt("root".into(), &[])
    );
    if let Ok(out) = password {
        let err = String::from_utf8_lossy(&out.stderr);
        let methods = err
            .split("Permission denied (")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .unwrap_or("");
        let ok = !out.status.success()
            && !methods.is_empty()
            && !methods.contains("password")
            && !methods.contains("keyboard");
        v.add(&server.name, "SSH refuses passwords", ok, format!("server offers: {}", if methods.is_empty() { err.trim() } else { methods }),
            "PasswordAuthentication and KbdInteractiveAuthentication must be no: run tandem apply, check other sshd_config.d files");
    }
    if let Ok(out) = root {
        v.add(
            &server.name,
            "SSH refuses root",
            !out.status.success(),
            if out.status.success() {
                "root logged in"
            } else {
                "root refused"
            },
            "PermitRootLogin must be no: run tandem apply, check other sshd_config.d files",
        );
    }
    v
}

/// The HTTPS checks of one app server on its public address (blocking TLS handshakes, on a
/// blocking thread).
async fn https_from_here(config: &Config, server: &Server, options: &SshOptions) -> Verification {
    let ip = reach(server, options)
        .await
        .addresses
        .into_iter()
        .next()
        .unwrap_or(server.internal_ip);
    let name = server.name.clone();
    let (config, server) = (config.clone(), server.clone());
    let checked = tokio::task::spawn_blocking(move || {
        let mut v = Verification::default();
        tls_checks_from_here(&mut v, &config, &server, ip, &tls_roots(&config));
        v
    })
    .await;
    checked.unwrap_or_else(|e| {
        let mut v = Verification::default();
        let why = format!("could not run: {e}");
        v.add(&name, "HTTPS checks", false, why, "run tandem verify again");
        v
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_counts_after_many_round_trips_within_bounds() {
        let ms = Duration::from_millis;
        let r = |first, round_trip| {
            Some(Reference {
                first: ms(first),
                round_trip: ms(round_trip),
            })
        };
        assert_eq!(patience(r(0, 0)), MIN_SILENCE);
        assert_eq!(patience(r(40, 40)), ms(840));
        assert_eq!(patience(r(400, 400)), SILENCE);
        assert_eq!(patience(None), SILENCE);
        // This machine busy for 100 ms when both connections started: the wait is that moment
        // plus twenty real round trips, not twenty times the moment (2 s).
        assert_eq!(patience(r(100, 1)), MIN_SILENCE);
        assert_eq!(patience(r(300, 10)), ms(500));
    }

    #[tokio::test]
    async fn a_listening_port_is_open_and_a_closed_one_refuses() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(matches!(knock(open, closed).await, Knock::Accepted));
        let refused = knock(closed, open).await;
        assert!(matches!(refused, Knock::Refused(_)), "{refused}");
        assert_eq!(refused.to_string(), "refused (connection refused)");
    }

    #[test]
    fn ssh_g_names_the_real_host_and_port() {
        let out = "user deploy\nhostname 203.0.113.7\nport 2222\naddressfamily any\n";
        let g = SshG::parse(out);
        assert_eq!(g.hostname.as_deref(), Some("203.0.113.7"));
        assert_eq!(g.port, Some(2222));
        assert_eq!(SshG::parse("user deploy\nhostnames x\n"), SshG::default());
    }
}
