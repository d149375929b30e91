//! History, current status, summaries and export, on fake sources.
#![allow(clippy::float_cmp)] // the figures compared are exact binary fractions

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::{Fixture, gib};
use medfusion_monitor::{DEFAULT_HISTORY_CAPACITY, Snapshot, Stats};

fn secs(snap: &Snapshot) -> u64 {
    snap.timestamp.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn history_never_exceeds_its_capacity_and_keeps_the_newest() {
    let fx = Fixture::new();
    let monitor = fx.builder().history_capacity(5).build().unwrap();
    assert!(monitor.current_status().is_none());
    for i in 0..12 {
        fx.system.set_rss(i);
        fx.tick(&monitor);
        assert!(monitor.history().len() <= 5);
    }
    let rss: Vec<u64> = monitor
        .history()
        .iter()
        .map(|s| s.process_rss_bytes)
        .collect();
    assert_eq!(rss, [7, 8, 9, 10, 11]);
    let times: Vec<u64> = monitor.history().iter().map(secs).collect();
    assert!(times.windows(2).all(|w| w[1] == w[0] + 2), "{times:?}");
    assert_eq!(monitor.current_status().unwrap().process_rss_bytes, 11);
}

#[test]
fn the_default_history_holds_300() {
    let fx = Fixture::new();
    let monitor = fx.monitor();
    for i in 0..=300 {
        fx.system.set_rss(i);
        fx.tick(&monitor);
    }
    let history = monitor.history();
    assert_eq!(history.len(), DEFAULT_HISTORY_CAPACITY);
    assert_eq!(history[0].process_rss_bytes, 1);
    assert_eq!(history[299].process_rss_bytes, 300);
}

#[test]
fn summaries_cover_a_time_window_or_the_last_n() {
    let fx = Fixture::new();
    let monitor = fx.monitor();
    assert!(monitor.summary(Duration::from_mins(1)).is_none());
    for (cpu, gpu_used) in [(10.0, 1.0), (20.0, 2.0), (30.0, 3.0), (40.0, 4.0)] {
        fx.system.set_cpu(cpu);
        fx.gpus.set_memory_used(0, gib(gpu_used));
        fx.tick(&monitor);
    }
    // The newest three are within 4 s of the newest.
    let window = monitor.summary(Duration::from_secs(4)).unwrap();
    assert_eq!(window.samples, 3);
    assert_eq!(
        window.cpu_percent,
        Stats {
            min: 20.0,
            mean: 30.0,
            max: 40.0
        }
    );
    assert_eq!(
        secs(&monitor.history()[1]),
        window.from.duration_since(UNIX_EPOCH).unwrap().as_secs()
    );
    let gpu = &window.gpus[0];
    assert_eq!(gpu.memory_used_bytes.unwrap().max, gib(4.0) as f64);
    assert_eq!(gpu.utilization_percent, None);

    let last = monitor.summary_last(2).unwrap();
    assert_eq!(
        last.cpu_percent,
        Stats {
            min: 30.0,
            mean: 35.0,
            max: 40.0
        }
    );
    assert_eq!(monitor.summary_last(100).unwrap().samples, 4);
    assert_eq!(
        monitor
            .summary(Duration::from_secs(1_000_000_000_000))
            .unwrap()
            .samples,
        4
    );
}

#[test]
fn a_failed_reading_is_an_error_and_records_nothing() {
    let fx = Fixture::new();
    let monitor = fx.monitor();
    fx.tick(&monitor);
    fx.system.fail_next();
    let err = monitor.sample_now().unwrap_err();
    assert!(err.to_string().contains("fake reading"), "{err}");
    assert_eq!(monitor.history().len(), 1);
    fx.tick(&monitor);
    assert_eq!(monitor.history().len(), 2);
}

#[test]
fn snapshots_export_as_json_lines_and_prometheus_text() {
    let fx = Fixture::new();
    let monitor = fx.monitor();
    assert!(monitor.prometheus().is_none());
    fx.tick(&monitor);
    fx.tick(&monitor);
    let lines: Vec<String> = monitor
        .history()
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        for field in [
            "timestamp",
            "cpu_percent",
            "memory_percent",
            "memory_used_bytes",
        ] {
            assert!(value.get(field).is_some(), "{field} missing in {line}");
        }
        assert_eq!(value["gpus"][0]["name"], "Fake GPU");
        // Floats come back to within parsing precision (serde_json's default parser).
        let back: Snapshot = serde_json::from_str(line).unwrap();
        let original = monitor
            .history()
            .into_iter()
            .find(|s| s.timestamp == back.timestamp);
        let original = original.expect("the timestamp round-trips exactly");
        assert_eq!(back.memory_used_bytes, original.memory_used_bytes);
        assert_eq!(
            back.gpus[0].memory_used_bytes,
            original.gpus[0].memory_used_bytes
        );
        assert!((back.gpus[0].memory_percent - original.gpus[0].memory_percent).abs() < 1e-9);
    }
    assert_eq!(
        lines[0].find("\"timestamp\":\"2001-09-09T01:46:42.000Z\""),
        Some(1)
    );
    let text = monitor.prometheus().unwrap();
    assert!(text.contains(&format!(
        "medfusion_gpu_memory_used_bytes{{gpu=\"0\"}} {}\n",
        gib(2.4)
    )));
    assert!(text.contains("medfusion_memory_total_bytes 34359738368\n"));
}
