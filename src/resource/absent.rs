//! A path that must not exist (the distribution's default nginx site).

use super::Context;
use crate::config::identifier::shell_word;
use crate::model::facts::QueryResult;
use crate::resource::script;

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

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::model::desired::Op;

    #[test]
    fn table() {
        let op = || Op::Absent {
            path: "/etc/nginx/sites-enabled/default".into(),
        };
        assert_eq!(
            summaries(&plan(op(), 0, "/etc/nginx/sites-enabled/default\n", &[])),
            ["- remove /etc/nginx/sites-enabled/default"]
        );
        assert!(plan(op(), 2, "", &[]).is_empty());
    }
}
