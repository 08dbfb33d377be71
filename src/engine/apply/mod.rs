//! Apply: works through a `Plan` along a declared graph of stages (`stages::STAGES`): the
//! database side and, meanwhile, what on the app servers needs no database (provisioning, the
//! certificate, each release's code and virtualenv); then the releases go live, the first app
//! server's first (it runs the migrations). `scheduler` runs that graph over any `Transport`;
//! `host` applies one host's part of a stage: take the lockout guard when sshd or ufw change,
//! run each change, run the notified handlers after each role, confirm SSH over a new
//! connection, disarm, and append what changed to the audit log.

mod audit;
mod guard;
mod host;
mod scheduler;
mod stages;

use std::time::Duration;

use futures::future::{LocalBoxFuture, join_all};

use crate::config::Role;
use crate::engine::Engine;
use crate::engine::transport::{RemoteLock, Transport};
use crate::model::plan::{HostPlan, Plan};
use crate::model::report::Report;

pub use audit::{summary, who};

pub struct ApplyOptions {
    pub lock_wait: Duration,
    /// Who runs this (for the lock owner and the audit log).
    pub who: String,
}

/// What happened on one host.
#[derive(Debug, serde::Serialize)]
pub struct HostReport {
    pub server: String,
    pub applied: Vec<Applied>,
    /// Why the host stopped, when it did.
    pub error: Option<String>,
}

/// One change or handler that ran, and how long it took.
#[derive(Debug, serde::Serialize)]
pub struct Applied {
    pub what: String,
    pub seconds: f32,
}

/// Takes every host's apply lock; the engine holds them until it is closed. First all at
/// once without waiting (the usual case, nobody else at work: one round trip in all); when
/// any host's is held, those taken are released and the locks are taken one host after the
/// other in config order, waiting (two runs that each took some hosts and waited for the
/// rest could wait on each other until both time out; a run that waits holds only hosts
/// before the one it waits for).
pub async fn lock_all(engine: &mut Engine, options: &ApplyOptions) -> anyhow::Result<()> {
    let who = format!("{} run {}", options.who, engine.run_id);
    let report = &*engine.report;
    let tried = join_all(engine.hosts.iter().map(|h| h.try_lock(&who, report))).await;
    let mut taken = Vec::new();
    let mut failed = None;
    for attempt in tried {
        match attempt {
            Ok(Some(lock)) => taken.push(lock),
            Ok(None) => {}
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    if failed.is_none() && taken.len() == engine.hosts.len() {
        engine.locks = taken;
        return Ok(());
    }
    join_all(taken.into_iter().map(RemoteLock::release)).await;
    if let Some(e) = failed {
        return Err(e);
    }
    let mut locks: Vec<RemoteLock> = Vec::new();
    for host in &engine.hosts {
        locks.push(host.lock(&who, options.lock_wait, report).await?);
    }
    engine.locks = locks;
    Ok(())
}

/// Plans the hosts at these indices again (in that order), once their packages are
/// installed.
pub type Replan<'a> = dyn Fn(Vec<usize>) -> LocalBoxFuture<'a, anyhow::Result<Vec<HostPlan>>> + 'a;

/// Logs in to the host at this index over a new connection, as configured, and runs a
/// command as root: what proves a change to sshd or ufw left the operator a way in.
pub type ConfirmLogin<'a> = dyn Fn(usize) -> LocalBoxFuture<'a, anyhow::Result<()>> + 'a;

/// The servers apply works on and how it reaches them; generic over the transport so the
/// stage graph's ordering and failure isolation are tested without servers.
pub struct Fleet<'a, T: Transport> {
    /// One per server, in config order.
    pub hosts: &'a [T],
    /// Each host's role, in the same order.
    pub roles: Vec<Role>,
    pub deploy_user: &'a str,
    pub run_id: &'a str,
    /// Who runs this (the work lock's audit line and the audit log).
    pub who: &'a str,
    pub report: &'a dyn Report,
    pub confirm_login: &'a ConfirmLogin<'a>,
}

/// Applies `plan`, holding the locks taken before. The database side (backup and db servers)
/// and the app side each install their packages, are planned again (`replan`) and go on,
/// without waiting for the other side's packages; only the releases wait for the database.
/// One report per host: the database servers', the backup servers', then the app servers'.
pub async fn apply(
    engine: &Engine,
    plan: &Plan,
    options: &ApplyOptions,
    replan: &Replan<'_>,
) -> Vec<HostReport> {
    let confirm = |i: usize| -> LocalBoxFuture<'_, anyhow::Result<()>> {
        let server = &engine.servers[i];
        Box::pin(guard::confirm_login(
            &server.name,
            &server.ssh,
            &engine.options,
            &*engine.report,
        ))
    };
    let fleet = Fleet {
        hosts: &engine.hosts,
        roles: engine.servers.iter().map(|s| s.role).collect(),
        deploy_user: &engine.config.ssh.deploy_user,
        run_id: &engine.run_id,
        who: &options.who,
        report: &*engine.report,
        confirm_login: &confirm,
    };
    let reports = scheduler::run(stages::STAGES, &fleet, plan, replan).await;
    by_side(reports, &fleet.roles)
}

/// The reports in the order the sides run: database, backup, then the app servers, each in
/// config order.
fn by_side(reports: Vec<HostReport>, roles: &[Role]) -> Vec<HostReport> {
    let rank = |role: Role| match role {
        Role::Db => 0,
        Role::Witness => 1,
        Role::Backup => 2,
        Role::App => 3,
    };
    let mut ranked: Vec<(usize, HostReport)> = reports
        .into_iter()
        .zip(roles)
        .map(|(r, &role)| (rank(role), r))
        .collect();
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, r)| r).collect()
}
