//! The `cluster` step: with two db servers, a primary and a standby under Patroni, with etcd
//! on both and on the witness as their consensus (Debian's `patroni` and `etcd-server`).
//!
//! Patroni holds the leader key in etcd and promotes the standby when the primary's key
//! expires; a failed primary that comes back rejoins as a standby (pg_rewind). It runs
//! PostgreSQL itself, from Debian's cluster directories: its postgresql.conf includes the
//! original (renamed postgresql.base.conf), so tandem's conf.d drop-ins and its pg_hba block
//! keep deciding what they decided; the settings Patroni passes on PostgreSQL's command line
//! (`vars::SHARED_SETTINGS`) go into the cluster's shared configuration instead. The apps
//! reach whichever member is primary with libpq's multi-host form and no tandem run.

pub mod status;
pub mod vars;
pub mod verify;

use crate::engine::templates::Templates;
use crate::engine::vars::Vars;
use crate::model::desired::{EtcdSpec, FileSpec, Op, PatroniSpec, Secrecy, SharedConfig};
use crate::model::ufw::UfwRule;
use vars::{ETCD_CLIENT_PORT, ETCD_PEER_PORT, LOOP_WAIT, REST_PORT, RETRY_TIMEOUT, TTL};

/// Debian's etcd reads its settings from here.
pub const ETCD_DEFAULTS: &str = "/etc/default/etcd";

/// The shared configuration tandem wants in etcd.
pub fn shared_config(config: &crate::config::Config, dcs: &[(String, String)]) -> SharedConfig {
    SharedConfig {
        ttl: TTL,
        loop_wait: LOOP_WAIT,
        retry_timeout: RETRY_TIMEOUT,
        synchronous_mode: config.database.synchronous,
        parameters: dcs.to_vec(),
    }
}

/// An allow rule for `port` from the cluster member `from`.
fn allow(port: u16, from: &crate::config::Server, what: &str) -> Op {
    Op::UfwAllow(UfwRule::from_server(port, "tcp", from, what))
}

/// The ops of the `consensus` step on a db server or the witness: etcd, a member of the
/// cluster's; none without a cluster.
pub fn consensus_ops(
    config: &crate::config::Config,
    vars: &Vars,
    t: &mut Templates,
) -> anyhow::Result<Vec<Op>> {
    let Some(cluster) = config.cluster() else {
        return Ok(Vec::new());
    };
    let me = &vars.host.name;
    let mut peer_urls: Vec<String> = cluster.etcd_members().map(vars::peer_url).collect();
    peer_urls.sort();
    let mut ops = vec![
        Op::Packages {
            names: vec!["etcd-server".into(), "etcd-client".into()],
        },
        Op::File(FileSpec::new(
            ETCD_DEFAULTS,
            t.render("cluster/etcd", vars)?,
            0o644,
            "root",
        )),
        Op::EtcdMember(EtcdSpec {
            name: me.clone(),
            peer_urls,
        }),
    ];
    for other in cluster.etcd_members().filter(|s| &s.name != me) {
        ops.push(allow(ETCD_CLIENT_PORT, other, "etcd clients"));
        ops.push(allow(ETCD_PEER_PORT, other, "etcd peers"));
    }
    Ok(ops)
}

/// This db server's membership of the cluster as Patroni runs it (for the plan's member
/// resource and for a restore that rebuilds the cluster); `None` outside a cluster.
pub fn member_spec(config: &crate::config::Config, vars: &Vars) -> Option<PatroniSpec> {
    let cluster = config.cluster()?;
    let me = &vars.host.name;
    Some(PatroniSpec {
        member: me.clone(),
        scope: vars.cluster.scope.clone(),
        unit: vars.cluster.unit.clone(),
        config: vars.cluster.config.clone(),
        rest: vars.cluster.rest.clone(),
        etcd_endpoints: vars.cluster.etcd_endpoints.clone(),
        version: vars.pg.version.clone(),
        data_dir: vars.cluster.data_dir.clone(),
        conf_dir: vars.pg.conf_dir.clone(),
        seed: cluster.members.first().is_some_and(|m| &m.name == me),
        shared: shared_config(config, &vars.cluster.dcs),
        members: cluster.members.iter().map(|m| m.name.clone()).collect(),
    })
}

/// The ops of the `cluster` step on a db server: Patroni, its configuration and the ports
/// the other member reaches; none without a cluster.
pub fn ops(
    config: &crate::config::Config,
    vars: &Vars,
    t: &mut Templates,
) -> anyhow::Result<Vec<Op>> {
    let Some(cluster) = config.cluster() else {
        return Ok(Vec::new());
    };
    let me = &vars.host.name;
    let mut ops = vec![Op::Packages {
        names: vec!["patroni".into()],
    }];
    for other in cluster.members.iter().filter(|s| &s.name != me) {
        ops.push(allow(REST_PORT, other, "patroni"));
        ops.push(allow(
            crate::postgres::PORT,
            other,
            "postgresql replication",
        ));
    }
    let mut patroni = FileSpec::new(
        &vars.cluster.config,
        t.render("cluster/patroni.yml", vars)?,
        0o600,
        "postgres",
    );
    patroni.secret = Secrecy::Masked { shown: Vec::new() };
    ops.push(Op::File(patroni));
    ops.push(Op::File(FileSpec::new(
        "/etc/systemd/system/patroni@.service.d/tandem.conf",
        t.render("cluster/patroni-restart.conf", vars)?,
        0o644,
        "root",
    )));
    ops.extend(member_spec(config, vars).map(Op::PatroniMember));
    Ok(ops)
}
