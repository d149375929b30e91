//! The `medfusion` command line: glue between the medfusion crates.

// Subcommands take their parsed arguments by value, as clap hands them over.
#![allow(clippy::needless_pass_by_value)]

mod catalog;
mod cli;
mod cmd;
mod live;
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
    init_logging();
    match cli.command.run() {
        Ok(code) => code,
        Err(err) => {
            output::print_error(&err);
            output::exit_code(&err)
        }
    }
}

/// Warnings of the libraries (for example mixed precision asked for on the CPU) go to
/// stderr; `MEDFUSION_LOG` (`RUST_LOG` syntax) changes what is shown. Resource alerts are
/// shown by the commands themselves, so the monitor's own log lines are off by default.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("MEDFUSION_LOG")
        .ok()
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new("warn,medfusion_monitor=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}
