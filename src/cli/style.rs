//! Colour for people at a terminal: diffs and changes in the plan, PASS/FAIL in verify, and
//! error/warning/fix lines. Pure: it turns text into coloured text; the CLI decides whether
//! (`--color`, NO_COLOR, and whether the stream is a terminal) and prints.

/// `--color`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when the stream is a terminal and NO_COLOR is not set.
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour a stream. NO_COLOR (set and not empty, per no-color.org) turns
    /// `auto` off; an explicit `always` still wins.
    pub fn enabled(self, is_terminal: bool, no_color: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_terminal && !no_color,
        }
    }
}

const RESET: &str = "\x1b[0m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const BOLD_RED: &str = "\x1b[1;31m";
const BOLD_YELLOW: &str = "\x1b[1;33m";

/// Every escape sequence tandem itself writes: the only ones `output::visible` lets through.
pub(crate) const OWN_SEQUENCES: [&str; 8] =
    [RESET, RED, GREEN, YELLOW, CYAN, BOLD, BOLD_RED, BOLD_YELLOW];

/// The colour of one line of a plan. Changes are indented by 2 and start with `+` (adds),
/// `-` (removes) or `~` (modifies); their diffs are indented by 6, the diff's own marker
/// right after (so a context line that begins with `-` stays plain).
fn plan_line(line: &str) -> Option<&'static str> {
    if let Some(diff) = line.strip_prefix("      ") {
        if diff.starts_with("+++ ") || diff.starts_with("--- ") {
            Some(BOLD)
        } else if diff.starts_with("@@") {
            Some(CYAN)
        } else if diff.starts_with('+') {
            Some(GREEN)
        } else if diff.starts_with('-') {
            Some(RED)
        } else {
            None
        }
    } else if let Some(change) = line.strip_prefix("  ") {
        match change.chars().next() {
            Some('+') => Some(GREEN),
            Some('-') => Some(RED),
            Some('~') => Some(YELLOW),
            _ => None,
        }
    } else if line.starts_with("Plan: ") || line.starts_with("No changes") {
        Some(BOLD)
    } else {
        None
    }
}

/// The colour of one line of verify's report.
fn verify_line(line: &str) -> Option<&'static str> {
    if line.starts_with("PASS ") || line.starts_with("verify: all") {
        Some(GREEN)
    } else if line.starts_with("FAIL ") || line.starts_with("verify: ") {
        Some(BOLD_RED)
    } else {
        None
    }
}

/// The colour of one line of an error or warning screen.
fn diagnostic_line(line: &str) -> Option<&'static str> {
    if line.starts_with("error") {
        Some(BOLD_RED)
    } else if line.starts_with("warning") {
        Some(BOLD_YELLOW)
    } else if line.trim_start().starts_with("= fix:") || line.starts_with("hint:") {
        Some(CYAN)
    } else {
        None
    }
}

fn paint(text: &str, colour_of: fn(&str) -> Option<&'static str>) -> String {
    text.split('\n')
        .map(|line| match colour_of(line) {
            Some(colour) if !line.is_empty() => format!("{colour}{line}{RESET}"),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn plan(text: &str) -> String {
    paint(text, plan_line)
}

pub fn verify(text: &str) -> String {
    paint(text, verify_line)
}

pub fn diagnostic(text: &str) -> String {
    paint(text, diagnostic_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_the_terminal_and_no_color() {
        assert!(ColorChoice::Auto.enabled(true, false));
        assert!(!ColorChoice::Auto.enabled(false, false));
        assert!(!ColorChoice::Auto.enabled(true, true));
        assert!(ColorChoice::Always.enabled(false, true));
        assert!(!ColorChoice::Never.enabled(true, false));
    }

    #[test]
    fn lines_are_coloured_by_what_they_say_and_the_text_is_kept() {
        let shown = "app1 (debian 12): 2 change(s)\n  + apt install nginx\n      --- a (now)\n      -old\n      +new\n       -context\n  ~ file /etc/x\nPlan: 2 change(s).";
        let painted = plan(shown);
        assert!(painted.contains("\x1b[32m  + apt install nginx\x1b[0m"));
        assert!(painted.contains("\x1b[31m      -old\x1b[0m"));
        assert!(painted.contains("\x1b[1m      --- a (now)\x1b[0m"));
        assert!(
            painted.starts_with("app1 (debian 12)"),
            "headers stay plain"
        );
        assert!(
            painted.contains("\n       -context\n"),
            "context stays plain"
        );
        let stripped = painted
            .replace(RESET, "")
            .replace(GREEN, "")
            .replace(RED, "");
        let stripped = stripped.replace(YELLOW, "").replace(BOLD, "");
        assert_eq!(stripped, shown);
        assert!(verify("FAIL db: x\nverify: 1 of 2 checks FAILED").starts_with(BOLD_RED));
        assert!(verify("PASS db: x").starts_with(GREEN));
        assert!(diagnostic("error: x\n  = fix: y").contains("\x1b[36m  = fix: y"));
    }
}
