//! Runs a declared stage graph (`stages`) over any `Transport`: every stage starts as soon as
//! the stages it needs have finished, so independent ones (the database side and the app
//! side, a release's build and the rest of the provisioning) run at the same time. A stage
//! whose need failed does not run, and each host that had something to do in it says why.

use std::cell::RefCell;

use futures::FutureExt;
use futures::future::{LocalBoxFuture, Shared, join_all};

use super::host::{apply_host, prepare_host};
use super::stages::{Need, Part, Spread, Stage};
use super::{Fleet, HostReport, Replan};
use crate::engine::transport::Transport;
use crate::model::plan::{HostPlan, Plan};

/// How a stage ended, for the stages that need it.
#[derive(Clone)]
struct Outcome {
    /// What failed, when the stage failed on a host or did not run: "the database server".
    failed: Option<String>,
    /// Per host index: the stage ran there and succeeded (or had nothing to do there).
    ok: Vec<bool>,
}

/// What the stages share while they run: the plan (a prepare stage plans its hosts again) and
/// each host's report. Single-threaded: no borrow is held across an await.
struct Board {
    plan: RefCell<Plan>,
    reports: RefCell<Vec<HostReport>>,
}

type Started<'a> = Shared<LocalBoxFuture<'a, Outcome>>;

/// Runs `stages` on `fleet`; one report per host, in config order.
pub(super) async fn run<T: Transport>(
    stages: &[Stage],
    fleet: &Fleet<'_, T>,
    plan: &Plan,
    replan: &Replan<'_>,
) -> Vec<HostReport> {
    let state = Board {
        plan: RefCell::new(plan.clone()),
        reports: RefCell::new(
            plan.hosts
                .iter()
                .map(|h| HostReport {
                    server: h.server.clone(),
                    applied: Vec::new(),
                    error: None,
                })
                .collect(),
        ),
    };
    let mut started: Vec<(&str, Started<'_>)> = Vec::new();
    for stage in stages {
        let needs: Vec<(Need, Started<'_>)> = stage
            .needs
            .iter()
            .map(|&need| {
                let (_, outcome) = started
                    .iter()
                    .find(|(name, _)| *name == need.stage())
                    .expect("the stage graph names only earlier stages (tested)");
                (need, outcome.clone())
            })
            .collect();
        let outcome = run_stage(stage, needs, fleet, &state, replan)
            .boxed_local()
            .shared();
        started.push((stage.name, outcome));
    }
    join_all(started.into_iter().map(|(_, outcome)| outcome)).await;
    state.reports.into_inner()
}

async fn run_stage<T: Transport>(
    stage: &Stage,
    needs: Vec<(Need, Started<'_>)>,
    fleet: &Fleet<'_, T>,
    state: &Board,
    replan: &Replan<'_>,
) -> Outcome {
    let count = fleet.hosts.len();
    let mut outcome = Outcome {
        failed: None,
        ok: vec![false; count],
    };
    let hosts: Vec<usize> = (0..count)
        .filter(|&i| stage.roles.contains(&fleet.roles[i]))
        .collect();
    let waited: Vec<Outcome> = join_all(needs.iter().map(|(_, o)| o.clone())).await;
    let unmet = needs
        .iter()
        .zip(&waited)
        .find_map(|((need, _), o)| match need {
            Need::Everywhere(_) => o.failed.clone(),
            _ => None,
        });
    if let Some(what) = unmet {
        skip(stage, &hosts, state, &format!("{what} failed"));
        outcome.failed = Some(stage.what.into());
        return outcome;
    }
    let (runnable, held_back): (Vec<usize>, Vec<usize>) = hosts.iter().partition(|&&i| {
        needs
            .iter()
            .zip(&waited)
            .all(|((need, _), o)| !matches!(need, Need::SameHost(_)) || o.ok[i])
    });
    for &i in &held_back {
        let what = needs
            .iter()
            .zip(&waited)
            .find_map(|((need, _), o)| match need {
                Need::SameHost(_) if !o.ok[i] => o.failed.clone(),
                _ => None,
            })
            .unwrap_or_default();
        skip(stage, &[i], state, &format!("{what} failed on this server"));
    }
    let parts: Vec<(usize, HostPlan)> = {
        let plan = state.plan.borrow();
        runnable
            .iter()
            .map(|&i| (i, stage.part.of(&plan.hosts[i])))
            .collect()
    };
    let mut reports: Vec<(usize, HostReport)> = Vec::new();
    match stage.spread {
        Spread::Together => {
            reports.extend(join_all(parts.iter().map(|(i, h)| run_part(stage, fleet, *i, h))).await)
        }
        Spread::InTurn => {
            for (n, (i, host)) in parts.iter().enumerate() {
                let (i, report) = run_part(stage, fleet, *i, host).await;
                let failed = report.error.is_some();
                reports.push((i, report));
                if failed {
                    let on = fleet.hosts[i].name().to_string();
                    let rest: Vec<usize> = parts[n + 1..].iter().map(|(i, _)| *i).collect();
                    skip(
                        stage,
                        &rest,
                        state,
                        &format!("{} on {on} failed", stage.what),
                    );
                    break;
                }
            }
        }
    }
    for (i, report) in reports {
        outcome.ok[i] = report.error.is_none();
        if report.error.is_some() {
            outcome.failed = Some(stage.what.into());
        }
        record(state, i, report);
    }
    let ran_all = runnable.iter().all(|&i| outcome.ok[i]);
    if outcome.failed.is_none() && !held_back.is_empty() {
        outcome.failed = Some(stage.what.into());
    }
    let prepared = parts.iter().any(|(_, host)| !host.changes.is_empty());
    if stage.part == Part::Prepare
        && ran_all
        && prepared
        && let Err(e) = plan_again(fleet, state, &runnable, replan).await
    {
        if let Some(&first) = runnable.first() {
            outcome.ok[first] = false;
            let error = HostReport {
                server: fleet.hosts[first].name().to_string(),
                applied: Vec::new(),
                error: Some(format!("probing again after the packages: {e:#}")),
            };
            record(state, first, error);
        }
        outcome.failed = Some(stage.what.into());
    }
    outcome
}

/// Runs `stage`'s part `host` on the host at `i`.
async fn run_part<T: Transport>(
    stage: &Stage,
    fleet: &Fleet<'_, T>,
    i: usize,
    host: &HostPlan,
) -> (usize, HostReport) {
    let report = match stage.part {
        Part::Prepare => prepare_host(fleet, i, host).await,
        _ => apply_host(fleet, i, host).await,
    };
    (i, report)
}

/// Plans `hosts` again after their prepare changes and says what that added.
async fn plan_again<T: Transport>(
    fleet: &Fleet<'_, T>,
    state: &Board,
    hosts: &[usize],
    replan: &Replan<'_>,
) -> anyhow::Result<()> {
    let fresh = replan(hosts.to_vec()).await?;
    let mut plan = state.plan.borrow_mut();
    for (&i, host) in hosts.iter().zip(fresh) {
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
            fleet.report.progress(
                &host.server,
                &format!("after preparing (packages, services), also: {}", c.summary),
            );
        }
        plan.hosts[i] = host;
    }
    Ok(())
}

/// Adds what ran on host `i` to its report; its first error stays the one it reports.
fn record(state: &Board, i: usize, more: HostReport) {
    let mut reports = state.reports.borrow_mut();
    let report = &mut reports[i];
    report.applied.extend(more.applied);
    if report.error.is_none() {
        report.error = more.error;
    }
}

/// Says on each of `hosts` that had something to do in `stage` (and has not failed already)
/// that it did not run, and why.
fn skip(stage: &Stage, hosts: &[usize], state: &Board, why: &str) {
    let plan = state.plan.borrow();
    for &i in hosts {
        let part = stage.part.of(&plan.hosts[i]);
        let to_do = part
            .changes
            .iter()
            .any(|c| c.prepare == (stage.part == Part::Prepare));
        if to_do {
            let error = HostReport {
                server: plan.hosts[i].server.clone(),
                applied: Vec::new(),
                error: Some(format!("{}: {why}", stage.skipped)),
            };
            record(state, i, error);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The stage graph on a fake transport: each change's script names its step, the fake
    //! logs the steps in the order they finish and fails, slows or drops where told.

    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::config::Role;
    use crate::engine::apply::{ConfirmLogin, summary};
    use crate::engine::transport::Output;
    use crate::model::plan::Change;
    use crate::model::playbook::Phase;
    use crate::model::report::Report;

    /// One server: what it does with each step (named in the script as `# step NAME`).
    struct FakeHost {
        name: String,
        log: std::sync::Arc<Mutex<Vec<String>>>,
        /// Steps that exit 1.
        fails: Vec<String>,
        /// The step at which the connection is lost: it and everything after it error.
        drops_at: Option<String>,
        dropped: AtomicBool,
        /// Steps that take this long.
        slow: HashMap<String, Duration>,
    }

    impl Transport for FakeHost {
        fn name(&self) -> &str {
            &self.name
        }

        async fn run(&self, script: &str) -> anyhow::Result<Output> {
            if self.dropped.load(Ordering::SeqCst) {
                anyhow::bail!("{}: connection lost", self.name);
            }
            if script.contains("guard/revert;") {
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("{}: revert", self.name));
            }
            let steps: Vec<&str> = script
                .lines()
                .filter_map(|l| l.strip_prefix("# step "))
                .collect();
            let mut status = 0;
            for step in steps {
                if self.drops_at.as_deref() == Some(step) {
                    self.dropped.store(true, Ordering::SeqCst);
                    anyhow::bail!("{}: connection lost", self.name);
                }
                if let Some(&pause) = self.slow.get(step) {
                    tokio::time::sleep(pause).await;
                }
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("{}: {step}", self.name));
                if self.fails.iter().any(|f| f == step) {
                    status = 1;
                }
            }
            Ok(Output {
                status,
                stdout: Vec::new(),
                stderr: b"boom".to_vec(),
            })
        }

        async fn run_watched(
            &self,
            script: &str,
            _line: &(dyn Fn(&str) + Send + Sync),
        ) -> anyhow::Result<Output> {
            self.run(script).await
        }
    }

    #[derive(Default)]
    struct Heard(Mutex<Vec<String>>);

    impl Report for Heard {
        fn progress(&self, server: &str, line: &str) {
            self.0.lock().unwrap().push(format!("{server}: {line}"));
        }
        fn remote_output(&self, _server: &str, _line: &str) {}
        fn debug(&self, _line: &str) {}
    }

    /// A change in `phase` whose script names it; `+ apt ...` ones prepare, `*` ones are
    /// what a build needs first, `!` ones touch sshd.
    fn change(phase: Phase, step: &str) -> Change {
        let mut c = Change::new(step.into(), None, format!("# step {step}\n"));
        c.role = phase;
        c.prepare = step.starts_with("+ apt");
        c.before_build = step.starts_with('*');
        c.guarded = step.starts_with('!');
        c
    }

    fn host(server: &str, changes: Vec<Change>) -> HostPlan {
        HostPlan {
            server: server.into(),
            discovery: Default::default(),
            changes,
            notes: Vec::new(),
            handlers: Vec::new(),
            release: None,
            certificate: None,
        }
    }

    fn app(server: &str) -> HostPlan {
        host(
            server,
            vec![
                change(Phase::Base, "+ apt nginx"),
                change(Phase::App, "* app user"),
                change(Phase::App, "nginx site"),
                change(Phase::Certificate, "certificate"),
                change(Phase::Build, "build"),
                change(Phase::Release, "release"),
            ],
        )
    }

    /// db, backup, app1, app2.
    fn layout() -> (Plan, Vec<Role>) {
        let plan = Plan {
            hosts: vec![
                host(
                    "db",
                    vec![
                        change(Phase::Base, "+ apt postgresql"),
                        change(Phase::Db, "db role"),
                        change(Phase::Db, "db tuning"),
                    ],
                ),
                host(
                    "backup",
                    vec![
                        change(Phase::Backup, "repository"),
                        change(Phase::Stanza, "stanza"),
                    ],
                ),
                app("app1"),
                app("app2"),
            ],
        };
        (plan, vec![Role::Db, Role::Backup, Role::App, Role::App])
    }

    struct Lab {
        hosts: Vec<FakeHost>,
        log: std::sync::Arc<Mutex<Vec<String>>>,
        heard: Heard,
    }

    impl Lab {
        fn new(plan: &Plan) -> Lab {
            let log = std::sync::Arc::new(Mutex::new(Vec::new()));
            let hosts = plan
                .hosts
                .iter()
                .map(|h| FakeHost {
                    name: h.server.clone(),
                    log: log.clone(),
                    fails: Vec::new(),
                    drops_at: None,
                    dropped: AtomicBool::new(false),
                    slow: HashMap::new(),
                })
                .collect();
            Lab {
                hosts,
                log,
                heard: Heard::default(),
            }
        }

        fn host(&mut self, name: &str) -> &mut FakeHost {
            self.hosts.iter_mut().find(|h| h.name == name).unwrap()
        }

        /// Runs the stage graph; `login_works` answers the lockout guard's new connection.
        async fn apply(
            &self,
            plan: &Plan,
            roles: Vec<Role>,
            replan: &Replan<'_>,
            login_works: bool,
        ) -> Vec<HostReport> {
            let confirm = move |_i: usize| -> LocalBoxFuture<'_, anyhow::Result<()>> {
                Box::pin(async move {
                    anyhow::ensure!(login_works, "Permission denied (publickey)");
                    Ok(())
                })
            };
            let confirm: &ConfirmLogin<'_> = &confirm;
            let fleet = Fleet {
                hosts: &self.hosts,
                roles,
                deploy_user: "deploy",
                run_id: "r1",
                who: "ci@test",
                report: &self.heard,
                confirm_login: confirm,
            };
            run(super::super::stages::STAGES, &fleet, plan, replan).await
        }

        fn log(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }

        fn at(&self, entry: &str) -> usize {
            let log = self.log();
            log.iter()
                .position(|l| l == entry)
                .unwrap_or_else(|| panic!("`{entry}` never ran: {log:#?}"))
        }

        fn ran(&self, entry: &str) -> bool {
            self.log().iter().any(|l| l == entry)
        }
    }

    /// Plans every host again exactly as before.
    fn same_plan(
        plan: &Plan,
    ) -> impl Fn(Vec<usize>) -> LocalBoxFuture<'static, anyhow::Result<Vec<HostPlan>>> + use<> {
        let plan = plan.clone();
        move |which: Vec<usize>| {
            let hosts = which.iter().map(|&i| plan.hosts[i].clone()).collect();
            Box::pin(async move { Ok(hosts) })
        }
    }

    fn error_of<'r>(reports: &'r [HostReport], server: &str) -> Option<&'r str> {
        reports
            .iter()
            .find(|r| r.server == server)
            .unwrap()
            .error
            .as_deref()
    }

    #[tokio::test(start_paused = true)]
    async fn stages_run_in_the_declared_order() {
        let (plan, roles) = layout();
        let mut lab = Lab::new(&plan);
        // Slow steps, so an order the graph does not enforce would show.
        lab.host("db")
            .slow
            .insert("+ apt postgresql".into(), Duration::from_secs(30));
        lab.host("app2")
            .slow
            .insert("nginx site".into(), Duration::from_secs(30));
        lab.host("app1")
            .slow
            .insert("release".into(), Duration::from_secs(30));
        let reports = lab.apply(&plan, roles, &same_plan(&plan), true).await;
        assert!(summary(&reports).1, "{reports:#?}");
        // Packages first on every host of the side.
        assert!(lab.at("db: + apt postgresql") < lab.at("backup: repository"));
        assert!(lab.at("app1: + apt nginx") < lab.at("app1: * app user"));
        // The backup server's repository before the db server archives; the stanza after.
        assert!(lab.at("backup: repository") < lab.at("db: db role"));
        assert!(lab.at("db: db tuning") < lab.at("backup: stanza"));
        // The build after what it needs; the certificate after every app server's provisioning.
        for server in ["app1", "app2"] {
            assert!(lab.at(&format!("{server}: * app user")) < lab.at(&format!("{server}: build")));
            for other in ["app1", "app2"] {
                assert!(
                    lab.at(&format!("{other}: nginx site"))
                        < lab.at(&format!("{server}: certificate"))
                );
            }
        }
        // A release goes live after the database, every certificate and every build; the
        // first app server's first (its migrations), then the others.
        for before in [
            "db: db tuning",
            "app1: certificate",
            "app2: certificate",
            "app1: build",
            "app2: build",
        ] {
            assert!(lab.at(before) < lab.at("app1: release"), "{before}");
        }
        assert!(lab.at("app1: release") < lab.at("app2: release"));
        let everything: usize = plan.hosts.iter().map(|h| h.changes.len()).sum();
        let applied: usize = reports.iter().map(|r| r.applied.len()).sum();
        assert_eq!(applied, everything, "each change ran once");
    }

    #[tokio::test(start_paused = true)]
    async fn the_app_side_is_built_while_the_database_is_provisioned() {
        let (plan, roles) = layout();
        let mut lab = Lab::new(&plan);
        lab.host("db")
            .slow
            .insert("db role".into(), Duration::from_secs(60));
        lab.host("app1")
            .slow
            .insert("build".into(), Duration::from_secs(20));
        let reports = lab.apply(&plan, roles, &same_plan(&plan), true).await;
        assert!(summary(&reports).1, "{reports:#?}");
        assert!(lab.at("app1: build") < lab.at("db: db role"));
        assert!(lab.at("app2: certificate") < lab.at("db: db role"));
        assert!(lab.at("db: db role") < lab.at("app1: release"));
    }

    #[tokio::test]
    async fn a_failing_backup_server_does_not_stop_the_deployment() {
        let (plan, roles) = layout();
        let mut lab = Lab::new(&plan);
        lab.host("backup").fails.push("repository".into());
        let reports = lab.apply(&plan, roles, &same_plan(&plan), true).await;
        let error = error_of(&reports, "backup").expect("the backup server failed");
        assert!(error.contains("`repository` failed"), "{error}");
        assert!(
            !lab.ran("backup: stanza"),
            "no stanza without its repository"
        );
        for live in ["db: db tuning", "app1: release", "app2: release"] {
            assert!(lab.ran(live), "{live}");
        }
        for server in ["db", "app1", "app2"] {
            assert_eq!(error_of(&reports, server), None, "{server}");
        }
        assert!(!summary(&reports).1, "the run still fails");
    }

    #[tokio::test]
    async fn a_release_failing_on_the_first_app_server_stops_the_others() {
        let (plan, roles) = layout();
        let mut lab = Lab::new(&plan);
        lab.host("app1").fails.push("release".into());
        let reports = lab.apply(&plan, roles, &same_plan(&plan), true).await;
        assert!(!lab.ran("app2: release"));
        assert!(lab.ran("app2: build"), "built, never switched");
        assert!(
            error_of(&reports, "app1")
                .unwrap()
                .contains("`release` failed")
        );
        assert_eq!(
            error_of(&reports, "app2"),
            Some("release not taken live: the release on app1 failed")
        );
    }

    /// Three app servers: the release goes live on one after the other (a slow one holds the
    /// next back), and a failure on the second keeps the third on the old release.
    #[tokio::test(start_paused = true)]
    async fn the_release_rolls_one_app_server_at_a_time_and_stops_where_it_fails() {
        let (mut plan, mut roles) = layout();
        plan.hosts.push(app("app3"));
        roles.push(Role::App);
        let mut lab = Lab::new(&plan);
        lab.host("app2")
            .slow
            .insert("release".into(), Duration::from_secs(30));
        let reports = lab
            .apply(&plan, roles.clone(), &same_plan(&plan), true)
            .await;
        assert!(summary(&reports).1, "{reports:#?}");
        assert!(lab.at("app1: release") < lab.at("app2: release"));
        assert!(lab.at("app2: release") < lab.at("app3: release"));

        let mut lab = Lab::new(&plan);
        lab.host("app2").fails.push("release".into());
        let reports = lab.apply(&plan, roles, &same_plan(&plan), true).await;
        assert!(
            lab.ran("app1: release"),
            "the first server stays on the new release"
        );
        assert!(!lab.ran("app3: release"));
        assert!(lab.ran("app3: build"), "built, never switched");
        assert_eq!(
            error_of(&reports, "app3"),
            Some("release not taken live: the release on app2 failed")
        );
        assert_eq!(error_of(&reports, "app1"), None);
    }

    #[tokio::test]
    async fn a_connection_lost_midway_stops_that_host_and_the_releases() {
        let (plan, roles) = layout();
        let mut lab = Lab::new(&plan);
        lab.host("db").drops_at = Some("db role".into());
        let reports = lab.apply(&plan, roles, &same_plan(&plan), true).await;
        assert!(
            error_of(&reports, "db")
                .unwrap()
                .contains("connection lost")
        );
        assert!(!lab.ran("db: db tuning"), "nothing more on a lost host");
        assert!(!lab.ran("backup: stanza"));
        for server in ["app1", "app2"] {
            assert!(lab.ran(&format!("{server}: build")));
            assert!(!lab.ran(&format!("{server}: release")));
            assert_eq!(
                error_of(&reports, server),
                Some("release not taken live: the database server failed")
            );
        }
        assert_eq!(
            error_of(&reports, "backup"),
            Some("backup stanza not created: the database server failed")
        );
    }

    #[tokio::test]
    async fn what_the_packages_bring_is_planned_again_and_applied() {
        let (plan, roles) = layout();
        let lab = Lab::new(&plan);
        let asked = Mutex::new(Vec::new());
        let replan = |which: Vec<usize>| -> LocalBoxFuture<'_, anyhow::Result<Vec<HostPlan>>> {
            asked.lock().unwrap().push(which.clone());
            let mut hosts: Vec<HostPlan> = which.iter().map(|&i| plan.hosts[i].clone()).collect();
            for h in hosts.iter_mut().filter(|h| h.server.starts_with("app")) {
                h.changes
                    .insert(2, change(Phase::App, "site the package made"));
            }
            Box::pin(async move { Ok(hosts) })
        };
        let reports = lab.apply(&plan, roles, &replan, true).await;
        assert!(summary(&reports).1, "{reports:#?}");
        let mut asked = asked.into_inner().unwrap();
        asked.sort();
        assert_eq!(asked, vec![vec![0, 1], vec![2, 3]], "each side once");
        assert!(lab.at("app1: + apt nginx") < lab.at("app1: site the package made"));
        assert!(lab.heard.0.lock().unwrap().contains(
            &"app2: after preparing (packages, services), also: site the package made".to_string()
        ));
    }

    #[tokio::test]
    async fn a_failed_package_install_stops_its_side_only() {
        let (plan, roles) = layout();
        let mut lab = Lab::new(&plan);
        lab.host("app2").fails.push("+ apt nginx".into());
        let reports = lab.apply(&plan, roles, &same_plan(&plan), true).await;
        assert!(lab.ran("db: db tuning") && lab.ran("backup: stanza"));
        assert!(!lab.ran("app1: * app user"), "the app side stops");
        assert_eq!(
            error_of(&reports, "app1"),
            Some("not provisioned: preparing the app servers (packages) failed")
        );
    }

    #[tokio::test]
    async fn a_change_that_locks_the_operator_out_is_reverted() {
        let plan = Plan {
            hosts: vec![host("db", vec![change(Phase::Base, "! sshd drop-in")])],
        };
        let lab = Lab::new(&plan);
        let reports = lab
            .apply(&plan, vec![Role::Db], &same_plan(&plan), false)
            .await;
        let error = error_of(&reports, "db").unwrap();
        assert!(error.contains("a new SSH connection failed"), "{error}");
        assert!(error.contains("were restored"), "{error}");
        assert!(lab.at("db: ! sshd drop-in") < lab.at("db: revert"));
    }
}
