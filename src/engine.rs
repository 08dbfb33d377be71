//! `Engine`: connects to every server (concurrently, one multiplexed SSH session each), finds
//! versions and paths, probes each host in one script, and turns desired state plus facts into
//! a `Plan`. Apply (`apply.rs`) then works through that plan.

use std::time::Instant;

use anyhow::{Context, bail};
use futures::future::join_all;

use crate::config::{Config, Role};
use crate::desired::{self, Desired, Op};
use crate::facts::{self, Facts};
use crate::plan::{self, Plan, PlanSecrets};
use crate::release::{self, Bundle, ReleaseState};
use crate::secret::{self, Secret};
use crate::templates::Templates;
use crate::transport::{Ssh, SshOptions, Transport};
use crate::vars::{HostFacts, Secrets, Vars};

pub struct Engine {
    pub config: Config,
    pub options: SshOptions,
    /// One per server, in config order.
    pub hosts: Vec<Ssh>,
    pub run_id: String,
    /// SSH round trips per host so far (discovery + probe), for the closing summary.
    pub round_trips: usize,
    /// The hosts' apply locks, once taken (`apply::lock_all`); released by `close`.
    pub locks: Vec<crate::transport::RemoteLock>,
}

/// The plan and what it was computed from.
pub struct Planned {
    pub plan: Plan,
    pub desired: Vec<Desired>,
    /// What each host's probe found, in config order.
    pub facts: Vec<Facts>,
    /// Identity of the code in `django.source`.
    pub code_hash: String,
}

impl Engine {
    pub async fn connect(config: Config, options: SshOptions) -> anyhow::Result<Engine> {
        let started = Instant::now();
        let results = join_all(
            config
                .servers
                .iter()
                .map(|s| Ssh::connect(&s.name, &s.ssh, &options)),
        )
        .await;
        let mut hosts = Vec::new();
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(h) => hosts.push(h),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if !errors.is_empty() {
            for h in hosts {
                h.close().await;
            }
            bail!("{}", errors.join("\n"));
        }
        log::debug(&format!(
            "connected to {} servers in {:?}",
            hosts.len(),
            started.elapsed()
        ));
        Ok(Engine {
            config,
            options,
            hosts,
            run_id: run_id(),
            round_trips: 0,
            locks: Vec::new(),
        })
    }

    pub async fn close(self) {
        // A lock holds a clone of its host's session: release the locks first, so each
        // session can be closed (a session still shared would be left to its master).
        drop(self.locks);
        for h in self.hosts {
            h.close().await;
        }
    }

    /// Discovery and probe on every host (two round trips each, hosts in parallel), then the
    /// pure comparison.
    pub async fn plan(
        &mut self,
        templates: &mut Templates,
        password: &Secret,
    ) -> anyhow::Result<Planned> {
        let bundle = release::bundle(&self.config)?;
        let discoveries = join_all(self.hosts.iter().zip(&self.config.servers).map(
            |(h, server)| async move {
                let out = h.run(&facts::discovery_script(server.role)).await?;
                anyhow::ensure!(
                    out.success(),
                    "discovery on {} failed: {}",
                    h.name(),
                    out.stderr_tail()
                );
                Ok::<_, anyhow::Error>(facts::parse_discovery(&out.stdout_text()))
            },
        ))
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;

        // Expanded once with placeholders for the secrets: enough to know what to probe.
        let mut redacted = Vec::new();
        let mut probes = Vec::new();
        for (server, discovery) in self.config.servers.iter().zip(&discoveries) {
            let host_facts = host_facts(server.role, discovery, &server.name)?;
            let desired = desired::expand(
                &self.config,
                server,
                &host_facts,
                Secrets::redacted(&self.config),
                templates,
            )?;
            let mut probe = facts::probe_script(&desired);
            // App servers: the release paths, for the probe now and the release script later.
            let app_vars = (server.role == Role::App).then(|| {
                Vars::new(
                    &self.config,
                    server,
                    &host_facts,
                    Secrets::redacted(&self.config),
                )
            });
            if let Some(vars) = &app_vars {
                facts::add_query(&mut probe, facts::RELEASE, &release::probe(vars));
            }
            probes.push(probe);
            redacted.push((host_facts, desired, app_vars));
        }
        let outputs = join_all(
            self.hosts
                .iter()
                .zip(&probes)
                .map(|(h, script)| async move {
                    let out = h.run(script).await?;
                    anyhow::ensure!(
                        out.success(),
                        "probe on {} failed: {}",
                        h.name(),
                        out.stderr_tail()
                    );
                    Ok::<_, anyhow::Error>(out.stdout_text())
                }),
        )
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
        self.round_trips += 2;

        let mut hosts = Vec::new();
        let mut all = Vec::new();
        let mut all_facts = Vec::new();
        for (((server, discovery), output), (host_facts, redacted, app_vars)) in self
            .config
            .servers
            .iter()
            .zip(discoveries)
            .zip(outputs)
            .zip(redacted)
        {
            let facts = Facts::parse(discovery, &output)
                .with_context(|| format!("reading the probe of {}", server.name))?;
            // The SECRET_KEY already in the host's env file is kept across runs.
            let secrets = Secrets {
                db_password: password.expose().to_string(),
                secret_key: existing_secret_key(&redacted, &facts).unwrap_or_else(new_secret_key),
            };
            let desired = desired::expand(&self.config, server, &host_facts, secrets, templates)?;
            let mut host = plan::plan_host(
                &desired,
                &facts,
                &PlanSecrets {
                    db_password: password,
                },
                &self.run_id,
            );
            if let Some(vars) = app_vars {
                let found = facts.get(facts::RELEASE);
                let state = ReleaseState::parse(found.status, &found.stdout);
                let first_app = self.config.app_servers().next().map(|s| s.name.as_str())
                    == Some(server.name.as_str());
                if let Some(change) =
                    release_change(first_app, &self.config, &vars, &bundle, &state)
                {
                    host.changes.push(change);
                }
                host.release = Some(state);
            }
            if server.role == Role::Db {
                host.notes
                    .extend(crate::resource::postgres_facts::postgres_restart_notes(
                        &desired, &facts,
                    ));
            }
            hosts.push(host);
            all.push(desired);
            all_facts.push(facts);
        }
        Ok(Planned {
            plan: Plan { hosts },
            desired: all,
            facts: all_facts,
            code_hash: bundle.hash,
        })
    }
}

fn host_facts(role: Role, discovery: &facts::Discovery, name: &str) -> anyhow::Result<HostFacts> {
    let postgres_version = match (&discovery.postgres_version, role) {
        (Some(v), _) => v.clone(),
        (None, Role::Db) => bail!(
            "{name}: cannot tell which PostgreSQL apt would install (no package lists?): run `apt-get update` there"
        ),
        (None, Role::App) => String::new(),
    };
    Ok(HostFacts { postgres_version })
}

/// A new release when the code on the host is not this bundle's.
fn release_change(
    migrate: bool,
    config: &Config,
    vars: &Vars,
    bundle: &Bundle,
    state: &ReleaseState,
) -> Option<plan::Change> {
    if state.current_hash.as_deref() == Some(bundle.hash.as_str()) {
        return None;
    }
    let id = release::release_id(&bundle.hash);
    let was = state.current.as_deref().unwrap_or("none");
    Some(plan::Change::release(
        "Ship the Django code",
        format!("+ release {id} ({} files; current: {was})", bundle.files),
        release::release_script(config, vars, bundle, &id, migrate),
    ))
}

/// The DJANGO_SECRET_KEY already in the host's env file, if any.
fn existing_secret_key(desired: &Desired, facts: &Facts) -> Option<String> {
    for (i, task) in desired.tasks.iter().enumerate() {
        let Op::File(file) = &task.op else { continue };
        if !file.content.contains("DJANGO_SECRET_KEY=") {
            continue;
        }
        let r = facts.task(i);
        if !r.ok() {
            return None;
        }
        let line = r
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("DJANGO_SECRET_KEY="))?;
        return unquote_env(line).filter(|k| !k.is_empty() && !k.starts_with("<redacted"));
    }
    None
}

/// Inverse of `templates::env_value`.
fn unquote_env(value: &str) -> Option<String> {
    let inner = value.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// 64 random URL-safe characters for Django's SECRET_KEY.
fn new_secret_key() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 48];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    ok.expect("reading /dev/urandom");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{}", now.as_secs(), std::process::id())
}

/// The database password, read once per run (plan needs it to compare the stored verifier).
pub fn password(config: &Config) -> anyhow::Result<Secret> {
    secret::db_password(config)
}

/// Progress and debug lines on stderr.
pub mod log {
    pub fn debug(msg: &str) {
        if std::env::var_os("TANDEM_DEBUG").is_some() {
            eprintln!("debug: {msg}");
        }
    }
}
