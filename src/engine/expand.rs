//! Expanding the playbooks for one server into its `Desired` state: each step becomes ops,
//! the features (HTTPS, backups, processes, the broker) adding theirs. The layer above the
//! features: they know `desired`'s types, never this.

use anyhow::Context;

use crate::config::{Config, Role, Server};
use crate::engine::templates::Templates;
use crate::engine::vars::Vars;
use crate::model::desired::{Desired, FileSpec, Op, PostgresConf, RenderedHandler, Secrecy, Task};
use crate::model::handler::{Check, Effect};
use crate::model::mode::Mode;
use crate::model::playbook::{self, DropinSettings, Phase, Source, Step};
use crate::model::ufw::{COMMENT_PREFIX, UfwRule};
use crate::postgres;
use crate::postgres::sql;

/// The playbooks a server runs, in order.
pub fn roles_of(server: &Server) -> &'static [Phase] {
    match server.role {
        Role::Db => &[Phase::Base, Phase::Consensus, Phase::Db],
        Role::App => &[Phase::Base, Phase::App],
        Role::Backup => &[Phase::Base, Phase::Backup],
        Role::Witness => &[Phase::Base, Phase::Consensus],
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
    for &role in roles_of(server) {
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
                    probe: String::new(),
                });
            }
        }
        for h in &book.handlers {
            let service = templates.render_field(&h.service, vars)?;
            let effect = Effect::of(&service, h.action, || {
                crate::resource::release::switch_live_script(vars, true)
            });
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
    Task::assign_probe_ids(&mut tasks);
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
        Step::LiveReleaseStatic { .. } => {
            Op::LiveReleaseStatic(crate::model::desired::LiveReleaseStatic {
                root: vars.paths.root.clone(),
                static_dir: vars.django.static_dir.clone(),
                env_file: vars.paths.env_file.clone(),
                user: vars.user.clone(),
            })
        }
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
        Step::PostgresConf {
            template,
            file,
            settings,
            ..
        } => Op::PostgresConf(PostgresConf {
            file: FileSpec::new(
                format!(
                    "{}/conf.d/{}",
                    vars.pg.conf_dir,
                    t.render_field(file, vars)?
                ),
                t.render(template, vars)?,
                0o644,
                "postgres",
            ),
            settings: dropin_settings(*settings, vars),
        }),
        Step::PostgresFirstStart { .. } => {
            let confs: Vec<&[(String, String)]> = earlier
                .iter()
                .filter_map(|task| match &task.op {
                    Op::PostgresConf(conf) => Some(conf.settings.as_slice()),
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
        Step::Processes { .. } => return crate::app::processes::ops(vars, t),
        Step::Broker { .. } => return crate::app::broker::ops(config, vars, t),
        Step::Consensus { .. } => return crate::cluster::consensus_ops(config, vars, t),
        Step::Cluster { .. } => return crate::cluster::ops(config, vars, t),
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
            .map(|app| UfwRule::from_server(port, proto, app, &what))
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

/// The settings a drop-in writes, typed, from the same values its template renders (a test
/// holds the two together: `the_dropins_write_their_typed_settings`).
fn dropin_settings(which: DropinSettings, vars: &Vars) -> Vec<(String, String)> {
    let pair = |name: &str, value: String| (name.to_string(), value);
    match which {
        DropinSettings::Listen => vec![
            pair(
                "listen_addresses",
                format!("localhost,{}", vars.host.internal_ip),
            ),
            pair("password_encryption", "scram-sha-256".into()),
        ],
        DropinSettings::Tuning => vars
            .pg
            .tuning
            .iter()
            .map(|s| (s.name.clone(), s.value.clone()))
            .collect(),
        DropinSettings::Archiving if vars.backup.enabled => vec![
            pair("archive_mode", "on".into()),
            pair(
                "archive_command",
                format!("pgbackrest --stanza={} archive-push %p", vars.backup.stanza),
            ),
            pair("archive_timeout", "1min".into()),
        ],
        DropinSettings::Archiving => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::assets::Assets;
    use crate::engine::templates::Templates;
    use crate::engine::vars::HostFacts;
    use crate::model::desired::Op;

    /// The templates write exactly the typed settings their ops carry (a template that writes
    /// another value would be read wrongly by the first-start file, restart notes, overrides
    /// and the settings check), with and without backups.
    #[test]
    fn the_dropins_write_their_typed_settings() {
        for backup in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let config = if backup {
                crate::config::testing::shop_with(
                    dir.path(),
                    "  - {name: vault, role: backup, ssh: vault, fqdn: vault.example.com, internal_ip: 10.0.0.5}\n",
                    "backup: {encryption_key: {env: K}}\n",
                )
            } else {
                crate::config::testing::shop(dir.path())
            };
            let mut templates = Templates::new(Assets::builtin());
            let all =
                crate::engine::render::desired_all(&config, &mut templates, &HostFacts::assumed())
                    .unwrap();
            let mut seen = 0;
            for task in all.iter().flat_map(|d| &d.tasks) {
                if let Op::PostgresConf(conf) = &task.op {
                    assert_eq!(
                        crate::postgres::settings(&conf.file.content),
                        conf.settings,
                        "{}",
                        conf.file.path
                    );
                    seen += 1;
                }
            }
            assert_eq!(seen, 3, "three drop-ins");
        }
    }
}
