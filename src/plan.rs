//! `Plan`: what apply would change on each host, computed purely from the desired state and
//! the probed facts. Each `Change` carries what to show (summary, diff, redacted SQL) and the
//! script that makes it, which is never shown or serialised.

use std::fmt;

use serde::Serialize;

use crate::desired::{Desired, Op};
use crate::facts::{Discovery, Facts};
use crate::handler::{Check, Effect};
use crate::playbook::Phase;
use crate::resource;
use crate::secret::Secret;

#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub role: Phase,
    pub step: String,
    /// One line: `+ create`, `~ update`, `- remove`.
    pub summary: String,
    /// A unified diff or the SQL/commands, secrets redacted.
    pub detail: Option<String>,
    pub notify: Vec<String>,
    /// Touches sshd or ufw: apply arms the lockout guard first.
    pub guarded: bool,
    /// Prepares the host (installs packages, starts a stopped PostgreSQL): apply does these
    /// first on every host, then probes again, because they create files, services and
    /// database facts the first probe could not see.
    pub prepare: bool,
    /// The managed file (or link) this change writes or removes, if it is one: verify reports
    /// these as drift.
    pub file: Option<String>,
    /// A new release's build needs this done first (the app user and directories): apply
    /// builds the release while the rest of the app server is provisioned.
    #[serde(skip)]
    pub before_build: bool,
    /// Must be done before the host's packages are installed (the settings of the cluster
    /// the PostgreSQL package creates): planning puts it in front of the apt transaction.
    #[serde(skip)]
    pub before_packages: bool,
    #[serde(skip)]
    pub script: String,
    /// Puts back what `script` replaced (from the run's backup), for when a handler's check
    /// (`nginx -t`, ...) fails after this change: a config that fails its check never stays.
    #[serde(skip)]
    pub undo: Option<String>,
}

/// A handler to run after its role's changes.
#[derive(Clone, Debug, Serialize)]
pub struct HandlerRun {
    pub role: Phase,
    pub name: String,
    pub effect: Effect,
    pub check: Option<Check>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostPlan {
    pub server: String,
    pub discovery: Discovery,
    pub changes: Vec<Change>,
    /// Things worth knowing that are not changes (e.g. a PostgreSQL restart owed).
    pub notes: Vec<String>,
    #[serde(skip)]
    pub handlers: Vec<HandlerRun>,
    /// Releases on an app server.
    pub release: Option<crate::resource::release::ReleaseState>,
    /// The HTTPS certificate an app server serves (ACME).
    pub certificate: Option<crate::resource::certificate::CertificateState>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub hosts: Vec<HostPlan>,
}

impl Plan {
    pub fn change_count(&self) -> usize {
        self.hosts.iter().map(|h| h.changes.len()).sum()
    }
}

/// Inputs that are not facts: the secrets needed to compare and to write.
pub struct PlanSecrets<'a> {
    pub db_password: &'a Secret,
}

/// Compares `desired` with `facts` for one host: each task through its kind
/// (`resource::plan_task`), then the host-wide passes, then the handlers the changes notify.
pub fn plan_host(
    desired: &Desired,
    facts: &Facts,
    secrets: &PlanSecrets,
    run_id: &str,
) -> HostPlan {
    let mut ctx = resource::Context::new(desired, facts, secrets.db_password, run_id);
    for (i, task) in desired.tasks.iter().enumerate() {
        let before = ctx.changes.len();
        resource::plan_task(&mut ctx, &task.op, &facts.task(i));
        for change in &mut ctx.changes[before..] {
            // The certificate waits for every app server's provisioning, the backup stanza for
            // the db server's: their own phases.
            if matches!(change.role, Phase::Certificate | Phase::Stanza) {
                change.step = task.step.clone();
                continue;
            }
            change.role = task.role;
            change.step = task.step.clone();
            change.notify = task.notify.clone();
            change.before_build = task.role == Phase::App
                && matches!(task.op, Op::SystemUser { .. } | Op::Directory { .. });
        }
    }
    resource::finish(&mut ctx);
    // Handlers an earlier run made owed but never ran (it died or failed in between): owed
    // still, whether or not this run changes anything.
    let owed = facts.get(crate::facts::OWED);
    for h in &desired.handlers {
        let is_owed = owed.ok()
            && owed
                .stdout
                .lines()
                .any(|l| l.trim() == crate::script::owed_file(&h.name));
        if is_owed && !ctx.changes.iter().any(|c| c.notify.contains(&h.name)) {
            let mut change = Change::new(
                format!("~ {} (owed by an earlier run that did not finish)", h.name),
                None,
                "true\n".to_string(),
            );
            change.role = h.phase;
            change.step = "Handlers an interrupted run owes".into();
            change.notify = vec![h.name.clone()];
            change.guarded = h.effect == Effect::SshReload;
            ctx.changes.push(change);
        }
    }
    let notified: Vec<(Phase, String)> = ctx
        .changes
        .iter()
        .flat_map(|c| c.notify.iter().map(move |n| (c.role, n.clone())))
        .collect();
    let handlers = desired
        .handlers
        .iter()
        .filter_map(|h| {
            let role = notified
                .iter()
                .find(|(_, n)| n == &h.name)
                .map(|(r, _)| *r)?;
            Some(HandlerRun {
                role,
                name: h.name.clone(),
                effect: h.effect.clone(),
                check: h.check.clone(),
            })
        })
        .collect();
    HostPlan {
        server: desired.server.name.clone(),
        discovery: facts.discovery.clone(),
        changes: ctx.changes,
        notes: ctx.notes,
        handlers,
        release: None,
        certificate: ctx.certificate,
    }
}

impl Change {
    /// A change of the Django release (ship, roll back): no handlers, no packages, no guard.
    pub fn release(step: &str, summary: String, script: String) -> Change {
        Change {
            role: Phase::Release,
            step: step.into(),
            ..Change::new(summary, None, script)
        }
    }

    /// A change planned by a resource kind; `plan_host` sets its phase, step and handlers.
    pub fn new(summary: String, detail: Option<String>, script: String) -> Change {
        Change {
            // Set from the task by `plan_host` (or by the caller for its own changes).
            role: Phase::Base,
            step: String::new(),
            summary,
            detail,
            notify: Vec::new(),
            guarded: false,
            prepare: false,
            file: None,
            before_build: false,
            before_packages: false,
            script,
            undo: None,
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for host in &self.hosts {
            let d = &host.discovery;
            let is_db = host.changes.iter().any(|c| c.role == Phase::Db)
                || host.notes.iter().any(|n| n.contains("PostgreSQL"));
            let pg = d
                .postgres_version
                .as_deref()
                .filter(|_| is_db || d.postgres_installed)
                .map(|v| {
                    format!(
                        ", PostgreSQL {v}{}",
                        if d.postgres_installed {
                            ""
                        } else {
                            " (to install)"
                        }
                    )
                })
                .unwrap_or_default();
            writeln!(
                f,
                "{} ({} {}{pg}): {} change(s)",
                host.server,
                d.os,
                d.os_version,
                host.changes.len()
            )?;
            for c in &host.changes {
                writeln!(f, "  {}    [{}: {}]", c.summary, c.role, c.step)?;
                if let Some(detail) = &c.detail {
                    for line in detail.lines() {
                        writeln!(f, "      {line}")?;
                    }
                }
            }
            for h in &host.handlers {
                writeln!(f, "  then: {} ({})", h.name, h.effect.service())?;
            }
            for n in &host.notes {
                writeln!(f, "  note: {n}")?;
            }
        }
        let total = self.change_count();
        if total == 0 {
            write!(f, "No changes: every server matches tandem.yml.")
        } else {
            let per: Vec<String> = self
                .hosts
                .iter()
                .map(|h| format!("{} {}", h.server, h.changes.len()))
                .collect();
            write!(f, "Plan: {total} change(s) ({}).", per.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::RenderedHandler;
    use crate::facts::QueryResult;
    use crate::playbook::HandlerAction;

    #[test]
    fn a_handler_an_interrupted_run_owes_is_planned_again() {
        let desired = Desired {
            server: crate::resource::table::db_server(),
            tasks: Vec::new(),
            handlers: vec![RenderedHandler {
                phase: Phase::Db,
                name: "reload postgresql".into(),
                effect: Effect::of("postgresql", HandlerAction::Reload),
                check: None,
            }],
        };
        let password = Secret::new("x".into());
        let plan = |owed: &str| {
            let mut facts = Facts::default();
            facts.results.insert(
                crate::facts::OWED.into(),
                QueryResult {
                    status: 0,
                    stdout: owed.into(),
                },
            );
            plan_host(
                &desired,
                &facts,
                &PlanSecrets {
                    db_password: &password,
                },
                "run",
            )
        };
        let owed = plan("reload postgresql\n");
        assert_eq!(owed.changes.len(), 1);
        assert_eq!(owed.changes[0].role, Phase::Db);
        assert_eq!(owed.handlers.len(), 1);
        assert_eq!(owed.handlers[0].name, "reload postgresql");
        assert!(plan("").changes.is_empty() && plan("").handlers.is_empty());
    }
}
