//! The `medfusion` command line: glue between the medfusion crates.

// Subcommands take their parsed arguments by value, as clap hands them over.
#![allow(clippy::needless_pass_by_value)]

/// `println!` for the CLI's output: a closed pipe (`medfusion nodes | head -1`) or a closed
/// stdout is not an error, the rest of the output is dropped.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::write_out(format_args!($($arg)*), true) };
}

/// `print!` for the CLI's output (see [`outln`]).
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_out(format_args!($($arg)*), false) };
}

/// `eprintln!` for messages, progress and errors: a closed stderr (`medfusion run ... 2>&1 |
/// head -3`) never stops a run or panics; the line is dropped.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::write_err(format_args!($($arg)*)) };
}

mod catalog;
mod cli;
mod cmd;
mod live;
mod observer;
mod output;
mod progress;
mod store;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging();
    // The binary owns the process, so it opts in to what the libraries leave alone: glibc
    // keeps freed training buffers instead of mapping them anew each step (before any thread
    // starts), and CUDA builds keep compiled GPU kernels on disk (before any device is used;
    // `MEDFUSION_KERNEL_CACHE=0` opts out).
    medfusion_train::tune_allocator();
    if std::env::var_os("MEDFUSION_KERNEL_CACHE").is_none_or(|v| v != "0") {
        let _ = medfusion_train::configure_kernel_cache(None);
    }
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
    // Colour only for a person at a terminal, and never when NO_COLOR is set
    // (https://no-color.org): logs and pipes get plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}
