//! The Slurm runner: each attempt of a node is a batch job running `medfusion node-exec`.

use std::io::{BufRead as _, Seek as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use medfusion_exec::{
    AttemptFiles, AttemptRequest, AttemptRunner, BoxFuture, NodeContext, NodeError, NodeErrorKind,
    Outputs,
};
use medfusion_graph::{Node, NodeSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::command::Slurm;
use crate::error::Error;
use crate::queue::{JobState, Queue};

/// What every job of a run asks Slurm for, besides each node's own resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlurmOptions {
    /// The partition to submit to (`sbatch -p`; default: the cluster's default partition).
    pub partition: Option<String>,
    /// The account to charge (`sbatch -A`).
    pub account: Option<String>,
    /// The quality of service (`sbatch --qos`).
    pub qos: Option<String>,
    /// Further `sbatch` options, each as written on its command line
    /// (`--constraint=a100`, `--exclusive`).
    pub options: Vec<String>,
}

impl SlurmOptions {
    /// The options of a workflow's `executor:` block (its keys besides `type`).
    pub fn from_settings(settings: &Map<String, Json>) -> Result<SlurmOptions, Error> {
        serde_json::from_value(Json::Object(settings.clone())).map_err(|e| Error::Setting {
            key: "executor".into(),
            reason: e.to_string(),
        })
    }
}

/// Runs each attempt of a node as a Slurm job, as Nextflow and Snakemake do: the job runs
/// `medfusion node-exec` on the attempt's files in `<run dir>/jobs/<node>/<attempt>/` (on a
/// filesystem the cluster's nodes share), and the result file it writes decides the outcome.
///
/// - One `squeue` per poll for all of the run's jobs, polling faster after a change and more
///   slowly while nothing moves; job names carry the run id (`mf-<run>-<node>-<attempt>`).
/// - A pending job's reason shows in the node's progress; every end state is named in the
///   node's error (TIMEOUT, OUT_OF_MEMORY, CANCELLED, NODE_FAIL, PREEMPTED, FAILED).
///   Jobs are submitted `--no-requeue`: a preempted job ends, and the engine retries it.
/// - The job's progress (a training epoch saved) reaches the run's checkpoints as it is saved,
///   so a retry after a time limit or a preemption continues from its last epoch.
/// - Cancelling the run `scancel`s its jobs; the job id is saved with the run state, and a
///   resumed run re-attaches to a job that still runs (or takes the result of one that
///   finished meanwhile) instead of submitting it again.
/// - Nodes set to `executor: local` run in the `medfusion run` process.
pub struct SlurmRunner {
    options: SlurmOptions,
    run_dir: PathBuf,
    command: Vec<String>,
    settings: Json,
    slurm: Slurm,
    poll: (Duration, Duration),
    queue: OnceLock<Arc<Queue>>,
}

impl SlurmRunner {
    /// A runner submitting jobs that run `command` (the `medfusion` binary and `node-exec`),
    /// with attempt folders under `run_dir`.
    pub fn new(options: SlurmOptions, run_dir: impl Into<PathBuf>, command: Vec<String>) -> Self {
        let run_dir = run_dir.into();
        let run_dir = std::path::absolute(&run_dir).unwrap_or(run_dir);
        SlurmRunner {
            options,
            run_dir,
            command,
            settings: Json::Null,
            slurm: Slurm::default(),
            poll: (Duration::from_millis(500), Duration::from_secs(10)),
            queue: OnceLock::new(),
        }
    }

    /// What the jobs' side needs to run a node (the binary's settings), sent in each request.
    pub fn settings(mut self, settings: Json) -> Self {
        self.settings = settings;
        self
    }

    /// Poll the queue every `fastest` after a change, slowing down to every `slowest`.
    pub fn poll_interval(mut self, fastest: Duration, slowest: Duration) -> Self {
        self.poll = (fastest, slowest);
        self
    }

    /// Take Slurm's commands from `bin` instead of the `PATH`.
    pub fn slurm_bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.slurm.bin = Some(bin.into());
        self
    }

    fn queue(&self) -> Arc<Queue> {
        Arc::clone(
            self.queue
                .get_or_init(|| Queue::new(self.slurm.clone(), self.poll.0, self.poll.1)),
        )
    }

    /// The `sbatch` options of an attempt: the run's, then the node's resources.
    fn sbatch_args(&self, ctx: &NodeContext, dir: &Path) -> Vec<String> {
        let mut args = vec![
            format!(
                "--job-name=mf-{}-{}-{}",
                ctx.run_id(),
                ctx.id(),
                ctx.attempt()
            ),
            format!("--output={}", dir.join("slurm.out").display()),
            format!("--error={}", dir.join("slurm.err").display()),
            "--no-requeue".to_string(),
        ];
        if let Ok(cwd) = std::env::current_dir() {
            args.push(format!("--chdir={}", cwd.display()));
        }
        let o = &self.options;
        args.extend(o.partition.as_ref().map(|p| format!("--partition={p}")));
        args.extend(o.account.as_ref().map(|a| format!("--account={a}")));
        args.extend(o.qos.as_ref().map(|q| format!("--qos={q}")));
        let r = ctx.resources();
        args.extend(r.cpus.map(|c| format!("--cpus-per-task={c}")));
        args.extend(r.memory.map(|m| format!("--mem={}M", m.megabytes())));
        if r.gpus > 0 {
            args.push(format!("--gres=gpu:{}", r.gpus));
        }
        args.extend(
            r.time
                .map(|t| format!("--time={}", t.0.as_secs().div_ceil(60).max(1))),
        );
        args.extend(o.options.iter().cloned());
        args
    }

    fn script(&self, ctx: &NodeContext) -> String {
        let mut argv = self.command.clone();
        argv.extend([
            "--run-dir".to_string(),
            self.run_dir.display().to_string(),
            "--node".to_string(),
            ctx.id().to_string(),
            "--attempt".to_string(),
            ctx.attempt().to_string(),
        ]);
        let quoted: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
        format!(
            "#!/bin/sh\n# Written by medfusion: attempt {} of node `{}` of run {}.\nexec {}\n",
            ctx.attempt(),
            ctx.id(),
            ctx.run_id(),
            quoted.join(" ")
        )
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A handle saved with the run state: the job id and the attempt folder.
fn handle_of(job: &str, dir: &Path) -> String {
    format!("{job}@{}", dir.display())
}

fn parse_handle(handle: &str) -> Option<(&str, &Path)> {
    let (job, dir) = handle.split_once('@')?;
    Some((job, Path::new(dir)))
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error + use<> {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}

fn node_error(ctx: &NodeContext, e: impl Into<medfusion_exec::BoxError>) -> NodeError {
    NodeError::with_source(format!("node `{}`: its Slurm job", ctx.id()), e)
}

/// Reads a job's events as they are written, from where it stopped.
struct EventTail {
    path: PathBuf,
    offset: u64,
}

impl EventTail {
    /// Re-emit the job's new progress events as this node's.
    fn forward(&mut self, ctx: &NodeContext) {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return;
        };
        if file.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut reader = std::io::BufReader::new(file);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if !line.ends_with('\n') {
                break; // Half a line: read it whole next time.
            }
            self.offset += line.len() as u64;
            if let Ok(event) = serde_json::from_str::<Json>(&line)
                && event["event"] == "node_progress"
            {
                ctx.progress_with(
                    event["fraction"].as_f64().map(|f| f as f32),
                    event["message"].as_str().unwrap_or_default(),
                    event["metrics"].as_object().cloned().unwrap_or_default(),
                );
            }
            line.clear();
        }
    }
}

/// What a job that Slurm ended (or that ended without a result file) did, as the node's
/// error.
fn job_error(ctx: &NodeContext, job: &str, state: &JobState, dir: &Path) -> NodeError {
    let err_tail = std::fs::read_to_string(dir.join("slurm.err"))
        .map(|t| {
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(10)..].join("\n  ")
        })
        .unwrap_or_default();
    let (what, kind) = match state {
        JobState::Timeout => (
            "hit its time limit (TIMEOUT)".to_string(),
            NodeErrorKind::TimedOut,
        ),
        JobState::OutOfMemory => (
            "ran out of the memory it asked for (OUT_OF_MEMORY)".to_string(),
            NodeErrorKind::OutOfMemory,
        ),
        JobState::Cancelled => (
            "was cancelled outside medfusion (CANCELLED)".to_string(),
            NodeErrorKind::Failed,
        ),
        JobState::NodeFail => (
            "lost its node (NODE_FAIL)".to_string(),
            NodeErrorKind::Failed,
        ),
        JobState::Preempted(how) => (
            format!("was preempted ({how}); it counts as a failed attempt"),
            NodeErrorKind::Failed,
        ),
        JobState::Failed(how) => (format!("failed ({how})"), NodeErrorKind::Failed),
        JobState::Completed | JobState::Gone => (
            "ended without writing its result, or was stopped".to_string(),
            NodeErrorKind::Failed,
        ),
        other => (format!("ended ({other})"), NodeErrorKind::Failed),
    };
    let mut message = format!(
        "node `{}`: Slurm job {job} {what} (logs in `{}`)",
        ctx.id(),
        dir.display()
    );
    if !err_tail.trim().is_empty() {
        message = format!("{message}; the end of its stderr:\n  {err_tail}");
    }
    NodeError::msg(message).kind_of(kind)
}

/// Write the attempt's files into `dir` and submit its job: the job id, recorded with the
/// run state.
async fn submit(
    ctx: &NodeContext,
    slurm: &Slurm,
    dir: &Path,
    args: &[String],
    script: &str,
    settings: Json,
) -> Result<String, NodeError> {
    // A folder left by an earlier run's attempt of the same number is kept, aside.
    if dir.exists() {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let aside = dir.with_file_name(format!("{}-{ms}", ctx.attempt()));
        std::fs::rename(dir, &aside)
            .map_err(io("move aside", dir))
            .map_err(|e| node_error(ctx, e))?;
    }
    let request = AttemptRequest::from_context(ctx, settings).map_err(|e| node_error(ctx, e))?;
    AttemptFiles::new(dir)
        .write_request(&request)
        .map_err(io("write", dir))
        .map_err(|e| node_error(ctx, e))?;
    let path = dir.join("job.sh");
    std::fs::write(&path, script)
        .map_err(io("write", &path))
        .map_err(|e| node_error(ctx, e))?;
    let job = slurm
        .submit(args, &path)
        .await
        .map_err(|e| node_error(ctx, e))?;
    ctx.record_handle(handle_of(&job, dir));
    ctx.progress(None, format!("submitted as Slurm job {job}"));
    Ok(job)
}

impl AttemptRunner for SlurmRunner {
    fn takes(&self, node: &Node, _spec: &NodeSpec) -> bool {
        node.executor.as_deref() != Some("local")
    }

    fn run(&self, ctx: NodeContext) -> BoxFuture<'static, Result<Outputs, NodeError>> {
        let queue = self.queue();
        let slurm = self.slurm.clone();
        let dir = self
            .run_dir
            .join("jobs")
            .join(ctx.id())
            .join(ctx.attempt().to_string());
        let args = self.sbatch_args(&ctx, &dir);
        let script = self.script(&ctx);
        let settings = self.settings.clone();
        Box::pin(async move {
            // Re-attach to what an interrupted run left running, if it still runs (or take
            // its result, if it finished meanwhile).
            let mut attached = None;
            if let Some((job, old_dir)) = ctx.handle().and_then(parse_handle) {
                let known = slurm.states(&[job.to_string()]).await.unwrap_or_default();
                let state = known.get(job).cloned().unwrap_or(JobState::Gone);
                let files = AttemptFiles::new(old_dir);
                let finished = files.read_result().ok().flatten().is_some();
                if !state.is_over() || finished {
                    ctx.progress(None, format!("re-attached to Slurm job {job} ({state})"));
                    attached = Some((job.to_string(), old_dir.to_path_buf()));
                }
            }
            let (job, dir) = if let Some(found) = attached {
                found
            } else {
                let job = submit(&ctx, &slurm, &dir, &args, &script, settings).await?;
                (job, dir)
            };
            let files = AttemptFiles::new(&dir);
            let mut events = EventTail {
                path: files.events_path(),
                offset: 0,
            };
            let mut progress_seen = 0;
            let mut states = queue.watch(&job);
            let mut shown = JobState::Submitted;
            let outcome = loop {
                events.forward(&ctx);
                for (seq, saved) in files.read_progress_after(progress_seen).unwrap_or_default() {
                    progress_seen = seq;
                    ctx.save_progress(saved);
                }
                let state = states.borrow_and_update().clone();
                if state != shown {
                    match &state {
                        JobState::Pending(reason) => ctx.progress(
                            None,
                            format!("Slurm job {job} waits in the queue: {reason}"),
                        ),
                        JobState::Running(_) => {
                            ctx.progress(None, format!("Slurm job {job} runs"));
                        }
                        _ => {}
                    }
                    shown = state.clone();
                }
                if state.is_over() {
                    break Ok(state);
                }
                tokio::select! {
                    changed = states.changed() => {
                        if changed.is_err() { break Ok(JobState::Gone); }
                    }
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = ctx.cancelled() => break Err(()),
                }
            };
            let result = match outcome {
                Err(()) => {
                    // Stop the job, and wait (a while) until Slurm says it stopped.
                    if let Err(e) = slurm.cancel(&job).await {
                        tracing::warn!("scancel {job}: {e}");
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(30), async {
                        while !states.borrow_and_update().is_over() {
                            if states.changed().await.is_err() {
                                break;
                            }
                        }
                    })
                    .await;
                    Err(NodeError::cancelled())
                }
                Ok(state) => {
                    events.forward(&ctx);
                    for (_, saved) in files.read_progress_after(progress_seen).unwrap_or_default() {
                        ctx.save_progress(saved);
                    }
                    // The result file decides, never the exit code; a filesystem shared
                    // through the network may show it a moment late.
                    let mut found = files.read_result().map_err(|e| node_error(&ctx, e));
                    for _ in 0..10 {
                        if !matches!(found, Ok(None)) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        found = files.read_result().map_err(|e| node_error(&ctx, e));
                    }
                    match found {
                        // Stopped by Slurm, not by this run (`scancel` from outside, the time
                        // limit, preemption): the job saw a cancellation, the node did not.
                        Ok(Some(result))
                            if result.error.as_ref().is_some_and(|e| e.kind == "cancelled") =>
                        {
                            Err(job_error(&ctx, &job, &state, &dir))
                        }
                        Ok(Some(result)) => result.into_outputs(&ctx),
                        Ok(None) => Err(job_error(&ctx, &job, &state, &dir)),
                        Err(e) => Err(e),
                    }
                }
            };
            queue.forget(&job);
            result
        })
    }
}
