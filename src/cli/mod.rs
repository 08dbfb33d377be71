//! The command line: arguments, and what each subcommand does with them.
// The CLI is the edge where tandem prints: through `out` (stdout) and `say!` (stderr), which
// turn a closed pipe into a quiet stop instead of the print macros' panic.

pub mod init;
pub mod json;
mod man;
pub mod style;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;
use crate::engine::assets::Assets;
use crate::engine::render;
use crate::engine::templates::Templates;
use crate::engine::transport::SshOptions;
use crate::engine::vars::HostFacts;
use crate::engine::{self, Engine};

mod apply;
mod args;
mod backup;
mod completions;
mod day_two;
mod db;
mod lock;
mod offline;
mod output;
mod plan;
mod release;
mod restore_cluster;
mod status;
mod verify;

use apply::*;
pub use args::Cli;
use args::*;
use offline::*;
use output::*;
pub use output::{CLOSED_STDOUT_EXIT, ClosedStdout, error_screen, stderr_closed, to_stderr};

/// Prints `text` on stdout (for main's JSON failure document).
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    out(text)
}
use plan::*;
use release::*;
use verify::*;

/// `eprintln!` that survives a closed stderr (`to_stderr`).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::to_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that survives a closed stderr (`to_stderr`).
macro_rules! say_part {
    ($($arg:tt)*) => {
        $crate::cli::to_stderr(format_args!($($arg)*))
    };
}

pub(crate) use {say, say_part};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    decide_colours(cli.color);
    VERBOSE.store(cli.verbose, std::sync::atomic::Ordering::Relaxed);
    match cli.command {
        Command::Plan {
            remote,
            detailed_exitcode,
            json,
        } => runtime()?.block_on(plan(remote, detailed_exitcode, json)),
        Command::Apply(change) => runtime()?.block_on(apply(change)),
        Command::Verify { remote, json } => runtime()?.block_on(verify(remote, json)),
        Command::Deploy(change) => runtime()?.block_on(releases(change, ReleaseAction::Deploy)),
        Command::Rollback { change, to } => {
            runtime()?.block_on(releases(change.into(), ReleaseAction::Rollback { to }))
        }
        Command::Manage {
            remote,
            server,
            args,
        } => runtime()?.block_on(day_two::manage(remote, server, args)),
        Command::Logs {
            remote,
            server,
            follow,
            since,
            lines,
            sources,
        } => runtime()?.block_on(day_two::logs(
            remote,
            server,
            sources,
            crate::app::day_two::LogRange {
                since,
                lines,
                follow,
            },
        )),
        Command::Releases { remote, json } => runtime()?.block_on(day_two::releases(remote, json)),
        Command::Tenant { action } => runtime()?.block_on(day_two::tenant(action)),
        Command::Lock {
            action: LockCommand::Status { remote, json },
        } => runtime()?.block_on(lock::status(remote, json)),
        Command::Db {
            action: DbCommand::Status { remote, json },
        } => runtime()?.block_on(db::status(remote, json)),
        Command::Db {
            action:
                DbCommand::Switchover {
                    remote,
                    to,
                    lock_wait,
                },
        } => runtime()?.block_on(db::switchover(remote, to, lock_wait)),
        Command::Status { remote, json } => runtime()?.block_on(status::status(remote, json)),
        Command::Restart {
            remote,
            server,
            lock_wait,
            what,
        } => runtime()?.block_on(day_two::restart(remote, server, lock_wait, what)),
        Command::Audit {
            remote,
            server,
            lines,
        } => runtime()?.block_on(day_two::audit(remote, server, lines)),
        Command::Backup { action, remote } => match action {
            None => runtime()?.block_on(backup::backup_now(remote)),
            Some(BackupCommand::List { remote, json }) => {
                runtime()?.block_on(backup::list(remote, json))
            }
        },
        Command::Restore {
            remote,
            time,
            in_place,
            yes,
            lock_wait,
        } => runtime()?.block_on(backup::restore(remote, time, in_place, yes, lock_wait)),
        Command::Completions { shell } => {
            out(&completions::script(shell))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Servers { config } => {
            for name in crate::config::servers::names_only(&config)? {
                out(&name)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out: None } => {
            let pages = man::pages()?;
            out(pages[0].1.trim_end())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out: Some(dir) } => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
            let pages = man::pages()?;
            for (name, page) in &pages {
                std::fs::write(dir.join(name), page)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", dir.join(name).display()))?;
            }
            say!("wrote {} man pages into {}", pages.len(), dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Init { path } => {
            let (path, said) = init::write_starter(&path)?;
            for line in said {
                say!("{line}");
            }
            say!(
                "wrote {}; edit it, then run `tandem check -c {}`",
                path.display(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => {
            let (config, count) = load_and_render(&args)?;
            say!(
                "{}: ok, {} servers ({} app, {}{}), {count} files rendered",
                args.config.config.display(),
                config.servers.len(),
                config.app_servers().count(),
                if config.cluster().is_some() {
                    "2 db in a cluster, 1 witness"
                } else {
                    "1 db"
                },
                if config.backup_server().is_some() {
                    ", 1 backup"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Render { args, out } => {
            let loaded = load(&args.config)?;
            let mut templates = templates(&args.config)?;
            let facts = facts(&args);
            let all = render::desired_all(&loaded, &mut templates, &facts)?;
            let files = render::rendered_files(&loaded, &all);
            render::write(&out, &files)?;
            say!(
                "wrote {} files for {} servers to {}",
                files.len(),
                all.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
