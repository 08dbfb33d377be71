//! `Verification`: proof that the deployment works and is closed. Each check passes or fails
//! with what was seen and, on failure, what to do. Each wing adds its own checks.

use std::fmt;

use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    pub checks: Vec<Check>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn add(
        &mut self,
        server: &str,
        name: &str,
        ok: bool,
        detail: impl Into<String>,
        hint: &str,
    ) {
        self.checks.push(Check {
            server: server.to_string(),
            name: name.to_string(),
            ok,
            detail: detail.into(),
            hint: (!ok).then(|| hint.to_string()),
        });
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub server: String,
    pub name: String,
    pub ok: bool,
    /// What was seen.
    pub detail: String,
    /// What to do when it failed.
    pub hint: Option<String>,
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            writeln!(
                f,
                "{} {}: {} ({})",
                if c.ok { "PASS" } else { "FAIL" },
                c.server,
                c.name,
                c.detail
            )?;
            if let Some(h) = &c.hint {
                writeln!(f, "     fix: {h}")?;
            }
        }
        let failed = self.checks.iter().filter(|c| !c.ok).count();
        if failed == 0 {
            write!(f, "verify: all {} checks passed", self.checks.len())
        } else {
            write!(f, "verify: {failed} of {} checks FAILED", self.checks.len())
        }
    }
}
