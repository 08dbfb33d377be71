//! `tandem backup`, `tandem backup list` and `tandem restore`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::{ConnectArgs, load, out};
use crate::backup::pgbackrest::{self, human_age, human_size};
use crate::backup::restore::{self, Restore, Target};
use crate::config::{Config, Server};
use crate::engine::transport::{Ssh, Transport};
use crate::engine::vars::Vars;

/// The repository server of a config that has `backup:`.
fn repository(config: &Config) -> anyhow::Result<&Server> {
    config.backup_server().context(
        "tandem.yml has no `backup:`: add a `role: backup` server and `backup: {encryption_key: {env: TANDEM_BACKUP_KEY}}`, then apply",
    )
}

async fn connect_one(remote: &ConnectArgs, server: &Server) -> anyhow::Result<Ssh> {
    Ok(super::day_two::connect(remote, &[server]).await?.remove(0))
}

/// The stanza's info as the repository server reads it, with that server's clock.
async fn info(ssh: &Ssh, vars: &Vars) -> anyhow::Result<(i64, pgbackrest::Info)> {
    let answer = ssh
        .run(&pgbackrest::info_script(&vars.backup.stanza))
        .await?;
    if answer.status == 3 {
        bail!(
            "{}: pgBackRest is not installed: run `tandem apply` first",
            ssh.name()
        );
    }
    let (now, info) = pgbackrest::parse_info_output(&answer.stdout_text(), &vars.backup.stanza);
    let info = info.map_err(|e| anyhow::anyhow!("{}: pgbackrest info: {e}", ssh.name()))?;
    Ok((now, info))
}

/// `tandem backup`: a backup now, by the repository server's backup service (full or
/// incremental as the schedule would take it), so that a killed tandem cannot cut it short.
pub async fn backup_now(remote: ConnectArgs) -> anyhow::Result<ExitCode> {
    let config = load(&remote.config)?;
    let server = repository(&config)?;
    let vars = Vars::for_paths(&config, server);
    let ssh = connect_one(&remote, server).await?;
    let started = Instant::now();
    let ran = ssh.run(&restore::backup_now(&vars)).await;
    let listed = info(&ssh, &vars).await;
    ssh.close().await;
    let ran = ran?;
    if !ran.success() {
        bail!("{}: the backup failed:\n{}", server.name, ran.stderr_tail());
    }
    let (_, info) = listed?;
    let newest = info
        .latest()
        .context("the backup service succeeded but the repository lists no backup")?;
    out(&format!(
        "{}: {} backup {} in {:.1} s ({} of database, {} added to the repository)",
        server.name,
        newest.kind,
        newest.label,
        started.elapsed().as_secs_f64(),
        human_size(newest.size),
        human_size(newest.repository_delta)
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `tandem backup list`: every backup in the repository, oldest first, with its age and size.
pub async fn list(remote: ConnectArgs, json: bool) -> anyhow::Result<ExitCode> {
    let config = load(&remote.config)?;
    let server = repository(&config)?;
    let vars = Vars::for_paths(&config, server);
    let ssh = connect_one(&remote, server).await?;
    let listed = info(&ssh, &vars).await;
    ssh.close().await;
    let (now, info) = listed?;
    if json {
        #[derive(serde::Serialize)]
        struct Document<'a> {
            repository: &'a str,
            now: i64,
            #[serde(flatten)]
            info: &'a pgbackrest::Info,
        }
        out(&crate::cli::json::document(&Document {
            repository: &server.name,
            now,
            info: &info,
        })?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = format!(
        "{} (stanza {}): {}\n",
        server.name, vars.backup.stanza, info.message
    );
    if info.backups.is_empty() {
        text.push_str("  (no backup yet)\n");
    } else {
        text.push_str(&format!(
            "  {:<34} {:<5} {:<20} {:>11} {:>10} {:>10}\n",
            "LABEL", "TYPE", "FINISHED (UTC)", "AGE", "DATABASE", "ADDED"
        ));
    }
    for b in &info.backups {
        let finished = jiff::Timestamp::from_second(b.stop)
            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        text.push_str(&format!(
            "  {:<34} {:<5} {:<20} {:>11} {:>10} {:>10}{}\n",
            b.label,
            b.kind,
            finished,
            human_age(now - b.stop),
            human_size(b.size),
            human_size(b.repository_delta),
            if b.error { "  (error)" } else { "" }
        ));
    }
    if let Some((min, max)) = &info.wal {
        text.push_str(&format!("  WAL archive: {min} .. {max}\n"));
    }
    out(text.trim_end())?;
    Ok(ExitCode::SUCCESS)
}

/// `tandem restore`: into a scratch cluster on the db server, or in place (`--in-place
/// --yes`) with the app servers' gunicorn stopped around it.
pub async fn restore(
    remote: ConnectArgs,
    time: Option<String>,
    in_place: bool,
    yes: bool,
    lock_wait: u64,
) -> anyhow::Result<ExitCode> {
    let config = load(&remote.config)?;
    repository(&config)?;
    let target = match &time {
        Some(t) => Target::time(t)?,
        None => Target::Latest,
    };
    // Replacing data is asked for, on a terminal, like apply; without one it needs --yes.
    if in_place {
        let said = "--in-place replaces the running database with the restored one (the app \
                    servers are stopped meanwhile; the old data directory is kept on the db server)";
        let asked = std::io::IsTerminal::is_terminal(&std::io::stdin()) && !yes;
        if asked {
            crate::cli::say!("{said}.");
        }
        match super::confirm("Restore in place?", yes) {
            Ok(true) => {}
            Ok(false) => bail!("not restored: the answer was not `yes`"),
            Err(_) => bail!("{said}: add --yes to go ahead"),
        }
    }
    let db = match config.cluster() {
        None => config.db_server(),
        // In place, both members take part (the cluster is built again around the primary).
        Some(cluster) if in_place => cluster.members[0],
        Some(cluster) => primary(&remote, &cluster.members).await?,
    };
    let mut servers: Vec<&Server> = vec![db];
    let cluster = config.cluster().filter(|_| in_place);
    if let Some(cluster) = &cluster {
        servers.push(cluster.members[1]);
    }
    if in_place {
        servers.extend(config.app_servers());
    }
    let report = super::report();
    let hosts = super::day_two::connect(&remote, &servers).await?;
    // An apply meanwhile would restart PostgreSQL under the restore: take the servers' locks.
    let who = format!("{} restore", crate::engine::apply::who());
    let mut locks = Vec::new();
    for host in &hosts {
        locks.push(
            host.lock(&who, Duration::from_secs(lock_wait), &*report)
                .await?,
        );
    }
    let result = match &cluster {
        Some(cluster) => {
            let apps: Vec<(&Ssh, Vars)> = hosts[2..]
                .iter()
                .zip(&servers[2..])
                .map(|(h, s)| (h, Vars::for_paths(&config, s)))
                .collect();
            super::restore_cluster::run(&config, cluster, &hosts[..2], &apps, &target, &*report)
                .await
        }
        None => run_restore(&config, &servers, &hosts, &target, in_place, &*report).await,
    };
    drop(locks);
    for host in hosts {
        host.close().await;
    }
    let message = result?;
    out(&message)?;
    Ok(ExitCode::SUCCESS)
}

/// The cluster member that is primary now (a scratch restore runs there: its WAL is pushed
/// to the repository first). A member that does not answer is passed over; with none
/// answering as primary, the first that answers.
async fn primary<'a>(remote: &ConnectArgs, members: &[&'a Server]) -> anyhow::Result<&'a Server> {
    let mut answering = None;
    let mut why = Vec::new();
    for member in members {
        let hosts = match super::day_two::connect(remote, &[member]).await {
            Ok(hosts) => hosts,
            Err(e) => {
                why.push(format!("{}: {e:#}", member.name));
                continue;
            }
        };
        let said = answers_as_primary(&hosts[0]).await;
        for host in hosts {
            host.close().await;
        }
        match said {
            Ok(true) => return Ok(member),
            Ok(false) => {
                answering.get_or_insert(*member);
            }
            Err(e) => why.push(format!("{}: {e:#}", member.name)),
        }
    }
    answering
        .ok_or_else(|| anyhow::anyhow!("no db server of the cluster answers: {}", why.join("; ")))
}

/// Whether this db server's PostgreSQL answers and is not in recovery (a cluster's primary).
pub(super) async fn answers_as_primary(host: &Ssh) -> anyhow::Result<bool> {
    let out = host
        .run(&crate::postgres::as_postgres(
            "-Atq -c 'select pg_is_in_recovery()'",
        ))
        .await?;
    Ok(out.success() && out.stdout_text().trim() == "f")
}

async fn run_restore(
    config: &Config,
    servers: &[&Server],
    hosts: &[Ssh],
    target: &Target,
    in_place: bool,
    report: &dyn crate::model::report::Report,
) -> anyhow::Result<String> {
    let db = &hosts[0];
    let vars = Vars::for_paths(config, servers[0]);
    let plan = Restore {
        vars: &vars,
        target,
        in_place,
    };
    let apps: Vec<(&Ssh, Vars)> = hosts[1..]
        .iter()
        .zip(&servers[1..])
        .map(|(h, s)| (h, Vars::for_paths(config, s)))
        .collect();
    stop_apps(&apps, report).await?;
    report.progress(db.name(), "restoring (pgBackRest)");
    let started = Instant::now();
    let ran = db.run(&plan.detached_script()).await;
    start_apps(&apps, report).await;
    let ran = ran?;
    if !ran.success() {
        bail!("{}: {}", db.name(), ran.stderr_tail());
    }
    let took = started.elapsed().as_secs_f64();
    Ok(match in_place {
        false => format!(
            "{}: restored to {target} in {took:.1} s into a scratch PostgreSQL (the running database is untouched).\n\
             Inspect it there: sudo -u postgres psql -p {} {}\n\
             Stop it when done: sudo systemctl stop {}",
            db.name(),
            restore::SCRATCH_PORT,
            config.database.name,
            plan.scratch_unit()
        ),
        true => {
            let kept = restore::kept_dir(&ran.stdout_text());
            format!(
                "{}: the database is restored to {target} in {took:.1} s and serves again.\n\
                 The data directory as it was is kept in {kept} (remove it when sure).\n\
                 Take a fresh backup now: tandem backup",
                db.name()
            )
        }
    })
}

/// Stops gunicorn and the background processes on each app server; when one fails, those
/// stopped start again and the error says which.
pub(super) async fn stop_apps(
    apps: &[(&Ssh, Vars)],
    report: &dyn crate::model::report::Report,
) -> anyhow::Result<()> {
    for (host, vars) in apps {
        report.progress(host.name(), "stopping gunicorn for the restore");
        let stopped = host.run(&restore::app_units(vars, false)).await?;
        if !stopped.success() {
            start_apps(apps, report).await;
            bail!(
                "{}: stopping gunicorn failed: {}",
                host.name(),
                stopped.stderr_tail()
            );
        }
    }
    Ok(())
}

pub(super) async fn start_apps(apps: &[(&Ssh, Vars)], report: &dyn crate::model::report::Report) {
    for (host, vars) in apps {
        match host.run(&restore::app_units(vars, true)).await {
            Ok(o) if o.success() => report.progress(host.name(), "gunicorn started again"),
            Ok(o) => report.progress(
                host.name(),
                &format!("starting gunicorn failed: {}", o.stderr_tail()),
            ),
            Err(e) => report.progress(host.name(), &format!("starting gunicorn failed: {e:#}")),
        }
    }
}
