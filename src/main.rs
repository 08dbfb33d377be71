//! tandem's entry point: parse arguments, run, print the error chain, return the exit code.

use std::process::ExitCode;

use clap::Parser;
use tandem::cli;
use tandem::config::diagnostic;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are answers, not errors. A usage error exits 1 like every
            // other error: clap's own 2 would read as "changes pending" to `plan
            // --detailed-exitcode`.
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let json = cli.wants_json();
    let code = match cli::run(cli) {
        Ok(code) => code,
        Err(err) if err.is::<cli::ClosedStdout>() => ExitCode::from(cli::CLOSED_STDOUT_EXIT),
        Err(err) => {
            // A --json reader gets the failure as a document too (stdout), people the screen.
            if json && let Ok(document) = cli::json::failure(&err) {
                let _ = cli::print_stdout(&document);
            }
            // Config diagnostics are complete screens of their own; other errors print as one chain.
            let screen = match err.downcast_ref::<diagnostic::Diagnostics>() {
                Some(diagnostics) => diagnostics.to_string(),
                None => format!("error: {err:#}"),
            };
            cli::to_stderr(format_args!("{}\n", cli::error_screen(&screen)));
            ExitCode::FAILURE
        }
    };
    // Whoever read stderr went away: the run stopped before its next change (apply checks
    // between changes), quietly, with the status SIGPIPE would have given.
    if cli::stderr_closed() {
        return ExitCode::from(cli::CLOSED_STDOUT_EXIT);
    }
    code
}
