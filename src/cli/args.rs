//! The command line's arguments (clap): the commands and the flag groups they share.

use super::*;

/// `tandem --version`: what `cargo -vV` says of cargo (`-V` gives the first line).
const LONG_VERSION: &str = concat!(
    env!("TANDEM_VERSION"),
    "\nrelease: ",
    env!("CARGO_PKG_VERSION"),
    "\ncommit-hash: ",
    env!("TANDEM_COMMIT"),
    "\ncommit-date: ",
    env!("TANDEM_COMMIT_DATE"),
    "\nbuild-date: ",
    env!("TANDEM_BUILD_DATE"),
    "\ntarget: ",
    env!("TANDEM_TARGET"),
);

impl Cli {
    /// The command prints a JSON document on stdout (`--json`): a failure is one too.
    pub fn wants_json(&self) -> bool {
        match &self.command {
            Command::Plan { json, .. }
            | Command::Verify { json, .. }
            | Command::Releases { json, .. }
            | Command::Backup {
                action: Some(BackupCommand::List { json, .. }),
                ..
            }
            | Command::Tenant {
                action: TenantCommand::List { json, .. },
            }
            | Command::Lock {
                action: LockCommand::Status { json, .. },
            }
            | Command::Status { json, .. } => *json,
            Command::Apply(change) | Command::Deploy(change) => change.json,
            Command::Rollback { change, .. } => change.json,
            _ => false,
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "tandem",
    version = env!("TANDEM_VERSION"),
    long_version = LONG_VERSION,
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
    pub(crate) color: crate::cli::style::ColorChoice,
    /// Stream what remote steps print (apt, pip, migrate) as they run, prefixed by the server.
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(clap::Args, Debug)]
pub(crate) struct ConfigArgs {
    /// The config file.
    #[arg(short, long, default_value = "tandem.yml")]
    pub(crate) config: PathBuf,
    /// Directory whose templates/ and playbooks/ files replace tandem's built-in ones.
    #[arg(long, value_name = "DIR")]
    pub(crate) overrides: Option<PathBuf>,
}

/// The config file alone, for the commands that render no template.
#[derive(clap::Args, Debug)]
pub(crate) struct ConfigFileArgs {
    /// The config file.
    #[arg(short, long, default_value = "tandem.yml")]
    pub(crate) config: PathBuf,
}

impl AsRef<std::path::Path> for ConfigArgs {
    fn as_ref(&self) -> &std::path::Path {
        &self.config
    }
}

impl AsRef<std::path::Path> for ConfigFileArgs {
    fn as_ref(&self) -> &std::path::Path {
        &self.config
    }
}

/// The commands that never contact a server.
#[derive(clap::Args, Debug)]
pub(crate) struct OfflineArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// PostgreSQL major version assumed offline (the remote commands read the real one).
    #[arg(long, default_value = "15", value_name = "VERSION",
          value_parser = clap::value_parser!(u16).range(9..100))]
    pub(crate) postgres_version: u16,
    /// The db server's memory in MiB, for PostgreSQL's settings (default: 4096, assumed).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(256..))]
    pub(crate) db_memory_mib: Option<u64>,
    /// The db server's CPUs (default: 2, assumed).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..1025))]
    pub(crate) db_cpus: Option<u32>,
    /// The disk under the db server's data (default: ssd, assumed).
    #[arg(long, value_name = "KIND")]
    pub(crate) db_disk: Option<DiskArg>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum DiskArg {
    Ssd,
    Rotational,
    /// Not visible (a container, some virtual disks): tuned as an SSD, and said so.
    Unknown,
}

/// How to reach the servers (every command that connects).
#[derive(clap::Args, Debug)]
pub(crate) struct SshArgs {
    /// ssh_config file for every connection (`ssh -F FILE`); default: ~/.ssh/config.
    #[arg(long, value_name = "FILE", env = "TANDEM_SSH_CONFIG")]
    pub(crate) ssh_config: Option<PathBuf>,
    /// Accept and remember host keys never seen before. A changed key is always refused.
    #[arg(long)]
    pub(crate) accept_new_host_keys: bool,
    /// Log in as this user where the configured one cannot log in yet (a fresh server's root).
    #[arg(long, value_name = "USER")]
    pub(crate) bootstrap_user: Option<String>,
    /// Keep each server's connection open for SECONDS after the run and reuse it in the next
    /// run within that time (CI's plan, apply, verify): the connection outlives tandem.
    #[arg(long, value_name = "SECONDS", env = "TANDEM_SSH_PERSIST",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) ssh_persist: Option<u64>,
}

impl SshArgs {
    pub(crate) fn ssh_options(&self) -> SshOptions {
        SshOptions {
            config_file: self.ssh_config.clone(),
            accept_new_host_keys: self.accept_new_host_keys,
            bootstrap_user: self.bootstrap_user.clone(),
            persist: self.ssh_persist.map(std::time::Duration::from_secs),
        }
    }
}

/// The commands that connect and render templates (plan, apply, verify, deploy, rollback).
#[derive(clap::Args, Debug)]
pub(crate) struct RemoteArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
}

impl RemoteArgs {
    pub(crate) fn ssh_options(&self) -> SshOptions {
        self.ssh.ssh_options()
    }
}

/// The day-two commands: they connect, but render nothing (no `--overrides`).
#[derive(clap::Args, Debug)]
pub(crate) struct ConnectArgs {
    #[command(flatten)]
    pub(crate) config: ConfigFileArgs,
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
}

impl ConnectArgs {
    pub(crate) fn ssh_options(&self) -> SshOptions {
        self.ssh.ssh_options()
    }
}

/// `--server NAME[,NAME]`, for the commands that plan or change servers.
#[derive(clap::Args, Debug)]
pub(crate) struct ServerChoice {
    /// Work on these servers only (names from the config, comma-separated); the run says
    /// which it skipped.
    #[arg(
        long = "server",
        alias = "only",
        value_name = "NAME[,NAME]",
        value_delimiter = ','
    )]
    pub(crate) names: Vec<String>,
}

/// The commands that plan (plan, verify and the ones that change servers): on every server, or
/// on those `--server` names.
#[derive(clap::Args, Debug)]
pub(crate) struct PlanningArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    #[command(flatten)]
    pub(crate) only: ServerChoice,
}

/// The commands that change servers: they take every server's lock and ask first.
#[derive(clap::Args, Debug)]
pub(crate) struct ChangeArgs {
    #[command(flatten)]
    pub(crate) remote: PlanningArgs,
    /// Seconds to wait for another tandem run's lock on a server.
    #[arg(long, default_value = "120", value_name = "SECONDS")]
    pub(crate) lock_wait: u64,
    /// Do not ask (required without a terminal, e.g. in CI).
    #[arg(long)]
    pub(crate) yes: bool,
    /// Print the plan, what ran on each server with its timings, and (apply) verify's checks
    /// as one JSON document on stdout. Needs --yes: a JSON run does not ask.
    #[arg(long, requires = "yes")]
    pub(crate) json: bool,
}

/// `rollback`'s: those of a change, without `--overrides` (a rollback renders no template).
#[derive(clap::Args, Debug)]
pub(crate) struct RollbackArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) only: ServerChoice,
    /// Seconds to wait for another tandem run's lock on a server.
    #[arg(long, default_value = "120", value_name = "SECONDS")]
    pub(crate) lock_wait: u64,
    /// Do not ask (required without a terminal, e.g. in CI).
    #[arg(long)]
    pub(crate) yes: bool,
    /// Print the plan and what ran on each server with its timings as one JSON document on
    /// stdout. Needs --yes: a JSON run does not ask.
    #[arg(long, requires = "yes")]
    pub(crate) json: bool,
}

impl From<RollbackArgs> for ChangeArgs {
    fn from(r: RollbackArgs) -> ChangeArgs {
        ChangeArgs {
            remote: PlanningArgs {
                remote: RemoteArgs {
                    config: ConfigArgs {
                        config: r.connect.config.config,
                        overrides: None,
                    },
                    ssh: r.connect.ssh,
                },
                only: r.only,
            },
            lock_wait: r.lock_wait,
            yes: r.yes,
            json: r.json,
        }
    }
}

impl ChangeArgs {
    pub(crate) fn apply_options(&self) -> crate::engine::apply::ApplyOptions {
        crate::engine::apply::ApplyOptions {
            lock_wait: std::time::Duration::from_secs(self.lock_wait),
            who: crate::engine::apply::who(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
        change: RollbackArgs,
        /// A release id from `tandem releases` (still kept on every app server).
        #[arg(long, value_name = "ID")]
        to: Option<String>,
    },
    /// Run manage.py on an app server: `tandem manage -- createsuperuser`. Attached to this
    /// terminal when there is one; exits with manage.py's status.
    Manage {
        #[command(flatten)]
        remote: ConnectArgs,
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
        remote: ConnectArgs,
        /// Only these servers (comma-separated).
        #[arg(long, value_name = "NAME[,NAME]", value_delimiter = ',')]
        server: Vec<String>,
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
        remote: ConnectArgs,
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
        remote: ConnectArgs,
        /// Only these servers (comma-separated).
        #[arg(long, value_name = "NAME[,NAME]", value_delimiter = ',')]
        server: Vec<String>,
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
        remote: ConnectArgs,
    },
    /// One screen of the deployment: each server reachable, its lock, the live release and
    /// who shipped it, gunicorn and the processes, the certificate's expiry, PostgreSQL, the
    /// newest backup. Reads no secret; exit 1 when something is down or unreachable.
    Status {
        #[command(flatten)]
        remote: ConnectArgs,
        /// As JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Restart gunicorn (default), the background processes or nginx on the app servers,
    /// without a release, under each server's lock.
    Restart {
        #[command(flatten)]
        remote: ConnectArgs,
        /// Only these app servers (comma-separated).
        #[arg(long, value_name = "NAME[,NAME]", value_delimiter = ',')]
        server: Vec<String>,
        /// Seconds to wait for another tandem run's lock on a server.
        #[arg(long, default_value = "120", value_name = "SECONDS")]
        lock_wait: u64,
        /// What to restart (default: gunicorn).
        #[arg(value_enum)]
        what: Vec<crate::app::day_two::Restartable>,
    },
    /// The database cluster (two db servers and a witness): `tandem db status`.
    Db {
        #[command(subcommand)]
        action: DbCommand,
    },
    /// Who holds each server's apply lock and since when, and whether work of a cut-off run
    /// still runs there; read without taking the lock.
    Lock {
        #[command(subcommand)]
        action: LockCommand,
    },
    /// Restore the database from its backups: by default into a scratch PostgreSQL on the db
    /// server (port 5439, local socket) for inspection; with --in-place --yes, in place of the
    /// running database, gunicorn stopped meanwhile. A failed restore leaves the running
    /// database as it was.
    Restore {
        #[command(flatten)]
        remote: ConnectArgs,
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
    /// The config's server names, one per line: what the shell completions offer after
    /// `--server`.
    #[command(name = "__servers", hide = true)]
    Servers {
        /// The config file.
        #[arg(short, long, default_value = "tandem.yml")]
        config: PathBuf,
    },
    /// Print the man page (roff), e.g. `tandem man >/usr/local/share/man/man1/tandem.1`; with
    /// --out, write a page per command there (tandem-plan.1, ...).
    Man {
        /// Write every page (tandem.1 and one per command) into this directory.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum BackupCommand {
    /// The backups in the repository, oldest first: type, when, age, sizes; and the WAL
    /// archive's range.
    List {
        #[command(flatten)]
        remote: ConnectArgs,
        /// As JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum DbCommand {
    /// Each db server's part in the cluster: primary or standby, state, timeline, lag in bytes
    /// and seconds, the synchronous standby, etcd's health. Reads no secret; exit 1 unless
    /// there is one primary, every standby streams and every etcd member is healthy.
    Status {
        #[command(flatten)]
        remote: ConnectArgs,
        /// As JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Move the primary's role to the standby, for maintenance of the primary's server:
    /// planned, no acknowledged write lost; refused unless the standby streams and is less
    /// than 1 MiB of WAL behind (or, with database.synchronous, is the synchronous standby).
    Switchover {
        #[command(flatten)]
        remote: ConnectArgs,
        /// The db server to make the primary (default: the standby).
        #[arg(long, value_name = "NAME")]
        to: Option<String>,
        /// Seconds to wait for another tandem run's lock on a server.
        #[arg(long, default_value = "120", value_name = "SECONDS")]
        lock_wait: u64,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum LockCommand {
    /// Each server's apply lock: free, or held by which run since when.
    Status {
        #[command(flatten)]
        remote: ConnectArgs,
        /// As JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum TenantCommand {
    /// Create a tenant and its domain the way the project's models require, and migrate its
    /// schema. The domain must be one the config serves (under a `*.` wildcard of `domains`).
    Add {
        #[command(flatten)]
        remote: ConnectArgs,
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
        remote: ConnectArgs,
        /// As JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}
