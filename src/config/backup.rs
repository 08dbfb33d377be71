//! `backup:` in tandem.yml: continuous backups of the database with pgBackRest, into an
//! encrypted repository on a `role: backup` server (never the db server itself).

use serde::{Deserialize, Serialize};

use super::{PasswordSource, Role, Server, Validator};
use crate::config::yaml::Spanned;

/// Where the repository lives on the backup server unless `path:` says otherwise (Debian's
/// pgbackrest package makes it, owned by postgres).
pub const DEFAULT_PATH: &str = "/var/lib/pgbackrest";

#[derive(Clone, Debug, Serialize)]
pub struct Backup {
    /// The `role: backup` server that holds the repository.
    pub repository: String,
    /// The repository's directory on that server.
    pub path: String,
    /// The repository's encryption passphrase (pgBackRest's aes-256-cbc).
    pub encryption_key: PasswordSource,
    pub schedule: Schedule,
    /// A full backup when the newest full one is this many days old; incremental otherwise.
    pub full_every_days: u32,
    /// Full backups kept (with the WAL and incrementals that depend on them).
    pub keep_full: u32,
}

/// How often the timer takes a backup: systemd calendar shorthands, so that `verify` knows
/// how old the newest backup may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Hourly,
    Daily,
    Weekly,
}

impl Schedule {
    /// systemd's `OnCalendar=` value.
    pub fn on_calendar(self) -> &'static str {
        match self {
            Schedule::Hourly => "hourly",
            Schedule::Daily => "daily",
            Schedule::Weekly => "weekly",
        }
    }

    /// The longest a healthy schedule goes without a new backup: the period, plus the timer's
    /// randomized delay and a long backup's run time.
    pub fn max_age_seconds(self) -> i64 {
        match self {
            Schedule::Hourly => 2 * 3600,
            Schedule::Daily => 26 * 3600,
            Schedule::Weekly => 7 * 86_400 + 2 * 3600,
        }
    }
}

pub(super) mod raw {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Backup {
        pub repository: Option<Spanned<String>>,
        pub path: Option<Spanned<String>>,
        pub encryption_key: Option<Spanned<PasswordSource>>,
        pub schedule: Option<Spanned<Schedule>>,
        pub full_every_days: Option<Spanned<u32>>,
        pub keep_full: Option<Spanned<u32>>,
    }
}

impl Validator<'_> {
    /// `backup:` against the servers: a repository needs a `role: backup` server, and a
    /// backup server needs `backup:` (it would hold nothing).
    pub(super) fn backup(
        &mut self,
        raw: Option<Spanned<raw::Backup>>,
        servers: &[Server],
        anchor: &Spanned<Vec<super::raw::Server>>,
        no_backup_acknowledged: bool,
    ) -> Option<Backup> {
        let backup_servers: Vec<&Server> =
            servers.iter().filter(|s| s.role == Role::Backup).collect();
        let Some(raw) = raw else {
            if let Some(server) = backup_servers.first() {
                self.error(
                    anchor,
                    "servers",
                    format!("`{}` has `role: backup` but tandem.yml has no `backup:`", server.name),
                    "add `backup: {encryption_key: {env: TANDEM_BACKUP_KEY}}`, or remove the server",
                );
            } else if !no_backup_acknowledged {
                self.warning(
                    anchor,
                    "backup",
                    "no `backup:`: the database is not backed up, and losing its server loses everything".into(),
                    "add a server with `role: backup` and `backup: {encryption_key: {env: TANDEM_BACKUP_KEY}}`; \
                     or, accepting the risk, `acknowledge: [no-backup]` to stop this warning",
                );
            }
            return None;
        };
        let b = &raw.value;
        let repository = match (&b.repository, backup_servers.as_slice()) {
            (Some(name), _) => {
                match servers.iter().find(|s| s.name == name.value) {
                    Some(s) if s.role == Role::Backup => {}
                    Some(s) => self.error(
                        name,
                        "backup.repository",
                        format!(
                            "`{}` is a {} server: the repository must not share a machine with what it protects",
                            name.value,
                            s.role.as_str()
                        ),
                        "name a server with `role: backup`",
                    ),
                    None => self.error(
                        name,
                        "backup.repository",
                        format!("no server is named `{}`", name.value),
                        "name a server with `role: backup`",
                    ),
                }
                name.value.clone()
            }
            (None, [one]) => one.name.clone(),
            (None, []) => {
                self.error(
                    &raw,
                    "backup",
                    "no server has `role: backup`: the repository is never the db server itself"
                        .into(),
                    "add a server with `role: backup` (hardened like the others) to hold the repository",
                );
                String::new()
            }
            (None, _) => {
                self.error(
                    &raw,
                    "backup.repository",
                    "several servers have `role: backup`".into(),
                    "say which holds the repository: `repository: <server name>`",
                );
                String::new()
            }
        };
        for other in backup_servers.iter().filter(|s| s.name != repository) {
            if !repository.is_empty() {
                self.error(
                    anchor,
                    "servers",
                    format!(
                        "`{}` has `role: backup` but holds no repository",
                        other.name
                    ),
                    "give it another role, or remove it",
                );
            }
        }
        let path = match &b.path {
            Some(p) => match repository_path(&p.value) {
                Some(path) => path,
                None => {
                    self.error(
                            p,
                            "backup.path",
                            format!("`{}` is not a usable repository directory", p.value),
                            "write an absolute path of letters, digits and `/._-` of the repository's own, \
                             outside the system's directories and home directories, e.g. /srv/pgbackrest",
                        );
                    DEFAULT_PATH.to_string()
                }
            },
            None => DEFAULT_PATH.to_string(),
        };
        let encryption_key = match &b.encryption_key {
            Some(key) => {
                self.secret_source(key, "backup.encryption_key");
                key.value.clone()
            }
            None => {
                self.error(
                    &raw,
                    "backup.encryption_key",
                    "no `encryption_key`: the repository would hold the database unencrypted"
                        .into(),
                    "add `encryption_key: {env: TANDEM_BACKUP_KEY}` (or {file: ...}); keep a copy away from the servers, a restore needs it",
                );
                PasswordSource::Env(String::new())
            }
        };
        let positive =
            |v: &Option<Spanned<u32>>, default: u32| v.as_ref().map_or(default, |s| s.value);
        let full_every_days = positive(&b.full_every_days, 7);
        let keep_full = positive(&b.keep_full, 2);
        // pgBackRest takes repo-retention-full up to 9999999; a full backup more than a year
        // apart is no schedule.
        for (value, field, most) in [
            (&b.full_every_days, "backup.full_every_days", 366),
            (&b.keep_full, "backup.keep_full", 9_999_999),
        ] {
            if let Some(v) = value
                && !(1..=most).contains(&v.value)
            {
                self.error(
                    v,
                    field,
                    format!("must be from 1 to {most}"),
                    &format!("write a whole number from 1 to {most}"),
                );
            }
        }
        Some(Backup {
            repository,
            path,
            encryption_key,
            schedule: b.schedule.as_ref().map_or(Schedule::Daily, |s| s.value),
            full_every_days,
            keep_full,
        })
    }
}

/// An absolute directory that is a word for the shell and a pgBackRest value as written, and
/// not one the system owns.
/// `path` written plainly (`//etc`, `/etc/.`, `/./etc` are `/etc`), when it may hold the
/// repository: absolute, of letters, digits and `/._-`, no `..`, and outside the system's trees
/// and the home directories (tandem makes it owned by postgres: a system directory would be
/// handed to postgres, a home directory would lock its user out of SSH).
fn repository_path(path: &str) -> Option<String> {
    /// Trees where nothing may become postgres's.
    const SYSTEM_TREES: &[&str] = &[
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/sys",
        "/tmp",
        "/usr",
        "/var/cache",
        "/var/lib/dpkg",
        "/var/lib/apt",
        "/var/lib/postgresql",
        "/var/lib/systemd",
        "/var/lib/tandem",
        "/var/lock",
        "/var/log",
        "/var/mail",
        "/var/run",
        "/var/spool",
        "/var/tmp",
    ];
    /// Directories that may hold a repository below them, not be one.
    const SHARED: &[&str] = &[
        "/",
        "/var",
        "/var/lib",
        "/var/backups",
        "/srv",
        "/mnt",
        "/media",
        "/opt",
        "/data",
    ];
    if !path.starts_with('/')
        || !path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        return None;
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    let normal = format!("/{}", parts.join("/"));
    let under = |tree: &str| normal == tree || normal.starts_with(&format!("{tree}/"));
    if SYSTEM_TREES.iter().any(|t| under(t)) || SHARED.contains(&normal.as_str()) {
        return None;
    }
    Some(normal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::MINIMAL;

    const VAULT: &str = "  - {name: vault, role: backup, ssh: vault, fqdn: vault.example.com, internal_ip: 10.0.0.5}\n";

    /// What `check` says about MINIMAL with `servers` added and `backup` appended.
    fn problems(servers: &str, backup: &str) -> String {
        crate::config::testing::diagnostics(
            &(MINIMAL.replace("domains:", &format!("{servers}domains:")) + backup),
        )
    }

    #[test]
    fn each_mistake_is_named_with_its_fix() {
        let none = problems("", "");
        assert!(none.contains("the database is not backed up"), "{none}");
        // Acknowledged, it stops repeating; an unknown acknowledgement is refused.
        assert_eq!(problems("", "acknowledge: [no-backup]\n"), "");
        let typo = problems("", "acknowledge: [no-backups]\n");
        assert!(typo.contains("did you mean `no-backup`"), "{typo}");
        let server_only = problems(VAULT, "");
        assert!(
            server_only.contains("`vault` has `role: backup` but tandem.yml has no `backup:`"),
            "{server_only}"
        );
        // A database cluster is backed up like one db server: both are in the stanza.
        let cluster = problems(
            &format!("{VAULT}{}", crate::config::testing::CLUSTER),
            "backup: {encryption_key: {env: K}}\n",
        );
        assert!(!cluster.contains("backup"), "{cluster}");
        let no_server = problems("", "backup: {encryption_key: {env: K}}\n");
        assert!(
            no_server.contains("the repository is never the db server itself"),
            "{no_server}"
        );
        let on_the_db = problems(
            VAULT,
            "backup: {repository: db, encryption_key: {env: K}}\n",
        );
        assert!(
            on_the_db.contains("must not share a machine with what it protects"),
            "{on_the_db}"
        );
        let unencrypted = problems(VAULT, "backup: {schedule: daily}\n");
        assert!(
            unencrypted.contains("backup.encryption_key") && unencrypted.contains("unencrypted"),
            "{unencrypted}"
        );
        let schedule = problems(
            VAULT,
            "backup: {encryption_key: {env: K}, schedule: nightly}\n",
        );
        assert!(schedule.contains("nightly"), "{schedule}");
        let path = problems(VAULT, "backup: {encryption_key: {env: K}, path: /etc}\n");
        assert!(path.contains("backup.path"), "{path}");
        let huge = problems(
            VAULT,
            "backup: {encryption_key: {env: K}, keep_full: 4294967295}\n",
        );
        assert!(huge.contains("must be from 1 to 9999999"), "{huge}");
        let key_as_phrase = problems(
            VAULT,
            "backup: {encryption_key: {env: \"correct horse battery staple\"}}\n",
        );
        assert!(
            key_as_phrase.contains("not an environment variable name")
                && !key_as_phrase.contains("horse"),
            "{key_as_phrase}"
        );
        let zero = problems(VAULT, "backup: {encryption_key: {env: K}, keep_full: 0}\n");
        assert!(zero.contains("backup.keep_full"), "{zero}");
    }

    #[test]
    fn a_backup_server_and_a_key_are_enough() {
        assert_eq!(problems(VAULT, "backup: {encryption_key: {env: K}}\n"), "");
        let dir = tempfile::tempdir().unwrap();
        crate::config::testing::shop(dir.path());
        let text = MINIMAL.replace("domains:", &format!("{VAULT}domains:"))
            + "backup: {encryption_key: {file: k}, schedule: hourly}\n"
            + "django: {source: ., wsgi_module: shop.wsgi, settings_module: shop.settings}\n";
        let config = crate::config::parse(&dir.path().join("tandem.yml"), &text)
            .unwrap()
            .config;
        let backup = config.backup.as_ref().unwrap();
        assert_eq!(backup.repository, "vault");
        assert_eq!(backup.path, DEFAULT_PATH);
        assert_eq!((backup.keep_full, backup.full_every_days), (2, 7));
        assert_eq!(backup.schedule.on_calendar(), "hourly");
        assert_eq!(config.backup_server().unwrap().name, "vault");
    }

    #[test]
    fn repository_paths() {
        for (good, normal) in [
            ("/var/lib/pgbackrest", "/var/lib/pgbackrest"),
            ("/srv/backup/pg", "/srv/backup/pg"),
            ("/mnt/nas-1/repo/", "/mnt/nas-1/repo"),
            ("//srv//pg/./repo", "/srv/pg/repo"),
            ("/var/backups/pg", "/var/backups/pg"),
        ] {
            assert_eq!(repository_path(good).as_deref(), Some(normal), "{good}");
        }
        for bad in [
            "relative",
            "/",
            "/etc",
            "//etc",
            "/etc/.",
            "/./etc",
            "/etc/ssh",
            "/etc/systemd/system",
            "/usr/local/bin",
            "/root/.ssh",
            "/home/deploy",
            "/home",
            "/var/lib/",
            "/var",
            "/srv",
            "/srv/a b",
            "/srv/$(x)",
            "/srv/../etc",
            "/var/lib/postgresql",
            "/var/lib/postgresql/15/main",
            "/var/log/pg",
            "/tmp/repo",
        ] {
            assert_eq!(repository_path(bad), None, "{bad}");
        }
    }
}
