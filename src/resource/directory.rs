//! A directory with its mode and owner.

use super::{Context, normal_mode};
use crate::facts::QueryResult;
use crate::identifier::shell_word;

/// `directory MODE OWNER GROUP` when it exists.
pub fn probe(path: &str) -> String {
    format!("stat -c '%F %a %U %G' -- {}", shell_word(path))
}

pub fn plan(ctx: &mut Context, r: &QueryResult, path: &str, mode: &str, owner: &str, group: &str) {
    let want = format!("directory {} {owner} {group}", normal_mode(mode));
    if !r.ok() || r.stdout.trim() != want {
        let script = format!(
            "set -e\ninstall -d -m {m} -o {o} -g {g} {p}\n",
            m = shell_word(mode),
            o = shell_word(owner),
            g = shell_word(group),
            p = shell_word(path)
        );
        let verb = if r.ok() { "~" } else { "+" };
        ctx.push(
            format!("{verb} directory {path} ({mode} {owner}:{group})"),
            None,
            script,
        );
    }
}
