//! The command line: arguments, and what each subcommand does with them.
// The CLI is the edge where tandem prints: through `out` (stdout) and `say!` (stderr), which
// turn a closed pipe into a quiet stop instead of the print macros' panic.

pub mod init;
pub mod json;
pub mod style;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config;
use crate::engine::assets::Assets;
use crate::engine::render;
use crate::engine::templates::Templates;
use crate::engine::transport::SshOptions;
use crate::engine::vars::HostFacts;
use crate::engine::{self, Engine};

mod backup;
mod day_two;

#[derive(Parser, Debug)]
#[command(
    name = "tandem",
    version,
    about = "Django on an app server and PostgreSQL on its own server, over SSH, from one YAML file"
)]
pub struct Cli {
    /// Colour the plan, verify's report and errors: auto (on a terminal, unless NO_COLOR is
    /// set), always or never.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    color: crate::cli::style::ColorChoice,
    /// Stream what remote steps print (apt, pip, migrate) as they run, prefixed by the server.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

/// Whether stdout and stderr get colour, decided once from `--color`.
static COLOURS: std::sync::OnceLock<(bool, bool)> = std::sync::OnceLock::new();

fn decide_colours(choice: crate::cli::style::ColorChoice) {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let _ = COLOURS.set((
        choice.enabled(std::io::stdout().is_terminal(), no_color),
        choice.enabled(std::io::stderr().is_terminal(), no_color),
    ));
}

fn colours() -> (bool, bool) {
    COLOURS.get().copied().unwrap_or((false, false))
}

/// An error screen for stderr, coloured when stderr is.
pub fn error_screen(text: &str) -> String {
    if colours().1 {
        crate::cli::style::diagnostic(text)
    } else {
        text.to_string()
    }
}

/// `text` on stdout, through `paint` when stdout gets colour.
fn out_painted(text: &str, paint: fn(&str) -> String) -> anyhow::Result<()> {
    if colours().0 {
        out(&paint(text))
    } else {
        out(text)
    }
}

#[derive(clap::Args, Debug)]
struct ConfigArgs {
    /// The config file.
    #[arg(short, long, default_value = "tandem.yml")]
    config: PathBuf,
    /// Directory whose templates/ and playbooks/ files replace tandem's built-in ones.
    #[arg(long, value_name = "DIR")]
    overrides: Option<PathBuf>,
}

/// The commands that never contact a server.
#[derive(clap::Args, Debug)]
struct OfflineArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// PostgreSQL major version assumed offline (the remote commands read the real one).
    #[arg(long, default_value = "15", value_name = "VERSION",
          value_parser = clap::value_parser!(u16).range(9..100))]
    postgres_version: u16,
    /// The db server's memory in MiB, for PostgreSQL's settings (default: 4096, assumed).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(256..))]
    db_memory_mib: Option<u64>,
    /// The db server's CPUs (default: 2, assumed).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..1025))]
    db_cpus: Option<u32>,
    /// The disk under the db server's data (default: ssd, assumed).
    #[arg(long, value_name = "KIND")]
    db_disk: Option<DiskArg>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum DiskArg {
    Ssd,
    Rotational,
    /// Not visible (a container, some virtual disks): tuned as an SSD, and said so.
    Unknown,
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

/// The commands that plan (plan, verify and the ones that change servers): on every server, or
/// on those `--only` names.
#[derive(clap::Args, Debug)]
struct PlanningArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// Work on these servers only (names from the config, comma-separated); the run says
    /// which it skipped.
    #[arg(long, value_name = "NAME[,NAME]", value_delimiter = ',')]
    only: Vec<String>,
}

/// The commands that change servers: they take every server's lock and ask first.
#[derive(clap::Args, Debug)]
struct ChangeArgs {
    #[command(flatten)]
    remote: PlanningArgs,
    /// Seconds to wait for another tandem run's lock on a server.
    #[arg(long, default_value = "120", value_name = "SECONDS")]
    lock_wait: u64,
    /// Do not ask (required without a terminal, e.g. in CI).
    #[arg(long)]
    yes: bool,
    /// Print the plan, what ran on each server with its timings, and (apply) verify's checks
    /// as one JSON document on stdout. Needs --yes: a JSON run does not ask.
    #[arg(long, requires = "yes")]
    json: bool,
}

impl ChangeArgs {
    fn apply_options(&self) -> crate::engine::apply::ApplyOptions {
        crate::engine::apply::ApplyOptions {
            lock_wait: std::time::Duration::from_secs(self.lock_wait),
            who: crate::engine::apply::who(),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a commented starter tandem.yml (never overwrites); given a directory, DIR/tandem.yml.
    Init {
        #[arg(default_value = "tandem.yml")]
        path: PathBuf,
    },
    /// Validate the config and render everything, offline; exit 0 when all is well, 1 otherwise.
    Check(OfflineArgs),
    /// Write every file tandem would install, per server, plus its SQL and ufw commands.
    Render {
        #[command(flatten)]
        args: OfflineArgs,
        /// Output directory (must be empty or absent).
        #[arg(long)]
        out: PathBuf,
    },
    /// Show what apply would change on each server (probes them over SSH; changes nothing).
    Plan {
        #[command(flatten)]
        remote: PlanningArgs,
        /// Exit 0 when nothing would change, 2 when changes are pending, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Print the plan as JSON on stdout (secrets redacted).
        #[arg(long)]
        json: bool,
    },
    /// Show the plan, ask, then change the servers to match tandem.yml.
    Apply(ChangeArgs),
    /// Prove the deployment works and is closed; exit 0 when every check passes, 1 otherwise.
    Verify {
        #[command(flatten)]
        remote: PlanningArgs,
        /// Print every check with its result and hint as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Ship the Django code as a new release on every app server, without provisioning.
    Deploy(ChangeArgs),
    /// Switch every app server back to its previous release, or to the one named by --to.
    Rollback {
        #[command(flatten)]
        change: ChangeArgs,
        /// A release id from `tandem releases` (still kept on every app server).
        #[arg(long, value_name = "ID")]
        to: Option<String>,
    },
    /// Run manage.py on an app server: `tandem manage -- createsuperuser`. Attached to this
    /// terminal when there is one; exits with manage.py's status.
    Manage {
        #[command(flatten)]
        remote: RemoteArgs,
        /// The app server (default: the first in the config).
        #[arg(long, value_name = "NAME")]
        server: Option<String>,
        /// manage.py's arguments, after `--`.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Show gunicorn and nginx logs (app servers) and PostgreSQL's (db), each line prefixed
    /// with its server.
    Logs {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Only this server.
        #[arg(long, value_name = "NAME")]
        server: Option<String>,
        /// Keep printing new lines, every server merged, until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// Journal lines since then: `1h`, `30m`, `2d` or a time (`2026-11-29 10:00`).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Lines per log before following.
        #[arg(short = 'n', long, default_value = "50")]
        lines: u32,
        /// Which logs (default: all a server has).
        #[arg(value_enum)]
        sources: Vec<crate::app::day_two::LogSource>,
    },
    /// List each app server's releases: id, code hash, who shipped it; the current one marked.
    Releases {
        #[command(flatten)]
        remote: RemoteArgs,
        /// As JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Onboard and list tenants of a multi-tenant project (django-tenants, django-tenant-schemas).
    Tenant {
        #[command(subcommand)]
        action: TenantCommand,
    },
    /// Show the last lines of each server's audit log: what tandem ran there, when, for whom.
    Audit {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Only this server.
        #[arg(long, value_name = "NAME")]
        server: Option<String>,
        /// Lines per server.
        #[arg(short = 'n', long, default_value = "50")]
        lines: u32,
    },
    /// Take a backup of the database now, on the backup server (full or incremental, as its
    /// schedule would); `tandem backup list` shows the backups in the repository.
    #[command(args_conflicts_with_subcommands = true)]
    Backup {
        #[command(subcommand)]
        action: Option<BackupCommand>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Restore the database from its backups: by default into a scratch PostgreSQL on the db
    /// server (port 5439, local socket) for inspection; with --in-place --yes, in place of the
    /// running database, gunicorn stopped meanwhile. A failed restore leaves the running
    /// database as it was.
    Restore {
        #[command(flatten)]
        remote: RemoteArgs,
        /// The moment to go back to, with its offset: `2026-11-29 23:38:56+00` (default: the
        /// latest archived).
        #[arg(long, value_name = "TIME")]
        time: Option<String>,
        /// Replace the running database (needs --yes).
        #[arg(long)]
        in_place: bool,
        /// Confirm an in-place restore.
        #[arg(long)]
        yes: bool,
        /// Seconds to wait for another tandem run's lock on a server.
        #[arg(long, default_value = "120", value_name = "SECONDS")]
        lock_wait: u64,
    },
    /// Print a shell completion script, e.g. `tandem completions bash >/etc/bash_completion.d/tandem`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `tandem man >/usr/local/share/man/man1/tandem.1`.
    Man,
}

#[derive(Subcommand, Debug)]
enum BackupCommand {
    /// The backups in the repository, oldest first: type, when, age, sizes; and the WAL
    /// archive's range.
    List {
        #[command(flatten)]
        remote: RemoteArgs,
        /// As JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum TenantCommand {
    /// Create a tenant and its domain the way the project's models require, and migrate its
    /// schema. The domain must be one the config serves (under a `*.` wildcard of `domains`).
    Add {
        #[command(flatten)]
        remote: RemoteArgs,
        /// The tenant's name (its model's `name` field, when it has one).
        name: String,
        /// Its domain, e.g. `blue.example.com` under `*.example.com`.
        domain: String,
        /// The PostgreSQL schema (default: made from the name, `Blue Shop` -> `blue_shop`).
        #[arg(long)]
        schema: Option<String>,
    },
    /// List the tenants: schema, name, domains.
    List {
        #[command(flatten)]
        remote: RemoteArgs,
        /// As JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Whether stderr's reader went away (`tandem check 2>&1 | head -1`): remembered by `say`,
/// never a panic; tandem then stops before its next change and exits 141, as with stdout.
static STDERR_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn stderr_closed() -> bool {
    STDERR_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Writes to stderr. A closed stderr is remembered (`stderr_closed`), not a panic as
/// `eprintln!`'s would be; nothing more is written to it.
pub fn to_stderr(text: std::fmt::Arguments) {
    use std::io::Write;
    if stderr_closed() {
        return;
    }
    let mut stderr = std::io::stderr().lock();
    if let Err(e) = stderr.write_fmt(text).and_then(|()| stderr.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        STDERR_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

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

pub(crate) use say;

/// stdout was closed by its reader (`tandem plan | head -1`): tandem ends quietly, with the
/// exit status of a process that SIGPIPE ended (141), before changing anything more.
#[derive(Debug)]
pub struct ClosedStdout;

impl std::fmt::Display for ClosedStdout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for ClosedStdout {}

/// The exit status for `ClosedStdout`.
pub const CLOSED_STDOUT_EXIT: u8 = 141;

/// Writes `text` and a newline to stdout.
fn out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ClosedStdout.into()),
        result => Ok(result?),
    }
}

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
            runtime()?.block_on(releases(change, ReleaseAction::Rollback { to }))
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
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "tandem", &mut script);
            out(String::from_utf8_lossy(&script).trim_end())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            out(String::from_utf8_lossy(&page).trim_end())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Init { path } => {
            let path = init::write_starter(&path)?;
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
                "{}: ok, {} servers ({} app, 1 db{}), {count} files rendered",
                args.config.config.display(),
                config.servers.len(),
                config.app_servers().count(),
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

fn load(args: &ConfigArgs) -> anyhow::Result<config::Config> {
    let loaded = config::load(&args.config)?;
    for warning in &loaded.warnings {
        say!("{}", error_screen(&warning.to_string()));
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

fn facts(args: &OfflineArgs) -> HostFacts {
    HostFacts {
        postgres_version: args.postgres_version.to_string(),
        // Offline, the db server's machine is not known: PostgreSQL's settings are shown for
        // the one the flags describe (`Machine::assumed()`'s by default) and say so.
        machine: match (args.db_memory_mib, args.db_cpus, args.db_disk) {
            (None, None, None) => crate::postgres::tuning::Machine::assumed(),
            (memory, cpus, disk) => {
                let assumed = crate::postgres::tuning::Machine::assumed();
                crate::postgres::tuning::Machine {
                    memory_mib: memory.unwrap_or(assumed.memory_mib),
                    cpus: cpus.unwrap_or(assumed.cpus),
                    rotational: match disk {
                        Some(DiskArg::Rotational) => Some(true),
                        Some(DiskArg::Unknown) => None,
                        Some(DiskArg::Ssd) | None => Some(false),
                    },
                    assumed: false,
                }
            }
        },
    }
}

fn load_and_render(args: &OfflineArgs) -> anyhow::Result<(config::Config, usize)> {
    let config = load(&args.config)?;
    let mut templates = templates(&args.config)?;
    let all = render::desired_all(&config, &mut templates, &facts(args))?;
    let count = render::rendered_files(&config, &all).len();
    Ok((config, count))
}

/// Progress for people: one line per event on stderr, prefixed with the server; with
/// `verbose`, remote output too (`server | line`).
struct StderrReport {
    verbose: bool,
}

/// `-v`, decided once.
static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn report() -> std::sync::Arc<StderrReport> {
    std::sync::Arc::new(StderrReport {
        verbose: VERBOSE.load(std::sync::atomic::Ordering::Relaxed),
    })
}

impl crate::model::report::Report for StderrReport {
    fn progress(&self, server: &str, line: &str) {
        say!("{server}: {line}");
    }

    fn remote_output(&self, server: &str, line: &str) {
        if self.verbose {
            say!("{server} | {line}");
        }
    }

    fn debug(&self, line: &str) {
        if std::env::var_os("TANDEM_DEBUG").is_some() {
            say!("debug: {line}");
        }
    }

    fn closed(&self) -> bool {
        stderr_closed()
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Whether a command takes every server's lock before it probes: the ones that change servers
/// do, so their plan is made from what the servers are once no other run can change them.
enum Locking<'a> {
    ReadOnly,
    Exclusive(&'a crate::engine::apply::ApplyOptions),
}

async fn connect_and_plan(
    planning: &PlanningArgs,
    locking: Locking<'_>,
) -> anyhow::Result<(Engine, engine::Planned)> {
    let config = load(&planning.remote.config)?;
    let (engine, planned, ()) = plan_alongside(config, planning, locking, |_| async {}).await?;
    Ok((engine, planned))
}

/// `connect_and_plan` for a config already loaded, running the future `alongside` makes from
/// the connected engine while the servers are probed (it owns what it uses: clones of the
/// sessions).
async fn plan_alongside<T, F: std::future::Future<Output = T>>(
    config: config::Config,
    planning: &PlanningArgs,
    locking: Locking<'_>,
    alongside: impl FnOnce(&Engine) -> F,
) -> anyhow::Result<(Engine, engine::Planned, T)> {
    let (remote, only) = (&planning.remote, &planning.only);
    let mut templates = templates(&remote.config)?;
    let secrets = engine::secrets(&config)?;
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
        say!("--only: skipping {}", skipped.join(", "));
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

async fn plan(
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

/// Asks on the terminal whether to go ahead (`--yes` answers for the user). Without a
/// terminal and without `--yes`, refuses: CI must say so explicitly.
fn confirm(question: &str, yes: bool) -> anyhow::Result<bool> {
    use std::io::IsTerminal;
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("no terminal to ask on: pass --yes to go ahead without asking");
    }
    say_part!("{question} Type yes: ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// What to do after showing a plan.
enum Go {
    Ahead,
    /// Nothing to do, or the user said no: end with this status.
    Stop(ExitCode),
}

/// Shows `plan` on stdout (unless the run ends in a JSON document) and asks about it.
fn show_and_confirm(
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
struct ChangeRun<'a> {
    command: &'static str,
    /// The plan shown before anything ran.
    plan: &'a crate::model::plan::Plan,
    /// Every server's changes ran without error (and, for apply, verify passed).
    ok: bool,
    seconds: f32,
    hosts: &'a [crate::engine::apply::HostReport],
    /// apply only: the proof that ends it (null when nothing ran or a change failed).
    verify: Option<&'a crate::verify::Verification>,
}

/// Ends a change command that runs nothing (no changes, the user said no, or asking failed):
/// closes the connections and, with `--json`, still prints the document.
async fn end_before_running(
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
    fn exit_code(&self) -> ExitCode {
        if self.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

async fn apply(change: ChangeArgs) -> anyhow::Result<ExitCode> {
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
async fn apply_phases(
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
fn replanner<'a>(
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

enum ReleaseAction {
    Deploy,
    /// To the release before the current one, or to `to`.
    Rollback {
        to: Option<String>,
    },
}

/// `deploy` keeps only the plan's release changes; `rollback` makes one per app server that
/// switches back to the release before the current one. Both run under the hosts' locks.
async fn releases(change: ChangeArgs, action: ReleaseAction) -> anyhow::Result<ExitCode> {
    let options = change.apply_options();
    let (engine, planned) = connect_and_plan(&change.remote, Locking::Exclusive(&options)).await?;
    let mut plan = planned.plan;
    let mut problems = Vec::new();
    for (host, server) in plan.hosts.iter_mut().zip(&engine.servers) {
        let provisioning = host.changes.iter().filter(|c| !c.role.is_release()).count();
        host.handlers.clear();
        match &action {
            ReleaseAction::Deploy => {
                if provisioning > 0 && server.role == crate::config::Role::App {
                    say!(
                        "{}: {provisioning} provisioning change(s) pending; `tandem apply` makes them",
                        host.server
                    );
                }
                host.changes.retain(|c| c.role.is_release());
            }
            ReleaseAction::Rollback { to } => {
                host.changes.clear();
                let Some(state) = &host.release else { continue };
                let target = match to {
                    Some(id) if state.releases.contains(id) => id.as_str(),
                    Some(id) => {
                        problems.push(format!(
                            "{}: no release {id} (kept: {}); `tandem releases` lists them",
                            host.server,
                            state.releases.join(", ")
                        ));
                        continue;
                    }
                    None => match state.previous() {
                        Some(previous) => previous,
                        None => {
                            problems.push(format!(
                                "{}: no release before the current one to roll back to",
                                host.server
                            ));
                            continue;
                        }
                    },
                };
                if state.current.as_deref() == Some(target) {
                    continue;
                }
                let previous = target;
                let vars = crate::engine::vars::Vars::for_paths(&engine.config, server);
                host.changes.push(crate::model::plan::Change::release(
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
    let question = match action {
        ReleaseAction::Deploy => "Ship this release?",
        ReleaseAction::Rollback { .. } => "Roll back?",
    };
    let command = match action {
        ReleaseAction::Deploy => "deploy",
        ReleaseAction::Rollback { .. } => "rollback",
    };
    let go = show_and_confirm(&plan, question, &change);
    if !matches!(go, Ok(Go::Ahead)) {
        return end_before_running(engine, go, command, &plan, change.json).await;
    }
    let started = std::time::Instant::now();
    // A release installs no packages: apply never needs to plan again, but takes the means.
    let secrets = engine::secrets(&engine.config)?;
    let reports = {
        let replan = replanner(&engine, &secrets, &change.remote.remote.config);
        crate::engine::apply::apply(&engine, &plan, &options, &replan).await
    };
    engine.close().await;
    let (summary, ok) = crate::engine::apply::summary(&reports);
    say_part!("{summary}");
    let run = ChangeRun {
        command,
        plan: &plan,
        ok,
        seconds: started.elapsed().as_secs_f32(),
        hosts: &reports,
        verify: None,
    };
    if change.json {
        out(&crate::cli::json::document(&run)?)?;
    }
    Ok(run.exit_code())
}

/// Connects, probes and runs every check.
async fn verification(remote: &PlanningArgs) -> anyhow::Result<crate::verify::Verification> {
    let config = load(&remote.remote.config)?;
    let planning = plan_alongside(config, remote, Locking::ReadOnly, verify_alongside);
    let (engine, planned, (answers, here)) = planning.await?;
    let report = crate::verify::verify(&engine, &planned, here, answers);
    engine.close().await;
    Ok(report)
}

/// `verification` over connections already made (after apply: no second handshake).
async fn verification_connected(
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
fn verify_alongside(
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

async fn verify(remote: PlanningArgs, json: bool) -> anyhow::Result<ExitCode> {
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
