//! The medfusion engine: runs validated workflow plans on tokio.
//!
//! A node starts as soon as all its inputs are ready (a ready queue fed by dependency
//! counters, not level by level), up to a global `max_parallel` and never holding more
//! GPUs than there are slots. Node bodies implement [`NodeExecutor`]; CPU-heavy ones run on
//! the blocking pool so events and cancellation stay responsive. Each attempt may time
//! out: its cancellation token fires, and its blocking work is waited for before a retry
//! starts or its GPUs go to another node (a body that never returns is reported stuck and
//! keeps its GPUs, see [`EngineBuilder::stuck_limit`]). Failed attempts are retried with
//! exponential backoff; a failure either stops the run or lets independent branches
//! finish ([`FailurePolicy`]). Every step is an
//! [`Event`] for subscribers (progress bars, the JSON-lines run log, tests). The run state
//! is saved through a [`RunStore`] after every node, on failure, on request and on
//! cancellation, and a saved run resumes: finished nodes are restored, not run again.
//!
//! ```text
//!                  workflow.yaml
//!                       |
//!              medfusion-graph   parse -> Workflow -> validate(&NodeCatalog) -> Plan
//!                       |
//!              medfusion-exec    Engine: runs a Plan; NodeExecutor registry; events;
//!                       |        resume; RunStore and ResourceObserver traits
//!      +----------------+----------------+
//! medfusion-train  medfusion-checkpoint  medfusion-monitor
//! (NodeExecutors   (a RunStore, through  (a ResourceObserver,
//!  on Burn)         the CLI's adapter)    through the CLI's adapter)
//!      +----------------+----------------+
//!                medfusion-cli   wires them, owns the runtime
//! ```
//!
//! This crate knows no file format, no training library and no monitoring library: the
//! leaf crates meet it only through [`RunStore`] and [`ResourceObserver`].
//!
//! ```
//! use std::sync::Arc;
//! use medfusion_exec::{Engine, MemoryStore, Registry, RunOptions, NodeStatus};
//! use medfusion_graph::{Workflow, validate};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let registry = Registry::with_builtins();
//! let workflow = Workflow::parse_sniffed(
//!     "name: demo\nnodes:\n  - { id: flaky, type: util.fail, retries: 2, retry_backoff: 1ms }\n",
//! )?;
//! let plan = validate(workflow, registry.catalog())?;
//! let store = MemoryStore::new();
//! let engine = Engine::builder(registry).store(Arc::new(store.clone())).build();
//! let state = engine.run(plan, RunOptions::default()).await.into_result()?;
//! assert_eq!(state.nodes[0].status, NodeStatus::Succeeded);
//! assert_eq!(state.nodes[0].attempts, 2);
//! assert!(!store.saves().is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! ## Feature flags
//!
//! This crate has no feature flags.
#![warn(missing_docs)]

mod attempt;
mod builtin;
mod context;
mod detached;
mod engine;
mod error;
mod event;
mod executor;
mod files;
mod registry;
mod resume;
mod runner;
mod saver;
mod scheduler;
mod shell;
mod state;
mod store;
mod value;

pub use context::{Inputs, NodeContext, Outputs, ResourceGrant};
pub use detached::{ATTEMPT_FORMAT, AttemptFiles, AttemptRequest, AttemptResult};
pub use engine::{
    CheckpointRequester, Engine, EngineBuilder, FailurePolicy, RunHandle, RunOptions, RunReport,
};
pub use error::{BoxError, Error, NodeError, NodeErrorKind};
pub use event::{Emitter, Event, EventKind, EventSink, JsonLinesLog, SkipReason};
pub use executor::{BlockingExecutor, BoxFuture, FnExecutor, NodeExecutor};
pub use files::{FileEntry, FilesValue};
pub use registry::Registry;
pub use resume::{Decision, RerunReason, ResumeFrom, decide};
pub use runner::{AttemptRunner, DetachedAttempt, run_detached};
pub use shell::{
    SHELL_NODE_TYPE, ShellCommand, ShellConfig, ShellSettings, register_shell, shell_spec,
};
pub use state::{
    ErrorRecord, NodeState, NodeStatus, ResourceUsage, RunState, RunStatus, STATE_FORMAT,
    SaveReason, timestamp,
};
pub use store::{MemoryStore, ObserverScope, ResourceObserver, RunStore};
pub use tokio_util::sync::CancellationToken;
pub use value::{Blob, JsonValue, PortValue, SavedValue, Value, ValueCodec};
