//! `tandem db status`: the database cluster as its members see it.

use anyhow::Context;

use super::*;
use crate::cluster::status;
use crate::engine::transport::Transport;
use crate::engine::vars::Vars;

pub(crate) async fn status(remote: ConnectArgs, json: bool) -> anyhow::Result<ExitCode> {
    let config = load(&remote.config)?;
    let cluster = config.cluster().with_context(|| {
        format!(
            "{} has one db server, not a cluster: add a second `role: db` server and a `role: witness` server, then apply",
            config.path.display()
        )
    })?;
    let endpoints: Vec<String> = cluster
        .etcd_members()
        .map(|s| {
            format!(
                "http://{}:{}",
                crate::config::servers::url_host(s.internal_ip),
                crate::cluster::vars::ETCD_CLIENT_PORT
            )
        })
        .collect();
    let answers = futures::future::join_all(cluster.members.iter().map(|&server| {
        let (remote, config, endpoints) = (&remote, &config, endpoints.join(","));
        async move {
            let vars = Vars::for_paths(config, server);
            let rest = format!(
                "http://{}:{}",
                vars.cluster.url_host,
                crate::cluster::vars::REST_PORT
            );
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
