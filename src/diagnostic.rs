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
    /// The offending source line, shown under the message.
    pub source_line: Option<String>,
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
        let source_line = (position.line > 0)
            .then(|| source.lines().nth(position.line as usize - 1))
            .flatten()
            .map(str::to_string);
        Diagnostic {
            severity,
            file: file.to_path_buf(),
            position,
            field: field.to_string(),
            message,
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
                .take(self.position.column.saturating_sub(1) as usize)
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
            write!(f, "\n{errors} error(s); nothing was changed.")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
