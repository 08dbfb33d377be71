//! tandem's block in pg_hba.conf, and no line outside it admitting other machines.

use super::{Context, unified};
use crate::config::identifier::shell_word;
use crate::model::facts::QueryResult;
use crate::postgres;
use crate::resource::script::{self, payload};

/// The whole file.
pub fn probe(path: &str) -> String {
    format!("cat -- {}", shell_word(path))
}

pub fn plan(ctx: &mut Context, r: &QueryResult, path: &str, block: &str) {
    let current = if r.ok() {
        r.stdout.clone()
    } else {
        String::new()
    };
    let wanted = postgres::splice_block(&current, block);
    if r.ok() && wanted == current {
        return;
    }
    let check = format!(
        // `$( (` with a space: `$((` would start arithmetic.
        "ERR=$( {} 2>&1) || ERR=failed",
        postgres::as_postgres(
            "-Atc 'SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL'"
        )
    );
    let script = format!(
        "set -e\numask 077\nDEST={p}\nBACKUP=\"{state}/backups/{run}/$(printf %s \"$DEST\" | tr / %)\"\n\
         mkdir -p \"$(dirname \"$BACKUP\")\"\ncp -a \"$DEST\" \"$BACKUP\"\n\
         BLOCK=$(mktemp)\nNEW=\"$DEST.tandem-new\"\n{}\n{}\nrm -f \"$BLOCK\"\n\
         chown --reference=\"$DEST\" \"$NEW\"\nchmod --reference=\"$DEST\" \"$NEW\"\nmv -f \"$NEW\" \"$DEST\"\n\
         {check}\nif [ \"$ERR\" != 0 ]; then cp -a \"$BACKUP\" \"$DEST\"; \
         echo \"pg_hba.conf rejected by PostgreSQL (pg_hba_file_rules: $ERR errors); previous file restored\" >&2; \
         {psql} >&2 || true; exit 1; fi\n",
        payload(block.as_bytes(), ">\"$BLOCK\""),
        postgres::splice_shell(path, block),
        p = shell_word(path),
        state = script::STATE_DIR,
        run = shell_word(ctx.run_id),
        psql = postgres::as_postgres(
            "-At -c 'SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL'"
        ),
    );
    let detail = unified(&current, &wanted, path);
    let verb = if r.ok() { "~" } else { "+" };
    let foreign = postgres::foreign_lines(&current, block).len();
    let summary = if foreign > 0 {
        format!(
            "~ {path}: disable {foreign} line(s) admitting machines other than the app \
             servers and database.allow{}",
            if current.contains(block) {
                ""
            } else {
                "; tandem block"
            }
        )
    } else {
        format!("{verb} tandem block in {path}")
    };
    ctx.push(summary, Some(detail), script).file = Some(path.to_string());
}

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::model::desired::Op;

    const BLOCK: &str = "# BEGIN tandem shop: managed\nhost    shop    shop    10.0.0.2/32    scram-sha-256\n# END tandem shop\n";
    const DEBIAN: &str = "local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n";

    #[test]
    fn table() {
        let op = || Op::PgHbaBlock {
            path: "/etc/postgresql/15/main/pg_hba.conf".into(),
            block: BLOCK.into(),
        };
        let path = "/etc/postgresql/15/main/pg_hba.conf";
        for (what, answer, expected) in [
            (
                "fresh Debian file",
                DEBIAN.to_string(),
                vec![format!("~ tandem block in {path}")],
            ),
            ("converged", format!("{DEBIAN}{BLOCK}"), vec![]),
            (
                "a trust line added by hand",
                format!("{DEBIAN}{BLOCK}host all all 0.0.0.0/0 trust\n"),
                vec![format!(
                    "~ {path}: disable 1 line(s) admitting machines other than the app servers and database.allow"
                )],
            ),
        ] {
            let changes = plan(op(), 0, &answer, &[]);
            assert_eq!(summaries(&changes), expected, "{what}");
            assert!(
                changes.iter().all(|c| c.file.as_deref() == Some(path)),
                "{what}"
            );
        }
    }
}
