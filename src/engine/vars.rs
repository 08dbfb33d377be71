//! `Vars`: the variables every template and playbook field is rendered with, derived from the
//! config (never typed twice), the server being rendered and what is known about that host.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::app::vars::{BrokerVars, ProcessVars};
use crate::backup::vars::BackupVars;
use crate::config::secret::{RunSecrets, Secret};
use crate::config::servers::url_host;
use crate::config::{Config, Server};
use crate::postgres::vars::{DbVars, PgVars};
use crate::tls::vars::TlsVars;

/// Facts about a host that change what is rendered. Offline, `HostFacts::assumed()` gives
/// Debian 12's values; the engine reads the real ones from the host.
#[derive(Clone, Debug, Serialize)]
pub struct HostFacts {
    pub postgres_version: String,
    /// The db server's machine (`Machine::assumed()` offline).
    pub machine: crate::postgres::tuning::Machine,
}

impl HostFacts {
    pub fn assumed() -> Self {
        HostFacts {
            postgres_version: "15".into(),
            machine: crate::postgres::tuning::Machine::assumed(),
        }
    }
}

/// Secret values, or the placeholders shown instead of them.
#[derive(Clone, Serialize)]
pub struct Secrets {
    pub db_password: String,
    pub secret_key: String,
    /// `postgres://role:password@host:port/name`, the password percent-encoded (for
    /// dj-database-url and django-environ).
    pub database_url: String,
    /// `django.secret_env`'s values.
    pub env: BTreeMap<String, String>,
    /// tls.mode files: the chain and its key, as nginx reads them.
    pub tls_certificate: String,
    pub tls_key: String,
    /// `tls.ca_certificate`'s roots (public; kept with the secrets because they are read
    /// from the operator's files at run time).
    pub tls_ca_certificate: String,
    /// tls.mode acme: the issuer's SSH key (OpenSSH private key) for handing the certificate
    /// to the other app servers, and its public half as their authorized_keys line.
    pub tls_push_key: String,
    pub tls_push_public: String,
    /// The variables of lego's DNS provider (tls.acme.dns), secrets included.
    pub tls_dns_env: BTreeMap<String, String>,
    /// The backup repository's encryption passphrase (`backup.encryption_key`).
    pub backup_cipher: String,
    /// The key pgBackRest on the db and backup servers reaches the other with (OpenSSH
    /// private key, kept on both), and its public half.
    pub backup_key: String,
    pub backup_public: String,
    /// Redis's password (`broker.password`) and the URL the app reaches it with.
    pub broker_password: String,
    pub broker_url: String,
    /// A database cluster's replication and pg_rewind roles' passwords, derived from the
    /// database password (`cluster::vars::derived_password`).
    pub replication_password: String,
    pub rewind_password: String,
    /// The other side of the backup link's host key as a known_hosts line (`<ip> <key>`),
    /// "" when that server is not in the run. Public; read from the servers at plan time.
    pub backup_known_host: String,
}

impl Secrets {
    /// Placeholders that say where each secret comes from, for render and plan output.
    pub fn redacted(config: &Config) -> Self {
        let from = config.database.password.describe();
        Secrets {
            database_url: format!("<redacted: postgres:// URL with the password from {from}>"),
            db_password: format!("<redacted: from {from}>"),
            secret_key: "<redacted: generated once on the app server and kept>".into(),
            env: config
                .django
                .secret_env
                .iter()
                .map(|(name, source)| {
                    (
                        name.clone(),
                        format!("<redacted: from {}>", source.describe()),
                    )
                })
                .collect(),
            tls_certificate: "<the certificate chain from tls.certificate>\n".into(),
            tls_key: "<redacted: the key from tls.key>\n".into(),
            tls_ca_certificate: "<the roots from tls.ca_certificate>\n".into(),
            tls_push_key: "<redacted: made once, kept on the app servers>\n".into(),
            tls_push_public: "ssh-ed25519 <made once, kept on the app servers>".into(),
            backup_cipher: match &config.backup {
                Some(b) => format!("<redacted: from {}>", b.encryption_key.describe()),
                None => String::new(),
            },
            backup_key: "<redacted: made once, kept on the db and backup servers>\n".into(),
            backup_public: "ssh-ed25519 <made once, kept on the db and backup servers>".into(),
            backup_known_host: "<the other server's address and its host key, read at plan time>"
                .into(),
            broker_password: match &config.broker {
                Some(b) => format!("<redacted: from {}>", b.password.describe()),
                None => String::new(),
            },
            replication_password: format!("<redacted: derived from {from}>"),
            rewind_password: format!("<redacted: derived from {from}>"),
            broker_url: match &config.broker {
                Some(b) => format!(
                    "<redacted: redis:// URL with the password from {}>",
                    b.password.describe()
                ),
                None => String::new(),
            },
            tls_dns_env: match config.tls.acme().and_then(|a| a.dns.as_ref()) {
                Some(dns) => {
                    let placeholder = |field: &str, source: &crate::config::PasswordSource| {
                        Ok::<_, std::convert::Infallible>(format!(
                            "<redacted: {field} from {}>",
                            source.describe()
                        ))
                    };
                    match dns.env(placeholder) {
                        Ok(env) => env,
                        Err(never) => match never {},
                    }
                }
                None => BTreeMap::new(),
            },
        }
    }

    /// The real values: the run's secrets and the keys the app servers keep.
    pub fn real(config: &Config, run: &RunSecrets, kept: &KeptKeys) -> Self {
        let (tls_certificate, tls_key) = match &run.tls_files {
            Some(files) => (files.certificate.clone(), files.key.expose().to_string()),
            None => (String::new(), String::new()),
        };
        Secrets {
            tls_certificate,
            tls_key,
            tls_ca_certificate: run.tls_ca_certificate.clone(),
            tls_push_key: kept.tls_push_key.expose().to_string(),
            tls_push_public: kept.tls_push_public.clone(),
            backup_cipher: run
                .backup_cipher
                .as_ref()
                .map(|c| c.expose().to_string())
                .unwrap_or_default(),
            backup_key: kept.backup_key.expose().to_string(),
            backup_public: kept.backup_public.clone(),
            backup_known_host: String::new(),
            broker_password: run
                .broker_password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default(),
            broker_url: match (config.broker_server(), &run.broker_password) {
                (Some(server), Some(password)) => broker_url(server.internal_ip, password.expose()),
                _ => String::new(),
            },
            tls_dns_env: run
                .tls_dns_env
                .iter()
                .map(|(name, value)| (name.clone(), value.expose().to_string()))
                .collect(),
            database_url: database_url(config, run.db_password.expose()),
            replication_password: crate::cluster::vars::derived_password(
                run.db_password.expose(),
                &config.project,
                "replication",
            ),
            rewind_password: crate::cluster::vars::derived_password(
                run.db_password.expose(),
                &config.project,
                "rewind",
            ),
            db_password: run.db_password.expose().to_string(),
            secret_key: kept.secret_key.expose().to_string(),
            env: run
                .env
                .iter()
                .map(|(name, value)| (name.clone(), value.expose().to_string()))
                .collect(),
        }
    }
}

/// Secrets tandem makes once and then keeps on the app servers (discovery reads them back),
/// the same on every app server.
pub struct KeptKeys {
    /// Django's SECRET_KEY.
    pub secret_key: Secret,
    /// The SSH key the issuer hands the certificate out with, and its public line.
    pub tls_push_key: Secret,
    pub tls_push_public: String,
    /// The SSH key pgBackRest on the db server and on the backup server reach each other
    /// with (kept on both), and its public line.
    pub backup_key: Secret,
    pub backup_public: String,
    /// The host keys of the db and backup servers in the run, by server name: each pins the
    /// other's (a rebuilt server's new key is taken on the next apply with both in it).
    pub host_keys: BTreeMap<String, String>,
}

/// `redis://:password@host:6379/0`, the password percent-encoded (Celery, django-redis and
/// redis-py read it so).
fn broker_url(ip: IpAddr, password: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    format!(
        "redis://:{}@{}:{}/0",
        utf8_percent_encode(password, NON_ALPHANUMERIC),
        url_host(ip),
        crate::config::processes::REDIS_PORT
    )
}

/// The database URL with `password` percent-encoded, as dj-database-url reads it.
fn database_url(config: &Config, password: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    // A cluster's members as libpq's multi-host list (one port for all); dj-database-url and
    // django-environ pass the host part through as Django's HOST.
    let host = config
        .db_servers()
        .map(|s| url_host(s.internal_ip))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "postgres://{}:{}@{host}:{}/{}",
        utf8_percent_encode(&config.database.role, NON_ALPHANUMERIC),
        utf8_percent_encode(password, NON_ALPHANUMERIC),
        crate::postgres::PORT,
        utf8_percent_encode(&config.database.name, NON_ALPHANUMERIC),
    )
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

/// The `server_names_hash_bucket_size` `names` need, when nginx's default (64) is too small.
/// nginx puts each name in a bucket entry of a pointer, two length bytes and the name,
/// aligned to 8 bytes, and needs one more pointer in the bucket (ngx_hash_init): a bucket of
/// 64 holds names up to 46 characters (measured: 46 passes `nginx -t`, 48 fails).
pub fn server_names_bucket(names: &[String]) -> Option<usize> {
    let longest = names.iter().map(String::len).max()?;
    let entry = (8 + longest + 2).div_ceil(8) * 8;
    let needed = (entry + 8).next_power_of_two();
    (needed > 64).then_some(needed)
}

#[derive(Clone, Debug, Serialize)]
pub struct Vars {
    pub project: String,
    /// The system user that runs the app (named after the project).
    pub user: String,
    pub host: HostVars,
    pub db: DbVars,
    /// `a.b/32` for each app server's internal IP (`/128` for IPv6).
    pub app_cidrs: Vec<String>,
    /// The same for each address in `database.allow`.
    pub allow_cidrs: Vec<String>,
    pub domains: Vec<String>,
    /// nginx `server_name` value.
    pub server_names: String,
    /// nginx's `server_names_hash_bucket_size` when the longest name needs more than nginx's
    /// default (64 on x86_64: a name over 46 characters fails `nginx -t`); else none, so an
    /// operator's own setting in nginx.conf is not duplicated.
    pub server_names_bucket: Option<usize>,
    /// Django `ALLOWED_HOSTS` entries: `*.example.com` becomes `.example.com`.
    pub allowed_hosts: Vec<String>,
    /// Django `CSRF_TRUSTED_ORIGINS`: each domain with the scheme it is served on (a wildcard
    /// as Django writes it, `https://*.example.com`).
    pub csrf_trusted_origins: Vec<String>,
    /// The env file variables whose values plans may show: tandem's own that are not secret,
    /// and `django.env`'s. Every other value in a secret file is masked in diffs.
    pub public_env: Vec<String>,
    pub django: DjangoVars,
    pub paths: Paths,
    pub units: Units,
    pub ssh: SshVars,
    pub pg: PgVars,
    pub tls: TlsVars,
    pub backup: BackupVars,
    pub processes: ProcessVars,
    pub broker: BrokerVars,
    pub cluster: crate::cluster::vars::ClusterVars,
    pub secrets: Secrets,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostVars {
    pub name: String,
    pub fqdn: String,
    pub internal_ip: String,
    pub role: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct DjangoVars {
    pub wsgi_module: String,
    pub settings_module: String,
    pub workers: u16,
    pub static_url: String,
    /// Where a release's static files are, below its directory: `PUBLIC` then `static_url`
    /// (nginx serves `<release>/.tandem-public$uri`), e.g. `.tandem-public/static`.
    pub static_dir: String,
    pub media_url: String,
    pub multi_tenant: bool,
    /// `django.env`: settings shown in plans.
    pub env: BTreeMap<String, String>,
}

/// The directory in each release that nginx serves static files from
/// (`<release>/.tandem-public$uri`), named like the release's other tandem files so that it
/// cannot meet a directory of the project's.
pub const PUBLIC: &str = ".tandem-public";

/// Where things live on an app server.
#[derive(Clone, Debug, Serialize)]
pub struct Paths {
    pub root: String,
    pub releases: String,
    pub current: String,
    /// The bridge unit's release: the one a switch brings in when the service serves, then
    /// `current`'s once the switch is done.
    pub next: String,
    /// Each release's static files are its own (collected when it is taken live), so a
    /// rollback brings its static files back with its code; the release `current` replaced,
    /// whose files pages loaded before the switch may still ask for, is `previous`.
    pub previous: String,
    /// `PUBLIC`: a directory name below each release.
    pub public: String,
    pub media_root: String,
    pub env_file: String,
    /// tandem's gunicorn settings (`--config`), read by the app user: not in the root-only
    /// `/etc/{project}`.
    pub gunicorn_conf: String,
    pub socket: String,
}

impl Paths {
    /// The paths of project `project` (they depend on nothing else, so discovery can use them
    /// before the host's other variables are known).
    pub fn of(project: &str) -> Paths {
        let root = format!("/srv/{project}");
        Paths {
            releases: format!("{root}/releases"),
            current: format!("{root}/current"),
            next: format!("{root}/next"),
            previous: format!("{root}/previous"),
            public: PUBLIC.to_string(),
            media_root: format!("{root}/media"),
            env_file: format!("/etc/{project}/env"),
            gunicorn_conf: format!("/etc/gunicorn-{project}.conf.py"),
            socket: format!("/run/gunicorn-{project}.sock"),
            root,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Units {
    pub socket: String,
    pub service: String,
    /// A second gunicorn on the same socket, on `next`: it and the service take turns, one
    /// serving, the other started on the new release at each switch (scripts/release/switch.sh).
    pub bridge: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct SshVars {
    pub port: u16,
    pub deploy_user: String,
}

impl Vars {
    /// `DJANGO_STATIC_ROOT` for the release in `release_dir` (a path, or a shell word such as
    /// `"$R"`): where its collectstatic writes and its Django reads the manifest from. Set per
    /// gunicorn unit and per manage.py run, never in the env file (systemd lets the env file
    /// win over a unit's `Environment=`).
    pub fn static_root_in(&self, release_dir: &str) -> String {
        format!("{release_dir}/{}", self.django.static_dir)
    }

    /// An app server's variables where only its paths, user and unit names are needed
    /// (rollback, verify): no PostgreSQL version, secrets redacted.
    pub fn for_paths(config: &Config, server: &Server) -> Self {
        Vars::new(
            config,
            server,
            &HostFacts {
                postgres_version: String::new(),
                machine: crate::postgres::tuning::Machine::assumed(),
            },
            Secrets::redacted(config),
        )
    }

    pub fn new(config: &Config, server: &Server, facts: &HostFacts, secrets: Secrets) -> Self {
        let project = config.project.clone();
        let tuning = crate::postgres::tuning::settings(
            &facts.machine,
            config.demand(),
            &config.database.settings,
        );
        Vars {
            user: project.clone(),
            host: HostVars {
                name: server.name.clone(),
                fqdn: server.fqdn.clone(),
                internal_ip: server.internal_ip.to_string(),
                role: server.role.as_str().into(),
            },
            db: DbVars {
                name: config.database.name.clone(),
                role: config.database.role.clone(),
                host: config
                    .db_servers()
                    .map(|s| s.internal_ip.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                port: crate::postgres::PORT,
            },
            app_cidrs: config
                .app_servers()
                .map(|s| host_cidr(s.internal_ip))
                .collect(),
            allow_cidrs: config
                .database
                .allow
                .iter()
                .map(|ip| host_cidr(*ip))
                .collect(),
            domains: config.domains.clone(),
            server_names: config.domains.join(" "),
            server_names_bucket: server_names_bucket(&config.domains),
            allowed_hosts: config
                .domains
                .iter()
                .map(|d| match d.strip_prefix('*') {
                    Some(rest) => rest.to_string(),
                    None => d.clone(),
                })
                .collect(),
            django: DjangoVars {
                wsgi_module: config.django.wsgi_module.clone(),
                settings_module: config.django.settings_module.clone(),
                workers: config.django.workers,
                static_url: config.django.static_url.clone(),
                static_dir: format!("{PUBLIC}{}", config.django.static_url.trim_end_matches('/')),
                media_url: config.django.media_url.clone(),
                multi_tenant: config.django.is_multi_tenant(),
                env: config.django.env.clone(),
            },
            // The scheme the site is served on: https only once HTTPS is on.
            csrf_trusted_origins: config
                .domains
                .iter()
                .map(|d| match config.tls.enabled() {
                    true => format!("https://{d}"),
                    false => format!("http://{d}"),
                })
                .collect(),
            public_env: crate::config::TANDEM_ENV
                .iter()
                .filter(|name| !SECRET_ENV.contains(name))
                .map(|name| name.to_string())
                .chain(config.django.env.keys().cloned())
                .collect(),
            paths: Paths::of(&project),
            units: Units {
                socket: format!("gunicorn-{project}.socket"),
                service: format!("gunicorn-{project}.service"),
                bridge: format!("gunicorn-{project}-bridge.service"),
            },
            ssh: SshVars {
                port: config.ssh.port,
                deploy_user: config.ssh.deploy_user.clone(),
            },
            pg: PgVars {
                conf_dir: crate::model::platform::postgres_conf_dir(&facts.postgres_version),
                version: facts.postgres_version.clone(),
                machine: facts.machine.describe(),
                tuning: tuning.clone(),
            },
            tls: TlsVars::of(config, server),
            backup: BackupVars::of(config, server, &facts.postgres_version),
            processes: ProcessVars::of(config, server),
            broker: BrokerVars::of(config, server),
            cluster: crate::cluster::vars::ClusterVars::of(
                config,
                server,
                &facts.postgres_version,
                &tuning,
            ),
            secrets,
            project,
        }
    }
}

/// tandem's own env file variables whose values are secret.
const SECRET_ENV: &[&str] = &[
    "DJANGO_SECRET_KEY",
    "DATABASE_PASSWORD",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
];

pub use crate::config::servers::host_cidr;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_bucket_fits_the_longest_domain_as_nginx_measured() {
        // Measured with nginx 1.22 (`nginx -t`, two servers on one port): a name of 46
        // characters fits the default 64, 47 needs 128; 110 fits 128, 111 needs 256.
        let bucket = |len: usize| server_names_bucket(&["a".repeat(len)]);
        assert_eq!(bucket(46), None);
        assert_eq!(bucket(47), Some(128));
        assert_eq!(bucket(110), Some(128));
        assert_eq!(bucket(111), Some(256));
        assert_eq!(bucket(253), Some(512));
        assert_eq!(server_names_bucket(&[]), None);
    }
}
