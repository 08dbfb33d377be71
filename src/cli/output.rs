//! Where the CLI prints: stdout (`out`), stderr (`to_stderr`, through `say!`), colours, the
//! progress reporter, the question before a change. A closed pipe ends tandem quietly (141).

use super::*;

/// Whether stdout and stderr get colour, decided once from `--color`.
pub(crate) static COLOURS: std::sync::OnceLock<(bool, bool)> = std::sync::OnceLock::new();

pub(crate) fn decide_colours(choice: crate::cli::style::ColorChoice) {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let _ = COLOURS.set((
        choice.enabled(std::io::stdout().is_terminal(), no_color),
        choice.enabled(std::io::stderr().is_terminal(), no_color),
    ));
}

pub(crate) fn colours() -> (bool, bool) {
    COLOURS.get().copied().unwrap_or((false, false))
}

/// An error screen for stderr, coloured when stderr is.
pub fn error_screen(text: &str) -> String {
    if colours().1 {
        crate::cli::style::diagnostic(text)
    } else {
        text.to_string()
    }
}

/// `text` on stdout, through `paint` when stdout gets colour.
pub(crate) fn out_painted(text: &str, paint: fn(&str) -> String) -> anyhow::Result<()> {
    if colours().0 {
        out(&paint(text))
    } else {
        out(text)
    }
}

/// `text` as it may reach a terminal. Much of what tandem prints comes from the servers (a
/// script's error, a release's name and who shipped it, log lines, verify's findings), and a
/// broken-into server, or a request path in a log, could carry control sequences that move
/// the cursor, rewrite a FAIL line (`\r`), retitle the window or write the clipboard (OSC
/// 52). Every control character but newline and tab is shown escaped (`\x1b`), except the
/// colour sequences tandem writes itself (`style::OWN_SEQUENCES`: colours, bold, never
/// concealed text).
pub(crate) fn visible(text: &str) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write;
    let controlled = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(controlled) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(own) = crate::cli::style::OWN_SEQUENCES
            .iter()
            .find(|own| rest.starts_with(**own))
        {
            shown.push_str(own);
            rest = &rest[own.len()..];
            continue;
        }
        if controlled(c) {
            let _ = write!(shown, "\\x{:02x}", u32::from(c));
        } else {
            shown.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(shown)
}

/// Whether stderr's reader went away (`tandem check 2>&1 | head -1`): remembered by `say`,
/// never a panic; tandem then stops before its next change and exits 141, as with stdout.
pub(crate) static STDERR_CLOSED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

pub fn stderr_closed() -> bool {
    STDERR_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Writes to stderr. A closed stderr is remembered (`stderr_closed`), not a panic as
/// `eprintln!`'s would be; nothing more is written to it.
pub fn to_stderr(text: std::fmt::Arguments) {
    use std::io::Write;
    if stderr_closed() {
        return;
    }
    let text = std::fmt::format(text);
    let mut stderr = std::io::stderr().lock();
    if let Err(e) = stderr
        .write_all(visible(&text).as_bytes())
        .and_then(|()| stderr.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        STDERR_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// stdout was closed by its reader (`tandem plan | head -1`): tandem ends quietly, with the
/// exit status of a process that SIGPIPE ended (141), before changing anything more.
#[derive(Debug)]
pub struct ClosedStdout;

impl std::fmt::Display for ClosedStdout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for ClosedStdout {}

/// The exit status for `ClosedStdout`.
pub const CLOSED_STDOUT_EXIT: u8 = 141;

/// Writes `text` and a newline to stdout.
pub(crate) fn out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{}", visible(text)).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ClosedStdout.into()),
        result => Ok(result?),
    }
}

/// Progress for people: one line per event on stderr, prefixed with the server; with
/// `verbose`, remote output too (`server | line`).
pub(crate) struct StderrReport {
    pub(crate) verbose: bool,
}

/// `-v`, decided once.
pub(crate) static VERBOSE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

pub(crate) fn report() -> std::sync::Arc<StderrReport> {
    std::sync::Arc::new(StderrReport {
        verbose: VERBOSE.load(std::sync::atomic::Ordering::Relaxed),
    })
}

impl crate::model::report::Report for StderrReport {
    fn progress(&self, server: &str, line: &str) {
        say!("{server}: {line}");
    }

    fn remote_output(&self, server: &str, line: &str) {
        if self.verbose {
            say!("{server} | {line}");
        }
    }

    fn debug(&self, line: &str) {
        if std::env::var_os("TANDEM_DEBUG").is_some() {
            say!("debug: {line}");
        }
    }

    fn closed(&self) -> bool {
        stderr_closed()
    }
}

/// Asks on the terminal whether to go ahead (`--yes` answers for the user). Without a
/// terminal and without `--yes`, refuses: CI must say so explicitly.
pub(crate) fn confirm(question: &str, yes: bool) -> anyhow::Result<bool> {
    use std::io::IsTerminal;
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("no terminal to ask on: pass --yes to go ahead without asking");
    }
    say_part!("{question} Type yes: ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

#[cfg(test)]
mod tests {
    use super::visible;

    /// What a broken-into server could send is shown, not obeyed; tandem's own colours,
    /// newlines, tabs and any printable text (UTF-8 included) pass unchanged.
    #[test]
    fn control_sequences_from_the_servers_are_shown_escaped() {
        assert_eq!(
            visible("release \x1b]52;c;ZXZpbA==\x07r1"),
            "release \\x1b]52;c;ZXZpbA==\\x07r1"
        );
        assert_eq!(visible("FAIL app1\rPASS app1"), "FAIL app1\\x0dPASS app1");
        assert_eq!(visible("\x1b[8mhidden\x1b[2J"), "\\x1b[8mhidden\\x1b[2J");
        let ours = crate::cli::style::diagnostic("error: naïve\tcafé\nnext");
        assert_eq!(visible(&ours), ours);
        assert!(matches!(
            visible("plain text, ünïcode"),
            std::borrow::Cow::Borrowed(_)
        ));
        // A sequence of ours split by a control character is not ours.
        assert_eq!(visible("\x1b[3\x001m"), "\\x1b[3\\x001m");
    }
}
