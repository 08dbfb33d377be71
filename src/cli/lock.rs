//! `tandem lock status`: who holds each server's apply lock, since when, and whether work of
//! a cut-off run still runs there. What an operator opens when a run says it is waiting.

use super::*;
use crate::engine::lock_status::{self, LockStatus};
use crate::engine::transport::Transport;

pub(crate) async fn status(remote: ConnectArgs, json: bool) -> anyhow::Result<ExitCode> {
    let config = load(&remote.config)?;
    let servers: Vec<&config::Server> = config.servers.iter().collect();
    let hosts = day_two::connect(&remote, &servers).await?;
    let script = lock_status::script(crate::resource::script::STATE_DIR);
    let answers = futures::future::join_all(hosts.iter().map(|ssh| ssh.run(&script))).await;
    for host in hosts {
        host.close().await;
    }
    let mut found: Vec<(String, LockStatus)> = Vec::new();
    for (server, answer) in servers.iter().zip(answers) {
        found.push((
            server.name.clone(),
            lock_status::parse(&answer?.stdout_text()),
        ));
    }
    if json {
        #[derive(serde::Serialize)]
        struct Server<'a> {
            server: &'a str,
            #[serde(flatten)]
            status: &'a LockStatus,
        }
        #[derive(serde::Serialize)]
        struct Locks<'a> {
            servers: Vec<Server<'a>>,
        }
        let servers = found
            .iter()
            .map(|(server, status)| Server { server, status })
            .collect();
        out(&crate::cli::json::document(&Locks { servers })?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (server, status) in &found {
        let mut line = match (&status.owner, status.since) {
            _ if !status.held => format!("{server}: free"),
            (owner, since) => format!(
                "{server}: held by {}{}",
                owner.as_deref().unwrap_or("an unknown run"),
                since
                    .map(|s| format!(
                        " for {}",
                        crate::backup::pgbackrest::human_age(status.now - s)
                    ))
                    .unwrap_or_default()
            ),
        };
        if status.work_running {
            line.push_str(
                "; remote work of a cut-off run still runs (see /var/lib/tandem/audit.log there)",
            );
        }
        out(&line)?;
    }
    Ok(ExitCode::SUCCESS)
}
