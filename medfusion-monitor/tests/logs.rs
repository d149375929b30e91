//! What the monitor writes through `tracing`.
//!
//! These checks live alone in this test binary, in one test: `tracing` caches each call
//! site's interest for the whole process, and a line logged with no subscriber on another
//! test thread while this one installs its scoped subscriber can leave that call site
//! marked "never", so the line would silently not be captured (seen once in CI). With one
//! test thread, every call site is first reached inside `capture_logs`.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::Fixture;
use medfusion_monitor::{ResourceThresholds, Threshold, detect_gpus};

#[test]
fn alerts_and_the_gpu_probe_log_at_the_right_levels() {
    alerts_are_logged_at_warn_and_error_and_reach_callbacks();
    detect_gpus_is_one_info_line_and_the_gpus_nvml_sees();
}

fn alerts_are_logged_at_warn_and_error_and_reach_callbacks() {
    let fx = Fixture::new();
    let thresholds = ResourceThresholds {
        cpu: Threshold::new(50.0, 90.0),
        ..ResourceThresholds::default()
    };
    let monitor = fx.builder().thresholds(thresholds).build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let id = monitor.on_alert(move |a| sink.lock().unwrap().push(a.message.clone()));

    let ((), logs) = capture_logs(|| {
        fx.system.set_cpu(85.25);
        fx.tick(&monitor);
        fx.system.set_cpu(97.0);
        fx.tick(&monitor);
    });
    assert_eq!(
        logs,
        [
            "WARN CPU usage high: 85.2%",
            "ERROR CPU usage critical: 97.0%"
        ]
    );
    assert_eq!(
        *seen.lock().unwrap(),
        ["CPU usage high: 85.2%", "CPU usage critical: 97.0%"]
    );

    assert!(monitor.unsubscribe(id));
    fx.system.set_cpu(0.0);
    fx.tick(&monitor);
    fx.system.set_cpu(97.0);
    fx.tick(&monitor);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

/// On a machine without a GPU (or NVML), one INFO line saying why and no GPUs; on one
/// with, one INFO line naming them and sane figures.
fn detect_gpus_is_one_info_line_and_the_gpus_nvml_sees() {
    // Asked before capturing: the probe itself logs nothing.
    let present = common::nvml_present();
    let (mut probe, logs) = capture_logs(detect_gpus);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0].starts_with("INFO "), "{logs:?}");
    let gpus = probe.read();
    if present {
        assert!(logs[0].contains("through NVML"), "{logs:?}");
        common::assert_sane_gpus(&gpus);
    } else {
        assert!(logs[0].contains("GPU figures are left out"), "{logs:?}");
        assert!(gpus.is_empty(), "{gpus:?}");
    }
}

/// Log lines written while `f` runs on this thread (level and message, no timestamps).
fn capture_logs<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (result, text.lines().map(|l| l.trim().to_owned()).collect())
}
