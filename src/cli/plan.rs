//! `tandem plan`, and connecting and planning for the commands that go on from a plan.

use super::*;

/// Whether a command takes every server's lock before it probes: the ones that change servers
/// do, so their plan is made from what the servers are once no other run can change them.
pub(crate) enum Locking<'a> {
    ReadOnly,
    Exclusive(&'a crate::engine::apply::ApplyOptions),
}

pub(crate) async fn connect_and_plan(
    planning: &PlanningArgs,
    locking: Locking<'_>,
) -> anyhow::Result<(Engine, engine::Planned)> {
    let config = load(&planning.remote.config)?;
    let secrets = engine::secrets(&config)?;
    let (engine, planned, ()) =
        plan_alongside(config, secrets, planning, locking, |_| async {}).await?;
    Ok((engine, planned))
}

/// `connect_and_plan` for a config already loaded, running the future `alongside` makes from
/// the connected engine while the servers are probed (it owns what it uses: clones of the
/// sessions).
pub(crate) async fn plan_alongside<T, F: std::future::Future<Output = T>>(
    config: config::Config,
    secrets: config::secret::RunSecrets,
    planning: &PlanningArgs,
    locking: Locking<'_>,
    alongside: impl FnOnce(&Engine) -> F,
) -> anyhow::Result<(Engine, engine::Planned, T)> {
    let (remote, only) = (&planning.remote, &planning.only.names);
    let mut templates = templates(&remote.config)?;
    let started = std::time::Instant::now();
    let mut engine = Engine::connect(config, remote.ssh_options(), report(), only).await?;
    let skipped: Vec<&str> = engine
        .config
        .servers
        .iter()
        .filter(|s| !engine.servers.iter().any(|e| e.name == s.name))
        .map(|s| s.name.as_str())
        .collect();
    if !skipped.is_empty() {
        say!("--server: skipping {}", skipped.join(", "));
    }
    let connected = started.elapsed();
    let locked = match locking {
        Locking::ReadOnly => Ok(()),
        Locking::Exclusive(options) => crate::engine::apply::lock_all(&mut engine, options).await,
    };
    let planned = match locked {
        Ok(()) => {
            let side = alongside(&engine);
            let (planned, side) = tokio::join!(engine.plan(&mut templates, &secrets), side);
            planned.map(|p| (p, side))
        }
        Err(e) => Err(e),
    };
    let (planned, side) = match planned {
        Ok(done) => done,
        Err(e) => {
            engine.close().await;
            return Err(e);
        }
    };
    say!(
        "probed {} server(s) in {:.2}s ({:.2}s connecting; {} round trips per server)",
        engine.hosts.len(),
        started.elapsed().as_secs_f32(),
        connected.as_secs_f32(),
        engine.round_trips
    );
    Ok((engine, planned, side))
}

pub(crate) async fn plan(
    remote: PlanningArgs,
    detailed_exitcode: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (engine, planned) = connect_and_plan(&remote, Locking::ReadOnly).await?;
    engine.close().await;
    let plan = planned.plan;
    if json {
        out(&crate::cli::json::document(&plan)?)?;
    } else {
        out_painted(&plan.to_string(), crate::cli::style::plan)?;
    }
    Ok(if detailed_exitcode && plan.change_count() > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
