//! `Playbook`: the ordered steps for one server role (`base`, `db`, `app`) plus handlers, as
//! data. Steps are a closed set of kinds implemented in Rust; unknown kinds, fields and handler
//! names are load errors.

use std::path::Path;

use serde::Deserialize;

use crate::config::diagnostic::{self, Diagnostic, Diagnostics};
use crate::config::yaml::{self, Position};
use crate::engine::assets::Assets;

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub handlers: Vec<Handler>,
}

/// One step. String fields may use template variables (`{{ project }}`); they are rendered with
/// the same variables as the templates.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// apt packages, installed in one transaction.
    Packages { name: String, packages: Vec<String> },
    /// The sudo deploy user with its authorized keys (from `ssh:` in tandem.yml).
    DeployUser { name: String },
    /// An unprivileged system user (no login shell) owning the app.
    SystemUser {
        name: String,
        user: String,
        home: String,
    },
    /// The host name, set to the server's FQDN.
    Hostname { name: String },
    /// The live release's own static files, collected into it when an older tandem left them
    /// in one shared directory (`resource/live_release_static.rs`).
    LiveReleaseStatic { name: String },
    /// A file rendered from a template.
    File {
        name: String,
        template: String,
        dest: String,
        #[serde(default = "default_file_mode")]
        mode: String,
        #[serde(default = "root")]
        owner: String,
        #[serde(default = "root")]
        group: String,
        /// Holds a secret: redacted in plans and renders, never world-readable.
        #[serde(default)]
        secret: bool,
        /// Command that must accept the new file before it goes live; `{path}` is the file.
        #[serde(default)]
        validate: Option<String>,
        #[serde(default)]
        notify: Vec<String>,
    },
    Directory {
        name: String,
        path: String,
        #[serde(default = "default_dir_mode")]
        mode: String,
        #[serde(default = "root")]
        owner: String,
        #[serde(default = "root")]
        group: String,
    },
    /// A symbolic link, e.g. sites-enabled -> sites-available.
    Symlink {
        name: String,
        target: String,
        link: String,
        #[serde(default)]
        notify: Vec<String>,
    },
    /// A path that must not exist (e.g. the distribution's default nginx site).
    Absent {
        name: String,
        path: String,
        #[serde(default)]
        notify: Vec<String>,
    },
    /// ufw's default policies: deny incoming, allow outgoing.
    UfwDefaults { name: String },
    UfwAllow {
        name: String,
        /// A port number, or `ssh` for the configured SSH port.
        port: String,
        #[serde(default = "tcp")]
        proto: String,
        #[serde(default)]
        from: Source,
        /// What the port is for, in the rule's comment (`tandem: postgresql from app1`).
        #[serde(default)]
        label: Option<String>,
    },
    /// Enables ufw; only after the SSH rule is in (checked at load time).
    UfwEnable { name: String },
    /// PostgreSQL conf.d drop-in, in the cluster's config directory found on the host.
    PostgresConf {
        name: String,
        template: String,
        file: String,
        /// Which of tandem's typed settings the template writes: the op carries them, so
        /// nothing reads the rendered text back.
        settings: DropinSettings,
        #[serde(default)]
        notify: Vec<String>,
    },
    /// The restart-only settings of the conf.d drop-ins above, for the cluster the PostgreSQL
    /// package creates: its first start has them (src/postgres.rs, `FIRST_START_FILE`).
    PostgresFirstStart { name: String },
    /// The tandem-owned block in pg_hba.conf.
    PgHbaBlock {
        name: String,
        template: String,
        #[serde(default)]
        notify: Vec<String>,
    },
    /// The app's LOGIN role with Django's recommended settings.
    PostgresRole { name: String },
    /// The app's database, owned by its role.
    PostgresDatabase { name: String },
    /// Extensions created as the postgres superuser.
    PostgresExtensions { name: String },
    /// HTTPS as `tls:` asks: the certificate files, or the ACME client with its renewal
    /// timer on the issuer (see src/tls.rs).
    Tls {
        name: String,
        #[serde(default)]
        notify: Vec<String>,
    },
    /// Backups as `backup:` asks: pgBackRest on the db server and the repository, its timer
    /// and the stanza on the backup server (see src/backup.rs).
    Backup { name: String },
    /// The background processes of `processes:` that run on this app server (src/processes.rs).
    Processes {
        name: String,
        #[serde(default)]
        notify: Vec<String>,
    },
    /// etcd on the db servers and the witness, when there are two db servers (src/cluster/).
    Consensus { name: String },
    /// Patroni on the db servers, when there are two (src/cluster/).
    Cluster {
        name: String,
        #[serde(default)]
        notify: Vec<String>,
    },
    /// Redis, on the server `broker:` names (src/broker.rs).
    Broker {
        name: String,
        #[serde(default)]
        notify: Vec<String>,
    },
    Service {
        name: String,
        service: String,
        #[serde(default = "yes")]
        enabled: bool,
        #[serde(default = "yes")]
        running: bool,
    },
}

/// Who may connect to an allowed port.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    #[default]
    Anywhere,
    /// Each app server's internal IP, one rule each.
    AppServers,
    /// The app servers and the machines in `database.allow`, one rule each: who may reach
    /// the database.
    DatabaseClients,
}

#[derive(Clone, Copy, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HandlerAction {
    Reload,
    Restart,
    /// gunicorn's units take turns on the live release (scripts/release/switch.sh): one
    /// Django start, no request held. Only for the app's gunicorn.
    Switch,
}

/// Run once at the end of a role when a step that notifies it changed something.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Handler {
    pub name: String,
    pub service: String,
    pub action: HandlerAction,
    /// Command that must pass before the reload (e.g. `nginx -t`).
    #[serde(default)]
    pub check: Option<String>,
}

fn default_file_mode() -> String {
    "0644".into()
}
fn default_dir_mode() -> String {
    "0755".into()
}
fn root() -> String {
    "root".into()
}
fn tcp() -> String {
    "tcp".into()
}
fn yes() -> bool {
    true
}

impl Step {
    pub fn name(&self) -> &str {
        match self {
            Step::Packages { name, .. }
            | Step::DeployUser { name }
            | Step::SystemUser { name, .. }
            | Step::Hostname { name }
            | Step::LiveReleaseStatic { name }
            | Step::File { name, .. }
            | Step::Directory { name, .. }
            | Step::Symlink { name, .. }
            | Step::Absent { name, .. }
            | Step::UfwDefaults { name }
            | Step::UfwAllow { name, .. }
            | Step::UfwEnable { name }
            | Step::PostgresConf { name, .. }
            | Step::PostgresFirstStart { name }
            | Step::PgHbaBlock { name, .. }
            | Step::PostgresRole { name }
            | Step::PostgresDatabase { name }
            | Step::PostgresExtensions { name }
            | Step::Tls { name, .. }
            | Step::Backup { name }
            | Step::Processes { name, .. }
            | Step::Broker { name, .. }
            | Step::Cluster { name, .. }
            | Step::Consensus { name }
            | Step::Service { name, .. } => name,
        }
    }

    pub fn notify(&self) -> &[String] {
        match self {
            Step::File { notify, .. }
            | Step::Symlink { notify, .. }
            | Step::Absent { notify, .. }
            | Step::PostgresConf { notify, .. }
            | Step::PgHbaBlock { notify, .. }
            | Step::Tls { notify, .. }
            | Step::Processes { notify, .. }
            | Step::Broker { notify, .. }
            | Step::Cluster { notify, .. } => notify,
            _ => &[],
        }
    }
}

/// The settings a PostgreSQL drop-in writes, by what they are for.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropinSettings {
    /// `listen_addresses` (localhost and the internal IP) and SCRAM passwords.
    Listen,
    /// Derived from the machine and the app, or `database.settings`.
    Tuning,
    /// WAL archiving to the backup repository, when there is one.
    Archiving,
}

/// What a change belongs to: one of the playbooks (`base`, `db`, `app`), or the Django
/// release. Apply runs a host's changes phase by phase, each phase's handlers after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Base,
    Db,
    App,
    /// After every app server is provisioned: the ACME issuer obtains the certificate and
    /// hands it to the others, which are ready to take it by then.
    Certificate,
    /// The backup server's playbook.
    Backup,
    /// The database cluster's etcd, on the db servers and the witness: all at once, before
    /// the db servers' own playbooks.
    Consensus,
    /// After the db server is provisioned (archiving on, its key in place): the backup
    /// server creates the stanza and takes the first backup.
    Stanza,
    /// A new release's code and virtualenv: needs no database, so it is built while the db
    /// server is provisioned.
    Build,
    Release,
}

impl Phase {
    /// The Django release's phases (what `deploy` runs).
    pub fn is_release(self) -> bool {
        matches!(self, Phase::Build | Phase::Release)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Base => "base",
            Phase::Db => "db",
            Phase::App => "app",
            Phase::Certificate => "certificate",
            Phase::Backup => "backup",
            Phase::Consensus => "consensus",
            Phase::Stanza => "stanza",
            Phase::Build => "build",
            Phase::Release => "release",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Loads the playbook of `role` (`base.yml`, `db.yml`, `app.yml`) from the override directory
/// or the binary.
pub fn load(assets: &Assets, role: Phase) -> anyhow::Result<Playbook> {
    let name = format!("{role}.yml");
    let (origin, text) = assets.playbook(&name)?;
    parse(Path::new(&origin), &text).map_err(anyhow::Error::new)
}

/// Parses a playbook and checks what serde cannot: handler names, the ufw order, modes.
pub fn parse(origin: &Path, text: &str) -> Result<Playbook, Diagnostics> {
    let source = diagnostic::Source::plain(text);
    let playbook: Playbook = yaml::parse(text).map_err(|err| {
        let message = match err.message.rfind(" at line ") {
            Some(i) => err.message[..i].to_string(),
            None => err.message.clone(),
        };
        Diagnostics(vec![
            Diagnostic::error(origin, &source, err.position, "", message)
                .fix("see playbooks/ in tandem's source for the step kinds and their fields"),
        ])
    })?;
    let mut found = Vec::new();
    let nowhere = Position::default();
    let mut ssh_allowed = false;
    for (i, step) in playbook.steps.iter().enumerate() {
        let field = format!("steps[{i}] ({})", step.name());
        for handler in step.notify() {
            if !playbook.handlers.iter().any(|h| &h.name == handler) {
                let known: Vec<&str> = playbook.handlers.iter().map(|h| h.name.as_str()).collect();
                found.push(
                    Diagnostic::error(
                        origin,
                        &source,
                        nowhere,
                        &field,
                        format!("notifies unknown handler `{handler}`"),
                    )
                    .fix(format!("use one of: {}", known.join(", "))),
                );
            }
        }
        match step {
            Step::UfwAllow { port, proto, .. } => {
                ssh_allowed |= port == "ssh";
                if port != "ssh" && port.parse::<u16>().map_or(true, |p| p == 0) {
                    found.push(
                        Diagnostic::error(origin, &source, nowhere, &field, format!("bad port `{port}`"))
                            .fix("write a port number or `ssh`"),
                    );
                }
                if proto != "tcp" && proto != "udp" {
                    found.push(
                        Diagnostic::error(origin, &source, nowhere, &field, format!("bad protocol `{proto}`"))
                            .fix("write tcp or udp"),
                    );
                }
            }
            Step::UfwEnable { .. } if !ssh_allowed => found.push(
                Diagnostic::error(origin, &source, nowhere, &field, "ufw is enabled before SSH is allowed".into())
                    .fix("put a `ufw_allow` step with `port: ssh` before `ufw_enable`: this would lock you out"),
            ),
            Step::File { mode, .. } | Step::Directory { mode, .. } if !is_mode(mode) => found.push(
                Diagnostic::error(origin, &source, nowhere, &field, format!("bad mode `{mode}`"))
                    .fix("write an octal mode in quotes, e.g. \"0644\""),
            ),
            _ => {}
        }
    }
    if found.is_empty() {
        Ok(playbook)
    } else {
        Err(Diagnostics(found))
    }
}

fn is_mode(mode: &str) -> bool {
    crate::model::mode::Mode::parse(mode).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Playbook, String> {
        parse(Path::new("test.yml"), text).map_err(|d| d.to_string())
    }

    #[test]
    fn builtin_playbooks_load() {
        let assets = Assets::builtin();
        for role in [Phase::Base, Phase::Db, Phase::App, Phase::Backup] {
            let playbook = load(&assets, role).unwrap();
            assert!(!playbook.steps.is_empty(), "{role} has no steps");
        }
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let err = parse_str("steps:\n  - kind: packagez\n    name: x\n").unwrap_err();
        assert!(err.contains("unknown variant `packagez`"), "{err}");
        assert!(err.contains("test.yml:2:"), "{err}");
    }

    #[test]
    fn unknown_field_is_an_error() {
        let err = parse_str("steps:\n  - kind: hostname\n    name: x\n    fqdn: y\n").unwrap_err();
        assert!(err.contains("unknown field `fqdn`"), "{err}");
    }

    #[test]
    fn unknown_handler_is_an_error() {
        let text = "steps:\n  - kind: absent\n    name: rm\n    path: /x\n    notify: [reload nginz]\n\
                    handlers:\n  - name: reload nginx\n    service: nginx\n    action: reload\n";
        let err = parse_str(text).unwrap_err();
        assert!(err.contains("unknown handler `reload nginz`"), "{err}");
        assert!(err.contains("reload nginx"), "{err}");
    }

    #[test]
    fn enabling_ufw_before_ssh_is_refused() {
        let err = parse_str("steps:\n  - kind: ufw_enable\n    name: enable\n").unwrap_err();
        assert!(err.contains("lock you out"), "{err}");
    }
}
