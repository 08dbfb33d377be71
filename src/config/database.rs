//! `database:` in tandem.yml: the app's database and role, who else may reach it, its settings
//! and their connection budget.

use super::servers::usable_internal;
use super::*;

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
    /// A cluster's commits wait for the standby (Patroni's synchronous mode): no acknowledged
    /// transaction is lost in a failover.
    pub synchronous: bool,
}

/// PostgreSQL's largest max_connections (its MAX_BACKENDS).
pub(super) const MAX_CONNECTIONS_LIMIT: u32 = 262_143;

impl Validator<'_> {
    pub(super) fn database(&mut self, raw: raw::Database, servers: &[Server]) -> Database {
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
        if let Some(sync) = &raw.synchronous
            && sync.value
            && servers.iter().filter(|s| s.role == Role::Db).count() < 2
        {
            self.warning(
                sync,
                "database.synchronous",
                "synchronous commits need a standby: with one db server this does nothing".into(),
                "add a second `role: db` server and a `role: witness` (High availability), or remove it",
            );
        }
        Database {
            name,
            role,
            password: raw.password.value,
            extensions,
            superuser,
            allow,
            settings,
            synchronous: raw.synchronous.map(|s| s.value).unwrap_or(false),
        }
    }

    /// The app can open one connection per gunicorn worker on each app server; with the
    /// reserve, that must fit under an explicit `max_connections`, or requests would wait
    /// for connections (or fail) under load.
    pub(super) fn connection_budget(
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
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{MINIMAL, diagnostics};

    #[test]
    fn synchronous_without_a_standby_is_warned_about() {
        let one = diagnostics(&MINIMAL.replace(
            "password: {env: X}}",
            "password: {env: X}, synchronous: true}",
        ));
        assert!(one.contains("synchronous commits need a standby"), "{one}");
    }
}
