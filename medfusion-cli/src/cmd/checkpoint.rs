//! `medfusion checkpoint --now`: ask a running `medfusion run` to save a checkpoint, and
//! wait until it has.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use medfusion_checkpoint::{CheckpointInfo, CheckpointManager};
use medfusion_graph::HumanDuration;

use crate::live;

/// Arguments of `medfusion checkpoint`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckpointArgs {
    /// Save a checkpoint now, at the run's next safe point (the end of the current batch or
    /// node)
    #[arg(long, required = true)]
    now: bool,
    /// The workflow whose run to ask (needed when several runs use the directory)
    workflow: Option<String>,
    /// The run's checkpoint directory
    #[arg(long, default_value = "checkpoints", value_name = "DIR")]
    dir: PathBuf,
    /// How long to wait for the checkpoint (`0s`: ask and return)
    #[arg(long, default_value = "2m", value_name = "DURATION")]
    wait: HumanDuration,
}

pub(crate) fn run(args: CheckpointArgs) -> anyhow::Result<ExitCode> {
    debug_assert!(args.now);
    let runs = live::find(&args.dir, args.workflow.as_deref())
        .with_context(|| format!("cannot read the running runs of {}", args.dir.display()))?;
    let run = match runs.as_slice() {
        [] => bail!(
            "no running `medfusion run`{} uses {} as its checkpoint directory",
            args.workflow
                .as_deref()
                .map(|w| format!(" of workflow `{w}`"))
                .unwrap_or_default(),
            args.dir.display()
        ),
        [one] => one,
        many => bail!(
            "{} runs use {}: {}; name the workflow",
            many.len(),
            args.dir.display(),
            many.iter()
                .map(|r| format!("`{}` (run {}, pid {})", r.workflow, r.run_id, r.pid))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let manager = CheckpointManager::new(&args.dir);
    let before: HashSet<String> = manager
        .list(&run.workflow)?
        .into_iter()
        .map(|c| c.id)
        .collect();
    // A save that was already under way when we asked does not count: only a state taken
    // after this moment does (`state.json`'s `updated_at`, in milliseconds).
    let asked_at = whole_millis(SystemTime::now());
    live::request_checkpoint(&args.dir, run)
        .with_context(|| format!("cannot signal run {} (pid {})", run.run_id, run.pid))?;
    errln!(
        "asked run {} (pid {}) of `{}` to save a checkpoint",
        run.run_id,
        run.pid,
        run.workflow
    );
    if args.wait.0.is_zero() {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = Instant::now() + args.wait.0;
    loop {
        // Looked at before the listing, so that a run that saves and ends meanwhile is still
        // found with its last checkpoint.
        let running = live::find(&args.dir, Some(&run.workflow))?
            .iter()
            .any(|r| r.pid == run.pid);
        let mut new: Vec<CheckpointInfo> = manager
            .list(&run.workflow)?
            .into_iter()
            .filter(|c| !before.contains(&c.id))
            .collect();
        new.sort_by_key(|c| c.sequence);
        if let Some(c) = new
            .iter()
            .find(|c| state_taken_at(&c.path).is_some_and(|t| t >= asked_at))
        {
            outln!("{}", c.id);
            return Ok(ExitCode::SUCCESS);
        }
        if !running {
            bail!("run {} ended before it saved a checkpoint", run.run_id);
        }
        if Instant::now() >= deadline {
            bail!(
                "run {} saved no checkpoint within {}: it saves at its next safe point (the end \
                 of the current batch or node)",
                run.run_id,
                args.wait
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `time` without its sub-millisecond part (run states record milliseconds).
fn whole_millis(time: SystemTime) -> SystemTime {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    UNIX_EPOCH + Duration::from_millis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// When the run state in the checkpoint at `dir` was taken; `None` if it cannot be read
/// (for instance pruned meanwhile).
fn state_taken_at(dir: &Path) -> Option<SystemTime> {
    #[derive(serde::Deserialize)]
    struct Taken {
        updated_at: String,
    }
    let text = std::fs::read(dir.join("state.json")).ok()?;
    let taken: Taken = serde_json::from_slice(&text).ok()?;
    humantime::parse_rfc3339(&taken.updated_at).ok()
}
