//! `tandem status`: one screen per deployment, what an operator opens at 3 a.m.

use super::*;
use crate::engine::status::{self, ServerStatus};
use crate::engine::transport::Transport;

pub(crate) async fn status(remote: ConnectArgs, json: bool) -> anyhow::Result<ExitCode> {
    let config = load(&remote.config)?;
    // Each server on its own: one that cannot be reached is a line of the screen, not its end.
    let found: Vec<ServerStatus> = futures::future::join_all(config.servers.iter().map(|server| {
        let (remote, config) = (&remote, &config);
        async move {
            let unreachable = |e: anyhow::Error| ServerStatus {
                server: server.name.clone(),
                role: server.role.as_str().to_string(),
                error: Some(
                    format!("{e:#}")
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                ),
                ..ServerStatus::default()
            };
            let ssh = match day_two::connect(remote, &[server]).await {
                Ok(mut hosts) => hosts.remove(0),
                Err(e) => return unreachable(e),
            };
            let answer = ssh.run(&status::script(config, server)).await;
            ssh.close().await;
            match answer {
                Ok(out) => status::parse(config, server, &out.stdout_text()),
                Err(e) => unreachable(e),
            }
        }
    }))
    .await;
    let healthy = found.iter().all(ServerStatus::healthy);
    if json {
        #[derive(serde::Serialize)]
        struct Status<'a> {
            healthy: bool,
            servers: &'a [ServerStatus],
        }
        out(&crate::cli::json::document(&Status {
            healthy,
            servers: &found,
        })?)?;
    } else {
        for server in &found {
            out(&server.to_string())?;
        }
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
