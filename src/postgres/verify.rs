//! The PostgreSQL wing's checks: tandem's pg_hba block in place and as planned.

use crate::config::Server;
use crate::model::desired::Op;
use crate::model::verification::Verification;

pub fn hba_check(
    v: &mut Verification,
    db: &Server,
    desired: &crate::model::desired::Desired,
    file: &Option<String>,
) {
    let Some(i) = hba_task(desired) else { return };
    let Op::PgHbaBlock { block, .. } = &desired.tasks[i].op else {
        return;
    };
    let Some(file) = file else {
        v.add(
            &db.name,
            "pg_hba.conf holds only the expected lines",
            false,
            "pg_hba.conf not readable",
            "run tandem apply",
        );
        return;
    };
    let has_block = file.contains(block.as_str());
    // Outside tandem's block, only local connections may be admitted.
    let wider = crate::postgres::foreign_lines(file, block);
    let ok = has_block && wider.is_empty();
    let detail = if !has_block {
        "tandem's block is missing or edited".to_string()
    } else if !wider.is_empty() {
        format!("other remote lines: {}", wider.join(" | "))
    } else {
        "tandem's block, local lines only".to_string()
    };
    v.add(&db.name, "pg_hba.conf holds only the expected lines", ok, detail,
        "run tandem apply: it restores the block and disables other lines admitting remote addresses; list deliberate extra clients under `database.allow`");
}

pub fn hba_task(desired: &crate::model::desired::Desired) -> Option<usize> {
    desired
        .tasks
        .iter()
        .position(|t| matches!(t.op, Op::PgHbaBlock { .. }))
}
