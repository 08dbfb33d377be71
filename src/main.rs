//! tandem's entry point: parse arguments, run, print the error chain, return the exit code.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser;
use tandem::{cli, diagnostic};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // Config diagnostics are complete screens of their own; other errors print as one chain.
            if let Some(diagnostics) = err.downcast_ref::<diagnostic::Diagnostics>() {
                eprintln!("{diagnostics}");
            } else {
                eprintln!("error: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}
