//! The error type of this crate.

use std::path::PathBuf;

/// What went wrong talking to Slurm or reading a job's files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Slurm command could not be started (not installed, not on the `PATH`).
    #[error("cannot run `{command}` (is Slurm installed and on the PATH?)")]
    Spawn {
        /// The command.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A Slurm command failed or answered what it should not.
    #[error("`{command}` failed: {reason}")]
    Command {
        /// The command line.
        command: String,
        /// What it said.
        reason: String,
    },
    /// A job's files could not be written or read.
    #[error("cannot {what} `{}`", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The executor settings are not usable.
    #[error("invalid Slurm setting `{key}`: {reason}")]
    Setting {
        /// The setting.
        key: String,
        /// Why.
        reason: String,
    },
}
