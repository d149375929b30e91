//! One sample of the machine's resources.

use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes per "GB" in figures and alert texts: 2^30, as `nvidia-smi` and the guide count
/// (a 24 GiB card reads `24.0 GB`).
pub const BYTES_PER_GB: f64 = 1_073_741_824.0;

/// `bytes` in GB of 2^30 bytes (see [`BYTES_PER_GB`]).
pub fn gb(bytes: u64) -> f64 {
    bytes as f64 / BYTES_PER_GB
}

/// `part` as a percentage of `whole`; 0 when `whole` is 0.
pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The machine's resources at one instant: system CPU and memory, this process, and GPUs.
///
/// Serialises to JSON with the timestamp in RFC 3339 (UTC, milliseconds) and every
/// amount of memory in bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// When the sample was taken.
    #[serde(with = "rfc3339")]
    pub timestamp: SystemTime,
    /// System-wide CPU utilisation since the previous sample, 0-100 (all cores together).
    pub cpu_percent: f64,
    /// Memory in use (total minus available), as a percentage of the total.
    pub memory_percent: f64,
    /// Memory in use: total minus available, in bytes.
    pub memory_used_bytes: u64,
    /// Installed memory, in bytes.
    pub memory_total_bytes: u64,
    /// Resident set size of this process, in bytes.
    pub process_rss_bytes: u64,
    /// One entry per GPU; empty without NVIDIA GPUs or NVML.
    pub gpus: Vec<GpuSnapshot>,
}

impl Snapshot {
    /// A snapshot from its parts; `memory_percent` is computed.
    pub fn new(
        timestamp: SystemTime,
        cpu_percent: f64,
        memory_used_bytes: u64,
        memory_total_bytes: u64,
        process_rss_bytes: u64,
        gpus: Vec<GpuSnapshot>,
    ) -> Snapshot {
        Snapshot {
            timestamp,
            cpu_percent,
            memory_percent: percent(memory_used_bytes, memory_total_bytes),
            memory_used_bytes,
            memory_total_bytes,
            process_rss_bytes,
            gpus,
        }
    }

    /// Memory in use, in GB of 2^30 bytes.
    pub fn memory_used_gb(&self) -> f64 {
        gb(self.memory_used_bytes)
    }

    /// Installed memory, in GB of 2^30 bytes.
    pub fn memory_total_gb(&self) -> f64 {
        gb(self.memory_total_bytes)
    }
}

/// One GPU at one instant. Figures the device or driver does not report are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GpuSnapshot {
    /// The device index, as NVML and `nvidia-smi` number it.
    pub index: u32,
    /// The product name, such as `NVIDIA A100-SXM4-40GB`.
    pub name: String,
    /// Share of the last sample period in which a kernel ran, 0-100.
    pub utilization_percent: Option<f64>,
    /// Device memory allocated, in bytes.
    pub memory_used_bytes: u64,
    /// Device memory installed, in bytes.
    pub memory_total_bytes: u64,
    /// `memory_used_bytes` as a percentage of `memory_total_bytes`.
    pub memory_percent: f64,
    /// Core temperature, °C.
    pub temperature_celsius: Option<f64>,
    /// Power draw, watts.
    pub power_watts: Option<f64>,
    /// The enforced power limit, watts.
    pub power_limit_watts: Option<f64>,
}

impl GpuSnapshot {
    /// A GPU reading with its memory figures; the optional figures start as `None`.
    ///
    /// ```
    /// let mut gpu = medfusion_monitor::GpuSnapshot::new(0, "A100", 20 << 30, 40 << 30);
    /// gpu.temperature_celsius = Some(61.0);
    /// assert_eq!(gpu.memory_percent, 50.0);
    /// ```
    pub fn new(
        index: u32,
        name: impl Into<String>,
        memory_used_bytes: u64,
        memory_total_bytes: u64,
    ) -> GpuSnapshot {
        GpuSnapshot {
            index,
            name: name.into(),
            utilization_percent: None,
            memory_used_bytes,
            memory_total_bytes,
            memory_percent: percent(memory_used_bytes, memory_total_bytes),
            temperature_celsius: None,
            power_watts: None,
            power_limit_watts: None,
        }
    }
}

/// RFC 3339 timestamps (`2025-01-31T12:00:00.123Z`) for serde.
pub(crate) mod rfc3339 {
    use super::{Deserialize, Deserializer, Serializer, SystemTime};

    pub(crate) fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*time))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact binary fractions
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn snapshot_json_round_trips_with_an_rfc3339_timestamp() {
        let mut gpu = GpuSnapshot::new(1, "Test GPU", 3 << 30, 4 << 30);
        gpu.power_watts = Some(250.5);
        let snap = Snapshot::new(
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            12.5,
            8 << 30,
            32 << 30,
            100 << 20,
            vec![gpu],
        );
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(json["memory_percent"], 25.0);
        assert_eq!(json["gpus"][0]["memory_percent"], 75.0);
        assert_eq!(
            json["gpus"][0]["temperature_celsius"],
            serde_json::Value::Null
        );
        let back: Snapshot = serde_json::from_value(json).unwrap();
        assert_eq!(back, snap);
    }

    #[test]
    fn percent_of_nothing_is_zero() {
        assert_eq!(percent(5, 0), 0.0);
        assert!((gb(24 << 30) - 24.0).abs() < 1e-12);
    }
}
