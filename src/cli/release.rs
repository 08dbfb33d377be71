//! `tandem deploy` and `tandem rollback`: a release shipped or switched back on the app servers.

use super::*;

pub(crate) enum ReleaseAction {
    Deploy,
    /// To the release before the current one, or to `to`.
    Rollback {
        to: Option<String>,
    },
}

/// `deploy` keeps only the plan's release changes; `rollback` makes one per app server that
/// switches back to the release before the current one. Both run under the hosts' locks.
pub(crate) async fn releases(
    change: ChangeArgs,
    action: ReleaseAction,
) -> anyhow::Result<ExitCode> {
    let options = change.apply_options();
    let (engine, plan, problems) = match &action {
        ReleaseAction::Deploy => {
            // A release ships code: it uses no secret. Those not set are stood in for, and the
            // provisioning they would be compared in is not counted.
            let config = load(&change.remote.remote.config)?;
            let (secrets, unread) = crate::config::secret::read_available(&config);
            if !unread.is_empty() {
                say!(
                    "{} secret(s) not read (a release needs none; `tandem apply` does): provisioning not compared",
                    unread.len()
                );
            }
            let (engine, planned, ()) = plan_alongside(
                config,
                secrets,
                &change.remote,
                Locking::Exclusive(&options),
                |_| async {},
            )
            .await?;
            let mut plan = planned.plan;
            for (host, server) in plan.hosts.iter_mut().zip(&engine.servers) {
                let provisioning = host.changes.iter().filter(|c| !c.role.is_release()).count();
                host.handlers.clear();
                if provisioning > 0 && server.role == crate::config::Role::App && unread.is_empty()
                {
                    say!(
                        "{}: {provisioning} provisioning change(s) pending; `tandem apply` makes them",
                        host.server
                    );
                }
                host.changes.retain(|c| c.role.is_release());
            }
            (engine, plan, Vec::new())
        }
        ReleaseAction::Rollback { to } => rollback_plan(&change, &options, to.as_deref()).await?,
    };
    if !problems.is_empty() {
        engine.close().await;
        anyhow::bail!("{}", problems.join("\n"));
    }
    let question = match action {
        ReleaseAction::Deploy => "Ship this release?",
        ReleaseAction::Rollback { .. } => "Roll back?",
    };
    let command = match action {
        ReleaseAction::Deploy => "deploy",
        ReleaseAction::Rollback { .. } => "rollback",
    };
    let go = show_and_confirm(&plan, question, &change);
    if !matches!(go, Ok(Go::Ahead)) {
        return end_before_running(engine, go, command, &plan, change.json).await;
    }
    let started = std::time::Instant::now();
    // A release installs no packages: apply never plans again (a rollback cannot: it read
    // no secret).
    let replan = |_: Vec<usize>| -> futures::future::LocalBoxFuture<
        '_,
        anyhow::Result<Vec<crate::model::plan::HostPlan>>,
    > { Box::pin(async { anyhow::bail!("a release installs no packages") }) };
    let reports = crate::engine::apply::apply(&engine, &plan, &options, &replan).await;
    engine.close().await;
    let (summary, ok) = crate::engine::apply::summary(&reports);
    say_part!("{summary}");
    let run = ChangeRun {
        command,
        plan: &plan,
        ok,
        seconds: started.elapsed().as_secs_f32(),
        hosts: &reports,
        verify: None,
    };
    if change.json {
        out(&crate::cli::json::document(&run)?)?;
    }
    Ok(run.exit_code())
}

/// A rollback's plan: on each app server (of `--only`), a switch back to the release before the
/// current one, or to `to`. It needs no plan of the rest and reads no secret: one probe of
/// the releases per app server, under its lock. Also what stops it (a release not kept).
async fn rollback_plan(
    change: &ChangeArgs,
    options: &crate::engine::apply::ApplyOptions,
    to: Option<&str>,
) -> anyhow::Result<(Engine, crate::model::plan::Plan, Vec<String>)> {
    let planning = &change.remote;
    let config = load(&planning.remote.config)?;
    let chosen = engine::select(&config, &planning.only.names)?;
    let apps: Vec<String> = chosen
        .iter()
        .filter(|s| s.role == crate::config::Role::App)
        .map(|s| s.name.clone())
        .collect();
    if apps.is_empty() {
        anyhow::bail!("rollback switches app servers back, and --server names none");
    }
    let started = std::time::Instant::now();
    let mut engine =
        Engine::connect(config, planning.remote.ssh_options(), report(), &apps).await?;
    if let Err(e) = crate::engine::apply::lock_all(&mut engine, options).await {
        engine.close().await;
        return Err(e);
    }
    let probes = futures::future::join_all(engine.hosts.iter().zip(&engine.servers).map(
        |(ssh, server)| {
            let vars = crate::engine::vars::Vars::for_paths(&engine.config, server);
            async move {
                use crate::engine::transport::Transport;
                let out = ssh.run(&crate::resource::release::probe(&vars)).await?;
                anyhow::Ok((
                    vars,
                    crate::model::state::ReleaseState::parse(out.status, &out.stdout_text()),
                ))
            }
        },
    ))
    .await;
    say!(
        "probed the releases of {} app server(s) in {:.2}s",
        engine.hosts.len(),
        started.elapsed().as_secs_f32()
    );
    let mut hosts = Vec::new();
    let mut problems = Vec::new();
    for (server, probed) in engine.servers.iter().zip(probes) {
        let (vars, state) = match probed {
            Ok(found) => found,
            Err(e) => {
                engine.close().await;
                return Err(e);
            }
        };
        let mut host = crate::model::plan::HostPlan {
            server: server.name.clone(),
            discovery: Default::default(),
            changes: Vec::new(),
            notes: Vec::new(),
            handlers: Vec::new(),
            release: None,
            certificate: None,
        };
        let target = match to {
            Some(id) if state.releases.iter().any(|r| r == id) => Some(id),
            Some(id) => {
                problems.push(format!(
                    "{}: no release {id} (kept: {}); `tandem releases` lists them",
                    server.name,
                    state.releases.join(", ")
                ));
                None
            }
            None => {
                let previous = state.previous();
                if previous.is_none() {
                    problems.push(format!(
                        "{}: no release before the current one to roll back to",
                        server.name
                    ));
                }
                previous
            }
        };
        if let Some(target) = target.filter(|t| state.current.as_deref() != Some(*t)) {
            host.changes.push(crate::model::plan::Change::release(
                "Roll back",
                format!(
                    "~ current: {} -> {target}",
                    state.current.as_deref().unwrap_or("none")
                ),
                crate::resource::release::rollback_script(&vars, target),
            ));
        }
        host.release = Some(state);
        hosts.push(host);
    }
    Ok((engine, crate::model::plan::Plan { hosts }, problems))
}
