//! Resource monitoring for medfusion: system CPU and memory, this process's RSS and NVIDIA
//! GPUs, sampled on a background thread, with thresholds, alerts, history and per-scope
//! peaks.
//!
//! A leaf crate, useful on its own: no async runtime, no ML framework.
//!
//! - [`ResourceMonitor`] samples every [`interval`](MonitorBuilder::interval) (2 s by
//!   default) on its own thread, keeps the newest 300 [`Snapshot`]s
//!   ([`history`](ResourceMonitor::history), [`current_status`](ResourceMonitor::current_status),
//!   [`summary`](ResourceMonitor::summary)), and stops and joins the thread when told or
//!   dropped.
//! - [`ResourceThresholds`] (CPU 80/95 %, memory 80/95 %, GPU memory 90/98 %) raise
//!   [`Alert`]s, logged through `tracing` at WARN/ERROR and sent to subscribers, once per
//!   crossing (hysteresis), in the form `GPU 0 memory high: 92.3% (22.1/24.0 GB)`.
//! - [`ResourceMonitor::scope`] records the peaks of one stretch of work (a workflow
//!   node): peak RSS from the kernel's high-water mark on Linux where it is exact, else
//!   from the samples; CPU and GPU memory from the samples (see "Process state" below).
//! - Snapshots serialise to JSON (serde) and [`render_prometheus`] writes the Prometheus
//!   text format.
//!
//! Sources are traits, so tests run without the machine's figures: [`SystemSource`]
//! (`ProcSource` on Linux, [`SysinfoSource`] elsewhere; [`FakeSystemSource`]),
//! [`GpuProbe`] (`NvmlProbe`, [`NoGpus`]; [`FakeGpuProbe`]) and [`Clock`].
//!
//! ```
//! use medfusion_monitor::{FakeGpuProbe, FakeSystemSource, GpuSnapshot, ResourceMonitor};
//!
//! let system = FakeSystemSource::idle();
//! let gpus = FakeGpuProbe::new(vec![GpuSnapshot::new(0, "A100", 10 << 30, 40 << 30)]);
//! let monitor = ResourceMonitor::builder()
//!     .system_source(system.clone())
//!     .gpu_probe(gpus.clone())
//!     .build()?;
//! let alerts = monitor.subscribe();
//!
//! gpus.set_memory_used(0, 37 << 30); // 92.5 % of 40 GiB: past the 90 % warning level
//! let snapshot = monitor.sample_now()?;
//! assert_eq!(snapshot.gpus[0].memory_percent, 92.5);
//! assert_eq!(alerts.try_recv()?.to_string(), "GPU 0 memory high: 92.5% (37.0/40.0 GB)");
//!
//! monitor.sample_now()?; // still high: no second alert
//! assert!(alerts.try_recv().is_err());
//! assert_eq!(monitor.history().len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! On a real machine, `ResourceMonitor::new()?` picks the sources, and
//! [`start`](ResourceMonitor::start) begins sampling.
//!
//! ## Process state
//!
//! The monitor only reads: `/proc` files, NVML, `getrusage`. It writes nothing about the
//! process unless asked. A scope's peak RSS comes from the kernel's high-water mark
//! (`VmHWM`), which is the process's largest RSS so far: read alone it gives the scope's
//! peak exactly when the scope set a new high ([`PeakRssMethod::Kernel`]), and otherwise
//! the scope falls back to the largest RSS of its samples, start and end
//! ([`PeakRssMethod::Sampled`], a lower bound that misses spikes between samples).
//!
//! An application that wants every scope's peak exact opts in with
//! [`MonitorBuilder::reset_peak_rss`]: each scope then resets the mark by writing
//! `/proc/self/clear_refs` (Linux 4.0+), so `VmHWM` no longer shows the process's lifetime
//! peak. The `medfusion` command does this; a library embedding the monitor should leave
//! it to its application.
//!
//! ## Feature flags
//!
//! - `gpu` (default): NVIDIA GPUs through NVML ([nvml-wrapper]). The library
//!   (`libnvidia-ml`) is loaded at run time, so a build with this feature still runs where
//!   there is no driver: [`detect_gpus`] then logs one INFO line and reports no GPUs.
//!   Without the feature, nvml-wrapper is not compiled and there are never GPUs.
//! - `test-gpu`: a no-op marker enabling the tests that need an NVIDIA GPU.
//!
//! [nvml-wrapper]: https://docs.rs/nvml-wrapper
#![warn(missing_docs)]

mod alert;
mod error;
mod fake;
mod gpu;
mod history;
mod monitor;
mod peak;
#[cfg(target_os = "linux")]
mod procfs;
mod prometheus;
mod scope;
mod snapshot;
mod source;
mod sysinfo_source;
mod thresholds;

pub(crate) use error::error_chain;

pub use alert::{Alert, AlertLevel, Resource, SubscriptionId};
pub use error::Error;
pub use fake::{FakeGpuProbe, FakeSystemSource, ManualClock};
#[cfg(feature = "gpu")]
pub use gpu::NvmlProbe;
pub use gpu::{GpuProbe, NoGpus, detect_gpus};
pub use history::{GpuSummary, Stats, Summary};
pub use monitor::{DEFAULT_HISTORY_CAPACITY, DEFAULT_INTERVAL, MonitorBuilder, ResourceMonitor};
#[cfg(target_os = "linux")]
pub use procfs::ProcSource;
pub use prometheus::render_prometheus;
pub use scope::{GpuPeak, PeakRssMethod, Scope, ScopeSummary};
pub use snapshot::{BYTES_PER_GB, GpuSnapshot, Snapshot, gb};
pub use source::{Clock, SystemClock, SystemReading, SystemSource, default_system_source};
pub use sysinfo_source::SysinfoSource;
pub use thresholds::{ResourceThresholds, Threshold};
