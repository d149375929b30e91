//! Peak RSS from the kernel: `VmHWM` in `/proc/self/status`, the process's high-water mark.
//!
//! The mark is one counter per process. Read alone it is the largest RSS since the process
//! began, so it gives a scope's peak exactly only when the scope raised it (the mark at the
//! end is above the mark at the start); otherwise the scope's peak is somewhere below the
//! old mark and the scope falls back to its samples. Reading changes nothing.
//!
//! Where the application opts in
//! ([`MonitorBuilder::reset_peak_rss`](crate::MonitorBuilder::reset_peak_rss)), a scope
//! resets the mark to the current RSS when it begins, by writing `5` to
//! `/proc/self/clear_refs` (Linux 4.0+), so its peak is exact however high the process
//! went before. Scopes overlap (the engine runs nodes in parallel), so every reset goes
//! through one tracker: before it resets the mark, it folds the mark into every open
//! scope. Each scope's peak is then the largest mark of the stretches since its start:
//! exact, as long as nothing else in the process writes `clear_refs`.

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

/// What the kernel's marks say about one open scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Marks {
    /// The mark when the scope began, while no reset has happened since; `None` once the
    /// mark has been reset during the scope (or the scope itself reset it).
    baseline: Option<u64>,
    /// The largest mark known to have been reached inside the scope.
    known: u64,
    /// Where a stretch of the scope is known only to have stayed at or below the mark it
    /// began with: that mark (0 if none). The peak is exact when `known` reaches it.
    bound: u64,
}

impl Marks {
    /// A scope that begins now with the mark at `mark` (not reset).
    fn from_mark(mark: u64) -> Marks {
        Marks {
            baseline: Some(mark),
            known: 0,
            bound: 0,
        }
    }

    /// A scope that begins with a reset: the mark is the current RSS.
    fn fresh(rss: u64) -> Marks {
        Marks {
            baseline: None,
            known: rss,
            bound: 0,
        }
    }

    /// Folds in the mark as it stands at the end of a stretch (before a reset, or at the
    /// scope's end).
    fn fold(&mut self, mark: u64) {
        match self.baseline {
            // The mark rose during the scope: the new mark was reached inside it.
            Some(base) if mark > base => self.known = self.known.max(mark),
            // It did not: this stretch peaked somewhere at or below the old mark.
            Some(base) => self.bound = self.bound.max(base),
            // Since a reset the mark counts only this scope's stretch.
            None => self.known = self.known.max(mark),
        }
    }

    /// A reset happened: from now on the mark counts only time inside the scope.
    fn after_reset(&mut self) {
        self.baseline = None;
    }

    fn is_exact(&self) -> bool {
        self.known > 0 && self.known >= self.bound
    }
}

/// What the kernel says at the end of a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KernelPeak {
    /// The largest RSS known to have been reached inside the scope, bytes.
    pub(crate) peak: u64,
    /// The RSS now, bytes.
    pub(crate) rss: u64,
    /// Whether `peak` is the scope's peak; if not, it is a lower bound.
    pub(crate) exact: bool,
}

#[derive(Debug)]
struct Tracker {
    next: u64,
    /// `(token, marks)` of every open scope.
    open: Vec<(u64, Marks)>,
    /// Set once `status` could not be read: from then on scopes use sampled peaks.
    unavailable: bool,
    /// Set once `clear_refs` could not be written: from then on nothing resets the mark.
    no_reset: bool,
    /// `/proc/self/clear_refs`, kept open for writing once a caller has opted in.
    clear_refs: Option<std::fs::File>,
}

static TRACKER: Mutex<Tracker> = Mutex::new(Tracker {
    next: 0,
    open: Vec::new(),
    unavailable: false,
    no_reset: false,
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

impl Tracker {
    fn register(&mut self, marks: Marks, rss: u64) -> (PeakToken, u64) {
        self.next += 1;
        self.open.push((self.next, marks));
        (PeakToken(self.next), rss)
    }

    /// Resets the mark, first folding it into every open scope; returns the RSS at the
    /// reset.
    fn reset(&mut self) -> std::io::Result<u64> {
        // The mark so far matters only to scopes already open; with none, the cheaper
        // `statm` gives the RSS.
        let (rss, mark) = if self.open.is_empty() {
            (current_rss()?, None)
        } else {
            read_status().map(|(rss, hwm)| (rss, Some(hwm)))?
        };
        reset_hwm(&mut self.clear_refs)?;
        if let Some(mark) = mark {
            for (_, marks) in &mut self.open {
                marks.fold(mark);
                marks.after_reset();
            }
        }
        Ok(rss)
    }
}

/// Opens a scope: returns its token and the RSS now, or `None` (with one INFO line, the
/// first time) where the kernel gives no mark.
///
/// With `reset`, the mark is reset first (writing `/proc/self/clear_refs`); where that
/// fails (one INFO line, the first time) the scope reads the mark as it stands.
pub(crate) fn begin(reset: bool) -> Option<(PeakToken, u64)> {
    let mut guard = TRACKER.lock().unwrap_or_else(PoisonError::into_inner);
    let tracker = &mut *guard;
    if tracker.unavailable {
        return None;
    }
    if reset && !tracker.no_reset {
        match tracker.reset() {
            Ok(rss) => return Some(tracker.register(Marks::fresh(rss), rss)),
            Err(err) => {
                tracker.no_reset = true;
                tracing::info!(
                    target: "medfusion_monitor",
                    %err,
                    "cannot reset the peak RSS mark (/proc/self/clear_refs); a scope's peak \
                     RSS is exact only where it sets a new high for the process"
                );
            }
        }
    }
    match read_status() {
        Ok((rss, mark)) => Some(tracker.register(Marks::from_mark(mark), rss)),
        Err(err) => {
            tracker.unavailable = true;
            tracing::info!(
                target: "medfusion_monitor",
                %err,
                "peak RSS from the kernel unavailable (/proc/self/status); scopes use \
                 sampled peaks"
            );
            None
        }
    }
}

/// Closes a scope: what the kernel's mark says about it, or `None` if `status` can no
/// longer be read.
pub(crate) fn end(token: &PeakToken) -> Option<KernelPeak> {
    let mut tracker = TRACKER.lock().unwrap_or_else(PoisonError::into_inner);
    let at = tracker.open.iter().position(|(t, _)| *t == token.0)?;
    let (_, mut marks) = tracker.open.swap_remove(at);
    let (rss, mark) = read_status().ok()?;
    marks.fold(mark);
    Some(KernelPeak {
        peak: marks.known,
        rss,
        exact: marks.is_exact(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn status_gives_rss_and_high_water_mark() {
        let text = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    4000 kB\nVmRSS:\t    3000 kB\n";
        assert_eq!(parse_status(text), Some((3000 * 1024, 4000 * 1024)));
        assert_eq!(parse_status("VmRSS:\t 1 kB\n"), None);
    }

    #[test]
    fn a_mark_raised_during_the_scope_is_its_peak() {
        let mut marks = Marks::from_mark(100);
        marks.fold(250);
        assert!(marks.is_exact());
        assert_eq!(marks.known, 250);
    }

    #[test]
    fn a_mark_not_raised_says_only_that_the_peak_was_below_it() {
        let mut marks = Marks::from_mark(100);
        marks.fold(100);
        assert!(!marks.is_exact());
        assert_eq!(marks.known, 0);
    }

    #[test]
    fn a_reset_by_another_scope_splits_the_scope_into_stretches() {
        // Below the old mark before the reset, 150 after it: the peak could have been up to
        // 200 before, so 150 is only a lower bound.
        let mut marks = Marks::from_mark(200);
        marks.fold(200);
        marks.after_reset();
        marks.fold(150);
        assert!(!marks.is_exact());
        assert_eq!(marks.known, 150);
        // 250 after the reset beats whatever the first stretch reached.
        marks.fold(250);
        assert!(marks.is_exact());
        assert_eq!(marks.known, 250);

        // Raised before the reset: that stretch is known, and so is the one after.
        let mut marks = Marks::from_mark(200);
        marks.fold(300);
        marks.after_reset();
        marks.fold(120);
        assert!(marks.is_exact());
        assert_eq!(marks.known, 300);
    }

    #[test]
    fn a_scope_that_resets_is_exact_from_its_start() {
        let mut marks = Marks::fresh(80);
        marks.fold(90);
        assert!(marks.is_exact());
        assert_eq!(marks.known, 90);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn overlapping_scopes_each_see_their_own_peak() {
        let (outer, _) = begin(true).expect("/proc/self/status can be read on this machine");
        let big = vec![1u8; 64 << 20];
        std::hint::black_box(&big);
        drop(big);
        // The inner scope resets the mark after the outer one's peak.
        let (inner, inner_start) = begin(true).unwrap();
        let inner_end = end(&inner).unwrap();
        let outer_end = end(&outer).unwrap();
        assert!(
            inner_end.exact && outer_end.exact,
            "{inner_end:?} {outer_end:?}"
        );
        assert!(
            outer_end.peak >= inner_start + 60 * MIB,
            "{outer_end:?} vs {inner_start}"
        );
        assert!(inner_end.peak < outer_end.peak);
    }
}
