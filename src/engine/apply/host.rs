//! One host's part of a stage: its changes in order, each role's notified handlers after
//! that role's changes (a handler whose check fails puts back the files it checked), all of it
//! under the lockout guard when sshd or ufw change.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::audit::write_audit;
use super::guard::{DISARM_GUARD, GUARD_SECONDS, arm_guard_script};
use super::{Applied, Fleet, HostReport};
use crate::engine::transport::{Output, Transport};
use crate::model::plan::{Change, HostPlan};
use crate::model::playbook::Phase;
use crate::model::report::Report;
use crate::resource::script::STATE_DIR;

/// Whose run a remote script belongs to (for the work lock's audit line) and where its
/// progress goes.
#[derive(Clone, Copy)]
struct Run<'a> {
    id: &'a str,
    who: &'a str,
    report: &'a dyn Report,
}

impl<'a> Run<'a> {
    fn of<'f: 'a, T: Transport>(fleet: &'a Fleet<'f, T>) -> Run<'a> {
        Run {
            id: fleet.run_id,
            who: fleet.who,
            report: fleet.report,
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

fn empty_report(server: &str) -> HostReport {
    HostReport {
        server: server.to_string(),
        applied: Vec::new(),
        error: None,
    }
}

/// Runs the prepare changes of `host` (packages, starting a stopped PostgreSQL), in order,
/// stopping at the first that fails; what ran goes to the audit log.
pub(super) async fn prepare_host<T: Transport>(
    fleet: &Fleet<'_, T>,
    index: usize,
    host: &HostPlan,
) -> HostReport {
    let run = Run::of(fleet);
    let mut report = empty_report(&host.server);
    for change in host.changes.iter().filter(|c| c.prepare) {
        match run_change(&fleet.hosts[index], &host.server, change, run).await {
            Ok(applied) => report.applied.push(applied),
            Err(e) => {
                report.error = Some(format!("{e:#}"));
                break;
            }
        }
    }
    if !report.applied.is_empty() || report.error.is_some() {
        write_audit(fleet, index, &report).await;
    }
    report
}

/// Applies `host` (one stage's part of its plan) to the host at `index`; what ran goes to
/// the audit log.
pub(super) async fn apply_host<T: Transport>(
    fleet: &Fleet<'_, T>,
    index: usize,
    host: &HostPlan,
) -> HostReport {
    let mut report = empty_report(&host.server);
    if host.changes.is_empty() {
        return report;
    }
    if let Err(e) = run_host(fleet, index, host, &mut report).await {
        report.error = Some(format!("{e:#}"));
    }
    write_audit(fleet, index, &report).await;
    report
}

async fn run_host<T: Transport>(
    fleet: &Fleet<'_, T>,
    index: usize,
    host: &HostPlan,
    report: &mut HostReport,
) -> anyhow::Result<()> {
    let name = &host.server;
    let transport = &fleet.hosts[index];
    let run = Run::of(fleet);
    let guarded = host.changes.iter().any(|c| c.guarded);
    if guarded {
        let arm = run.held(
            &arm_guard_script(fleet.deploy_user),
            "arm the lockout guard",
        );
        run_checked(transport, &arm, "arming the lockout guard").await?;
    }
    let result = run_changes(transport, host, report, run).await;
    if !guarded {
        return result;
    }
    // Whatever happened, SSH must still let the operator in, over a NEW connection.
    match (fleet.confirm_login)(index).await {
        Ok(()) => {
            run_checked(transport, DISARM_GUARD, "disarming the lockout guard").await?;
            result
        }
        Err(e) => {
            let revert = transport
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
            let check = match (fleet.confirm_login)(index).await {
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

async fn run_changes<T: Transport>(
    ssh: &T,
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

async fn run_change<T: Transport>(
    ssh: &T,
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
) -> anyhow::Result<Output> {
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

async fn run_checked<T: Transport>(ssh: &T, script: &str, what: &str) -> anyhow::Result<()> {
    let out = ssh.run(script).await?;
    if !out.success() {
        bail!("{}: {what} failed: {}", ssh.name(), out.stderr_tail());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

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
