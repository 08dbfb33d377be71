//! A symbolic link pointing at its target (nginx's sites-enabled).

use super::Context;
use crate::config::identifier::shell_word;
use crate::model::facts::QueryResult;

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

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::model::desired::Op;

    #[test]
    fn table() {
        let op = || Op::Symlink {
            target: "/etc/nginx/sites-available/shop".into(),
            link: "/etc/nginx/sites-enabled/shop".into(),
        };
        let change = "+ symlink /etc/nginx/sites-enabled/shop -> /etc/nginx/sites-available/shop";
        for (status, answer, expected, undo) in [
            (
                1,
                "",
                vec![change],
                Some("rm -f /etc/nginx/sites-enabled/shop\n"),
            ),
            (0, "/etc/nginx/sites-available/shop\n", vec![], None),
            (
                0,
                "/tmp/other\n",
                vec![change],
                Some("ln -sfn /tmp/other /etc/nginx/sites-enabled/shop\n"),
            ),
        ] {
            let changes = plan(op(), status, answer, &[]);
            assert_eq!(summaries(&changes), expected, "{answer}");
            assert_eq!(changes.first().and_then(|c| c.undo.as_deref()), undo);
        }
    }
}
