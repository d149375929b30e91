//! The history ring and min/mean/max summaries over it.

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::Snapshot;

/// The newest snapshots, at most `capacity` of them.
#[derive(Debug)]
pub(crate) struct History {
    capacity: usize,
    items: VecDeque<Snapshot>,
}

impl History {
    pub(crate) fn new(capacity: usize) -> History {
        History {
            capacity,
            items: VecDeque::with_capacity(capacity),
        }
    }

    /// Appends `snap`, dropping the oldest when full.
    pub(crate) fn push(&mut self, snap: Snapshot) {
        if self.items.len() == self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(snap);
    }

    pub(crate) fn latest(&self) -> Option<&Snapshot> {
        self.items.back()
    }

    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Snapshot> {
        self.items.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }
}

/// Minimum, mean and maximum of a figure over a window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// The smallest value.
    pub min: f64,
    /// The arithmetic mean.
    pub mean: f64,
    /// The largest value.
    pub max: f64,
}

/// Folds values into [`Stats`]; NaN values are skipped.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StatsAcc {
    min: f64,
    max: f64,
    sum: f64,
    count: usize,
}

impl StatsAcc {
    pub(crate) fn push(&mut self, value: f64) {
        if value.is_nan() {
            return;
        }
        if self.count == 0 {
            (self.min, self.max) = (value, value);
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.sum += value;
        self.count += 1;
    }

    pub(crate) fn push_opt(&mut self, value: Option<f64>) {
        if let Some(value) = value {
            self.push(value);
        }
    }

    pub(crate) fn stats(&self) -> Option<Stats> {
        (self.count > 0).then(|| Stats {
            min: self.min,
            mean: self.sum / self.count as f64,
            max: self.max,
        })
    }
}

/// Min/mean/max of every figure over a run of snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Summary {
    /// How many snapshots were summarised.
    pub samples: usize,
    /// The first snapshot's time.
    #[serde(with = "crate::snapshot::rfc3339")]
    pub from: SystemTime,
    /// The last snapshot's time.
    #[serde(with = "crate::snapshot::rfc3339")]
    pub to: SystemTime,
    /// System CPU utilisation, percent.
    pub cpu_percent: Stats,
    /// System memory in use, percent.
    pub memory_percent: Stats,
    /// System memory in use, bytes.
    pub memory_used_bytes: Stats,
    /// This process's RSS, bytes.
    pub process_rss_bytes: Stats,
    /// One entry per GPU index seen, in index order.
    pub gpus: Vec<GpuSummary>,
}

/// Min/mean/max of one GPU's figures; a figure never reported is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GpuSummary {
    /// The GPU's index.
    pub index: u32,
    /// Its name, as last reported.
    pub name: String,
    /// How many snapshots included it.
    pub samples: usize,
    /// Utilisation, percent.
    pub utilization_percent: Option<Stats>,
    /// Device memory in use, percent.
    pub memory_percent: Option<Stats>,
    /// Device memory in use, bytes.
    pub memory_used_bytes: Option<Stats>,
    /// Temperature, °C.
    pub temperature_celsius: Option<Stats>,
    /// Power draw, watts.
    pub power_watts: Option<Stats>,
}

#[derive(Default)]
struct GpuAcc {
    name: String,
    samples: usize,
    util: StatsAcc,
    mem_percent: StatsAcc,
    mem_used: StatsAcc,
    temp: StatsAcc,
    power: StatsAcc,
}

impl Summary {
    /// Summarises `snapshots` (in time order); `None` if there are none.
    pub fn of<'a>(snapshots: impl IntoIterator<Item = &'a Snapshot>) -> Option<Summary> {
        let (mut cpu, mut mem, mut used, mut rss) = Default::default();
        let mut gpus: BTreeMap<u32, GpuAcc> = BTreeMap::new();
        let mut bounds: Option<(SystemTime, SystemTime)> = None;
        let mut samples = 0;
        for snap in snapshots {
            samples += 1;
            bounds = Some(bounds.map_or((snap.timestamp, snap.timestamp), |(f, _)| {
                (f, snap.timestamp)
            }));
            StatsAcc::push(&mut cpu, snap.cpu_percent);
            StatsAcc::push(&mut mem, snap.memory_percent);
            StatsAcc::push(&mut used, snap.memory_used_bytes as f64);
            StatsAcc::push(&mut rss, snap.process_rss_bytes as f64);
            for gpu in &snap.gpus {
                let acc = gpus.entry(gpu.index).or_default();
                acc.name.clone_from(&gpu.name);
                acc.samples += 1;
                acc.util.push_opt(gpu.utilization_percent);
                acc.mem_percent.push(gpu.memory_percent);
                acc.mem_used.push(gpu.memory_used_bytes as f64);
                acc.temp.push_opt(gpu.temperature_celsius);
                acc.power.push_opt(gpu.power_watts);
            }
        }
        let (from, to) = bounds?;
        let zero = Stats {
            min: 0.0,
            mean: 0.0,
            max: 0.0,
        };
        Some(Summary {
            samples,
            from,
            to,
            cpu_percent: cpu.stats().unwrap_or(zero),
            memory_percent: mem.stats().unwrap_or(zero),
            memory_used_bytes: used.stats().unwrap_or(zero),
            process_rss_bytes: rss.stats().unwrap_or(zero),
            gpus: gpus
                .into_iter()
                .map(|(index, acc)| GpuSummary {
                    index,
                    name: acc.name,
                    samples: acc.samples,
                    utilization_percent: acc.util.stats(),
                    memory_percent: acc.mem_percent.stats(),
                    memory_used_bytes: acc.mem_used.stats(),
                    temperature_celsius: acc.temp.stats(),
                    power_watts: acc.power.stats(),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GpuSnapshot;
    use std::time::{Duration, UNIX_EPOCH};

    fn snap(secs: u64, cpu: f64, gpu_used: Option<u64>) -> Snapshot {
        let gpus = gpu_used
            .map(|u| GpuSnapshot::new(0, "g", u, 100))
            .into_iter()
            .collect();
        Snapshot::new(
            UNIX_EPOCH + Duration::from_secs(secs),
            cpu,
            50,
            100,
            10,
            gpus,
        )
    }

    #[test]
    fn ring_keeps_the_newest() {
        let mut history = History::new(3);
        for i in 0..5 {
            history.push(snap(i, 0.0, None));
        }
        let secs: Vec<u64> = history
            .iter()
            .map(|s| s.timestamp.duration_since(UNIX_EPOCH).unwrap().as_secs())
            .collect();
        assert_eq!(secs, [2, 3, 4]);
        assert_eq!(history.len(), 3);
    }

    #[test]
    fn summary_has_min_mean_max_per_figure_and_gpu() {
        let snaps = [
            snap(1, 10.0, Some(20)),
            snap(2, 30.0, None),
            snap(3, 20.0, Some(60)),
        ];
        let sum = Summary::of(&snaps).unwrap();
        assert_eq!(sum.samples, 3);
        assert_eq!(
            sum.cpu_percent,
            Stats {
                min: 10.0,
                mean: 20.0,
                max: 30.0
            }
        );
        assert_eq!(
            sum.memory_percent,
            Stats {
                min: 50.0,
                mean: 50.0,
                max: 50.0
            }
        );
        assert_eq!(sum.from, UNIX_EPOCH + Duration::from_secs(1));
        assert_eq!(sum.to, UNIX_EPOCH + Duration::from_secs(3));
        assert_eq!(sum.gpus.len(), 1);
        assert_eq!(sum.gpus[0].samples, 2);
        assert_eq!(
            sum.gpus[0].memory_used_bytes,
            Some(Stats {
                min: 20.0,
                mean: 40.0,
                max: 60.0
            })
        );
        assert_eq!(sum.gpus[0].temperature_celsius, None);
        assert_eq!(Summary::of(&[]), None);
    }
}
