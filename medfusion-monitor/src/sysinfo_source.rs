//! The portable source, through sysinfo.

use sysinfo::{MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::{Error, SystemReading, SystemSource};

/// A [`SystemSource`] through sysinfo: works on every platform sysinfo supports.
///
/// It refreshes only CPU usage, RAM and this one process's memory. sysinfo ignores a CPU
/// refresh less than [`sysinfo::MINIMUM_CPU_UPDATE_INTERVAL`] (200 ms) after the previous
/// one, so at shorter intervals the CPU figure repeats. On Linux,
/// `ProcSource` is cheaper and has no such limit.
pub struct SysinfoSource {
    system: System,
    pid: Option<Pid>,
}

impl std::fmt::Debug for SysinfoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SysinfoSource")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Default for SysinfoSource {
    fn default() -> Self {
        SysinfoSource::new()
    }
}

impl SysinfoSource {
    /// Takes the first CPU counters.
    pub fn new() -> SysinfoSource {
        let mut system = System::new();
        system.refresh_cpu_usage();
        SysinfoSource {
            system,
            pid: sysinfo::get_current_pid().ok(),
        }
    }
}

impl SystemSource for SysinfoSource {
    fn read(&mut self) -> Result<SystemReading, Error> {
        self.system.refresh_cpu_usage();
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let total = self.system.total_memory();
        if total == 0 {
            return Err(Error::Unavailable {
                what: "memory total",
            });
        }
        let rss = match self.pid {
            Some(pid) => {
                self.system.refresh_processes_specifics(
                    ProcessesToUpdate::Some(&[pid]),
                    false,
                    ProcessRefreshKind::nothing().with_memory(),
                );
                self.system.process(pid).map_or(0, sysinfo::Process::memory)
            }
            None => 0,
        };
        Ok(SystemReading {
            cpu_percent: f64::from(self.system.global_cpu_usage()).clamp(0.0, 100.0),
            memory_used_bytes: self.system.used_memory().min(total),
            memory_total_bytes: total,
            process_rss_bytes: rss,
        })
    }
}
