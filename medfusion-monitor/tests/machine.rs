//! The real sources on this machine, checked against `/proc` (Linux).
#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, Instant};

use medfusion_monitor::{ProcSource, ResourceMonitor, SysinfoSource, SystemSource};

/// `(busy, total)` ticks from the `cpu ` line of `/proc/stat`.
fn proc_stat() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap();
    let fields: Vec<u64> = text
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap())
        .collect();
    let total: u64 = fields[..8].iter().sum();
    (total - fields[3] - fields[4], total)
}

/// Percent of memory in use per `/proc/meminfo` (total minus available).
fn meminfo_percent() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib = |key: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (kib("MemTotal:") - kib("MemAvailable:")) * 100.0 / kib("MemTotal:")
}

fn vm_rss() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = text.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Keeps one core busy for `how_long`, so the CPU figure is not just noise.
fn spin(how_long: Duration) {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < how_long {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
}

/// Reads `source` over half a second of work and checks it against `/proc`. The two are
/// read over slightly different windows (and other tests run beside this one), hence the
/// margins: a wrong formula is off by far more.
fn agrees_with_proc(make: impl FnOnce() -> Box<dyn SystemSource>) {
    let before = proc_stat();
    let mut source = make();
    spin(Duration::from_millis(500));
    let reading = source.read().unwrap();
    let after = proc_stat();
    let expected = (after.0 - before.0) as f64 * 100.0 / (after.1 - before.1) as f64;
    assert!(
        (reading.cpu_percent - expected).abs() <= 10.0,
        "cpu {} vs /proc/stat {expected}",
        reading.cpu_percent
    );
    let memory = reading.memory_used_bytes as f64 * 100.0 / reading.memory_total_bytes as f64;
    let expected = meminfo_percent();
    assert!(
        (memory - expected).abs() <= 5.0,
        "memory {memory} vs /proc/meminfo {expected}"
    );
    let rss = vm_rss();
    assert!(
        reading.process_rss_bytes.abs_diff(rss) < 16 << 20,
        "rss {} vs {rss}",
        reading.process_rss_bytes
    );
}

#[test]
fn proc_source_agrees_with_proc_stat_and_meminfo() {
    agrees_with_proc(|| Box::new(ProcSource::new().unwrap()));
}

#[test]
fn sysinfo_source_agrees_with_proc_stat_and_meminfo() {
    agrees_with_proc(|| Box::new(SysinfoSource::new()));
}

#[test]
fn the_default_monitor_samples_this_machine_with_or_without_a_gpu() {
    let monitor = ResourceMonitor::new().unwrap();
    let snap = monitor.sample_now().unwrap();
    if common::nvml_present() {
        common::assert_sane_gpus(&snap.gpus);
    } else {
        assert!(snap.gpus.is_empty(), "{:?}", snap.gpus);
    }
    assert!(snap.memory_total_bytes > 0);
    assert!((snap.memory_percent - meminfo_percent()).abs() <= 5.0);
    assert!(snap.process_rss_bytes > 0);
    assert!((0.0..=100.0).contains(&snap.cpu_percent));
    assert_eq!(monitor.current_status(), Some(snap));
}
