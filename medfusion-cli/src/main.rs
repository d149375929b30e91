//! The `medfusion` command line: glue between the medfusion crates.

// Subcommands take their parsed arguments by value, as clap hands them over.
#![allow(clippy::needless_pass_by_value)]

mod catalog;
mod cli;
mod cmd;
mod observer;
mod output;
mod progress;
mod record;
mod report;
mod store;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command.run() {
        Ok(code) => code,
        Err(err) => {
            output::print_error(&err);
            output::exit_code(&err)
        }
    }
}
