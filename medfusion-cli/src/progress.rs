//! Showing a run: a bar per active node and an overall bar on a terminal, plain log lines
//! otherwise.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use medfusion_exec::{Event, EventKind, EventSink, SkipReason};

/// Shows events to the person at the terminal.
pub(crate) struct Progress {
    inner: Mutex<Inner>,
}

struct Inner {
    /// Show every checkpoint save on its own line.
    verbose: bool,
    /// An epoch checkpoint saved since the last progress line, shown on the next one.
    unshown_checkpoint: Option<String>,
    bars: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    nodes: HashMap<String, ProgressBar>,
    last_line: HashMap<String, Instant>,
    started: Instant,
    total: u64,
}

const BAR: &str = "{prefix:>14.bold} [{bar:30.cyan/blue}] {percent:>3}% {msg}";

impl Progress {
    /// A display for a run of `total` nodes: bars when stderr is a terminal. `verbose`
    /// shows every checkpoint save on its own line (else epoch checkpoints ride on the
    /// progress line).
    pub(crate) fn new(total: usize, verbose: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bars =
            tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)));
        let overall = bars.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(total as u64));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>14.bold} [{bar:30.green/white}] {pos}/{len} nodes {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix("run");
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress {
            inner: Mutex::new(Inner {
                verbose,
                unshown_checkpoint: None,
                bars,
                overall,
                nodes: HashMap::new(),
                last_line: HashMap::new(),
                started: Instant::now(),
                total: total as u64,
            }),
        }
    }
}

impl Inner {
    fn line(&self, text: &str) {
        match &self.bars {
            Some(m) => {
                let _ = m.println(text);
            }
            None => errln!("[{:>8.1}s] {text}", self.started.elapsed().as_secs_f64()),
        }
    }

    fn node_bar(&mut self, node: &str) -> Option<&ProgressBar> {
        let bars = self.bars.as_ref()?;
        Some(self.nodes.entry(node.to_string()).or_insert_with(|| {
            let bar = bars.insert_from_back(1, ProgressBar::new(1000));
            bar.set_style(
                ProgressStyle::with_template(BAR)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(node.to_string());
            bar
        }))
    }

    fn finish_node(&mut self, node: &str) {
        if let Some(bar) = self.nodes.remove(node) {
            bar.finish_and_clear();
            if let Some(m) = &self.bars {
                m.remove(&bar);
            }
        }
        if let Some(overall) = &self.overall {
            overall.inc(1);
        }
    }
}

fn short(error: &[String]) -> String {
    error.join(": ")
}

impl EventSink for Progress {
    fn event(&self, event: &Event) {
        let Ok(mut s) = self.inner.lock() else { return };
        match &event.kind {
            EventKind::RunStarted {
                workflow,
                nodes,
                resumed,
                run_id,
            } => {
                let how = if *resumed { "resuming" } else { "running" };
                s.line(&format!(
                    "{how} workflow `{workflow}` ({nodes} nodes, run {run_id})"
                ));
            }
            EventKind::NodeStarted { node, attempt } => {
                if *attempt > 1 {
                    s.line(&format!("node `{node}` attempt {attempt}"));
                } else if s.bars.is_none() {
                    s.line(&format!("node `{node}` started"));
                }
                if let Some(bar) = s.node_bar(node) {
                    bar.set_message("starting");
                }
            }
            EventKind::NodeProgress {
                node,
                fraction,
                message,
                ..
            } => {
                let pending = s.unshown_checkpoint.take();
                let saved = pending
                    .as_ref()
                    .map(|id| format!(" (checkpoint {id})"))
                    .unwrap_or_default();
                if s.bars.is_some() {
                    if let Some(bar) = s.node_bar(node) {
                        if let Some(f) = fraction {
                            bar.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
                        }
                        bar.set_message(crate::output::escaped(message).into_owned());
                    }
                    if !saved.is_empty()
                        && let Some(overall) = &s.overall
                    {
                        overall.set_message(saved.trim().to_string());
                    }
                } else {
                    // Logs get at most one line of measured progress (batches) per node and
                    // second; news without a fraction (an epoch's end, a job's state) always.
                    let due = fraction.is_none()
                        || s.last_line
                            .get(&**node)
                            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                    if due {
                        s.last_line.insert(node.to_string(), Instant::now());
                        let pct = fraction
                            .map(|f| format!(" {:>3.0}%", f * 100.0))
                            .unwrap_or_default();
                        s.line(&format!("node `{node}`{pct} {message}{saved}"));
                    } else {
                        // Not shown yet: keep it for the next line.
                        s.unshown_checkpoint = pending;
                    }
                }
            }
            EventKind::NodeFinished {
                node,
                duration_secs,
                ..
            } => {
                s.finish_node(node);
                s.line(&format!("node `{node}` finished in {duration_secs:.2}s"));
            }
            EventKind::NodeRetrying {
                node,
                attempt,
                delay_secs,
                error,
            } => {
                s.line(&format!(
                    "node `{node}` attempt {attempt} failed: {}; retrying in {delay_secs:.1}s",
                    short(error)
                ));
            }
            EventKind::NodeFailed {
                node,
                attempts,
                error,
            } => {
                s.finish_node(node);
                s.line(&format!(
                    "node `{node}` failed after {attempts} attempt(s): {}",
                    short(error)
                ));
            }
            EventKind::NodeStuck {
                node,
                attempt,
                waited_secs,
                gpus,
            } => {
                let held = if gpus.is_empty() {
                    String::new()
                } else {
                    format!("; GPU {gpus:?} stays reserved until it does")
                };
                s.line(&format!(
                    "warning: node `{node}` attempt {attempt} has not stopped {waited_secs:.0}s \
                     after it was told to{held}"
                ));
            }
            EventKind::NodeSkipped { node, reason } => {
                s.finish_node(node);
                let why = match reason {
                    SkipReason::Restored => "restored from the checkpoint",
                    SkipReason::UpstreamFailed => "skipped: an upstream node failed",
                    SkipReason::Cancelled => "skipped: the run stopped",
                };
                s.line(&format!("node `{node}` {why}"));
            }
            EventKind::CheckpointSaved { id, reason } => {
                if s.verbose || !matches!(reason, medfusion_exec::SaveReason::NodeProgress) {
                    s.line(&format!("checkpoint saved: {id} ({reason:?})"));
                } else {
                    s.unshown_checkpoint = Some(id.clone());
                }
            }
            EventKind::CheckpointRequested => {
                s.line("checkpoint requested: saving at the next safe point");
            }
            EventKind::CheckpointFailed { error, .. } => {
                s.line(&format!(
                    "warning: saving a checkpoint failed: {}",
                    short(error)
                ));
            }
            EventKind::ResourceAlert { level, message } => {
                s.line(&format!("{level}: {message}"));
            }
            EventKind::RunFinished {
                status,
                duration_secs,
            } => {
                if let Some(overall) = s.overall.take() {
                    overall.finish_and_clear();
                }
                for (_, bar) in s.nodes.drain() {
                    bar.finish_and_clear();
                }
                let total = s.total;
                s.line(
                    &format!("run {status:?} in {duration_secs:.2}s ({total} nodes)")
                        .to_lowercase(),
                );
            }
            _ => {}
        }
    }
}
