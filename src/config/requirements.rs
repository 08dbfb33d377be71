//! What a pip requirements file installs, read as pip reads it (comments, line continuations,
//! `-r` includes, `-e ...#egg=`, `name @ url`, extras and markers), so `check` can say before
//! the first release that gunicorn, a PostgreSQL driver or Celery is missing: a release
//! installs exactly that file, and the server would find out after minutes of pip.

use std::collections::BTreeSet;
use std::path::Path;

/// Files deep that `-r` includes are followed (a cycle stops there).
const MAX_DEPTH: usize = 8;

/// The normalised (PEP 503: lowercase, runs of `-_.` as `-`) names of the distributions
/// `path` asks for, with those of the files it includes; the includes it could not read.
pub fn names(path: &Path) -> (BTreeSet<String>, Vec<String>) {
    let mut found = BTreeSet::new();
    let mut unread = Vec::new();
    read(path, 0, &mut found, &mut unread);
    (found, unread)
}

fn read(path: &Path, depth: usize, found: &mut BTreeSet<String>, unread: &mut Vec<String>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        unread.push(path.display().to_string());
        return;
    };
    let base = path.parent().unwrap_or(Path::new("."));
    for line in logical_lines(&text) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["-r" | "--requirement", file, ..] if depth < MAX_DEPTH => {
                read(&base.join(file), depth + 1, found, unread)
            }
            [option, ..] if option.starts_with("-r") && option.len() > 2 && depth < MAX_DEPTH => {
                read(&base.join(&option[2..]), depth + 1, found, unread)
            }
            [option, ..] if option.starts_with("--requirement=") && depth < MAX_DEPTH => read(
                &base.join(&option["--requirement=".len()..]),
                depth + 1,
                found,
                unread,
            ),
            ["-e" | "--editable", target, ..] => found.extend(egg_name(target)),
            [option, ..] if option.starts_with('-') => {}
            _ => found.extend(requirement_name(&line)),
        }
    }
}

/// The lines pip sees: `\` continuations joined, comments (`#` at the start or after
/// whitespace) dropped.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let without_comment = match raw.find(" #").or_else(|| raw.find("\t#")) {
            Some(i) => &raw[..i],
            None if raw.trim_start().starts_with('#') => "",
            None => raw,
        };
        match without_comment.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(without_comment);
                lines.push(std::mem::take(&mut current).trim().to_string());
            }
        }
    }
    if !current.trim().is_empty() {
        lines.push(current.trim().to_string());
    }
    lines
}

/// The name a requirement line starts with: `psycopg[binary]>=3.1; python_version>"3"` is
/// psycopg, `pkg @ https://...` is pkg; a bare URL or path names none.
fn requirement_name(line: &str) -> Option<String> {
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(line.len());
    let name = &line[..end];
    let rest = line[end..].trim_start();
    let is_path = rest.starts_with(':') || rest.starts_with('/') || name.ends_with(".whl");
    (!name.is_empty() && !is_path).then(|| normalise(name))
}

/// `-e git+https://...#egg=name` names `name`; a local path names none we can tell.
fn egg_name(target: &str) -> Option<String> {
    let (_, fragment) = target.split_once("#egg=")?;
    requirement_name(fragment.split('&').next().unwrap_or(""))
}

/// PEP 503's normal form of a distribution name.
pub fn normalise(name: &str) -> String {
    let mut out = String::new();
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_run = false;
        }
    }
    out
}

/// The PostgreSQL drivers Django's backend accepts.
pub const POSTGRES_DRIVERS: [&str; 4] =
    ["psycopg", "psycopg-binary", "psycopg2", "psycopg2-binary"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_as_pip_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("reqs")).unwrap();
        std::fs::write(
            dir.path().join("reqs/base.txt"),
            "# shared\nDjango>=4.2,<6  # the framework\nGunicorn==22.0 \\\n  --hash=sha256:abc\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("reqs/prod.txt"),
            "-r base.txt\n--index-url https://pypi.example.com/simple\n\
             psycopg[binary]>=3.1; python_version >= \"3.8\"\n\
             celery[redis] @ https://example.com/celery.tar.gz\n\
             -e git+https://example.com/t.git#egg=tenant_schemas.celery\n\
             ./vendored/thing.whl\n-r missing.txt\n",
        )
        .unwrap();
        let (names, unread) = names(&dir.path().join("reqs/prod.txt"));
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            [
                "celery",
                "django",
                "gunicorn",
                "psycopg",
                "tenant-schemas-celery"
            ]
        );
        assert_eq!(unread.len(), 1);
        assert!(unread[0].ends_with("missing.txt"));
    }

    #[test]
    fn an_include_cycle_ends() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "-r a.txt\ngunicorn\n").unwrap();
        let (names, _) = names(&dir.path().join("a.txt"));
        assert!(names.contains("gunicorn"));
    }
}
