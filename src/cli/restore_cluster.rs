//! `tandem restore --in-place` on a database cluster: the primary is restored as a single db
//! server would be, then the cluster is built again around it, as when a running db server
//! got its standby: Patroni takes the recovered PostgreSQL over (the seed) and the standby's
//! data, of a history the restore left behind, is set aside for a copy of the new primary's.
//!
//! The order keeps every step undoable: the app servers stop (nothing writes), the primary
//! archives its newest WAL, the standby's Patroni stops (so it cannot take over), then the
//! primary's restore runs detached (`Restore::detached_cluster_script`). Whether it worked or
//! put the old data back, Patroni takes the primary's PostgreSQL over again and the standby
//! rejoins; only then do the app servers start.

use std::time::Instant;

use anyhow::bail;

use super::backup::{answers_as_primary, start_apps, stop_apps};
use crate::backup::restore::{self, Restore, Target};
use crate::config::{Cluster, Config, Server};
use crate::engine::transport::{Ssh, Transport};
use crate::engine::vars::{HostFacts, Secrets, Vars};
use crate::model::report::Report;

/// The PostgreSQL version a member runs (Debian's layout names its units and paths after it).
async fn version(host: &Ssh) -> anyhow::Result<String> {
    let out = host.run(crate::model::platform::INSTALLED_VERSION).await?;
    let version = out.stdout_text().trim().to_string();
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit()) {
        bail!("{}: no PostgreSQL cluster found", host.name());
    }
    Ok(version)
}

/// The Patroni membership of `server` as its installed version names it.
async fn member(
    config: &Config,
    server: &Server,
    host: &Ssh,
    seed: bool,
) -> anyhow::Result<crate::model::desired::PatroniSpec> {
    let facts = HostFacts {
        postgres_version: version(host).await?,
        machine: crate::postgres::tuning::Machine::assumed(),
    };
    let vars = Vars::new(config, server, &facts, Secrets::redacted(config));
    let mut spec = crate::cluster::member_spec(config, &vars)
        .ok_or_else(|| anyhow::anyhow!("{} is not a member of a cluster", server.name))?;
    spec.seed = seed;
    Ok(spec)
}

/// Runs the in-place restore on `cluster`'s members (`hosts[..2]`, in `cluster.members`'
/// order) with the app servers' `apps` stopped around it; says what happened.
pub async fn run(
    config: &Config,
    cluster: &Cluster<'_>,
    members: &[Ssh],
    apps: &[(&Ssh, Vars)],
    target: &Target,
    report: &dyn Report,
) -> anyhow::Result<String> {
    let password = crate::config::secret::db_password(config)?;
    let mut primary = None;
    for (i, host) in members.iter().enumerate() {
        if answers_as_primary(host).await? {
            primary = Some(i);
        }
    }
    let Some(p) = primary else {
        bail!(
            "no db server of the cluster answers as the primary (tandem db status says why): an in-place restore rebuilds the cluster around its primary"
        );
    };
    let s = 1 - p;
    let (primary_host, standby_host) = (&members[p], &members[s]);
    let primary_spec = member(config, cluster.members[p], primary_host, true).await?;
    let standby_spec = member(config, cluster.members[s], standby_host, false).await?;
    let vars = Vars::for_paths(config, cluster.members[p]);
    let plan = Restore {
        vars: &vars,
        target,
        in_place: true,
    };

    stop_apps(apps, report).await?;
    let started = Instant::now();
    // Nothing writes now: the primary's newest WAL goes to the repository first, so the
    // latest moment is now.
    report.progress(primary_host.name(), "archiving the newest WAL");
    let archived = primary_host
        .run(&restore::archive_newest(&vars.backup.stanza))
        .await?;
    if !archived.success() {
        report.progress(
            primary_host.name(),
            &format!(
                "warning: the newest WAL did not reach the repository ({}): restoring what it has",
                archived.stderr_tail()
            ),
        );
    }
    report.progress(standby_host.name(), "stopping Patroni (the standby)");
    let stopped = standby_host
        .run(&format!(
            "systemctl stop {}",
            crate::config::identifier::shell_word(&standby_spec.unit)
        ))
        .await?;
    if !stopped.success() {
        start_apps(apps, report).await;
        bail!(
            "{}: stopping Patroni failed, nothing was restored: {}",
            standby_host.name(),
            stopped.stderr_tail()
        );
    }

    report.progress(primary_host.name(), "restoring (pgBackRest)");
    let restored = primary_host
        .run(&plan.detached_cluster_script(&primary_spec))
        .await;
    let restored_ok = matches!(&restored, Ok(out) if out.success());
    // Either way the primary's PostgreSQL (restored, or put back as it was) is Patroni's again
    // and the standby rejoins: a copy of the new history, or its own data when nothing changed.
    report.progress(primary_host.name(), "handing PostgreSQL to Patroni again");
    let seeded = primary_host
        .run(&crate::resource::patroni_member::join_script(
            &primary_spec,
            password.expose(),
            false,
        ))
        .await;
    report.progress(standby_host.name(), "rejoining as the standby");
    let joined = standby_host
        .run(&crate::resource::patroni_member::join_script(
            &standby_spec,
            password.expose(),
            restored_ok,
        ))
        .await;
    start_apps(apps, report).await;

    let restored = restored?;
    if !restored.success() {
        bail!(
            "{}: {}\nthe cluster runs again on the data it had",
            primary_host.name(),
            restored.stderr_tail()
        );
    }
    for (host, ran) in [(primary_host, seeded), (standby_host, joined)] {
        let ran = ran?;
        if !ran.success() {
            bail!(
                "{}: the database was restored, but Patroni did not take it back: {} (tandem db status; tandem apply hands it over again)",
                host.name(),
                ran.stderr_tail()
            );
        }
    }
    let kept = restore::kept_dir(&restored.stdout_text());
    Ok(format!(
        "{}: the database cluster is restored to {target} in {:.1} s and serves again ({} its primary, {} its standby, a copy of it).\n\
         The primary's data directory as it was is kept in {kept}; the standby's old one beside its own (remove them when sure).\n\
         Take a fresh backup now: tandem backup",
        primary_host.name(),
        started.elapsed().as_secs_f64(),
        primary_host.name(),
        standby_host.name(),
    ))
}
