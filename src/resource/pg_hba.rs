//! tandem's block in pg_hba.conf, and no line outside it admitting other machines.

use super::{Context, unified};
use crate::facts::QueryResult;
use crate::identifier::shell_word;
use crate::postgres;
use crate::script::{self, payload};

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
        "ERR=$({} 2>&1) || ERR=failed",
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
