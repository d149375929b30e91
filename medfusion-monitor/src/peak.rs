//! Exact peak RSS from the kernel: `VmHWM` in `/proc/self/status`, reset by writing `5` to
//! `/proc/self/clear_refs` (Linux 4.0+).
//!
//! The high-water mark is one counter per process, but scopes overlap (the engine runs
//! nodes in parallel). So every reset goes through one tracker: before it resets the
//! counter, it folds the current mark into the peak of every open scope. Each scope's
//! peak is then the largest mark of the stretches since its own start: exact, as long as
//! nothing else in the process writes `clear_refs`.

use std::sync::{Mutex, PoisonError};

/// `(VmRSS, VmHWM)` in bytes from the text of `/proc/self/status`.
pub(crate) fn parse_status(text: &str) -> Option<(u64, u64)> {
    let (mut rss, mut hwm) = (None, None);
    for line in text.lines() {
        let field = if line.starts_with("VmHWM:") {
            &mut hwm
        } else if line.starts_with("VmRSS:") {
            &mut rss
        } else {
            continue;
        };
        let kib: u64 = line[6..].split_ascii_whitespace().next()?.parse().ok()?;
        *field = Some(kib * 1024);
        if rss.is_some() && hwm.is_some() {
            break;
        }
    }
    Some((rss?, hwm?))
}

/// A scope registered with the tracker.
#[derive(Debug)]
pub(crate) struct PeakToken(u64);

#[derive(Debug)]
struct Tracker {
    next: u64,
    /// `(token, peak so far)` of every open scope.
    open: Vec<(u64, u64)>,
    /// Set once `clear_refs` or `status` failed: from then on scopes use sampled peaks.
    unavailable: bool,
    /// `/proc/self/clear_refs`, kept open for writing.
    clear_refs: Option<std::fs::File>,
}

static TRACKER: Mutex<Tracker> = Mutex::new(Tracker {
    next: 0,
    open: Vec::new(),
    unavailable: false,
    clear_refs: None,
});

#[cfg(target_os = "linux")]
fn read_status() -> std::io::Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/status")?;
    parse_status(&text).ok_or_else(|| std::io::Error::other("no VmRSS/VmHWM lines"))
}

#[cfg(target_os = "linux")]
fn current_rss() -> std::io::Result<u64> {
    crate::procfs::self_rss().ok_or_else(|| std::io::Error::other("no resident page count"))
}

#[cfg(target_os = "linux")]
fn reset_hwm(file: &mut Option<std::fs::File>) -> std::io::Result<()> {
    use std::io::Write;
    if file.is_none() {
        *file = Some(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/proc/self/clear_refs")?,
        );
    }
    file.as_mut().map_or(Ok(()), |f| f.write_all(b"5"))
}

#[cfg(not(target_os = "linux"))]
fn unsupported<T>() -> std::io::Result<T> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "no /proc/self",
    ))
}

#[cfg(not(target_os = "linux"))]
fn read_status() -> std::io::Result<(u64, u64)> {
    unsupported()
}

#[cfg(not(target_os = "linux"))]
fn current_rss() -> std::io::Result<u64> {
    unsupported()
}

#[cfg(not(target_os = "linux"))]
fn reset_hwm(_: &mut Option<std::fs::File>) -> std::io::Result<()> {
    unsupported()
}

/// Opens a scope: resets the high-water mark; returns the token and the RSS at the reset,
/// or `None` (with one INFO line, the first time) where the kernel cannot do it.
pub(crate) fn begin() -> Option<(PeakToken, u64)> {
    let mut guard = TRACKER.lock().unwrap_or_else(PoisonError::into_inner);
    let tracker = &mut *guard;
    if tracker.unavailable {
        return None;
    }
    // The mark so far matters only to scopes already open; with none, the cheaper
    // `statm` gives the RSS.
    let result = if tracker.open.is_empty() {
        current_rss().map(|rss| (rss, None))
    } else {
        read_status().map(|(rss, hwm)| (rss, Some(hwm)))
    };
    match result.and_then(|r| reset_hwm(&mut tracker.clear_refs).map(|()| r)) {
        Ok((rss, hwm)) => {
            if let Some(hwm) = hwm {
                for (_, peak) in &mut tracker.open {
                    *peak = (*peak).max(hwm);
                }
            }
            tracker.next += 1;
            let token = tracker.next;
            tracker.open.push((token, rss));
            Some((PeakToken(token), rss))
        }
        Err(err) => {
            tracker.unavailable = true;
            tracing::info!(
                target: "medfusion_monitor",
                %err,
                "exact peak RSS unavailable (/proc/self/clear_refs); scopes use sampled peaks"
            );
            None
        }
    }
}

/// Closes a scope: `(peak RSS since it began, RSS now)`, or `None` if `status` can no longer
/// be read.
pub(crate) fn end(token: &PeakToken) -> Option<(u64, u64)> {
    let mut tracker = TRACKER.lock().unwrap_or_else(PoisonError::into_inner);
    let at = tracker.open.iter().position(|(t, _)| *t == token.0)?;
    let (_, peak) = tracker.open.swap_remove(at);
    let (rss, hwm) = read_status().ok()?;
    Some((peak.max(hwm), rss))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_gives_rss_and_high_water_mark() {
        let text = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    4000 kB\nVmRSS:\t    3000 kB\n";
        assert_eq!(parse_status(text), Some((3000 * 1024, 4000 * 1024)));
        assert_eq!(parse_status("VmRSS:\t 1 kB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn overlapping_scopes_each_see_their_own_peak() {
        let (outer, _) = begin().expect("clear_refs works on this machine");
        let big = vec![1u8; 64 << 20];
        std::hint::black_box(&big);
        drop(big);
        // The inner scope resets the mark after the outer one's peak.
        let (inner, inner_start) = begin().unwrap();
        let (inner_peak, _) = end(&inner).unwrap();
        let (outer_peak, _) = end(&outer).unwrap();
        assert!(
            outer_peak >= inner_start + (60 << 20),
            "{outer_peak} vs {inner_start}"
        );
        assert!(inner_peak < outer_peak);
    }
}
