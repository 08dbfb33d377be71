//! A db server's PostgreSQL run by Patroni as a member of the database cluster. Not yet run by
//! Patroni, it is handed over (`scripts/cluster/join.sh`): the first db server seeds the
//! cluster with its data (PostgreSQL restarts once, under Patroni); the other's own data is
//! set aside and replaced by a copy of the primary's. Once a member runs, who is primary is
//! Patroni's business: the plan says what each member is and changes nothing.

use serde::Deserialize;

use super::Context;
use crate::cluster::vars::{REPLICATION_ROLE, REWIND_ROLE, derived_password};
use crate::config::identifier::{shell_word, sql_ident, sql_literal};
use crate::model::desired::{PatroniSpec, SharedConfig};
use crate::model::facts::QueryResult;
use crate::postgres::scram;
use crate::resource::script::assignments;

/// Patroni's REST answer for this member, read by python3 (a minimal server has no curl).
pub const REST_STATE_PY: &str = "import json, sys, urllib.request\n\
try:\n    print(json.dumps(json.load(urllib.request.urlopen(sys.argv[1] + '/patroni', timeout=3))))\n\
except Exception:\n    print('{}')\n";

/// The cluster's shared configuration as etcd holds it (`GET /config`), on one line.
const REST_CONFIG_PY: &str = "import json, sys, urllib.request\n\
try:\n    print(json.dumps(json.load(urllib.request.urlopen(sys.argv[1] + '/config', timeout=3))))\n\
except Exception:\n    print('{}')\n";

pub fn probe(spec: &PatroniSpec) -> String {
    format!(
        "echo \"active=$(systemctl is-active {unit} 2>/dev/null)\"\n\
         if command -v python3 >/dev/null; then python3 -c {py} {rest}; python3 -c {config} {rest}; else echo '{{}}'; echo '{{}}'; fi\n",
        unit = shell_word(&spec.unit),
        py = shell_word(REST_STATE_PY),
        config = shell_word(REST_CONFIG_PY),
        rest = shell_word(&spec.rest),
    )
}

/// The differences between the shared configuration etcd holds (`GET /config`'s JSON) and
/// `want`, as `(name, now, wanted)`; parameters named `postgresql.parameters.NAME`.
pub fn shared_differences(
    have: &serde_json::Value,
    want: &SharedConfig,
) -> Vec<(String, String, String)> {
    let shown = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => "(unset)".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let mut out = Vec::new();
    let mut compare = |name: String, now: Option<&serde_json::Value>, wanted: String| {
        let now = shown(now);
        if now != wanted {
            out.push((name, now, wanted));
        }
    };
    compare("ttl".into(), have.get("ttl"), want.ttl.to_string());
    compare(
        "loop_wait".into(),
        have.get("loop_wait"),
        want.loop_wait.to_string(),
    );
    compare(
        "retry_timeout".into(),
        have.get("retry_timeout"),
        want.retry_timeout.to_string(),
    );
    // Unset, synchronous mode is off.
    let sync = have
        .get("synchronous_mode")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    compare(
        "synchronous_mode".into(),
        Some(&serde_json::Value::Bool(sync)),
        want.synchronous_mode.to_string(),
    );
    let parameters = have.pointer("/postgresql/parameters");
    for (name, value) in &want.parameters {
        compare(
            format!("postgresql.parameters.{name}"),
            parameters.and_then(|p| p.get(name)),
            value.clone(),
        );
    }
    out
}

/// `patronictl edit-config`'s arguments that set `want` (`-s key=value`, `-p name=value`),
/// each a quoted shell word.
pub fn edit_arguments(want: &SharedConfig) -> String {
    let mut args = vec![
        format!("ttl={}", want.ttl),
        format!("loop_wait={}", want.loop_wait),
        format!("retry_timeout={}", want.retry_timeout),
        format!("synchronous_mode={}", want.synchronous_mode),
    ]
    .into_iter()
    .map(|s| format!("-s {}", shell_word(&s)))
    .collect::<Vec<_>>();
    args.extend(
        want.parameters
            .iter()
            .map(|(n, v)| format!("-p {}", shell_word(&format!("{n}={v}")))),
    );
    args.join(" ")
}

/// What Patroni's REST API says of this member.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct MemberState {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub timeline: Option<u64>,
    #[serde(default)]
    pub xlog: Xlog,
    /// On the primary: the standbys that stream from it.
    #[serde(default)]
    pub replication: Vec<Replica>,
}

/// WAL positions (bytes): the primary's `location`, a standby's received and replayed ones.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Xlog {
    pub location: Option<u64>,
    pub received_location: Option<u64>,
    pub replayed_location: Option<u64>,
}

/// A standby as the primary sees it.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Replica {
    #[serde(default)]
    pub application_name: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub sync_state: String,
}

/// How many bytes of WAL a standby that replayed up to `replayed` is behind a primary at
/// `primary_at`, when both are known (verify's bound and `db status`'s column).
pub fn lag_bytes(primary_at: Option<u64>, replayed: Option<u64>) -> Option<u64> {
    Some(primary_at?.saturating_sub(replayed?))
}

impl MemberState {
    /// The leader (Patroni 3.0 says `master`, later ones `primary`).
    pub fn is_primary(&self) -> bool {
        matches!(self.role.as_str(), "master" | "primary")
    }
}

/// Whether the unit runs, and what the REST API answered (default when it did not).
pub fn parse(r: &QueryResult) -> (bool, MemberState) {
    let mut lines = r.stdout.lines();
    let active = lines.next() == Some("active=active");
    let state = lines
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    (active, state)
}

/// The shared configuration the REST API answered, when it did.
fn parse_config(r: &QueryResult) -> Option<serde_json::Value> {
    let line = r.stdout.lines().nth(2)?;
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value
        .as_object()
        .is_some_and(|o| !o.is_empty())
        .then_some(value)
}

/// The SQL that makes the cluster's own roles, with SCRAM verifiers of their derived
/// passwords (the plaintext is only in Patroni's 0600 configuration).
fn roles_sql(db_password: &str, project: &str) -> String {
    let verifier = |purpose| {
        sql_literal(&scram::verifier(&derived_password(
            db_password,
            project,
            purpose,
        )))
    };
    let ensure = |role: &str| {
        format!(
            "DO $tandem$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {}) THEN CREATE ROLE {}; END IF; END $tandem$;\n",
            sql_literal(role),
            sql_ident(role)
        )
    };
    let rewind = sql_ident(REWIND_ROLE);
    format!(
        "{}ALTER ROLE {} LOGIN REPLICATION NOSUPERUSER PASSWORD {};\n\
         {}ALTER ROLE {rewind} LOGIN NOSUPERUSER PASSWORD {};\n\
         GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO {rewind};\n\
         GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO {rewind};\n\
         GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO {rewind};\n\
         GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO {rewind};\n",
        ensure(REPLICATION_ROLE),
        sql_ident(REPLICATION_ROLE),
        verifier("replication"),
        ensure(REWIND_ROLE),
        verifier("rewind"),
    )
}

const JOIN_SH: &str = include_str!("../../scripts/cluster/join.sh");

/// The shared configuration set in etcd where it differs; a changed PostgreSQL parameter needs
/// a restart of each member (the standby first: it must never take fewer connections than the
/// primary sends it), which Patroni does in place.
fn plan_shared(ctx: &mut Context, spec: &PatroniSpec, have: &serde_json::Value) {
    let differences = shared_differences(have, &spec.shared);
    if differences.is_empty() {
        return;
    }
    let restart = differences
        .iter()
        .any(|(n, _, _)| n.starts_with("postgresql.parameters."));
    let ctl = format!("patronictl -c {}", shell_word(&spec.config));
    let mut script = format!(
        "set -e\n{ctl} edit-config --force {} >/dev/null\n",
        edit_arguments(&spec.shared)
    );
    if restart {
        // Patroni marks the members pending a restart within a loop; each is restarted in
        // place, the standby first.
        script.push_str(&format!("sleep {}\n", spec.shared.loop_wait + 2));
        for member in spec
            .members
            .iter()
            .filter(|m| **m != spec.member)
            .chain(std::iter::once(&spec.member))
        {
            script.push_str(&format!(
                "{ctl} restart --force {} {}\n",
                shell_word(&spec.scope),
                shell_word(member)
            ));
        }
    }
    let what: Vec<String> = differences
        .iter()
        .map(|(n, now, want)| format!("{n} {now} -> {want}"))
        .collect();
    ctx.push(
        format!(
            "~ cluster {}'s shared configuration in etcd: {}{}",
            spec.scope,
            what.join(", "),
            if restart {
                " (PostgreSQL restarts on each member, the standby first: seconds without the database)"
            } else {
                ""
            }
        ),
        None,
        script,
    );
}

/// The cluster's own roles on the primary, whose passwords derive from the database password:
/// after that changes, Patroni's files hold the new ones (a file change on each member) and
/// the roles are set here, or the standby could not connect again. Compared as SCRAM
/// verifiers; only a verifier is sent.
fn plan_role_passwords(ctx: &mut Context, spec: &PatroniSpec) {
    // Not probed (PostgreSQL not answering) or a placeholder password (verify without secrets):
    // nothing to compare.
    if ctx.pg.cluster_roles.is_empty() || ctx.db_password.is_unread() {
        return;
    }
    let password = ctx.db_password.expose();
    let stale: Vec<&str> = [(REPLICATION_ROLE, "replication"), (REWIND_ROLE, "rewind")]
        .into_iter()
        .filter(|(role, purpose)| {
            let want = derived_password(password, &spec.scope, purpose);
            !ctx.pg
                .cluster_roles
                .iter()
                .any(|(name, stored)| name == role && scram::matches(stored, &want))
        })
        .map(|(role, _)| role)
        .collect();
    if stale.is_empty() {
        return;
    }
    let script = crate::resource::psql_script(None, &roles_sql(password, &spec.scope));
    ctx.push(
        format!(
            "~ cluster {}'s roles {}: password (derived from the database password)",
            spec.scope,
            stale.join(", ")
        ),
        None,
        script,
    );
}

pub fn plan(ctx: &mut Context, r: &QueryResult, spec: &PatroniSpec) {
    let (active, state) = parse(r);
    if active && !state.state.is_empty() {
        let what = if state.is_primary() {
            "the primary".to_string()
        } else {
            format!("a standby ({})", state.state)
        };
        ctx.note(&format!(
            "cluster {}: {} is {what}",
            spec.scope, spec.member
        ));
        // The shared configuration is the cluster's: planned once, on the primary.
        if state.is_primary()
            && let Some(have) = parse_config(r)
        {
            plan_shared(ctx, spec, &have);
        }
        if state.is_primary() {
            plan_role_passwords(ctx, spec);
        }
        return;
    }
    if active {
        ctx.note(&format!(
            "cluster {}: Patroni runs on {} but its REST API does not answer yet",
            spec.scope, spec.member
        ));
        return;
    }
    let script = join_script(spec, ctx.db_password.expose(), false);
    let summary = if spec.seed {
        format!(
            "+ {} hands PostgreSQL to Patroni, seeding cluster {} with its data (PostgreSQL restarts once: a few seconds without the database)",
            spec.member, spec.scope
        )
    } else {
        format!(
            "+ {} joins cluster {} as a standby: a copy of the primary's data replaces its own (set aside)",
            spec.member, spec.scope
        )
    };
    ctx.push(summary, None, script);
}

/// The script that hands this member's PostgreSQL to Patroni (`scripts/cluster/join.sh`): as
/// the seed (`spec.seed`) or as a copy of the primary; `rebuild` sets a standby's own data of
/// this cluster aside too (after the primary was restored to an earlier moment).
pub fn join_script(spec: &PatroniSpec, db_password: &str, rebuild: bool) -> String {
    use base64::Engine;
    let sql = roles_sql(db_password, &spec.scope);
    let instance = format!("{}-main", spec.version);
    let values = assignments(&[
        ("UNIT", &spec.unit),
        ("REST", &spec.rest),
        ("ETCD", &spec.etcd_endpoints),
        ("SCOPE", &spec.scope),
        ("INSTANCE", &instance),
        ("CONFIG", &spec.config),
        ("DATA", &spec.data_dir),
        ("CONF_DIR", &spec.conf_dir),
        (
            "BIN",
            &crate::model::platform::postgres_bin_dir(&spec.version),
        ),
        ("SEED", if spec.seed { "1" } else { "0" }),
        ("MEMBER", &spec.member),
        (
            "SYNCHRONOUS",
            if spec.shared.synchronous_mode {
                "true"
            } else {
                "false"
            },
        ),
        ("SHARED_ARGUMENTS", &edit_arguments(&spec.shared)),
        ("REBUILD", if rebuild { "1" } else { "0" }),
        (
            "ROLES_SQL_BASE",
            &base64::engine::general_purpose::STANDARD.encode(sql),
        ),
    ]);
    format!("{values}{JOIN_SH}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::desired::Op;
    use crate::resource::table::{plan as table, summaries};

    fn spec(seed: bool) -> Op {
        Op::PatroniMember(PatroniSpec {
            member: if seed { "db1" } else { "db2" }.into(),
            scope: "shop".into(),
            unit: "patroni@15-main.service".into(),
            config: "/etc/patroni/15-main.yml".into(),
            rest: "http://10.0.0.3:8008".into(),
            etcd_endpoints: "http://10.0.0.3:2379".into(),
            version: "15".into(),
            data_dir: "/var/lib/postgresql/15/main".into(),
            conf_dir: "/etc/postgresql/15/main".into(),
            seed,
            shared: SharedConfig {
                ttl: 20,
                loop_wait: 5,
                retry_timeout: 5,
                synchronous_mode: true,
                parameters: vec![("max_connections".into(), "100".into())],
            },
            members: vec!["db1".into(), "db2".into()],
        })
    }

    #[test]
    fn a_running_member_plans_nothing() {
        for answer in [
            r#"{"state": "running", "role": "master", "timeline": 1}"#,
            r#"{"state": "streaming", "role": "replica"}"#,
            "{}",
        ] {
            let out = format!("active=active\n{answer}\n");
            assert!(table(spec(true), 0, &out, &[]).is_empty(), "{answer}");
        }
    }

    #[test]
    fn the_seed_takes_over_and_the_other_joins() {
        let changes = table(spec(true), 0, "active=inactive\n{}\n", &[]);
        assert_eq!(changes.len(), 1);
        assert!(summaries(&changes)[0].contains("seeding cluster shop"));
        let script = &changes[0].script;
        assert!(script.contains("SEED=1") && script.contains("systemctl start \"$UNIT\""));
        assert!(
            !script.contains("c0rrect horse"),
            "no password in the script"
        );
        let joins = table(spec(false), 0, "active=inactive\n{}\n", &[]);
        assert!(summaries(&joins)[0].contains("joins cluster shop as a standby"));
        assert!(joins[0].script.contains("SEED=0"));
    }

    #[test]
    fn the_shared_configuration_is_planned_on_the_primary_only() {
        let primary = r#"{"state": "running", "role": "master"}"#;
        let standby = r#"{"state": "running", "role": "replica"}"#;
        let same = r#"{"ttl": 20, "loop_wait": 5, "retry_timeout": 5, "synchronous_mode": true, "postgresql": {"parameters": {"max_connections": 100}}}"#;
        let defaults = r#"{"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "postgresql": {"parameters": {"max_connections": "100"}}}"#;
        assert!(
            table(
                spec(true),
                0,
                &format!("active=active\n{primary}\n{same}\n"),
                &[]
            )
            .is_empty()
        );
        let changes = table(
            spec(true),
            0,
            &format!("active=active\n{primary}\n{defaults}\n"),
            &[],
        );
        assert_eq!(
            summaries(&changes),
            [
                "~ cluster shop's shared configuration in etcd: ttl 30 -> 20, loop_wait 10 -> 5, retry_timeout 10 -> 5, synchronous_mode false -> true"
            ]
        );
        assert!(
            changes[0]
                .script
                .contains("edit-config --force -s 'ttl=20'")
        );
        assert!(
            !changes[0].script.contains("restart"),
            "timing needs no restart"
        );
        // The standby reads the same etcd: it plans nothing.
        assert!(
            table(
                spec(true),
                0,
                &format!("active=active\n{standby}\n{defaults}\n"),
                &[]
            )
            .is_empty()
        );
        // A parameter restarts each member, the other first.
        let fewer = same.replace("\"max_connections\": 100", "\"max_connections\": 50");
        let changes = table(
            spec(true),
            0,
            &format!("active=active\n{primary}\n{fewer}\n"),
            &[],
        );
        assert!(summaries(&changes)[0].contains("postgresql.parameters.max_connections 50 -> 100"));
        let script = &changes[0].script;
        let db2 = script
            .find("restart --force shop db2")
            .expect("the standby restarts");
        let db1 = script
            .find("restart --force shop db1")
            .expect("the primary restarts");
        assert!(db2 < db1, "{script}");
        // No answer for the configuration: nothing planned.
        assert!(
            table(
                spec(true),
                0,
                &format!("active=active\n{primary}\n{{}}\n"),
                &[]
            )
            .is_empty()
        );
    }

    /// The shared PostgreSQL answer with the cluster roles' stored verifiers.
    fn roles_answer(replication: &str, rewind: &str) -> String {
        format!(
            "recovery|f\nclusterrole|{REPLICATION_ROLE}|{}\nclusterrole|{REWIND_ROLE}|{}\n",
            scram::verifier(&derived_password(replication, "shop", "replication")),
            scram::verifier(&derived_password(rewind, "shop", "rewind")),
        )
    }

    #[test]
    fn the_roles_follow_a_changed_database_password_on_the_primary() {
        let primary = "active=active\n{\"state\": \"running\", \"role\": \"master\"}\n{}\n";
        let standby = "active=active\n{\"state\": \"streaming\", \"role\": \"replica\"}\n{}\n";
        // The table's database password is "c0rrect horse".
        let current = roles_answer("c0rrect horse", "c0rrect horse");
        assert!(table(spec(true), 0, primary, &[("pg", 0, &current)]).is_empty());
        let old = roles_answer("old password", "c0rrect horse");
        let changes = table(spec(true), 0, primary, &[("pg", 0, &old)]);
        assert_eq!(
            summaries(&changes),
            [
                "~ cluster shop's roles tandem_replicator: password (derived from the database password)"
            ]
        );
        // roles_sql (verifiers only, tested below) sent on psql's stdin.
        assert!(!changes[0].script.contains("c0rrect horse"));
        assert!(!changes[0].script.contains(&derived_password(
            "c0rrect horse",
            "shop",
            "replication"
        )));
        // The standby is read-only: the primary's change reaches it by replication.
        assert!(table(spec(true), 0, standby, &[("pg", 0, &old)]).is_empty());
        // PostgreSQL did not answer: nothing to compare, nothing planned.
        assert!(table(spec(true), 0, primary, &[]).is_empty());
    }

    #[test]
    fn the_roles_carry_verifiers_only() {
        let sql = roles_sql("c0rrect horse", "shop");
        assert!(sql.contains("SCRAM-SHA-256$"));
        assert!(!sql.contains("c0rrect horse"));
        assert!(!sql.contains(&derived_password("c0rrect horse", "shop", "replication")));
        assert!(
            sql.contains("\"tandem_replicator\" LOGIN REPLICATION")
                || sql.contains("tandem_replicator LOGIN REPLICATION")
        );
    }
}
