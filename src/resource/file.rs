//! A file with its content, mode and owner, written atomically with a backup and validated.

use super::{Context, normal_mode, unified};
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
    let want_meta = format!("{} {} {}", normal_mode(&file.mode), file.owner, file.group);
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
