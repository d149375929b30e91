//! The crate's error type.

use std::path::PathBuf;

use crate::problem::Problems;

/// Everything that can go wrong reading, checking or planning a workflow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The workflow file could not be read.
    #[error("cannot read workflow file `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The workflow file is larger than
    /// [`Workflow::MAX_FILE_BYTES`](crate::Workflow::MAX_FILE_BYTES); reading stopped there.
    #[error(
        "`{}` is larger than the {} limit for workflow files",
        path.display(),
        crate::parse::bytes_in_words(*limit)
    )]
    TooLarge {
        /// The file (or stream).
        path: PathBuf,
        /// The limit, bytes.
        limit: u64,
    },
    /// The text is not a well-formed workflow (bad YAML/JSON or a misplaced field).
    #[error("{}{message}", location(file.as_ref(), *line, *column))]
    Parse {
        /// The file, where known.
        file: Option<PathBuf>,
        /// 1-based line, where known.
        line: Option<u32>,
        /// 1-based column, where known.
        column: Option<u32>,
        /// What is wrong.
        message: String,
    },
    /// The workflow parsed but does not validate; every problem is listed.
    #[error("{0}")]
    Invalid(Box<Problems>),
    /// A node type spec is malformed.
    #[error("invalid spec for node type `{node_type}`: {reason}")]
    InvalidSpec {
        /// The node type.
        node_type: String,
        /// What is wrong.
        reason: String,
    },
    /// A node type was registered twice.
    #[error("node type `{node_type}` is already registered")]
    DuplicateNodeType {
        /// The node type.
        node_type: String,
    },
}

impl Error {
    /// The validation problems, when this is [`Error::Invalid`].
    pub fn problems(&self) -> Option<&Problems> {
        match self {
            Error::Invalid(p) => Some(p),
            _ => None,
        }
    }

    /// Whether the workflow itself is at fault (parse or validation), as opposed to I/O or
    /// a malformed spec.
    pub fn is_invalid_workflow(&self) -> bool {
        matches!(
            self,
            Error::Parse { .. } | Error::Invalid(_) | Error::TooLarge { .. }
        )
    }
}

fn location(file: Option<&PathBuf>, line: Option<u32>, column: Option<u32>) -> String {
    let mut s = String::new();
    if let Some(f) = file {
        s.push_str(&f.display().to_string());
    }
    if let Some(l) = line {
        if s.is_empty() {
            s.push_str("line ");
        } else {
            s.push(':');
        }
        s.push_str(&l.to_string());
        if let Some(c) = column {
            s.push(':');
            s.push_str(&c.to_string());
        }
    }
    if !s.is_empty() {
        s.push_str(": ");
    }
    s
}
