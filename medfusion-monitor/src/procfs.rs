//! The Linux source: `/proc/stat`, `/proc/meminfo` and `/proc/self/statm`, read directly.
//!
//! sysinfo refreshes CPU counters at most every 200 ms (a quicker call is silently a
//! no-op), parses every per-core line and reads `/proc/cpuinfo` on the first refresh. A
//! sample needs one line of `/proc/stat`, three of `/proc/meminfo` and one number of
//! `statm`, so this reader keeps the three files open and reads only their heads.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use crate::{Error, SystemReading, SystemSource};

const STAT: &str = "/proc/stat";
const MEMINFO: &str = "/proc/meminfo";
const STATM: &str = "/proc/self/statm";

/// Cumulative CPU time of all cores, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuTicks {
    pub(crate) busy: u64,
    pub(crate) total: u64,
}

impl CpuTicks {
    /// Utilisation between `earlier` and `self`, or `None` if no tick passed.
    pub(crate) fn percent_since(self, earlier: CpuTicks) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|&t| t > 0)?;
        let busy = self.busy.saturating_sub(earlier.busy).min(total);
        Some(busy as f64 * 100.0 / total as f64)
    }
}

/// The aggregate `cpu ` line at the head of `/proc/stat`.
///
/// Busy time is everything but `idle` and `iowait`; `guest` and `guest_nice` are already
/// counted in `user` and `nice`, so they are left out of the total (as psutil does).
pub(crate) fn parse_stat(text: &str) -> Option<CpuTicks> {
    let line = text.lines().next()?;
    let mut fields = line.strip_prefix("cpu ")?.split_ascii_whitespace();
    let mut values = [0u64; 8];
    for (i, value) in values.iter_mut().enumerate() {
        // Kernels before 2.6.11 lack `steal`; before 2.6.0, `iowait` onwards.
        match fields.next() {
            Some(field) => *value = field.parse().ok()?,
            None if i >= 4 => break,
            None => return None,
        }
    }
    let total = values.iter().sum::<u64>();
    let idle = values[3] + values[4];
    Some(CpuTicks {
        busy: total - idle,
        total,
    })
}

/// `(total, available)` bytes from `/proc/meminfo`.
///
/// Kernels before 3.14 have no `MemAvailable`; it is then estimated as the kernel does:
/// free + buffers + page cache + reclaimable slab - shared memory.
pub(crate) fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let (mut total, mut available) = (None, None);
    let (mut free, mut buffers, mut cached, mut reclaimable, mut shmem) = (0, 0, 0, 0, 0);
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(kib) = rest
            .split_ascii_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        let bytes = kib.saturating_mul(1024);
        match key {
            "MemTotal" => total = Some(bytes),
            "MemAvailable" => available = Some(bytes),
            "MemFree" => free = bytes,
            "Buffers" => buffers = bytes,
            "Cached" => cached = bytes,
            "SReclaimable" => reclaimable = bytes,
            "Shmem" => shmem = bytes,
            _ => {}
        }
        if total.is_some() && available.is_some() {
            break;
        }
    }
    let total = total?;
    let available = available.unwrap_or_else(|| {
        (free + buffers + cached + reclaimable)
            .saturating_sub(shmem)
            .min(total)
    });
    Some((total, available))
}

/// Resident bytes from `/proc/self/statm` (its second field, in pages).
pub(crate) fn parse_statm(text: &str, page_size: u64) -> Option<u64> {
    let pages: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size)
}

/// This process's RSS now, read afresh from `/proc/self/statm`.
pub(crate) fn self_rss() -> Option<u64> {
    let text = std::fs::read_to_string(STATM).ok()?;
    parse_statm(&text, page_size())
}

/// The page size, for `statm`.
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for unknown names.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// A `/proc` file kept open and re-read from its start.
#[derive(Debug)]
struct ProcFile {
    path: &'static str,
    file: File,
}

impl ProcFile {
    fn open(path: &'static str) -> Result<ProcFile, Error> {
        let file = File::open(path).map_err(|source| read_error(path, source))?;
        Ok(ProcFile { path, file })
    }

    /// The head of the file (as much as fits in `buf`), as text.
    fn read_head<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b str, Error> {
        self.file
            .rewind()
            .map_err(|source| read_error(self.path, source))?;
        let mut filled = 0;
        while filled < buf.len() {
            match self.file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(read_error(self.path, source)),
            }
        }
        // The head may end inside a multi-byte character: keep the valid prefix.
        let valid = match std::str::from_utf8(&buf[..filled]) {
            Ok(text) => text.len(),
            Err(e) => e.valid_up_to(),
        };
        Ok(std::str::from_utf8(&buf[..valid]).unwrap_or_default())
    }
}

fn read_error(path: &str, source: std::io::Error) -> Error {
    Error::Read {
        path: PathBuf::from(path),
        source,
    }
}

fn parse_error(path: &str, what: &'static str) -> Error {
    Error::Parse {
        path: Path::new(path).to_path_buf(),
        what,
    }
}

/// A [`SystemSource`] reading `/proc` directly (Linux): the cheapest way to sample.
///
/// Unlike sysinfo it has no minimum interval: every reading gives the CPU utilisation
/// since the previous one (or, if no clock tick passed, repeats the previous figure).
#[derive(Debug)]
pub struct ProcSource {
    stat: ProcFile,
    meminfo: ProcFile,
    statm: ProcFile,
    page_size: u64,
    previous: CpuTicks,
    last_percent: f64,
}

impl ProcSource {
    /// Opens the three files and takes the first CPU counters.
    pub fn new() -> Result<ProcSource, Error> {
        let mut source = ProcSource {
            stat: ProcFile::open(STAT)?,
            meminfo: ProcFile::open(MEMINFO)?,
            statm: ProcFile::open(STATM)?,
            page_size: page_size(),
            previous: CpuTicks { busy: 0, total: 0 },
            last_percent: 0.0,
        };
        source.previous = source.cpu_ticks()?;
        Ok(source)
    }

    fn cpu_ticks(&mut self) -> Result<CpuTicks, Error> {
        let mut buf = [0u8; 512];
        parse_stat(self.stat.read_head(&mut buf)?)
            .ok_or_else(|| parse_error(STAT, "no aggregate `cpu` line with numeric fields"))
    }
}

impl SystemSource for ProcSource {
    fn read(&mut self) -> Result<SystemReading, Error> {
        let ticks = self.cpu_ticks()?;
        if let Some(percent) = ticks.percent_since(self.previous) {
            self.last_percent = percent;
        }
        self.previous = ticks;

        let mut buf = [0u8; 4096];
        let (total, available) = parse_meminfo(self.meminfo.read_head(&mut buf)?)
            .ok_or_else(|| parse_error(MEMINFO, "no `MemTotal` line"))?;
        let rss = parse_statm(self.statm.read_head(&mut buf)?, self.page_size)
            .ok_or_else(|| parse_error(STATM, "no resident page count"))?;
        Ok(SystemReading {
            cpu_percent: self.last_percent,
            memory_used_bytes: total.saturating_sub(available),
            memory_total_bytes: total,
            process_rss_bytes: rss,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_busy_excludes_idle_iowait_and_guest() {
        let text = "cpu  100 20 30 400 50 6 4 10 99 99\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        let ticks = parse_stat(text).unwrap();
        assert_eq!(
            ticks,
            CpuTicks {
                busy: 170,
                total: 620
            }
        );
        let later = CpuTicks {
            busy: 170 + 30,
            total: 620 + 120,
        };
        assert_eq!(later.percent_since(ticks), Some(25.0));
        assert_eq!(ticks.percent_since(ticks), None);
    }

    #[test]
    fn stat_without_a_cpu_line_is_rejected() {
        assert_eq!(parse_stat("intr 1 2 3\n"), None);
        assert_eq!(parse_stat("cpu  1 2 x 4\n"), None);
        assert_eq!(parse_stat("cpu  1 2 3\n"), None);
        assert!(parse_stat("cpu  1 2 3 4\n").is_some());
    }

    #[test]
    fn meminfo_reads_available_or_estimates_it() {
        let modern = "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\n";
        assert_eq!(parse_meminfo(modern), Some((1_024_000, 614_400)));
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 300 kB\n\
                   Shmem: 20 kB\nSReclaimable: 70 kB\n";
        assert_eq!(parse_meminfo(old), Some((1_024_000, 500 * 1024)));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn statm_second_field_is_resident_pages() {
        assert_eq!(
            parse_statm("5000 1200 300 1 0 900 0\n", 4096),
            Some(1200 * 4096)
        );
        assert_eq!(parse_statm("5000\n", 4096), None);
    }

    #[test]
    fn reads_this_machine() {
        let mut source = ProcSource::new().unwrap();
        let reading = source.read().unwrap();
        assert!(reading.memory_total_bytes > 0);
        assert!(reading.memory_used_bytes <= reading.memory_total_bytes);
        assert!(reading.process_rss_bytes > 0);
        assert!((0.0..=100.0).contains(&reading.cpu_percent));
    }
}
