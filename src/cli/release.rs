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
    let (engine, planned) = connect_and_plan(&change.remote, Locking::Exclusive(&options)).await?;
    let mut plan = planned.plan;
    let mut problems = Vec::new();
    for (host, server) in plan.hosts.iter_mut().zip(&engine.servers) {
        let provisioning = host.changes.iter().filter(|c| !c.role.is_release()).count();
        host.handlers.clear();
        match &action {
            ReleaseAction::Deploy => {
                if provisioning > 0 && server.role == crate::config::Role::App {
                    say!(
                        "{}: {provisioning} provisioning change(s) pending; `tandem apply` makes them",
                        host.server
                    );
                }
                host.changes.retain(|c| c.role.is_release());
            }
            ReleaseAction::Rollback { to } => {
                host.changes.clear();
                let Some(state) = &host.release else { continue };
                let target = match to {
                    Some(id) if state.releases.contains(id) => id.as_str(),
                    Some(id) => {
                        problems.push(format!(
                            "{}: no release {id} (kept: {}); `tandem releases` lists them",
                            host.server,
                            state.releases.join(", ")
                        ));
                        continue;
                    }
                    None => match state.previous() {
                        Some(previous) => previous,
                        None => {
                            problems.push(format!(
                                "{}: no release before the current one to roll back to",
                                host.server
                            ));
                            continue;
                        }
                    },
                };
                if state.current.as_deref() == Some(target) {
                    continue;
                }
                let previous = target;
                let vars = crate::engine::vars::Vars::for_paths(&engine.config, server);
                host.changes.push(crate::model::plan::Change::release(
                    "Roll back",
                    format!(
                        "~ current: {} -> {previous}",
                        state.current.as_deref().unwrap_or("none")
                    ),
                    crate::resource::release::rollback_script(&vars, previous),
                ));
            }
        }
    }
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
    // A release installs no packages: apply never needs to plan again, but takes the means.
    let secrets = engine::secrets(&engine.config)?;
    let reports = {
        let replan = replanner(&engine, &secrets, &change.remote.remote.config);
        crate::engine::apply::apply(&engine, &plan, &options, &replan).await
    };
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
