//! `tandem db status`: each db server's part in the cluster as Patroni and etcd see it, read
//! from every member on its own (a member that is down is a line, not the end of the report).

use serde::Serialize;

use crate::config::identifier::shell_word;
use crate::resource::patroni_member::{MemberState, REST_STATE_PY};

/// What one member answered.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Member {
    pub name: String,
    /// `primary`, `standby`, or `unknown` (Patroni does not answer, or the server is down).
    pub role: String,
    /// Patroni's word for PostgreSQL's state (`running`, `streaming`, `starting`, ...).
    pub state: String,
    pub timeline: Option<u64>,
    /// WAL bytes behind the primary, and seconds of replay behind it (standbys).
    pub lag_bytes: Option<u64>,
    pub lag_seconds: Option<f64>,
    /// On the primary: whether a standby is synchronous.
    pub synchronous_standby: Option<String>,
    /// Why nothing is known, when nothing is.
    pub error: Option<String>,
    #[serde(skip)]
    location: Option<u64>,
    #[serde(skip)]
    replayed: Option<u64>,
    #[serde(skip)]
    replay_lags: Vec<(String, f64)>,
}

/// etcd's health as one member's etcdctl sees every endpoint.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EtcdHealth {
    pub endpoint: String,
    pub healthy: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ClusterStatus {
    pub scope: String,
    pub members: Vec<Member>,
    pub etcd: Vec<EtcdHealth>,
    /// One primary, every standby streaming, every etcd endpoint healthy.
    pub healthy: bool,
}

/// The script a member runs: Patroni's REST answer, the replay lag of each standby when it is
/// the primary, and etcd's health of every endpoint.
pub fn script(rest: &str, etcd_endpoints: &str) -> String {
    format!(
        "echo @patroni\n\
         if command -v python3 >/dev/null; then python3 -c {py} {rest}; else echo '{{}}'; fi\n\
         echo @lag\n\
         (cd / && runuser -u postgres -- psql -X -Atq -F ' ' -c \"SELECT application_name, COALESCE(extract(epoch FROM replay_lag), 0) FROM pg_stat_replication\" 2>/dev/null) || true\n\
         echo @etcd\n\
         ETCDCTL_API=3 timeout 10 etcdctl --endpoints={endpoints} --dial-timeout=2s --command-timeout=3s endpoint health -w json 2>/dev/null || true\n",
        py = shell_word(REST_STATE_PY),
        rest = shell_word(rest),
        endpoints = shell_word(etcd_endpoints),
    )
}

/// Reads one member's answer (`None`: it could not be reached, with why).
pub fn parse_member(name: &str, answer: Result<&str, String>) -> (Member, Vec<EtcdHealth>) {
    let mut member = Member {
        name: name.to_string(),
        role: "unknown".into(),
        ..Member::default()
    };
    let text = match answer {
        Ok(text) => text,
        Err(e) => {
            member.error = Some(e);
            return (member, Vec::new());
        }
    };
    let mut section = "";
    let mut etcd = Vec::new();
    for line in text.lines() {
        if let Some(s) = line.strip_prefix('@') {
            section = s;
            continue;
        }
        match section {
            "patroni" => {
                let state: MemberState = serde_json::from_str(line).unwrap_or_default();
                if state.state.is_empty() {
                    member.error = Some("Patroni does not answer".into());
                    continue;
                }
                member.role = if state.is_primary() {
                    "primary"
                } else {
                    "standby"
                }
                .into();
                member.state = state.state.clone();
                member.timeline = state.timeline;
                member.location = state.xlog.location;
                member.replayed = state.xlog.replayed_location;
                member.synchronous_standby = state
                    .replication
                    .iter()
                    .find(|r| r.sync_state == "sync")
                    .map(|r| r.application_name.clone());
            }
            "lag" => {
                if let Some((standby, seconds)) = line.split_once(' ')
                    && let Ok(seconds) = seconds.trim().parse::<f64>()
                {
                    member.replay_lags.push((standby.to_string(), seconds));
                }
            }
            "etcd" => {
                #[derive(serde::Deserialize)]
                struct Health {
                    endpoint: String,
                    health: bool,
                }
                if let Ok(list) = serde_json::from_str::<Vec<Health>>(line) {
                    etcd = list
                        .into_iter()
                        .map(|h| EtcdHealth {
                            endpoint: h.endpoint,
                            healthy: h.health,
                        })
                        .collect();
                }
            }
            _ => {}
        }
    }
    (member, etcd)
}

/// The cluster's status from each member's answer, in config order; `endpoints` are etcd's.
pub fn assemble(
    scope: &str,
    answers: Vec<(Member, Vec<EtcdHealth>)>,
    endpoints: &[String],
) -> ClusterStatus {
    let mut etcd: Vec<EtcdHealth> = endpoints
        .iter()
        .map(|e| EtcdHealth {
            endpoint: e.clone(),
            healthy: false,
        })
        .collect();
    for (_, seen) in &answers {
        for h in seen {
            if let Some(e) = etcd.iter_mut().find(|e| e.endpoint == h.endpoint) {
                e.healthy |= h.healthy;
            }
        }
    }
    let mut members: Vec<Member> = answers.into_iter().map(|(m, _)| m).collect();
    let primary = members.iter().find(|m| m.role == "primary").cloned();
    for m in members.iter_mut().filter(|m| m.role == "standby") {
        if let Some(p) = &primary {
            m.lag_bytes = crate::resource::patroni_member::lag_bytes(p.location, m.replayed);
            m.lag_seconds = p
                .replay_lags
                .iter()
                .find(|(name, _)| *name == m.name)
                .map(|(_, s)| *s);
        }
    }
    let primaries = members.iter().filter(|m| m.role == "primary").count();
    let healthy = primaries == 1
        && members
            .iter()
            .all(|m| m.error.is_none() && (m.role == "primary" || m.lag_seconds.is_some()))
        && etcd.iter().all(|e| e.healthy);
    ClusterStatus {
        scope: scope.to_string(),
        members,
        etcd,
        healthy,
    }
}

impl std::fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "cluster {}: {}",
            self.scope,
            if self.healthy {
                "healthy"
            } else {
                "NOT healthy"
            }
        )?;
        writeln!(
            f,
            "  {:<16} {:<8} {:<10} {:>3} {:>14} {:>9}",
            "MEMBER", "ROLE", "STATE", "TL", "LAG (BYTES)", "LAG (S)"
        )?;
        for m in &self.members {
            if let Some(e) = &m.error {
                writeln!(f, "  {:<16} {:<8} {e}", m.name, m.role)?;
                continue;
            }
            let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            writeln!(
                f,
                "  {:<16} {:<8} {:<10} {:>3} {:>14} {:>9}{}",
                m.name,
                m.role,
                m.state,
                or_dash(m.timeline.map(|t| t.to_string())),
                or_dash(m.lag_bytes.map(|b| b.to_string())),
                or_dash(m.lag_seconds.map(|s| format!("{s:.1}"))),
                match &m.synchronous_standby {
                    Some(s) => format!("  (synchronous standby: {s})"),
                    None => String::new(),
                }
            )?;
        }
        for e in &self.etcd {
            writeln!(
                f,
                "  etcd {}: {}",
                e.endpoint,
                if e.healthy { "healthy" } else { "NOT healthy" }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str = "@patroni\n{\"state\": \"running\", \"role\": \"master\", \"xlog\": {\"location\": 5000}, \"timeline\": 2, \"replication\": [{\"application_name\": \"db2\", \"state\": \"streaming\", \"sync_state\": \"sync\"}]}\n@lag\ndb2 0.25\n@etcd\n[{\"endpoint\":\"http://10.0.0.3:2379\",\"health\":true},{\"endpoint\":\"http://10.0.0.4:2379\",\"health\":true},{\"endpoint\":\"http://10.0.0.9:2379\",\"health\":true}]\n";
    const STANDBY: &str = "@patroni\n{\"state\": \"running\", \"role\": \"replica\", \"xlog\": {\"received_location\": 5000, \"replayed_location\": 4000}, \"timeline\": 2}\n@lag\n@etcd\n";

    fn endpoints() -> Vec<String> {
        ["3", "4", "9"]
            .map(|n| format!("http://10.0.0.{n}:2379"))
            .to_vec()
    }

    #[test]
    fn a_primary_and_a_streaming_standby_are_healthy() {
        let status = assemble(
            "shop",
            vec![
                parse_member("db1", Ok(PRIMARY)),
                parse_member("db2", Ok(STANDBY)),
            ],
            &endpoints(),
        );
        assert!(status.healthy, "{status}");
        assert_eq!(status.members[1].lag_bytes, Some(1000));
        assert_eq!(status.members[1].lag_seconds, Some(0.25));
        assert_eq!(
            status.members[0].synchronous_standby.as_deref(),
            Some("db2")
        );
        let text = status.to_string();
        assert!(text.contains("cluster shop: healthy"), "{text}");
        assert!(text.contains("db2") && text.contains("1000"), "{text}");
    }

    #[test]
    fn a_member_down_or_an_etcd_endpoint_down_is_not_healthy() {
        let down = assemble(
            "shop",
            vec![
                parse_member("db1", Err("unreachable".into())),
                parse_member("db2", Ok(STANDBY)),
            ],
            &endpoints(),
        );
        assert!(!down.healthy);
        assert!(
            down.to_string()
                .contains("db1              unknown  unreachable")
        );
        let etcd_down = PRIMARY.replace("\"health\":true}]", "\"health\":false}]");
        let status = assemble(
            "shop",
            vec![
                parse_member("db1", Ok(&etcd_down)),
                parse_member("db2", Ok(STANDBY)),
            ],
            &endpoints(),
        );
        assert!(!status.healthy);
        assert!(status.to_string().contains("10.0.0.9:2379: NOT healthy"));
    }
}

/// Patroni does not promote a standby further behind than this (`maximum_lag_on_failover`,
/// bytes); a switchover is refused beyond it too.
pub const SWITCHOVER_LAG: u64 = 1024 * 1024;

/// Who hands the primary's role to whom: `(primary, candidate)`, or why not now.
pub fn switchover_pair(
    status: &ClusterStatus,
    to: Option<&str>,
    synchronous: bool,
) -> Result<(String, String), String> {
    let primary =
        status.members.iter().find(|m| m.role == "primary").ok_or(
            "the cluster has no primary now: nothing to switch over (see tandem db status)",
        )?;
    let candidate = match to {
        Some(name) => status
            .members
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| format!("`{name}` is not a db server of the cluster"))?,
        None => status
            .members
            .iter()
            .find(|m| m.name != primary.name)
            .ok_or("the cluster has no standby")?,
    };
    if candidate.name == primary.name {
        return Err(format!("{} is the primary already", primary.name));
    }
    if candidate.role != "standby" || candidate.error.is_some() {
        return Err(format!(
            "{} is not a running standby ({}): nothing would take over",
            candidate.name,
            candidate.error.as_deref().unwrap_or(&candidate.state)
        ));
    }
    match candidate.lag_bytes {
        Some(lag) if lag <= SWITCHOVER_LAG => {}
        Some(lag) => {
            return Err(format!(
                "{} is {lag} bytes of WAL behind the primary (more than {SWITCHOVER_LAG}): let it catch up first",
                candidate.name
            ));
        }
        None => {
            return Err(format!(
                "{}'s position behind the primary is unknown: is it streaming?",
                candidate.name
            ));
        }
    }
    if synchronous && primary.synchronous_standby.as_deref() != Some(candidate.name.as_str()) {
        return Err(format!(
            "{} is not the synchronous standby yet: a switchover now could lose acknowledged commits",
            candidate.name
        ));
    }
    Ok((primary.name.clone(), candidate.name.clone()))
}

#[cfg(test)]
mod switchover_tests {
    use super::*;

    fn cluster(standby: &str) -> ClusterStatus {
        assemble(
            "shop",
            vec![
                parse_member("db1", Ok(tests_primary())),
                parse_member("db2", Ok(standby)),
            ],
            &[],
        )
    }

    fn tests_primary() -> &'static str {
        "@patroni\n{\"state\": \"running\", \"role\": \"master\", \"xlog\": {\"location\": 5000}, \"timeline\": 2, \"replication\": [{\"application_name\": \"db2\", \"state\": \"streaming\", \"sync_state\": \"sync\"}]}\n@lag\ndb2 0.1\n"
    }

    #[test]
    fn a_streaming_standby_close_behind_takes_over_and_others_are_refused() {
        let near = "@patroni\n{\"state\": \"streaming\", \"role\": \"replica\", \"xlog\": {\"replayed_location\": 4000}}\n";
        assert_eq!(
            switchover_pair(&cluster(near), None, true),
            Ok(("db1".into(), "db2".into()))
        );
        assert_eq!(
            switchover_pair(&cluster(near), Some("db2"), false),
            Ok(("db1".into(), "db2".into()))
        );
        assert!(
            switchover_pair(&cluster(near), Some("db1"), false)
                .unwrap_err()
                .contains("is the primary already")
        );
        assert!(
            switchover_pair(&cluster(near), Some("db9"), false)
                .unwrap_err()
                .contains("not a db server")
        );
        let far = near.replace("4000", "1");
        let status = assemble(
            "shop",
            vec![
                parse_member("db1", Ok(&tests_primary().replace("5000", "9000000"))),
                parse_member("db2", Ok(&far)),
            ],
            &[],
        );
        assert!(
            switchover_pair(&status, None, false)
                .unwrap_err()
                .contains("let it catch up first")
        );
        let down = assemble(
            "shop",
            vec![
                parse_member("db1", Ok(tests_primary())),
                parse_member("db2", Err("unreachable".into())),
            ],
            &[],
        );
        assert!(
            switchover_pair(&down, None, false)
                .unwrap_err()
                .contains("not a running standby")
        );
        let not_sync = tests_primary().replace("\"sync\"}", "\"async\"}");
        let status = assemble(
            "shop",
            vec![
                parse_member("db1", Ok(&not_sync)),
                parse_member("db2", Ok(near)),
            ],
            &[],
        );
        assert!(
            switchover_pair(&status, None, true)
                .unwrap_err()
                .contains("not the synchronous standby")
        );
        assert!(switchover_pair(&status, None, false).is_ok());
    }
}
