//! The day-two commands: `manage`, `logs`, `releases`, `tenant` and `audit`. Each connects only
//! to the servers it needs, runs what `crate::app::day_two` builds, and prints.

use std::process::ExitCode;

use anyhow::{Context, bail};
use futures::future::join_all;

use super::{ConnectArgs, TenantCommand, load, out};
use crate::app::day_two::{self, LogRange, LogSource};
use crate::config::{Config, Role, Server};
use crate::engine::transport::{Ssh, Transport};
use crate::engine::vars::Vars;

/// The servers a day-two command runs on: the one named by `--server` (which must have
/// `role` when one is given), or every server of `role` (every server for `None`).
/// The servers `named` (all of them when empty) that have `role`, in config order; an unknown
/// name or one of another role is refused.
fn pick<'a>(
    config: &'a Config,
    named: &[String],
    role: Option<Role>,
) -> anyhow::Result<Vec<&'a Server>> {
    let fits = |s: &&Server| role.is_none_or(|r| s.role == r);
    for name in named {
        let Some(server) = config.servers.iter().find(|s| &s.name == name) else {
            let names: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).collect();
            bail!(
                "--server: no server `{name}` in the config (servers: {})",
                names.join(", ")
            );
        };
        if !fits(&server) {
            bail!(
                "--server: `{name}` is the {} server; this command runs on app servers",
                server.role.as_str()
            );
        }
    }
    Ok(config
        .servers
        .iter()
        .filter(fits)
        .filter(|s| named.is_empty() || named.contains(&s.name))
        .collect())
}

/// Connects to `servers`, all at once.
pub(super) async fn connect(remote: &ConnectArgs, servers: &[&Server]) -> anyhow::Result<Vec<Ssh>> {
    let report = super::report();
    let targets: Vec<(&str, &str)> = servers
        .iter()
        .map(|s| (s.name.as_str(), s.ssh.as_str()))
        .collect();
    let retrying =
        |name: &str, why: &str| crate::model::report::Report::progress(&*report, name, why);
    crate::engine::transport::connect_all(&targets, &remote.ssh_options(), &retrying).await
}

/// tandem's own flags of `manage`, which manage.py does not take.
const TANDEM_FLAGS: [&str; 6] = [
    "--server",
    "--ssh-config",
    "--ssh-persist",
    "--accept-new-host-keys",
    "--bootstrap-user",
    "--only",
];

/// `tandem manage [--server NAME] -- ARGS`: manage.py on an app server, attached to this
/// terminal when there is one; its exit status is tandem's.
pub async fn manage(
    remote: ConnectArgs,
    server: Option<String>,
    args: Vec<String>,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    // Words after manage.py's first one go to manage.py: a tandem flag there was meant for
    // tandem (`tandem manage check --server app2` runs on the first app server).
    let misplaced: Vec<&str> = args
        .iter()
        .map(|a| a.split('=').next().unwrap_or(a))
        .filter(|a| TANDEM_FLAGS.contains(a))
        .collect();
    if !misplaced.is_empty() {
        crate::cli::say!(
            "warning: {} after manage.py's arguments go to manage.py, not tandem; put tandem's flags before them: `tandem manage --server NAME -c FILE -- ARGS`",
            misplaced.join(", ")
        );
    }
    let config = load(&remote.config)?;
    let target = match server.as_deref() {
        Some(name) => pick(&config, &[name.to_string()], Some(Role::App))?[0],
        None => config
            .app_servers()
            .next()
            .context("the config has no app server")?,
    };
    let ssh = connect(&remote, &[target]).await?.remove(0);
    let vars = Vars::for_paths(&config, target);
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let status = ssh
        .attached(&day_two::manage_command(&vars, &args), tty)
        .status()
        .await;
    ssh.close().await;
    let status = status.context("running ssh")?;
    // ssh returns the remote command's status (255 for its own failures).
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}

/// `tandem logs`: each server's logs, each line prefixed with its server; with `--follow`,
/// every server's new lines merged into one stream until interrupted.
pub async fn logs(
    remote: ConnectArgs,
    server: Vec<String>,
    sources: Vec<LogSource>,
    range: LogRange,
) -> anyhow::Result<ExitCode> {
    let config = load(&remote.config)?;
    let servers: Vec<&Server> = pick(&config, &server, None)?
        .into_iter()
        .filter(|s| {
            sources.is_empty()
                || sources
                    .iter()
                    .any(|src| LogSource::defaults(s.role).contains(src))
        })
        .collect();
    if servers.is_empty() {
        bail!("no server has the logs asked for");
    }
    let hosts = connect(&remote, &servers).await?;
    let results = join_all(hosts.iter().zip(&servers).map(|(ssh, server)| {
        let vars = Vars::for_paths(&config, server);
        let wanted = if sources.is_empty() {
            LogSource::defaults(server.role).to_vec()
        } else {
            sources.clone()
        };
        let script = day_two::logs_script(&vars, server.role, &wanted, &range);
        async move {
            let name = ssh.name().to_string();
            let line = |text: &str| print_line(&name, text);
            ssh.run_watched(&script, &line).await
        }
    }))
    .await;
    for host in hosts {
        host.close().await;
    }
    for result in results {
        result?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `server | line` on stdout; when the reader is gone (`tandem logs -f | head`), tandem ends
/// quietly as `ClosedStdout` says, here and now (a follow never ends by itself).
fn print_line(server: &str, text: &str) {
    if out(&format!("{server} | {text}")).is_err() {
        std::process::exit(i32::from(super::CLOSED_STDOUT_EXIT));
    }
}

/// `tandem releases`: every app server's releases, oldest first, the current one marked.
pub async fn releases(remote: ConnectArgs, json: bool) -> anyhow::Result<ExitCode> {
    let config = load(&remote.config)?;
    let servers = pick(&config, &[], Some(Role::App))?;
    let hosts = connect(&remote, &servers).await?;
    let answers = join_all(hosts.iter().zip(&servers).map(|(ssh, server)| {
        let script = day_two::releases_script(&Vars::for_paths(&config, server));
        async move { ssh.run(&script).await }
    }))
    .await;
    for host in hosts {
        host.close().await;
    }
    #[derive(serde::Serialize)]
    struct ServerReleases {
        server: String,
        releases: Vec<day_two::ReleaseEntry>,
    }
    let mut listed = Vec::new();
    for (server, answer) in servers.iter().zip(answers) {
        let answer = answer?;
        if !answer.success() {
            bail!(
                "{}: listing the releases failed: {}",
                server.name,
                answer.stderr_tail()
            );
        }
        listed.push(ServerReleases {
            server: server.name.clone(),
            releases: day_two::parse_releases(&answer.stdout_text()),
        });
    }
    if json {
        #[derive(serde::Serialize)]
        struct Document {
            servers: Vec<ServerReleases>,
        }
        out(&crate::cli::json::document(&Document { servers: listed })?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = String::new();
    for s in &listed {
        text.push_str(&format!("{}:\n", s.server));
        if s.releases.is_empty() {
            text.push_str("  (no release yet)\n");
        }
        for r in &s.releases {
            let hash = if r.hash.is_empty() {
                "(never live)"
            } else {
                &r.hash[..12.min(r.hash.len())]
            };
            text.push_str(&format!(
                "  {} {}  {hash}  {}{}\n",
                if r.current { "*" } else { " " },
                r.id,
                if r.by.is_empty() { "-" } else { &r.by },
                if r.current { "  (current)" } else { "" }
            ));
        }
    }
    out(text.trim_end())?;
    Ok(ExitCode::SUCCESS)
}

/// `tandem audit`: the last lines of each server's audit log (what tandem ran, when, and for
/// whom), prefixed with the server.
pub async fn audit(
    remote: ConnectArgs,
    server: Vec<String>,
    lines: u32,
) -> anyhow::Result<ExitCode> {
    let config = load(&remote.config)?;
    let servers = pick(&config, &server, None)?;
    let hosts = connect(&remote, &servers).await?;
    let script = day_two::audit_script(lines);
    let answers = join_all(hosts.iter().map(|ssh| ssh.run(&script))).await;
    for host in hosts {
        host.close().await;
    }
    for (server, answer) in servers.iter().zip(answers) {
        for line in answer?.stdout_text().lines() {
            out(&format!("{} | {line}", server.name))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tandem restart [gunicorn|processes|nginx]`: on each app server (or `server`), under its
/// lock, without a release; one line per server with what it restarted.
pub async fn restart(
    remote: ConnectArgs,
    server: Vec<String>,
    lock_wait: u64,
    what: Vec<day_two::Restartable>,
) -> anyhow::Result<ExitCode> {
    let config = load(&remote.config)?;
    let servers = pick(&config, &server, Some(Role::App))?;
    let what = match what.is_empty() {
        true => vec![day_two::Restartable::Gunicorn],
        false => what,
    };
    let hosts = connect(&remote, &servers).await?;
    let report = super::report();
    let who = format!("{} restart", crate::engine::apply::who());
    let wait = std::time::Duration::from_secs(lock_wait);
    let mut failed = false;
    let results = join_all(hosts.iter().zip(&servers).map(|(ssh, server)| {
        let (report, who, what, config) = (&report, &who, &what, &config);
        async move {
            let _lock = ssh.lock(who, wait, &**report).await?;
            let vars = Vars::for_paths(config, server);
            let script = crate::resource::script::held(
                &day_two::restart_script(&vars, what),
                "restart",
                who,
                "restart",
                &[],
            );
            let out = ssh.run(&script).await?;
            anyhow::ensure!(
                out.success(),
                "{}: restart failed: {}",
                server.name,
                out.stderr_tail()
            );
            anyhow::Ok(out.stdout_text())
        }
    }))
    .await;
    for host in hosts {
        host.close().await;
    }
    for (server, result) in servers.iter().zip(results) {
        match result {
            Ok(said) => {
                for line in said.lines() {
                    out(&format!("{}: {line}", server.name))?;
                }
            }
            Err(e) => {
                failed = true;
                crate::cli::say!("{}", crate::cli::error_screen(&format!("error: {e:#}")));
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `tandem tenant add|list`, on the first app server.
pub async fn tenant(action: TenantCommand) -> anyhow::Result<ExitCode> {
    let (remote, json) = match &action {
        TenantCommand::Add { remote, .. } => (remote, false),
        TenantCommand::List { remote, json } => (remote, *json),
    };
    let config = load(&remote.config)?;
    if !config.django.is_multi_tenant() {
        bail!(
            "tenants are for multi-tenant projects (`django.migrate: migrate_schemas`, \
             django-tenants or django-tenant-schemas); this config uses plain migrate"
        );
    }
    let python = match &action {
        TenantCommand::List { .. } => day_two::tenant_python(&day_two::TenantAction::List),
        TenantCommand::Add {
            name,
            domain,
            schema,
            ..
        } => {
            if !day_two::domain_is_served(domain, &config.domains) {
                bail!(
                    "`{domain}` is not a domain the config serves ({}): a tenant's domain is one \
                     label under a `*.` wildcard in `domains`, lowercase, e.g. blue.{}",
                    config.domains.join(", "),
                    config
                        .domains
                        .iter()
                        .find_map(|d| d.strip_prefix("*."))
                        .unwrap_or("example.com")
                );
            }
            let schema =
                day_two::tenant_schema(name, schema.as_deref()).map_err(anyhow::Error::msg)?;
            day_two::tenant_python(&day_two::TenantAction::Add {
                name,
                domain,
                schema: &schema,
            })
        }
    };
    let server = config
        .app_servers()
        .next()
        .context("the config has no app server")?;
    let ssh = connect(remote, &[server]).await?.remove(0);
    let vars = Vars::for_paths(&config, server);
    let answer = ssh.run(&day_two::manage_shell_script(&vars, &python)).await;
    ssh.close().await;
    let answer = answer?;
    let said = answer.stdout_text();
    if let Some(why) = said.lines().find_map(|l| l.strip_prefix("TANDEM_ERROR ")) {
        bail!("{}: {why}", server.name);
    }
    if !answer.success() {
        bail!(
            "{}: manage.py shell failed: {}",
            server.name,
            answer.stderr_tail()
        );
    }
    match action {
        TenantCommand::Add { domain, .. } => {
            let schema = said
                .lines()
                .find_map(|l| l.strip_prefix("TANDEM_ADDED "))
                .context("manage.py shell did not say that it added the tenant")?;
            super::say!("added tenant {schema} on {domain}: its schema is created and migrated");
        }
        TenantCommand::List { .. } => {
            let tenants = day_two::parse_tenants(&said);
            if json {
                #[derive(serde::Serialize)]
                struct Document {
                    tenants: Vec<day_two::Tenant>,
                }
                out(&crate::cli::json::document(&Document { tenants })?)?;
            } else {
                let mut text = String::new();
                for t in &tenants {
                    text.push_str(&format!(
                        "{}  {}  {}\n",
                        t.schema,
                        t.name,
                        t.domains.join(", ")
                    ));
                }
                out(text.trim_end())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
