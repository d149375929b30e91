//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

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
