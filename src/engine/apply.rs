//! Apply: works through a `Plan`: the database server and, meanwhile, what on the app servers
//! needs no database (provisioning, certificate, each release's code and virtualenv); then
//! the releases go live, the first app server's first (it runs the migrations). Per host:
//! take the lock, arm the lockout guard when sshd or ufw change, run each change, run the
//! notified handlers after each role, confirm SSH over a new connection, disarm, and append
//! what changed to the audit log.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::future::{LocalBoxFuture, join_all};

use crate::config::Role;
use crate::config::identifier::shell_word;
use crate::engine::Engine;
use crate::engine::transport::{RemoteLock, Ssh, SshOptions, Transport};
use crate::model::plan::{Change, HandlerRun, HostPlan, Plan};
use crate::model::playbook::Phase;
use crate::model::report::Report;
use crate::resource::script::{STATE_DIR, payload};

/// Seconds after which an armed guard restores sshd and ufw by itself.
const GUARD_SECONDS: u64 = 120;

pub struct ApplyOptions {
    pub lock_wait: Duration,
    /// Who runs this (for the lock owner and the audit log).
    pub who: String,
}

/// Whose run a remote script belongs to (for the work lock's audit line) and where its
/// progress goes.
#[derive(Clone, Copy)]
struct Run<'a> {
    id: &'a str,
    who: &'a str,
    report: &'a dyn Report,
}

impl<'a> Run<'a> {
    fn of(engine: &'a Engine, options: &'a ApplyOptions) -> Run<'a> {
        Run {
            id: &engine.run_id,
            who: &options.who,
            report: &*engine.report,
        }
    }

    /// `script` under the work lock, announced in the audit log as `what`.
    fn held(&self, script: &str, what: &str) -> String {
        crate::resource::script::held(script, self.id, self.who, what, &[])
    }

    /// A change under the work lock, its handlers recorded as owed first.
    fn held_change(&self, change: &Change) -> String {
        crate::resource::script::held(
            &change.script,
            self.id,
            self.who,
            &change.summary,
            &change.notify,
        )
    }
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

/// Takes every host's apply lock, one host after the other in config order (two runs that
/// each took some hosts concurrently could wait on each other until both time out); the
/// engine holds them until it is closed.
pub async fn lock_all(engine: &mut Engine, options: &ApplyOptions) -> anyhow::Result<()> {
    let who = format!("{} run {}", options.who, engine.run_id);
    let mut locks: Vec<RemoteLock> = Vec::new();
    for host in &engine.hosts {
        locks.push(host.lock(&who, options.lock_wait, &*engine.report).await?);
    }
    engine.locks = locks;
    Ok(())
}

/// Plans the hosts at these engine indices again (in that order), once their packages are
/// installed.
pub type Replan<'a> = dyn Fn(Vec<usize>) -> LocalBoxFuture<'a, anyhow::Result<Vec<HostPlan>>> + 'a;

/// Runs the prepare changes (missing packages, starting a stopped PostgreSQL) of the hosts at
/// `side`, all at once; when any ran, plans those hosts again (the packages created files,
/// services and database facts the first probe could not see) and says what that added.
/// Returns the plan with the side's hosts refreshed and a report per host of `side`, or only
/// the reports when something failed.
async fn prepare_side(
    engine: &Engine,
    plan: &Plan,
    side: &[usize],
    options: &ApplyOptions,
    replan: &Replan<'_>,
) -> Result<(Plan, Vec<HostReport>), Vec<HostReport>> {
    let run = Run::of(engine, options);
    let prepared = side
        .iter()
        .any(|&i| plan.hosts[i].changes.iter().any(|c| c.prepare));
    let mut reports = join_all(side.iter().map(|&i| async move {
        let host = &plan.hosts[i];
        let mut report = HostReport {
            server: host.server.clone(),
            applied: Vec::new(),
            error: None,
        };
        for change in host.changes.iter().filter(|c| c.prepare) {
            match run_change(&engine.hosts[i], &host.server, change, run).await {
                Ok(applied) => report.applied.push(applied),
                Err(e) => report.error = Some(format!("{e:#}")),
            }
        }
        if !report.applied.is_empty() || report.error.is_some() {
            write_audit(engine, i, &report, options).await;
        }
        report
    }))
    .await;
    if reports.iter().any(|r| r.error.is_some()) {
        return Err(reports);
    }
    if !prepared {
        return Ok((plan.clone(), reports));
    }
    let fresh = match replan(side.to_vec()).await {
        Ok(fresh) => fresh,
        Err(e) => {
            if let Some(first) = reports.first_mut() {
                first.error = Some(format!("probing again after the packages: {e:#}"));
            }
            return Err(reports);
        }
    };
    let mut refreshed = plan.clone();
    for (&i, host) in side.iter().zip(fresh) {
        let before: Vec<&str> = plan.hosts[i]
            .changes
            .iter()
            .map(|c| c.summary.as_str())
            .collect();
        for c in host
            .changes
            .iter()
            .filter(|c| !before.contains(&c.summary.as_str()))
        {
            engine.report.progress(
                &host.server,
                &format!("after preparing (packages, services), also: {}", c.summary),
            );
        }
        refreshed.hosts[i] = host;
    }
    Ok((refreshed, reports))
}

/// Puts the reports of the steps that ran `earlier` in front of the later ones of the same
/// server.
fn prepend(reports: &mut Vec<HostReport>, earlier: Vec<HostReport>) {
    for before in earlier.into_iter().rev() {
        match reports.iter_mut().find(|r| r.server == before.server) {
            Some(r) => {
                let mut applied = before.applied;
                applied.append(&mut r.applied);
                r.applied = applied;
                if r.error.is_none() {
                    r.error = before.error;
                }
            }
            None => reports.insert(0, before),
        }
    }
}

/// `host` with only the changes and handlers of the phases `keep` takes.
fn part_where(plan: &Plan, i: usize, keep: &dyn Fn(Phase) -> bool) -> HostPlan {
    let mut host = plan.hosts[i].clone();
    host.changes.retain(|c| keep(c.role));
    host.handlers.retain(|h| keep(h.role));
    host
}

/// The part of host `i` in `phase`, or (`None`) its provisioning: every phase but the
/// certificate's and the release's.
fn part(plan: &Plan, i: usize, phase: Option<Phase>) -> HostPlan {
    part_where(plan, i, &|role: Phase| match phase {
        Some(p) => role == p,
        None => !matches!(role, Phase::Certificate | Phase::Build | Phase::Release),
    })
}

/// Applies `plan`, holding the locks taken before. The database side (backup and db servers)
/// and the app side each install their packages, are planned again (`replan`) and go on,
/// without waiting for the other side's packages; only the releases wait for the database.
pub async fn apply(
    engine: &Engine,
    plan: &Plan,
    options: &ApplyOptions,
    replan: &Replan<'_>,
) -> Vec<HostReport> {
    let order = |role: Role| -> Vec<usize> {
        engine
            .servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.role == role)
            .map(|(i, _)| i)
            .collect()
    };
    let apps = order(Role::App);
    // The database side. The backup server first, so the db server's first archived WAL finds
    // its repository; its stanza and first backup once the db server archives. The deployment
    // does not wait on it: a failed backup server is reported, and the others go on.
    let database_side = async {
        let backups = order(Role::Backup);
        let side: Vec<usize> = order(Role::Db).into_iter().chain(backups.clone()).collect();
        let (plan, prepared) = match prepare_side(engine, plan, &side, options, replan).await {
            Ok(done) => done,
            Err(reports) => return (reports, false),
        };
        let plan = &plan;
        let mut backup_reports = join_all(backups.iter().map(|&i| async move {
            let host = part_where(plan, i, &|p| p != Phase::Stanza);
            apply_host(engine, i, &host, options).await
        }))
        .await;
        let mut reports = Vec::new();
        for i in order(Role::Db) {
            reports.push(apply_host(engine, i, &plan.hosts[i], options).await);
        }
        let db_ok = reports.iter().all(|r| r.error.is_none());
        if db_ok {
            let stanzas = join_all(
                backups
                    .iter()
                    .zip(&backup_reports)
                    .filter(|(_, r)| r.error.is_none())
                    .map(|(&i, _)| async move {
                        let host = part_where(plan, i, &|p| p == Phase::Stanza);
                        apply_host(engine, i, &host, options).await
                    }),
            )
            .await;
            for r in stanzas {
                merge(&mut backup_reports, r);
            }
        }
        reports.extend(backup_reports);
        prepend(&mut reports, prepared);
        (reports, db_ok)
    };
    // The app side needs no database until a release goes live, so it runs meanwhile: first
    // what a new release's build needs (the base provisioning, the app user and directories);
    // then the build beside the rest of the provisioning, and after that rest the certificate
    // (the ACME issuer hands it to the others, provisioned by then).
    let app_side = async {
        let (plan, prepared) = match prepare_side(engine, plan, &apps, options, replan).await {
            Ok(done) => done,
            Err(reports) => return (reports, plan.clone()),
        };
        let (grounds, rests): (Vec<HostPlan>, Vec<HostPlan>) = apps
            .iter()
            .map(|&i| split_for_build(part(&plan, i, None)))
            .unzip();
        let run_all = |hosts: Vec<HostPlan>| {
            join_all(
                apps.iter()
                    .zip(hosts)
                    .map(|(&i, host)| async move { apply_host(engine, i, &host, options).await }),
            )
        };
        let failed = |reports: &[HostReport]| reports.iter().any(|r| r.error.is_some());
        let mut app_reports = run_all(grounds).await;
        if !failed(&app_reports) {
            let provisioning = async {
                let mut reports = run_all(rests).await;
                if !failed(&reports) {
                    let certificates = apps
                        .iter()
                        .map(|&i| part(&plan, i, Some(Phase::Certificate)));
                    for r in run_all(certificates.collect()).await {
                        merge(&mut reports, r);
                    }
                }
                reports
            };
            let builds = run_all(
                apps.iter()
                    .map(|&i| part(&plan, i, Some(Phase::Build)))
                    .collect(),
            );
            let (provisioned, built) = tokio::join!(provisioning, builds);
            for r in provisioned.into_iter().chain(built) {
                merge(&mut app_reports, r);
            }
        }
        prepend(&mut app_reports, prepared);
        (app_reports, plan)
    };
    let ((mut reports, db_ok), (mut app_reports, plan)) = tokio::join!(database_side, app_side);
    if !db_ok {
        // The migrations need the database: no release goes live, and the servers that had
        // one to take live say so.
        for (&i, report) in apps.iter().zip(app_reports.iter_mut()) {
            let waiting = plan.hosts[i]
                .changes
                .iter()
                .any(|c| c.role == Phase::Release);
            if waiting && report.error.is_none() {
                report.error = Some("release not taken live: the database server failed".into());
            }
        }
        reports.extend(app_reports);
        return reports;
    }
    // Then the release of the first app server, which runs the migrations; then the others
    // concurrently (concurrent migrations would race).
    let releases: Vec<HostPlan> = apps
        .iter()
        .map(|&i| part(&plan, i, Some(Phase::Release)))
        .collect();
    if let (true, Some(&first), Some(first_release)) = (
        app_reports.iter().all(|r| r.error.is_none()),
        apps.first(),
        releases.first(),
    ) {
        let first_report = apply_host(engine, first, first_release, options).await;
        let first_ok = first_report.error.is_none();
        merge(&mut app_reports, first_report);
        if first_ok {
            let rest = join_all(
                apps.iter()
                    .zip(&releases)
                    .skip(1)
                    .map(|(&i, host)| async move { apply_host(engine, i, host, options).await }),
            )
            .await;
            for r in rest {
                merge(&mut app_reports, r);
            }
        }
    }
    reports.extend(app_reports);
    reports
}

/// Splits an app server's provisioning where its release build may start: up to the last
/// change the build needs first, and the rest. Each handler goes with the part whose changes
/// notify it (the rest when both do: it runs once, last).
fn split_for_build(host: HostPlan) -> (HostPlan, HostPlan) {
    let cut = host
        .changes
        .iter()
        .rposition(|c| c.before_build)
        .map_or(0, |last| last + 1);
    let host_handlers = host.handlers.clone();
    let mut ground = host.clone();
    let mut rest = host;
    ground.changes.truncate(cut);
    rest.changes.drain(..cut);
    let notifies = |changes: &[Change], h: &HandlerRun| {
        changes
            .iter()
            .any(|c| c.role == h.role && c.notify.contains(&h.name))
    };
    let ground_only = |h: &HandlerRun| notifies(&ground.changes, h) && !notifies(&rest.changes, h);
    let (only, others): (Vec<HandlerRun>, Vec<HandlerRun>) =
        host_handlers.into_iter().partition(|h| ground_only(h));
    ground.handlers = only;
    rest.handlers = others;
    (ground, rest)
}

/// Adds `more` to the report of the same server.
fn merge(reports: &mut [HostReport], more: HostReport) {
    if let Some(r) = reports.iter_mut().find(|r| r.server == more.server) {
        r.applied.extend(more.applied);
        if more.error.is_some() {
            r.error = more.error;
        }
    }
}

async fn apply_host(
    engine: &Engine,
    index: usize,
    host: &HostPlan,
    options: &ApplyOptions,
) -> HostReport {
    let mut report = HostReport {
        server: host.server.clone(),
        applied: Vec::new(),
        error: None,
    };
    if host.changes.is_empty() {
        return report;
    }
    let ssh = &engine.hosts[index];
    if let Err(e) = run_host(engine, ssh, index, host, options, &mut report).await {
        report.error = Some(format!("{e:#}"));
    }
    write_audit(engine, index, &report, options).await;
    report
}

/// Appends what ran on host `index` to its audit log; a failure to is said, not fatal.
async fn write_audit(engine: &Engine, index: usize, report: &HostReport, options: &ApplyOptions) {
    let audit = audit_script(&engine.run_id, &options.who, report);
    if let Err(e) = engine.hosts[index].run(&audit).await {
        engine.report.progress(
            &report.server,
            &format!("could not write the audit log: {e:#}"),
        );
    }
}

async fn run_host(
    engine: &Engine,
    ssh: &Ssh,
    index: usize,
    host: &HostPlan,
    options: &ApplyOptions,
    report: &mut HostReport,
) -> anyhow::Result<()> {
    let name = &host.server;
    let run = Run::of(engine, options);
    let guarded = host.changes.iter().any(|c| c.guarded);
    if guarded {
        let arm = run.held(
            &arm_guard_script(&engine.config.ssh.deploy_user),
            "arm the lockout guard",
        );
        run_checked(ssh, &arm, "arming the lockout guard").await?;
    }
    let result = run_changes(ssh, host, report, run).await;
    if !guarded {
        return result;
    }
    // Whatever happened, SSH must still let the operator in, over a NEW connection.
    let server = &engine.servers[index];
    match confirm_ssh(&server.name, &server.ssh, &engine.options, &*engine.report).await {
        Ok(()) => {
            run_checked(ssh, DISARM_GUARD, "disarming the lockout guard").await?;
            result
        }
        Err(e) => {
            let revert = ssh
                .run(&format!("/bin/sh {STATE_DIR}/guard/revert; {DISARM_GUARD}"))
                .await;
            let how = match revert {
                Ok(out) if out.success() => "the previous sshd, ufw, authorized_keys and sudoers \
                     settings were restored"
                    .to_string(),
                _ => format!(
                    "the host restores the previous sshd, ufw, authorized_keys and sudoers settings \
                     by itself within {GUARD_SECONDS}s of arming"
                ),
            };
            let check = match confirm_ssh(
                &server.name,
                &server.ssh,
                &engine.options,
                &*engine.report,
            )
            .await
            {
                Ok(()) => "a new connection works again".to_string(),
                Err(again) => format!(
                    "a new connection as configured STILL fails ({}): log in the way you did before \
                     this run (e.g. --bootstrap-user) and check",
                    format!("{again:#}").lines().next().unwrap_or("")
                ),
            };
            bail!("{name}: after the changes a new SSH connection failed ({e:#}); {how}; {check}")
        }
    }
}

async fn run_changes(
    ssh: &Ssh,
    host: &HostPlan,
    report: &mut HostReport,
    run: Run<'_>,
) -> anyhow::Result<()> {
    let mut roles: Vec<Phase> = Vec::new();
    for c in &host.changes {
        if !roles.contains(&c.role) {
            roles.push(c.role);
        }
    }
    for role in roles {
        for change in host.changes.iter().filter(|c| c.role == role && !c.prepare) {
            let applied = run_change(ssh, &host.server, change, run).await?;
            report.applied.push(applied);
        }
        for h in host.handlers.iter().filter(|h| h.role == role) {
            stop_if_unread(run.report, &format!("handler {}", h.name))?;
            let started = Instant::now();
            // Done: no longer owed (a handler that fails stays owed for the next run).
            let script = run.held(
                &format!(
                    "{}rm -f {}\n",
                    h.effect.script(h.check.as_ref(), &host.discovery),
                    crate::resource::script::owed_path(&h.name)
                ),
                &format!("handler {}", h.name),
            );
            let out = ssh.run(&script).await?;
            if !out.success() {
                let failed = format!(
                    "{}: handler `{}` failed: {}",
                    host.server,
                    h.name,
                    out.stderr_tail()
                );
                if h.check.is_none() {
                    bail!("{failed}");
                }
                // The config failed its check: put back what this role changed for it, so a
                // broken file never stays in place for the next restart to trip over.
                let undo: Vec<(&str, &str)> = host
                    .changes
                    .iter()
                    .filter(|c| c.role == role && c.notify.contains(&h.name))
                    .filter_map(|c| Some((c.summary.as_str(), c.undo.as_deref()?)))
                    .rev()
                    .collect();
                let script: String = undo.iter().map(|(_, s)| *s).collect();
                let what: Vec<&str> = undo.iter().map(|(summary, _)| *summary).collect();
                let put_back = ssh
                    .run(&run.held(
                        &format!("set -e\n{script}"),
                        &format!("undo for {}", h.name),
                    ))
                    .await;
                let why = match put_back {
                    Ok(o) if o.success() => {
                        bail!("{failed}\nput back as before this run: {}", what.join("; "))
                    }
                    Ok(o) => o.stderr_tail(),
                    Err(e) => format!("{e:#}"),
                };
                bail!(
                    "{failed}\nputting back the previous files ALSO failed: {why}; backups are in {STATE_DIR}/backups/{}",
                    run.id
                )
            }
            let said = out.stdout_text();
            run.report.progress(
                &host.server,
                &format!(
                    "handler {} ok ({:.1}s){}",
                    h.name,
                    started.elapsed().as_secs_f32(),
                    if said.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", said.trim())
                    }
                ),
            );
            report.applied.push(Applied {
                what: format!("handler {}", h.name),
                seconds: started.elapsed().as_secs_f32(),
            });
        }
    }
    Ok(())
}

async fn run_change(
    ssh: &Ssh,
    server: &str,
    change: &Change,
    run: Run<'_>,
) -> anyhow::Result<Applied> {
    stop_if_unread(run.report, &change.summary)?;
    let started = Instant::now();
    let out = watched(
        ssh,
        server,
        &change.summary,
        &run.held_change(change),
        run.report,
    )
    .await
    .with_context(|| format!("{server}: {}", change.summary))?;
    if !out.success() {
        bail!(
            "{server}: `{}` failed (exit {}): {}",
            change.summary,
            out.status,
            out.stderr_tail()
        );
    }
    let seconds = started.elapsed().as_secs_f32();
    run.report
        .progress(server, &format!("{} ok ({seconds:.1}s)", change.summary));
    Ok(Applied {
        what: change.summary.clone(),
        seconds,
    })
}

/// Stops the run before `next` when whoever read its progress went away (a closed stderr):
/// what ran is in the audit log, and the next run converges from there.
fn stop_if_unread(report: &dyn Report, next: &str) -> anyhow::Result<()> {
    if report.closed() {
        bail!("stopped before `{next}`: tandem's progress output (stderr) was closed");
    }
    Ok(())
}

/// How often a step that is still running says so (a release's pip install can take minutes).
const STILL_RUNNING_EVERY: Duration = Duration::from_secs(15);

/// Runs one step's `script`, streaming its stderr to the report as it comes (shown with `-v`)
/// and, every `STILL_RUNNING_EVERY`, saying that `what` is still running, for how long, and
/// the last line it wrote: no step is silent for minutes.
async fn watched(
    ssh: &impl Transport,
    server: &str,
    what: &str,
    script: &str,
    report: &dyn Report,
) -> anyhow::Result<crate::engine::transport::Output> {
    // tokio's clock, which a test can pause and advance.
    let started = tokio::time::Instant::now();
    let last = std::sync::Mutex::new(String::new());
    let line = |text: &str| {
        report.remote_output(server, text);
        if !text.trim().is_empty() {
            *last.lock().expect("not poisoned") = text.trim().to_string();
        }
    };
    let run = ssh.run_watched(script, &line);
    tokio::pin!(run);
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + STILL_RUNNING_EVERY,
        STILL_RUNNING_EVERY,
    );
    loop {
        tokio::select! {
            out = &mut run => return out,
            _ = ticks.tick() => {
                let last = last.lock().expect("not poisoned").clone();
                report.progress(
                    server,
                    &format!(
                        "still running ({:.0}s): {what}{}",
                        started.elapsed().as_secs_f32(),
                        if last.is_empty() { String::new() } else { format!(" | {last}") }
                    ),
                );
            }
        }
    }
}

async fn run_checked(ssh: &Ssh, script: &str, what: &str) -> anyhow::Result<()> {
    let out = ssh.run(script).await?;
    if !out.success() {
        bail!("{}: {what} failed: {}", ssh.name(), out.stderr_tail());
    }
    Ok(())
}

/// Logs in over a new connection as the configured user and runs a command through sudo.
/// Retried with backoff for a bounded time: right after `reload ssh` on a loaded host, sshd
/// may refuse connections for a moment, and a correct change must not be rolled back for that.
async fn confirm_ssh(
    name: &str,
    destination: &str,
    options: &SshOptions,
    report: &dyn Report,
) -> anyhow::Result<()> {
    let fresh = SshOptions {
        bootstrap_user: None,
        accept_new_host_keys: false,
        ..options.clone()
    };
    let mut wait = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        let result = async {
            let ssh = Ssh::connect(name, destination, &fresh).await?;
            let out = ssh.run("true").await;
            ssh.close().await;
            let out = out?;
            anyhow::ensure!(
                out.success(),
                "a command over the new connection failed: {}",
                out.stderr_tail()
            );
            Ok(())
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= CONFIRM_ATTEMPTS => {
                return Err(e.context(format!("after {attempt} attempts")));
            }
            Err(e) => {
                report.progress(
                    name,
                    &format!(
                        "SSH not confirmed yet (attempt {attempt} of {CONFIRM_ATTEMPTS}): {}",
                        format!("{e:#}").lines().next().unwrap_or("")
                    ),
                );
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
        }
    }
}

/// Attempts at confirming SSH after a guarded change: 0.5 + 1 + 2 + 4 + 8 s of waiting in
/// all, well inside the guard's own deadline.
const CONFIRM_ATTEMPTS: u32 = 6;

/// Saves what decides whether the operator can log in (sshd's drop-ins, ufw, the deploy user's
/// authorized_keys, sudoers.d), writes a revert script, and schedules it with a transient
/// systemd timer: if tandem cannot confirm SSH access (or dies), the host puts all of it back
/// by itself.
fn arm_guard_script(deploy_user: &str) -> String {
    let revert = format!(
        "#!/bin/sh\nG={STATE_DIR}/guard\n\
         rm -rf /etc/ssh/sshd_config.d && cp -a \"$G/sshd_config.d\" /etc/ssh/sshd_config.d\n\
         rm -rf /etc/sudoers.d && cp -a \"$G/sudoers.d\" /etc/sudoers.d\n\
         H=$(getent passwd {u} | cut -d: -f6)\n\
         if [ -n \"$H\" ]; then if [ -e \"$G/authorized_keys\" ]; then cp -a \"$G/authorized_keys\" \"$H/.ssh/authorized_keys\"; \
           else rm -f \"$H/.ssh/authorized_keys\"; fi; fi\n\
         systemctl reload ssh 2>/dev/null || systemctl restart ssh 2>/dev/null || true\n\
         if systemctl is-enabled ssh.socket >/dev/null 2>&1; then systemctl daemon-reload; systemctl stop ssh.service; systemctl restart ssh.socket; fi\n\
         if [ -d \"$G/ufw\" ]; then rm -rf /etc/ufw && cp -a \"$G/ufw\" /etc/ufw; fi\n\
         if [ \"$(cat \"$G/ufw-state\")\" = active ]; then ufw reload; elif command -v ufw >/dev/null; then ufw --force disable; fi\n\
         echo \"$(date -Is) lockout guard: restored sshd_config.d, sudoers.d, authorized_keys and ufw\" >>{STATE_DIR}/audit.log\n",
        u = shell_word(deploy_user),
    );
    format!(
        "set -e\numask 077\nG={STATE_DIR}/guard\nrm -rf \"$G\"\nmkdir -p \"$G\"\n\
         if [ -d /etc/ssh/sshd_config.d ]; then cp -a /etc/ssh/sshd_config.d \"$G/\"; else mkdir \"$G/sshd_config.d\"; fi\n\
         cp -a /etc/sudoers.d \"$G/sudoers.d\"\n\
         H=$(getent passwd {u} | cut -d: -f6 || true)\n\
         if [ -n \"$H\" ] && [ -e \"$H/.ssh/authorized_keys\" ]; then cp -a \"$H/.ssh/authorized_keys\" \"$G/authorized_keys\"; fi\n\
         if [ -d /etc/ufw ]; then cp -a /etc/ufw \"$G/ufw\"; fi\n\
         if command -v ufw >/dev/null && ufw status | grep -q '^Status: active'; then echo active; else echo inactive; fi >\"$G/ufw-state\"\n\
         {}\nchmod 700 \"$G/revert\"\n\
         systemctl stop tandem-guard.timer 2>/dev/null || true\n\
         systemctl reset-failed tandem-guard.timer tandem-guard.service 2>/dev/null || true\n\
         systemd-run --quiet --unit=tandem-guard --on-active={GUARD_SECONDS} --timer-property=AccuracySec=1s /bin/sh \"$G/revert\"\n",
        payload(revert.as_bytes(), ">\"$G/revert\""),
        u = shell_word(deploy_user),
    )
}

const DISARM_GUARD: &str = "systemctl stop tandem-guard.timer 2>/dev/null || true\n\
     systemctl reset-failed tandem-guard.timer tandem-guard.service 2>/dev/null || true\n";

pub fn audit_script(run_id: &str, who: &str, report: &HostReport) -> String {
    let mut lines = String::new();
    for a in &report.applied {
        lines.push_str(&format!("run={run_id} by={who} applied: {}\n", a.what));
    }
    if let Some(e) = &report.error {
        lines.push_str(&format!(
            "run={run_id} by={who} FAILED: {}\n",
            e.replace('\n', " ")
        ));
    }
    if lines.is_empty() {
        return "true".into();
    }
    format!(
        "umask 077\nmkdir -p {STATE_DIR}\n{}\n",
        payload(
            lines.as_bytes(),
            &format!(
                "| while IFS= read -r l; do printf '%s %s\\n' \"$(date -Is)\" \"$l\"; done >>{STATE_DIR}/audit.log"
            )
        )
    )
}

/// "user@machine", for the lock owner and the audit log.
pub fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            if std::env::var("HOME").as_deref() == Ok("/root") {
                "root".into()
            } else {
                "unknown".into()
            }
        });
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("{user}@{}", host.trim())
}

/// One line per host for the end of apply.
pub fn summary(reports: &[HostReport]) -> (String, bool) {
    let mut ok = true;
    let mut out = String::new();
    for r in reports {
        match &r.error {
            None => out.push_str(&format!(
                "{}: {} change(s) applied\n",
                r.server,
                r.applied.len()
            )),
            Some(e) => {
                ok = false;
                out.push_str(&format!(
                    "{}: FAILED after {} change(s): {e}\n",
                    r.server,
                    r.applied.len()
                ));
            }
        }
    }
    (out, ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::transport::Output;
    use std::sync::Mutex;

    #[test]
    fn what_ran_first_comes_first_in_the_report() {
        let report = |server: &str, what: &[&str], error: Option<&str>| HostReport {
            server: server.into(),
            applied: what
                .iter()
                .map(|w| Applied {
                    what: w.to_string(),
                    seconds: 0.0,
                })
                .collect(),
            error: error.map(String::from),
        };
        let mut reports = vec![
            report("db", &["role"], None),
            report("app1", &[], Some("late")),
        ];
        prepend(
            &mut reports,
            vec![
                report("db", &["apt"], None),
                report("app1", &["apt"], Some("early")),
                report("backup", &["apt"], None),
            ],
        );
        let seen: Vec<(String, Vec<String>, Option<String>)> = reports
            .into_iter()
            .map(|r| {
                (
                    r.server,
                    r.applied.into_iter().map(|a| a.what).collect(),
                    r.error,
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("backup".into(), vec!["apt".into()], None),
                ("db".into(), vec!["apt".into(), "role".into()], None),
                ("app1".into(), vec!["apt".into()], Some("late".into())),
            ]
        );
    }

    #[test]
    fn the_build_starts_after_what_it_needs_and_handlers_follow_their_changes() {
        let change = |summary: &str, role: Phase, before_build: bool, notify: &[&str]| {
            let mut c = Change::new(summary.into(), None, String::new());
            c.role = role;
            c.before_build = before_build;
            c.notify = notify.iter().map(|n| n.to_string()).collect();
            c
        };
        let handler = |name: &str, role: Phase| HandlerRun {
            role,
            name: name.into(),
            effect: crate::model::handler::Effect::SshReload,
            check: None,
        };
        let host = HostPlan {
            server: "app1".into(),
            discovery: Default::default(),
            changes: vec![
                change("sshd drop-in", Phase::Base, false, &["reload ssh"]),
                change("app user", Phase::App, true, &[]),
                change("releases directory", Phase::App, true, &[]),
                change("env file", Phase::App, false, &["restart gunicorn"]),
                change("nginx site", Phase::App, false, &["reload nginx"]),
            ],
            notes: Vec::new(),
            handlers: vec![
                handler("reload ssh", Phase::Base),
                handler("restart gunicorn", Phase::App),
                handler("reload nginx", Phase::App),
            ],
            release: None,
            certificate: None,
        };
        let names = |h: &HostPlan| -> (Vec<String>, Vec<String>) {
            (
                h.changes.iter().map(|c| c.summary.clone()).collect(),
                h.handlers.iter().map(|h| h.name.clone()).collect(),
            )
        };
        let (ground, rest) = split_for_build(host.clone());
        assert_eq!(
            names(&ground),
            (
                vec![
                    "sshd drop-in".into(),
                    "app user".into(),
                    "releases directory".into()
                ],
                vec!["reload ssh".into()]
            )
        );
        assert_eq!(
            names(&rest),
            (
                vec!["env file".into(), "nginx site".into()],
                vec!["restart gunicorn".into(), "reload nginx".into()]
            )
        );
        // Nothing the build needs left to do (a converged user and directories): it starts at
        // once, and everything is the rest.
        let mut converged = host;
        converged.changes.retain(|c| !c.before_build);
        let (ground, rest) = split_for_build(converged);
        assert!(ground.changes.is_empty() && ground.handlers.is_empty());
        assert_eq!(rest.changes.len(), 3);
        assert_eq!(rest.handlers.len(), 3);
    }

    /// A step that writes `lines`, one every `every`, then exits 0.
    struct SlowStep {
        lines: Vec<&'static str>,
        every: Duration,
    }

    impl Transport for SlowStep {
        fn name(&self) -> &str {
            "app1"
        }

        async fn run(&self, _script: &str) -> anyhow::Result<Output> {
            unreachable!("progress comes from run_watched")
        }

        async fn run_watched(
            &self,
            _script: &str,
            line: &(dyn Fn(&str) + Send + Sync),
        ) -> anyhow::Result<Output> {
            for text in &self.lines {
                tokio::time::sleep(self.every).await;
                line(text);
            }
            Ok(Output::default())
        }
    }

    #[derive(Default)]
    struct Heard {
        progress: Mutex<Vec<String>>,
        remote: Mutex<Vec<String>>,
    }

    impl Report for Heard {
        fn progress(&self, server: &str, line: &str) {
            self.progress
                .lock()
                .unwrap()
                .push(format!("{server}: {line}"));
        }
        fn remote_output(&self, server: &str, line: &str) {
            self.remote
                .lock()
                .unwrap()
                .push(format!("{server} | {line}"));
        }
        fn debug(&self, _line: &str) {}
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_step_says_it_is_still_running_with_its_last_line() {
        let step = SlowStep {
            lines: vec!["Collecting django", "", "Installing collected packages"],
            every: Duration::from_secs(14),
        };
        let heard = Heard::default();
        watched(&step, "app1", "+ release r1", "script", &heard)
            .await
            .unwrap();
        // 42 s in all: told at 15 and 30 s, each time with the last line written so far.
        assert_eq!(
            *heard.progress.lock().unwrap(),
            [
                "app1: still running (15s): + release r1 | Collecting django",
                "app1: still running (30s): + release r1 | Collecting django",
            ]
        );
        assert_eq!(
            heard.remote.lock().unwrap().len(),
            3,
            "every line is passed on"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_quick_step_is_quiet() {
        let step = SlowStep {
            lines: vec!["done"],
            every: Duration::from_secs(2),
        };
        let heard = Heard::default();
        watched(&step, "app1", "+ apt install nginx", "script", &heard)
            .await
            .unwrap();
        assert!(heard.progress.lock().unwrap().is_empty());
    }
}
