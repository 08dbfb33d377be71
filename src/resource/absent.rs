//! A path that must not exist (the distribution's default nginx site).

use super::Context;
use crate::facts::QueryResult;
use crate::identifier::shell_word;
use crate::script;

/// Succeeds when the path exists.
pub fn probe(path: &str) -> String {
    format!("ls -d -- {}", shell_word(path))
}

pub fn plan(ctx: &mut Context, r: &QueryResult, path: &str) {
    if r.ok() {
        let script = script::remove(path, ctx.run_id);
        let undo = script::undo(path, ctx.run_id);
        let c = ctx.push(format!("- remove {path}"), None, script);
        c.undo = Some(undo);
        c.file = Some(path.to_string());
    }
}
