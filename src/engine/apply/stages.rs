//! The order apply works in, declared: each stage names the roles it runs on, which part of
//! their plans it runs, how it spreads over those hosts and what it waits for. The scheduler
//! runs them; a new stage (a standby database, a rolling release) is a new entry here.

use crate::config::Role;
use crate::model::plan::{Change, HandlerRun, HostPlan};
use crate::model::playbook::Phase;

/// Which of a host's planned changes (and their handlers) a stage runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The prepare changes (packages, starting a stopped PostgreSQL); the stage's hosts are
    /// planned again after them, since they create what the first probe could not see.
    Prepare,
    /// Every phase but these.
    AllBut(&'static [Phase]),
    /// These phases only.
    Only(&'static [Phase]),
    /// An app server's provisioning up to the last change its release build needs.
    GroundForBuild,
    /// The rest of an app server's provisioning.
    RestOfProvisioning,
}

/// How a stage spreads over its hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    /// On every host at once.
    Together,
    /// On one host after the other, in config order; the first that fails stops the rest
    /// (they say which host failed).
    InTurn,
}

/// What a stage waits for.
#[derive(Clone, Copy, Debug)]
pub enum Need {
    /// That stage has finished, whatever its outcome.
    After(&'static str),
    /// That stage succeeded on every host it ran on; otherwise this one does not run.
    Everywhere(&'static str),
    /// That stage succeeded on the same host; otherwise this one does not run there.
    SameHost(&'static str),
}

impl Need {
    pub fn stage(self) -> &'static str {
        match self {
            Need::After(s) | Need::Everywhere(s) | Need::SameHost(s) => s,
        }
    }
}

pub struct Stage {
    pub name: &'static str,
    /// What failed, when this stage did: "the database server".
    pub what: &'static str,
    pub roles: &'static [Role],
    pub part: Part,
    pub spread: Spread,
    /// Each names an earlier stage.
    pub needs: &'static [Need],
    /// What a host whose part did not run because a need failed says: "release not taken live".
    pub skipped: &'static str,
}

/// The database side: the db servers' (and a cluster witness's) hardening and, in a cluster,
/// etcd on the three at once (Patroni needs every member up once to learn etcd's version);
/// the backup server, so the db server's first archived WAL finds its repository; then the
/// db servers in turn (a cluster's first seeds it, the second joins as its standby); the
/// stanza and first backup once the db server archives. The deployment
/// does not wait on the backup server: a failed one is reported and the others go on. The app
/// side needs no database until a release goes live, so it runs meanwhile: first what a new
/// release's build needs (the base provisioning, the app user and directories); then the
/// build beside the rest of the provisioning, and after that rest the certificate (the ACME
/// issuer hands it to the others, provisioned by then). Then the release, one app server at a
/// time in config order: the first runs the migrations (concurrent migrations would race);
/// each must pass its health check before the next switches, so a release that breaks stops
/// on the first server (put back there) while the others keep serving the old one.
pub const STAGES: &[Stage] = &[
    Stage {
        name: "prepare-database-side",
        what: "preparing the database side (packages)",
        roles: &[Role::Db, Role::Backup, Role::Witness],
        part: Part::Prepare,
        spread: Spread::Together,
        needs: &[],
        skipped: "not prepared",
    },
    Stage {
        name: "prepare-app-side",
        what: "preparing the app servers (packages)",
        roles: &[Role::App],
        part: Part::Prepare,
        spread: Spread::Together,
        needs: &[],
        skipped: "not prepared",
    },
    Stage {
        name: "backup-server",
        what: "the backup server",
        roles: &[Role::Backup],
        part: Part::AllBut(&[Phase::Stanza]),
        spread: Spread::Together,
        needs: &[Need::Everywhere("prepare-database-side")],
        skipped: "not applied",
    },
    Stage {
        name: "consensus",
        what: "the database side's hardening (and a cluster's etcd)",
        roles: &[Role::Db, Role::Witness],
        part: Part::Only(&[Phase::Base, Phase::Consensus]),
        spread: Spread::Together,
        needs: &[Need::Everywhere("prepare-database-side")],
        skipped: "not applied",
    },
    Stage {
        name: "witness",
        what: "the database cluster's witness",
        roles: &[Role::Witness],
        part: Part::AllBut(&[Phase::Base, Phase::Consensus]),
        spread: Spread::Together,
        needs: &[Need::SameHost("consensus")],
        skipped: "not applied",
    },
    Stage {
        name: "database",
        what: "the database server",
        roles: &[Role::Db],
        part: Part::AllBut(&[Phase::Base, Phase::Consensus]),
        spread: Spread::InTurn,
        needs: &[
            Need::Everywhere("prepare-database-side"),
            Need::After("backup-server"),
            Need::After("consensus"),
        ],
        skipped: "not applied",
    },
    Stage {
        name: "backup-stanza",
        what: "the backup stanza",
        roles: &[Role::Backup],
        part: Part::Only(&[Phase::Stanza]),
        spread: Spread::Together,
        needs: &[
            Need::Everywhere("database"),
            Need::SameHost("backup-server"),
        ],
        skipped: "backup stanza not created",
    },
    Stage {
        name: "app-ground",
        what: "provisioning the app servers",
        roles: &[Role::App],
        part: Part::GroundForBuild,
        spread: Spread::Together,
        needs: &[Need::Everywhere("prepare-app-side")],
        skipped: "not provisioned",
    },
    Stage {
        name: "app-provisioning",
        what: "provisioning the app servers",
        roles: &[Role::App],
        part: Part::RestOfProvisioning,
        spread: Spread::Together,
        needs: &[Need::Everywhere("app-ground")],
        skipped: "not provisioned",
    },
    Stage {
        name: "certificate",
        what: "the certificate",
        roles: &[Role::App],
        part: Part::Only(&[Phase::Certificate]),
        spread: Spread::Together,
        needs: &[Need::Everywhere("app-provisioning")],
        skipped: "certificate not obtained",
    },
    Stage {
        name: "build",
        what: "building the release",
        roles: &[Role::App],
        part: Part::Only(&[Phase::Build]),
        spread: Spread::Together,
        needs: &[Need::Everywhere("app-ground")],
        skipped: "release not built",
    },
    Stage {
        name: "release",
        what: "the release",
        roles: &[Role::App],
        part: Part::Only(&[Phase::Release]),
        spread: Spread::InTurn,
        needs: &[
            Need::Everywhere("database"),
            Need::Everywhere("certificate"),
            Need::Everywhere("build"),
        ],
        skipped: "release not taken live",
    },
];

impl Part {
    /// `host` with only the changes and handlers of this part.
    pub fn of(self, host: &HostPlan) -> HostPlan {
        let provisioning =
            |p: Phase| !matches!(p, Phase::Certificate | Phase::Build | Phase::Release);
        match self {
            Part::Prepare => {
                let mut host = host.clone();
                host.changes.retain(|c| c.prepare);
                host.handlers.clear();
                host
            }
            Part::AllBut(these) => phases(host, &|p| !these.contains(&p)),
            Part::Only(these) => phases(host, &|p| these.contains(&p)),
            Part::GroundForBuild => split_for_build(phases(host, &provisioning)).0,
            Part::RestOfProvisioning => split_for_build(phases(host, &provisioning)).1,
        }
    }
}

/// `host` with only the changes and handlers of the phases `keep` takes.
fn phases(host: &HostPlan, keep: &dyn Fn(Phase) -> bool) -> HostPlan {
    let mut host = host.clone();
    host.changes.retain(|c| keep(c.role));
    host.handlers.retain(|h| keep(h.role));
    host
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_need_names_an_earlier_stage_and_names_are_unique() {
        for (i, stage) in STAGES.iter().enumerate() {
            assert!(
                !STAGES[..i].iter().any(|s| s.name == stage.name),
                "{} declared twice",
                stage.name
            );
            for need in stage.needs {
                assert!(
                    STAGES[..i].iter().any(|s| s.name == need.stage()),
                    "{} needs {}, which is not declared before it",
                    stage.name,
                    need.stage()
                );
            }
        }
    }

    #[test]
    fn every_phase_of_every_role_is_run_by_exactly_one_stage() {
        use crate::model::playbook::Phase::*;
        for role in [Role::Db, Role::Backup, Role::App, Role::Witness] {
            for phase in [
                Base,
                Db,
                App,
                Certificate,
                Backup,
                Consensus,
                Stanza,
                Build,
                Release,
            ] {
                let mut change = Change::new("+ step".into(), None, String::new());
                change.role = phase;
                let host = HostPlan {
                    server: "s".into(),
                    discovery: Default::default(),
                    changes: vec![change],
                    notes: Vec::new(),
                    handlers: Vec::new(),
                    release: None,
                    certificate: None,
                };
                let runs: Vec<&str> = STAGES
                    .iter()
                    .filter(|s| s.roles.contains(&role) && s.part != Part::Prepare)
                    .filter(|s| !s.part.of(&host).changes.is_empty())
                    .map(|s| s.name)
                    .collect();
                assert_eq!(runs.len(), 1, "{role:?} {phase:?}: {runs:?}");
            }
        }
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
}
