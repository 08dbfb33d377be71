//! The backup repository's stanza on the backup server: pgBackRest's record of the database
//! it backs up. Missing, it is created, archiving is checked end to end, and the first full
//! backup is taken; present, the plan notes the newest backup.

use serde::Serialize;

use super::Context;
use crate::backup::pgbackrest::{self, Info};
use crate::config::identifier::shell_word;
use crate::model::desired::StanzaSpec;
use crate::model::facts::QueryResult;
use crate::model::playbook::Phase;

/// What the repository holds for the stanza.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StanzaState {
    /// pgBackRest is not installed yet, or the stanza is not in the repository.
    Missing,
    /// The stanza exists with no valid backup.
    NoBackup,
    Backed {
        /// When the newest good backup finished, and the host's clock (seconds since epoch).
        last: i64,
        now: i64,
        kind: String,
    },
    /// pgBackRest answered with an error (e.g. a passphrase that does not open the
    /// repository).
    Broken { error: String },
}

pub fn probe(spec: &StanzaSpec) -> String {
    pgbackrest::info_script(&spec.stanza)
}

impl StanzaState {
    pub fn parse(r: &QueryResult, stanza: &str) -> StanzaState {
        if r.status == 3 {
            return StanzaState::Missing;
        }
        let (now, info) = pgbackrest::parse_info_output(&r.stdout, stanza);
        match info {
            Ok(info) => Self::of(&info, now),
            Err(error) => StanzaState::Broken { error },
        }
    }

    fn of(info: &Info, now: i64) -> StanzaState {
        if !info.stanza_exists() {
            return StanzaState::Missing;
        }
        match info.latest() {
            Some(set) => StanzaState::Backed {
                last: set.stop,
                now,
                kind: set.kind.clone(),
            },
            None if info.code == pgbackrest::STATUS_NO_BACKUP || info.code == 0 => {
                StanzaState::NoBackup
            }
            None => StanzaState::Broken {
                error: info.message.clone(),
            },
        }
    }
}

/// Runs after the db server is provisioned (`Phase::Stanza`): the stanza needs the db
/// server's archiving and key in place.
pub fn plan(ctx: &mut Context, r: &QueryResult, spec: &StanzaSpec) {
    let state = StanzaState::parse(r, &spec.stanza);
    let service = crate::resource::service::run_oneshot(&spec.service);
    let stanza = shell_word(&spec.stanza);
    let create = format!(
        "set -e\n{}\n{}\n{service}",
        pgbackrest::as_postgres(&format!(
            "--stanza={stanza} --log-level-console=warn stanza-create"
        )),
        // Archiving from the db server must work before a backup can be consistent.
        pgbackrest::as_postgres(&format!("--stanza={stanza} --log-level-console=warn check")),
    );
    let (summary, script) = match &state {
        StanzaState::Missing => (
            format!(
                "+ backup repository for {}: stanza {}, archiving checked, first full backup",
                spec.db, spec.stanza
            ),
            create,
        ),
        StanzaState::Broken { error } => {
            ctx.note(&format!("backup repository: {error}"));
            (
                format!(
                    "~ backup repository: stanza {} repaired or created",
                    spec.stanza
                ),
                create,
            )
        }
        StanzaState::NoBackup => (
            format!("+ first backup of {}", spec.stanza),
            format!("set -e\n{service}"),
        ),
        StanzaState::Backed { last, now, kind } => {
            ctx.note(&format!(
                "backup: newest {kind} backup {} ago",
                pgbackrest::human_age(now - last)
            ));
            return;
        }
    };
    let change = ctx.push(summary, None, script);
    change.role = Phase::Stanza;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::desired::Op;
    use crate::resource::table::{plan as table, summaries};

    fn spec() -> Op {
        Op::BackupStanza(StanzaSpec {
            stanza: "shop".into(),
            service: "tandem-backup-shop.service".into(),
            db: "db".into(),
        })
    }

    #[test]
    fn missing_stanza_is_created_checked_and_backed_up() {
        for (status, stdout) in [
            (3, ""),
            (
                0,
                "now=5\n[{\"name\":\"shop\",\"status\":{\"code\":1,\"message\":\"missing stanza path\"},\"backup\":[],\"archive\":[]}]",
            ),
        ] {
            let changes = table(spec(), status, stdout, &[]);
            assert_eq!(
                summaries(&changes),
                ["+ backup repository for db: stanza shop, archiving checked, first full backup"]
            );
            let script = &changes[0].script;
            assert!(script.contains("stanza-create") && script.contains(" check"));
            assert!(script.contains("systemctl start tandem-backup-shop.service"));
            assert_eq!(changes[0].role, Phase::Stanza);
        }
    }

    #[test]
    fn a_stanza_without_backup_gets_one_and_a_backed_up_stanza_nothing() {
        let empty = "now=5\n[{\"name\":\"shop\",\"status\":{\"code\":2,\"message\":\"no valid backups\"},\"backup\":[],\"archive\":[]}]";
        let changes = table(spec(), 0, empty, &[]);
        assert_eq!(summaries(&changes), ["+ first backup of shop"]);
        assert!(!changes[0].script.contains("stanza-create"));
        let backed = "now=100\n[{\"name\":\"shop\",\"status\":{\"code\":0,\"message\":\"ok\"},\"backup\":[{\"label\":\"x\",\"type\":\"full\",\"timestamp\":{\"start\":1,\"stop\":40},\"info\":{\"size\":1}}]}]";
        assert!(table(spec(), 0, backed, &[]).is_empty());
    }

    #[test]
    fn an_unreadable_repository_is_noted_and_retried() {
        let state = StanzaState::parse(
            &QueryResult {
                status: 0,
                stdout: "now=1\nERROR: [043]: WAL segment ... cipher\n".into(),
            },
            "shop",
        );
        assert!(matches!(state, StanzaState::Broken { .. }));
        let changes = table(spec(), 0, "now=1\nERROR: [043]: bad cipher\n", &[]);
        assert_eq!(
            summaries(&changes),
            ["~ backup repository: stanza shop repaired or created"]
        );
    }
}
