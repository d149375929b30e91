//! The crate's error type.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while saving, listing, loading or pruning checkpoints.
///
/// Every variant that concerns a file names it; the underlying cause is the error's
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call on `path` failed.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        /// What was being done, such as "create directory" or "write".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A workflow, node, metric or checkpoint id cannot be used as part of a file name.
    #[error("invalid {kind} `{id}`: {reason} (use letters, digits, `_`, `-` and `.`)")]
    InvalidId {
        /// What the id names: "workflow id", "node id", "checkpoint id".
        kind: &'static str,
        /// The offending id.
        id: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No checkpoint with this id exists (or it has no valid manifest).
    #[error("no checkpoint `{id}` in `{}`", dir.display())]
    NotFound {
        /// The checkpoint id asked for.
        id: String,
        /// The checkpoint directory searched.
        dir: PathBuf,
    },
    /// A path inside the checkpoint directory is a symbolic link, so following it could
    /// leave the checkpoint directory.
    #[error("`{}` is a symbolic link; checkpoints never follow links", path.display())]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// `manifest.json` cannot be parsed or does not describe this checkpoint.
    #[error("invalid manifest `{}`: {reason}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// The JSON error, where parsing failed.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// A file of a checkpoint does not match its manifest.
    #[error("corrupt checkpoint file `{}`: {problem}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// How it differs from the manifest.
        problem: Corruption,
    },
    /// A JSON file of a checkpoint cannot be parsed, or a value cannot be written as JSON.
    #[error("invalid JSON in `{}`", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A safetensors file cannot be parsed.
    #[error("invalid safetensors data in `{}`", path.display())]
    Safetensors {
        /// The file (or `<memory>` for an in-memory buffer).
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// A safetensors file uses a dtype this crate does not represent.
    #[error("tensor `{name}` in `{}` has unsupported dtype {dtype}", path.display())]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The dtype as safetensors spells it.
        dtype: String,
    },
    /// A tensor's bytes do not fit its dtype and shape, or its name is reserved.
    #[error("invalid tensor{}: {reason}", name.as_deref().map(|n| format!(" `{n}`")).unwrap_or_default())]
    InvalidTensor {
        /// The tensor's name, where known.
        name: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// A metric value cannot be stored (NaN or infinite).
    #[error("metric `{name}` is {value}; only finite values can be stored")]
    InvalidMetric {
        /// The metric's name.
        name: String,
        /// Its value.
        value: f64,
    },
    /// A checkpoint was saved, but the rotation after it failed.
    #[error("checkpoint `{saved}` was saved, but removing old checkpoints failed")]
    Rotation {
        /// The id of the saved checkpoint.
        saved: String,
        /// Why the rotation failed.
        #[source]
        source: Box<Error>,
    },
    /// Saves handed to the background writer failed after their handles were dropped.
    #[error("{} background checkpoint save(s) failed", rest.len() + 1)]
    Background {
        /// The first failure.
        #[source]
        first: Box<Error>,
        /// The failures after it, oldest first.
        rest: Vec<Error>,
    },
    /// The checkpoint directory to inspect does not exist.
    #[error("checkpoint directory `{}` does not exist", dir.display())]
    NoCheckpointDir {
        /// The directory.
        dir: PathBuf,
    },
    /// Another run of the workflow holds its run lock
    /// (see [`CheckpointManager::lock_workflow`](crate::CheckpointManager::lock_workflow)).
    #[error(
        "workflow `{workflow_id}` is already running: `{}` is locked by {}; wait for that run \
         to end, or use another checkpoint directory (`--checkpoint-dir`)",
        path.display(),
        holder(*pid, since.as_deref())
    )]
    WorkflowLocked {
        /// The workflow.
        workflow_id: String,
        /// The lock file.
        path: PathBuf,
        /// The process holding the lock, as it wrote it into the lock file (`None` when
        /// the file does not say, for example while the holder is still starting).
        pid: Option<u32>,
        /// When the holder took the lock, RFC 3339 in UTC, where the file says.
        since: Option<String>,
    },
    /// The background writer thread is gone (it panicked).
    #[error("the background checkpoint writer for `{}` stopped", dir.display())]
    WriterStopped {
        /// The checkpoint directory it served.
        dir: PathBuf,
    },
}

/// How a checkpoint file differs from its manifest entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Corruption {
    /// The file is missing.
    Missing,
    /// The file is not a regular file.
    NotAFile,
    /// The file's size differs.
    Size {
        /// The size in the manifest.
        expected: u64,
        /// The size on disk.
        actual: u64,
    },
    /// The file's checksum (xxh3-128) differs.
    Checksum {
        /// The checksum in the manifest.
        expected: String,
        /// The checksum of the bytes on disk.
        actual: String,
    },
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Corruption::Missing => f.write_str("the file is missing"),
            Corruption::NotAFile => f.write_str("not a regular file"),
            Corruption::Size { expected, actual } => {
                write!(f, "size is {actual} bytes, the manifest says {expected}")
            }
            Corruption::Checksum { expected, actual } => {
                write!(
                    f,
                    "xxh3-128 checksum is {actual}, the manifest says {expected}"
                )
            }
        }
    }
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub(crate) fn io(action: &'static str, path: impl AsRef<Path>, source: io::Error) -> Error {
        Error::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A closure building an [`Error::Io`], for `map_err`.
    pub(crate) fn io_at(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::io(action, path, source)
    }

    /// The path this error is about, where it has one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. }
            | Error::Symlink { path }
            | Error::Manifest { path, .. }
            | Error::Corrupt { path, .. }
            | Error::Json { path, .. }
            | Error::Safetensors { path, .. }
            | Error::UnsupportedDtype { path, .. }
            | Error::WorkflowLocked { path, .. } => Some(path),
            Error::NotFound { dir, .. }
            | Error::WriterStopped { dir }
            | Error::NoCheckpointDir { dir } => Some(dir),
            Error::Background { first, .. } => first.path(),
            Error::Rotation { source, .. } => source.path(),
            Error::InvalidId { .. } | Error::InvalidTensor { .. } | Error::InvalidMetric { .. } => {
                None
            }
        }
    }
}

/// Who holds a workflow lock, for [`Error::WorkflowLocked`].
fn holder(pid: Option<u32>, since: Option<&str>) -> String {
    match (pid, since) {
        (Some(pid), Some(since)) => format!("process {pid} (since {since})"),
        (Some(pid), None) => format!("process {pid}"),
        (None, _) => "another process".to_string(),
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
