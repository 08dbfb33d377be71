//! `tandem db status` and `tandem db switchover`: the database cluster as its members see it,
//! and its primary's role moved by Patroni on purpose.

use anyhow::Context;

use super::*;
use crate::cluster::status;
use crate::cluster::vars::{client_url, rest_url};
use crate::config::identifier::shell_word;
use crate::engine::transport::Transport;

pub(crate) async fn status(remote: ConnectArgs, json: bool) -> anyhow::Result<ExitCode> {
    let config = load(&remote.config)?;
    let cluster = config.cluster().with_context(|| {
        format!(
            "{} has one db server, not a cluster: add a second `role: db` server and a `role: witness` server, then apply",
            config.path.display()
        )
    })?;
    let endpoints = cluster.etcd_members().map(client_url).collect::<Vec<_>>();
    let answers = futures::future::join_all(cluster.members.iter().map(|&server| {
        let (remote, endpoints) = (&remote, endpoints.join(","));
        async move {
            let rest = rest_url(server);
            let answer = match day_two::connect(remote, &[server]).await {
                Ok(mut hosts) => {
                    let ssh = hosts.remove(0);
                    let out = ssh.run(&status::script(&rest, &endpoints)).await;
                    ssh.close().await;
                    out.map(|o| o.stdout_text())
                        .map_err(|e| format!("{e:#}").lines().next().unwrap_or("").to_string())
                }
                Err(e) => Err(format!("{e:#}").lines().next().unwrap_or("").to_string()),
            };
            status::parse_member(&server.name, answer.as_deref().map_err(Clone::clone))
        }
    }))
    .await;
    let found = status::assemble(&config.project, answers, &endpoints);
    if json {
        out(&crate::cli::json::document(&found)?)?;
    } else {
        out(found.to_string().trim_end())?;
    }
    Ok(if found.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

const SWITCHOVER_PY: &str = include_str!("../../scripts/cluster/switchover.py");

/// `tandem db switchover`: the primary's role moved to the standby, with both db servers'
/// locks held (no apply meanwhile).
pub(crate) async fn switchover(
    remote: ConnectArgs,
    to: Option<String>,
    lock_wait: u64,
) -> anyhow::Result<ExitCode> {
    let config = load(&remote.config)?;
    let cluster = config.cluster().with_context(|| {
        format!(
            "{} has one db server, not a cluster: there is nothing to switch over to",
            config.path.display()
        )
    })?;
    let endpoints = cluster.etcd_members().map(client_url).collect::<Vec<_>>();
    let members: Vec<&crate::config::Server> = cluster.members.clone();
    let hosts = day_two::connect(&remote, &members).await?;
    let report = super::report();
    let who = format!("{} db switchover", crate::engine::apply::who());
    let mut locks = Vec::new();
    for host in &hosts {
        locks.push(
            host.lock(&who, std::time::Duration::from_secs(lock_wait), &*report)
                .await?,
        );
    }
    let result = async {
        let mut answers = Vec::new();
        for (server, ssh) in members.iter().zip(&hosts) {
            let out = ssh
                .run(&status::script(&rest_url(server), &endpoints.join(",")))
                .await
                .map(|o| o.stdout_text())
                .map_err(|e| format!("{e:#}"));
            answers.push(status::parse_member(
                &server.name,
                out.as_deref().map_err(Clone::clone),
            ));
        }
        let found = status::assemble(&config.project, answers, &endpoints);
        let (leader, candidate) =
            status::switchover_pair(&found, to.as_deref(), config.database.synchronous)
                .map_err(|why| anyhow::anyhow!("not switched over: {why}"))?;
        let i = members
            .iter()
            .position(|m| m.name == leader)
            .expect("the primary is a member");
        let started = std::time::Instant::now();
        let script = crate::resource::script::held(
            &format!(
                "python3 -c {} {} {} {}\n",
                shell_word(SWITCHOVER_PY),
                shell_word(&rest_url(members[i])),
                shell_word(&leader),
                shell_word(&candidate)
            ),
            "switchover",
            &who,
            "db switchover",
            &[],
        );
        let out = hosts[i].run(&script).await?;
        anyhow::ensure!(
            out.success(),
            "{leader}: the switchover failed: {}",
            out.stderr_tail()
        );
        anyhow::Ok(format!(
            "{candidate} is the primary, {leader} its standby ({:.1} s)",
            started.elapsed().as_secs_f64()
        ))
    }
    .await;
    drop(locks);
    for host in hosts {
        host.close().await;
    }
    out(&result?)?;
    Ok(ExitCode::SUCCESS)
}
