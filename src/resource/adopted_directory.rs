//! A directory at a path the operator chose (the backup repository's `backup.path`): made when
//! missing, but an existing one is taken over only when it is empty or holds nothing but what
//! tandem keeps there. `install -d -o` re-owns whatever it finds, so without this check a path
//! like `/srv/x` (a symlink to /etc) or a home directory would be handed to another user.

use super::Context;
use crate::config::identifier::shell_word;
use crate::model::facts::QueryResult;
use crate::model::mode::Mode;

/// The directory's `stat` line (`%F %a %U %G`), then its entries, one a line; nothing when it
/// does not exist.
pub fn probe(path: &str) -> String {
    let p = shell_word(path);
    format!("stat -c '%F %a %U %G' -- {p} && {{ ! [ -d {p} ] || ls -A -- {p}; }}")
}

/// The shell that refuses to go on unless `path` is a real directory (no symlink on the way)
/// holding only `may_hold`, or does not exist yet. Run again at apply: the directory may have
/// changed since the plan.
fn guard(path: &str, may_hold: &[String]) -> String {
    let p = shell_word(path);
    let allowed = if may_hold.is_empty() {
        "^$".to_string()
    } else {
        format!("^({})$", may_hold.join("|"))
    };
    format!(
        "if [ -e {p} ] || [ -L {p} ]; then\n\
         \x20 if [ -L {p} ] || [ ! -d {p} ] || [ \"$(readlink -f -- {p})\" != {p} ]; then\n\
         \x20   echo {what_link} >&2; exit 1\n\
         \x20 fi\n\
         \x20 if ls -A -- {p} | grep -qvE {allowed}; then\n\
         \x20   echo {what_full} >&2; exit 1\n\
         \x20 fi\n\
         fi\n",
        allowed = shell_word(&allowed),
        what_link = shell_word(&format!(
            "{path} is not a plain directory (a symlink, or a symlink on its way, or a file): \
             tandem does not take it over; choose another backup.path"
        )),
        what_full = shell_word(&format!(
            "{path} already holds files tandem did not put there: tandem does not take it \
             over; empty it or choose another backup.path"
        )),
    )
}

pub fn plan(
    ctx: &mut Context,
    r: &QueryResult,
    path: &str,
    mode: Mode,
    owner: &str,
    group: &str,
    may_hold: &[String],
) {
    let want = format!("directory {} {owner} {group}", mode.stat_form());
    let mut lines = r.stdout.lines();
    let stat = lines.next().unwrap_or("").trim();
    if r.ok() && stat == want {
        return;
    }
    let script = format!(
        "set -e\n{}install -d -m {m} -o {o} -g {g} {p}\n",
        guard(path, may_hold),
        m = mode,
        o = shell_word(owner),
        g = shell_word(group),
        p = shell_word(path)
    );
    if !r.ok() {
        ctx.push(
            format!("+ directory {path} ({mode} {owner}:{group})"),
            None,
            script,
        );
        return;
    }
    let others: Vec<&str> = lines
        .map(str::trim)
        .filter(|e| !e.is_empty() && !may_hold.iter().any(|m| m == e))
        .collect();
    if !stat.starts_with("directory ") {
        let what = stat.split(' ').next().unwrap_or("");
        ctx.push(
            format!("! directory {path}: a {what} is there, not a directory; refused (choose another backup.path)"),
            None,
            script,
        );
    } else if !others.is_empty() {
        ctx.push(
            format!(
                "! directory {path} holds {} entries tandem did not put there; refused (empty it or choose another backup.path)",
                others.len()
            ),
            None,
            script,
        );
    } else {
        ctx.push(
            format!("~ directory {path} ({mode} {owner}:{group})"),
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

    fn op() -> Op {
        Op::AdoptedDirectory {
            path: "/srv/backup".into(),
            mode: Mode(0o750),
            owner: "postgres".into(),
            group: "postgres".into(),
            may_hold: vec!["archive".into(), "backup".into()],
        }
    }

    #[test]
    fn an_existing_directory_is_taken_only_when_empty_or_already_the_repository() {
        for (status, answer, expected) in [
            (1, "", "+ directory /srv/backup (0750 postgres:postgres)"),
            (0, "directory 755 root root\n", "~ directory /srv/backup"),
            (
                0,
                "directory 700 root root\narchive\nbackup\n",
                "~ directory /srv/backup",
            ),
            (
                0,
                "directory 755 root root\nssh\npasswd\n",
                "! directory /srv/backup holds 2 entries",
            ),
            (
                0,
                "symbolic link 777 root root\n",
                "! directory /srv/backup: a symbolic",
            ),
        ] {
            let shown = summaries(&plan(op(), status, answer, &[]));
            assert!(
                shown.len() == 1 && shown[0].starts_with(expected),
                "{answer:?}: {shown:?}"
            );
        }
        assert!(
            summaries(&plan(
                op(),
                0,
                "directory 750 postgres postgres\narchive\n",
                &[]
            ))
            .is_empty()
        );
    }

    /// The guard, run by sh on real directories: what it refuses, and what it lets through.
    #[test]
    fn the_guard_refuses_a_full_directory_and_a_symlink_at_apply() {
        let dir = tempfile::tempdir().unwrap();
        let run = |path: &std::path::Path| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(super::guard(
                    path.to_str().unwrap(),
                    &["archive".into(), "backup".into()],
                ))
                .output()
                .unwrap()
        };
        let base = dir.path().canonicalize().unwrap();
        assert!(run(&base.join("new")).status.success());
        let repo = base.join("repo");
        std::fs::create_dir_all(repo.join("archive")).unwrap();
        assert!(run(&repo).status.success());
        std::fs::write(repo.join("authorized_keys"), "x").unwrap();
        let full = run(&repo);
        assert!(!full.status.success());
        assert!(String::from_utf8_lossy(&full.stderr).contains("did not put there"));
        let link = base.join("link");
        std::os::unix::fs::symlink(base.join("new-empty"), &link).unwrap();
        std::fs::create_dir(base.join("new-empty")).unwrap();
        let linked = run(&link);
        assert!(!linked.status.success());
        assert!(String::from_utf8_lossy(&linked.stderr).contains("not a plain directory"));
        // A symlink on the way (a parent).
        std::os::unix::fs::symlink(&base, base.join("up")).unwrap();
        assert!(!run(&base.join("up").join("new-empty")).status.success());
    }
}
