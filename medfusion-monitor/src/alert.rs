//! Alerts: what crossed which level, their text, and delivery to subscribers.

use std::fmt::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, mpsc};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::snapshot::gb;

/// The resource an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Resource {
    /// System-wide CPU utilisation.
    Cpu,
    /// System memory in use.
    Memory,
    /// Device memory of one GPU.
    GpuMemory {
        /// The GPU's index.
        index: u32,
    },
}

/// How far past its thresholds a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    /// At or above the warning threshold (logged at WARN; the text says "high").
    Warning,
    /// At or above the critical threshold (logged at ERROR; the text says "critical").
    Critical,
}

impl AlertLevel {
    /// The word in the alert text: `high` or `critical`.
    pub fn word(self) -> &'static str {
        match self {
            AlertLevel::Warning => "high",
            AlertLevel::Critical => "critical",
        }
    }
}

/// A resource crossed a threshold.
///
/// Its text (`Display`, and the `message` field) is the guide's:
/// `GPU 0 memory high: 92.3% (22.1/24.0 GB)`, `Memory usage critical: 96.8% (30.9/32.0 GB)`,
/// `CPU usage high: 85.2%` (GB of 2^30 bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Alert {
    /// The snapshot's time.
    #[serde(with = "crate::snapshot::rfc3339")]
    pub timestamp: SystemTime,
    /// What crossed.
    pub resource: Resource,
    /// Which level it crossed.
    pub level: AlertLevel,
    /// The value, in percent.
    pub percent: f64,
    /// The threshold crossed, in percent.
    pub threshold: f64,
    /// Bytes in use, for memory alerts.
    pub used_bytes: Option<u64>,
    /// Bytes installed, for memory alerts.
    pub total_bytes: Option<u64>,
    /// The alert text.
    pub message: String,
}

impl Alert {
    pub(crate) fn new(
        timestamp: SystemTime,
        resource: Resource,
        level: AlertLevel,
        percent: f64,
        threshold: f64,
        memory: Option<(u64, u64)>,
    ) -> Alert {
        let word = level.word();
        let mut message = match resource {
            Resource::Cpu => format!("CPU usage {word}: {percent:.1}%"),
            Resource::Memory => format!("Memory usage {word}: {percent:.1}%"),
            Resource::GpuMemory { index } => format!("GPU {index} memory {word}: {percent:.1}%"),
        };
        if let Some((used, total)) = memory {
            let _ = write!(message, " ({:.1}/{:.1} GB)", gb(used), gb(total));
        }
        Alert {
            timestamp,
            resource,
            level,
            percent,
            threshold,
            used_bytes: memory.map(|m| m.0),
            total_bytes: memory.map(|m| m.1),
            message,
        }
    }

    /// Logs the alert through `tracing` (target `medfusion_monitor`): WARN or ERROR.
    pub(crate) fn log(&self) {
        match self.level {
            AlertLevel::Warning => {
                tracing::warn!(target: "medfusion_monitor", "{}", self.message);
            }
            AlertLevel::Critical => {
                tracing::error!(target: "medfusion_monitor", "{}", self.message);
            }
        }
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Names a callback given to [`ResourceMonitor::on_alert`](crate::ResourceMonitor::on_alert),
/// for [`ResourceMonitor::unsubscribe`](crate::ResourceMonitor::unsubscribe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionId(u64);

type Callback = Arc<dyn Fn(&Alert) + Send + Sync>;

/// Everyone who wants alerts.
#[derive(Default)]
pub(crate) struct Subscribers {
    next_id: u64,
    callbacks: Vec<(SubscriptionId, Callback)>,
    channels: Vec<mpsc::Sender<Alert>>,
}

impl Subscribers {
    pub(crate) fn add_callback(&mut self, callback: Callback) -> SubscriptionId {
        self.next_id += 1;
        let id = SubscriptionId(self.next_id);
        self.callbacks.push((id, callback));
        id
    }

    pub(crate) fn add_channel(&mut self) -> mpsc::Receiver<Alert> {
        let (tx, rx) = mpsc::channel();
        self.channels.push(tx);
        rx
    }

    pub(crate) fn remove(&mut self, id: SubscriptionId) -> bool {
        let before = self.callbacks.len();
        self.callbacks.retain(|(i, _)| *i != id);
        self.callbacks.len() != before
    }

    /// Sends `alerts` to the channels (dropping closed ones) and returns the callbacks, to
    /// be called once the lock is released (a callback may call back into the monitor).
    pub(crate) fn deliver_to_channels(&mut self, alerts: &[Alert]) -> Vec<Callback> {
        self.channels
            .retain(|tx| alerts.iter().all(|a| tx.send(a.clone()).is_ok()));
        self.callbacks
            .iter()
            .map(|(_, cb)| Arc::clone(cb))
            .collect()
    }
}

/// Calls each callback with each alert; a panicking callback is logged, not propagated,
/// so it cannot stop the sampling thread.
pub(crate) fn call_back(callbacks: &[Callback], alerts: &[Alert]) {
    for alert in alerts {
        for callback in callbacks {
            if catch_unwind(AssertUnwindSafe(|| callback(alert))).is_err() {
                tracing::error!(target: "medfusion_monitor", "an alert callback panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn texts_match_the_guide() {
        let gib = |x: f64| (x * crate::BYTES_PER_GB) as u64;
        let gpu = Alert::new(
            UNIX_EPOCH,
            Resource::GpuMemory { index: 0 },
            AlertLevel::Warning,
            92.3,
            90.0,
            Some((gib(22.1), gib(24.0))),
        );
        assert_eq!(gpu.to_string(), "GPU 0 memory high: 92.3% (22.1/24.0 GB)");
        let mem = Alert::new(
            UNIX_EPOCH,
            Resource::Memory,
            AlertLevel::Critical,
            96.8,
            95.0,
            Some((gib(30.9), gib(32.0))),
        );
        assert_eq!(
            mem.to_string(),
            "Memory usage critical: 96.8% (30.9/32.0 GB)"
        );
        let cpu = Alert::new(
            UNIX_EPOCH,
            Resource::Cpu,
            AlertLevel::Warning,
            85.25,
            80.0,
            None,
        );
        assert_eq!(cpu.to_string(), "CPU usage high: 85.2%");
    }

    #[test]
    fn closed_channels_are_dropped_and_callbacks_can_be_removed() {
        let mut subs = Subscribers::default();
        let rx = subs.add_channel();
        drop(subs.add_channel());
        let id = subs.add_callback(Arc::new(|_| {}));
        let alert = Alert::new(
            UNIX_EPOCH,
            Resource::Cpu,
            AlertLevel::Warning,
            81.0,
            80.0,
            None,
        );
        assert_eq!(
            subs.deliver_to_channels(std::slice::from_ref(&alert)).len(),
            1
        );
        assert_eq!(subs.channels.len(), 1);
        assert_eq!(rx.try_recv().unwrap(), alert);
        assert!(subs.remove(id));
        assert!(!subs.remove(id));
    }
}
