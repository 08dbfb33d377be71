//! `Diagnostic`: one problem found in a user's file, with file:line:column, the field, a source
//! snippet and the fix. Errors and warnings share the shape; only the severity differs.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::yaml::{Position, Secrets};

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

/// A user's file as diagnostics show it: its text and where its secrets are.
pub struct Source<'a> {
    pub text: &'a str,
    pub secrets: Secrets,
}

impl<'a> Source<'a> {
    /// A file whose schema has no secret fields (a playbook).
    pub fn plain(text: &'a str) -> Self {
        Source {
            text,
            secrets: Secrets::default(),
        }
    }
}

impl Diagnostic {
    pub fn error(
        file: &Path,
        source: &Source,
        position: Position,
        field: &str,
        message: String,
    ) -> Self {
        Self::new(Severity::Error, file, source, position, field, message)
    }

    pub fn warning(
        file: &Path,
        source: &Source,
        position: Position,
        field: &str,
        message: String,
    ) -> Self {
        Self::new(Severity::Warning, file, source, position, field, message)
    }

    fn new(
        severity: Severity,
        file: &Path,
        source: &Source,
        position: Position,
        field: &str,
        message: String,
    ) -> Self {
        // The line with every secret field masked, whatever the YAML style: a value where a
        // secret belongs may be the secret itself pasted in, so it is never echoed, neither in
        // the excerpt nor in the message.
        let line = (position.line > 0)
            .then(|| line_at(source.text, position.line as usize))
            .flatten();
        let source_line = line.map(|(at, l)| source.secrets.mask_line(at, l));
        let message = source.secrets.mask_message(&message);
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

/// Line `number` (1-based) of `text` without its line break, and the byte it starts at.
fn line_at(text: &str, number: usize) -> Option<(usize, &str)> {
    let mut at = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if i + 1 == number {
            return Some((at, line.trim_end_matches(['\n', '\r'])));
        }
        at += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_at(source: &str, line: u64, column: u64, message: &str) -> String {
        Diagnostic::error(
            Path::new("t.yml"),
            &Source::plain(source),
            Position { line, column },
            "",
            message.into(),
        )
        .to_string()
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
