//! `Engine`: connects to every server (concurrently, one multiplexed SSH session each), finds
//! versions and paths, probes each host in one script, and turns desired state plus facts into
//! a `Plan`. Apply (`engine::apply`) then works through that plan.

pub mod apply;
pub mod assets;
pub mod expand;
pub mod kept_connection;
pub mod lock_status;
pub mod render;
pub mod status;
pub mod templates;
pub mod transport;
pub mod vars;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use futures::future::join_all;

use crate::app::bundle::{self, Bundle};
use crate::config::secret::{self, RunSecrets, Secret};
use crate::config::{Config, Role, Server};
use crate::engine::templates::Templates;
use crate::engine::transport::{Ssh, SshOptions, Transport};
use crate::engine::vars::{HostFacts, KeptKeys, Paths, Secrets, Vars};
use crate::model::desired::Desired;
use crate::model::facts::{self, Facts};
use crate::model::plan::{self, Plan};
use crate::model::report::Report;
use crate::resource::PlanSecrets;
use crate::resource::release::{self, ReleaseState};

pub struct Engine {
    pub config: Config,
    pub options: SshOptions,
    /// The servers this run works on, in config order: all of them, or those `--only` names.
    pub servers: Vec<Server>,
    /// One per server of `servers`, in the same order.
    pub hosts: Vec<Ssh>,
    pub run_id: String,
    /// SSH round trips per host so far (discovery + probe), for the closing summary.
    pub round_trips: usize,
    /// The hosts' apply locks, once taken (`apply::lock_all`); released by `close`.
    pub locks: Vec<crate::engine::transport::RemoteLock>,
    /// Where progress goes.
    pub report: Arc<dyn Report>,
    /// The Django source as it ships, packed by the run's first plan: what the plan showed is
    /// what a later plan of the same run (after the packages) ships.
    bundle: std::sync::OnceLock<Bundle>,
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
    /// Connects to the servers named in `only` (every server when it is empty).
    pub async fn connect(
        config: Config,
        options: SshOptions,
        report: Arc<dyn Report>,
        only: &[String],
    ) -> anyhow::Result<Engine> {
        let started = Instant::now();
        let servers = select(&config, only)?;
        let targets: Vec<(&str, &str)> = servers
            .iter()
            .map(|s| (s.name.as_str(), s.ssh.as_str()))
            .collect();
        let retrying = |name: &str, why: &str| report.progress(name, why);
        let hosts = crate::engine::transport::connect_all(&targets, &options, &retrying).await?;
        report.debug(&format!(
            "connected to {} servers in {:?}",
            hosts.len(),
            started.elapsed()
        ));
        Ok(Engine {
            config,
            options,
            servers,
            hosts,
            run_id: run_id(),
            round_trips: 0,
            locks: Vec::new(),
            report,
            bundle: std::sync::OnceLock::new(),
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
        secrets: &RunSecrets,
    ) -> anyhow::Result<Planned> {
        let all: Vec<usize> = (0..self.hosts.len()).collect();
        let planned = self.plan_hosts(templates, secrets, &all).await?;
        self.round_trips += 2;
        Ok(planned)
    }

    fn bundle(&self) -> anyhow::Result<&Bundle> {
        if let Some(packed) = self.bundle.get() {
            return Ok(packed);
        }
        let packed = bundle::bundle(&self.config)?;
        Ok(self.bundle.get_or_init(|| packed))
    }

    /// `plan` for the hosts at indices `which` only (in that order in the result): apply plans
    /// the database side and the app side again, each once its own packages are installed.
    /// What the hosts share (Django's SECRET_KEY, the push and backup keys, host keys) is
    /// kept within a side, and the migrating app server is the run's first either way.
    pub async fn plan_hosts(
        &self,
        templates: &mut Templates,
        secrets: &RunSecrets,
        which: &[usize],
    ) -> anyhow::Result<Planned> {
        let servers: Vec<Server> = which.iter().map(|&i| self.servers[i].clone()).collect();
        let sessions: Vec<&Ssh> = which.iter().map(|&i| &self.hosts[i]).collect();
        let bundle = self.bundle()?;
        let env_file = &Paths::of(&self.config.project).env_file;
        let push_key = &crate::tls::vars::push_key_path(&self.config.project);
        let report = &self.report;
        let discoveries = join_all(sessions.iter().zip(&servers).map(|(h, server)| async move {
            let started = Instant::now();
            let out = h
                .run(&facts::discovery_script(server.role, env_file, push_key))
                .await?;
            report.debug(&format!("{}: discovery {:?}", h.name(), started.elapsed()));
            anyhow::ensure!(
                out.success(),
                "discovery on {} failed: {}",
                h.name(),
                out.stderr_tail()
            );
            Ok::<_, anyhow::Error>(facts::parse_discovery(&out.stdout_text()))
        }))
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;

        same_release_for_backups(&servers, &discoveries)?;
        let mut kept = kept_keys(&discoveries)?;
        kept.host_keys = servers
            .iter()
            .zip(&discoveries)
            .filter_map(|(s, d)| Some((s.name.clone(), d.host_key.clone()?)))
            .collect();
        let probes = servers
            .iter()
            .zip(&discoveries)
            .map(|(server, discovery)| {
                Probe::new(&self.config, server, discovery, &kept, secrets, templates)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let outputs = join_all(sessions.iter().zip(&probes).map(|(h, probe)| async move {
            let started = Instant::now();
            let out = h.run(&probe.script).await?;
            report.debug(&format!("{}: probe {:?}", h.name(), started.elapsed()));
            anyhow::ensure!(
                out.success(),
                "probe on {} failed: {}",
                h.name(),
                out.stderr_tail()
            );
            Ok::<_, anyhow::Error>(out.stdout)
        }))
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
        if let Some(dir) = std::env::var_os("TANDEM_CAPTURE_PROBES") {
            capture(Path::new(&dir), &servers, &discoveries, &outputs)?;
        }

        let mut hosts = Vec::new();
        let mut all = Vec::new();
        let mut all_facts = Vec::new();
        // The migrations run on the first app server taking part.
        let migrating = self
            .servers
            .iter()
            .find(|s| s.role == Role::App)
            .map(|s| s.name.clone());
        for ((server, discovery), (output, probe)) in servers
            .iter()
            .zip(discoveries)
            .zip(outputs.iter().zip(probes))
        {
            let host = plan_host(HostInput {
                config: &self.config,
                server,
                probe,
                discovery,
                output,
                password: &secrets.db_password,
                migrates: migrating.as_deref() == Some(server.name.as_str()),
                run_id: &self.run_id,
                bundle,
            })?;
            hosts.push(host.plan);
            all.push(host.desired);
            all_facts.push(host.facts);
        }
        crate::resource::certificate::hand_out_across(&self.config, &servers, &mut hosts);
        Ok(Planned {
            plan: Plan { hosts },
            desired: all,
            facts: all_facts,
            code_hash: bundle.hash.clone(),
        })
    }
}

/// The keys every app server of the run gets: for each, the one the first of them that has
/// one already uses, else a new one. One SECRET_KEY for all, because a session or CSRF token
/// signed by one app server must be accepted by the others behind the same name; one push key,
/// so whichever app server issues certificates may hand them to the others.
pub fn kept_keys(discoveries: &[facts::Discovery]) -> anyhow::Result<KeptKeys> {
    let secret_key = discoveries
        .iter()
        .find_map(|d| d.secret_key.clone())
        .unwrap_or_else(|| Secret::new(new_secret_key()));
    let (tls_push_key, tls_push_public) = kept_ssh_key(
        discoveries.iter().find_map(|d| d.tls_push_key.clone()),
        "the certificate push key kept on the app servers",
    )?;
    let (backup_key, backup_public) = kept_ssh_key(
        discoveries.iter().find_map(|d| d.backup_key.clone()),
        "the backup key kept on the db and backup servers",
    )?;
    Ok(KeptKeys {
        secret_key,
        tls_push_key,
        tls_push_public,
        backup_key,
        backup_public,
        host_keys: Default::default(),
    })
}

/// pgBackRest refuses to talk to another version of itself, and each Debian release ships
/// one: the backup server must run the db server's release (checked when both are in the run).
fn same_release_for_backups(
    servers: &[Server],
    discoveries: &[facts::Discovery],
) -> anyhow::Result<()> {
    let find = |role: Role| {
        servers
            .iter()
            .zip(discoveries)
            .find(|(s, _)| s.role == role)
    };
    if let (Some((db, d)), Some((backup, b))) = (find(Role::Db), find(Role::Backup))
        && (d.os != b.os || d.os_version != b.os_version)
    {
        bail!(
            "{} runs {} {} but {} runs {} {}: pgBackRest only talks to its own version, and each release ships one; give the backup server the db server's release",
            backup.name,
            b.os,
            b.os_version,
            db.name,
            d.os,
            d.os_version
        );
    }
    Ok(())
}

/// The OpenSSH private key `found` on a server (`what` it is, for errors), or a new Ed25519
/// key; with its public line.
fn kept_ssh_key(found: Option<Secret>, what: &str) -> anyhow::Result<(Secret, String)> {
    let key = match found {
        Some(key) => ssh_key::PrivateKey::from_openssh(key.expose())
            .with_context(|| format!("reading {what}"))?,
        None => ssh_key::PrivateKey::random(&mut rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .context("making an SSH key")?,
    };
    let private = key
        .to_openssh(ssh_key::LineEnding::LF)
        .with_context(|| format!("encoding {what}"))?;
    let public = key
        .public_key()
        .to_openssh()
        .with_context(|| format!("encoding {what}"))?;
    Ok((Secret::new(private.to_string()), public))
}

/// One host's desired state, expanded once from its discovery (with the real secrets: the
/// keys the app servers keep, see `kept_keys`), and the probe script that asks about it.
pub struct Probe {
    pub desired: Desired,
    /// App servers: the release paths, for the probe now and the release script later.
    pub app_vars: Option<Vars>,
    pub script: String,
}

impl Probe {
    pub fn new(
        config: &Config,
        server: &Server,
        discovery: &facts::Discovery,
        kept: &KeptKeys,
        run_secrets: &RunSecrets,
        templates: &mut Templates,
    ) -> anyhow::Result<Probe> {
        let mut secrets = Secrets::real(config, run_secrets, kept);
        secrets.backup_known_host = crate::backup::known_host(config, server, &kept.host_keys);
        let vars = Vars::new(
            config,
            server,
            &host_facts(server.role, discovery, &server.name)?,
            secrets,
        );
        let desired = crate::engine::expand::expand(config, server, &vars, templates)?;
        let app_vars = (server.role == Role::App).then_some(vars);
        let release: Vec<(&str, String)> = app_vars
            .iter()
            .map(|vars| (facts::RELEASE, release::probe(vars)))
            .collect();
        let script = crate::resource::probe::probe_script(&desired, &release);
        Ok(Probe {
            desired,
            app_vars,
            script,
        })
    }
}

/// Everything one host's plan is computed from.
pub struct HostInput<'a> {
    pub config: &'a Config,
    pub server: &'a Server,
    pub probe: Probe,
    pub discovery: facts::Discovery,
    /// What the probe script printed.
    pub output: &'a [u8],
    pub password: &'a Secret,
    /// This server runs the release's migrations (the first app server of the run).
    pub migrates: bool,
    pub run_id: &'a str,
    pub bundle: &'a Bundle,
}

/// One host's plan and what it was computed from.
pub struct HostPlanned {
    pub plan: plan::HostPlan,
    pub desired: Desired,
    pub facts: Facts,
}

/// The pure part of planning one host: the probe's answer read and compared with the desired
/// state, and the release and PostgreSQL notes added. Tested from captured probe answers
/// without a host.
pub fn plan_host(input: HostInput) -> anyhow::Result<HostPlanned> {
    let HostInput {
        config,
        server,
        probe,
        discovery,
        output,
        password,
        migrates,
        run_id,
        bundle,
    } = input;
    let facts = Facts::parse(discovery, output)
        .with_context(|| format!("reading the probe of {}", server.name))?;
    let desired = probe.desired;
    let mut host = crate::resource::plan_host(
        &desired,
        &facts,
        &PlanSecrets {
            db_password: password,
        },
        run_id,
    );
    if let Some(vars) = probe.app_vars {
        let found = facts.get(facts::RELEASE);
        let state = ReleaseState::parse(found.status, &found.stdout);
        host.changes
            .extend(release::plan(migrates, config, &vars, bundle, &state));
        host.release = Some(state);
    }
    if server.role == Role::Db {
        host.notes
            .extend(crate::resource::postgres_facts::postgres_restart_notes(
                &desired, &facts,
            ));
    }
    Ok(HostPlanned {
        plan: host,
        desired,
        facts,
    })
}

/// Writes each host's discovery and probe answers to `dir` (`<server>.discovery`,
/// `<server>.probe`): the fixtures of the host-free plan tests, and a debugging aid. They hold
/// the stored SCRAM verifier, the env file (SECRET_KEY) and the kept SSH keys (certificate
/// push, backup): capture from test servers only. The files are the operator's alone (0600,
/// in a 0700 directory when tandem makes it).
fn capture(
    dir: &Path,
    servers: &[Server],
    discoveries: &[facts::Discovery],
    outputs: &[Vec<u8>],
) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let write = |name: String, bytes: &[u8]| -> anyhow::Result<()> {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        file.write_all(bytes)?;
        Ok(())
    };
    for ((server, discovery), output) in servers.iter().zip(discoveries).zip(outputs) {
        write(
            format!("{}.discovery", server.name),
            discovery.to_lines().as_bytes(),
        )?;
        write(format!("{}.probe", server.name), output)?;
    }
    Ok(())
}

fn host_facts(role: Role, discovery: &facts::Discovery, name: &str) -> anyhow::Result<HostFacts> {
    let postgres_version = match (&discovery.postgres_version, role) {
        (Some(v), _) => v.clone(),
        // The backup server's pgBackRest points at the db server's data directory, which is
        // named after the version its Debian release installs.
        (None, Role::Db | Role::Backup) => bail!(
            "{name}: cannot tell which PostgreSQL apt would install (no package lists?): run `apt-get update` there"
        ),
        (None, Role::App | Role::Witness) => String::new(),
    };
    Ok(HostFacts {
        postgres_version,
        machine: discovery
            .machine
            .clone()
            .unwrap_or_else(crate::postgres::tuning::Machine::assumed),
    })
}

/// The servers `only` names (all when it is empty), in config order; an unknown name is an
/// error that lists the known ones.
pub fn select(config: &Config, only: &[String]) -> anyhow::Result<Vec<Server>> {
    if let Some(unknown) = only
        .iter()
        .find(|name| !config.servers.iter().any(|s| &s.name == *name))
    {
        let names: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "--server: no server `{unknown}` in the config (servers: {})",
            names.join(", ")
        );
    }
    Ok(config
        .servers
        .iter()
        .filter(|s| only.is_empty() || only.contains(&s.name))
        .cloned()
        .collect())
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

/// Every secret of the run, read once (plan needs the password to compare the stored
/// verifier, and the env file's secrets to compare the file).
pub fn secrets(config: &Config) -> anyhow::Result<RunSecrets> {
    secret::read_all(config)
}

#[cfg(test)]
mod tests {

    #[test]
    fn captured_answers_are_the_operators_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::testing::shop(dir.path());
        let out = dir.path().join("capture");
        let discovery = facts::Discovery {
            backup_key: Some(Secret::new("-----BEGIN OPENSSH PRIVATE KEY-----".into())),
            ..facts::Discovery::default()
        };
        capture(
            &out,
            &config.servers[..1],
            &[discovery],
            &["@x 0 \n".into()],
        )
        .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&out), 0o700);
        assert_eq!(mode(&out.join("db.discovery")), 0o600);
        assert_eq!(mode(&out.join("db.probe")), 0o600);
        // Again over the same files: replaced, still the operator's alone.
        capture(
            &out,
            &config.servers[..1],
            &[facts::Discovery::default()],
            &["".into()],
        )
        .unwrap();
        assert_eq!(mode(&out.join("db.discovery")), 0o600);
    }

    use super::*;

    fn app_with_key(key: Option<&str>) -> facts::Discovery {
        facts::Discovery {
            secret_key: key.map(|k| Secret::new(k.to_string())),
            ..Default::default()
        }
    }

    #[test]
    fn every_app_server_gets_the_keys_one_of_them_already_has() {
        let push = kept_keys(&[app_with_key(None)]).unwrap();
        let mut keeper = app_with_key(Some("kept"));
        keeper.tls_push_key = Some(push.tls_push_key.clone());
        // A new app server joining app1, and app1 reinstalled while app2 kept its keys.
        for discoveries in [
            vec![keeper.clone(), app_with_key(None)],
            vec![app_with_key(None), keeper.clone()],
        ] {
            let kept = kept_keys(&discoveries).unwrap();
            assert_eq!(kept.secret_key.expose(), "kept");
            assert_eq!(kept.tls_push_key, push.tls_push_key);
            assert_eq!(kept.tls_push_public, push.tls_push_public);
        }
    }

    #[test]
    fn fresh_servers_share_new_keys() {
        let kept = kept_keys(&[app_with_key(None), app_with_key(None)]).unwrap();
        let other = kept_keys(&[app_with_key(None)]).unwrap();
        assert_eq!(kept.secret_key.expose().len(), 64);
        assert_ne!(kept.secret_key, other.secret_key);
        assert_ne!(kept.tls_push_key, other.tls_push_key);
        assert!(kept.tls_push_public.starts_with("ssh-ed25519 "));
        assert!(
            kept.tls_push_key
                .expose()
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
        );
    }
}
