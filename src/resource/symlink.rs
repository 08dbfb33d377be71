//! A symbolic link pointing at its target (nginx's sites-enabled).

use super::Context;
use crate::facts::QueryResult;
use crate::identifier::shell_word;

/// Where the link points now.
pub fn probe(link: &str) -> String {
    format!("readlink -- {}", shell_word(link))
}

pub fn plan(ctx: &mut Context, r: &QueryResult, target: &str, link: &str) {
    if !r.ok() || r.stdout.trim() != target {
        let script = format!(
            "set -e\nln -sfn {} {}\n",
            shell_word(target),
            shell_word(link)
        );
        let undo = if r.ok() {
            format!(
                "ln -sfn {} {}\n",
                shell_word(r.stdout.trim()),
                shell_word(link)
            )
        } else {
            format!("rm -f {}\n", shell_word(link))
        };
        let c = ctx.push(format!("+ symlink {link} -> {target}"), None, script);
        c.undo = Some(undo);
        c.file = Some(link.to_string());
    }
}
