//! Runs the nodes of medfusion workflows as Slurm jobs.
//!
//! [`SlurmRunner`] is an [`AttemptRunner`](medfusion_exec::AttemptRunner): the engine of
//! `medfusion-exec` keeps deciding what is ready, retries, timeouts, resume and events, and
//! each attempt of a node becomes a batch job (`sbatch`) that runs `medfusion node-exec` on
//! the attempt's files in `<run dir>/jobs/<node>/<attempt>/`, on a filesystem the head and the
//! cluster's nodes share. The head watches all of the run's jobs with one `squeue` call per
//! poll (accounting, `sacct`, is not needed: many clusters turn it off), trusts the result
//! file a job writes rather than its exit code, names every Slurm end state in errors, and
//! cancels the run's jobs (`scancel`) when the run is cancelled.
//!
//! ```no_run
//! use std::sync::Arc;
//! use medfusion_exec::{Engine, Registry};
//! use medfusion_slurm::{SlurmOptions, SlurmRunner};
//!
//! let options = SlurmOptions {
//!     partition: Some("gpu".into()),
//!     options: vec!["--constraint=a100".into()],
//!     ..SlurmOptions::default()
//! };
//! let runner = SlurmRunner::new(
//!     options,
//!     "runs/demo-1",
//!     vec!["/usr/local/bin/medfusion".into(), "node-exec".into()],
//! );
//! let engine = Engine::builder(Registry::with_builtins())
//!     .runner(Arc::new(runner))
//!     .build();
//! # drop(engine);
//! ```
//!
//! ## Feature flags
//!
//! This crate has no feature flags. It depends on neither Burn nor anything of training.
#![warn(missing_docs)]

mod command;
mod error;
mod queue;
mod runner;

pub use error::Error;
pub use queue::JobState;
pub use runner::{SlurmOptions, SlurmRunner};

/// Whether a Slurm cluster answers here and has a node that takes jobs (`sinfo` lists one
/// idle, mixed or allocated): what tests and benchmarks check before they submit.
pub fn cluster_takes_jobs() -> bool {
    std::process::Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| ["idle", "mixed", "allocated"].contains(&l.trim()))
        })
}
