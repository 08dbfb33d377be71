//! A server's etcd as a member of the database cluster's consensus. etcd's package starts a
//! one-member cluster of its own on localhost; that one is left for the cluster's (it holds
//! nothing). A running member of any other cluster is never touched: changing a live
//! consensus's membership is not something tandem does.

use super::Context;
use crate::model::desired::EtcdSpec;
use crate::model::facts::QueryResult;

pub const PROBE: &str = "echo \"active=$(systemctl is-active etcd 2>/dev/null)\"\n\
     ETCDCTL_API=3 timeout 8 etcdctl --endpoints=http://127.0.0.1:2379 --dial-timeout=2s --command-timeout=4s member list 2>/dev/null || true\n";

/// What the probe saw.
#[derive(Debug, PartialEq, Eq)]
pub enum EtcdState {
    /// Not running (not installed yet, stopped, failed).
    Stopped,
    /// Running, its members' peer URLs (sorted).
    Member(Vec<String>),
    /// Running, but it does not answer for its members: it waits for a majority.
    Waiting,
}

impl EtcdState {
    pub fn parse(r: &QueryResult) -> EtcdState {
        let mut lines = r.stdout.lines();
        let active = lines
            .next()
            .and_then(|l| l.strip_prefix("active="))
            .unwrap_or("");
        let mut peers: Vec<String> = lines
            .filter_map(|l| l.split(", ").nth(3))
            .flat_map(|urls| urls.split(','))
            .map(str::to_string)
            .collect();
        peers.sort();
        match active {
            "active" if peers.is_empty() => EtcdState::Waiting,
            "active" => EtcdState::Member(peers),
            "activating" => EtcdState::Waiting,
            _ => EtcdState::Stopped,
        }
    }
}

/// The member list of etcd's packaged, one-member cluster.
fn is_packaged_default(peers: &[String]) -> bool {
    peers.len() == 1 && peers[0].starts_with("http://localhost:")
}

const START: &str = "systemctl enable --quiet etcd\nsystemctl start --no-block etcd\n";

pub fn plan(ctx: &mut Context, r: &QueryResult, spec: &EtcdSpec) {
    match EtcdState::parse(r) {
        EtcdState::Member(peers) if peers == spec.peer_urls => {}
        EtcdState::Member(peers) if is_packaged_default(&peers) => {
            ctx.push(
                format!(
                    "~ etcd on {} leaves the package's one-member cluster (empty) and joins the database cluster's",
                    spec.name
                ),
                None,
                format!(
                    "set -e\nsystemctl stop etcd\nrm -rf /var/lib/etcd/default/member\n{START}"
                ),
            );
        }
        EtcdState::Member(peers) => ctx.note(&format!(
            "etcd on {} is a member of another cluster ({}), not {}: tandem does not change a running consensus's members; see the README's High availability section",
            spec.name,
            peers.join(" "),
            spec.peer_urls.join(" ")
        )),
        EtcdState::Waiting => ctx.note(&format!(
            "etcd on {} runs and waits for a majority of its members",
            spec.name
        )),
        EtcdState::Stopped => {
            ctx.push(format!("+ etcd on {} started", spec.name), None, format!("set -e\n{START}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::desired::Op;
    use crate::resource::table::{plan as table, summaries};

    fn spec() -> Op {
        Op::EtcdMember(EtcdSpec {
            name: "db1".into(),
            peer_urls: vec![
                "http://10.0.0.3:2380".into(),
                "http://10.0.0.4:2380".into(),
                "http://10.0.0.9:2380".into(),
            ],
        })
    }

    const OURS: &str = "active=active\n\
        8e9e05c52164694d, started, db1, http://10.0.0.3:2380, http://10.0.0.3:2379, false\n\
        91bc3c398fb3c146, started, db2, http://10.0.0.4:2380, http://10.0.0.4:2379, false\n\
        fd422379fda50e48, unstarted, , http://10.0.0.9:2380, , false\n";

    #[test]
    fn a_member_of_the_cluster_plans_nothing() {
        assert!(table(spec(), 0, OURS, &[]).is_empty());
    }

    #[test]
    fn the_packaged_cluster_is_left_and_a_stopped_etcd_started() {
        let packaged = "active=active\n8e9e05c52164694d, started, tl10, http://localhost:2380, http://localhost:2379, false\n";
        let changes = table(spec(), 0, packaged, &[]);
        assert_eq!(changes.len(), 1);
        assert!(
            changes[0]
                .script
                .contains("rm -rf /var/lib/etcd/default/member")
        );
        for stopped in ["active=inactive\n", "active=failed\n", ""] {
            let changes = table(spec(), 0, stopped, &[]);
            assert_eq!(summaries(&changes), ["+ etcd on db1 started"]);
            assert!(
                !changes[0].script.contains("rm -rf"),
                "never wipes what it did not see"
            );
        }
    }

    #[test]
    fn another_cluster_or_no_majority_changes_nothing() {
        let other =
            "active=active\nx, started, a, http://10.9.9.9:2380, http://10.9.9.9:2379, false\n";
        assert!(table(spec(), 0, other, &[]).is_empty());
        assert!(table(spec(), 0, "active=active\n", &[]).is_empty());
        assert!(table(spec(), 0, "active=activating\n", &[]).is_empty());
    }
}
