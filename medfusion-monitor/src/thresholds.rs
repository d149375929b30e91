//! Thresholds, and the hysteresis that turns crossings into alerts.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{Alert, AlertLevel, Error, Resource, Snapshot};

/// A warning and a critical level, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Alert at WARN from this value up.
    pub warning: f64,
    /// Alert at ERROR from this value up.
    pub critical: f64,
}

impl Threshold {
    /// A threshold pair.
    pub const fn new(warning: f64, critical: f64) -> Threshold {
        Threshold { warning, critical }
    }
}

/// When resources raise alerts.
///
/// Defaults: CPU 80/95 %, memory 80/95 %, GPU memory 90/98 % (warning/critical), re-arm
/// margin 5 points. A level alerts once when crossed and again only after the value fell
/// below that level by `rearm_margin` (for the warning level: below `warning -
/// rearm_margin`, which re-arms both levels). A level above 100 never fires.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceThresholds {
    /// System CPU utilisation.
    pub cpu: Threshold,
    /// System memory in use.
    pub memory: Threshold,
    /// Device memory in use, per GPU.
    pub gpu_memory: Threshold,
    /// How far (in percentage points) a value must fall below a level to re-arm it.
    pub rearm_margin: f64,
}

impl Default for ResourceThresholds {
    fn default() -> Self {
        ResourceThresholds {
            cpu: Threshold::new(80.0, 95.0),
            memory: Threshold::new(80.0, 95.0),
            gpu_memory: Threshold::new(90.0, 98.0),
            rearm_margin: 5.0,
        }
    }
}

impl ResourceThresholds {
    /// Checks every level is a number from 0 up, each warning at most its critical level,
    /// and the margin a number from 0 up.
    pub fn validate(&self) -> Result<(), Error> {
        let pairs = [
            (
                "thresholds.cpu",
                ["thresholds.cpu.warning", "thresholds.cpu.critical"],
                self.cpu,
            ),
            (
                "thresholds.memory",
                ["thresholds.memory.warning", "thresholds.memory.critical"],
                self.memory,
            ),
            (
                "thresholds.gpu_memory",
                [
                    "thresholds.gpu_memory.warning",
                    "thresholds.gpu_memory.critical",
                ],
                self.gpu_memory,
            ),
        ];
        for (name, [warning, critical], t) in pairs {
            for (field, value) in [(warning, t.warning), (critical, t.critical)] {
                if !value.is_finite() || value < 0.0 {
                    return Err(invalid(
                        field,
                        value,
                        "a threshold is a percentage from 0 up",
                    ));
                }
            }
            if t.warning > t.critical {
                return Err(invalid(
                    name,
                    t.warning,
                    "the warning level is above the critical one",
                ));
            }
        }
        if !self.rearm_margin.is_finite() || self.rearm_margin < 0.0 {
            return Err(invalid(
                "thresholds.rearm_margin",
                self.rearm_margin,
                "the margin is a number of percentage points from 0 up",
            ));
        }
        Ok(())
    }
}

fn invalid(field: &'static str, value: f64, reason: &'static str) -> Error {
    Error::InvalidConfig {
        field,
        value: value.to_string(),
        reason,
    }
}

/// The armed state of every resource and the alerts its next values raise.
#[derive(Debug)]
pub(crate) struct AlertTracker {
    thresholds: ResourceThresholds,
    /// The highest level alerted and not yet re-armed; absent means "normal".
    levels: HashMap<Resource, AlertLevel>,
}

impl AlertTracker {
    pub(crate) fn new(thresholds: ResourceThresholds) -> AlertTracker {
        AlertTracker {
            thresholds,
            levels: HashMap::new(),
        }
    }

    /// The alerts `snap` raises, in resource order (CPU, memory, GPUs).
    pub(crate) fn evaluate(&mut self, snap: &Snapshot) -> Vec<Alert> {
        let t = self.thresholds;
        let mut alerts = Vec::new();
        let mut check = |resource, percent, threshold, memory| {
            if let Some(level) = self.step(resource, percent, threshold) {
                let crossed = match level {
                    AlertLevel::Warning => threshold.warning,
                    AlertLevel::Critical => threshold.critical,
                };
                alerts.push(Alert::new(
                    snap.timestamp,
                    resource,
                    level,
                    percent,
                    crossed,
                    memory,
                ));
            }
        };
        check(Resource::Cpu, snap.cpu_percent, t.cpu, None);
        let memory = Some((snap.memory_used_bytes, snap.memory_total_bytes));
        check(Resource::Memory, snap.memory_percent, t.memory, memory);
        for gpu in &snap.gpus {
            let memory = Some((gpu.memory_used_bytes, gpu.memory_total_bytes));
            let resource = Resource::GpuMemory { index: gpu.index };
            check(resource, gpu.memory_percent, t.gpu_memory, memory);
        }
        alerts
    }

    /// Moves one resource's state for a new value; returns the level to alert, if any.
    fn step(&mut self, resource: Resource, value: f64, t: Threshold) -> Option<AlertLevel> {
        let margin = self.thresholds.rearm_margin;
        let mut current = self.levels.get(&resource).copied();
        if current == Some(AlertLevel::Critical) && value < t.critical - margin {
            current = Some(AlertLevel::Warning);
        }
        if current.is_some() && value < t.warning - margin {
            current = None;
        }
        let reached = if value >= t.critical {
            Some(AlertLevel::Critical)
        } else if value >= t.warning {
            Some(AlertLevel::Warning)
        } else {
            None
        };
        let fire = (reached > current).then_some(reached).flatten();
        match current.max(reached) {
            Some(level) => self.levels.insert(resource, level),
            None => self.levels.remove(&resource),
        };
        fire
    }

    /// Resources at or above a level that has not re-armed yet.
    pub(crate) fn active(&self) -> Vec<(Resource, AlertLevel)> {
        let mut active: Vec<_> = self.levels.iter().map(|(r, l)| (*r, *l)).collect();
        active.sort_by_key(|(r, _)| match r {
            Resource::Cpu => (0, 0),
            Resource::Memory => (1, 0),
            Resource::GpuMemory { index } => (2, *index),
        });
        active
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn run(values: &[f64]) -> Vec<Option<AlertLevel>> {
        let mut tracker = AlertTracker::new(ResourceThresholds::default());
        let t = Threshold::new(80.0, 95.0);
        values
            .iter()
            .map(|&v| tracker.step(Resource::Cpu, v, t))
            .collect()
    }

    use AlertLevel::{Critical as C, Warning as W};

    #[rstest]
    #[case::warning_then_critical(&[50.0, 81.0, 96.0, 97.0], vec![None, Some(W), Some(C), None])]
    #[case::straight_to_critical(&[50.0, 99.0, 97.0], vec![None, Some(C), None])]
    #[case::stays_above(&[85.0, 86.0, 79.0, 76.0, 84.0], vec![Some(W), None, None, None, None])]
    #[case::rearms_below_margin(&[85.0, 74.9, 85.0], vec![Some(W), None, Some(W)])]
    #[case::critical_rearms_alone(&[96.0, 89.0, 96.0], vec![Some(C), None, Some(C)])]
    #[case::critical_margin_holds(&[96.0, 91.0, 96.0], vec![Some(C), None, None])]
    #[case::nan_is_ignored(&[f64::NAN, 85.0], vec![None, Some(W)])]
    fn hysteresis(#[case] values: &[f64], #[case] expected: Vec<Option<AlertLevel>>) {
        assert_eq!(run(values), expected);
    }

    #[rstest]
    #[case::negative(Threshold::new(-1.0, 95.0), "thresholds.cpu.warning")]
    #[case::nan(Threshold::new(80.0, f64::NAN), "thresholds.cpu.critical")]
    #[case::inverted(Threshold::new(96.0, 95.0), "thresholds.cpu")]
    fn bad_thresholds_name_the_field(#[case] cpu: Threshold, #[case] field: &str) {
        let t = ResourceThresholds {
            cpu,
            ..ResourceThresholds::default()
        };
        let err = t.validate().unwrap_err();
        assert!(
            matches!(err, Error::InvalidConfig { field: f, .. } if f == field),
            "{err}"
        );
    }

    #[test]
    fn defaults_are_the_guides() {
        let t = ResourceThresholds::default();
        assert_eq!((t.cpu.warning, t.cpu.critical), (80.0, 95.0));
        assert_eq!((t.memory.warning, t.memory.critical), (80.0, 95.0));
        assert_eq!((t.gpu_memory.warning, t.gpu_memory.critical), (90.0, 98.0));
        t.validate().unwrap();
    }
}
