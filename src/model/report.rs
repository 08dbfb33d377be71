//! `Report`: where progress lines from the engine, the locks and apply go. The library never
//! prints (Cargo.toml denies print macros outside the CLI); the CLI hands in its reporter.

/// Receives progress as it happens.
pub trait Report: Send + Sync {
    /// One line about `server` (a change applied, a handler run, a lock waited for).
    fn progress(&self, server: &str, line: &str);
    /// One line a remote step wrote as it ran (apt, pip, migrate): shown with `-v`.
    fn remote_output(&self, server: &str, line: &str);
    /// Detail for `TANDEM_DEBUG`.
    fn debug(&self, line: &str);
    /// Whoever reads the progress went away (a closed stderr): a run stops before its next
    /// change, as it does when stdout is closed.
    fn closed(&self) -> bool {
        false
    }
}

/// A reporter that keeps nothing (tests, callers that only want the result).
pub struct Quiet;

impl Report for Quiet {
    fn progress(&self, _server: &str, _line: &str) {}
    fn remote_output(&self, _server: &str, _line: &str) {}
    fn debug(&self, _line: &str) {}
}
