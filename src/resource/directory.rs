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

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::desired::Op;

    #[test]
    fn table() {
        let op = || Op::Directory {
            path: "/srv/shop".into(),
            mode: "0755".into(),
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
