//! WORKLOADS.md section 4: the cost of one monitor sample (system CPU % since the previous
//! sample, system memory, own RSS) in CPU time, and the resident memory a monitor adds
//! while it holds 300 snapshots.
//!
//! The criterion figures are CPU time (user + system of the sampling thread, from
//! `CLOCK_THREAD_CPUTIME_ID`), not wall time: `iter_custom` returns the CPU time of the
//! iterations. The workload's getrusage method is also run once, over 100,000 samples.
//! The memory figure and samples spaced 210 ms apart (medfusion and sysinfo side by side:
//! sysinfo refreshes CPU counters at most every 200 ms) are printed to stderr.
#![allow(clippy::print_stderr)] // the bench reports its non-time figures on stderr

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use medfusion_monitor::{NoGpus, ProcSource, ResourceMonitor, SysinfoSource, SystemSource};

/// CPU time (user + system) the calling thread has used so far, to the nanosecond.
///
/// `getrusage(RUSAGE_THREAD)` reads the scheduler's figure without bringing it up to date,
/// so it lags by up to a tick: fine over many samples (see [`getrusage_per_sample`]), but
/// criterion's short first batches would read zero. This clock is the same quantity, kept
/// current.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is valid on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    assert_eq!(rc, 0, "clock_gettime failed");
    Duration::new(ts.tv_sec.unsigned_abs(), ts.tv_nsec.unsigned_abs() as u32)
}

/// User + system CPU time of the whole process from `getrusage(RUSAGE_SELF)`.
fn rusage_self() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is writable; RUSAGE_SELF is always valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage failed");
    // SAFETY: getrusage succeeded and filled the (zeroed) struct.
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        Duration::new(
            t.tv_sec.unsigned_abs(),
            t.tv_usec.unsigned_abs() as u32 * 1000,
        )
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The workload's own method: getrusage delta over 100,000 samples / n.
fn getrusage_per_sample() {
    let monitor = ResourceMonitor::builder()
        .gpu_probe(NoGpus)
        .build()
        .unwrap();
    let n = 100_000u32;
    let start = rusage_self();
    for _ in 0..n {
        black_box(monitor.sample_now().unwrap());
    }
    let per = rusage_self().saturating_sub(start).as_secs_f64() * 1e6 / f64::from(n);
    eprintln!("monitor_sample/getrusage_per_sample: {per:.1} µs CPU per sample (n = {n})");
}

/// Resident bytes of this process, from `/proc/self/statm`.
fn rss_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// CPU time of `iters` calls of `f`, measured on this thread.
fn cpu_time_of(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = thread_cpu_time();
    for _ in 0..iters {
        f();
    }
    thread_cpu_time().saturating_sub(start)
}

fn sample_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("monitor_sample");

    // The whole monitor path: read, snapshot, history ring, thresholds, open scopes.
    let monitor = ResourceMonitor::builder()
        .gpu_probe(NoGpus)
        .build()
        .unwrap();
    group.bench_function("monitor_sample_now_cpu", |b| {
        b.iter_custom(|iters| {
            cpu_time_of(iters, || {
                black_box(monitor.sample_now().unwrap());
            })
        });
    });

    // A per-node scope as the engine would open and finish it (exact peak RSS: one read
    // of /proc/self/status and one write of /proc/self/clear_refs at each end).
    group.bench_function("scope_begin_finish_cpu", |b| {
        b.iter_custom(|iters| {
            cpu_time_of(iters, || {
                black_box(monitor.scope("node").finish());
            })
        });
    });

    // The reading alone.
    let mut proc = ProcSource::new().unwrap();
    group.bench_function("proc_source_read_cpu", |b| {
        b.iter_custom(|iters| {
            cpu_time_of(iters, || {
                black_box(proc.read().unwrap());
            })
        });
    });
    group.finish();

    getrusage_per_sample();
    spaced_side_by_side();
    resident_with_300_snapshots();
}

/// Samples taken 210 ms apart, as at a real interval (caches cold, and sysinfo refreshes
/// CPU counters at most every 200 ms, so it cannot be timed back to back): the medfusion
/// monitor beside the sysinfo source, 20 samples each, median and mean of thread CPU time.
fn spaced_side_by_side() {
    fn spaced(name: &str, mut sample: impl FnMut()) {
        sample();
        let mut times: Vec<f64> = (0..20)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(210));
                cpu_time_of(1, &mut sample).as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        eprintln!(
            "monitor_sample/{name}_210ms_apart: median {:.1} µs, mean {mean:.1} µs CPU per sample",
            times[times.len() / 2]
        );
    }
    let monitor = ResourceMonitor::builder()
        .gpu_probe(NoGpus)
        .build()
        .unwrap();
    spaced("monitor_sample_now", || {
        black_box(monitor.sample_now().unwrap());
    });
    let mut source = SysinfoSource::new();
    spaced("sysinfo_source_read", || {
        black_box(source.read().unwrap());
    });
}

/// RSS added by building a monitor with the default sources, starting its thread and
/// holding 300 snapshots (taken at once with `sample_now`, as 300 ticks would).
fn resident_with_300_snapshots() {
    let before = rss_bytes();
    let monitor = ResourceMonitor::builder()
        .interval(Duration::from_hours(1))
        .build()
        .unwrap();
    monitor.start().unwrap();
    for _ in 0..300 {
        monitor.sample_now().unwrap();
    }
    let after = rss_bytes();
    assert_eq!(monitor.history().len(), 300);
    eprintln!(
        "monitor_sample/resident_300_snapshots: {:.3} MB added ({} -> {} bytes)",
        (after.saturating_sub(before)) as f64 / 1e6,
        before,
        after
    );
    drop(monitor);
}

criterion_group!(monitor_sample, sample_cost);
criterion_main!(monitor_sample);
