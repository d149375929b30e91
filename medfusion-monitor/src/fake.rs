//! Scripted sources for tests: readings, GPUs and time set by hand.
//!
//! Each fake is a cheap handle: clone it, give one clone to the monitor and keep the
//! other to change what the next sample sees.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::{Clock, Error, GpuProbe, GpuSnapshot, SystemReading, SystemSource};

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct SourceState {
    reading: SystemReading,
    fail_next: bool,
}

/// A [`SystemSource`] that returns whatever reading was set last.
#[derive(Debug, Clone)]
pub struct FakeSystemSource {
    state: Arc<Mutex<SourceState>>,
    reads: Arc<AtomicUsize>,
}

impl FakeSystemSource {
    /// A source returning `reading` until told otherwise.
    pub fn new(reading: SystemReading) -> FakeSystemSource {
        FakeSystemSource {
            state: Arc::new(Mutex::new(SourceState {
                reading,
                fail_next: false,
            })),
            reads: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A quiet 32 GiB machine: CPU 10 %, 8 GiB in use, a 100 MiB process.
    pub fn idle() -> FakeSystemSource {
        FakeSystemSource::new(SystemReading {
            cpu_percent: 10.0,
            memory_used_bytes: 8 << 30,
            memory_total_bytes: 32 << 30,
            process_rss_bytes: 100 << 20,
        })
    }

    /// Replaces the whole reading.
    pub fn set(&self, reading: SystemReading) {
        lock(&self.state).reading = reading;
    }

    /// Sets the CPU figure.
    pub fn set_cpu(&self, percent: f64) {
        lock(&self.state).reading.cpu_percent = percent;
    }

    /// Sets memory in use (the total stays).
    pub fn set_memory_used(&self, bytes: u64) {
        lock(&self.state).reading.memory_used_bytes = bytes;
    }

    /// Sets this process's RSS.
    pub fn set_rss(&self, bytes: u64) {
        lock(&self.state).reading.process_rss_bytes = bytes;
    }

    /// Makes the next reading fail with [`Error::Unavailable`].
    pub fn fail_next(&self) {
        lock(&self.state).fail_next = true;
    }

    /// How many readings were taken, failed ones included.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

impl SystemSource for FakeSystemSource {
    fn read(&mut self) -> Result<SystemReading, Error> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let mut state = lock(&self.state);
        if std::mem::take(&mut state.fail_next) {
            return Err(Error::Unavailable {
                what: "fake reading",
            });
        }
        Ok(state.reading)
    }
}

/// A [`GpuProbe`] returning the GPUs set last.
#[derive(Debug, Clone, Default)]
pub struct FakeGpuProbe {
    gpus: Arc<Mutex<Vec<GpuSnapshot>>>,
}

impl FakeGpuProbe {
    /// A probe returning `gpus` until told otherwise.
    pub fn new(gpus: Vec<GpuSnapshot>) -> FakeGpuProbe {
        FakeGpuProbe {
            gpus: Arc::new(Mutex::new(gpus)),
        }
    }

    /// Replaces the GPU list.
    pub fn set(&self, gpus: Vec<GpuSnapshot>) {
        *lock(&self.gpus) = gpus;
    }

    /// Sets the memory in use of the GPU with `index` (and its percentage); a no-op if
    /// there is no such GPU.
    pub fn set_memory_used(&self, index: u32, bytes: u64) {
        for gpu in lock(&self.gpus).iter_mut().filter(|g| g.index == index) {
            gpu.memory_used_bytes = bytes;
            gpu.memory_percent = crate::snapshot::percent(bytes, gpu.memory_total_bytes);
        }
    }
}

impl GpuProbe for FakeGpuProbe {
    fn read(&mut self) -> Vec<GpuSnapshot> {
        lock(&self.gpus).clone()
    }
}

/// A [`Clock`] that moves only when told to.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: SystemTime) -> ManualClock {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *lock(&self.now) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *lock(&self.now)
    }
}
