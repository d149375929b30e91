//! Per-scope peaks: what one node (or any stretch of work) used while it ran.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::history::{Stats, StatsAcc};
use crate::monitor::Shared;
use crate::{Snapshot, peak};

/// How a scope's peak RSS was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PeakRssMethod {
    /// From the kernel's high-water mark (`VmHWM`): exact up to the kernel's own RSS
    /// counters, which are batched per CPU and may lag by a few dozen pages.
    ///
    /// Without [`MonitorBuilder::reset_peak_rss`](crate::MonitorBuilder::reset_peak_rss) a
    /// scope gets this only when it raised the process's all-time mark; with it, always
    /// (on Linux 4.0+).
    Kernel,
    /// The largest of the RSS at start, at end and in the samples between (and of any mark
    /// the kernel showed was reached inside the scope): a lower bound.
    Sampled,
}

/// The peak device memory of one GPU during a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuPeak {
    /// The GPU's index.
    pub index: u32,
    /// The most device memory in use in any sample, bytes.
    pub memory_used_bytes: u64,
}

/// What a scope used, from [`Scope::finish`] (or
/// [`ResourceMonitor::take_dropped_scopes`](crate::ResourceMonitor::take_dropped_scopes)).
///
/// RSS is the whole process's, so scopes that overlap see each other's memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScopeSummary {
    /// The name given to [`ResourceMonitor::scope`](crate::ResourceMonitor::scope).
    pub name: String,
    /// When the scope began.
    #[serde(with = "crate::snapshot::rfc3339")]
    pub started_at: SystemTime,
    /// How long it lasted, seconds.
    pub duration_seconds: f64,
    /// Process RSS when it began, bytes.
    pub start_rss_bytes: u64,
    /// Process RSS when it ended, bytes.
    pub end_rss_bytes: u64,
    /// The largest process RSS while it ran, bytes.
    pub peak_rss_bytes: u64,
    /// How `peak_rss_bytes` was found.
    pub peak_rss_method: PeakRssMethod,
    /// How many monitor samples fell inside it.
    pub samples: usize,
    /// System CPU utilisation over those samples (min/mean/max, percent); `None` if none.
    pub cpu_percent: Option<Stats>,
    /// CPU time the whole process used meanwhile (user + system, seconds; Unix only).
    pub process_cpu_seconds: Option<f64>,
    /// Peak device memory per GPU over the samples.
    pub gpu_memory_peaks: Vec<GpuPeak>,
}

impl ScopeSummary {
    /// How far the peak RSS rose above the RSS at the start, bytes.
    pub fn peak_rss_increase_bytes(&self) -> u64 {
        self.peak_rss_bytes.saturating_sub(self.start_rss_bytes)
    }
}

/// What the samples taken during one scope showed.
#[derive(Debug, Default)]
struct ScopeAcc {
    samples: usize,
    cpu: StatsAcc,
    max_rss: u64,
    gpu_peaks: BTreeMap<u32, u64>,
}

/// The open scopes, fed by every sample.
#[derive(Debug, Default)]
pub(crate) struct ScopeRegistry {
    next: u64,
    open: HashMap<u64, ScopeAcc>,
}

impl ScopeRegistry {
    fn open(&mut self) -> u64 {
        self.next += 1;
        self.open.insert(self.next, ScopeAcc::default());
        self.next
    }

    fn close(&mut self, id: u64) -> ScopeAcc {
        self.open.remove(&id).unwrap_or_default()
    }

    /// Folds a new sample into every open scope.
    pub(crate) fn record(&mut self, snap: &Snapshot) {
        for acc in self.open.values_mut() {
            acc.samples += 1;
            acc.cpu.push(snap.cpu_percent);
            acc.max_rss = acc.max_rss.max(snap.process_rss_bytes);
            for gpu in &snap.gpus {
                let peak = acc.gpu_peaks.entry(gpu.index).or_default();
                *peak = (*peak).max(gpu.memory_used_bytes);
            }
        }
    }
}

/// Records resource peaks from its creation until [`finish`](Scope::finish) or drop.
///
/// Made by [`ResourceMonitor::scope`](crate::ResourceMonitor::scope). Peak RSS comes from
/// the kernel on Linux where it can be exact (see [`PeakRssMethod::Kernel`] and
/// [`MonitorBuilder::reset_peak_rss`](crate::MonitorBuilder::reset_peak_rss)), else from
/// the samples; CPU and GPU figures come from the monitor's samples, so a scope shorter
/// than the interval may have none. A scope dropped without `finish` leaves its summary
/// with the monitor.
#[must_use = "a scope records until it is finished or dropped"]
pub struct Scope {
    shared: Arc<Shared>,
    id: u64,
    name: String,
    started_at: SystemTime,
    started: Instant,
    start_rss: u64,
    kernel: Option<peak::PeakToken>,
    cpu_time: Option<Duration>,
    done: bool,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("started_at", &self.started_at)
            .field("start_rss", &self.start_rss)
            .field("kernel", &self.kernel)
            .finish_non_exhaustive()
    }
}

impl Scope {
    pub(crate) fn begin(shared: Arc<Shared>, name: String) -> Scope {
        let id = shared.scopes().open();
        let started_at = shared.now();
        let exact = if shared.exact_peak_rss {
            peak::begin(shared.reset_peak_rss)
        } else {
            None
        };
        let (kernel, start_rss) = match exact {
            Some((token, rss)) => (Some(token), rss),
            None => (None, shared.process_rss()),
        };
        Scope {
            shared,
            id,
            name,
            started_at,
            started: Instant::now(),
            start_rss,
            kernel,
            cpu_time: process_cpu_time(),
            done: false,
        }
    }

    /// The scope's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Ends the scope and returns what it used.
    pub fn finish(mut self) -> ScopeSummary {
        self.complete()
    }

    fn complete(&mut self) -> ScopeSummary {
        self.done = true;
        let acc = self.shared.scopes().close(self.id);
        let kernel = self.kernel.take().and_then(|token| peak::end(&token));
        let (peak_rss, end_rss, method) = match kernel {
            Some(k) if k.exact => (k.peak.max(self.start_rss), k.rss, PeakRssMethod::Kernel),
            Some(k) => (
                acc.max_rss.max(self.start_rss).max(k.rss).max(k.peak),
                k.rss,
                PeakRssMethod::Sampled,
            ),
            None => {
                let end = self.shared.process_rss();
                (
                    acc.max_rss.max(self.start_rss).max(end),
                    end,
                    PeakRssMethod::Sampled,
                )
            }
        };
        let cpu_seconds = self
            .cpu_time
            .zip(process_cpu_time())
            .map(|(start, end)| end.saturating_sub(start).as_secs_f64());
        ScopeSummary {
            name: std::mem::take(&mut self.name),
            started_at: self.started_at,
            duration_seconds: self.started.elapsed().as_secs_f64(),
            start_rss_bytes: self.start_rss,
            end_rss_bytes: end_rss,
            peak_rss_bytes: peak_rss,
            peak_rss_method: method,
            samples: acc.samples,
            cpu_percent: acc.cpu.stats(),
            process_cpu_seconds: cpu_seconds,
            gpu_memory_peaks: acc
                .gpu_peaks
                .into_iter()
                .map(|(index, memory_used_bytes)| GpuPeak {
                    index,
                    memory_used_bytes,
                })
                .collect(),
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if !self.done {
            let summary = self.complete();
            self.shared.keep_dropped_scope(summary);
        }
    }
}

/// User + system CPU time of the whole process so far.
#[cfg(unix)]
fn process_cpu_time() -> Option<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable rusage; RUSAGE_SELF is always accepted.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: getrusage succeeded, so it filled the struct (it was zeroed anyway).
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_usec).unwrap_or(0) * 1000,
        )
    };
    Some(time(usage.ru_utime) + time(usage.ru_stime))
}

#[cfg(not(unix))]
fn process_cpu_time() -> Option<Duration> {
    None
}
