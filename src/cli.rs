//! The command line: arguments, and what each subcommand does with them.
// The CLI is the edge where tandem prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::assets::Assets;
use crate::config;
use crate::engine::{self, Engine};
use crate::init;
use crate::render;
use crate::templates::Templates;
use crate::transport::SshOptions;
use crate::vars::HostFacts;

#[derive(Parser, Debug)]
#[command(
    name = "tandem",
    version,
    about = "Django on an app server and PostgreSQL on its own server, over SSH, from one YAML file"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug)]
struct ConfigArgs {
    /// The config file.
    #[arg(short, long, default_value = "tandem.yml")]
    config: PathBuf,
    /// Directory whose templates/ and playbooks/ files replace tandem's built-in ones.
    #[arg(long, value_name = "DIR")]
    overrides: Option<PathBuf>,
    /// PostgreSQL major version assumed offline (apply reads the real one from the server).
    #[arg(long, default_value = "15", value_name = "VERSION",
          value_parser = clap::value_parser!(u16).range(9..100))]
    postgres_version: u16,
}

#[derive(clap::Args, Debug)]
struct RemoteArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// ssh_config file for every connection (`ssh -F FILE`); default: ~/.ssh/config.
    #[arg(long, value_name = "FILE")]
    ssh_config: Option<PathBuf>,
    /// Accept and remember host keys never seen before. A changed key is always refused.
    #[arg(long)]
    accept_new_host_keys: bool,
    /// Log in as this user where the configured one cannot log in yet (a fresh server's root).
    #[arg(long, value_name = "USER")]
    bootstrap_user: Option<String>,
    /// Seconds to wait for another tandem run's lock on a server.
    #[arg(long, default_value = "120", value_name = "SECONDS")]
    lock_wait: u64,
}

impl RemoteArgs {
    fn ssh_options(&self) -> SshOptions {
        SshOptions {
            config_file: self.ssh_config.clone(),
            accept_new_host_keys: self.accept_new_host_keys,
            bootstrap_user: self.bootstrap_user.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a commented starter tandem.yml (never overwrites).
    Init {
        #[arg(default_value = "tandem.yml")]
        path: PathBuf,
    },
    /// Validate the config and render everything, offline; exit 0 when all is well, 1 otherwise.
    Check(ConfigArgs),
    /// Write every file tandem would install, per server, plus its SQL and ufw commands.
    Render {
        #[command(flatten)]
        args: ConfigArgs,
        /// Output directory (must be empty or absent).
        #[arg(long)]
        out: PathBuf,
    },
    /// Show what apply would change on each server (probes them over SSH; changes nothing).
    Plan {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Exit 0 when nothing would change, 2 when changes are pending, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Print the plan as JSON on stdout (secrets redacted).
        #[arg(long)]
        json: bool,
    },
    /// Show the plan, ask, then change the servers to match tandem.yml.
    Apply {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Do not ask (required without a terminal, e.g. in CI).
        #[arg(long)]
        yes: bool,
    },
    /// Prove the deployment works and is closed; exit 0 when every check passes, 1 otherwise.
    Verify {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Print every check with its result and hint as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Ship the Django code as a new release on every app server, without provisioning.
    Deploy {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Switch every app server back to its previous release.
    Rollback {
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Plan {
            remote,
            detailed_exitcode,
            json,
        } => runtime()?.block_on(plan(remote, detailed_exitcode, json)),
        Command::Apply { remote, yes } => runtime()?.block_on(apply(remote, yes)),
        Command::Verify { remote, json } => runtime()?.block_on(verify(remote, json)),
        Command::Deploy { remote } => runtime()?.block_on(releases(remote, ReleaseAction::Deploy)),
        Command::Rollback { remote } => {
            runtime()?.block_on(releases(remote, ReleaseAction::Rollback))
        }
        Command::Init { path } => {
            init::write_starter(&path)?;
            eprintln!(
                "wrote {}; edit it, then run `tandem check -c {}`",
                path.display(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => {
            let (config, count) = load_and_render(&args)?;
            let files: usize = count;
            eprintln!(
                "{}: ok, {} servers ({} app, 1 db), {files} files rendered",
                args.config.display(),
                config.servers.len(),
                config.app_servers().count()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Render { args, out } => {
            let loaded = load(&args)?;
            let mut templates = templates(&args)?;
            let facts = facts(&args);
            let all = render::desired_all(&loaded, &mut templates, &facts)?;
            let files = render::rendered_files(&loaded, &all);
            render::write(&out, &files)?;
            eprintln!(
                "wrote {} files for {} servers to {}",
                files.len(),
                all.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load(args: &ConfigArgs) -> anyhow::Result<config::Config> {
    let loaded = config::load(&args.config)?;
    for warning in &loaded.warnings {
        eprintln!("{warning}");
    }
    Ok(loaded.config)
}

fn templates(args: &ConfigArgs) -> anyhow::Result<Templates> {
    let assets = match &args.overrides {
        Some(dir) => Assets::with_overrides(dir)?,
        None => Assets::builtin(),
    };
    Ok(Templates::new(assets))
}

fn facts(args: &ConfigArgs) -> HostFacts {
    HostFacts {
        postgres_version: args.postgres_version.to_string(),
    }
}

fn load_and_render(args: &ConfigArgs) -> anyhow::Result<(config::Config, usize)> {
    let config = load(args)?;
    let mut templates = templates(args)?;
    let all = render::desired_all(&config, &mut templates, &facts(args))?;
    let count = render::rendered_files(&config, &all).len();
    Ok((config, count))
}

/// Progress for people: one line per event on stderr, prefixed with the server.
struct StderrReport;

impl crate::report::Report for StderrReport {
    fn progress(&self, server: &str, line: &str) {
        eprintln!("{server}: {line}");
    }

    fn debug(&self, line: &str) {
        if std::env::var_os("TANDEM_DEBUG").is_some() {
            eprintln!("debug: {line}");
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Whether a command takes every server's lock before it probes: the ones that change servers
/// do, so their plan is made from what the servers are once no other run can change them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Locking {
    ReadOnly,
    Exclusive,
}

async fn connect_and_plan(
    remote: &RemoteArgs,
    locking: Locking,
) -> anyhow::Result<(Engine, engine::Planned)> {
    let config = load(&remote.config)?;
    let mut templates = templates(&remote.config)?;
    let password = engine::password(&config)?;
    let started = std::time::Instant::now();
    let mut engine = Engine::connect(
        config,
        remote.ssh_options(),
        std::sync::Arc::new(StderrReport),
    )
    .await?;
    let connected = started.elapsed();
    let locked = match locking {
        Locking::ReadOnly => Ok(()),
        Locking::Exclusive => crate::apply::lock_all(&mut engine, &apply_options(remote)).await,
    };
    let planned = match locked {
        Ok(()) => engine.plan(&mut templates, &password).await,
        Err(e) => Err(e),
    };
    let planned = match planned {
        Ok(p) => p,
        Err(e) => {
            engine.close().await;
            return Err(e);
        }
    };
    eprintln!(
        "probed {} server(s) in {:.2}s ({:.2}s connecting; {} round trips per server)",
        engine.hosts.len(),
        started.elapsed().as_secs_f32(),
        connected.as_secs_f32(),
        engine.round_trips
    );
    Ok((engine, planned))
}

async fn plan(remote: RemoteArgs, detailed_exitcode: bool, json: bool) -> anyhow::Result<ExitCode> {
    let (engine, planned) = connect_and_plan(&remote, Locking::ReadOnly).await?;
    engine.close().await;
    let plan = planned.plan;
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        println!("{plan}");
    }
    Ok(if detailed_exitcode && plan.change_count() > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

async fn apply(remote: RemoteArgs, yes: bool) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let (mut engine, planned) = connect_and_plan(&remote, Locking::Exclusive).await?;
    let plan = planned.plan;
    println!("{plan}");
    if plan.change_count() == 0 {
        engine.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            engine.close().await;
            anyhow::bail!("no terminal to ask on: pass --yes to apply without asking");
        }
        eprint!("Apply these changes? Type yes: ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            engine.close().await;
            eprintln!("Nothing changed.");
            return Ok(ExitCode::FAILURE);
        }
    }
    let options = apply_options(&remote);
    let started = std::time::Instant::now();
    let result = apply_phases(&mut engine, plan, &options, &remote).await;
    engine.close().await;
    let reports = result?;
    let (summary, ok) = crate::apply::summary(&reports);
    eprint!("{summary}");
    eprintln!("apply took {:.1}s", started.elapsed().as_secs_f32());
    if !ok {
        return Ok(ExitCode::FAILURE);
    }
    // Every apply ends with the proof.
    verify(remote, false).await
}

/// Under the locks taken before the plan: runs the prepare changes everywhere (packages, a
/// stopped PostgreSQL), probes again (they create files, services and database facts the
/// first probe could not see), then applies the refreshed plan.
async fn apply_phases(
    engine: &mut Engine,
    plan: crate::plan::Plan,
    options: &crate::apply::ApplyOptions,
    remote: &RemoteArgs,
) -> anyhow::Result<Vec<crate::apply::HostReport>> {
    let (prepared, prepare_reports) = crate::apply::prepare_hosts(engine, &plan, options).await;
    crate::apply::audit(engine, &prepare_reports, options).await;
    if prepare_reports.iter().any(|r| r.error.is_some()) {
        return Ok(prepare_reports);
    }
    let plan = if prepared {
        let mut templates = templates(&remote.config)?;
        let password = engine::password(&engine.config)?;
        let fresh = engine.plan(&mut templates, &password).await?.plan;
        let before: Vec<&str> = plan
            .hosts
            .iter()
            .flat_map(|h| h.changes.iter().map(|c| c.summary.as_str()))
            .collect();
        for host in &fresh.hosts {
            for c in host
                .changes
                .iter()
                .filter(|c| !before.contains(&c.summary.as_str()))
            {
                eprintln!(
                    "{}: after preparing (packages, services), also: {}",
                    host.server, c.summary
                );
            }
        }
        fresh
    } else {
        plan
    };
    let mut reports = crate::apply::apply(engine, &plan, options).await;
    for packages in prepare_reports {
        if let Some(report) = reports.iter_mut().find(|r| r.server == packages.server) {
            let mut applied = packages.applied;
            applied.append(&mut report.applied);
            report.applied = applied;
        }
    }
    Ok(reports)
}

fn apply_options(remote: &RemoteArgs) -> crate::apply::ApplyOptions {
    crate::apply::ApplyOptions {
        lock_wait: std::time::Duration::from_secs(remote.lock_wait),
        who: crate::apply::who(),
    }
}

enum ReleaseAction {
    Deploy,
    Rollback,
}

/// `deploy` keeps only the plan's release changes; `rollback` makes one per app server that
/// switches back to the release before the current one. Both run under the hosts' locks.
async fn releases(remote: RemoteArgs, action: ReleaseAction) -> anyhow::Result<ExitCode> {
    let (engine, planned) = connect_and_plan(&remote, Locking::Exclusive).await?;
    let mut plan = planned.plan;
    let mut problems = Vec::new();
    for (host, server) in plan.hosts.iter_mut().zip(&engine.config.servers) {
        let provisioning = host
            .changes
            .iter()
            .filter(|c| c.role != crate::playbook::Phase::Release)
            .count();
        host.handlers.clear();
        match action {
            ReleaseAction::Deploy => {
                if provisioning > 0 && server.role == crate::config::Role::App {
                    eprintln!(
                        "{}: {provisioning} provisioning change(s) pending; `tandem apply` makes them",
                        host.server
                    );
                }
                host.changes
                    .retain(|c| c.role == crate::playbook::Phase::Release);
            }
            ReleaseAction::Rollback => {
                host.changes.clear();
                let Some(state) = &host.release else { continue };
                let Some(previous) = state.previous() else {
                    problems.push(format!(
                        "{}: no release before the current one to roll back to",
                        host.server
                    ));
                    continue;
                };
                let vars = crate::vars::Vars::for_paths(&engine.config, server);
                host.changes.push(crate::plan::Change::release(
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
    println!("{plan}");
    if plan.change_count() == 0 {
        engine.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    let options = apply_options(&remote);
    let reports = crate::apply::apply(&engine, &plan, &options).await;
    engine.close().await;
    let (summary, ok) = crate::apply::summary(&reports);
    eprint!("{summary}");
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn verify(remote: RemoteArgs, json: bool) -> anyhow::Result<ExitCode> {
    let (engine, planned) = connect_and_plan(&remote, Locking::ReadOnly).await?;
    let report = crate::verify::verify(&engine, &planned).await;
    engine.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!("{report}");
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
