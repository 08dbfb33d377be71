//! `Vars`: the variables every template and playbook field is rendered with, derived from the
//! config (never typed twice), the server being rendered and what is known about that host.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::config::{Config, Server};
use crate::secret::RunSecrets;

/// Facts about a host that change what is rendered. Offline, `HostFacts::assumed()` gives
/// Debian 12's values; the engine reads the real ones from the host.
#[derive(Clone, Debug, Serialize)]
pub struct HostFacts {
    pub postgres_version: String,
}

impl HostFacts {
    pub fn assumed() -> Self {
        HostFacts {
            postgres_version: "15".into(),
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
        }
    }

    /// The real values: the run's secrets and the SECRET_KEY the app server keeps.
    pub fn real(config: &Config, run: &RunSecrets, secret_key: String) -> Self {
        Secrets {
            database_url: database_url(config, run.db_password.expose()),
            db_password: run.db_password.expose().to_string(),
            secret_key,
            env: run
                .env
                .iter()
                .map(|(name, value)| (name.clone(), value.expose().to_string()))
                .collect(),
        }
    }
}

/// The database URL with `password` percent-encoded, as dj-database-url reads it.
fn database_url(config: &Config, password: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let db = config.db_server();
    let host = match db.internal_ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
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
    /// Django `ALLOWED_HOSTS` entries: `*.example.com` becomes `.example.com`.
    pub allowed_hosts: Vec<String>,
    /// Django `CSRF_TRUSTED_ORIGINS`: each domain with http:// and https:// (a wildcard as
    /// Django writes it, `https://*.example.com`).
    pub csrf_trusted_origins: Vec<String>,
    /// The env file variables whose values plans may show: tandem's own that are not secret,
    /// and `django.env`'s. Every other value in a secret file is masked in diffs.
    pub public_env: Vec<String>,
    pub django: DjangoVars,
    pub paths: Paths,
    pub units: Units,
    pub ssh: SshVars,
    pub pg: PgVars,
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
pub struct DbVars {
    pub name: String,
    pub role: String,
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug, Serialize)]
pub struct DjangoVars {
    pub wsgi_module: String,
    pub settings_module: String,
    pub workers: u16,
    pub static_url: String,
    pub media_url: String,
    pub multi_tenant: bool,
    /// `django.env`: settings shown in plans.
    pub env: BTreeMap<String, String>,
}

/// Where things live on an app server.
#[derive(Clone, Debug, Serialize)]
pub struct Paths {
    pub root: String,
    pub releases: String,
    pub current: String,
    pub static_root: String,
    pub media_root: String,
    pub env_file: String,
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
            static_root: format!("{root}/static"),
            media_root: format!("{root}/media"),
            env_file: format!("/etc/{project}/env"),
            socket: format!("/run/gunicorn-{project}.sock"),
            root,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Units {
    pub socket: String,
    pub service: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct SshVars {
    pub port: u16,
    pub deploy_user: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PgVars {
    pub version: String,
    /// Debian/Ubuntu's cluster configuration directory.
    pub conf_dir: String,
}

impl Vars {
    /// An app server's variables where only its paths, user and unit names are needed
    /// (rollback, verify): no PostgreSQL version, secrets redacted.
    pub fn for_paths(config: &Config, server: &Server) -> Self {
        Vars::new(
            config,
            server,
            &HostFacts {
                postgres_version: String::new(),
            },
            Secrets::redacted(config),
        )
    }

    pub fn new(config: &Config, server: &Server, facts: &HostFacts, secrets: Secrets) -> Self {
        let project = config.project.clone();
        let db = config.db_server();
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
                host: db.internal_ip.to_string(),
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
                media_url: config.django.media_url.clone(),
                multi_tenant: config.django.is_multi_tenant(),
                env: config.django.env.clone(),
            },
            csrf_trusted_origins: config
                .domains
                .iter()
                .flat_map(|d| [format!("http://{d}"), format!("https://{d}")])
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
            },
            ssh: SshVars {
                port: config.ssh.port,
                deploy_user: config.ssh.deploy_user.clone(),
            },
            pg: PgVars {
                conf_dir: format!("/etc/postgresql/{}/main", facts.postgres_version),
                version: facts.postgres_version.clone(),
            },
            secrets,
            project,
        }
    }
}

/// tandem's own env file variables whose values are secret.
const SECRET_ENV: &[&str] = &["DJANGO_SECRET_KEY", "DATABASE_PASSWORD", "DATABASE_URL"];

/// The single-address network of `ip`, as pg_hba.conf and ufw write it.
pub fn host_cidr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}
