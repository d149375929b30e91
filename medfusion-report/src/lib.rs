//! The record of a medfusion run and the pages that show it.
//!
//! - [`RunRecord`] is `run.json`: every node's status, attempts, timings, peaks and outputs,
//!   the evaluations' metrics, the training curves, resource samples, alerts, checkpoints and
//!   the last log lines.
//! - [`render`] draws `report.html` from a record: one self-contained page (inline SVG and
//!   CSS, nothing fetched).
//! - [`LiveRecord`] builds the record of a run while it goes on, from the engine's events
//!   (it is an [`EventSink`](medfusion_exec::EventSink)).
//! - [`dashboard`] serves the live page of a run (the same template as `report.html`, updated
//!   over server-sent events), the past runs of a folder, the run record as JSON, Prometheus
//!   metrics, and the "checkpoint now" and "cancel" actions behind a token.
//!
//! No Burn: the crate draws what the engine and the monitor report.

mod live;
mod record;
mod report;

pub mod dashboard;

use std::path::PathBuf;

pub use live::{LiveRecord, PeriodicWriter};
pub use record::{
    AlertRecord, CheckpointRecord, LIVE_FILE, LogLine, NodeProgress, NodeRecord, RunRecord,
    write_atomic,
};
pub use report::{LiveControls, render, render_live};

/// What can go wrong reading or writing a run record, or serving it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not a run record.
    #[error("`{}` is not a medfusion run record", path.display())]
    NotARecord {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// A file could not be written.
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The dashboard's address could not be bound.
    #[error("cannot serve the dashboard on {addr}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}
