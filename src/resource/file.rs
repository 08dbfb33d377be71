//! A file with its content, mode and owner, written atomically with a backup and validated.

use super::{Context, unified};
use crate::config::identifier::shell_word;
use crate::model::desired::{FileSpec, Secrecy};
use crate::model::facts::QueryResult;
use crate::resource::script;

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
    } else {
        Some(match &file.secret {
            Secrecy::Public => unified(&content, &file.content, &file.path),
            Secrecy::Masked { shown } => masked_diff(&content, &file.content, shown, &file.path),
        })
    };
    let script = script::write_file(file, ctx.run_id);
    let undo = script::undo(&file.path, ctx.run_id);
    let c = ctx.push(summary, detail, script);
    c.guarded = guarded;
    c.undo = Some(undo);
    c.file = Some(file.path.clone());
}

/// The diff of a file that holds secrets, with every value that may be secret masked in both
/// versions: comments and `KEY=value` lines of `shown` keys as they are; other `KEY=value`
/// lines as `KEY=<hidden>` (`<hidden, changed>` in the new version when the value changed);
/// any other line as `<hidden line>`.
fn masked_diff(now: &str, wanted: &str, shown: &[String], path: &str) -> String {
    let values = |text: &str| -> std::collections::BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let old_values = values(now);
    let mask = |text: &str, compare: Option<&std::collections::BTreeMap<String, String>>| {
        let mut out = String::new();
        for line in text.lines() {
            let masked = if line.is_empty() || line.starts_with('#') {
                line.to_string()
            } else {
                match line.split_once('=') {
                    Some((key, _)) if shown.iter().any(|s| s == key) => line.to_string(),
                    Some((key, value)) if crate::config::identifier::is_env_name(key) => {
                        let changed = compare
                            .is_some_and(|old| old.get(key).map(String::as_str) != Some(value));
                        if changed {
                            format!("{key}=<hidden, changed>")
                        } else {
                            format!("{key}=<hidden>")
                        }
                    }
                    _ => "<hidden line>".to_string(),
                }
            };
            out.push_str(&masked);
            out.push('\n');
        }
        out
    };
    let diff = unified(&mask(now, None), &mask(wanted, Some(&old_values)), path);
    format!("{diff}(values that may be secret are masked)")
}

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::model::desired::{FileSpec, Op, Secrecy};

    fn site(content: &str) -> Op {
        Op::File(FileSpec {
            path: "/etc/nginx/sites-available/shop".into(),
            content: content.into(),
            mode: crate::model::mode::Mode(0o644),
            owner: "root".into(),
            group: "root".into(),
            secret: Secrecy::Public,
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
        let mut spec = match site(
            "# env\nDEBUG=0\nSECRET=n3w-s3cret\nTOKEN=same-t0ken\n-----BEGIN KEY-----\n",
        ) {
            Op::File(f) => f,
            _ => unreachable!(),
        };
        spec.secret = Secrecy::Masked {
            shown: vec!["DEBUG".into()],
        };
        let changes = plan(
            Op::File(spec.clone()),
            0,
            "600 root root\n# env\nDEBUG=1\nSECRET=0ld-s3cret\nTOKEN=same-t0ken\nHAND=h4nd-added\n",
            &[],
        );
        let detail = changes[0].detail.as_deref().unwrap();
        for secret in [
            "n3w-s3cret",
            "0ld-s3cret",
            "same-t0ken",
            "h4nd-added",
            "BEGIN KEY",
        ] {
            assert!(!detail.contains(secret), "{secret} shown:\n{detail}");
        }
        for shown in [
            "-DEBUG=1",
            "+DEBUG=0",
            "+SECRET=<hidden, changed>",
            " TOKEN=<hidden>",
            "-HAND=<hidden>",
            "+<hidden line>",
        ] {
            assert!(detail.contains(shown), "{shown} missing:\n{detail}");
        }
        spec.path = "/etc/ssh/sshd_config.d/00-tandem.conf".into();
        spec.secret = Secrecy::Public;
        assert!(plan(Op::File(spec), 1, "", &[])[0].guarded);
    }
}
