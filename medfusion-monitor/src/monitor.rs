//! [`ResourceMonitor`]: the sampling thread, history, alerts and scopes, tied together.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::alert::{Subscribers, call_back};
use crate::history::History;
use crate::scope::ScopeRegistry;
use crate::thresholds::AlertTracker;
use crate::{
    Alert, AlertLevel, Clock, Error, GpuProbe, Resource, ResourceThresholds, Scope, ScopeSummary,
    Snapshot, SubscriptionId, Summary, SystemClock, SystemSource,
};

/// The default time between samples: 2 s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
/// The default number of snapshots kept: 300 (10 minutes at the default interval).
pub const DEFAULT_HISTORY_CAPACITY: usize = 300;
/// How many summaries of scopes dropped without `finish` are kept (the oldest go first).
const DROPPED_SCOPES_KEPT: usize = 1024;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Settings and sources for a [`ResourceMonitor`]; from [`ResourceMonitor::builder`].
#[must_use]
pub struct MonitorBuilder {
    interval: Duration,
    history_capacity: usize,
    thresholds: ResourceThresholds,
    system: Option<Box<dyn SystemSource>>,
    gpu: Option<Box<dyn GpuProbe>>,
    clock: Option<Arc<dyn Clock>>,
    exact_peak_rss: bool,
    reset_peak_rss: bool,
}

impl std::fmt::Debug for MonitorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorBuilder")
            .field("interval", &self.interval)
            .field("history_capacity", &self.history_capacity)
            .field("thresholds", &self.thresholds)
            .field("exact_peak_rss", &self.exact_peak_rss)
            .field("reset_peak_rss", &self.reset_peak_rss)
            .finish_non_exhaustive()
    }
}

impl MonitorBuilder {
    /// Time between samples on the monitor's thread (default 2 s; must not be zero).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How many snapshots the history keeps (default 300; at least 1).
    pub fn history_capacity(mut self, capacity: usize) -> Self {
        self.history_capacity = capacity;
        self
    }

    /// When alerts fire (default [`ResourceThresholds::default`]).
    pub fn thresholds(mut self, thresholds: ResourceThresholds) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// Where CPU, memory and RSS come from (default
    /// [`default_system_source`](crate::default_system_source)).
    pub fn system_source(mut self, source: impl SystemSource + 'static) -> Self {
        self.system = Some(Box::new(source));
        self
    }

    /// Where GPU figures come from (default [`detect_gpus`](crate::detect_gpus)).
    pub fn gpu_probe(mut self, probe: impl GpuProbe + 'static) -> Self {
        self.gpu = Some(Box::new(probe));
        self
    }

    /// What stamps the snapshots (default the wall clock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Whether scopes read the kernel's peak-RSS mark (`VmHWM` in `/proc/self/status`)
    /// where there is one (default `true`; reading it changes nothing).
    ///
    /// The mark is the process's largest RSS so far, so on its own it gives a scope's
    /// peak exactly only when the scope raised it; see
    /// [`reset_peak_rss`](Self::reset_peak_rss) for an exact peak every time. Turned off,
    /// scopes take the largest RSS of their samples (a lower bound).
    pub fn exact_peak_rss(mut self, exact: bool) -> Self {
        self.exact_peak_rss = exact;
        self
    }

    /// Whether each scope resets the kernel's peak-RSS mark when it begins (default
    /// `false`), so that its peak RSS is exact even below the process's earlier peaks.
    ///
    /// This changes process state: the mark is reset by writing `5` to
    /// `/proc/self/clear_refs` (Linux 4.0+), so `VmHWM` in `/proc/self/status` no longer
    /// shows the process's lifetime peak, for this monitor and for anything else that
    /// reads it. Only the application should turn it on (the `medfusion` command does),
    /// and only if nothing else in the process resets or relies on the mark. Overlapping
    /// scopes, of this and other monitors, still get their own peaks: every reset first
    /// folds the mark into every open scope.
    ///
    /// Off, nothing is written: a scope that sets a new high for the process gets that
    /// high exactly ([`PeakRssMethod::Kernel`](crate::PeakRssMethod::Kernel)); any other
    /// gets the largest RSS of its samples, start and end
    /// ([`PeakRssMethod::Sampled`](crate::PeakRssMethod::Sampled), a lower bound). Where
    /// `clear_refs` cannot be written, the monitor logs one INFO line and behaves as if
    /// this were off. It has no effect when [`exact_peak_rss`](Self::exact_peak_rss) is
    /// off.
    pub fn reset_peak_rss(mut self, reset: bool) -> Self {
        self.reset_peak_rss = reset;
        self
    }

    /// Checks the settings and makes the monitor (not yet sampling: see
    /// [`ResourceMonitor::start`]).
    pub fn build(self) -> Result<ResourceMonitor, Error> {
        if self.interval.is_zero() {
            return Err(Error::InvalidConfig {
                field: "interval",
                value: format!("{:?}", self.interval),
                reason: "the sampling interval must be longer than zero",
            });
        }
        if self.history_capacity == 0 {
            return Err(Error::InvalidConfig {
                field: "history_capacity",
                value: "0".into(),
                reason: "the history must hold at least one snapshot",
            });
        }
        self.thresholds.validate()?;
        let sampler = Sampler {
            system: self.system.unwrap_or_else(crate::default_system_source),
            gpu: self.gpu.unwrap_or_else(crate::detect_gpus),
        };
        let shared = Shared {
            interval: self.interval,
            thresholds: self.thresholds,
            exact_peak_rss: self.exact_peak_rss,
            reset_peak_rss: self.reset_peak_rss,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            sampler: Mutex::new(sampler),
            state: Mutex::new(State {
                history: History::new(self.history_capacity),
                alerts: AlertTracker::new(self.thresholds),
            }),
            subscribers: Mutex::default(),
            scopes: Mutex::default(),
            dropped: Mutex::default(),
            control: Mutex::default(),
            wake: Condvar::new(),
        };
        Ok(ResourceMonitor {
            shared: Arc::new(shared),
        })
    }
}

struct Sampler {
    system: Box<dyn SystemSource>,
    gpu: Box<dyn GpuProbe>,
}

struct State {
    history: History,
    alerts: AlertTracker,
}

#[derive(Default)]
struct Control {
    /// The generation of the thread that should be running, if any.
    running: Option<u64>,
    generation: u64,
    handle: Option<JoinHandle<()>>,
}

/// Everything the monitor's handles and thread share.
pub(crate) struct Shared {
    interval: Duration,
    thresholds: ResourceThresholds,
    pub(crate) exact_peak_rss: bool,
    pub(crate) reset_peak_rss: bool,
    clock: Arc<dyn Clock>,
    sampler: Mutex<Sampler>,
    state: Mutex<State>,
    subscribers: Mutex<Subscribers>,
    scopes: Mutex<ScopeRegistry>,
    dropped: Mutex<VecDeque<ScopeSummary>>,
    control: Mutex<Control>,
    wake: Condvar,
}

impl Shared {
    pub(crate) fn now(&self) -> std::time::SystemTime {
        self.clock.now()
    }

    pub(crate) fn scopes(&self) -> MutexGuard<'_, ScopeRegistry> {
        lock(&self.scopes)
    }

    /// This process's RSS now, or as last sampled where it cannot be read directly.
    pub(crate) fn process_rss(&self) -> u64 {
        #[cfg(target_os = "linux")]
        if let Some(rss) = crate::procfs::self_rss() {
            return rss;
        }
        lock(&self.state)
            .history
            .latest()
            .map_or(0, |s| s.process_rss_bytes)
    }

    pub(crate) fn keep_dropped_scope(&self, summary: ScopeSummary) {
        let mut dropped = lock(&self.dropped);
        if dropped.len() == DROPPED_SCOPES_KEPT {
            dropped.pop_front();
        }
        dropped.push_back(summary);
    }

    /// Takes one sample, records it, and raises its alerts.
    fn sample(&self) -> Result<Snapshot, Error> {
        let mut sampler = lock(&self.sampler);
        let reading = sampler.system.read()?;
        let gpus = sampler.gpu.read();
        let snap = Snapshot::new(
            self.clock.now(),
            reading.cpu_percent,
            reading.memory_used_bytes,
            reading.memory_total_bytes,
            reading.process_rss_bytes,
            gpus,
        );
        let alerts = {
            let mut state = lock(&self.state);
            state.history.push(snap.clone());
            state.alerts.evaluate(&snap)
        };
        self.scopes().record(&snap);
        // Released before delivery: a callback may call back into the monitor.
        drop(sampler);
        if !alerts.is_empty() {
            alerts.iter().for_each(Alert::log);
            let callbacks = lock(&self.subscribers).deliver_to_channels(&alerts);
            call_back(&callbacks, &alerts);
        }
        Ok(snap)
    }

    /// The sampling thread: one sample per interval until its generation is stopped.
    fn run(&self, generation: u64) {
        let mut next = Instant::now() + self.interval;
        let mut failing = false;
        loop {
            let mut control = lock(&self.control);
            loop {
                if control.running != Some(generation) {
                    return;
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                control = self
                    .wake
                    .wait_timeout(control, next - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            drop(control);
            match self.sample() {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!(target: "medfusion_monitor", "sampling works again");
                }
                Err(err) if !failing => {
                    failing = true;
                    tracing::warn!(
                        target: "medfusion_monitor",
                        error = %crate::error_chain(&err),
                        "a resource sample failed; retrying every interval"
                    );
                }
                Ok(_) | Err(_) => {}
            }
            // Keep to the schedule, but after a stall skip missed ticks instead of bursting.
            next += self.interval;
            let now = Instant::now();
            if next <= now {
                next = now + self.interval;
            }
        }
    }
}

/// Samples system and GPU resources on its own thread and keeps what it saw.
///
/// Build one with [`ResourceMonitor::builder`] (or [`ResourceMonitor::new`] for the
/// defaults), then [`start`](Self::start) it. It keeps a ring of recent
/// [`Snapshot`]s, raises [`Alert`]s to subscribers when thresholds are crossed, and
/// records per-[`Scope`] peaks. Dropping it stops and joins the thread.
pub struct ResourceMonitor {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ResourceMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceMonitor")
            .field("interval", &self.shared.interval)
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

impl ResourceMonitor {
    /// A builder with the defaults: 2 s, 300 snapshots, default thresholds and sources.
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder {
            interval: DEFAULT_INTERVAL,
            history_capacity: DEFAULT_HISTORY_CAPACITY,
            thresholds: ResourceThresholds::default(),
            system: None,
            gpu: None,
            clock: None,
            exact_peak_rss: true,
            reset_peak_rss: false,
        }
    }

    /// A monitor with every default (not yet started).
    pub fn new() -> Result<ResourceMonitor, Error> {
        ResourceMonitor::builder().build()
    }

    /// Starts the sampling thread (named `medfusion-monitor`); the first sample comes one
    /// interval later. Does nothing if it is already running.
    pub fn start(&self) -> Result<(), Error> {
        let mut control = lock(&self.shared.control);
        if control.handle.is_some() {
            return Ok(());
        }
        control.generation += 1;
        let generation = control.generation;
        control.running = Some(generation);
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("medfusion-monitor".into())
            .spawn(move || shared.run(generation));
        match spawned {
            Ok(handle) => {
                control.handle = Some(handle);
                Ok(())
            }
            Err(source) => {
                control.running = None;
                Err(Error::Spawn { source })
            }
        }
    }

    /// Stops the sampling thread and waits for it to end (at once: it wakes on the
    /// signal, not at its next tick). Does nothing if it is not running.
    pub fn stop(&self) {
        let handle = {
            let mut control = lock(&self.shared.control);
            control.running = None;
            control.handle.take()
        };
        self.shared.wake.notify_all();
        if let Some(handle) = handle {
            // From a callback on the thread itself, joining would wait forever; it exits
            // on its own once the callback returns.
            if handle.thread().id() != std::thread::current().id() && handle.join().is_err() {
                tracing::error!(target: "medfusion_monitor", "the sampling thread panicked");
            }
        }
    }

    /// Whether the sampling thread is running.
    pub fn is_running(&self) -> bool {
        lock(&self.shared.control).handle.is_some()
    }

    /// Takes a sample now, on the calling thread, exactly as the thread does (history,
    /// alerts, scopes); works whether or not the monitor is started.
    pub fn sample_now(&self) -> Result<Snapshot, Error> {
        self.shared.sample()
    }

    /// The newest snapshot, or `None` before the first sample.
    pub fn current_status(&self) -> Option<Snapshot> {
        lock(&self.shared.state).history.latest().cloned()
    }

    /// The kept snapshots, oldest first.
    pub fn history(&self) -> Vec<Snapshot> {
        lock(&self.shared.state).history.iter().cloned().collect()
    }

    /// Min/mean/max over the snapshots of the last `window` (up to the newest snapshot's
    /// time); `None` if there are none.
    pub fn summary(&self, window: Duration) -> Option<Summary> {
        let state = lock(&self.shared.state);
        let newest = state.history.latest()?.timestamp;
        let cutoff = newest.checked_sub(window);
        Summary::of(
            state
                .history
                .iter()
                .filter(|s| cutoff.is_none_or(|c| s.timestamp >= c)),
        )
    }

    /// Min/mean/max over the newest `count` snapshots; `None` if there are none.
    pub fn summary_last(&self, count: usize) -> Option<Summary> {
        let state = lock(&self.shared.state);
        let skip = state.history.len().saturating_sub(count);
        Summary::of(state.history.iter().skip(skip))
    }

    /// A channel receiving every alert from now on; dropping the receiver unsubscribes.
    pub fn subscribe(&self) -> mpsc::Receiver<Alert> {
        lock(&self.shared.subscribers).add_channel()
    }

    /// Calls `callback` with every alert from now on, on the sampling thread (keep it
    /// short). A panic in it is logged and does not stop sampling.
    pub fn on_alert(&self, callback: impl Fn(&Alert) + Send + Sync + 'static) -> SubscriptionId {
        lock(&self.shared.subscribers).add_callback(Arc::new(callback))
    }

    /// Removes a callback; `false` if it was already gone.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        lock(&self.shared.subscribers).remove(id)
    }

    /// Resources at or above a threshold that has not re-armed yet, with their level.
    pub fn active_alerts(&self) -> Vec<(Resource, AlertLevel)> {
        lock(&self.shared.state).alerts.active()
    }

    /// Starts recording peaks under `name` (a node id, say) until the scope is finished
    /// or dropped.
    pub fn scope(&self, name: impl Into<String>) -> Scope {
        Scope::begin(Arc::clone(&self.shared), name.into())
    }

    /// Summaries of scopes dropped without [`Scope::finish`] (the newest 1,024), taken
    /// out of the monitor.
    pub fn take_dropped_scopes(&self) -> Vec<ScopeSummary> {
        lock(&self.shared.dropped).drain(..).collect()
    }

    /// The newest snapshot in the Prometheus text format (see
    /// [`render_prometheus`](crate::render_prometheus)), or `None` before the first sample.
    pub fn prometheus(&self) -> Option<String> {
        self.current_status().map(|s| crate::render_prometheus(&s))
    }

    /// The sampling interval.
    pub fn interval(&self) -> Duration {
        self.shared.interval
    }

    /// The thresholds in force.
    pub fn thresholds(&self) -> ResourceThresholds {
        self.shared.thresholds
    }
}

impl Drop for ResourceMonitor {
    fn drop(&mut self) {
        self.stop();
    }
}
