//! A monitor built with the defaults leaves the kernel's peak-RSS mark alone: a library
//! must not write `/proc/self/clear_refs` unless its application asks
//! ([`MonitorBuilder::reset_peak_rss`](medfusion_monitor::MonitorBuilder::reset_peak_rss)).
//!
//! Alone in its binary, in one test: the mark is one counter for the whole process, and
//! another test's allocations or resets would move it.
#![cfg(target_os = "linux")]

use medfusion_monitor::{FakeSystemSource, NoGpus, PeakRssMethod, ResourceMonitor};

const MIB: u64 = 1 << 20;

/// Allocates `bytes`, writes every page, and frees them again.
fn touch_and_free(bytes: u64) {
    let bytes = usize::try_from(bytes).unwrap();
    let mut block = Vec::<u8>::with_capacity(bytes);
    let spare = block.spare_capacity_mut();
    for i in (0..bytes).step_by(4096) {
        spare[i].write(1);
    }
    std::hint::black_box(&mut block);
    drop(block);
}

/// `VmHWM` of this process, bytes.
fn high_water_mark() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = text.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn the_default_monitor_never_resets_the_peak_rss_mark() {
    let monitor = ResourceMonitor::builder()
        .system_source(FakeSystemSource::idle())
        .gpu_probe(NoGpus)
        .build()
        .unwrap();
    touch_and_free(200 * MIB);
    let mark = high_water_mark();

    // Below the earlier peak: the mark cannot tell this scope's peak, so it is sampled.
    let scope = monitor.scope("small");
    touch_and_free(20 * MIB);
    let small = scope.finish();
    assert!(
        high_water_mark() >= mark,
        "the scope reset the mark: {} < {mark}",
        high_water_mark()
    );
    assert_eq!(small.peak_rss_method, PeakRssMethod::Sampled, "{small:?}");
    assert!(small.peak_rss_bytes >= small.start_rss_bytes, "{small:?}");

    // A new high for the process: the mark is this scope's peak, exactly.
    let scope = monitor.scope("big");
    touch_and_free(400 * MIB);
    let big = scope.finish();
    assert_eq!(big.peak_rss_method, PeakRssMethod::Kernel, "{big:?}");
    assert!(big.peak_rss_increase_bytes() >= 399 * MIB, "{big:?}");
    assert!(high_water_mark() >= big.peak_rss_bytes);
}
