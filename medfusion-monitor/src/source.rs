//! Where system figures come from: the [`SystemSource`] trait, the wall clock, and the default.

use std::time::SystemTime;

use crate::Error;

/// System-wide CPU and memory and this process's RSS, as one source reads them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SystemReading {
    /// System-wide CPU utilisation since the previous reading, 0-100 (all cores together).
    pub cpu_percent: f64,
    /// Memory in use (total minus available), in bytes.
    pub memory_used_bytes: u64,
    /// Installed memory, in bytes.
    pub memory_total_bytes: u64,
    /// Resident set size of this process, in bytes.
    pub process_rss_bytes: u64,
}

/// Reads system CPU, memory and the own RSS, one reading per sample.
///
/// The CPU figure is a rate, so a source keeps the counters of its previous reading; the
/// first reading covers the time since the source was made.
/// [`default_system_source`] picks the implementation for this platform; tests plug in
/// [`FakeSystemSource`](crate::FakeSystemSource).
pub trait SystemSource: Send {
    /// One reading.
    fn read(&mut self) -> Result<SystemReading, Error>;
}

impl<S: SystemSource + ?Sized> SystemSource for Box<S> {
    fn read(&mut self) -> Result<SystemReading, Error> {
        (**self).read()
    }
}

/// Gives the time stamped on snapshots; [`ManualClock`](crate::ManualClock) fakes it in tests.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The cheapest source for this platform.
///
/// On Linux: `ProcSource`, which reads `/proc` directly, falling back
/// to [`SysinfoSource`](crate::SysinfoSource) (with a warning) if `/proc` cannot be read.
/// Elsewhere: [`SysinfoSource`](crate::SysinfoSource).
pub fn default_system_source() -> Box<dyn SystemSource> {
    #[cfg(target_os = "linux")]
    match crate::ProcSource::new() {
        Ok(source) => return Box::new(source),
        Err(err) => tracing::warn!(
            target: "medfusion_monitor",
            error = %crate::error_chain(&err),
            "cannot read /proc directly; sampling through sysinfo instead"
        ),
    }
    Box::new(crate::SysinfoSource::new())
}
