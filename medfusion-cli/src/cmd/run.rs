//! `medfusion run FILE` and `medfusion resume WORKFLOW`: validate, then run a workflow
//! with checkpoints, monitoring and a run record.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use medfusion_checkpoint::CheckpointManager;
use medfusion_exec::{Engine, EventKind, FailurePolicy, JsonLinesLog, ResumeFrom, RunOptions};
use medfusion_graph::{HumanDuration, Workflow};
use medfusion_monitor::{Alert, ResourceMonitor};
use medfusion_report::{LiveRecord, RunRecord};
use medfusion_train::DeviceSpec;
use medfusion_train::nodes::NodeSettings;

use crate::observer::MonitorObserver;
use crate::output::{EXIT_FAILED, print_error};
use crate::progress::Progress;
use crate::store::{CheckpointStore, load_for_resume, resume_from};

/// Exit code when the run was interrupted by Ctrl-C (SIGINT): 128 + 2.
const EXIT_INTERRUPTED: u8 = 130;
/// Exit code when the run was stopped by SIGTERM (Slurm, systemd, docker, Kubernetes): 128 + 15.
const EXIT_TERMINATED: u8 = 143;
/// The run was cancelled with the dashboard's "cancel run" button: it failed to finish.
const STOPPED_FROM_DASHBOARD: u8 = EXIT_FAILED;
/// How often a running run rewrites its `run.json` (read by `medfusion dashboard`).
const LIVE_RECORD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// How long the dashboard waits, after the run, for its pages to receive the final record.
const DASHBOARD_GRACE: std::time::Duration = std::time::Duration::from_secs(3);
/// The shortest `--monitor-interval`: sampling faster costs more than it shows.
const MIN_MONITOR_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

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
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = at_least_one)]
    max_checkpoints: usize,
    /// Do not write checkpoints
    #[arg(long)]
    no_checkpoints: bool,
    /// Time between resource samples (CPU, memory, GPUs), at least 10ms
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = monitor_interval)]
    monitor_interval: HumanDuration,
    /// Where training runs: auto (CUDA when usable, else the CPU), cpu, or cuda:N
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    device: String,
    /// Run at most this many nodes at a time (default: the number of CPUs)
    #[arg(long, value_name = "N", value_parser = at_least_one)]
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
    /// Print every checkpoint saved (epoch checkpoints are otherwise shown on the progress
    /// line)
    #[arg(short, long)]
    verbose: bool,
    /// Where nodes run: `local` (this process) or `slurm` (each node a Slurm job; needs a
    /// filesystem the cluster's nodes share). Default: the workflow's `executor`, else local
    #[arg(long, value_enum)]
    executor: Option<ExecutorKind>,
    /// The Slurm partition of the jobs (`sbatch -p`)
    #[arg(long, value_name = "NAME")]
    slurm_partition: Option<String>,
    /// The Slurm account of the jobs (`sbatch -A`)
    #[arg(long, value_name = "NAME")]
    slurm_account: Option<String>,
    /// The Slurm quality of service of the jobs (`sbatch --qos`)
    #[arg(long, value_name = "NAME")]
    slurm_qos: Option<String>,
    /// A further `sbatch` option for every job, as written (`--slurm-opt=--constraint=a100`;
    /// repeatable)
    #[arg(long = "slurm-opt", value_name = "OPTION", allow_hyphen_values = true)]
    slurm_opts: Vec<String>,
    /// Serve a live page of the run at this address (default 127.0.0.1:8686; port 0 picks
    /// a free one): the graph, progress, curves, resources, alerts, checkpoints and log
    #[arg(long, value_name = "ADDR", num_args = 0..=1,
          default_missing_value = medfusion_report::dashboard::DEFAULT_ADDR)]
    dashboard: Option<String>,
    /// The token the dashboard's "checkpoint now" and "cancel run" need (default: a random
    /// one, printed in the dashboard's address)
    #[arg(long, value_name = "TOKEN", requires = "dashboard")]
    dashboard_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExecutorKind {
    /// In this process
    Local,
    /// Each node a Slurm job
    Slurm,
}

/// The Slurm options of the run: the workflow's `executor:` block, then the command line.
fn slurm_options(
    workflow: &Workflow,
    opts: &RunOpts,
) -> anyhow::Result<medfusion_slurm::SlurmOptions> {
    let mut options = match &workflow.executor {
        Some(block) if block.kind == "slurm" => {
            medfusion_slurm::SlurmOptions::from_settings(&block.options)
                .context("the workflow's `executor` block")?
        }
        _ => medfusion_slurm::SlurmOptions::default(),
    };
    options.partition = opts.slurm_partition.clone().or(options.partition);
    options.account = opts.slurm_account.clone().or(options.account);
    options.qos = opts.slurm_qos.clone().or(options.qos);
    options.options.extend(opts.slurm_opts.iter().cloned());
    Ok(options)
}

/// Which executor runs the workflow: the command line's, else the workflow's; and every
/// node's own `executor` must be `local` or that one.
fn executor_of(workflow: &Workflow, opts: &RunOpts) -> anyhow::Result<ExecutorKind> {
    let kind = match (opts.executor, &workflow.executor) {
        (Some(kind), _) => kind,
        (None, None) => ExecutorKind::Local,
        (None, Some(block)) => match block.kind.as_str() {
            "local" => ExecutorKind::Local,
            "slurm" => ExecutorKind::Slurm,
            other => anyhow::bail!(
                "the workflow's executor `{other}` is not one medfusion has (`local` or `slurm`)"
            ),
        },
    };
    let name = match kind {
        ExecutorKind::Local => "local",
        ExecutorKind::Slurm => "slurm",
    };
    for node in &workflow.nodes {
        if let Some(own) = node.executor.as_deref()
            && own != "local"
            && own != name
        {
            anyhow::bail!(
                "node `{}` asks for executor `{own}`, but the run's executor is `{name}` (a node \
                 may say `executor: local` to stay in this process)",
                node.id
            );
        }
    }
    Ok(kind)
}

/// A count of at least 1 (`--max-parallel 0` would run nothing).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn monitor_interval(text: &str) -> Result<HumanDuration, String> {
    let interval: HumanDuration = text.parse().map_err(|e| format!("{e}"))?;
    if interval.0 < MIN_MONITOR_INTERVAL {
        return Err(format!(
            "`{text}` is shorter than the shortest interval, {}",
            humantime::format_duration(MIN_MONITOR_INTERVAL)
        ));
    }
    Ok(interval)
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
    let dir = &args.options.checkpoint_dir;
    if !dir.is_dir() {
        anyhow::bail!(
            "no checkpoint directory `{}` (use `--checkpoint-dir` to name another)",
            dir.display()
        );
    }
    let manager = CheckpointManager::new(dir);
    let loaded = load_for_resume(&manager, &args.workflow, &args.from)?;
    let workflow: Workflow = serde_json::from_value(loaded.checkpoint.workflow.clone())
        .with_context(|| format!("checkpoint `{}` holds no readable workflow", loaded.info.id))?;
    execute(workflow, Some(&loaded.info.id), &args.options)
}

/// Where the run writes, checked before anything starts: a run that cannot write its
/// record or log must not run for hours first, and must never overwrite its own input.
fn check_outputs(workflow: &Workflow, out: &Path, log: Option<&Path>) -> anyhow::Result<()> {
    if out.exists() && !out.is_dir() {
        anyhow::bail!(
            "`--out {}` is a file, not a folder: the run record goes to `<out>/run.json`",
            out.display()
        );
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the run folder `{}`", out.display()))?;
    let probe = out.join(".medfusion-write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("cannot write into the run folder `{}`", out.display()))?;
    let _ = std::fs::remove_file(&probe);
    let Some(log) = log else { return Ok(()) };
    if log.is_dir() {
        anyhow::bail!("`--log {}` is a folder, not a file", log.display());
    }
    if let Some(source) = workflow.source_path()
        && same_file(source, log)
    {
        anyhow::bail!(
            "`--log {}` is the workflow file itself; name another file for the run log",
            log.display()
        );
    }
    if !is_replaceable_log(log) {
        anyhow::bail!(
            "`--log {}` exists and is not a medfusion run log; refusing to overwrite it \
             (remove it or name another file)",
            log.display()
        );
    }
    Ok(())
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether `--log` may (re)write `path`: it does not exist, is empty, or is a run log that
/// medfusion wrote (its first line is a JSON event).
fn is_replaceable_log(path: &Path) -> bool {
    use std::io::{BufRead as _, Read as _};
    let Ok(file) = std::fs::File::open(path) else {
        return !path.exists();
    };
    let mut first = String::new();
    let read = std::io::BufReader::new(file.take(64 * 1024)).read_line(&mut first);
    match read {
        Ok(0) => true,
        Ok(_) => serde_json::from_str::<serde_json::Value>(&first)
            .is_ok_and(|v| v.get("event").is_some() && v.get("time").is_some()),
        Err(_) => false,
    }
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

    // One run per workflow and checkpoint folder: a second run would mix its checkpoints
    // with this one's and rotate them away.
    let manager = (!opts.no_checkpoints).then(|| {
        Arc::new(CheckpointManager::new(&opts.checkpoint_dir).max_checkpoints(opts.max_checkpoints))
    });
    let _lock = manager
        .as_ref()
        .map(|m| m.lock_workflow(&name))
        .transpose()
        .with_context(|| format!("cannot start a run of `{name}`"))?;
    let resume_from = match resume {
        None => None,
        Some(which) => {
            let reader = CheckpointManager::new(&opts.checkpoint_dir);
            let loaded = load_for_resume(manager.as_deref().unwrap_or(&reader), &name, which)?;
            errln!("resuming from checkpoint {} (verified)", loaded.info.id);
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
    let base_dir = base_dir_of(&workflow);

    let monitor = Arc::new(
        ResourceMonitor::builder()
            .interval(opts.monitor_interval.0)
            // The binary owns the process: exact per-node peaks may reset the kernel's mark.
            .reset_peak_rss(true)
            .build()
            .context("cannot start the resource monitor")?,
    );
    let first = monitor
        .sample_now()
        .context("cannot read the machine's resources")?;
    let executor = executor_of(&workflow, opts)?;
    let on_cluster = executor == ExecutorKind::Slurm;
    // On a cluster the jobs ask Slurm for GPUs (`resources: { gpus: N }`); this machine's
    // GPU slots do not limit them.
    let gpus = match (opts.gpus, on_cluster) {
        (Some(n), _) => n,
        (None, true) => CLUSTER_GPU_SLOTS,
        (None, false) => first.gpus.len() as u32,
    };
    if gpus > 0 && device != DeviceSpec::Cpu && !on_cluster {
        // Training on a GPU holds it: nodes sharing one GPU take turns.
        for node in workflow
            .nodes
            .iter_mut()
            .filter(|n| n.node_type == "train.classifier")
        {
            node.resources
                .get_or_insert(medfusion_graph::Resources::gpus(1));
        }
    }
    let settings = NodeSettings {
        base_dir,
        out_dir: Some(out.clone()),
        device: Some(device),
        fault: None,
    };
    let registry = crate::catalog::registry(settings.clone());
    let plan = medfusion_graph::validate(workflow, registry.catalog())?;
    // Devices are resolved before the first node starts (and before any checkpoint).
    medfusion_train::nodes::check_devices(&plan, &settings)?;
    check_outputs(plan.workflow(), &out, opts.log.as_deref())?;
    monitor
        .start()
        .context("cannot start the resource monitor")?;

    let progress = Arc::new(Progress::new(plan.len(), opts.verbose));
    let mut builder = Engine::builder(registry)
        .gpus(gpus)
        .failure_policy(match opts.failure_policy {
            Policy::FailFast => FailurePolicy::FailFast,
            Policy::Continue => FailurePolicy::Continue,
        })
        .observer(Arc::new(MonitorObserver(Arc::clone(&monitor))))
        .subscribe(progress);
    match (opts.max_parallel, on_cluster) {
        (Some(n), _) => builder = builder.max_parallel(n),
        (None, true) => builder = builder.max_parallel(CLUSTER_MAX_JOBS),
        (None, false) => {}
    }
    if on_cluster {
        let exe = std::env::current_exe().context("cannot find the medfusion binary")?;
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let settings = crate::cmd::node_exec::JobSettings {
            base_dir: absolute(&base_dir_of(plan.workflow())),
            out_dir: absolute(&out),
            device: opts.device.clone(),
        };
        let runner = medfusion_slurm::SlurmRunner::new(
            slurm_options(plan.workflow(), opts)?,
            &out,
            vec![exe.display().to_string(), "node-exec".to_string()],
        )
        .settings(serde_json::to_value(settings)?);
        builder = builder.runner(Arc::new(runner));
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
    // The run's record as it goes: the dashboard's page and the run.json that `medfusion
    // dashboard` reads while the run goes on.
    let live = Arc::new(LiveRecord::new(&plan, &run_id).with_monitor(Arc::clone(&monitor)));
    builder = builder.subscribe(Arc::clone(&live) as Arc<dyn medfusion_exec::EventSink>);
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
    let stop = Arc::new(AtomicU8::new(0));
    let dashboard_stop = Arc::new(tokio::sync::Notify::new());
    let mut dashboard = None;
    let live_writer = live.write_every(out.clone(), LIVE_RECORD_INTERVAL);
    let report = runtime.block_on(async {
        // Bound before the run starts: an address in use is an error, not a lost page.
        let listener = match &opts.dashboard {
            Some(addr) => Some(
                medfusion_report::dashboard::bind(addr)
                    .await
                    .map_err(anyhow::Error::new)?,
            ),
            None => None,
        };
        // Listen for Ctrl-C and SIGTERM before anything runs, so an early one is not lost.
        let stop_signals = StopSignals::install();
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
        if let Some(listener) = listener {
            dashboard = Some(serve_dashboard(
                listener,
                &live,
                &monitor,
                &handle,
                &stop,
                opts.dashboard_token.clone(),
                Arc::clone(&dashboard_stop),
            )?);
        }
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
        let stopper = stop_signals.map(|signals| {
            signals.forward(
                handle.cancel_token().clone(),
                Arc::clone(&stop),
                manager.is_some(),
            )
        });
        let requests = usr1(&handle);
        let report = handle.wait().await;
        monitor.unsubscribe(subscription);
        if let Some(task) = requests {
            task.abort();
        }
        // The stopper stays: a second Ctrl-C while the record is written still ends the
        // process at once.
        drop(stopper);
        Ok::<_, anyhow::Error>(report)
    })?;
    monitor.stop();
    drop(live_writer);

    let mut record_failed = false;
    if let Some(state) = report.state.as_ref() {
        let alerts = alerts.lock().map(|a| a.clone()).unwrap_or_default();
        let record = live.finish(RunRecord::new(
            &plan,
            state,
            report.error.as_ref(),
            &monitor.history(),
            &alerts,
        ));
        print_headline_metrics(&record);
        match record.write(&out) {
            Ok(()) => errln!(
                "run record: {} (report: {})",
                out.join("run.json").display(),
                out.join("report.html").display()
            ),
            Err(e) => {
                record_failed = true;
                print_error(&anyhow::Error::new(e).context("cannot write the run record"));
            }
        }
    }
    if let Some(manager) = &manager {
        errln!("checkpoints: {}", manager.dir().display());
    }
    if let Some(server) = dashboard {
        if !live.is_finished() {
            live.finish(live.snapshot());
        }
        // The open pages receive the final record, then the server stops.
        dashboard_stop.notify_one();
        let _ = runtime.block_on(server);
    }
    // A node body that ignores cancellation must not keep the process alive.
    runtime.shutdown_background();
    let stopped_by = stop.load(Ordering::SeqCst);
    match report.error {
        None if record_failed => Ok(ExitCode::from(EXIT_FAILED)),
        None => Ok(ExitCode::SUCCESS),
        Some(medfusion_exec::Error::Cancelled) if stopped_by != 0 => {
            let what = match stopped_by {
                EXIT_TERMINATED => "terminated (SIGTERM)",
                STOPPED_FROM_DASHBOARD => "cancelled from the dashboard",
                _ => "interrupted",
            };
            if manager.is_some() {
                print_error(&anyhow::anyhow!(
                    "{what}: the run was cancelled and its state saved; continue it with \
                     `medfusion resume {name}`"
                ));
            } else {
                print_error(&anyhow::anyhow!(
                    "{what}: the run was cancelled; it kept no checkpoints \
                     (`--no-checkpoints`), so it cannot be resumed"
                ));
            }
            Ok(ExitCode::from(stopped_by))
        }
        Some(error) => {
            print_error(&anyhow::Error::new(error));
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

/// Serves the run's dashboard on `listener` until `shutdown` is notified (then for at most
/// `DASHBOARD_GRACE` while open pages receive the final record), and prints its address.
fn serve_dashboard(
    listener: tokio::net::TcpListener,
    live: &Arc<LiveRecord>,
    monitor: &Arc<ResourceMonitor>,
    handle: &medfusion_exec::RunHandle,
    stop: &Arc<AtomicU8>,
    token: Option<String>,
    shutdown: Arc<tokio::sync::Notify>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let addr = listener
        .local_addr()
        .context("cannot read the dashboard's address")?;
    let token = token.unwrap_or_else(medfusion_report::dashboard::new_token);
    let requester = handle.checkpoint_requester();
    let cancel = handle.cancel_token().clone();
    let stop = Arc::clone(stop);
    let actions = medfusion_report::dashboard::Actions {
        token: token.clone(),
        checkpoint: Box::new(move || requester.request()),
        cancel: Box::new(move || {
            let _ = stop.compare_exchange(
                0,
                STOPPED_FROM_DASHBOARD,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            cancel.cancel();
        }),
    };
    let router = medfusion_report::dashboard::live_router(
        Arc::clone(live),
        Some(Arc::clone(monitor)),
        Some(actions),
    );
    errln!("dashboard: http://{addr}/?token={token}");
    Ok(tokio::spawn(async move {
        let stopped = async move { shutdown.notified().await };
        if let Err(e) = medfusion_report::dashboard::serve(
            listener,
            router,
            stopped,
            medfusion_report::dashboard::ServeOptions {
                grace: DASHBOARD_GRACE,
                ..Default::default()
            },
        )
        .await
        {
            tracing::warn!("the dashboard stopped: {e}");
        }
    }))
}

/// The evaluations' headline figures, so nobody has to open a file to see them:
/// `eval: model `train` accuracy 0.953, ROC AUC 0.987 (test split)`.
fn print_headline_metrics(record: &RunRecord) {
    for (node, summary) in &record.metrics {
        let split = summary
            .get("split")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("test");
        let Some(models) = summary.get("models").and_then(serde_json::Value::as_object) else {
            continue;
        };
        for (model, m) in models {
            let figure = |key: &str| m.get(key).and_then(serde_json::Value::as_f64);
            let mut parts = Vec::new();
            if let Some(a) = figure("accuracy") {
                parts.push(format!("accuracy {a:.3}"));
            }
            if let Some(auc) = figure("roc_auc") {
                parts.push(format!("ROC AUC {auc:.3}"));
            }
            if !parts.is_empty() {
                errln!(
                    "{}: model `{}` {} ({split} split)",
                    crate::output::escaped(node),
                    crate::output::escaped(model),
                    parts.join(", ")
                );
            }
        }
    }
}

/// GPU slots of a run on a cluster: the cluster's scheduler decides who gets a GPU.
const CLUSTER_GPU_SLOTS: u32 = 1024;
/// Jobs a run on a cluster keeps in the queue at once by default (`--max-parallel`).
const CLUSTER_MAX_JOBS: usize = 64;

/// The folder a workflow's relative paths are relative to: the workflow file's.
fn base_dir_of(workflow: &Workflow) -> PathBuf {
    workflow
        .source_path()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
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
    errln!("resume plan:");
    for &i in plan.order() {
        errln!("  {:<20} {}", plan.node(i).id, decisions[i]);
    }
}

/// Ctrl-C (SIGINT) and SIGTERM, listened for from before the run starts. The first stops
/// the run as Ctrl-C always did (running nodes are cancelled, the state saved, the record
/// written; exit 130, or 143 for SIGTERM); a second one ends the process at once, even
/// while a node that ignores cancellation holds it up.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers (from this moment the signals no longer end the process).
    fn install() -> Option<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(interrupt), Ok(terminate)) => Some(StopSignals {
                interrupt,
                terminate,
            }),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("cannot listen for Ctrl-C and SIGTERM: {e}");
                None
            }
        }
    }

    async fn next(&mut self) -> u8 {
        tokio::select! {
            Some(()) = self.interrupt.recv() => EXIT_INTERRUPTED,
            Some(()) = self.terminate.recv() => EXIT_TERMINATED,
            else => std::future::pending().await,
        }
    }

    /// Cancels the run on the first signal (recording its exit code in `stop` first: the
    /// run may end before this task does), and exits on the second.
    fn forward(
        mut self,
        cancel: tokio_util::sync::CancellationToken,
        stop: Arc<AtomicU8>,
        saves: bool,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let code = self.next().await;
            stop.store(code, Ordering::SeqCst);
            cancel.cancel();
            errln!(
                "stopping: cancelling running nodes{} (press Ctrl-C again to stop at once)",
                if saves { " and saving their state" } else { "" }
            );
            let again = self.next().await;
            errln!("stopped at once: the run record is not written");
            std::process::exit(i32::from(again));
        })
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
