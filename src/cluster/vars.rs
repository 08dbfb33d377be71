//! The cluster wing's template variables: who the members are and where they listen.

use serde::Serialize;

use crate::config::servers::url_host;
use crate::config::{Config, Role, Server};

/// etcd's client port (Patroni and etcdctl).
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// etcd's peer port (the members' consensus).
pub const ETCD_PEER_PORT: u16 = 2380;
/// Patroni's REST API: the members ask each other's state on it.
pub const REST_PORT: u16 = 8008;
/// The role the standby streams WAL as.
pub const REPLICATION_ROLE: &str = "tandem_replicator";
/// The role pg_rewind reads a new primary's files as, when a failed primary rejoins.
pub const REWIND_ROLE: &str = "tandem_rewind";

#[derive(Clone, Debug, Serialize)]
pub struct ClusterVars {
    /// Two db servers and a witness: Patroni and etcd run.
    pub enabled: bool,
    /// The cluster's name in etcd (Patroni's scope): the project's.
    pub scope: String,
    /// `patroni@<version>-main.service` (Debian's unit; it reads /etc/patroni/<version>-main.yml).
    pub unit: String,
    pub config: String,
    pub data_dir: String,
    pub bin_dir: String,
    /// This server's internal address as a URL host (IPv6 in brackets).
    pub url_host: String,
    /// This server's Patroni REST API (`rest_url`).
    pub rest: String,
    /// `name=http://ip:2380,...` for every etcd member.
    pub initial_cluster: String,
    /// `ip:2379` of every etcd member (Patroni's `etcd3.hosts`).
    pub etcd_hosts: Vec<String>,
    /// `http://ip:2379,...`, for etcdctl.
    pub etcd_endpoints: String,
    pub etcd_client_port: u16,
    pub etcd_peer_port: u16,
    pub rest_port: u16,
    pub ttl: u32,
    pub loop_wait: u32,
    pub retry_timeout: u32,
    pub replication_role: &'static str,
    pub rewind_role: &'static str,
    /// The other db server, when this is one (its replication and pg_rewind lines in pg_hba).
    pub peer_cidrs: Vec<String>,
    /// Patroni's synchronous mode (`database.synchronous`).
    pub synchronous: bool,
    /// Settings Patroni passes PostgreSQL on its command line, which win over conf.d: set in
    /// the cluster's shared configuration to tandem's values.
    pub dcs: Vec<(String, String)>,
}

/// Settings Patroni starts PostgreSQL with from the cluster's shared configuration (its
/// `CMDLINE_OPTIONS`): the conf.d drop-ins cannot decide them, so their values go there.
pub const SHARED_SETTINGS: &[&str] = &[
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_locks_per_transaction",
    "max_prepared_transactions",
];

impl ClusterVars {
    pub fn of(
        config: &Config,
        server: &Server,
        version: &str,
        tuning: &[crate::postgres::tuning::Setting],
    ) -> ClusterVars {
        let cluster = config.cluster();
        let etcd: Vec<&Server> = cluster
            .as_ref()
            .map(|c| c.etcd_members().collect())
            .unwrap_or_default();
        let instance = format!("{version}-main");
        ClusterVars {
            enabled: cluster.is_some(),
            scope: config.project.clone(),
            unit: format!("patroni@{instance}.service"),
            config: format!("/etc/patroni/{instance}.yml"),
            data_dir: crate::model::platform::postgres_data_dir(version),
            bin_dir: crate::model::platform::postgres_bin_dir(version),
            url_host: url_host(server.internal_ip),
            rest: rest_url(server),
            initial_cluster: etcd
                .iter()
                .map(|s| format!("{}={}", s.name, peer_url(s)))
                .collect::<Vec<_>>()
                .join(","),
            etcd_hosts: etcd
                .iter()
                .map(|s| format!("{}:{ETCD_CLIENT_PORT}", url_host(s.internal_ip)))
                .collect(),
            etcd_endpoints: etcd
                .iter()
                .map(|s| client_url(s))
                .collect::<Vec<_>>()
                .join(","),
            etcd_client_port: ETCD_CLIENT_PORT,
            etcd_peer_port: ETCD_PEER_PORT,
            rest_port: REST_PORT,
            ttl: TTL,
            loop_wait: LOOP_WAIT,
            retry_timeout: RETRY_TIMEOUT,
            replication_role: REPLICATION_ROLE,
            rewind_role: REWIND_ROLE,
            peer_cidrs: match &cluster {
                Some(c) if server.role == Role::Db => c
                    .members
                    .iter()
                    .filter(|m| m.name != server.name)
                    .map(|m| crate::config::servers::host_cidr(m.internal_ip))
                    .collect(),
                _ => Vec::new(),
            },
            synchronous: config.database.synchronous,
            dcs: tuning
                .iter()
                .filter(|s| SHARED_SETTINGS.contains(&s.name.as_str()))
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect(),
        }
    }
}

/// How long the leader key lives in etcd (s): a dead primary's key expires this long after its
/// last renewal, then the standby takes over. Patroni needs loop_wait + 2 x retry_timeout <= ttl.
pub const TTL: u32 = 20;
/// How often each member's Patroni runs its loop (s).
pub const LOOP_WAIT: u32 = 5;
/// How long Patroni retries etcd and PostgreSQL before it gives up on an operation (s).
pub const RETRY_TIMEOUT: u32 = 5;

/// `http://ip:2379`: an etcd member's client URL (Patroni's and etcdctl's).
pub fn client_url(server: &Server) -> String {
    format!("http://{}:{ETCD_CLIENT_PORT}", url_host(server.internal_ip))
}

/// `http://ip:8008`: a db server's Patroni REST API.
pub fn rest_url(server: &Server) -> String {
    format!("http://{}:{REST_PORT}", url_host(server.internal_ip))
}

/// `http://ip:2380`: an etcd member's peer URL.
pub fn peer_url(server: &Server) -> String {
    format!("http://{}:{ETCD_PEER_PORT}", url_host(server.internal_ip))
}

/// A password for one of the cluster's own roles, derived from the database password
/// (HMAC-SHA-256 keyed with it): nothing more for the operator to keep, and knowing it tells
/// nothing of the app's password. A password that was not read stays what it is, so files made
/// from it are still told apart (`secret::holds_unread`).
pub fn derived_password(db_password: &str, project: &str, purpose: &str) -> String {
    use hmac::{Hmac, Mac};
    if crate::config::secret::holds_unread(db_password) {
        return db_password.to_string();
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(db_password.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(format!("tandem {project} {purpose}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_passwords_differ_by_purpose_and_keep_the_unread_placeholder() {
        let a = derived_password("s3cret", "shop", "replication");
        let b = derived_password("s3cret", "shop", "rewind");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(!a.contains("s3cret"));
        assert_eq!(a, derived_password("s3cret", "shop", "replication"));
        assert_ne!(a, derived_password("s3cret!", "shop", "replication"));
        let unread = crate::config::secret::Secret::unread();
        assert_eq!(
            derived_password(unread.expose(), "shop", "replication"),
            unread.expose()
        );
    }
}
