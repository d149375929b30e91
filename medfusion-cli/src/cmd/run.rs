//! `medfusion run FILE` and `medfusion resume WORKFLOW`: validate, then run a workflow
//! with checkpoints, monitoring and a run record.

#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use medfusion_checkpoint::CheckpointManager;
use medfusion_exec::{Engine, EventKind, FailurePolicy, JsonLinesLog, ResumeFrom, RunOptions};
use medfusion_graph::{HumanDuration, Workflow};
use medfusion_monitor::{Alert, ResourceMonitor};
use medfusion_train::DeviceSpec;
use medfusion_train::nodes::NodeSettings;

use crate::observer::MonitorObserver;
use crate::output::{EXIT_FAILED, print_error};
use crate::progress::Progress;
use crate::record::RunRecord;
use crate::store::{CheckpointStore, load_for_resume, resume_from};

/// Exit code when the run was interrupted (Ctrl-C).
const EXIT_INTERRUPTED: u8 = 130;

/// Arguments of `medfusion run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The workflow file (YAML or JSON)
    file: PathBuf,
    /// Continue from a checkpoint of this workflow: `latest` (the default when the flag
    /// is given alone) or a checkpoint id
    #[arg(long, value_name = "CHECKPOINT", num_args = 0..=1, default_missing_value = "latest")]
    resume: Option<String>,
    /// Change a node's config for this run: `--set train.epochs=2` (repeatable)
    #[arg(long = "set", value_name = "NODE.KEY=VALUE")]
    sets: Vec<String>,
    #[command(flatten)]
    options: RunOpts,
}

/// Arguments of `medfusion resume`.
#[derive(Debug, clap::Args)]
pub(crate) struct ResumeArgs {
    /// The workflow to resume (its name); its definition comes from the checkpoint
    workflow: String,
    /// Resume from this checkpoint id instead of the newest valid one
    #[arg(long, value_name = "CHECKPOINT", default_value = "latest")]
    from: String,
    #[command(flatten)]
    options: RunOpts,
}

/// Options shared by `run` and `resume`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunOpts {
    /// Where checkpoints are kept
    #[arg(long, value_name = "DIR", default_value = "checkpoints")]
    checkpoint_dir: PathBuf,
    /// How many checkpoints of the workflow to keep (the newest)
    #[arg(long, value_name = "N", default_value_t = 5)]
    max_checkpoints: usize,
    /// Do not write checkpoints
    #[arg(long)]
    no_checkpoints: bool,
    /// Time between resource samples (CPU, memory, GPUs)
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    monitor_interval: HumanDuration,
    /// Where training runs: auto (CUDA when usable, else the CPU), cpu, or cuda:N
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    device: String,
    /// Run at most this many nodes at a time (default: the number of CPUs)
    #[arg(long, value_name = "N")]
    max_parallel: Option<usize>,
    /// GPU slots: nodes that hold GPUs wait for free ones (default: the GPUs found)
    #[arg(long, value_name = "N")]
    gpus: Option<u32>,
    /// What a failed node does to the rest of the run
    #[arg(long, value_enum, default_value_t = Policy::FailFast)]
    failure_policy: Policy,
    /// Where the run's outputs go: run.json, report.html, metrics (default runs/<run id>)
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write every event as a JSON line to this file (the run log)
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// When resuming, print why each node is skipped or run again
    #[arg(long)]
    explain: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Policy {
    /// Cancel running nodes and start no more
    FailFast,
    /// Finish the branches that do not depend on the failed node
    Continue,
}

pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut workflow = super::read_workflow(&args.file)?;
    super::apply_overrides(&mut workflow, &args.sets)?;
    execute(workflow, args.resume.as_deref(), &args.options)
}

pub(crate) fn resume(args: ResumeArgs) -> anyhow::Result<ExitCode> {
    let manager = CheckpointManager::new(&args.options.checkpoint_dir);
    let loaded = load_for_resume(&manager, &args.workflow, &args.from)?;
    let workflow: Workflow = serde_json::from_value(loaded.checkpoint.workflow.clone())
        .with_context(|| format!("checkpoint `{}` holds no readable workflow", loaded.info.id))?;
    execute(workflow, Some(&args.from), &args.options)
}

fn execute(
    mut workflow: Workflow,
    resume: Option<&str>,
    opts: &RunOpts,
) -> anyhow::Result<ExitCode> {
    // Check everything the user wrote before anything starts.
    let device: DeviceSpec = opts
        .device
        .parse()
        .map_err(|e| anyhow::anyhow!("`--device {}`: {e}", opts.device))?;
    medfusion_graph::validate(workflow.clone(), &crate::catalog::builtin())?;
    let name = workflow.name.clone();

    let manager = (!opts.no_checkpoints).then(|| {
        Arc::new(CheckpointManager::new(&opts.checkpoint_dir).max_checkpoints(opts.max_checkpoints))
    });
    let resume_from = match resume {
        None => None,
        Some(which) => {
            let reader = CheckpointManager::new(&opts.checkpoint_dir);
            let loaded = load_for_resume(manager.as_deref().unwrap_or(&reader), &name, which)?;
            eprintln!("resuming from checkpoint {} (verified)", loaded.info.id);
            Some(resume_from(loaded)?)
        }
    };

    let run_id = resume_from
        .as_ref()
        .map_or_else(|| new_run_id(&name), |r| r.state.run_id.clone());
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(&run_id));
    let base_dir = workflow
        .source_path()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();

    let monitor = Arc::new(
        ResourceMonitor::builder()
            .interval(opts.monitor_interval.0)
            .build()
            .context("cannot start the resource monitor")?,
    );
    let first = monitor
        .sample_now()
        .context("cannot read the machine's resources")?;
    monitor
        .start()
        .context("cannot start the resource monitor")?;
    let gpus = opts.gpus.unwrap_or(first.gpus.len() as u32);
    if gpus > 0 && device != DeviceSpec::Cpu {
        // Training on a GPU holds it: nodes sharing one GPU take turns.
        for node in workflow
            .nodes
            .iter_mut()
            .filter(|n| n.node_type == "train.classifier")
        {
            node.resources
                .get_or_insert(medfusion_graph::Resources { gpus: 1 });
        }
    }
    let registry = crate::catalog::registry(NodeSettings {
        base_dir,
        out_dir: Some(out.clone()),
        device: Some(device),
        fault: None,
    });
    let plan = medfusion_graph::validate(workflow, registry.catalog())?;

    let progress = Arc::new(Progress::new(plan.len()));
    let mut builder = Engine::builder(registry)
        .gpus(gpus)
        .failure_policy(match opts.failure_policy {
            Policy::FailFast => FailurePolicy::FailFast,
            Policy::Continue => FailurePolicy::Continue,
        })
        .observer(Arc::new(MonitorObserver(Arc::clone(&monitor))))
        .subscribe(progress);
    if let Some(n) = opts.max_parallel {
        builder = builder.max_parallel(n);
    }
    if let Some(manager) = &manager {
        builder = builder.store(Arc::new(CheckpointStore::new(
            Arc::clone(manager),
            name.clone(),
        )));
    }
    if let Some(path) = &opts.log {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create the run log `{}`", path.display()))?;
        builder = builder.subscribe(Arc::new(JsonLinesLog::new(file)));
    }
    let engine = builder.build();
    if let (Some(from), true) = (&resume_from, opts.explain) {
        explain(&engine, &plan, from);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let alerts: Arc<Mutex<Vec<Alert>>> = Arc::default();
    let options = RunOptions {
        run_id: Some(run_id.clone()),
        resume: resume_from,
        ..RunOptions::default()
    };
    let (report, interrupted) = runtime.block_on(async {
        // Listen for Ctrl-C before anything runs, so an early one is not lost.
        let ctrl_c = interrupt_signal();
        let usr1 = checkpoint_requests();
        // Found by `medfusion checkpoint --now` while the run goes on (after the SIGUSR1
        // handler is installed: the signal's default action would end the process).
        let _registration = manager.as_ref().and_then(|m| {
            let run = crate::live::LiveRun {
                pid: std::process::id(),
                workflow: name.clone(),
                run_id: run_id.clone(),
            };
            crate::live::Registration::new(m.dir(), &run)
                .map_err(|e| {
                    tracing::warn!("`medfusion checkpoint --now` will not find this run: {e}");
                })
                .ok()
        });
        let handle = engine.start(plan.clone(), options)?;
        let emitter = handle.emitter().clone();
        let seen = Arc::clone(&alerts);
        let subscription = monitor.on_alert(move |alert: &Alert| {
            if let Ok(mut seen) = seen.lock() {
                seen.push(alert.clone());
            }
            emitter.emit(EventKind::ResourceAlert {
                level: match alert.level {
                    medfusion_monitor::AlertLevel::Warning => "warning".into(),
                    medfusion_monitor::AlertLevel::Critical => "critical".into(),
                },
                message: alert.message.clone(),
            });
        });
        let cancel = handle.cancel_token().clone();
        // Set before cancelling: the run may end before this task does.
        let ctrl_c_seen = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&ctrl_c_seen);
        let interrupted = tokio::spawn(async move {
            if ctrl_c.await {
                seen.store(true, Ordering::SeqCst);
                cancel.cancel();
            }
        });
        let requests = usr1(&handle);
        let report = handle.wait().await;
        monitor.unsubscribe(subscription);
        if let Some(task) = requests {
            task.abort();
        }
        interrupted.abort();
        let was_interrupted = ctrl_c_seen.load(Ordering::SeqCst);
        Ok::<_, medfusion_exec::Error>((report, was_interrupted))
    })?;
    monitor.stop();

    if let Some(state) = report.state.as_ref() {
        let alerts = alerts.lock().map(|a| a.clone()).unwrap_or_default();
        let record = RunRecord::new(
            &plan,
            state,
            report.error.as_ref(),
            &monitor.history(),
            &alerts,
        );
        match record.write(&out) {
            Ok(()) => eprintln!(
                "run record: {} (report: {})",
                out.join("run.json").display(),
                out.join("report.html").display()
            ),
            Err(e) => print_error(&e.context("cannot write the run record")),
        }
    }
    if let Some(manager) = &manager {
        eprintln!("checkpoints: {}", manager.dir().display());
    }
    match report.error {
        None => Ok(ExitCode::SUCCESS),
        Some(medfusion_exec::Error::Cancelled) if interrupted => {
            print_error(&anyhow::anyhow!(
                "interrupted: the run was cancelled and its state saved; continue it with \
                 `medfusion resume {name}`"
            ));
            Ok(ExitCode::from(EXIT_INTERRUPTED))
        }
        Some(error) => {
            print_error(&anyhow::Error::new(error));
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

/// A run id: the workflow name and the start time (UTC), `name-20261126-143022`.
fn new_run_id(name: &str) -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let compact: String = now.chars().filter(char::is_ascii_digit).collect();
    format!("{name}-{}-{}", &compact[..8], &compact[8..14])
}

/// Print what the resumed run does with each node, and why.
fn explain(engine: &Engine, plan: &medfusion_graph::Plan, from: &ResumeFrom) {
    let decisions = engine.explain_resume(plan, from);
    eprintln!("resume plan:");
    for &i in plan.order() {
        eprintln!("  {:<20} {}", plan.node(i).id, decisions[i]);
    }
}

/// Completes with `true` on Ctrl-C (SIGINT). The handler is installed when this is
/// called, not when it is first polled.
fn interrupt_signal() -> impl std::future::Future<Output = bool> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let stream = signal(SignalKind::interrupt());
        async move {
            match stream {
                Ok(mut s) => s.recv().await.is_some(),
                Err(_) => std::future::pending().await,
            }
        }
    }
    #[cfg(not(unix))]
    {
        async { tokio::signal::ctrl_c().await.is_ok() }
    }
}

/// `kill -USR1 <pid>` saves a checkpoint at the next safe point. The handler is installed
/// when this is called (before the run starts, so no early signal kills the process); the
/// returned function starts forwarding requests to the run.
#[cfg(unix)]
fn checkpoint_requests()
-> impl FnOnce(&medfusion_exec::RunHandle) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let usr1 = signal(SignalKind::user_defined1()).ok();
    move |handle| {
        let mut usr1 = usr1?;
        let requester = handle.checkpoint_requester();
        Some(tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                requester.request();
            }
        }))
    }
}

#[cfg(not(unix))]
fn checkpoint_requests()
-> impl FnOnce(&medfusion_exec::RunHandle) -> Option<tokio::task::JoinHandle<()>> {
    |_| None
}
