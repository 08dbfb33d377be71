//! `tandem verify`: the checks run while the servers are probed, and the report.

use super::*;

/// Connects, probes and runs every check.
pub(crate) async fn verification(
    remote: &PlanningArgs,
) -> anyhow::Result<crate::verify::Verification> {
    let config = load(&remote.remote.config)?;
    // verify uses a secret only to compare the files made from it: without it, those files
    // are named as not compared and every other check runs.
    let (secrets, unread) = crate::config::secret::read_available(&config);
    if !unread.is_empty() {
        say!(
            "{} secret(s) not read: the files made from them are not compared\n  {}",
            unread.len(),
            unread.join("\n  ")
        );
    }
    let planning = plan_alongside(config, secrets, remote, Locking::ReadOnly, verify_alongside);
    let (engine, planned, (answers, here)) = planning.await?;
    let report = crate::verify::verify(&engine, &planned, here, answers);
    engine.close().await;
    Ok(report)
}

/// `verification` over connections already made (after apply: no second handshake).
pub(crate) async fn verification_connected(
    engine: &mut Engine,
    config: &ConfigArgs,
) -> anyhow::Result<crate::verify::Verification> {
    let mut templates = templates(config)?;
    let secrets = engine::secrets(&engine.config)?;
    let side = verify_alongside(engine);
    let (planned, (answers, here)) = tokio::join!(engine.plan(&mut templates, &secrets), side);
    Ok(crate::verify::verify(engine, &planned?, here, answers))
}

/// What verify runs while the servers are probed: its own scripts on the servers, and the
/// checks from this machine (they wait on the network; started once connected so that their
/// ssh handshakes do not slow the connections down).
pub(crate) fn verify_alongside(
    engine: &Engine,
) -> impl std::future::Future<Output = (crate::verify::ServerAnswers, crate::verify::Verification)> + use<>
{
    let scripts = crate::verify::server_scripts(engine);
    let (config, servers) = (engine.config.clone(), engine.servers.clone());
    let options = engine.options.clone();
    async move {
        let here = crate::verify::from_here(&config, &servers, &options);
        tokio::join!(scripts, here)
    }
}

pub(crate) async fn verify(remote: PlanningArgs, json: bool) -> anyhow::Result<ExitCode> {
    let report = verification(&remote).await?;
    if json {
        out(&crate::cli::json::document(&report)?)?;
    } else {
        out_painted(&report.to_string(), crate::cli::style::verify)?;
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
