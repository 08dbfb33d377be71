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
pub mod database;
pub mod destination;
pub mod django;
pub mod processes;
pub mod requirements;
mod sections;
pub mod servers;
pub mod ssh;
pub mod tls;
pub use backup::Backup;
pub use database::Database;
pub use destination::Destination;
pub use django::{Django, ENV_TOTAL_LIMIT, ENV_VALUE_LIMIT, MigrateCommand, TANDEM_ENV};
pub use processes::{Broker, Process};
pub use servers::{Role, Server};
pub use ssh::SshSettings;
pub use tls::{Tls, TlsMode};

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
    /// The db server, or a cluster's first (the one that seeds it).
    pub fn db_server(&self) -> &Server {
        self.servers
            .iter()
            .find(|s| s.role == Role::Db)
            .expect("validated: one db server")
    }

    /// The db servers: one, or a cluster's two in config order.
    pub fn db_servers(&self) -> impl Iterator<Item = &Server> {
        self.servers.iter().filter(|s| s.role == Role::Db)
    }

    /// The database cluster (Patroni and etcd), when there are two db servers.
    pub fn cluster(&self) -> Option<Cluster<'_>> {
        let members: Vec<&Server> = self.db_servers().collect();
        let witness = self.servers.iter().find(|s| s.role == Role::Witness)?;
        (members.len() == 2).then_some(Cluster { members, witness })
    }

    /// The site's first domain that is not a wildcard: the public tenant's, the one health
    /// checks ask for.
    pub fn apex(&self) -> Option<String> {
        self.domains.iter().find(|d| !d.starts_with("*.")).cloned()
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

/// Two db servers and the witness: a primary and a standby under Patroni, with etcd on all
/// three as their consensus.
#[derive(Clone, Debug)]
pub struct Cluster<'a> {
    /// In config order; the first seeds the cluster with its data.
    pub members: Vec<&'a Server>,
    pub witness: &'a Server,
}

impl<'a> Cluster<'a> {
    /// The etcd members: the db servers, then the witness.
    pub fn etcd_members(&self) -> impl Iterator<Item = &'a Server> + '_ {
        self.members
            .iter()
            .copied()
            .chain(std::iter::once(self.witness))
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
    let raw: raw::Config = yaml::parse(text).map_err(|first| {
        Diagnostics(
            sections::all_errors(text, first)
                .into_iter()
                .map(|err| parse_diagnostic(path, &source, text, err))
                .collect(),
        )
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

/// A parse error as tandem says it: the message, and the fix that fits the line it points at.
fn parse_diagnostic(path: &Path, source: &Source, text: &str, err: yaml::ParseError) -> Diagnostic {
    let line = (err.position.line as usize)
        .checked_sub(1)
        .and_then(|i| text.lines().nth(i))
        .unwrap_or("");
    let (message, mut fix) = explain_parse_error(&err.message, line);
    if let Some(stray) = stray_key(text, &err.message, err.position.line as usize) {
        fix = Some(stray);
    }
    let mut d = Diagnostic::error(path, source, err.position, "", message);
    if let Some(fix) = fix {
        d = d.fix(fix);
    }
    d
}

/// For "missing field `X`": a line that does hold `X:`, at another indentation than the
/// section that misses it (a key indented one level too little), and how to move it. `at` is
/// the 1-based line the error points at (the section's first key).
fn stray_key(text: &str, message: &str, at: usize) -> Option<String> {
    let field = message.strip_prefix("missing field `")?.split('`').next()?;
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let here = lines.get(at.checked_sub(1)?)?;
    let section = lines[..at - 1]
        .iter()
        .rev()
        .find(|l| {
            !l.trim().is_empty() && !l.trim_start().starts_with('#') && indent(l) < indent(here)
        })
        .map(|l| {
            l.trim()
                .trim_start_matches("- ")
                .trim_end_matches(':')
                .to_string()
        })?;
    let (i, line) = lines.iter().enumerate().find(|(_, l)| {
        l.trim_start()
            .trim_start_matches("- ")
            .strip_prefix(field)
            .is_some_and(|rest| rest.starts_with(':'))
            && indent(l) != indent(here)
    })?;
    Some(format!(
        "`{field}:` is on line {} indented {} space(s), outside `{section}:`; indent it by {} \
         like the other keys of `{section}:`",
        i + 1,
        indent(line),
        indent(here)
    ))
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
        /// Warnings the operator has read and accepts, so they stop repeating.
        #[serde(default)]
        pub acknowledge: Vec<Acknowledgement>,
    }

    /// A warning the operator accepts (`acknowledge: [no-backup]`).
    #[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
    #[serde(rename_all = "kebab-case")]
    pub enum Acknowledgement {
        /// No `backup:`: the database is not backed up.
        NoBackup,
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
        pub synchronous: Option<Spanned<bool>>,
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
        pub health: Option<Spanned<super::django::RawHealth>>,
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
        // Where a missing requirement is reported: the `requirements:` line, or (when the
        // default is used) the `source:` line.
        let requirements_at = match Position::of(&raw.django.requirements).line {
            0 => raw.django.source.clone(),
            _ => raw.django.requirements.clone(),
        };
        let django = self.django(raw.django, &domains, &raw.domains);
        let ssh = self.ssh(raw.ssh, &project);
        let tls = self.tls(raw.tls, &domains, &raw.domains);
        let processes = self.processes(raw.processes, servers.as_deref().unwrap_or_default());
        let broker = self.broker(raw.broker, servers.as_deref().unwrap_or_default());
        if let Some(django) = &django {
            self.requirements(&requirements_at, django, &processes);
        }
        if let (Some(servers), Some(django)) = (&servers, &django) {
            self.connection_budget(&raw_settings, &demand(servers, django, &processes));
        }
        let backup = match &servers {
            Some(servers) => self.backup(
                raw.backup,
                servers,
                &raw.servers,
                raw.acknowledge.contains(&raw::Acknowledgement::NoBackup),
            ),
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
}

/// A valid config for unit tests: one db and one app server, project `shop`.
#[cfg(test)]
pub mod testing {
    use std::path::Path;

    /// The servers that make the shop's db server a cluster: a second db server and the
    /// witness (for `shop_with`).
    pub const CLUSTER: &str = "  - {name: db2, role: db, ssh: db2, fqdn: db2.example.com, internal_ip: 10.0.0.6}\n\
                               \x20 - {name: w, role: witness, ssh: w, fqdn: w.example.com, internal_ip: 10.0.0.7}\n";

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
            let text = match file {
                "requirements.txt" => "Django\ngunicorn\npsycopg[binary]\ncelery[redis]\n",
                _ => "",
            };
            std::fs::write(path, text).unwrap();
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
    use super::servers::is_private;
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

    /// A key indented one level too little is named where it is, with the section it
    /// belongs to and the indentation it needs.
    #[test]
    fn a_key_at_the_wrong_level_is_named() {
        let dir = tempfile::tempdir().unwrap();
        testing::shop(dir.path());
        let text = format!(
            "{}django:\n  source: .\n  settings_module: shop.settings\nwsgi_module: shop.wsgi\n",
            testing::MINIMAL
        );
        let stray_line = text.lines().count();
        let err = parse(&dir.path().join("tandem.yml"), &text).err().unwrap();
        let shown = err.to_string();
        assert!(shown.contains("missing field `wsgi_module`"), "{shown}");
        assert!(
            shown.contains(&format!(
                "`wsgi_module:` is on line {stray_line} indented 0 space(s), outside `django:`; indent it by 2"
            )),
            "{shown}"
        );
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
