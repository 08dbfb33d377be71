//! A file with its content, mode and owner, written atomically with a backup and validated.

use super::{Context, unified};
use crate::desired::FileSpec;
use crate::facts::QueryResult;
use crate::identifier::shell_word;
use crate::script;

/// `MODE OWNER GROUP`, then the content.
pub fn probe(path: &str) -> String {
    format!(
        "stat -c '%a %U %G' -- {p} && cat -- {p}",
        p = shell_word(path)
    )
}

pub fn plan(ctx: &mut Context, r: &QueryResult, file: &FileSpec) {
    let (exists, meta, content) = if r.ok() {
        let (meta, content) = r.stdout.split_once('\n').unwrap_or((&r.stdout, ""));
        (true, meta.trim().to_string(), content.to_string())
    } else {
        (false, String::new(), String::new())
    };
    let want_meta = format!("{} {} {}", file.mode.stat_form(), file.owner, file.group);
    let content_same = exists && content == file.content;
    if content_same && meta == want_meta {
        return;
    }
    // sshd's config and the deploy user's sudo rights decide whether the operator gets in.
    let guarded = file.path.starts_with("/etc/ssh/") || file.path.starts_with("/etc/sudoers.d/");
    let summary = match (exists, content_same) {
        (false, _) => format!(
            "+ file {} ({} {}:{})",
            file.path, file.mode, file.owner, file.group
        ),
        (true, true) => format!("~ file {}: mode/owner {meta} -> {want_meta}", file.path),
        (true, false) => format!("~ file {}", file.path),
    };
    let detail = if content_same {
        None
    } else if file.secret {
        Some("(holds secrets: content not shown)".to_string())
    } else {
        Some(unified(&content, &file.content, &file.path))
    };
    let script = script::write_file(file, ctx.run_id);
    let undo = script::undo(&file.path, ctx.run_id);
    let c = ctx.push(summary, detail, script);
    c.guarded = guarded;
    c.undo = Some(undo);
    c.file = Some(file.path.clone());
}

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::desired::{FileSpec, Op};

    fn site(content: &str) -> Op {
        Op::File(FileSpec {
            path: "/etc/nginx/sites-available/shop".into(),
            content: content.into(),
            mode: crate::mode::Mode(0o644),
            owner: "root".into(),
            group: "root".into(),
            secret: false,
            validate: None,
        })
    }

    #[test]
    fn table() {
        for (what, status, answer, expected) in [
            (
                "missing",
                1,
                "",
                vec!["+ file /etc/nginx/sites-available/shop (0644 root:root)"],
            ),
            ("same", 0, "644 root root\nserver {}\n", vec![]),
            (
                "edited",
                0,
                "644 root root\nserver { x }\n",
                vec!["~ file /etc/nginx/sites-available/shop"],
            ),
            (
                "mode",
                0,
                "640 root root\nserver {}\n",
                vec![
                    "~ file /etc/nginx/sites-available/shop: mode/owner 640 root root -> 644 root root",
                ],
            ),
        ] {
            let changes = plan(site("server {}\n"), status, answer, &[]);
            assert_eq!(summaries(&changes), expected, "{what}");
            for c in &changes {
                assert_eq!(
                    c.file.as_deref(),
                    Some("/etc/nginx/sites-available/shop"),
                    "{what}"
                );
                assert!(c.undo.is_some() && !c.guarded, "{what}");
            }
        }
    }

    #[test]
    fn secrets_are_not_shown_and_sshd_is_guarded() {
        let mut spec = match site("SECRET=x\n") {
            Op::File(f) => f,
            _ => unreachable!(),
        };
        spec.secret = true;
        let changes = plan(Op::File(spec.clone()), 0, "600 root root\nSECRET=y\n", &[]);
        assert_eq!(
            changes[0].detail.as_deref(),
            Some("(holds secrets: content not shown)")
        );
        spec.path = "/etc/ssh/sshd_config.d/00-tandem.conf".into();
        spec.secret = false;
        assert!(plan(Op::File(spec), 1, "", &[])[0].guarded);
    }
}
