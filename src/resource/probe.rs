//! The probe script of a host: every task's query (its kind's `probe_query`) and the shared
//! ones (ufw, handlers owed, PostgreSQL), run on the host at once.

use crate::config::identifier::shell_word;
use crate::model::desired::{Desired, Op};
use crate::model::facts::{OWED, PG, PG_STOPPED, UFW};

/// Builds the one probe script for a host from what is desired there, and `extra` queries
/// (id, shell) after its own.
///
/// The queries only read, so they run all at once (on the host's cores; systemctl and psql
/// mostly wait on their servers), each into its own file; the answers are then printed in
/// order: a line `@id status size` each, the line `@@`, then every answer's bytes, in the
/// same order (`Facts::parse` reads them).
pub fn probe_script(desired: &Desired, extra: &[(&str, String)]) -> String {
    let mut queries: Vec<(String, String)> = desired
        .tasks
        .iter()
        .filter_map(|task| Some((task.probe.clone(), super::probe_query(&task.op)?)))
        .collect();
    if desired
        .tasks
        .iter()
        .any(|t| matches!(t.op, Op::UfwAllow(_) | Op::UfwEnable | Op::UfwDefaults))
    {
        queries.push((UFW.into(), crate::model::ufw::PROBE.into()));
    }
    queries.push((OWED.into(), crate::resource::script::OWED_PROBE.into()));
    if let Some(sql) = super::postgres_facts::query(desired) {
        queries.push((PG.into(), psql_query(&sql)));
    }
    queries.extend(
        extra
            .iter()
            .map(|(id, body)| (id.to_string(), body.clone())),
    );
    // The queries run at once: a burst on the host's cores, which must not delay its requests.
    let mut script = String::from(crate::resource::script::YIELD_TO_SERVING);
    script.push_str(
        "export LC_ALL=C\nD=$(mktemp -d) || exit 1\ntrap 'rm -rf \"$D\"' EXIT\n\
         run() { ( eval \"$2\" ) >\"$D/$1\" 2>/dev/null </dev/null; echo $? >\"$D/$1.status\"; }\n",
    );
    for (id, body) in &queries {
        script.push_str(&format!("run {id} {} &\n", shell_word(body)));
    }
    // The answers go back as they are, framed by their sizes: one `stat` and one `cat` for
    // all of them (a `base64` per answer cost a sixth of an app server's probe CPU).
    let ids: String = queries.iter().map(|(id, _)| format!(" {id}")).collect();
    script.push_str(&format!(
        "wait\ncd \"$D\" || exit 1\nstat -c %s --{ids} >.sizes || exit 1\nexec 3<.sizes\n\
         for q in{ids}; do read -r status <\"$q.status\"; read -r size <&3; printf '@%s %s %s\\n' \"$q\" \"$status\" \"$size\"; done\n\
         echo {ANSWERS}\ncat --{ids}\n",
        ANSWERS = crate::model::facts::ANSWERS_FOLLOW,
    ));
    script
}

/// psql as the postgres superuser, unaligned and `|`-separated; fails with 3 when PostgreSQL
/// is not installed, `PG_STOPPED` when it does not answer. psql exits 2 when it cannot
/// connect: only then does `pg_isready` wait (up to 5 s, for a server still starting) before
/// one more try. Asking it first cost a connection to the server on every probe.
fn psql_query(sql: &str) -> String {
    format!(
        "command -v psql >/dev/null || exit 3\n\
         q() {{ {psql} <<'TANDEM_SQL'\n{sql}TANDEM_SQL\n}}\n\
         out=$(q); rc=$?\n\
         if [ $rc -eq 2 ]; then pg_isready -q -t 5 || exit {PG_STOPPED}; out=$(q); rc=$?; fi\n\
         [ -z \"$out\" ] || printf '%s\\n' \"$out\"\n\
         exit $rc",
        psql = crate::postgres::as_postgres("-Atq -F '|' -v ON_ERROR_STOP=1")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::facts::{Discovery, Facts};

    /// The script's queries run at once (the first waits for what the last one does), yet the
    /// answers come back in order, each with its own status and bytes (run with the system's
    /// sh).
    #[test]
    fn probe_queries_run_at_once_and_answer_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("flag").display().to_string();
        let desired = Desired {
            server: crate::resource::table::db_server(),
            tasks: Vec::new(),
            handlers: Vec::new(),
        };
        let waits = format!(
            "i=0; until [ -e {flag} ]; do i=$((i+1)); [ $i -lt 200 ] || exit 9; sleep 0.05; done; printf 'first\\n\\0x'; exit 3"
        );
        let script = probe_script(
            &desired,
            &[
                ("waits", waits),
                ("quick", "echo second".into()),
                ("flags", format!("touch {flag}; echo third")),
                ("nice", "nice".into()),
            ],
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        let facts = Facts::parse(Discovery::default(), &out.stdout).unwrap();
        assert_eq!(
            facts.get("waits").status,
            3,
            "ran beside the query it waits for"
        );
        assert_eq!(facts.get("waits").stdout, "first\n\0x");
        assert_eq!(facts.get("quick").stdout, "second\n");
        assert_eq!(facts.get("flags").stdout, "third\n");
        assert_eq!(facts.get("nice").stdout, "10\n", "queries yield the CPU");
        let text = String::from_utf8_lossy(&out.stdout);
        let order: Vec<&str> = text.lines().map_while(|l| l.split(' ').next()).collect();
        assert_eq!(
            order[..6],
            ["@owed", "@waits", "@quick", "@flags", "@nice", "@@"]
        );
    }
}
