//! A directory with its mode and owner.

use super::Context;
use crate::config::identifier::shell_word;
use crate::model::facts::QueryResult;
use crate::model::mode::Mode;

/// `directory MODE OWNER GROUP` when it exists.
pub fn probe(path: &str) -> String {
    format!("stat -c '%F %a %U %G' -- {}", shell_word(path))
}

pub fn plan(ctx: &mut Context, r: &QueryResult, path: &str, mode: Mode, owner: &str, group: &str) {
    let want = format!("directory {} {owner} {group}", mode.stat_form());
    if !r.ok() || r.stdout.trim() != want {
        let script = format!(
            "set -e\ninstall -d -m {m} -o {o} -g {g} {p}\n",
            m = mode,
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

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::model::desired::Op;
    use crate::model::mode::Mode;

    #[test]
    fn table() {
        let op = || Op::Directory {
            path: "/srv/shop".into(),
            mode: Mode(0o755),
            owner: "shop".into(),
            group: "shop".into(),
        };
        for (status, answer, expected) in [
            (1, "", vec!["+ directory /srv/shop (0755 shop:shop)"]),
            (0, "directory 755 shop shop\n", vec![]),
            (
                0,
                "directory 755 root root\n",
                vec!["~ directory /srv/shop (0755 shop:shop)"],
            ),
        ] {
            assert_eq!(
                summaries(&plan(op(), status, answer, &[])),
                expected,
                "{answer}"
            );
        }
    }
}
