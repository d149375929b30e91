//! Thresholds and alerts on fake sources (the acceptance cases).

mod common;

use std::time::Duration;

use common::{Fixture, gib};
use medfusion_monitor::{AlertLevel, Resource, ResourceThresholds, SystemReading};

#[test]
fn gpu_memory_warning_then_critical_gives_exactly_two_alerts() {
    let fx = Fixture::new();
    let monitor = fx.monitor();
    let alerts = monitor.subscribe();
    fx.tick(&monitor); // 10 %: quiet

    fx.gpus.set_memory_used(0, gib(22.14)); // 92.3 %: warning
    fx.tick(&monitor);
    fx.gpus.set_memory_used(0, gib(23.6)); // 98.4 %: critical
    fx.tick(&monitor);
    // Stays above (93.8 % is within the 5-point margin below critical): nothing more.
    for used in [23.7, 23.9, 22.5, 23.8] {
        fx.gpus.set_memory_used(0, gib(used));
        fx.tick(&monitor);
    }

    let got: Vec<_> = alerts.try_iter().collect();
    let texts: Vec<_> = got.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "GPU 0 memory high: 92.3% (22.1/24.0 GB)",
            "GPU 0 memory critical: 98.4% (23.6/24.0 GB)"
        ]
    );
    assert_eq!(got[0].level, AlertLevel::Warning);
    assert_eq!(got[1].level, AlertLevel::Critical);
    assert_eq!(got[1].resource, Resource::GpuMemory { index: 0 });
    assert_eq!(got[1].used_bytes, Some(gib(23.6)));
    assert_eq!(
        monitor.active_alerts(),
        [(Resource::GpuMemory { index: 0 }, AlertLevel::Critical)]
    );
}

#[test]
fn falling_below_the_margin_and_rising_again_re_alerts() {
    let fx = Fixture::new();
    let monitor = fx.monitor();
    let alerts = monitor.subscribe();
    let total = 32.0;
    let at = |percent: f64| gib(total * percent / 100.0);

    fx.system.set_memory_used(at(96.8)); // critical at once: one alert, not two
    fx.tick(&monitor);
    fx.system.set_memory_used(at(77.0)); // below 80 but within the 5-point margin
    fx.tick(&monitor);
    fx.system.set_memory_used(at(85.0));
    fx.tick(&monitor);
    fx.system.set_memory_used(at(60.0)); // re-armed
    fx.tick(&monitor);
    assert!(monitor.active_alerts().is_empty());
    fx.system.set_memory_used(at(85.0));
    fx.tick(&monitor);

    let texts: Vec<_> = alerts.try_iter().map(|a| a.to_string()).collect();
    assert_eq!(
        texts,
        [
            "Memory usage critical: 96.8% (31.0/32.0 GB)",
            "Memory usage high: 85.0% (27.2/32.0 GB)"
        ]
    );
}

#[test]
fn memory_text_matches_the_guide() {
    let fx = Fixture::new();
    let monitor = fx.monitor();
    let alerts = monitor.subscribe();
    fx.system.set(SystemReading {
        cpu_percent: 10.0,
        memory_used_bytes: gib(30.94),
        memory_total_bytes: gib(31.96),
        process_rss_bytes: 1 << 20,
    });
    fx.tick(&monitor);
    assert_eq!(
        alerts.try_recv().unwrap().message,
        "Memory usage critical: 96.8% (30.9/32.0 GB)"
    );
}

#[test]
fn a_panicking_callback_does_not_stop_delivery() {
    let fx = Fixture::new();
    let monitor = fx.monitor();
    monitor.on_alert(|_| panic!("callback bug"));
    let alerts = monitor.subscribe();
    fx.system.set_cpu(99.0);
    fx.tick(&monitor);
    fx.system.set_cpu(10.0);
    fx.tick(&monitor);
    fx.system.set_cpu(99.0);
    fx.tick(&monitor);
    assert_eq!(alerts.try_iter().count(), 2);
}

#[test]
fn the_sampling_thread_raises_alerts_on_its_own() {
    let fx = Fixture::new();
    let monitor = fx
        .builder()
        .interval(Duration::from_millis(1))
        .build()
        .unwrap();
    let alerts = monitor.subscribe();
    fx.gpus.set_memory_used(0, gib(23.9));
    monitor.start().unwrap();
    let alert = alerts
        .recv_timeout(Duration::from_mins(1))
        .expect("an alert from the thread");
    assert_eq!(alert.message, "GPU 0 memory critical: 99.6% (23.9/24.0 GB)");
    monitor.stop();
    assert!(!monitor.is_running());
    let reads = fx.system.reads();
    assert!(reads >= 1);
    assert!(alerts.try_iter().all(|a| a.level != AlertLevel::Critical));
    assert_eq!(fx.system.reads(), reads, "no sample after stop returned");
}

#[test]
fn bad_settings_name_the_setting() {
    let fx = Fixture::new();
    let err = fx.builder().interval(Duration::ZERO).build().unwrap_err();
    assert!(err.to_string().contains("`interval`"), "{err}");
    let err = fx.builder().history_capacity(0).build().unwrap_err();
    assert!(err.to_string().contains("`history_capacity`"), "{err}");
    let bad = ResourceThresholds {
        rearm_margin: -1.0,
        ..ResourceThresholds::default()
    };
    let err = fx.builder().thresholds(bad).build().unwrap_err();
    assert!(
        err.to_string().contains("`thresholds.rearm_margin`"),
        "{err}"
    );
}
