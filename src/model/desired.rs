//! `Desired`: what one server should look like, expanded from its playbooks, templates and the
//! config. Pure: no I/O besides reading tandem's own assets.

use std::fmt;

use serde::Serialize;

use crate::config::Server;
use crate::model::handler::{Check, Effect};
use crate::model::mode::Mode;
use crate::model::playbook::Phase;
use crate::model::ufw::UfwRule;
use crate::postgres::sql;

#[derive(Clone, Debug, Serialize)]
pub struct FileSpec {
    pub path: String,
    pub content: String,
    pub mode: Mode,
    pub owner: String,
    pub group: String,
    pub secret: Secrecy,
    /// Command that must accept the file before it stays live; `{path}` is the file.
    pub validate: Option<String>,
}

/// How much of a file's content plans may show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Secrecy {
    /// All of it, as a diff.
    Public,
    /// It holds secrets: diffs show comments and the `KEY=value` lines of `shown` keys;
    /// every other line is masked (the env file: settings shown, secrets not).
    Masked { shown: Vec<String> },
}

/// One thing to converge, with the handlers to run if it changed.
#[derive(Clone, Debug, Serialize)]
pub struct Task {
    pub role: Phase,
    pub step: String,
    pub op: Op,
    pub notify: Vec<String>,
    /// The id of its probe query: named by role, step and kind (`Task::probe_ids`), so that
    /// a new step adds a probe instead of renumbering the others.
    pub probe: String,
}

impl Task {
    /// Gives each task its probe id, `ROLE.STEP.KIND[.TARGET]`: `STEP` is the step's name in
    /// lowercase words joined by `-` (at most 32 characters), `TARGET` the end of the path or
    /// the name the op acts on (`sites-available-shop`, `ssh-authorized-keys`), and `.N`
    /// tells apart what is still alike. Ids stay put when a step, or an op of a step, comes or
    /// goes; each is a file name and a shell word.
    pub fn assign_probe_ids(tasks: &mut [Task]) {
        let mut seen: Vec<String> = Vec::new();
        for task in tasks.iter_mut() {
            let mut base = format!(
                "{}.{}.{}",
                task.role.as_str(),
                words(&task.step, 32),
                task.op.kind()
            );
            if let Some(target) = task.op.target() {
                let tail: Vec<&str> = target
                    .rsplit('/')
                    .filter(|p| !p.is_empty())
                    .take(2)
                    .collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                base = format!("{base}.{}", words(&tail.join(" "), 40));
            }
            let n = seen.iter().filter(|s| **s == base).count();
            task.probe = if n == 0 {
                base.clone()
            } else {
                format!("{base}.{n}")
            };
            seen.push(base);
        }
    }
}

/// What collecting the live release's static files needs: where the releases are, where a
/// release's static files go, and how manage.py runs (the env file, the app user).
#[derive(Clone, Debug, Serialize)]
pub struct LiveReleaseStatic {
    pub root: String,
    /// Below a release: `<PUBLIC><static_url>` (`engine::vars::DjangoVars::static_dir`).
    pub static_dir: String,
    pub env_file: String,
    pub user: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Op {
    Packages {
        names: Vec<String>,
    },
    DeployUser {
        user: String,
        authorized_keys: Vec<String>,
    },
    SystemUser {
        user: String,
        home: String,
    },
    Hostname {
        fqdn: String,
    },
    /// The live release's own static files (`resource/live_release_static.rs`).
    LiveReleaseStatic(LiveReleaseStatic),
    File(FileSpec),
    Directory {
        path: String,
        mode: Mode,
        owner: String,
        group: String,
    },
    /// A directory at a path the operator chose: an existing one is taken over only when it
    /// is empty or holds nothing but `may_hold` (`resource/adopted_directory.rs`).
    AdoptedDirectory {
        path: String,
        mode: Mode,
        owner: String,
        group: String,
        may_hold: Vec<String>,
    },
    Symlink {
        target: String,
        link: String,
    },
    Absent {
        path: String,
    },
    UfwDefaults,
    UfwAllow(UfwRule),
    UfwEnable,
    /// The settings a new PostgreSQL cluster starts with: written before the packages that
    /// create the cluster (src/resource/postgres_first_start.rs).
    PostgresFirstStart(FileSpec),
    /// A conf.d drop-in and the settings it writes, typed (`resource::postgres_facts` and the
    /// first-start file read these, never the file's text).
    PostgresConf(PostgresConf),
    /// The tandem-owned block inside `path` (pg_hba.conf), between its BEGIN/END lines.
    PgHbaBlock {
        path: String,
        block: String,
    },
    PostgresRole {
        role: String,
        superuser: bool,
        settings: Vec<(String, String)>,
    },
    PostgresDatabase {
        name: String,
        owner: String,
    },
    PostgresExtensions {
        database: String,
        names: Vec<String>,
    },
    Service {
        name: String,
        enabled: bool,
        running: bool,
    },
    /// A self-signed stand-in, made on the host only while there is no certificate, so nginx
    /// can serve 443 before the CA has answered.
    PlaceholderCertificate {
        certificate: String,
        key: String,
    },
    /// The ACME certificate: its state on this server; the issuer obtains and renews it.
    Certificate(CertificateSpec),
    /// The backup repository's stanza, and its first backup.
    BackupStanza(StanzaSpec),
    /// This server's etcd as a member of the database cluster's consensus (src/cluster/).
    EtcdMember(EtcdSpec),
    /// This db server's PostgreSQL under Patroni, a member of the database cluster.
    PatroniMember(PatroniSpec),
}

#[derive(Clone, Debug, Serialize)]
pub struct RenderedHandler {
    /// The playbook that defines it: its changes run before it.
    pub phase: Phase,
    pub name: String,
    pub effect: Effect,
    pub check: Option<Check>,
}

/// Everything tandem wants on one server.
#[derive(Clone, Debug, Serialize)]
pub struct Desired {
    pub server: Server,
    pub tasks: Vec<Task>,
    pub handlers: Vec<RenderedHandler>,
}

/// A PostgreSQL conf.d drop-in: the file, and the settings it writes as `(name, value)`.
#[derive(Clone, Debug, Serialize)]
pub struct PostgresConf {
    pub file: FileSpec,
    pub settings: Vec<(String, String)>,
}

/// `text`'s words (letters and digits) in lowercase, joined by `-`, whole words only up to
/// `most` characters.
fn words(text: &str, most: usize) -> String {
    let mut out = String::new();
    for word in text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if out.len() + word.len() + 1 > most {
            break;
        }
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&word.to_ascii_lowercase());
    }
    out
}

impl FileSpec {
    /// A public file owned by `owner` (and its group), checked by nothing.
    pub fn new(
        path: impl Into<String>,
        content: impl Into<String>,
        mode: u32,
        owner: &str,
    ) -> Self {
        FileSpec {
            path: path.into(),
            content: content.into(),
            mode: Mode(mode),
            owner: owner.into(),
            group: owner.into(),
            secret: Secrecy::Public,
            validate: None,
        }
    }

    /// Owned by `group` rather than the owner's group.
    pub fn group(mut self, group: &str) -> Self {
        self.group = group.into();
        self
    }

    /// Holding secrets: masked in plans (all but the `shown` settings).
    pub fn secret(mut self, secret: Secrecy) -> Self {
        self.secret = secret;
        self
    }

    /// Checked by `validate` before it takes the old one's place.
    pub fn validated(mut self, validate: Option<String>) -> Self {
        self.validate = validate;
        self
    }
}

impl Op {
    /// What the op acts on, where it acts on one thing: a path, a unit, a user, a stanza.
    pub fn target(&self) -> Option<&str> {
        Some(match self {
            Op::File(f)
            | Op::PostgresFirstStart(f)
            | Op::PostgresConf(PostgresConf { file: f, .. }) => &f.path,
            Op::Directory { path, .. }
            | Op::AdoptedDirectory { path, .. }
            | Op::Absent { path }
            | Op::PgHbaBlock { path, .. } => path,
            Op::Symlink { link, .. } => link,
            Op::Service { name, .. } => name,
            Op::DeployUser { user, .. } | Op::SystemUser { user, .. } => user,
            Op::PlaceholderCertificate { certificate, .. } => certificate,
            Op::Certificate(spec) => &spec.path,
            Op::BackupStanza(spec) => &spec.stanza,
            Op::EtcdMember(spec) => &spec.name,
            Op::PatroniMember(spec) => &spec.unit,
            _ => return None,
        })
    }

    /// A directory owned by `owner` and its group.
    pub fn directory(path: impl Into<String>, mode: u32, owner: &str) -> Op {
        Op::Directory {
            path: path.into(),
            mode: Mode(mode),
            owner: owner.into(),
            group: owner.into(),
        }
    }

    /// The kind's name, as probe ids and `tandem render` show it.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Packages { .. } => "packages",
            Op::DeployUser { .. } => "deploy_user",
            Op::SystemUser { .. } => "system_user",
            Op::Hostname { .. } => "hostname",
            Op::LiveReleaseStatic(_) => "live_release_static",
            Op::File(_) => "file",
            Op::Directory { .. } => "directory",
            Op::AdoptedDirectory { .. } => "adopted_directory",
            Op::Symlink { .. } => "symlink",
            Op::Absent { .. } => "absent",
            Op::UfwDefaults => "ufw_defaults",
            Op::UfwAllow(_) => "ufw_allow",
            Op::UfwEnable => "ufw_enable",
            Op::PostgresFirstStart(_) => "postgres_first_start",
            Op::PostgresConf(_) => "postgres_conf",
            Op::PgHbaBlock { .. } => "pg_hba_block",
            Op::PostgresRole { .. } => "postgres_role",
            Op::PostgresDatabase { .. } => "postgres_database",
            Op::PostgresExtensions { .. } => "postgres_extensions",
            Op::Service { .. } => "service",
            Op::PlaceholderCertificate { .. } => "placeholder_certificate",
            Op::Certificate(_) => "certificate",
            Op::BackupStanza(_) => "backup_stanza",
            Op::EtcdMember(_) => "etcd_member",
            Op::PatroniMember(_) => "patroni_member",
        }
    }
}

impl Desired {
    /// The SQL a fresh database server would get, with the password shown as `password_sql`.
    pub fn sql(&self, password_sql: &str) -> Vec<String> {
        let mut out = Vec::new();
        for task in &self.tasks {
            match &task.op {
                Op::PostgresRole {
                    role,
                    superuser,
                    settings,
                } => {
                    out.push(sql::create_role(role, *superuser, password_sql));
                    for (k, v) in settings {
                        out.push(sql::role_setting(role, k, v));
                    }
                }
                Op::PostgresDatabase { name, owner } => {
                    out.push(sql::create_database(name, owner));
                    out.push(sql::revoke_public_connect(name));
                }
                Op::PostgresExtensions { database, names } if !names.is_empty() => {
                    out.push(format!(
                        "\\connect {}",
                        crate::config::identifier::sql_ident(database)
                    ));
                    out.extend(names.iter().map(|n| sql::create_extension(n)));
                }
                _ => {}
            }
        }
        out
    }

    /// The ufw commands, in order, for a server where ufw is still off.
    pub fn ufw_commands(&self) -> Vec<String> {
        let mut out = Vec::new();
        for task in &self.tasks {
            match &task.op {
                Op::UfwDefaults => {
                    out.push("ufw default deny incoming".into());
                    out.push("ufw default allow outgoing".into());
                }
                Op::UfwAllow(rule) => out.push(rule.to_string()),
                Op::UfwEnable => out.push("ufw --force enable".into()),
                _ => {}
            }
        }
        out
    }

    pub fn packages(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for task in &self.tasks {
            if let Op::Packages { names } = &task.op {
                out.extend(names.iter().map(String::as_str));
            }
        }
        out
    }
}

/// The ordered step list, as `tandem render` writes it to `tandem/steps.txt`.
impl fmt::Display for Desired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.server;
        writeln!(
            f,
            "# {} ({}, {}, {})",
            s.name,
            s.role.as_str(),
            s.fqdn,
            s.internal_ip
        )?;
        for task in &self.tasks {
            write!(f, "[{}] {}: ", task.role, task.step)?;
            match &task.op {
                Op::Packages { names } => write!(f, "apt install {}", names.join(" "))?,
                Op::DeployUser {
                    user,
                    authorized_keys,
                } => write!(
                    f,
                    "user {user} (sudo), {} authorized key(s)",
                    authorized_keys.len()
                )?,
                Op::SystemUser { user, home } => {
                    write!(f, "system user {user}, home {home}, no login shell")?
                }
                Op::Hostname { fqdn } => write!(f, "hostname {fqdn}")?,
                Op::LiveReleaseStatic(spec) => write!(
                    f,
                    "static files of the live release in {}/current/{}",
                    spec.root, spec.static_dir
                )?,
                Op::File(file)
                | Op::PostgresFirstStart(file)
                | Op::PostgresConf(PostgresConf { file, .. }) => {
                    write!(
                        f,
                        "file {} ({} {}:{})",
                        file.path, file.mode, file.owner, file.group
                    )?;
                    if let Some(v) = &file.validate {
                        write!(f, ", checked with `{v}`")?;
                    }
                }
                Op::Directory {
                    path,
                    mode,
                    owner,
                    group,
                } => write!(f, "directory {path} ({mode} {owner}:{group})")?,
                Op::AdoptedDirectory {
                    path,
                    mode,
                    owner,
                    group,
                    ..
                } => write!(
                    f,
                    "directory {path} ({mode} {owner}:{group}), an existing one only when empty"
                )?,
                Op::Symlink { target, link } => write!(f, "symlink {link} -> {target}")?,
                Op::Absent { path } => write!(f, "absent {path}")?,
                Op::UfwDefaults => write!(f, "ufw default deny incoming, allow outgoing")?,
                Op::UfwAllow(rule) => write!(f, "{rule}")?,
                Op::UfwEnable => write!(f, "ufw --force enable")?,
                Op::PgHbaBlock { path, .. } => write!(f, "tandem block in {path}")?,
                Op::PostgresRole {
                    role, superuser, ..
                } => write!(
                    f,
                    "role {role} (LOGIN, {}, Django's settings)",
                    if *superuser {
                        "SUPERUSER"
                    } else {
                        "no superuser"
                    }
                )?,
                Op::PostgresDatabase { name, owner } => {
                    write!(f, "database {name} owned by {owner}")?
                }
                Op::PostgresExtensions { names, .. } => {
                    write!(f, "extensions [{}]", names.join(", "))?
                }
                Op::Service {
                    name,
                    enabled,
                    running,
                } => write!(
                    f,
                    "service {name} {} and {}",
                    if *enabled { "enabled" } else { "disabled" },
                    if *running { "running" } else { "stopped" }
                )?,
                Op::PlaceholderCertificate { certificate, .. } => {
                    write!(f, "self-signed {certificate} while there is none")?
                }
                Op::Certificate(spec) if spec.issuer => write!(
                    f,
                    "certificate for {} from the CA, renewed within {} days of expiry by {}",
                    spec.names.join(" "),
                    spec.renew_days,
                    spec.service
                )?,
                Op::Certificate(spec) => write!(
                    f,
                    "certificate for {} as the issuing app server hands it out",
                    spec.names.join(" ")
                )?,
                Op::BackupStanza(spec) => write!(
                    f,
                    "backup stanza {} of {} (created with a first full backup when missing)",
                    spec.stanza, spec.db
                )?,
                Op::EtcdMember(spec) => write!(
                    f,
                    "etcd member {} of {}",
                    spec.name,
                    spec.peer_urls.join(" ")
                )?,
                Op::PatroniMember(spec) => write!(
                    f,
                    "{} runs PostgreSQL as member {} of cluster {}{}",
                    spec.unit,
                    spec.member,
                    spec.scope,
                    if spec.seed {
                        " (seeds it with this server's data)"
                    } else {
                        " (joins it as a copy of the primary)"
                    }
                )?,
            }
            if !task.notify.is_empty() {
                write!(f, " -> notify {}", task.notify.join(", "))?;
            }
            writeln!(f)?;
        }
        for h in &self.handlers {
            write!(f, "handler `{}`: {}", h.name, h.effect)?;
            if let Some(check) = &h.check {
                write!(f, " after {check} passes")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CertificateSpec {
    pub path: String,
    pub names: Vec<String>,
    /// This server runs the ACME client (the others receive its certificate).
    pub issuer: bool,
    /// The oneshot service that obtains, renews and hands out the certificate.
    pub service: String,
    pub renew_days: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct StanzaSpec {
    pub stanza: String,
    /// The oneshot service that takes a backup.
    pub service: String,
    /// The db server it backs up (for messages).
    pub db: String,
}

/// This server's etcd in the cluster's consensus.
#[derive(Clone, Debug, Serialize)]
pub struct EtcdSpec {
    /// The member's name: the server's.
    pub name: String,
    /// Every member's peer URL, this one's included, sorted (what `etcdctl member list` shows).
    pub peer_urls: Vec<String>,
}

/// A db server's PostgreSQL handed to Patroni. Holds no secret: the replication roles'
/// verifiers are made at plan time from the database password.
#[derive(Clone, Debug, Serialize)]
pub struct PatroniSpec {
    /// The member's name in the cluster: the server's.
    pub member: String,
    /// The cluster's name in etcd (Patroni's scope).
    pub scope: String,
    /// `patroni@<version>-main.service`.
    pub unit: String,
    /// Its configuration file, which patronictl reads too.
    pub config: String,
    /// This member's REST API (`http://<internal ip>:8008`).
    pub rest: String,
    /// etcd's client URLs, comma-separated.
    pub etcd_endpoints: String,
    pub version: String,
    pub data_dir: String,
    pub conf_dir: String,
    /// The first db server in the config: a new cluster starts from its data.
    pub seed: bool,
    /// The cluster's shared configuration in etcd as tandem wants it.
    pub shared: SharedConfig,
    /// Every member's name, this one's included (the order restarts go in is decided from
    /// who is primary).
    pub members: Vec<String>,
}

/// The part of a cluster's configuration Patroni keeps in etcd, shared by its members: its
/// timing, synchronous mode, and the settings it passes PostgreSQL on the command line.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SharedConfig {
    pub ttl: u32,
    pub loop_wait: u32,
    pub retry_timeout: u32,
    pub synchronous_mode: bool,
    /// `postgresql.parameters`: each needs a restart of PostgreSQL to change.
    pub parameters: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(role: Phase, step: &str, path: &str) -> Task {
        Task {
            role,
            step: step.into(),
            op: Op::Absent { path: path.into() },
            notify: Vec::new(),
            probe: String::new(),
        }
    }

    #[test]
    fn probe_ids_name_role_step_and_kind_and_survive_a_new_step() {
        let mut tasks = vec![
            task(Phase::Base, "Base packages", "/a"),
            task(Phase::App, "Nginx site, checked with nginx -t", "/etc/b"),
            task(Phase::App, "Nginx site, checked with nginx -t", "/etc/c"),
        ];
        Task::assign_probe_ids(&mut tasks);
        let ids: Vec<&str> = tasks.iter().map(|t| t.probe.as_str()).collect();
        assert_eq!(
            ids,
            [
                "base.base-packages.absent.a",
                "app.nginx-site-checked-with-nginx-t.absent.etc-b",
                "app.nginx-site-checked-with-nginx-t.absent.etc-c",
            ]
        );
        // A step added in front, or an op taken out of a step, renames nothing.
        let mut fewer = vec![tasks[0].clone(), tasks[2].clone()];
        Task::assign_probe_ids(&mut fewer);
        assert_eq!(fewer[1].probe, ids[2]);
        // A step added in front renumbers nothing.
        let mut more = vec![task(Phase::Base, "A new first step", "/z")];
        more.extend(tasks.iter().cloned());
        Task::assign_probe_ids(&mut more);
        assert_eq!(
            more[1..]
                .iter()
                .map(|t| t.probe.as_str())
                .collect::<Vec<_>>(),
            ids
        );
        // Long names are cut at a word, and every id is a shell word and a file name.
        let mut long = vec![task(
            Phase::Db,
            "A step whose name goes on and on, far past what an id needs",
            "/x",
        )];
        Task::assign_probe_ids(&mut long);
        assert_eq!(
            long[0].probe,
            "db.a-step-whose-name-goes-on-and-on.absent.x"
        );
        assert!(
            long[0]
                .probe
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        );
    }
}
