//! Errors: what node bodies return, and what a run ends with.

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

/// Any error, boxed (the cause inside a [`NodeError`]).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How a node attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeErrorKind {
    /// The body failed.
    Failed,
    /// The attempt was cancelled (the run was stopped).
    Cancelled,
    /// The attempt ran past the node's `timeout`.
    TimedOut,
    /// The device ran out of memory; a retry with a smaller footprint may work.
    OutOfMemory,
    /// The inputs or config cannot work (retrying will not help).
    InvalidInput,
    /// The attempt timed out and its blocking work did not return within the engine's
    /// `stuck_limit`: it may still be running (and using its GPUs), so it is not retried
    /// beside itself.
    Stuck,
}

/// One message of an error chain recorded elsewhere, with its cause.
#[derive(Debug)]
struct RecordedError {
    message: String,
    source: Option<Box<RecordedError>>,
}

impl std::fmt::Display for RecordedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RecordedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The error a node body returns: a kind, a message and the cause chain.
///
/// A body can ask for its retry to run with changed config ([`NodeError::retry_with`]),
/// for example a training node that ran out of memory halving its micro-batch.
#[derive(Debug)]
pub struct NodeError {
    kind: NodeErrorKind,
    message: String,
    source: Option<BoxError>,
    retry_config: Option<Box<Map<String, Value>>>,
}

impl NodeError {
    /// A failure described by `message`.
    pub fn msg(message: impl Into<String>) -> NodeError {
        NodeError {
            kind: NodeErrorKind::Failed,
            message: message.into(),
            source: None,
            retry_config: None,
        }
    }

    /// A failure with a message and the error that caused it.
    pub fn with_source(message: impl Into<String>, source: impl Into<BoxError>) -> NodeError {
        NodeError {
            source: Some(source.into()),
            ..NodeError::msg(message)
        }
    }

    /// The error an attempt that ran elsewhere recorded (its kind and message chain), made
    /// an error here again, with the config changes it asked its retry to make.
    pub fn from_record(
        record: &crate::state::ErrorRecord,
        retry_config: Option<Map<String, Value>>,
    ) -> NodeError {
        let kind = match record.kind.as_str() {
            "cancelled" => NodeErrorKind::Cancelled,
            "timedout" => NodeErrorKind::TimedOut,
            "outofmemory" => NodeErrorKind::OutOfMemory,
            "invalidinput" => NodeErrorKind::InvalidInput,
            "stuck" => NodeErrorKind::Stuck,
            _ => NodeErrorKind::Failed,
        };
        let mut chain = record.chain.iter().rev();
        let last = chain
            .next()
            .cloned()
            .unwrap_or_else(|| "failed".to_string());
        // Rebuild the causes innermost first.
        let mut error = RecordedError {
            message: last,
            source: None,
        };
        for message in chain {
            error = RecordedError {
                message: message.clone(),
                source: Some(Box::new(error)),
            };
        }
        NodeError {
            kind,
            message: error.message,
            source: error.source.map(|s| s as BoxError),
            retry_config: retry_config.map(Box::new),
        }
    }

    /// A failure that is just `err`.
    pub fn from_error(err: impl Into<BoxError>) -> NodeError {
        let err = err.into();
        NodeError {
            message: err.to_string(),
            source: Some(err),
            ..NodeError::msg("")
        }
    }

    /// An attempt stopped because the run was cancelled.
    pub fn cancelled() -> NodeError {
        NodeError {
            kind: NodeErrorKind::Cancelled,
            ..NodeError::msg("cancelled")
        }
    }

    /// An attempt that ran past `limit`.
    pub fn timed_out(limit: Duration) -> NodeError {
        NodeError {
            kind: NodeErrorKind::TimedOut,
            ..NodeError::msg(format!(
                "timed out after {}",
                humantime::format_duration(limit)
            ))
        }
    }

    /// An attempt told to stop `waited` ago whose blocking work still runs; `cause` is why
    /// it was told to stop.
    pub(crate) fn stuck(
        attempt: u32,
        waited: Duration,
        gpus: &[u32],
        cause: NodeError,
    ) -> NodeError {
        let held = match gpus {
            [] => String::new(),
            [gpu] => format!("; GPU {gpu} stays reserved until it returns"),
            _ => format!(
                "; GPUs {} stay reserved until it returns",
                gpus.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        NodeError {
            kind: NodeErrorKind::Stuck,
            ..NodeError::with_source(
                format!(
                    "attempt {attempt} was told to stop {} ago and still runs, so it is not \
                     retried{held} (make the body check `is_cancelled()` more often)",
                    humantime::format_duration(round_ms(waited))
                ),
                cause,
            )
        }
    }

    /// Set the kind.
    pub fn kind_of(mut self, kind: NodeErrorKind) -> NodeError {
        self.kind = kind;
        self
    }

    /// Ask that a retry run with these config values changed.
    pub fn retry_with(mut self, config: Map<String, Value>) -> NodeError {
        self.retry_config = Some(Box::new(config));
        self
    }

    /// The kind.
    pub fn kind(&self) -> NodeErrorKind {
        self.kind
    }

    /// Whether the attempt was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.kind == NodeErrorKind::Cancelled
    }

    /// Whether a retry may help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            NodeErrorKind::Failed | NodeErrorKind::TimedOut | NodeErrorKind::OutOfMemory
        )
    }

    /// Config changes the body asked for on retry.
    pub fn retry_config(&self) -> Option<&Map<String, Value>> {
        self.retry_config.as_deref()
    }

    /// The message and every cause, outermost first.
    pub fn chain(&self) -> Vec<String> {
        let mut chain = vec![self.message.clone()];
        let mut next: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(e) = next {
            let text = e.to_string();
            if chain.last() != Some(&text) {
                chain.push(text);
            }
            next = e.source();
        }
        chain
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `d` to whole milliseconds, for messages.
pub(crate) fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A node failed after all its attempts.
    #[error("node `{node}` failed after {attempts} attempt{}", if *attempts == 1 { "" } else { "s" })]
    NodeFailed {
        /// The node id.
        node: String,
        /// How many attempts were made.
        attempts: u32,
        /// Why the last attempt failed.
        #[source]
        source: NodeError,
    },
    /// Several nodes failed (failure policy `continue`); the first is the cause.
    #[error("{} nodes failed: {}", failed.len(), failed.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))]
    NodesFailed {
        /// The failed node ids, in the order they failed.
        failed: Vec<String>,
        /// The first failure.
        #[source]
        source: Box<Error>,
    },
    /// The run was cancelled; its state was saved.
    #[error("the run was cancelled")]
    Cancelled,
    /// The plan uses a node type with no registered executor.
    #[error("node `{node}` has type `{node_type}`, which has no executor registered")]
    NoExecutor {
        /// The node id.
        node: String,
        /// The node type.
        node_type: String,
    },
    /// A node type was registered twice.
    #[error("node type `{node_type}` is already registered")]
    DuplicateNodeType {
        /// The node type.
        node_type: String,
    },
    /// The spec of a registered node type is malformed.
    #[error(transparent)]
    Spec(Box<medfusion_graph::Error>),
    /// The saved state cannot be resumed with this plan.
    #[error("cannot resume run `{run_id}`: {reason}")]
    Resume {
        /// The run.
        run_id: String,
        /// Why.
        reason: String,
    },
    /// The run store failed.
    #[error("saving the run state failed")]
    Store {
        /// Why.
        #[source]
        source: BoxError,
    },
}

impl From<medfusion_graph::Error> for Error {
    fn from(e: medfusion_graph::Error) -> Error {
        Error::Spec(Box::new(e))
    }
}

impl Error {
    /// The id of the node that failed first, if a node failure ended the run.
    pub fn failed_node(&self) -> Option<&str> {
        match self {
            Error::NodeFailed { node, .. } => Some(node),
            Error::NodesFailed { source, .. } => source.failed_node(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_lists_message_then_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = NodeError::with_source("cannot load `data.csv`", io);
        assert_eq!(err.chain(), ["cannot load `data.csv`", "no such file"]);
        let run = Error::NodeFailed {
            node: "data".into(),
            attempts: 3,
            source: err,
        };
        assert_eq!(run.to_string(), "node `data` failed after 3 attempts");
        assert_eq!(run.failed_node(), Some("data"));
    }
}
