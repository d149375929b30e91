//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, UNIX_EPOCH};

use medfusion_monitor::{
    FakeGpuProbe, FakeSystemSource, GpuSnapshot, ManualClock, MonitorBuilder, ResourceMonitor,
};

/// Whether this machine has a GPU NVML can see, asked through the crate's own probe (and
/// `false` in a build without the `gpu` feature, which never reports GPUs).
pub fn nvml_present() -> bool {
    #[cfg(feature = "gpu")]
    {
        medfusion_monitor::NvmlProbe::new().is_ok()
    }
    #[cfg(not(feature = "gpu"))]
    {
        false
    }
}

/// Checks the figures of GPUs read from a real machine: indices in order, names, memory
/// used within the total, percentages within 0..=100.
pub fn assert_sane_gpus(gpus: &[GpuSnapshot]) {
    assert!(!gpus.is_empty(), "NVML is present but no GPU was read");
    for (i, gpu) in gpus.iter().enumerate() {
        assert_eq!(gpu.index as usize, i, "{gpu:?}");
        assert!(!gpu.name.trim().is_empty(), "{gpu:?}");
        assert!(gpu.memory_total_bytes > 0, "{gpu:?}");
        assert!(gpu.memory_used_bytes <= gpu.memory_total_bytes, "{gpu:?}");
        assert!((0.0..=100.0).contains(&gpu.memory_percent), "{gpu:?}");
        if let Some(util) = gpu.utilization_percent {
            assert!((0.0..=100.0).contains(&util), "{gpu:?}");
        }
    }
}

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
