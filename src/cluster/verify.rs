//! verify's checks of a database cluster, read from what the plan's probe found on each
//! member (Patroni's REST answer, etcd's member list): one primary, every standby streaming
//! close behind it, every etcd member in the consensus.

use crate::config::{Config, Role};
use crate::engine::Planned;
use crate::model::desired::Op;
use crate::model::verification::Verification;
use crate::resource::etcd_member::EtcdState;
use crate::resource::patroni_member::{self, MemberState};

/// How far (bytes of WAL) a standby may be behind the primary and still pass: Patroni does not
/// promote a standby further behind than 1 MiB (`maximum_lag_on_failover`); a standby under
/// write load is briefly more, so the check allows 16 MiB (one WAL segment).
pub const LAG_BOUND: u64 = 16 * 1024 * 1024;

pub fn checks(
    v: &mut Verification,
    config: &Config,
    servers: &[crate::config::Server],
    planned: &Planned,
) {
    if config.cluster().is_none() {
        return;
    }
    let mut members: Vec<(String, bool, MemberState)> = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let (desired, facts) = (&planned.desired[i], &planned.facts[i]);
        for task in &desired.tasks {
            match &task.op {
                Op::EtcdMember(spec) => {
                    let state = EtcdState::parse(&facts.get(&task.probe));
                    let ok = state == EtcdState::Member(spec.peer_urls.clone());
                    v.add(
                        &server.name,
                        "etcd member of the cluster's consensus",
                        ok,
                        match &state {
                            EtcdState::Member(peers) => peers.join(" "),
                            EtcdState::Waiting => "waits for a majority of its members".into(),
                            EtcdState::Stopped => "not running".into(),
                        },
                        "see journalctl -u etcd there; tandem apply starts it",
                    );
                }
                Op::PatroniMember(_) if server.role == Role::Db => {
                    let (active, state) = patroni_member::parse(&facts.get(&task.probe));
                    members.push((server.name.clone(), active, state));
                }
                _ => {}
            }
        }
    }
    let primaries: Vec<&(String, bool, MemberState)> =
        members.iter().filter(|(_, _, s)| s.is_primary()).collect();
    let primary_at = primaries.first().and_then(|(_, _, s)| s.xlog.location);
    for (name, active, state) in &members {
        let running = *active && state.state == "running";
        let detail = if !active {
            "Patroni is not running".to_string()
        } else if state.is_primary() {
            format!("primary, timeline {}", state.timeline.unwrap_or(0))
        } else {
            format!(
                "standby ({})",
                if state.state.is_empty() {
                    "no answer"
                } else {
                    &state.state
                }
            )
        };
        v.add(
            name,
            "Patroni runs PostgreSQL",
            running,
            detail,
            "see journalctl -u patroni@<version>-main there; tandem apply starts it",
        );
        if running && !state.is_primary() {
            let streams = primaries.iter().any(|(_, _, p)| {
                p.replication
                    .iter()
                    .any(|r| &r.application_name == name && r.state == "streaming")
            });
            let behind = crate::resource::patroni_member::lag_bytes(
                primary_at,
                state.xlog.replayed_location,
            );
            v.add(
                name,
                "standby streams from the primary",
                streams && behind.is_some_and(|b| b <= LAG_BOUND),
                match behind {
                    Some(b) => format!(
                        "{}, {b} bytes of WAL behind",
                        if streams {
                            "streaming"
                        } else {
                            "not streaming"
                        }
                    ),
                    None => "the primary's position is unknown".into(),
                },
                "see journalctl -u patroni@<version>-main on both db servers",
            );
            if config.database.synchronous {
                let sync = primaries.iter().any(|(_, _, p)| {
                    p.replication
                        .iter()
                        .any(|r| &r.application_name == name && r.sync_state == "sync")
                });
                v.add(
                    name,
                    "synchronous standby (database.synchronous)",
                    sync,
                    if sync {
                        "commits wait for it"
                    } else {
                        "not synchronous"
                    },
                    "tandem apply sets Patroni's synchronous_mode",
                );
            }
        }
    }
    if members.len() == 2 {
        let names: Vec<&str> = primaries.iter().map(|(n, _, _)| n.as_str()).collect();
        v.add(
            &config.project,
            "the database cluster has one primary",
            names.len() == 1,
            if names.is_empty() {
                "no primary".to_string()
            } else {
                names.join(", ")
            },
            "see `patronictl -c /etc/patroni/<version>-main.yml list` on a db server",
        );
    }
}
