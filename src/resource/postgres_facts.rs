//! What the probe asks PostgreSQL, in one psql session shared by the role, database,
//! extension and conf drop-in kinds: the role, its settings, the database, the extensions,
//! the settings tandem sets and pg_hba errors. Status 3: not installed; `PG_STOPPED`: installed
//! but not answering.

use crate::config::identifier::sql_literal;
use crate::model::desired::{Desired, Op};
use crate::model::facts::{Facts, PG, PG_STOPPED, QueryResult};

/// What the probe found in PostgreSQL.
#[derive(Debug, Default)]
pub struct PgFacts {
    pub role: Option<PgRole>,
    pub role_settings: Vec<String>,
    /// (owner, PUBLIC may connect)
    pub database: Option<(String, bool)>,
    pub extensions: Vec<String>,
    /// A cluster's standby (`pg_is_in_recovery()`): read-only, its roles, database and
    /// extensions arrive from the primary by replication.
    pub standby: bool,
    /// A cluster's own roles (replication, pg_rewind): (name, stored SCRAM verifier).
    pub cluster_roles: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct PgRole {
    pub superuser: bool,
    pub login: bool,
    pub createdb: bool,
    pub createrole: bool,
    pub password: String,
}

impl PgFacts {
    pub fn parse(pg: &QueryResult) -> PgFacts {
        let mut f = PgFacts::default();
        if pg.ok() {
            for line in pg.stdout.lines() {
                let cols: Vec<&str> = line.split('|').collect();
                match cols.as_slice() {
                    ["role", _, su, login, cdb, crole, pw @ ..] => {
                        f.role = Some(PgRole {
                            superuser: *su == "t",
                            login: *login == "t",
                            createdb: *cdb == "t",
                            createrole: *crole == "t",
                            password: pw.join("|"),
                        })
                    }
                    ["rolesetting", s] => f.role_settings.push(s.to_string()),
                    ["database", _, owner, public] => {
                        f.database = Some((owner.to_string(), *public == "t"))
                    }
                    ["extension", name] => f.extensions.push(name.trim().to_string()),
                    ["recovery", standby] => f.standby = *standby == "t",
                    ["clusterrole", name, pw @ ..] => {
                        f.cluster_roles.push((name.to_string(), pw.join("|")))
                    }
                    _ => {}
                }
            }
        }
        f
    }
}

/// The SQL of the shared PostgreSQL query for a host's desired state, if it asks PostgreSQL
/// anything: one psql session (a psql start costs more than all the queries).
pub fn query(desired: &Desired) -> Option<String> {
    let mut role = None;
    let mut database = None;
    let mut settings: Vec<String> = Vec::new();
    let mut cluster = false;
    for task in &desired.tasks {
        match &task.op {
            Op::PatroniMember(_) => cluster = true,
            Op::PostgresRole { role: r, .. } => role = Some(r.clone()),
            Op::PostgresDatabase { name, .. } | Op::PostgresExtensions { database: name, .. } => {
                database = Some(name.clone())
            }
            _ => {}
        }
    }
    for (_, written) in conf_dropins(desired) {
        settings.extend(plain_names(written).map(str::to_string));
    }
    if role.is_some() || database.is_some() || !settings.is_empty() {
        let role = role.unwrap_or_default();
        let db = database.clone().unwrap_or_default();
        let names = if settings.is_empty() {
            "''".to_string()
        } else {
            settings
                .iter()
                .map(|s| sql_literal(s))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut sql = format!(
            "SELECT 'role', rolname, rolsuper, rolcanlogin, rolcreatedb, rolcreaterole, coalesce(rolpassword, '') FROM pg_authid WHERE rolname = {r};\n\
             SELECT 'rolesetting', unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = {r} AND s.setdatabase = 0;\n\
             SELECT 'database', datname, pg_get_userbyid(datdba), has_database_privilege('public', oid, 'CONNECT') FROM pg_database WHERE datname = {d};\n\
             SELECT 'setting', name, current_setting(name), context, pending_restart, coalesce(sourcefile, ''), coalesce(sourceline::text, '') FROM pg_settings WHERE name IN ({names});\n\
             SELECT 'hba_error', line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL;\n\
             SELECT 'include_dir', current_setting('config_file'), n FROM regexp_split_to_table(pg_read_file(current_setting('config_file')), E'\\n') WITH ORDINALITY AS l(t, n) WHERE t ~ '^\\s*include_dir\\s*=?\\s*''conf\\.d''';\n\
             SELECT 'recovery', pg_is_in_recovery();\n",
            r = sql_literal(&role),
            d = sql_literal(&db),
        );
        if cluster {
            sql.push_str(&format!(
                "SELECT 'clusterrole', rolname, coalesce(rolpassword, '') FROM pg_authid WHERE rolname IN ({}, {});\n",
                sql_literal(crate::cluster::vars::REPLICATION_ROLE),
                sql_literal(crate::cluster::vars::REWIND_ROLE)
            ));
        }
        if !settings.is_empty() {
            sql.push_str(&super::postgres_setting_check::query(&names));
        }
        // The extensions live in the app's database: one psql session (a psql start costs
        // more than all the queries) reconnects there when it exists.
        if let Some(db) = database {
            let db = sql_literal(&db);
            sql.push_str(&format!(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = {db}) AS tandem_has_db \\gset\n\
                 \\if :tandem_has_db\n\\connect {db}\nSELECT 'extension', extname FROM pg_extension;\n\\endif\n"
            ));
        }
        Some(sql)
    } else {
        None
    }
}

/// A PostgreSQL setting as the running server has it.
pub struct LiveSetting {
    pub name: String,
    /// As SHOW prints it (`6GB`, not `786432` pages: tandem writes sizes the same way, see
    /// `tuning::size`).
    pub value: String,
    pub context: String,
    /// The file the value comes from; empty for a default.
    pub source: String,
    /// Its line there.
    pub line: Option<u32>,
}

/// Each PostgreSQL setting of tandem's conf.d drop-ins, as the probe read it.
pub fn pg_settings(facts: &Facts) -> Vec<LiveSetting> {
    let pg = facts.get(PG);
    if !pg.ok() {
        return Vec::new();
    }
    pg.stdout
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('|').collect();
            match cols.as_slice() {
                ["setting", name, value, context, _pending, source, line] => Some(LiveSetting {
                    name: name.to_string(),
                    value: value.to_string(),
                    context: context.to_string(),
                    source: source.to_string(),
                    line: line.parse().ok(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// tandem's conf.d drop-ins: `(path, the settings it writes)`.
pub fn conf_dropins(desired: &Desired) -> impl Iterator<Item = (&str, &[(String, String)])> {
    desired.tasks.iter().filter_map(|task| match &task.op {
        Op::PostgresConf(conf) => Some((conf.file.path.as_str(), conf.settings.as_slice())),
        _ => None,
    })
}

/// The names of `settings` that are plain (letters, digits, `_`): the ones the probe asks
/// PostgreSQL about (a library's dotted name is its own).
fn plain_names(settings: &[(String, String)]) -> impl Iterator<Item = &str> {
    settings
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// Where postgresql.conf includes conf.d: the file and its `include_dir = 'conf.d'` line.
fn include_dir(facts: &Facts) -> Option<(String, u32)> {
    let pg = facts.get(PG);
    pg.stdout
        .lines()
        .find_map(|l| match l.split('|').collect::<Vec<_>>().as_slice() {
            ["include_dir", file, line] => Some((file.to_string(), line.parse().ok()?)),
            _ => None,
        })
}

/// Whether PostgreSQL reads `setting`'s file and line after tandem's drop-in `ours` (which
/// sets it), so that its value wins over tandem's: postgresql.auto.conf, a line of
/// postgresql.conf below its `include_dir = 'conf.d'`, a conf.d file that sorts after ours,
/// any other included file. A line above the include is read first and loses to the drop-in
/// once the drop-in has the setting, which on a fresh server it does not have yet.
fn read_after(setting: &LiveSetting, ours: &str, include: Option<&(String, u32)>) -> bool {
    let dir_of = |path: &str| path.rsplit_once('/').map(|(dir, _)| dir.to_string());
    match include {
        Some((file, line)) if setting.source == *file => setting.line.is_none_or(|l| l > *line),
        _ if dir_of(&setting.source) == dir_of(ours) => setting.source.as_str() > ours,
        _ => true,
    }
}

/// Settings of tandem's drop-ins that the server takes from another file: one read after
/// conf.d (a line below `include_dir` in postgresql.conf, or postgresql.auto.conf, which
/// `ALTER SYSTEM` writes). tandem's value does not apply there, whatever its file says.
pub fn overridden_settings(desired: &Desired, facts: &Facts) -> Vec<LiveSetting> {
    let ours: Vec<&str> = conf_dropins(desired).map(|(path, _)| path).collect();
    let include = include_dir(facts);
    let mut live = pg_settings(facts);
    let mut found = Vec::new();
    for (path, written) in conf_dropins(desired) {
        for name in plain_names(written) {
            if let Some(i) = live.iter().position(|s| {
                s.name == name
                    && !s.source.is_empty()
                    && !ours.contains(&s.source.as_str())
                    && read_after(s, path, include.as_ref())
            }) {
                found.push(live.remove(i));
            }
        }
    }
    found
}

impl LiveSetting {
    /// `name (from FILE line N)`.
    pub fn origin(&self) -> String {
        match self.line {
            Some(n) => format!("{} (from {} line {n})", self.name, self.source),
            None => format!("{} (from {})", self.name, self.source),
        }
    }
}

/// Notes on what a changed conf.d drop-in will need: a reload, or a restart for settings
/// whose `pg_settings.context` is `postmaster`.
pub fn postgres_restart_notes(desired: &Desired, facts: &Facts) -> Vec<String> {
    let current = pg_settings(facts);
    let mut notes = Vec::new();
    for (_, written) in conf_dropins(desired) {
        for (name, value) in written.iter().cloned() {
            match current.iter().find(|s| s.name == name) {
                Some(s) if s.value != value => notes.push(format!(
                    "PostgreSQL {} owed: {name} '{}' -> '{value}' (context {})",
                    if s.context == "postmaster" {
                        "restart"
                    } else {
                        "reload"
                    },
                    s.value,
                    s.context
                )),
                Some(_) => {}
                None if facts.get(PG).status == PG_STOPPED => notes.push(format!(
                    "PostgreSQL is stopped: {name} = '{value}' takes effect when apply starts it"
                )),
                None => notes.push(
                    "PostgreSQL is not installed yet: its first start has listen_addresses and the memory settings (createcluster.d); the rest take a reload, or the restart pg_settings asks for"
                        .to_string(),
                ),
            }
        }
    }
    notes.dedup();
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_psql_session_answers_role_database_and_extensions() {
        let pg = QueryResult {
            status: 0,
            stdout: "role|app|f|t|f|f|SCRAM-SHA-256$4096:salt$a:b\nrolesetting|timezone=UTC\n\
                     database|app|app|f\nextension|plpgsql\nextension|citext\n"
                .into(),
        };
        let f = PgFacts::parse(&pg);
        assert_eq!(f.extensions, ["plpgsql", "citext"]);
        assert_eq!(f.database, Some(("app".to_string(), false)));
        assert_eq!(f.role_settings, ["timezone=UTC"]);
        assert!(f.role.is_some_and(|r| r.login && !r.superuser));
        let failed = QueryResult {
            status: 3,
            stdout: String::new(),
        };
        assert!(PgFacts::parse(&failed).extensions.is_empty());
    }

    #[test]
    fn a_later_file_overriding_a_setting_of_the_dropins_is_named() {
        use crate::model::desired::{FileSpec, PostgresConf, Task};
        let conf = |name: &str, content: &str| Task {
            role: crate::model::playbook::Phase::Db,
            step: "s".into(),
            op: Op::PostgresConf(PostgresConf {
                file: FileSpec::new(
                    format!("/etc/postgresql/15/main/conf.d/{name}"),
                    content,
                    0o644,
                    "postgres",
                ),
                settings: crate::postgres::settings(content),
            }),
            notify: Vec::new(),
            probe: format!("db.s.file.{name}"),
        };
        let desired = Desired {
            server: crate::resource::table::db_server(),
            tasks: vec![
                conf(
                    "00-tandem.conf",
                    "listen_addresses = 'localhost,10.0.0.3'\n",
                ),
                conf(
                    "10-tandem-tuning.conf",
                    "work_mem = '8MB'\nshared_buffers = '1GB'\n",
                ),
            ],
            handlers: Vec::new(),
        };
        let facts = crate::resource::table::pg_facts;
        let ours = "setting|listen_addresses|localhost,10.0.0.3|postmaster|f|/etc/postgresql/15/main/conf.d/00-tandem.conf|4\n\
                    setting|shared_buffers|1GB|postmaster|f|/etc/postgresql/15/main/conf.d/10-tandem-tuning.conf|2\n\
                    setting|work_mem|4MB|user|f||\n";
        assert!(overridden_settings(&desired, &facts(ours)).is_empty());
        let edited = ours.replace(
            "localhost,10.0.0.3|postmaster|f|/etc/postgresql/15/main/conf.d/00-tandem.conf|4",
            "*|postmaster|f|/var/lib/postgresql/15/main/postgresql.auto.conf|3",
        );
        let found: Vec<String> = overridden_settings(&desired, &facts(&edited))
            .iter()
            .map(LiveSetting::origin)
            .collect();
        assert_eq!(
            found,
            ["listen_addresses (from /var/lib/postgresql/15/main/postgresql.auto.conf line 3)"]
        );
        // A fresh cluster, the drop-ins not written yet: pg_createcluster's lines sit above
        // `include_dir`, and the drop-ins will win over them; a line below it does not.
        let conf = "/etc/postgresql/15/main/postgresql.conf";
        let fresh = format!(
            "setting|listen_addresses|localhost,10.0.0.3|postmaster|f|{conf}|60\n\
             setting|shared_buffers|1GB|postmaster|f|{conf}|130\n\
             setting|work_mem|4MB|user|f||\n\
             include_dir|{conf}|805\n"
        );
        assert!(overridden_settings(&desired, &facts(&fresh)).is_empty());
        let below = fresh.replace("|130\n", "|830\n");
        let found: Vec<String> = overridden_settings(&desired, &facts(&below))
            .iter()
            .map(LiveSetting::origin)
            .collect();
        assert_eq!(found, [format!("shared_buffers (from {conf} line 830)")]);
        // Without the include line known (an older probe), any other file counts.
        let unknown = fresh.replace(&format!("include_dir|{conf}|805\n"), "");
        assert_eq!(overridden_settings(&desired, &facts(&unknown)).len(), 2);
        // Another drop-in in conf.d: after ours it wins, before ours it loses.
        let other = |file: &str| {
            fresh.replace(
                &format!("shared_buffers|1GB|postmaster|f|{conf}|130"),
                &format!("shared_buffers|2GB|postmaster|f|/etc/postgresql/15/main/conf.d/{file}|1"),
            )
        };
        assert_eq!(
            overridden_settings(&desired, &facts(&other("99-local.conf"))).len(),
            1
        );
        assert!(overridden_settings(&desired, &facts(&other("05-local.conf"))).is_empty());
    }
}
