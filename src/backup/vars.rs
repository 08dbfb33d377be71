//! The backup wing's template variables.

use serde::Serialize;

use crate::config::{Config, Server};

/// Where the db and backup servers keep the backup key (postgres's home on Debian).
/// In the postgres user's home (`platform::POSTGRES_HOME`, checked by a test).
pub const BACKUP_KEY_PATH: &str = "/var/lib/postgresql/.ssh/tandem_backup";

/// Backups with pgBackRest: the db server archives WAL to the repository on the backup
/// server, which takes the base backups from the db server on a timer. Each reaches the other
/// over SSH as postgres, with one key that may run pgbackrest and nothing else.
#[derive(Clone, Debug, Serialize)]
pub struct BackupVars {
    pub enabled: bool,
    /// pgBackRest's name for the database cluster: the project.
    pub stanza: String,
    pub repository_name: String,
    pub repository_ip: String,
    /// The db servers in the stanza (pgBackRest's pg1, pg2): one, or a cluster's two, whichever
    /// is primary archives and is backed up.
    pub db_servers: Vec<BackupPeer>,
    /// The other side of the SSH link from this server: the repository from a db server, the
    /// db servers from the repository.
    pub peers: Vec<BackupPeer>,
    /// Two db servers: backups are taken from the standby when it answers (pgBackRest's
    /// backup-standby), from the primary otherwise.
    pub cluster: bool,
    /// The repository's directory on the backup server.
    pub path: String,
    pub keep_full: u32,
    pub full_every_days: u32,
    pub on_calendar: String,
    /// The db server's data directory (Debian's layout for the version its release installs).
    pub pg_path: String,
    /// On the backup server: the oneshot service that takes a backup, its timer, its script.
    pub service: String,
    pub timer: String,
    pub script: String,
    /// The forced command of the backup key.
    pub only_pgbackrest: String,
}

/// A server at the other end of the backup key.
#[derive(Clone, Debug, Serialize)]
pub struct BackupPeer {
    pub name: String,
    pub ip: String,
}

impl BackupPeer {
    fn of(server: &Server) -> BackupPeer {
        BackupPeer {
            name: server.name.clone(),
            ip: server.internal_ip.to_string(),
        }
    }
}

/// The other side of the backup link from `server`: the repository from a db server, the db
/// servers from the repository; nobody from any other server.
pub fn link_peers<'a>(config: &'a Config, server: &Server) -> Vec<&'a Server> {
    match server.role {
        crate::config::Role::Db => config.backup_server().into_iter().collect(),
        crate::config::Role::Backup => config.db_servers().collect(),
        crate::config::Role::App | crate::config::Role::Witness => Vec::new(),
    }
}

impl BackupVars {
    pub fn of(config: &Config, server: &Server, postgres_version: &str) -> BackupVars {
        let project = &config.project;
        let repository = config.backup_server();
        let db_servers: Vec<BackupPeer> = config.db_servers().map(BackupPeer::of).collect();
        let ip = |s: Option<&Server>| s.map(|s| s.internal_ip.to_string()).unwrap_or_default();
        let peers = link_peers(config, server)
            .into_iter()
            .map(BackupPeer::of)
            .collect();
        BackupVars {
            enabled: config.backup.is_some() && repository.is_some(),
            stanza: project.clone(),
            repository_name: repository.map(|s| s.name.clone()).unwrap_or_default(),
            repository_ip: ip(repository),
            cluster: db_servers.len() > 1,
            db_servers,
            peers,
            path: config
                .backup
                .as_ref()
                .map_or(crate::config::backup::DEFAULT_PATH.to_string(), |b| {
                    b.path.clone()
                }),
            keep_full: config.backup.as_ref().map_or(2, |b| b.keep_full),
            full_every_days: config.backup.as_ref().map_or(7, |b| b.full_every_days),
            on_calendar: config
                .backup
                .as_ref()
                .map_or("daily", |b| b.schedule.on_calendar())
                .to_string(),
            pg_path: crate::model::platform::postgres_data_dir(postgres_version),
            service: format!("tandem-backup-{project}.service"),
            timer: format!("tandem-backup-{project}.timer"),
            script: format!("/usr/local/lib/tandem/backup-{project}"),
            only_pgbackrest: "/usr/local/lib/tandem/pgbackrest-only".into(),
        }
    }
}
