//! Per-scope peaks: exact from the kernel, and from samples.
//!
//! The default monitor never resets the kernel's mark: see `tests/peak_rss_default.rs`.

mod common;

use common::{Fixture, gib};
use medfusion_monitor::{GpuPeak, NoGpus, PeakRssMethod, ResourceMonitor, Scope, Stats};

const MIB: u64 = 1 << 20;

/// Allocates `bytes`, writes every page, and frees them again.
fn touch_and_free(bytes: usize) {
    let mut block = Vec::<u8>::with_capacity(bytes);
    let spare = block.spare_capacity_mut();
    for i in (0..bytes).step_by(4096) {
        spare[i].write(1);
    }
    std::hint::black_box(&mut block);
    drop(block);
}

#[cfg(target_os = "linux")]
#[test]
fn a_scope_around_200_mb_reports_the_peak_exactly() {
    let monitor = ResourceMonitor::builder()
        .gpu_probe(NoGpus)
        .reset_peak_rss(true)
        .build()
        .unwrap();
    // A larger peak before the scope: with the reset, the scope's own peak still shows.
    touch_and_free(300 * MIB as usize);
    let scope = monitor.scope("alloc");
    touch_and_free(200 * MIB as usize);
    let summary = scope.finish();
    assert_eq!(summary.name, "alloc");
    assert_eq!(summary.peak_rss_method, PeakRssMethod::Kernel);
    // The bar: at least 200 MB (10^6 bytes) above the start, for 200 MiB touched.
    let increase = summary.peak_rss_increase_bytes();
    let context = format!(
        "peak {} start {}",
        summary.peak_rss_bytes, summary.start_rss_bytes
    );
    assert!(increase >= 200_000_000, "{context}");
    // And tight: the kernel's RSS counters are per-CPU batched, so they may lag the
    // pages touched by a few dozen pages, never by a mebibyte.
    assert!(increase >= 199 * MIB, "{context}");
    assert!(
        summary.end_rss_bytes + 100 * MIB < summary.peak_rss_bytes,
        "{summary:?}"
    );
    assert!(summary.process_cpu_seconds.is_some());
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["peak_rss_method"], "kernel");
}

#[test]
fn sampled_peaks_fold_the_samples_inside_the_scope() {
    let fx = Fixture::new();
    let monitor = fx.builder().exact_peak_rss(false).build().unwrap();
    fx.system.set_rss(gib(90.0)); // before the scope: not counted
    fx.system.set_cpu(99.0);
    fx.tick(&monitor);

    let scope = monitor.scope("train");
    for (cpu, rss, gpu) in [(10.0, 50.0, 5.0), (30.0, 60.0, 20.0), (20.0, 55.0, 10.0)] {
        fx.system.set_cpu(cpu);
        fx.system.set_rss(gib(rss));
        fx.gpus.set_memory_used(0, gib(gpu));
        fx.tick(&monitor);
    }
    let summary = scope.finish();
    fx.tick(&monitor); // after the scope: not counted

    assert_eq!(summary.peak_rss_method, PeakRssMethod::Sampled);
    assert_eq!(summary.peak_rss_bytes, gib(60.0));
    assert_eq!(summary.samples, 3);
    assert_eq!(
        summary.cpu_percent,
        Some(Stats {
            min: 10.0,
            mean: 20.0,
            max: 30.0
        })
    );
    assert_eq!(
        summary.gpu_memory_peaks,
        [GpuPeak {
            index: 0,
            memory_used_bytes: gib(20.0)
        }]
    );
}

#[test]
fn a_scope_without_samples_has_no_cpu_figures() {
    let fx = Fixture::new();
    let monitor = fx.monitor();
    let summary = monitor.scope("quick").finish();
    assert_eq!(summary.samples, 0);
    assert_eq!(summary.cpu_percent, None);
    assert!(summary.gpu_memory_peaks.is_empty());
    assert!(summary.peak_rss_bytes >= summary.start_rss_bytes);
}

#[test]
fn dropped_scopes_leave_their_summary_with_the_monitor() {
    let fx = Fixture::new();
    let monitor = fx.monitor();
    let a = monitor.scope("a");
    let b = monitor.scope("b");
    fx.tick(&monitor);
    drop(b);
    drop(a);
    let names: Vec<String> = monitor
        .take_dropped_scopes()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["b", "a"]);
    assert!(monitor.take_dropped_scopes().is_empty());
    let finished = monitor.scope("c").finish();
    assert_eq!(finished.name, "c");
    assert!(monitor.take_dropped_scopes().is_empty());
}

#[test]
fn scopes_move_between_threads() {
    fn assert_send<T: Send + 'static>() {}
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send::<Scope>();
    assert_send_sync::<ResourceMonitor>();
    let fx = Fixture::new();
    let monitor = fx.monitor();
    let scope = monitor.scope("node-1");
    let summary = std::thread::spawn(move || scope.finish()).join().unwrap();
    assert_eq!(summary.name, "node-1");
}
