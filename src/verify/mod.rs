//! `verify`: gathers the proof that the deployment works and is closed. Server-side checks
//! reuse the facts of the plan's probe and add one script per app server (and one on the db
//! server for backups); the rest runs from this machine (`here`). Each wing owns its checks
//! (`app::verify`, `backup::verify`, `postgres::verify`, `tls::verify`); what no wing owns
//! (the firewall, the release in place) is checked here.

use futures::future::join_all;

use crate::app::verify::{app_checks, app_script};
use crate::backup::verify::{backup_checks, backup_script};
use crate::config::{Config, Role, Server};
use crate::engine::transport::Transport;
use crate::engine::vars::Vars;
use crate::engine::{Engine, Planned};
use crate::model::desired::Op;
use crate::model::facts::{PG, UFW};
use crate::model::ufw::UfwState;
use crate::postgres::verify::{hba_check, hba_task};

mod here;
pub use crate::model::verification::{Check, Verification};
pub use here::from_here;

/// What verify's own scripts printed on the servers: each app server's checks and, with
/// backups, each db server's view of the repository. They need no plan, so they run while the
/// servers are probed.
pub struct ServerAnswers {
    /// Per app server (its name), the script's output or why it could not run.
    apps: Vec<(String, String)>,
    /// Per db server taking part (its name), the backup script's output.
    backup: Vec<(String, String)>,
}

/// Runs verify's scripts on the servers (owning clones of the sessions, so it can run beside
/// the probe).
pub fn server_scripts(engine: &Engine) -> impl Future<Output = ServerAnswers> + use<> {
    let config = &engine.config;
    let text = |out: anyhow::Result<crate::engine::transport::Output>| match out {
        Ok(o) => o.stdout_text(),
        Err(e) => format!("error={e:#}"),
    };
    // From each app server: the app's own credentials, over the internal network. The paths
    // and unit names are the ones the playbooks used, from the same `Vars`.
    let apps: Vec<_> = engine
        .servers
        .iter()
        .zip(&engine.hosts)
        .filter(|(s, _)| s.role == Role::App)
        .map(|(server, ssh)| {
            let script = app_script(config, &Vars::for_paths(config, server));
            (server.name.clone(), ssh.clone(), script)
        })
        .collect();
    // From each db server taking part (with --only, none may): the repository answers, the
    // newest backup is recent and WAL archiving does not fail (a standby's archiver is idle).
    let backup: Vec<_> = match config.backup {
        Some(_) => engine
            .servers
            .iter()
            .zip(&engine.hosts)
            .filter(|(s, _)| s.role == Role::Db)
            .map(|(server, ssh)| {
                let stanza = Vars::for_paths(config, server).backup.stanza;
                (server.name.clone(), ssh.clone(), backup_script(&stanza))
            })
            .collect(),
        None => Vec::new(),
    };
    async move {
        let apps = join_all(
            apps.into_iter()
                .map(|(name, ssh, script)| async move { (name, text(ssh.run(&script).await)) }),
        );
        let backup = join_all(
            backup
                .into_iter()
                .map(|(name, ssh, script)| async move { (name, text(ssh.run(&script).await)) }),
        );
        let (apps, backup) = tokio::join!(apps, backup);
        ServerAnswers { apps, backup }
    }
}

/// Runs every check. `planned` is a plan computed just now (its probe is the evidence);
/// `here` holds the checks from this machine (`from_here`) and `answers` what
/// `server_scripts` printed, both run while the servers were probed.
pub fn verify(
    engine: &Engine,
    planned: &Planned,
    here: Verification,
    answers: ServerAnswers,
) -> Verification {
    let config = &engine.config;
    let mut v = Verification::default();
    let db = config.db_server();
    // With --only, the db server may not take part: its own checks are skipped then.
    let db_index = engine.servers.iter().position(|s| s.role == Role::Db);

    for (name, text) in &answers.apps {
        if let Some(server) = engine.servers.iter().find(|s| &s.name == name) {
            app_checks(&mut v, config, server, text);
        }
    }

    // On the db server: pg_hba holds tandem's lines only; ufw admits only the app servers.
    if let Some(db_index) = db_index {
        let facts = &planned.facts[db_index];
        let desired = &planned.desired[db_index];
        hba_check(
            &mut v,
            db,
            desired,
            &facts
                .results
                .get(&hba_task(desired).map_or(String::new(), |t| desired.tasks[t].probe.clone()))
                .map(|r| r.stdout.clone()),
        );
        let pg = facts.get(PG);
        v.add(
            &db.name,
            "PostgreSQL answers",
            pg.ok(),
            if pg.ok() {
                "psql as postgres works"
            } else {
                "psql as postgres failed"
            },
            "start it: systemctl start postgresql; see journalctl -u postgresql",
        );
        if pg.ok() {
            let overridden = crate::resource::postgres_facts::overridden_settings(desired, facts);
            v.add(
                &db.name,
                "PostgreSQL takes tandem's settings from its conf.d",
                overridden.is_empty(),
                if overridden.is_empty() {
                    "no later file overrides them".to_string()
                } else {
                    overridden
                        .iter()
                        .map(|s| s.origin())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                "tandem apply takes it out there (ALTER SYSTEM RESET, or the line commented out); a value of your own belongs in tandem.yml's database.settings",
            );
        }
    }

    crate::cluster::verify::checks(&mut v, config, &engine.servers, planned);

    if let Some(backup) = &config.backup {
        for (name, text) in &answers.backup {
            if let Some(server) = engine.servers.iter().find(|s| &s.name == name) {
                let stanza = Vars::for_paths(config, server).backup.stanza;
                backup_checks(&mut v, server, backup, &stanza, text);
            }
        }
    }

    // The timers that keep things going without tandem: the ACME issuer's renewal (or
    // nothing renews the certificate) and the backup server's backups.
    for (i, server) in engine.servers.iter().enumerate() {
        let desired = &planned.desired[i];
        let timers = [
            (
                crate::tls::vars::TlsVars::of(config, server).timer,
                "certificate renewal timer on",
                "run tandem apply: it enables tandem-acme-<project>.timer on the first app server",
            ),
            (
                Vars::for_paths(config, server).backup.timer,
                "backup timer on",
                "run tandem apply: it enables tandem-backup-<project>.timer on the backup server",
            ),
        ];
        for (wanted, name, hint) in timers {
            let timer = desired.tasks.iter().position(
                |t| matches!(&t.op, Op::Service { name, enabled: true, .. } if *name == wanted),
            );
            if let Some(t) = timer {
                let answer = planned.facts[i].get(&desired.tasks[t].probe).stdout;
                let states: Vec<&str> = answer.split_whitespace().collect();
                v.add(
                    &server.name,
                    name,
                    states == ["enabled", "active"],
                    states.join(" "),
                    hint,
                );
            }
        }
    }

    for (i, server) in engine.servers.iter().enumerate() {
        let ufw = UfwState::parse(
            planned.facts[i].get(UFW).status,
            &planned.facts[i].get(UFW).stdout,
        );
        ufw_checks(&mut v, config, server, &planned.desired[i], &ufw);
    }

    // From this machine: the caller ran them while the servers were probed.
    v.checks.extend(here.checks);

    // Managed files: each as tandem would write it now (a hand edit is drift, even when the
    // service still works).
    // A file rendered from a secret this run did not read cannot be compared: it is named.
    for ((host, server), desired) in planned
        .plan
        .hosts
        .iter()
        .zip(&engine.servers)
        .zip(&planned.desired)
    {
        let uncompared: Vec<&str> = desired
            .tasks
            .iter()
            .filter_map(|t| match &t.op {
                Op::File(f) | Op::PostgresFirstStart(f)
                    if crate::config::secret::holds_unread(&f.content) =>
                {
                    Some(f.path.as_str())
                }
                _ => None,
            })
            .collect();
        let drifted: Vec<&str> = host
            .changes
            .iter()
            .filter_map(|c| c.file.as_deref())
            .filter(|f| !uncompared.contains(f))
            .collect();
        let not_compared = if uncompared.is_empty() {
            String::new()
        } else {
            format!(
                "; not compared (made from a secret not read): {}",
                uncompared.join(", ")
            )
        };
        v.add(
            &server.name,
            "managed files as tandem writes them",
            drifted.is_empty(),
            if drifted.is_empty() {
                format!("no difference{not_compared}")
            } else {
                format!("differ or missing: {}{not_compared}", drifted.join(", "))
            },
            "`tandem plan` shows the difference; `tandem apply` writes them back (put lasting \
             changes in tandem.yml or --overrides templates)",
        );
    }

    // Releases: the one tandem deployed is current.
    for (host, server) in planned.plan.hosts.iter().zip(&engine.servers) {
        if let Some(state) = &host.release {
            let ok = state.current_hash.as_deref() == Some(planned.code_hash.as_str());
            v.add(
                &server.name,
                "current release is tandem's",
                ok,
                format!("current {}", state.current.as_deref().unwrap_or("none")),
                "run `tandem deploy` (or apply) to ship the code in django.source",
            );
        }
    }
    v
}

fn ufw_checks(
    v: &mut Verification,
    config: &Config,
    server: &Server,
    desired: &crate::model::desired::Desired,
    ufw: &UfwState,
) {
    let wanted: Vec<_> = desired
        .tasks
        .iter()
        .filter_map(|t| match &t.op {
            Op::UfwAllow(r) => Some(r),
            _ => None,
        })
        .collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|r| !ufw.has(r))
        .map(|r| r.to_string())
        .collect();
    let ok = ufw.active && ufw.incoming == "deny" && missing.is_empty();
    let detail = if !ufw.active {
        "ufw is not active".to_string()
    } else if !missing.is_empty() {
        format!("missing: {}", missing.join("; "))
    } else {
        format!(
            "active, default {} incoming, tandem's {} rule(s) present",
            ufw.incoming,
            wanted.len()
        )
    };
    v.add(
        &server.name,
        "ufw active with tandem's rules",
        ok,
        detail,
        "run tandem apply",
    );
    if server.role == Role::Db {
        // A cluster's other member replicates from this one.
        let mut allowed = config.database_clients();
        allowed.extend(config.db_servers().map(|s| s.internal_ip));
        let wide: Vec<String> = ufw
            .opening_wider(crate::postgres::PORT, "tcp", &allowed)
            .iter()
            .map(|r| r.describe())
            .collect();
        v.add(&server.name, "5432 open to the app servers only", wide.is_empty(),
            if wide.is_empty() { "no wider rule".to_string() } else { format!("wider: {}", wide.join("; ")) },
            "run tandem apply, which deletes it (`ufw delete ...` of the rule shown); list deliberate extra clients under `database.allow`");
    }
}
