//! The `medfusion` command line: glue between the medfusion crates.

mod catalog;
mod cli;
mod cmd;
mod output;

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
