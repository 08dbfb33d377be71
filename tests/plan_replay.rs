//! The planner without hosts: probe answers captured from real lab servers (Debian 12 and 13;
//! fresh, converged, and drifted by hand; `tests/capture_probes.rs` re-captures them) are
//! replayed through the same pure code `tandem plan` runs, and the plan screen and its JSON
//! are compared with snapshots. Each state also asserts what must (not) be in its plan.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use tandem::engine::assets::Assets;
use tandem::engine::templates::Templates;
use tandem::engine::{self, HostInput, Probe};
use tandem::model::desired::Op;
use tandem::model::facts;
use tandem::model::plan::Plan;

/// The captured deployment of `suite` in `state`, planned again from its probe answers.
fn replay(suite: &str, state: &str) -> Plan {
    replay_with(suite, state, Secrets::Read).0
}

/// Whether the replay's secrets can be read (their files written) or not (`verify` and
/// `deploy` without them).
#[derive(PartialEq)]
enum Secrets {
    Read,
    Unset,
}

fn replay_with(
    suite: &str,
    state: &str,
    secrets_read: Secrets,
) -> (Plan, Vec<tandem::model::desired::Desired>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = root.join("tests/fixtures/probes").join(suite);
    let dir = tempfile::tempdir().unwrap();
    // The same config, pointing at the example app here, the password in a file.
    let text = fs::read_to_string(fixtures.join("tandem.yml"))
        .unwrap()
        .replace(
            "source: timesheet",
            &format!("source: {}", root.join("examples/timesheet").display()),
        )
        .replace(
            "password: {env: TANDEM_DB_PASSWORD}",
            "password: {file: password}",
        )
        .replace("{env: TANDEM_BACKUP_KEY}", "{file: backup_key}")
        .replace("{env: TANDEM_REDIS_PASSWORD}", "{file: redis_password}");
    let path: PathBuf = dir.path().join("tandem.yml");
    fs::write(&path, &text).unwrap();
    if secrets_read == Secrets::Read {
        fs::write(dir.path().join("password"), support::scenario::PASSWORD).unwrap();
        fs::write(dir.path().join("backup_key"), support::scenario::BACKUP_KEY).unwrap();
        fs::write(
            dir.path().join("redis_password"),
            support::scenario::BROKER_PASSWORD,
        )
        .unwrap();
    }
    // The full layout's throwaway CA and site certificate (made for the fixtures).
    for file in ["ca.pem", "site.crt", "site.key"] {
        if fixtures.join(file).exists() {
            fs::copy(fixtures.join(file), dir.path().join(file)).unwrap();
        }
    }
    let config = tandem::config::parse(&path, &text)
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    let (secrets, unread) = tandem::config::secret::read_available(&config);
    assert_eq!(
        unread.is_empty(),
        secrets_read == Secrets::Read,
        "{unread:?}"
    );
    let mut templates = Templates::new(Assets::builtin());
    let bundle = tandem::app::bundle::bundle(&config).unwrap();
    let read = |server: &tandem::config::Server, ext: &str| {
        fs::read(fixtures.join(state).join(format!("{}.{ext}", server.name)))
            .unwrap_or_else(|e| panic!("{suite}/{state}/{}.{ext}: {e}", server.name))
    };
    // The keys kept on the servers, from every server's discovery, as the engine reads them.
    let discoveries: Vec<_> = config
        .servers
        .iter()
        .map(|server| facts::parse_discovery(&String::from_utf8_lossy(&read(server, "discovery"))))
        .collect();
    let mut kept = engine::kept_keys(&discoveries).unwrap();
    kept.host_keys = config
        .servers
        .iter()
        .zip(&discoveries)
        .filter_map(|(s, d)| Some((s.name.clone(), d.host_key.clone()?)))
        .collect();
    let mut hosts = Vec::new();
    let mut desired = Vec::new();
    for (server, discovery) in config.servers.iter().zip(discoveries) {
        let read = |ext: &str| read(server, ext);
        let probe =
            Probe::new(&config, server, &discovery, &kept, &secrets, &mut templates).unwrap();
        let output = read("probe");
        let planned = engine::plan_host(HostInput {
            config: &config,
            server,
            probe,
            discovery,
            output: &output,
            password: &secrets.db_password,
            migrates: server.name == "app1",
            run_id: "replay",
            bundle: &bundle,
        })
        .unwrap();
        hosts.push(planned.plan);
        desired.push(planned.desired);
    }
    (Plan { hosts }, desired)
}

/// The release id holds the time of planning: replaced for the snapshots.
fn stable(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("release 20") {
            Some(i) => {
                let id = i + "release ".len();
                let end = l[id..].find([' ', ':']).map_or(l.len(), |j| id + j);
                format!("{}release <id>{}", &l[..i], &l[end..])
            }
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn check(suite: &str, state: &str) -> String {
    let plan = replay(suite, state);
    let screen = stable(&plan.to_string());
    let json = stable(&tandem::cli::json::document(&plan).unwrap());
    insta::assert_snapshot!(format!("{suite}_{state}"), screen);
    insta::assert_snapshot!(format!("{suite}_{state}_json"), json);
    screen
}

fn fresh(suite: &str) {
    let shown = check(suite, "fresh");
    for expected in [
        "+ apt install ufw logrotate postgresql",
        "+ user deploy (sudo) with 1 authorized key(s)",
        "+ ufw --force enable",
        "+ build release <id>: code and virtualenv",
        "+ release <id>",
    ] {
        assert!(shown.contains(expected), "{expected} missing:\n{shown}");
    }
}

fn converged(suite: &str) {
    let plan = replay(suite, "converged");
    assert_eq!(plan.change_count(), 0, "{plan}");
    check(suite, "converged");
}

fn drifted(suite: &str) {
    let shown = check(suite, "drifted");
    for expected in [
        "disable 1 line(s) admitting machines other than the app servers",
        "-host all all 0.0.0.0/0 trust",
        "- ufw rule allow from anywhere to port 5432/any",
        "~ file /etc/nginx/sites-available/timesheet",
        "-# edited by hand",
        "~ file /etc/systemd/system/gunicorn-timesheet.socket: mode/owner 640 root root -> 644 root root",
        "~ service gunicorn-timesheet.socket: start",
        "then: reload nginx",
    ] {
        assert!(shown.contains(expected), "{expected} missing:\n{shown}");
    }
    assert!(!shown.contains("role timesheet"), "{shown}");
}

#[test]
fn bookworm_fresh() {
    fresh("bookworm");
}

#[test]
fn bookworm_converged() {
    converged("bookworm");
}

#[test]
fn bookworm_drifted() {
    drifted("bookworm");
}

#[test]
fn trixie_fresh() {
    fresh("trixie");
}

#[test]
fn trixie_converged() {
    converged("trixie");
}

#[test]
fn trixie_drifted() {
    drifted("trixie");
}

/// The full layout (a backup server, HTTPS from the operator's files, a process and its
/// broker), captured on Debian 12. Its fresh plan makes new keys (the backup key, the
/// SECRET_KEY), so it is checked by what it must hold rather than by a snapshot.
#[test]
fn full_fresh() {
    let plan = replay("full", "fresh");
    let shown = stable(&plan.to_string());
    for expected in [
        "+ apt install",
        "redis-server",
        "pgbackrest",
        "+ file /etc/ssl/tandem/timesheet.crt",
        "+ file /etc/systemd/system/timesheet-ticker.service",
        "+ file /etc/pgbackrest.conf",
        "+ directory /var/lib/pgbackrest",
    ] {
        assert!(shown.contains(expected), "{expected} missing:\n{shown}");
    }
    assert!(!shown.contains(support::scenario::BACKUP_KEY), "{shown}");
    assert!(
        !shown.contains(support::scenario::BROKER_PASSWORD),
        "{shown}"
    );
}

#[test]
fn full_converged() {
    converged("full");
}

/// verify and deploy plan without the secrets they do not use: on converged servers, the only
/// files that then differ are the ones made from a secret not read (verify names them as not
/// compared instead of calling them drift), and there are such files.
#[test]
fn without_secrets_only_the_files_made_from_them_differ() {
    let (plan, desired) = replay_with("full", "converged", Secrets::Unset);
    let mut made_from_secrets = 0;
    for (host, desired) in plan.hosts.iter().zip(&desired) {
        let unread: Vec<&str> = desired
            .tasks
            .iter()
            .filter_map(|t| match &t.op {
                Op::File(f) if tandem::config::secret::holds_unread(&f.content) => {
                    Some(f.path.as_str())
                }
                _ => None,
            })
            .collect();
        made_from_secrets += unread.len();
        for file in host.changes.iter().filter_map(|c| c.file.as_deref()) {
            assert!(
                unread.contains(&file),
                "{}: {file} differs but is not made from a secret",
                host.server
            );
        }
    }
    assert!(made_from_secrets >= 3, "{made_from_secrets}");
}

#[test]
fn full_drifted() {
    let shown = check("full", "drifted");
    for expected in [
        "~ service timesheet-ticker.service: start",
        "~ file /etc/redis/tandem.conf",
        "~ service tandem-backup-timesheet.timer",
    ] {
        assert!(shown.contains(expected), "{expected} missing:\n{shown}");
    }
    assert!(
        !shown.contains(support::scenario::BROKER_PASSWORD),
        "{shown}"
    );
}

/// ACME with two app servers (app1 the issuer, app2 its peer), captured on Debian 12 with a
/// certificate from pebble. Its fresh plan makes new keys (the certificate push key, the
/// SECRET_KEY), so it is checked by what it must hold.
#[test]
fn acme_fresh() {
    let plan = replay("acme", "fresh");
    let shown = stable(&plan.to_string());
    for expected in [
        "lego",
        "+ file /usr/local/lib/tandem/acme-timesheet",
        "+ file /etc/systemd/system/tandem-acme-timesheet.timer",
        "+ file /usr/local/lib/tandem/tls-receive-timesheet",
        "certificate",
    ] {
        assert!(shown.contains(expected), "{expected} missing:\n{shown}");
    }
}

#[test]
fn acme_converged() {
    converged("acme");
}

#[test]
fn acme_drifted() {
    let shown = check("acme", "drifted");
    for expected in ["tandem-acme-timesheet.timer", "timesheet.crt"] {
        assert!(shown.contains(expected), "{expected} missing:\n{shown}");
    }
}
