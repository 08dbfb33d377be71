//! `Diagnostic`: one problem found in a user's file, with file:line:column, the field, a source
//! snippet and the fix. Errors and warnings share the shape; only the severity differs.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::yaml::Position;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub position: Position,
    /// Dotted path of the field, e.g. `servers[1].internal_ip`; empty when not known.
    pub field: String,
    pub message: String,
    /// What to do about it, in one sentence.
    pub fix: Option<String>,
    /// The offending source line (an excerpt of a long one), shown under the message.
    pub source_line: Option<String>,
    /// Where the caret goes in `source_line` (1-based).
    caret_column: u64,
}

impl Diagnostic {
    pub fn error(
        file: &Path,
        source: &str,
        position: Position,
        field: &str,
        message: String,
    ) -> Self {
        Self::new(Severity::Error, file, source, position, field, message)
    }

    pub fn warning(
        file: &Path,
        source: &str,
        position: Position,
        field: &str,
        message: String,
    ) -> Self {
        Self::new(Severity::Warning, file, source, position, field, message)
    }

    fn new(
        severity: Severity,
        file: &Path,
        source: &str,
        position: Position,
        field: &str,
        message: String,
    ) -> Self {
        let line = (position.line > 0)
            .then(|| source.lines().nth(position.line as usize - 1))
            .flatten();
        let mut message = message;
        let mut source_line = line.map(str::to_string);
        if let Some(value) = secret_value(source, position.line) {
            // A value where a secret belongs may be the secret itself: never echo it.
            if !value.is_empty() {
                message = message.replace(&value, "<not shown>");
            }
            source_line = source_line.map(|l| mask_secret_line(&l));
        } else if let (Some(l), Some(from)) = (line, secret_from(source, position.line)) {
            // Under a key that says where a secret comes from (`django.secret_env`, the TSIG
            // secret, ...): a mistake there may be the secret itself pasted in, so neither the
            // rest of its line nor its words are echoed.
            for word in l[from..]
                .split(|c: char| c.is_whitespace() || "{}[],:\"'".contains(c))
                .filter(|w| w.len() >= 3 && !matches!(*w, "env" | "file"))
            {
                message = message.replace(word, "<not shown>");
            }
            source_line = Some(format!("{} <not shown>", l[..from].trim_end()));
        }
        let (source_line, column) = match source_line {
            Some(l) => {
                let (excerpt, column) = excerpt(&l, position.column);
                (Some(excerpt), column)
            }
            None => (None, position.column),
        };
        Diagnostic {
            severity,
            file: file.to_path_buf(),
            position,
            caret_column: column,
            field: field.to_string(),
            message: bounded(message),
            fix: None,
            source_line,
        }
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{label}: {}", self.file.display())?;
        if self.position.line > 0 {
            write!(f, ":{}:{}", self.position.line, self.position.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        writeln!(f, ": {}", self.message)?;
        if let Some(line) = &self.source_line {
            let number = self.position.line.to_string();
            let gutter = " ".repeat(number.len());
            let caret_pad: String = line
                .chars()
                .take(self.caret_column.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{gutter} |")?;
            writeln!(f, "{number} | {line}")?;
            writeln!(f, "{gutter} | {caret_pad}^")?;
        }
        if let Some(fix) = &self.fix {
            writeln!(f, "  = fix: {fix}")?;
        }
        Ok(())
    }
}

/// Longest message or source excerpt shown, in characters: a 10 MB value is shown as a piece.
const SHOWN: usize = 160;

fn bounded(message: String) -> String {
    let count = message.chars().count();
    if count <= 2 * SHOWN {
        return message;
    }
    let head: String = message.chars().take(2 * SHOWN).collect();
    format!("{head}... ({count} characters in all)")
}

/// A window of at most `SHOWN` characters of `line` around `column`, and the column in it.
fn excerpt(line: &str, column: u64) -> (String, u64) {
    let count = line.chars().count();
    if count <= SHOWN {
        return (line.to_string(), column);
    }
    let at = (column.max(1) - 1) as usize;
    let start = at
        .saturating_sub(SHOWN / 2)
        .min(count.saturating_sub(SHOWN));
    let piece: String = line.chars().skip(start).take(SHOWN).collect();
    let before = if start > 0 { "..." } else { "" };
    let after = if start + SHOWN < count { "..." } else { "" };
    let column = (at - start) as u64 + 1 + before.len() as u64;
    (format!("{before}{piece}{after}"), column)
}

/// When line `line` (1-based) holds the value of a `password:` key, that value as written
/// (unquoted): `password: hunter2`, or a lone value under a bare `password:` line.
fn secret_value(source: &str, line: u64) -> Option<String> {
    if line == 0 {
        return None;
    }
    let lines: Vec<&str> = source.lines().collect();
    let this = *lines.get(line as usize - 1)?;
    let value_of = |l: &str| -> Option<String> {
        let rest = l.trim_start().trim_start_matches("- ").trim_start();
        let value = rest
            .strip_prefix("password")?
            .trim_start()
            .strip_prefix(':')?;
        Some(value.trim().trim_matches(['"', '\'']).to_string())
    };
    if let Some(value) = value_of(this) {
        return Some(value);
    }
    let previous = lines[..line as usize - 1]
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())?;
    match value_of(previous) {
        Some(v) if v.is_empty() => Some(this.trim().trim_matches(['"', '\'']).to_string()),
        _ => None,
    }
}

/// Keys whose values say where a secret comes from: a mistake there may be the secret itself.
const SECRET_KEYS: &[&str] = &["secret_env:", "tsig_secret:", "key:"];

/// Where line `line` (1-based) stops being safe to show, when it is under a key of
/// `SECRET_KEYS` (`django.secret_env`, `tls.acme.dns.*.secret_env`, the TSIG secret,
/// `tls.key`): right after that key when the line holds it (`{tsig_secret: ...}` in flow
/// style too), else after the line's own key when an ancestor line is one (block style).
fn secret_from(source: &str, line: u64) -> Option<usize> {
    let lines: Vec<&str> = source.lines().collect();
    let index = (line as usize)
        .checked_sub(1)
        .filter(|&i| i < lines.len())?;
    let holds_key = |l: &str| {
        SECRET_KEYS.iter().find_map(|k| {
            l.match_indices(k).find_map(|(i, _)| {
                let before = l[..i].chars().next_back();
                let starts_word = before.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
                starts_word.then_some(i + k.len())
            })
        })
    };
    let this = lines[index];
    if let Some(from) = holds_key(this) {
        return Some(from);
    }
    let indent = |l: &str| l.len() - l.trim_start().len();
    // Up through the ancestors: each nearer line indented less than the one before.
    let mut depth = indent(this);
    for l in lines[..index].iter().rev().filter(|l| !l.trim().is_empty()) {
        if indent(l) < depth {
            if holds_key(l).is_some() {
                return Some(this.find(':').map_or(indent(this), |i| i + 1));
            }
            depth = indent(l);
            if depth == 0 {
                break;
            }
        }
    }
    None
}

/// The line with everything after `password:` (or the whole lone value) replaced.
fn mask_secret_line(line: &str) -> String {
    match line.find("password") {
        Some(i) => match line[i..].find(':') {
            Some(j) => format!("{} <not shown>", &line[..i + j + 1]),
            None => "<not shown>".into(),
        },
        None => {
            let indent = line.len() - line.trim_start().len();
            format!("{}<not shown>", &line[..indent])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_at(source: &str, line: u64, column: u64, message: &str) -> String {
        Diagnostic::error(
            Path::new("t.yml"),
            source,
            Position { line, column },
            "",
            message.into(),
        )
        .to_string()
    }

    #[test]
    fn a_value_where_the_password_belongs_is_never_echoed() {
        let shown = error_at(
            "database:\n  password: hunter2\n",
            2,
            13,
            "unknown value `hunter2`",
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("password: <not shown>"), "{shown}");
        let block = error_at(
            "database:\n  password:\n    'hunter2'\n",
            3,
            5,
            "unknown value `hunter2`",
        );
        assert!(!block.contains("hunter2"), "{block}");
    }

    #[test]
    fn a_secret_env_entry_is_never_echoed() {
        for (source, line) in [
            (
                "django:\n  secret_env: {DSN: {env: \"https://k3y@sentry\"}}\n",
                2,
            ),
            (
                "django:\n  secret_env:\n    DSN: {env: https://k3y@sentry}\n",
                3,
            ),
            (
                "django:\n  secret_env:\n    DSN:\n      https://k3y@sentry\n",
                4,
            ),
        ] {
            let shown = error_at(source, line, 9, "unknown value `https://k3y@sentry`");
            assert!(!shown.contains("k3y"), "{shown}");
            assert!(shown.contains("<not shown>"), "{shown}");
        }
        // Lines elsewhere are shown as they are.
        let shown = error_at("django:\n  env: {DSN: x}\n", 2, 8, "`DSN` is bad");
        assert!(shown.contains("env: {DSN: x}"), "{shown}");
    }

    #[test]
    fn a_huge_value_is_shown_as_a_bounded_excerpt() {
        let line = format!("project: {}", "x".repeat(10_000_000));
        let shown = error_at(
            &line,
            1,
            10,
            &format!("`{}` is not a safe name", &line[9..]),
        );
        assert!(shown.len() < 2_000, "{} bytes", shown.len());
        assert!(shown.contains("characters in all"), "{shown}");
    }
}

/// Every diagnostic found in one file; an `Err` when at least one is an error.
#[derive(Debug)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        let errors = self
            .0
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        if errors > 0 {
            write!(
                f,
                "\n{errors} error(s) in the config; no server was contacted."
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
