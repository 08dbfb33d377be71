//! `tandem apply`: the plan shown, confirmed, applied in phases, then verified.

use super::*;

/// What to do after showing a plan.
pub(crate) enum Go {
    Ahead,
    /// Nothing to do, or the user said no: end with this status.
    Stop(ExitCode),
}

/// Shows `plan` on stdout (unless the run ends in a JSON document) and asks about it.
pub(crate) fn show_and_confirm(
    plan: &crate::model::plan::Plan,
    question: &str,
    change: &ChangeArgs,
) -> anyhow::Result<Go> {
    let yes = change.yes;
    if !change.json {
        out_painted(&plan.to_string(), crate::cli::style::plan)?;
    }
    if plan.change_count() == 0 {
        Ok(Go::Stop(ExitCode::SUCCESS))
    } else if confirm(question, yes)? {
        Ok(Go::Ahead)
    } else {
        say!("Nothing changed.");
        Ok(Go::Stop(ExitCode::FAILURE))
    }
}

/// The `--json` document of apply, deploy and rollback.
#[derive(serde::Serialize)]
pub(crate) struct ChangeRun<'a> {
    pub(crate) command: &'static str,
    /// The plan shown before anything ran.
    pub(crate) plan: &'a crate::model::plan::Plan,
    /// Every server's changes ran without error (and, for apply, verify passed).
    pub(crate) ok: bool,
    pub(crate) seconds: f32,
    pub(crate) hosts: &'a [crate::engine::apply::HostReport],
    /// apply only: the proof that ends it (null when nothing ran or a change failed).
    pub(crate) verify: Option<&'a crate::verify::Verification>,
}

/// Ends a change command that runs nothing (no changes, the user said no, or asking failed):
/// closes the connections and, with `--json`, still prints the document.
pub(crate) async fn end_before_running(
    engine: Engine,
    go: anyhow::Result<Go>,
    command: &'static str,
    plan: &crate::model::plan::Plan,
    json: bool,
) -> anyhow::Result<ExitCode> {
    engine.close().await;
    let code = match go? {
        Go::Stop(code) => code,
        Go::Ahead => ExitCode::SUCCESS,
    };
    if json {
        out(&crate::cli::json::document(&ChangeRun {
            command,
            plan,
            ok: code == ExitCode::SUCCESS,
            seconds: 0.0,
            hosts: &[],
            verify: None,
        })?)?;
    }
    Ok(code)
}

impl ChangeRun<'_> {
    pub(crate) fn exit_code(&self) -> ExitCode {
        if self.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

pub(crate) async fn apply(change: ChangeArgs) -> anyhow::Result<ExitCode> {
    let options = change.apply_options();
    let (mut engine, planned) =
        connect_and_plan(&change.remote, Locking::Exclusive(&options)).await?;
    let plan = planned.plan;
    let shown = plan.clone();
    let go = show_and_confirm(&plan, "Apply these changes?", &change);
    if !matches!(go, Ok(Go::Ahead)) {
        return end_before_running(engine, go, "apply", &plan, change.json).await;
    }
    let started = std::time::Instant::now();
    let result = apply_phases(&mut engine, plan, &options, &change.remote.remote).await;
    let reports = match result {
        Ok(reports) => reports,
        Err(e) => {
            engine.close().await;
            return Err(e);
        }
    };
    let seconds = started.elapsed().as_secs_f32();
    let (summary, ok) = crate::engine::apply::summary(&reports);
    say_part!("{summary}");
    say!("apply took {seconds:.1}s");
    // Every apply that ran its changes ends with the proof, over the same connections (the
    // lockout guard has proven a new one works; verify's SSH checks make their own).
    let verification = match ok {
        true => Some(verification_connected(&mut engine, &change.remote.remote.config).await),
        false => None,
    };
    engine.close().await;
    let verification = verification.transpose()?;
    let run = ChangeRun {
        command: "apply",
        plan: &shown,
        ok: ok && verification.as_ref().is_some_and(|v| v.passed()),
        seconds,
        hosts: &reports,
        verify: verification.as_ref(),
    };
    if change.json {
        out(&crate::cli::json::document(&run)?)?;
    } else if let Some(v) = &verification {
        out_painted(&v.to_string(), crate::cli::style::verify)?;
    }
    Ok(run.exit_code())
}

/// Under the locks taken before the plan: each side (database, app) runs its prepare changes
/// (packages, a stopped PostgreSQL), is probed again (they create files, services and database
/// facts the first probe could not see) and applied, the app side without waiting for the
/// database side's packages.
pub(crate) async fn apply_phases(
    engine: &mut Engine,
    plan: crate::model::plan::Plan,
    options: &crate::engine::apply::ApplyOptions,
    remote: &RemoteArgs,
) -> anyhow::Result<Vec<crate::engine::apply::HostReport>> {
    let secrets = engine::secrets(&engine.config)?;
    let engine: &Engine = engine;
    let replan = replanner(engine, &secrets, &remote.config);
    Ok(crate::engine::apply::apply(engine, &plan, options, &replan).await)
}

/// How apply plans some hosts again (`apply::Replan`): a new probe of just those.
pub(crate) fn replanner<'a>(
    engine: &'a Engine,
    secrets: &'a crate::config::secret::RunSecrets,
    config: &'a ConfigArgs,
) -> impl Fn(
    Vec<usize>,
) -> futures::future::LocalBoxFuture<'a, anyhow::Result<Vec<crate::model::plan::HostPlan>>>
+ 'a {
    move |which: Vec<usize>| {
        Box::pin(async move {
            let mut templates = templates(config)?;
            let planned = engine.plan_hosts(&mut templates, secrets, &which).await?;
            Ok(planned.plan.hosts)
        })
    }
}
