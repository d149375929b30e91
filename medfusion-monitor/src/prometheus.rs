//! The Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;

use crate::Snapshot;

/// A metric family: name, help text, and how each GPU gives its value.
type GpuMetric = (
    &'static str,
    &'static str,
    fn(&crate::GpuSnapshot) -> Option<f64>,
);

const GPU_METRICS: [GpuMetric; 7] = [
    (
        "medfusion_gpu_utilization_percent",
        "GPU utilisation over the driver's last sample period.",
        |g| g.utilization_percent,
    ),
    (
        "medfusion_gpu_memory_used_bytes",
        "Device memory allocated.",
        |g| Some(g.memory_used_bytes as f64),
    ),
    (
        "medfusion_gpu_memory_total_bytes",
        "Device memory installed.",
        |g| Some(g.memory_total_bytes as f64),
    ),
    (
        "medfusion_gpu_memory_usage_percent",
        "Device memory allocated, percent of installed.",
        |g| Some(g.memory_percent),
    ),
    (
        "medfusion_gpu_temperature_celsius",
        "GPU core temperature.",
        |g| g.temperature_celsius,
    ),
    ("medfusion_gpu_power_watts", "GPU power draw.", |g| {
        g.power_watts
    }),
    (
        "medfusion_gpu_power_limit_watts",
        "GPU enforced power limit.",
        |g| g.power_limit_watts,
    ),
];

/// `snap` in the Prometheus text exposition format: one gauge family per figure, GPU
/// figures labelled `gpu="<index>"` (for example `medfusion_gpu_memory_used_bytes{gpu="0"}`),
/// and `medfusion_gpu_info{gpu="0",name="..."} 1` carrying the names.
///
/// Families with no value (no GPUs, or a figure no GPU reports) are left out.
///
/// ```
/// use medfusion_monitor::{render_prometheus, GpuSnapshot, Snapshot};
/// let gpu = GpuSnapshot::new(0, "A100", 1 << 30, 40 << 30);
/// let now = std::time::SystemTime::now();
/// let snap = Snapshot::new(now, 12.5, 4 << 30, 16 << 30, 1 << 20, vec![gpu]);
/// let text = render_prometheus(&snap);
/// assert!(text.contains("medfusion_gpu_memory_used_bytes{gpu=\"0\"} 1073741824\n"));
/// assert!(text.contains("medfusion_cpu_usage_percent 12.5\n"));
/// ```
pub fn render_prometheus(snap: &Snapshot) -> String {
    let mut out = String::with_capacity(1024 + 1024 * snap.gpus.len());
    let system: [(&str, &str, f64); 5] = [
        (
            "medfusion_cpu_usage_percent",
            "System CPU utilisation since the previous sample.",
            snap.cpu_percent,
        ),
        (
            "medfusion_memory_used_bytes",
            "System memory in use (total minus available).",
            snap.memory_used_bytes as f64,
        ),
        (
            "medfusion_memory_total_bytes",
            "System memory installed.",
            snap.memory_total_bytes as f64,
        ),
        (
            "medfusion_memory_usage_percent",
            "System memory in use, percent of installed.",
            snap.memory_percent,
        ),
        (
            "medfusion_process_resident_memory_bytes",
            "Resident set size of the monitored process.",
            snap.process_rss_bytes as f64,
        ),
    ];
    for (name, help, value) in system {
        header(&mut out, name, help);
        let _ = writeln!(out, "{name} {}", number(value));
    }
    if !snap.gpus.is_empty() {
        header(
            &mut out,
            "medfusion_gpu_info",
            "GPU names; the value is always 1.",
        );
        for gpu in &snap.gpus {
            let _ = writeln!(
                out,
                "medfusion_gpu_info{{gpu=\"{}\",name=\"{}\"}} 1",
                gpu.index,
                escape(&gpu.name)
            );
        }
    }
    for (name, help, get) in GPU_METRICS {
        let values: Vec<_> = snap
            .gpus
            .iter()
            .filter_map(|g| get(g).map(|v| (g.index, v)))
            .collect();
        if values.is_empty() {
            continue;
        }
        header(&mut out, name, help);
        for (index, value) in values {
            let _ = writeln!(out, "{name}{{gpu=\"{index}\"}} {}", number(value));
        }
    }
    out
}

fn header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// A sample value as Prometheus spells it (`NaN`, `+Inf`, `-Inf`).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        value.to_string()
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GpuSnapshot;
    use std::time::UNIX_EPOCH;

    #[test]
    fn every_line_is_a_comment_or_a_sample_of_a_declared_family() {
        let mut a = GpuSnapshot::new(0, "Card \"A\"\\x", 3 << 30, 4 << 30);
        a.temperature_celsius = Some(55.0);
        let b = GpuSnapshot::new(1, "B", 0, 8 << 30);
        let snap = Snapshot::new(UNIX_EPOCH, f64::NAN, 1, 2, 3, vec![a, b]);
        let text = render_prometheus(&snap);
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert_eq!(kind, "gauge");
                declared.push(name.to_owned());
            } else if !line.starts_with("# HELP ") {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(declared.last().map(String::as_str), Some(name), "{line}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value == "NaN" || value.parse::<f64>().is_ok(), "{line}");
            }
        }
        assert!(text.contains("medfusion_cpu_usage_percent NaN\n"));
        assert!(text.contains("medfusion_gpu_info{gpu=\"0\",name=\"Card \\\"A\\\"\\\\x\"} 1\n"));
        assert!(text.contains("medfusion_gpu_memory_used_bytes{gpu=\"1\"} 0\n"));
        assert!(text.contains("medfusion_gpu_temperature_celsius{gpu=\"0\"} 55\n"));
        assert!(!text.contains("temperature_celsius{gpu=\"1\"}"));
        assert!(!text.contains("power"));
    }

    #[test]
    fn no_gpu_families_without_gpus() {
        let snap = Snapshot::new(UNIX_EPOCH, 1.0, 1, 2, 3, Vec::new());
        assert!(!render_prometheus(&snap).contains("gpu"));
    }
}
