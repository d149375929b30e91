//! `medfusion monitor`: watch CPU, memory and GPUs, one row (or JSON line) per sample.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use medfusion_graph::HumanDuration;
use medfusion_monitor::{ResourceMonitor, ResourceThresholds, Snapshot, gb};

/// Rows between repeated headers, as `nvidia-smi dmon` does.
const HEADER_EVERY: usize = 20;

/// Arguments of `medfusion monitor`.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct MonitorArgs {
    /// Time between samples, such as `2s` or `500ms`
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    interval: HumanDuration,
    /// Stop after this many samples (default: run until interrupted)
    #[arg(long, short = 'c', value_name = "N")]
    count: Option<u64>,
    /// Print one JSON object per sample (JSON lines) instead of a table
    #[arg(long)]
    json: bool,
    /// GPU memory % that raises a warning (default 90)
    #[arg(long, value_name = "PERCENT")]
    gpu_memory_warning: Option<f64>,
    /// GPU memory % that raises a critical alert (default 98)
    #[arg(long, value_name = "PERCENT")]
    gpu_memory_critical: Option<f64>,
}

pub(crate) fn run(args: MonitorArgs) -> anyhow::Result<ExitCode> {
    let interval = args.interval.0;
    let mut thresholds = ResourceThresholds::default();
    if let Some(w) = args.gpu_memory_warning {
        thresholds.gpu_memory.warning = w;
    }
    if let Some(c) = args.gpu_memory_critical {
        thresholds.gpu_memory.critical = c;
    }
    let monitor = ResourceMonitor::builder()
        .interval(interval)
        .thresholds(thresholds)
        .build()
        .context("cannot start the resource monitor")?;
    let alerts = monitor.subscribe();
    let mut out = std::io::stdout().lock();
    let mut rows = 0;
    // Each sample covers the interval before it, so the first comes one interval in.
    let mut next = Instant::now() + interval;
    let mut taken = 0;
    while args.count.is_none_or(|n| taken < n) {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += interval;
        let snap = monitor
            .sample_now()
            .context("cannot read the machine's resources")?;
        taken += 1;
        let written = if args.json {
            serde_json::to_writer(&mut out, &snap)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        } else {
            write_rows(&mut out, &snap, &mut rows)
        };
        match written.and_then(|()| out.flush()) {
            Ok(()) => {}
            // `medfusion monitor | head` closing the pipe is a normal way to stop.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(e).context("cannot write to standard output"),
        }
        for alert in alerts.try_iter() {
            errln!("alert: {alert}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One row per GPU (one row if there is none), with the header every 20 rows.
fn write_rows(
    out: &mut impl std::io::Write,
    snap: &Snapshot,
    rows: &mut usize,
) -> std::io::Result<()> {
    let time = utc_time(snap.timestamp);
    let system = format!(
        " {time:>8} {:>6.1} {:>6.1} {:>8.1} {:>8.1} {:>8.1}",
        snap.cpu_percent,
        snap.memory_percent,
        snap.memory_used_gb(),
        snap.memory_total_gb(),
        snap.process_rss_bytes as f64 / 1_048_576.0,
    );
    let dash = |v: Option<f64>, precision: usize| {
        v.map_or_else(|| "-".to_owned(), |v| format!("{v:.precision$}"))
    };
    let mut gpu_columns: Vec<String> = snap
        .gpus
        .iter()
        .map(|g| {
            format!(
                "{:>4} {:>6} {:>6.1} {:>8.1} {:>5} {:>7}",
                g.index,
                dash(g.utilization_percent, 0),
                g.memory_percent,
                gb(g.memory_used_bytes),
                dash(g.temperature_celsius, 0),
                dash(g.power_watts, 0),
            )
        })
        .collect();
    if gpu_columns.is_empty() {
        gpu_columns.push(format!(
            "{:>4} {:>6} {:>6} {:>8} {:>5} {:>7}",
            "-", "-", "-", "-", "-", "-"
        ));
    }
    for gpu in gpu_columns {
        if (*rows).is_multiple_of(HEADER_EVERY) {
            writeln!(
                out,
                "#{:>8} {:>6} {:>6} {:>8} {:>8} {:>8} {:>4} {:>6} {:>6} {:>8} {:>5} {:>7}",
                "utc",
                "cpu",
                "mem",
                "mem",
                "mem",
                "rss",
                "gpu",
                "util",
                "gmem",
                "gmem",
                "temp",
                "power"
            )?;
            writeln!(
                out,
                "#{:>8} {:>6} {:>6} {:>8} {:>8} {:>8} {:>4} {:>6} {:>6} {:>8} {:>5} {:>7}",
                "hh:mm:ss",
                "%",
                "%",
                "used GB",
                "total GB",
                "MB",
                "idx",
                "%",
                "%",
                "used GB",
                "C",
                "W"
            )?;
        }
        writeln!(out, "{system} {gpu}")?;
        *rows += 1;
    }
    Ok(())
}

/// `HH:MM:SS` of `time`, in UTC.
fn utc_time(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use medfusion_monitor::GpuSnapshot;
    use std::time::Duration;

    fn snap(gpus: Vec<GpuSnapshot>) -> Snapshot {
        let t = UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 3661);
        Snapshot::new(t, 12.5, 8 << 30, 32 << 30, 100 << 20, gpus)
    }

    #[test]
    fn rows_line_up_under_a_header_repeated_every_20_rows() {
        let mut out = Vec::new();
        let mut rows = 0;
        for _ in 0..21 {
            write_rows(&mut out, &snap(Vec::new()), &mut rows).unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 21 + 4);
        assert!(lines[0].starts_with("#     utc"));
        assert!(lines[22].starts_with("#     utc"), "{}", lines[22]);
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>()[..6],
            ["01:01:01", "12.5", "25.0", "8.0", "32.0", "100.0"]
        );
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{text}");
    }

    #[test]
    fn one_row_per_gpu() {
        let mut gpu = GpuSnapshot::new(1, "A100", 20 << 30, 40 << 30);
        gpu.power_watts = Some(250.4);
        let mut out = Vec::new();
        write_rows(
            &mut out,
            &snap(vec![GpuSnapshot::new(0, "A100", 0, 40 << 30), gpu]),
            &mut 0,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let last: Vec<&str> = text.lines().last().unwrap().split_whitespace().collect();
        assert_eq!(last[6..], ["1", "-", "50.0", "20.0", "-", "250"]);
        assert_eq!(text.lines().count(), 4);
    }
}
