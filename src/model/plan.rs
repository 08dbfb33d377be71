//! `Plan`: what apply would change on each host, computed purely from the desired state and
//! the probed facts. Each `Change` carries what to show (summary, diff, redacted SQL) and the
//! script that makes it, which is never shown or serialised.

use std::fmt;

use serde::Serialize;

use crate::model::facts::Discovery;
use crate::model::handler::{Check, Effect};
use crate::model::playbook::Phase;

/// One change to a host. Its JSON (`impl Serialize`) shows what it is and does: never the
/// script, the undo or the ordering marks.
#[derive(Clone, Debug)]
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
    pub before_build: bool,
    /// Must be done before the host's packages are installed (the settings of the cluster
    /// the PostgreSQL package creates): planning puts it in front of the apt transaction.
    pub before_packages: bool,
    pub script: String,
    /// Puts back what `script` replaced (from the run's backup), for when a handler's check
    /// (`nginx -t`, ...) fails after this change: a config that fails its check never stays.
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
    pub release: Option<crate::model::state::ReleaseState>,
    /// The HTTPS certificate an app server serves (ACME).
    pub certificate: Option<crate::model::state::CertificateState>,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub hosts: Vec<HostPlan>,
}

/// What a change does, for machines reading the plan: from its summary's first sign
/// (`+` create, `~` update, `-` delete); anything else runs something (SQL, a release step).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    Run,
}

impl Change {
    pub fn action(&self) -> Action {
        match self.summary.trim_start().chars().next() {
            Some('+') => Action::Create,
            Some('~') => Action::Update,
            Some('-') => Action::Delete,
            _ => Action::Run,
        }
    }
}

/// The JSON of a change: what it is and does, never its script.
impl Serialize for Change {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            role: Phase,
            step: &'a str,
            action: Action,
            summary: &'a str,
            detail: &'a Option<String>,
            notify: &'a [String],
            guarded: bool,
            prepare: bool,
            file: &'a Option<String>,
        }
        Shown {
            role: self.role,
            step: &self.step,
            action: self.action(),
            summary: &self.summary,
            detail: &self.detail,
            notify: &self.notify,
            guarded: self.guarded,
            prepare: self.prepare,
            file: &self.file,
        }
        .serialize(serializer)
    }
}

/// The JSON of a plan: its hosts and how many changes they hold in all.
impl Serialize for Plan {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            change_count: usize,
            hosts: &'a [HostPlan],
        }
        Shown {
            change_count: self.change_count(),
            hosts: &self.hosts,
        }
        .serialize(serializer)
    }
}

impl Plan {
    pub fn change_count(&self) -> usize {
        self.hosts.iter().map(|h| h.changes.len()).sum()
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
