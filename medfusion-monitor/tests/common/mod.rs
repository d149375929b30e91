//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use medfusion_monitor::{
    FakeGpuProbe, FakeSystemSource, GpuSnapshot, ManualClock, MonitorBuilder, ResourceMonitor,
};

/// `x` GiB in bytes.
pub fn gib(x: f64) -> u64 {
    (x * medfusion_monitor::BYTES_PER_GB).round() as u64
}

/// A monitor on fakes: a quiet 32 GiB machine, one GPU of 23.99 GiB (shown as 24.0 GB)
/// at 10 %, a clock at 1e9 s.
pub struct Fixture {
    pub system: FakeSystemSource,
    pub gpus: FakeGpuProbe,
    pub clock: ManualClock,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            system: FakeSystemSource::idle(),
            gpus: FakeGpuProbe::new(vec![GpuSnapshot::new(0, "Fake GPU", gib(2.4), gib(23.99))]),
            clock: ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000_000_000)),
        }
    }

    pub fn builder(&self) -> MonitorBuilder {
        ResourceMonitor::builder()
            .system_source(self.system.clone())
            .gpu_probe(self.gpus.clone())
            .clock(self.clock.clone())
    }

    pub fn monitor(&self) -> ResourceMonitor {
        self.builder().build().unwrap()
    }

    /// One sample, two seconds after the previous one.
    pub fn tick(&self, monitor: &ResourceMonitor) {
        self.clock.advance(Duration::from_secs(2));
        monitor.sample_now().unwrap();
    }
}

/// Log lines written while `f` runs on this thread (level and message, no timestamps).
pub fn capture_logs<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
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
