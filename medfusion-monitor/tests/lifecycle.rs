//! Starting and stopping leaves no thread behind (alone in its binary, so that no other
//! test's monitor thread is counted).
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use medfusion_monitor::{FakeSystemSource, NoGpus, ResourceMonitor};

/// Threads of this process named like the monitor's (names are cut to 15 bytes).
fn monitor_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|task| {
            let comm = std::fs::read_to_string(task.as_ref().unwrap().path().join("comm"));
            comm.is_ok_and(|c| c.trim() == "medfusion-monit")
        })
        .count()
}

/// Waits until `monitor_threads() == n`, failing after 30 s. The kernel lists a thread a
/// moment before it takes its name and a moment after `join` returns, so the count
/// settles rather than switches; the wait only bounds a failure.
fn settles_at(n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while monitor_threads() != n {
        assert!(
            Instant::now() < deadline,
            "{} monitor threads, expected {n}",
            monitor_threads()
        );
        std::thread::yield_now();
    }
}

#[test]
fn start_stop_restart_and_drop_leave_no_thread() {
    // An hour between samples: `stop` must wake the thread, not wait for its tick.
    let monitor = ResourceMonitor::builder()
        .interval(Duration::from_hours(1))
        .system_source(FakeSystemSource::idle())
        .gpu_probe(NoGpus)
        .build()
        .unwrap();
    settles_at(0);
    monitor.start().unwrap();
    monitor.start().unwrap();
    assert!(monitor.is_running());
    settles_at(1);
    monitor.stop();
    assert!(!monitor.is_running());
    settles_at(0);
    monitor.stop();
    monitor.start().unwrap();
    settles_at(1);
    drop(monitor);
    settles_at(0);
}
