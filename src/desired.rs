//! `Desired`: what one server should look like, expanded from its playbooks, templates and the
//! config. Pure: no I/O besides reading tandem's own assets.

use std::fmt;

use anyhow::Context;
use serde::Serialize;

use crate::config::{Config, Role, Server};
use crate::handler::{Check, Effect};
use crate::mode::Mode;
use crate::playbook::{self, Phase, Source, Step};
use crate::postgres;
use crate::sql;
use crate::templates::Templates;
use crate::ufw::{COMMENT_PREFIX, UfwRule};
use crate::vars::Vars;

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
    Certificate(crate::resource::certificate::CertificateSpec),
    /// The backup repository's stanza, and its first backup.
    BackupStanza(crate::resource::backup_stanza::StanzaSpec),
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

/// The playbooks a server runs, in order.
pub fn roles_of(server: &Server) -> [Phase; 2] {
    match server.role {
        Role::Db => [Phase::Base, Phase::Db],
        Role::App => [Phase::Base, Phase::App],
        Role::Backup => [Phase::Base, Phase::Backup],
    }
}

/// Expands the playbooks for `server`.
pub fn expand(
    config: &Config,
    server: &Server,
    vars: &Vars,
    templates: &mut Templates,
) -> anyhow::Result<Desired> {
    let mut tasks = Vec::new();
    let mut handlers = Vec::new();
    for role in roles_of(server) {
        let book = playbook::load(templates.assets(), role)?;
        for step in &book.steps {
            let ops = expand_step(config, vars, step, templates, &tasks)
                .with_context(|| format!("playbook {role}, step `{}`", step.name()))?;
            for op in ops {
                tasks.push(Task {
                    role,
                    step: step.name().to_string(),
                    op,
                    notify: step.notify().to_vec(),
                });
            }
        }
        for h in &book.handlers {
            let effect = Effect::of(&templates.render_field(&h.service, vars)?, h.action);
            handlers.push(RenderedHandler {
                phase: role,
                name: h.name.clone(),
                check: h
                    .check
                    .clone()
                    .map(Check::Command)
                    .or_else(|| effect.own_check()),
                effect,
            });
        }
    }
    Ok(Desired {
        server: server.clone(),
        tasks,
        handlers,
    })
}

/// A step's mode, checked when the playbook was loaded.
fn step_mode(text: &str) -> anyhow::Result<Mode> {
    Mode::parse(text).with_context(|| format!("bad mode `{text}`"))
}

/// `earlier`: the tasks of the steps before this one.
fn expand_step(
    config: &Config,
    vars: &Vars,
    step: &Step,
    t: &mut Templates,
    earlier: &[Task],
) -> anyhow::Result<Vec<Op>> {
    let op = match step {
        Step::Packages { packages, .. } => Op::Packages {
            names: packages.clone(),
        },
        Step::DeployUser { .. } => Op::DeployUser {
            user: config.ssh.deploy_user.clone(),
            authorized_keys: config
                .ssh
                .authorized_keys
                .iter()
                .cloned()
                .chain(crate::tls::push_authorized_key(vars))
                .collect(),
        },
        Step::SystemUser { user, home, .. } => Op::SystemUser {
            user: t.render_field(user, vars)?,
            home: t.render_field(home, vars)?,
        },
        Step::Hostname { .. } => Op::Hostname {
            fqdn: vars.host.fqdn.clone(),
        },
        Step::File {
            template,
            dest,
            mode,
            owner,
            group,
            secret,
            validate,
            ..
        } => Op::File(FileSpec {
            path: t.render_field(dest, vars)?,
            content: t.render(template, vars)?,
            mode: step_mode(mode)?,
            owner: t.render_field(owner, vars)?,
            group: t.render_field(group, vars)?,
            secret: if *secret {
                Secrecy::Masked {
                    shown: vars.public_env.clone(),
                }
            } else {
                Secrecy::Public
            },
            validate: validate.clone(),
        }),
        Step::Directory {
            path,
            mode,
            owner,
            group,
            ..
        } => Op::Directory {
            path: t.render_field(path, vars)?,
            mode: step_mode(mode)?,
            owner: t.render_field(owner, vars)?,
            group: t.render_field(group, vars)?,
        },
        Step::Symlink { target, link, .. } => Op::Symlink {
            target: t.render_field(target, vars)?,
            link: t.render_field(link, vars)?,
        },
        Step::Absent { path, .. } => Op::Absent {
            path: t.render_field(path, vars)?,
        },
        Step::UfwDefaults { .. } => Op::UfwDefaults,
        Step::UfwAllow {
            port,
            proto,
            from,
            label,
            ..
        } => {
            let rules = ufw_rules(config, vars, port, proto, *from, label.as_deref())?;
            return Ok(rules.into_iter().map(Op::UfwAllow).collect());
        }
        Step::UfwEnable { .. } => Op::UfwEnable,
        Step::PostgresConf { template, file, .. } => Op::File(FileSpec {
            path: format!(
                "{}/conf.d/{}",
                vars.pg.conf_dir,
                t.render_field(file, vars)?
            ),
            content: t.render(template, vars)?,
            mode: Mode(0o644),
            owner: "postgres".into(),
            group: "postgres".into(),
            secret: Secrecy::Public,
            validate: None,
        }),
        Step::PostgresFirstStart { .. } => {
            let conf_d = format!("{}/conf.d/", vars.pg.conf_dir);
            let confs: Vec<&str> = earlier
                .iter()
                .filter_map(|task| match &task.op {
                    Op::File(f) if f.path.starts_with(&conf_d) => Some(f.content.as_str()),
                    _ => None,
                })
                .collect();
            Op::PostgresFirstStart(FileSpec {
                path: postgres::FIRST_START_FILE.into(),
                content: postgres::first_start_conf(&confs),
                mode: Mode(0o644),
                owner: "root".into(),
                group: "root".into(),
                secret: Secrecy::Public,
                validate: None,
            })
        }
        Step::PgHbaBlock { template, .. } => Op::PgHbaBlock {
            path: format!("{}/pg_hba.conf", vars.pg.conf_dir),
            block: t.render(template, vars)?,
        },
        Step::PostgresRole { .. } => Op::PostgresRole {
            role: config.database.role.clone(),
            superuser: config.database.superuser,
            settings: sql::DJANGO_ROLE_SETTINGS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        Step::PostgresDatabase { .. } => Op::PostgresDatabase {
            name: config.database.name.clone(),
            owner: config.database.role.clone(),
        },
        Step::PostgresExtensions { .. } => Op::PostgresExtensions {
            database: config.database.name.clone(),
            names: config.database.extensions.clone(),
        },
        Step::Tls { .. } => return crate::tls::ops(vars, t),
        Step::Backup { .. } => return crate::backup::ops(vars, t),
        Step::Processes { .. } => return crate::processes::ops(vars, t),
        Step::Broker { .. } => return crate::broker::ops(config, vars, t),
        Step::Service {
            service,
            enabled,
            running,
            ..
        } => Op::Service {
            name: t.render_field(service, vars)?,
            enabled: *enabled,
            running: *running,
        },
    };
    Ok(vec![op])
}

fn ufw_rules(
    config: &Config,
    vars: &Vars,
    port: &str,
    proto: &str,
    from: Source,
    label: Option<&str>,
) -> anyhow::Result<Vec<UfwRule>> {
    let (port, default_label) = match port {
        "ssh" => (vars.ssh.port, "ssh".to_string()),
        n => (n.parse::<u16>().context("port")?, format!("port {n}")),
    };
    let what = label.map_or(default_label, str::to_string);
    Ok(match from {
        Source::Anywhere => vec![UfwRule {
            port,
            proto: proto.to_string(),
            from: None,
            comment: format!("{COMMENT_PREFIX}: {what}"),
        }],
        Source::AppServers => config
            .app_servers()
            .map(|app| UfwRule {
                port,
                proto: proto.to_string(),
                from: Some(app.internal_ip),
                comment: format!("{COMMENT_PREFIX}: {what} from {}", app.name),
            })
            .collect(),
        Source::DatabaseClients => {
            let mut rules = ufw_rules(
                config,
                vars,
                &port.to_string(),
                proto,
                Source::AppServers,
                label,
            )?;
            rules.extend(config.database.allow.iter().map(|ip| UfwRule {
                port,
                proto: proto.to_string(),
                from: Some(*ip),
                comment: format!("{COMMENT_PREFIX}: {what} from allowed {ip}"),
            }));
            rules
        }
    })
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
                        crate::identifier::sql_ident(database)
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
                Op::File(file) | Op::PostgresFirstStart(file) => {
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
