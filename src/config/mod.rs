//! `Config`: tandem.yml parsed and validated. The one place where user input becomes trusted;
//! every problem is reported with file:line:column, the field and the fix.

pub mod diagnostic;
pub mod identifier;
pub mod local_file;
pub mod pem;
pub mod secret;
pub mod yaml;

use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::config::diagnostic::{Diagnostic, Diagnostics, Source};
use crate::config::yaml::{Position, Spanned};

pub mod backup;
pub mod destination;
pub mod processes;
pub mod tls;
pub use backup::Backup;
pub use destination::Destination;
pub use processes::{Broker, Process};
pub use tls::{Tls, TlsMode};

/// A server's job in the topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Db,
    App,
    /// Holds the database's backup repository.
    Backup,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Db => "db",
            Role::App => "app",
            Role::Backup => "backup",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Server {
    pub name: String,
    pub role: Role,
    /// What tandem hands to `ssh`: `user@host[:port]` or an ~/.ssh/config alias.
    pub ssh: String,
    pub fqdn: String,
    pub internal_ip: IpAddr,
}

/// Where the database password comes from; tandem.yml never holds the value itself.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordSource {
    /// The name of an environment variable.
    Env(String),
    /// A file whose first line is the password (relative paths are from tandem.yml's directory).
    File(PathBuf),
}

impl PasswordSource {
    /// Where the secret lives, for messages and redactions; never the secret.
    pub fn describe(&self) -> String {
        match self {
            PasswordSource::Env(name) => format!("${name}"),
            PasswordSource::File(path) => format!("file {}", path.display()),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Database {
    pub name: String,
    pub role: String,
    pub password: PasswordSource,
    pub extensions: Vec<String>,
    pub superuser: bool,
    /// Machines besides the app servers that may reach the database (a BI tool, a bastion):
    /// each gets a pg_hba line in tandem's block and a ufw rule, like an app server.
    pub allow: Vec<IpAddr>,
    /// PostgreSQL settings that override the derived ones (`postgres::tuning`), as written.
    pub settings: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrateCommand {
    /// Plain Django.
    Migrate,
    /// django-tenants / django-tenant-schemas: `migrate_schemas --shared`, then the tenants.
    MigrateSchemas,
}

#[derive(Clone, Debug, Serialize)]
pub struct Django {
    pub source: PathBuf,
    pub wsgi_module: String,
    pub settings_module: String,
    pub requirements: String,
    pub workers: u16,
    pub static_url: String,
    pub media_url: String,
    pub migrate: MigrateCommand,
    /// Settings for the app's env file, shown in plans and diffs.
    pub env: BTreeMap<String, String>,
    /// Secrets for the app's env file: where each value comes from, never the value.
    pub secret_env: BTreeMap<String, PasswordSource>,
}

/// The longest `django.env` value, in bytes. Every Django process, unit and root script gets
/// the env file in its environment; Linux refuses to start a program with a single variable
/// over 128 KiB ("Argument list too long"), and all of them together must share 2 MiB with
/// the arguments.
pub const ENV_VALUE_LIMIT: usize = 32 * 1024;

/// The most `django.env` may hold in all, in bytes (names and values).
pub const ENV_TOTAL_LIMIT: usize = 256 * 1024;

/// PostgreSQL's largest max_connections (its MAX_BACKENDS).
const MAX_CONNECTIONS_LIMIT: u32 = 262_143;

/// The env file variables tandem writes itself; `django.env` and `django.secret_env` cannot
/// set them.
pub const TANDEM_ENV: &[&str] = &[
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_STATIC_ROOT",
    "DJANGO_MEDIA_ROOT",
    "DATABASE_HOST",
    "DATABASE_PORT",
    "DATABASE_NAME",
    "DATABASE_USER",
    "DATABASE_PASSWORD",
    "DATABASE_URL",
    "CSRF_TRUSTED_ORIGINS",
    "DJANGO_HTTPS",
    "DJANGO_HSTS_SECONDS",
    "REDIS_URL",
    "CELERY_BROKER_URL",
];

impl Django {
    pub fn is_multi_tenant(&self) -> bool {
        self.migrate == MigrateCommand::MigrateSchemas
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SshSettings {
    pub deploy_user: String,
    /// Public keys installed for the deploy user (literal lines, files already read).
    pub authorized_keys: Vec<String>,
    pub port: u16,
}

/// A validated tandem.yml.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// The file it was read from; relative paths inside are resolved against its directory.
    pub path: PathBuf,
    pub project: String,
    pub servers: Vec<Server>,
    pub domains: Vec<String>,
    pub database: Database,
    pub django: Django,
    pub ssh: SshSettings,
    pub tls: Tls,
    /// Backups of the database, when `backup:` asks for them.
    pub backup: Option<Backup>,
    /// Background processes on the app servers (`processes:`).
    pub processes: Vec<Process>,
    /// The Redis the processes take their work from (`broker:`).
    pub broker: Option<Broker>,
}

impl Config {
    pub fn db_server(&self) -> &Server {
        self.servers
            .iter()
            .find(|s| s.role == Role::Db)
            .expect("validated: one db server")
    }

    pub fn app_servers(&self) -> impl Iterator<Item = &Server> {
        self.servers.iter().filter(|s| s.role == Role::App)
    }

    /// The app server that runs the ACME client and hands the certificate to the others: the
    /// first in the config.
    pub fn certificate_issuer(&self) -> Option<&Server> {
        self.app_servers().next()
    }

    /// What the database must serve at once: every app server's gunicorn workers and every
    /// background process's connections.
    pub fn demand(&self) -> crate::postgres::tuning::Demand {
        demand(&self.servers, &self.django, &self.processes)
    }

    /// The server Redis runs on, when there is a broker.
    pub fn broker_server(&self) -> Option<&Server> {
        let broker = self.broker.as_ref()?;
        self.servers.iter().find(|s| s.name == broker.server)
    }

    /// The server that holds the backup repository.
    pub fn backup_server(&self) -> Option<&Server> {
        let backup = self.backup.as_ref()?;
        self.servers.iter().find(|s| s.name == backup.repository)
    }

    /// Everyone who may reach the database: the app servers and `database.allow`.
    pub fn database_clients(&self) -> Vec<IpAddr> {
        self.app_servers()
            .map(|s| s.internal_ip)
            .chain(self.database.allow.iter().copied())
            .collect()
    }
}

/// The database's demand from the servers, gunicorn's workers and the processes (each counted
/// once per server it runs on).
fn demand(
    servers: &[Server],
    django: &Django,
    processes: &[Process],
) -> crate::postgres::tuning::Demand {
    crate::postgres::tuning::Demand {
        app_servers: servers.iter().filter(|s| s.role == Role::App).count() as u32,
        workers: u32::from(django.workers),
        background: processes
            .iter()
            .map(|p| p.db_connections.saturating_mul(p.runs_on().len() as u32))
            .fold(0, u32::saturating_add),
    }
}

/// Whether the node at `path` in tandem.yml holds a secret or says where one lives: a value
/// written there may be the secret itself pasted in, so diagnostics never show it. Decided by
/// the schema (the secret fields and the values of the `secret_env` maps), plus any key whose
/// name says secret or is a secret field's name misspelt.
fn is_secret_field(path: &[yaml::Step], is_mapping: bool) -> bool {
    let keys: Vec<&str> = path
        .iter()
        .map(|step| match step {
            yaml::Step::Key(k) => k.as_str(),
            yaml::Step::Item => "-",
        })
        .collect();
    let named_secret = keys.last().is_some_and(|k| {
        let k = k.to_ascii_lowercase();
        ["pass", "secret", "token", "cipher", "encryption"]
            .iter()
            .any(|w| k.contains(w))
            || ["password", "encryption_key", "tsig_secret"]
                .iter()
                .any(|name| strsim::levenshtein(&k, name) <= 2)
    });
    match keys.as_slice() {
        ["database" | "broker", "password"]
        | ["backup", "encryption_key"]
        | ["tls", "key"]
        | ["tls", "acme", "dns", "rfc2136", "tsig_secret"]
        | ["django", "secret_env", _]
        | ["tls", "acme", "dns", "lego", "secret_env", _] => true,
        // A secret_env that is not a map is a mistake that may hold the values themselves.
        ["django", "secret_env"] | ["tls", "acme", "dns", "lego", "secret_env"] => !is_mapping,
        _ => named_secret && !is_mapping,
    }
}

/// A loaded config plus the warnings found while validating it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Reads and validates `path`.
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (create one with `tandem init`)", path.display()))?;
    parse(path, &text).map_err(anyhow::Error::new)
}

/// Parses and validates `text` as if read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Loaded, Diagnostics> {
    let source = Source {
        text,
        secrets: yaml::Secrets::find(text, is_secret_field),
    };
    let raw: raw::Config = yaml::parse(text).map_err(|err| {
        let line = (err.position.line as usize)
            .checked_sub(1)
            .and_then(|i| text.lines().nth(i))
            .unwrap_or("");
        let (message, fix) = explain_parse_error(&err.message, line);
        let mut d = Diagnostic::error(path, &source, err.position, "", message);
        if let Some(fix) = fix {
            d = d.fix(fix);
        }
        Diagnostics(vec![d])
    })?;
    let mut v = Validator {
        path,
        source,
        found: Vec::new(),
    };
    let config = v.config(raw);
    let diagnostics = Diagnostics(v.found);
    match config {
        Some(config) if !diagnostics.has_errors() => Ok(Loaded {
            config,
            warnings: diagnostics.0,
        }),
        _ => Err(diagnostics),
    }
}

/// The file that Python module `module` (dotted) is in below `source`, if there is one.
fn python_module_file(source: &Path, module: &str) -> Option<PathBuf> {
    let path = source.join(module.replace('.', "/"));
    [path.with_extension("py"), path.join("__init__.py")]
        .into_iter()
        .find(|p| p.is_file())
}

/// Turns serde-saphyr's message into tandem's: no trailing position (the header has it), a
/// "did you mean" for unknown fields and values, and a fix that fits the field on `line` (the
/// source line the error points at).
fn explain_parse_error(message: &str, line: &str) -> (String, Option<String>) {
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    for (prefix, what) in [("unknown field `", "field"), ("unknown variant `", "value")] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        if let Some((field, expected)) = rest.split_once("`, expected one of ") {
            let candidates: Vec<&str> = expected.split(", ").collect();
            // A typo, not another word: at most one edit in three letters (`web` is not `db`).
            let best = candidates
                .iter()
                .map(|c| (strsim::damerau_levenshtein(field, c), *c))
                .min()
                .filter(|(distance, c)| *distance * 3 <= field.len().max(c.len()));
            let fix = match best {
                Some((_, name)) => format!("did you mean `{name}`? (allowed here: {expected})"),
                None if what == "field" => format!("remove it; allowed here: {expected}"),
                None => format!("write one of: {expected}"),
            };
            return (format!("unknown {what} `{field}`"), Some(fix));
        }
    }
    if let Some(field) = message.strip_prefix("missing field `") {
        let field = field.trim_end_matches('`');
        return (
            format!("missing field `{field}`"),
            Some(format!(
                "add `{field}:` here (see `tandem init` for a commented example)"
            )),
        );
    }
    if message.contains("found a tab") {
        return (
            "a tab character, where YAML needs spaces".to_string(),
            Some("indent with spaces: YAML does not allow tabs there".to_string()),
        );
    }
    let key = line
        .trim_start()
        .trim_start_matches("- ")
        .split(':')
        .next()
        .unwrap_or("")
        .trim();
    let fix = if message.starts_with("invalid u") || message.starts_with("invalid i") {
        match key {
            "port" => "write a port number, 1-65535",
            "workers" => "write a whole number of gunicorn workers, 1-64 (2 x cores + 1)",
            _ => "write a whole number",
        }
    } else if message.contains("mapping") {
        "this field takes `key: value` lines indented below it"
    } else if message.contains("sequence") {
        "this field takes a list, e.g. [a, b] or `- a` lines"
    } else if message.contains("bool") {
        "write true or false"
    } else {
        "correct the YAML at this position; `tandem init` writes a valid example"
    };
    (message.to_string(), Some(fix.to_string()))
}

/// The file as written, with positions for every value that is checked after parsing.
mod raw {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Config {
        pub project: Spanned<String>,
        pub servers: Spanned<Vec<Server>>,
        pub domains: Spanned<Vec<Spanned<String>>>,
        pub database: Database,
        pub django: Django,
        pub ssh: Ssh,
        pub tls: Option<Spanned<super::tls::raw::Tls>>,
        pub backup: Option<Spanned<super::backup::raw::Backup>>,
        #[serde(default)]
        pub processes: Vec<super::processes::raw::Process>,
        pub broker: Option<Spanned<super::processes::raw::Broker>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Server {
        pub name: Spanned<String>,
        pub role: Spanned<Role>,
        pub ssh: Spanned<String>,
        pub fqdn: Spanned<String>,
        pub internal_ip: Spanned<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Database {
        pub name: Spanned<String>,
        pub role: Spanned<String>,
        pub password: Spanned<PasswordSource>,
        #[serde(default)]
        pub extensions: Vec<Spanned<String>>,
        pub superuser: Option<Spanned<bool>>,
        #[serde(default)]
        pub allow: Vec<Spanned<String>>,
        #[serde(default)]
        pub settings: BTreeMap<String, Spanned<SettingValue>>,
    }

    /// A postgresql.conf value as YAML gives it: `200`, `0.9`, `off` or `'64MB'`.
    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum SettingValue {
        Int(i64),
        Float(f64),
        Bool(bool),
        Text(String),
    }

    impl SettingValue {
        pub fn text(&self) -> String {
            match self {
                SettingValue::Int(n) => n.to_string(),
                SettingValue::Float(x) => x.to_string(),
                SettingValue::Bool(b) => if *b { "on" } else { "off" }.to_string(),
                SettingValue::Text(t) => t.clone(),
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Django {
        pub source: Spanned<String>,
        pub wsgi_module: Spanned<String>,
        pub settings_module: Spanned<String>,
        #[serde(default = "default_requirements")]
        pub requirements: Spanned<String>,
        #[serde(default = "default_workers")]
        pub workers: Spanned<u16>,
        #[serde(default = "default_static_url")]
        pub static_url: Spanned<String>,
        #[serde(default = "default_media_url")]
        pub media_url: Spanned<String>,
        #[serde(default = "default_migrate")]
        pub migrate: MigrateCommand,
        #[serde(default)]
        pub env: BTreeMap<String, Spanned<String>>,
        #[serde(default)]
        pub secret_env: BTreeMap<String, Spanned<PasswordSource>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Ssh {
        #[serde(default = "default_deploy_user")]
        pub deploy_user: Spanned<String>,
        #[serde(default)]
        pub authorized_keys: Vec<Spanned<String>>,
        #[serde(default)]
        pub authorized_key_files: Vec<Spanned<String>>,
        #[serde(default = "default_ssh_port")]
        pub port: Spanned<u16>,
    }

    fn unplaced<T>(value: T) -> Spanned<T> {
        Spanned::new(
            value,
            serde_saphyr::Location::UNKNOWN,
            serde_saphyr::Location::UNKNOWN,
        )
    }
    fn default_requirements() -> Spanned<String> {
        unplaced("requirements.txt".into())
    }
    fn default_workers() -> Spanned<u16> {
        unplaced(3)
    }
    fn default_static_url() -> Spanned<String> {
        unplaced("/static/".into())
    }
    fn default_media_url() -> Spanned<String> {
        unplaced("/media/".into())
    }
    fn default_migrate() -> MigrateCommand {
        MigrateCommand::Migrate
    }
    fn default_deploy_user() -> Spanned<String> {
        unplaced("deploy".into())
    }
    fn default_ssh_port() -> Spanned<u16> {
        unplaced(22)
    }
}

struct Validator<'a> {
    path: &'a Path,
    source: Source<'a>,
    found: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn error<T>(&mut self, at: &Spanned<T>, field: &str, message: String, fix: &str) {
        let d =
            Diagnostic::error(self.path, &self.source, Position::of(at), field, message).fix(fix);
        self.found.push(d);
    }

    fn warning<T>(&mut self, at: &Spanned<T>, field: &str, message: String, fix: &str) {
        let d =
            Diagnostic::warning(self.path, &self.source, Position::of(at), field, message).fix(fix);
        self.found.push(d);
    }

    fn safe_name(&mut self, value: &Spanned<String>, field: &str) -> String {
        if !identifier::is_safe_name(&value.value) {
            self.error(
                value,
                field,
                format!("`{}` is not a safe name", value.value),
                "use a lowercase letter, then lowercase letters, digits or `_` (at most 31); \
                 it becomes a SQL, shell and file name",
            );
        }
        value.value.clone()
    }

    fn config(&mut self, raw: raw::Config) -> Option<Config> {
        let project = self.safe_name(&raw.project, "project");
        if identifier::SYSTEM_ACCOUNTS.contains(&project.as_str()) {
            self.error(
                &raw.project,
                "project",
                format!("`{project}` is a system account: the project's user would take it over"),
                "name the project after the app, e.g. `timesheet`",
            );
        }
        let servers = self.servers(&raw.servers);
        let domains = self.domains(&raw.domains);
        let raw_settings: Option<Spanned<raw::SettingValue>> =
            raw.database.settings.get("max_connections").map(|v| {
                Spanned::new(
                    raw::SettingValue::Text(v.value.text()),
                    v.referenced,
                    v.defined,
                )
            });
        let database = self.database(raw.database, servers.as_deref().unwrap_or_default());
        let django = self.django(raw.django, &domains, &raw.domains);
        let ssh = self.ssh(raw.ssh, &project);
        let tls = self.tls(raw.tls, &domains, &raw.domains);
        let processes = self.processes(raw.processes, servers.as_deref().unwrap_or_default());
        let broker = self.broker(raw.broker, servers.as_deref().unwrap_or_default());
        if let (Some(servers), Some(django)) = (&servers, &django) {
            self.connection_budget(&raw_settings, &demand(servers, django, &processes));
        }
        let backup = match &servers {
            Some(servers) => self.backup(raw.backup, servers, &raw.servers),
            None => None,
        };
        Some(Config {
            path: self.path.to_path_buf(),
            project,
            servers: servers?,
            domains,
            database,
            django: django?,
            ssh,
            tls,
            backup,
            processes,
            broker,
        })
    }

    fn servers(&mut self, raw: &Spanned<Vec<raw::Server>>) -> Option<Vec<Server>> {
        let mut servers = Vec::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut ips: HashMap<IpAddr, String> = HashMap::new();
        let mut destinations: HashMap<&str, &str> = HashMap::new();
        let mut fqdns: HashMap<String, &str> = HashMap::new();
        for (i, s) in raw.value.iter().enumerate() {
            let at = |f: &str| format!("servers[{i}].{f}");
            if !identifier::is_server_name(&s.name.value) {
                self.error(
                    &s.name,
                    &at("name"),
                    format!("`{}` is not a valid server name", s.name.value),
                    "use lowercase letters, digits and `-` (like a host name label), e.g. `app1`",
                );
            } else if let Some(first) = names.insert(&s.name.value, i) {
                self.error(
                    &s.name,
                    &at("name"),
                    format!(
                        "server name `{}` is used twice (also servers[{first}])",
                        s.name.value
                    ),
                    "give every server its own name",
                );
            }
            let destination = Destination::parse(&s.ssh.value).and_then(|_| {
                if identifier::is_ssh_destination(&s.ssh.value) {
                    Ok(())
                } else {
                    Err("only letters, digits and `.-_@:[]` may appear".to_string())
                }
            });
            if let Err(why) = destination {
                self.error(
                    &s.ssh,
                    &at("ssh"),
                    format!("`{}` is not an SSH destination: {why}", s.ssh.value),
                    "write user@host, user@host:port, user@[fd00::3]:port or an alias from ~/.ssh/config",
                );
            } else if let Some(other) = destinations.insert(&s.ssh.value, &s.name.value) {
                self.error(
                    &s.ssh,
                    &at("ssh"),
                    format!("`{}` is also the ssh destination of server `{other}`", s.ssh.value),
                    "every server needs its own destination: two entries for one machine would fight over it",
                );
            }
            if !identifier::is_fqdn(&s.fqdn.value) {
                self.error(
                    &s.fqdn,
                    &at("fqdn"),
                    format!("`{}` is not a fully qualified domain name", s.fqdn.value),
                    "write the server's full host name, e.g. db.example.com; it becomes the hostname",
                );
            } else {
                let fqdn = s.fqdn.value.trim_end_matches('.').to_ascii_lowercase();
                if let Some(other) = fqdns.insert(fqdn, &s.name.value) {
                    self.error(
                        &s.fqdn,
                        &at("fqdn"),
                        format!("`{}` is also the fqdn of server `{other}`", s.fqdn.value),
                        "every server needs its own host name",
                    );
                }
            }
            let ip = match s.internal_ip.value.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => {
                    self.error(
                        &s.internal_ip,
                        &at("internal_ip"),
                        format!("`{}` is not an IP address", s.internal_ip.value),
                        "write the server's private address on the internal network, e.g. 10.0.0.3",
                    );
                    continue;
                }
            };
            if let Err(why) = usable_internal(ip) {
                self.error(
                    &s.internal_ip,
                    &at("internal_ip"),
                    format!("{ip} {why}"),
                    "write the address other servers reach this one on, e.g. 10.0.0.3",
                );
            } else if !is_private(ip) {
                self.warning(
                    &s.internal_ip,
                    &at("internal_ip"),
                    format!("{ip} is a public address: database traffic would cross the internet"),
                    "use the servers' private network (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)",
                );
            }
            if let Some(other) = ips.insert(ip, s.name.value.clone()) {
                self.error(
                    &s.internal_ip,
                    &at("internal_ip"),
                    format!("{ip} is also the internal_ip of server `{other}`"),
                    "every server needs its own internal address",
                );
            }
            servers.push(Server {
                name: s.name.value.clone(),
                role: s.role.value,
                ssh: s.ssh.value.clone(),
                fqdn: s.fqdn.value.trim_end_matches('.').to_string(),
                internal_ip: ip,
            });
        }
        let dbs = raw
            .value
            .iter()
            .filter(|s| s.role.value == Role::Db)
            .count();
        let apps = raw
            .value
            .iter()
            .filter(|s| s.role.value == Role::App)
            .count();
        if dbs != 1 {
            self.error(
                raw,
                "servers",
                format!("{dbs} servers have `role: db`; tandem needs exactly one"),
                "mark exactly one server `role: db`",
            );
        }
        if apps == 0 {
            self.error(
                raw,
                "servers",
                "no server has `role: app`".into(),
                "add at least one server with `role: app`",
            );
        }
        (servers.len() == raw.value.len()).then_some(servers)
    }

    fn domains(&mut self, raw: &Spanned<Vec<Spanned<String>>>) -> Vec<String> {
        if raw.value.is_empty() {
            self.error(
                raw,
                "domains",
                "no domains: nginx would answer for nothing".into(),
                "list the host names the site answers for, e.g. [example.com, www.example.com]",
            );
        }
        let mut seen = Vec::new();
        let mut unique = HashSet::new();
        for (i, d) in raw.value.iter().enumerate() {
            let name = d.value.trim_end_matches('.').to_ascii_lowercase();
            if !identifier::is_domain(&name) {
                self.error(
                    d,
                    &format!("domains[{i}]"),
                    format!("`{}` is not a domain name", d.value),
                    "write a host name such as example.com, or *.example.com for tenant subdomains",
                );
            } else if !unique.insert(name.clone()) {
                self.error(
                    d,
                    &format!("domains[{i}]"),
                    format!("domain `{name}` is listed twice"),
                    "remove the duplicate",
                );
            } else {
                seen.push(name);
            }
        }
        seen
    }

    fn database(&mut self, raw: raw::Database, servers: &[Server]) -> Database {
        let name = self.safe_name(&raw.name, "database.name");
        let role = self.safe_name(&raw.role, "database.role");
        if let Some(why) = identifier::reserved_role(&role) {
            self.error(
                &raw.role,
                "database.role",
                format!("the app's role cannot be `{role}`: {why}"),
                "use a role of the app's own, e.g. the project name",
            );
        }
        if let Some(why) = identifier::reserved_database(&name) {
            self.error(
                &raw.name,
                "database.name",
                format!("the app's database cannot be `{name}`: {why}"),
                "use a database of the app's own, e.g. the project name",
            );
        }
        match &raw.password.value {
            // The value is not echoed: whoever got this wrong may have pasted the password.
            PasswordSource::Env(var) if !identifier::is_env_name(var) => self.error(
                &raw.password,
                "database.password.env",
                "not an environment variable name (value not shown: it may be a secret)".into(),
                "write the variable's name (letters, digits, `_`), e.g. `env: TANDEM_DB_PASSWORD`, \
                 never the password",
            ),
            PasswordSource::File(path) if path.as_os_str().is_empty() => self.error(
                &raw.password,
                "database.password.file",
                "empty file path".into(),
                "write the path of a file holding the password, e.g. `file: /run/secrets/db`",
            ),
            _ => {}
        }
        let extensions = raw
            .extensions
            .iter()
            .enumerate()
            .map(|(i, e)| {
                if !identifier::is_extension_name(&e.value) {
                    self.error(
                        e,
                        &format!("database.extensions[{i}]"),
                        format!("`{}` is not an extension name", e.value),
                        "write the name as in CREATE EXTENSION, e.g. citext or uuid-ossp",
                    );
                }
                e.value.clone()
            })
            .collect();
        let superuser = raw.superuser.as_ref().is_some_and(|s| s.value);
        if let Some(at) = raw.superuser.as_ref().filter(|s| s.value) {
            self.warning(
                at,
                "database.superuser",
                "the app's role will be a PostgreSQL superuser".into(),
                "list the extensions under `database.extensions` instead: tandem creates them as \
                 postgres, so the role needs no superuser",
            );
        }
        let mut allow = Vec::new();
        for (i, entry) in raw.allow.iter().enumerate() {
            let field = format!("database.allow[{i}]");
            match entry.value.parse::<IpAddr>() {
                Err(_) => self.error(
                    entry,
                    &field,
                    format!("`{}` is not an IP address", entry.value),
                    "list single addresses, e.g. 10.0.0.9 (one line each in pg_hba.conf and ufw)",
                ),
                Ok(ip) if usable_internal(ip).is_err() => {
                    let why = usable_internal(ip).unwrap_err();
                    self.error(
                        entry,
                        &field,
                        format!("{ip} {why}"),
                        "list the machine's own private address",
                    )
                }
                Ok(ip)
                    if servers
                        .iter()
                        .any(|s| s.role == Role::App && s.internal_ip == ip) =>
                {
                    self.error(
                        entry,
                        &field,
                        format!("{ip} is an app server: it is admitted already"),
                        "remove it from `allow`",
                    )
                }
                Ok(ip) if allow.contains(&ip) => self.error(
                    entry,
                    &field,
                    format!("{ip} is listed twice"),
                    "remove the duplicate",
                ),
                Ok(ip) => allow.push(ip),
            }
        }
        let mut settings = BTreeMap::new();
        for (name, value) in &raw.settings {
            let field = format!("database.settings.{name}");
            let text = value.value.text();
            if !crate::postgres::tuning::is_setting_name(name) {
                self.error(
                    value,
                    &field,
                    format!("`{name}` is not a PostgreSQL setting name"),
                    "write the name as postgresql.conf does, e.g. shared_buffers",
                );
            } else if crate::postgres::tuning::MANAGED.contains(&name.as_str()) {
                self.error(
                    value,
                    &field,
                    format!("tandem sets `{name}` itself: who reaches the database depends on it"),
                    "remove it; listen_addresses follows the server's internal_ip, access is in `database.allow`",
                );
            } else if !crate::postgres::tuning::is_setting_value(&text) {
                self.error(
                    value,
                    &field,
                    format!("the value of `{name}` cannot be written into postgresql.conf"),
                    "write a plain value without quotes, `#` or line breaks, e.g. 64MB",
                );
            }
            settings.insert(name.clone(), text);
        }
        Database {
            name,
            role,
            password: raw.password.value,
            extensions,
            superuser,
            allow,
            settings,
        }
    }

    fn django(
        &mut self,
        raw: raw::Django,
        domains: &[String],
        raw_domains: &Spanned<Vec<Spanned<String>>>,
    ) -> Option<Django> {
        for (value, field) in [
            (&raw.wsgi_module, "django.wsgi_module"),
            (&raw.settings_module, "django.settings_module"),
        ] {
            if !identifier::is_python_module(&value.value) {
                self.error(
                    value,
                    field,
                    format!("`{}` is not a Python module path", value.value),
                    "write a dotted module path, e.g. `timesheet.wsgi`",
                );
            }
        }
        let base = self.path.parent().unwrap_or(Path::new("."));
        let source = base.join(&raw.source.value);
        let has_project = source.join("manage.py").is_file();
        if !has_project {
            self.error(
                &raw.source,
                "django.source",
                format!("{} has no manage.py", source.display()),
                "point `source` at your Django project's directory (relative to this file)",
            );
        }
        let requirements = &raw.requirements;
        if requirements.value.starts_with('/') || requirements.value.split('/').any(|p| p == "..") {
            self.error(
                requirements,
                "django.requirements",
                format!("`{}` is outside the project", requirements.value),
                "write a path relative to `django.source`, e.g. requirements.txt",
            );
        } else if has_project && !source.join(&requirements.value).is_file() {
            self.error(
                requirements,
                "django.requirements",
                format!(
                    "{} does not exist",
                    source.join(&requirements.value).display()
                ),
                "name the pip requirements file, relative to `django.source` (every release \
                 installs it; `pip freeze > requirements.txt` writes one)",
            );
        }
        // Only once the source is a Django project: otherwise that error says it all.
        for (value, field) in [
            (&raw.wsgi_module, "django.wsgi_module"),
            (&raw.settings_module, "django.settings_module"),
        ] {
            if has_project
                && identifier::is_python_module(&value.value)
                && python_module_file(&source, &value.value).is_none()
            {
                let path = value.value.replace('.', "/");
                self.error(
                    value,
                    field,
                    format!(
                        "`{}` names no file in {}: neither {path}.py nor {path}/__init__.py",
                        value.value,
                        source.display()
                    ),
                    "write the module's dotted path from `django.source`, as manage.py's \
                     DJANGO_SETTINGS_MODULE does, e.g. `mysite.settings`",
                );
            }
        }
        if raw.workers.value == 0 || raw.workers.value > 64 {
            self.error(
                &raw.workers,
                "django.workers",
                format!("{} gunicorn workers", raw.workers.value),
                "use 2 x cores + 1, between 1 and 64",
            );
        }
        for (value, field) in [
            (&raw.static_url, "django.static_url"),
            (&raw.media_url, "django.media_url"),
        ] {
            let ok = value.value.starts_with('/')
                && value.value.ends_with('/')
                && value.value.len() > 1
                && value
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
            if !ok || value.value.contains("//") || value.value.split('/').any(|p| p == "..") {
                self.error(
                    value,
                    field,
                    format!("`{}` is not a URL path prefix", value.value),
                    "write a path that starts and ends with `/`, without `..` or `//`, e.g. /static/",
                );
            }
        }
        let (static_url, media_url) = (&raw.static_url.value, &raw.media_url.value);
        if static_url.starts_with(media_url.as_str()) || media_url.starts_with(static_url.as_str())
        {
            // Point at whichever of the two the file sets (a default has no line).
            let (at, field) = if Position::of(&raw.media_url).line > 0 {
                (&raw.media_url, "django.media_url")
            } else {
                (&raw.static_url, "django.static_url")
            };
            self.error(
                at,
                field,
                format!("media_url `{media_url}` overlaps static_url `{static_url}`"),
                "give uploads and static files their own prefixes, e.g. /static/ and /media/ \
                 (nginx serves each from its own directory)",
            );
        }
        if raw.migrate == MigrateCommand::MigrateSchemas
            && !domains.iter().any(|d| d.starts_with("*."))
        {
            self.warning(
                raw_domains,
                "domains",
                "multi-tenant project (`migrate: migrate_schemas`) without a wildcard domain"
                    .into(),
                "add `*.example.com` so nginx and ALLOWED_HOSTS answer tenant subdomains",
            );
        }
        let (env, secret_env) = self.app_env(raw.env, raw.secret_env);
        Some(Django {
            env,
            secret_env,
            source,
            wsgi_module: raw.wsgi_module.value,
            settings_module: raw.settings_module.value,
            requirements: raw.requirements.value,
            workers: raw.workers.value,
            static_url: raw.static_url.value,
            media_url: raw.media_url.value,
            migrate: raw.migrate,
        })
    }

    /// `django.env` and `django.secret_env`: names a shell and systemd read as variables, none
    /// of tandem's own, none in both; values on one line. A secret's value is never echoed.
    fn app_env(
        &mut self,
        env: BTreeMap<String, Spanned<String>>,
        secret_env: BTreeMap<String, Spanned<PasswordSource>>,
    ) -> (BTreeMap<String, String>, BTreeMap<String, PasswordSource>) {
        let check_name = |v: &mut Self, name: &str, at: Position, field: &str| {
            let problem = if !identifier::is_env_name(name) {
                Some((
                    format!("`{name}` is not an environment variable name"),
                    "use letters, digits and `_`, not starting with a digit, e.g. SENTRY_DSN",
                ))
            } else if TANDEM_ENV.contains(&name) {
                Some((
                    format!("`{name}` is set by tandem"),
                    "choose another name; tandem writes this one from the rest of the config",
                ))
            } else {
                identifier::changes_how_programs_run(name).map(|why| {
                    (
                        format!("`{name}` cannot be set here: {why}"),
                        "leave it out; set what your app needs under a name of its own",
                    )
                })
            };
            if let Some((message, fix)) = problem {
                v.found.push(
                    Diagnostic::error(v.path, &v.source, at, &format!("{field}.{name}"), message)
                        .fix(fix),
                );
            }
        };
        let mut total = 0usize;
        for (name, value) in &env {
            check_name(self, name, Position::of(value), "django.env");
            if value.value.contains(['\n', '\r', '\0']) {
                self.error(
                    value,
                    &format!("django.env.{name}"),
                    format!("the value of `{name}` has a line break or NUL"),
                    "write a value on one line",
                );
            }
            if value.value.len() > ENV_VALUE_LIMIT {
                self.error(
                    value,
                    &format!("django.env.{name}"),
                    format!(
                        "the value of `{name}` has {} bytes, more than the {ENV_VALUE_LIMIT} an environment variable may have here",
                        value.value.len()
                    ),
                    "keep large data in a file the app reads, and put its path here",
                );
            }
            total += name.len() + value.value.len() + 2;
        }
        if total > ENV_TOTAL_LIMIT
            && let Some((name, value)) = env.iter().next_back()
        {
            self.error(
                value,
                &format!("django.env.{name}"),
                format!(
                    "django.env holds {total} bytes, more than the {ENV_TOTAL_LIMIT} every process of the app can be started with"
                ),
                "keep large data in files the app reads, and put their paths here",
            );
        }
        for (name, source) in &secret_env {
            check_name(self, name, Position::of(source), "django.secret_env");
            if env.contains_key(name) {
                self.error(
                    source,
                    &format!("django.secret_env.{name}"),
                    format!("`{name}` is in both django.env and django.secret_env"),
                    "keep it in one: secret_env when its value must not be shown",
                );
            }
            self.secret_source(source, &format!("django.secret_env.{name}"));
        }
        (
            env.into_iter().map(|(k, v)| (k, v.value)).collect(),
            secret_env.into_iter().map(|(k, v)| (k, v.value)).collect(),
        )
    }

    /// The app can open one connection per gunicorn worker on each app server; with the
    /// reserve, that must fit under an explicit `max_connections`, or requests would wait
    /// for connections (or fail) under load.
    fn connection_budget(
        &mut self,
        max_connections: &Option<Spanned<raw::SettingValue>>,
        demand: &crate::postgres::tuning::Demand,
    ) {
        let Some(at) = max_connections else { return };
        match at.value.text().parse::<u32>() {
            Ok(n) if !(1..=MAX_CONNECTIONS_LIMIT).contains(&n) => self.error(
                at,
                "database.settings.max_connections",
                format!("max_connections {n} is outside PostgreSQL's range, 1-{MAX_CONNECTIONS_LIMIT}"),
                "write a number in that range, e.g. 200, or remove it (tandem derives it)",
            ),
            Ok(n) if n >= demand.needed() => {}
            Ok(n) => self.error(
                at,
                "database.settings.max_connections",
                format!(
                    "max_connections {n} is less than the app can use: {} = {}",
                    demand.describe(),
                    demand.needed()
                ),
                &format!(
                    "raise max_connections to at least {}, lower django.workers, or remove it (tandem derives it)",
                    demand.needed()
                ),
            ),
            Err(_) => self.error(
                at,
                "database.settings.max_connections",
                "max_connections is not a whole number".into(),
                "write a number, e.g. 200",
            ),
        }
    }

    /// Checks where a secret comes from (`{env: NAME}` or `{file: PATH}`) without showing
    /// what was written: a value pasted where its variable's name belongs is a secret.
    fn secret_source(&mut self, source: &Spanned<PasswordSource>, field: &str) {
        match &source.value {
            PasswordSource::Env(var) if !identifier::is_env_name(var) => self.error(
                source,
                &format!("{field}.env"),
                "not an environment variable name (value not shown: it may be a secret)".into(),
                "write the variable's name, e.g. `{env: SENTRY_DSN}`, never the secret",
            ),
            PasswordSource::File(path) if path.as_os_str().is_empty() => self.error(
                source,
                &format!("{field}.file"),
                "empty file path".into(),
                "write the path of a file holding the value, e.g. `{file: /run/secrets/dsn}`",
            ),
            _ => {}
        }
    }

    fn ssh(&mut self, raw: raw::Ssh, project: &str) -> SshSettings {
        let deploy_user = self.safe_name(&raw.deploy_user, "ssh.deploy_user");
        if deploy_user == "root" {
            self.error(
                &raw.deploy_user,
                "ssh.deploy_user",
                "the deploy user cannot be root: root login is disabled".into(),
                "use an unprivileged name such as `deploy`",
            );
        } else if identifier::SYSTEM_ACCOUNTS.contains(&deploy_user.as_str()) {
            self.error(
                &raw.deploy_user,
                "ssh.deploy_user",
                format!(
                    "`{deploy_user}` is a system account: tandem would give it sudo and your keys"
                ),
                "use a name of its own such as `deploy`",
            );
        } else if deploy_user == project {
            self.error(
                &raw.deploy_user,
                "ssh.deploy_user",
                format!(
                    "`{deploy_user}` is the project's own user, which runs the app without a shell"
                ),
                "use a different name such as `deploy`",
            );
        }
        let mut keys = Vec::new();
        for (i, key) in raw.authorized_keys.iter().enumerate() {
            if is_public_key(&key.value) {
                keys.push(key.value.trim().to_string());
            } else {
                self.error(
                    key,
                    &format!("ssh.authorized_keys[{i}]"),
                    "not an SSH public key line".into(),
                    "paste one line of a .pub file, e.g. `ssh-ed25519 AAAA... you@laptop`",
                );
            }
        }
        let base = self.path.parent().unwrap_or(Path::new("."));
        for (i, file) in raw.authorized_key_files.iter().enumerate() {
            let path = expand_home(&file.value, base);
            match crate::config::local_file::read_small(&path) {
                Ok(text) => {
                    let lines: Vec<&str> = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .collect();
                    let field = format!("ssh.authorized_key_files[{i}]");
                    if text.contains("PRIVATE KEY") {
                        self.error(
                            file,
                            &field,
                            format!("{} is a PRIVATE key", path.display()),
                            "name the .pub file beside it; a private key never leaves your machine",
                        );
                    } else if lines.is_empty() {
                        self.error(
                            file,
                            &field,
                            format!("{} holds no SSH public key", path.display()),
                            "name a .pub file (never the private key)",
                        );
                    } else if let Some(n) = lines.iter().position(|l| !is_public_key(l)) {
                        self.error(
                            file,
                            &field,
                            format!(
                                "{}: key {} of {} is not an SSH public key line",
                                path.display(),
                                n + 1,
                                lines.len()
                            ),
                            "the file must hold only public key lines, as a .pub file does",
                        );
                    } else {
                        keys.extend(lines.into_iter().map(str::to_string));
                    }
                }
                Err(why) => self.error(
                    file,
                    &format!("ssh.authorized_key_files[{i}]"),
                    format!("cannot read {}: {why}", path.display()),
                    "name an existing .pub file (relative paths are from this file's directory)",
                ),
            }
        }
        if raw.authorized_keys.is_empty() && raw.authorized_key_files.is_empty() {
            let at = Spanned::new((), raw.deploy_user.referenced, raw.deploy_user.defined);
            self.error(
                &at,
                "ssh.authorized_keys",
                "no public key for the deploy user: with passwords off, nobody could log in".into(),
                "add `authorized_keys:` or `authorized_key_files: [~/.ssh/id_ed25519.pub]`",
            );
        }
        if raw.port.value == 0 {
            self.error(
                &raw.port,
                "ssh.port",
                "port 0".into(),
                "use the port sshd listens on, usually 22",
            );
        }
        SshSettings {
            deploy_user,
            authorized_keys: keys,
            port: raw.port.value,
        }
    }
}

fn expand_home(path: &str, base: &Path) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => base.join(path),
    }
}

fn is_public_key(line: &str) -> bool {
    let mut parts = line.split_whitespace();
    let kind = parts.next().unwrap_or("");
    let blob = parts.next().unwrap_or("");
    !line.contains(['\n', '\r']) && KEY_TYPES.contains(&kind) && blob_key_type(blob) == Some(kind)
}

/// The key type written inside a public key's base64 blob (a length-prefixed string), which
/// must agree with the type in front of it: this tells a key from text that merely looks like one.
fn blob_key_type(blob: &str) -> Option<&'static str> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let name = bytes.get(4..4usize.checked_add(len)?)?;
    KEY_TYPES.iter().find(|k| k.as_bytes() == name).copied()
}

const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Why `ip` cannot stand for a machine on the internal network, if it cannot.
fn usable_internal(ip: IpAddr) -> Result<(), String> {
    if let IpAddr::V6(v6) = ip
        && let Some(v4) = v6.to_ipv4_mapped()
    {
        return Err(format!(
            "is an IPv4 address written in IPv6 form: write it as {v4} (pg_hba.conf and ufw match that form)"
        ));
    }
    if is_link_local(ip) {
        return Err("is a link-local address: those change and need an interface name".to_string());
    }
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return Err("cannot be a server's internal address".to_string());
    }
    Ok(())
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Private, shared (CGNAT) and unique-local addresses: the ones an internal network uses.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// A valid config for unit tests: one db and one app server, project `shop`.
#[cfg(test)]
pub mod testing {
    use std::path::Path;

    /// Everything but `django:`.
    pub const MINIMAL: &str = "project: shop
servers:
  - {name: db, role: db, ssh: db, fqdn: db.example.com, internal_ip: 10.0.0.3}
  - {name: app1, role: app, ssh: app1, fqdn: app1.example.com, internal_ip: 10.0.0.2}
domains: [shop.example.com]
database: {name: shop, role: shop, password: {env: X}}
ssh: {authorized_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHYMxxG3vqHCA+eug0ptUklTD5djvx5I6fEUaBbLhMuQ x\"]}
tls: {acme: {email: ops@example.com}}
";

    /// What `check` says about `text` (a config up to `django:`, which is added with a
    /// Django project in a temporary directory): its warnings, or its errors.
    pub fn diagnostics(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        shop(dir.path());
        let text = format!(
            "{text}django: {{source: ., wsgi_module: shop.wsgi, settings_module: shop.settings}}\n"
        );
        match super::parse(&dir.path().join("tandem.yml"), &text) {
            Ok(loaded) => loaded
                .warnings
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            Err(d) => d.to_string(),
        }
    }

    /// `MINIMAL` with a Django project in `dir` (its files written there), loaded.
    pub fn shop(dir: &Path) -> super::Config {
        shop_with(dir, "", "")
    }

    /// `shop`, with `servers` added to the servers and `extra` (top-level keys) to the config.
    pub fn shop_with(dir: &Path, servers: &str, extra: &str) -> super::Config {
        for file in [
            "manage.py",
            "requirements.txt",
            "shop/settings.py",
            "shop/wsgi.py",
        ] {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        let text = MINIMAL.replace("domains:", &format!("{servers}domains:"));
        super::parse(
            &dir.join("tandem.yml"),
            &format!(
                "{text}{extra}django: {{source: ., wsgi_module: shop.wsgi, settings_module: shop.settings}}\n"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd00::1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:db8::1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    /// What check says about `text` (MINIMAL with `replace` applied) and the secret in it.
    fn shown_for(replace: (&str, &str), extra: &str) -> String {
        testing::diagnostics(&(testing::MINIMAL.replace(replace.0, replace.1) + extra))
    }

    #[test]
    fn a_value_where_a_secret_belongs_is_never_echoed_whatever_the_style() {
        let database = "database: {name: shop, role: shop, password: {env: X}}\n";
        for (replace, extra) in [
            (
                (
                    database,
                    "database: {name: shop, role: shop, password: \"hunter2\"}\n",
                ),
                "",
            ),
            (
                (
                    database,
                    "database: {name: shop, role: shop, password: hunter2}\n",
                ),
                "",
            ),
            (
                (
                    database,
                    "database:\n  name: shop\n  role: shop\n  password: hunter2\n",
                ),
                "",
            ),
            (
                (
                    database,
                    "database:\n  name: shop\n  role: shop\n  password:\n    'hunter2'\n",
                ),
                "",
            ),
            (
                (
                    database,
                    "database: {name: shop, role: shop, password: {env: \"hunter2 pasted\"}}\n",
                ),
                "",
            ),
            (
                (
                    database,
                    "database: {name: shop, role: shop, password: {env: \"hunter2}}\n",
                ),
                "",
            ),
            (
                (
                    database,
                    "database: {name: shop, role: shop, pasword: hunter2}\n",
                ),
                "",
            ),
            (("", ""), "broker: {password: \"hunter2\"}\n"),
            (("", ""), "broker: {password: {env: \"hunter2 x\"}}\n"),
            (("", ""), "backup: {encryption_key: \"hunter2\"}\n"),
            (
                ("", ""),
                "backup: {encryption_key: {env: \"hunter2 battery staple\"}}\n",
            ),
            (
                ("", ""),
                "backup:\n  encryption_key:\n    env: hunter2 battery staple\n",
            ),
            (("", ""), "django_env: 1\n"), // control: an error elsewhere, no secret in it
        ] {
            let shown = shown_for(replace, extra);
            assert!(
                !shown.contains("hunter2"),
                "{replace:?} {extra:?}:\n{shown}"
            );
            assert!(
                shown.contains("error"),
                "{replace:?} {extra:?}: accepted\n{shown}"
            );
        }
        // django.secret_env: the values are masked, the names shown.
        let django = "django: {source: ., wsgi_module: shop.wsgi, settings_module: shop.settings";
        for env in [
            "secret_env: {DSN: {env: \"https://k3y@sentry\"}}",
            "secret_env: {DSN: https://k3y@sentry}",
            "secret_env: \"https://k3y@sentry\"",
        ] {
            let text = format!("{}{django}, {env}}}\n", testing::MINIMAL);
            let dir = tempfile::tempdir().unwrap();
            testing::shop(dir.path());
            let shown = parse(&dir.path().join("tandem.yml"), &text)
                .unwrap_err()
                .to_string();
            assert!(!shown.contains("k3y"), "{env}:\n{shown}");
            assert!(shown.contains("<not shown>"), "{env}:\n{shown}");
        }
    }

    #[test]
    fn variables_that_change_how_programs_run_are_refused() {
        let django = "django: {source: ., wsgi_module: shop.wsgi, settings_module: shop.settings";
        for (env, says) in [
            ("env: {PATH: /tmp}", "`PATH` cannot be set here"),
            (
                "env: {LD_PRELOAD: /tmp/x.so}",
                "`LD_PRELOAD` cannot be set here",
            ),
            ("env: {IFS: x}", "`IFS` cannot be set here"),
            (
                "env: {PYTHONSTARTUP: /tmp/x.py}",
                "`PYTHONSTARTUP` cannot be set here",
            ),
            (
                "env: {GUNICORN_CMD_ARGS: --bind=0.0.0.0}",
                "`GUNICORN_CMD_ARGS`",
            ),
            (
                "secret_env: {BASH_ENV: {env: X}}",
                "`BASH_ENV` cannot be set here",
            ),
        ] {
            let text = format!("{}{django}, {env}}}\n", testing::MINIMAL);
            let dir = tempfile::tempdir().unwrap();
            testing::shop(dir.path());
            let shown = parse(&dir.path().join("tandem.yml"), &text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(shown.contains(says), "{env}:\n{shown}");
        }
        // A value too large for a process's environment, and too much in all.
        let big = "x".repeat(ENV_VALUE_LIMIT + 1);
        let dir = tempfile::tempdir().unwrap();
        testing::shop(dir.path());
        let text = format!("{}{django}, env: {{BIG: {big}}}}}\n", testing::MINIMAL);
        let shown = parse(&dir.path().join("tandem.yml"), &text)
            .unwrap_err()
            .to_string();
        assert!(shown.contains("more than the 32768"), "{}", &shown[..300]);
        let many: Vec<String> = (0..10)
            .map(|i| format!("V{i}: {}", "y".repeat(ENV_VALUE_LIMIT - 10)))
            .collect();
        let text = format!(
            "{}{django}, env: {{{}}}}}\n",
            testing::MINIMAL,
            many.join(", ")
        );
        let shown = parse(&dir.path().join("tandem.yml"), &text)
            .unwrap_err()
            .to_string();
        assert!(shown.contains("django.env holds"), "{}", &shown[..300]);
    }

    #[test]
    fn huge_connection_numbers_are_refused_not_a_panic() {
        let shown = testing::diagnostics(&format!(
            "{}processes:\n  - {{name: w, command: celery, db_connections: 4294967283}}\n",
            testing::MINIMAL.replace(
                "password: {env: X}}",
                "password: {env: X}, settings: {max_connections: 0}}"
            )
        ));
        assert!(shown.contains("outside PostgreSQL's range"), "{shown}");
        let shown = testing::diagnostics(&testing::MINIMAL.replace(
            "password: {env: X}}",
            "password: {env: X}, settings: {max_connections: 4294967295}}",
        ));
        assert!(shown.contains("max_connections"), "{shown}");
    }

    #[test]
    fn did_you_mean() {
        let (msg, fix) = explain_parse_error(
            "unknown field `internal_ipp`, expected one of name, internal_ip at line 3, column 5",
            "    internal_ipp: 10.0.0.2",
        );
        assert_eq!(msg, "unknown field `internal_ipp`");
        assert!(fix.unwrap().starts_with("did you mean `internal_ip`?"));
        let (_, fix) = explain_parse_error(
            "unknown variant `web`, expected one of db, app",
            "    role: web",
        );
        assert_eq!(fix.unwrap(), "write one of: db, app");
        let (_, fix) = explain_parse_error("unknown variant `ap`, expected one of db, app", "");
        assert!(fix.unwrap().starts_with("did you mean `app`?"));
    }

    #[test]
    fn a_number_error_names_what_the_field_counts() {
        let fix = |line: &str| explain_parse_error("invalid u16", line).1.unwrap();
        assert!(fix("  workers: three").contains("gunicorn workers"));
        assert!(fix("  port: ssh").contains("1-65535"));
        assert!(!fix("  other: x").contains("port"));
    }

    /// `check` on MINIMAL with `database:` replaced, in a directory holding the Django
    /// project: the errors shown, or "" when it loads.
    fn check_database(database: &str, workers: u16) -> String {
        let dir = tempfile::tempdir().unwrap();
        testing::shop(dir.path());
        let text = testing::MINIMAL.replace(
            "database: {name: shop, role: shop, password: {env: X}}",
            database,
        ) + &format!(
            "django: {{source: ., wsgi_module: shop.wsgi, settings_module: shop.settings, workers: {workers}}}\n"
        );
        match parse(&dir.path().join("tandem.yml"), &text) {
            Ok(_) => String::new(),
            Err(d) => d.to_string(),
        }
    }

    #[test]
    fn database_settings_are_checked_and_fit_the_connection_budget() {
        let with = |settings: &str| {
            format!(
                "database: {{name: shop, role: shop, password: {{env: X}}, settings: {{{settings}}}}}"
            )
        };
        assert_eq!(
            check_database(
                &with("shared_buffers: 2GB, jit: off, random_page_cost: 1.1, max_connections: 60"),
                3
            ),
            ""
        );
        // One app server with 60 workers + 10 reserved = 70 > 60.
        let tight = check_database(&with("max_connections: 60"), 60);
        assert!(tight.contains("max_connections 60 is less than the app can use: 1 app server(s) x 60 gunicorn workers + 10 reserved = 70"), "{tight}");
        assert!(tight.contains("at least 70"), "{tight}");
        let managed = check_database(&with("listen_addresses: '*'"), 3);
        assert!(
            managed.contains("tandem sets `listen_addresses` itself"),
            "{managed}"
        );
        let injected = check_database(&with("work_mem: \"4MB' #\""), 3);
        assert!(
            injected.contains("cannot be written into postgresql.conf"),
            "{injected}"
        );
        let name = check_database(&with("Work_Mem: 4MB"), 3);
        assert!(name.contains("not a PostgreSQL setting name"), "{name}");
        let words = check_database(&with("max_connections: lots"), 3);
        assert!(words.contains("not a whole number"), "{words}");
    }
}
