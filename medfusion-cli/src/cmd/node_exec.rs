//! `medfusion node-exec`: run one attempt of a node from its attempt files, as a cluster job
//! does for `medfusion run --executor slurm`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use medfusion_exec::{
    AttemptFiles, AttemptResult, CancellationToken, Event, EventSink, run_detached,
};
use medfusion_monitor::ResourceMonitor;
use medfusion_train::DeviceSpec;
use medfusion_train::nodes::NodeSettings;
use serde::{Deserialize, Serialize};

/// Arguments of `medfusion node-exec`.
#[derive(Debug, clap::Args)]
pub(crate) struct NodeExecArgs {
    /// The run's folder (on a filesystem the head and this machine share)
    #[arg(long, value_name = "DIR")]
    run_dir: PathBuf,
    /// The node to run
    #[arg(long, value_name = "ID")]
    node: String,
    /// The attempt (its files are in `<run dir>/jobs/<node>/<attempt>/`)
    #[arg(long, value_name = "N")]
    attempt: u32,
}

/// What the head sends along for the node types of this binary.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct JobSettings {
    /// The folder relative paths of the workflow are relative to.
    pub(crate) base_dir: PathBuf,
    /// Where evaluations and shell nodes write (the run folder).
    pub(crate) out_dir: PathBuf,
    /// The run's `--device`.
    pub(crate) device: String,
}

/// Writes each event as a JSON line at once (the head reads them while the job runs).
struct LiveLog(Mutex<std::fs::File>);

impl EventSink for LiveLog {
    fn event(&self, event: &Event) {
        let Ok(mut file) = self.0.lock() else { return };
        if let Ok(mut line) = serde_json::to_vec(event) {
            line.push(b'\n');
            let _ = file.write_all(&line);
        }
    }
}

pub(crate) fn run(args: NodeExecArgs) -> anyhow::Result<ExitCode> {
    let dir = args
        .run_dir
        .join("jobs")
        .join(&args.node)
        .join(args.attempt.to_string());
    let files = AttemptFiles::new(&dir);
    let request = files
        .read_request()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot read the attempt in `{}`", dir.display()))?;
    anyhow::ensure!(
        request.node == args.node && request.attempt == args.attempt,
        "`{}` holds attempt {} of node `{}`, not attempt {} of `{}`",
        dir.display(),
        request.attempt,
        request.node,
        args.attempt,
        args.node
    );
    let settings: JobSettings = serde_json::from_value(request.settings.clone())
        .context("the attempt's settings are not this binary's")?;
    let device: DeviceSpec = settings
        .device
        .parse()
        .map_err(|e| anyhow::anyhow!("`device {}`: {e}", settings.device))?;
    let registry = crate::catalog::registry(NodeSettings {
        base_dir: settings.base_dir,
        out_dir: Some(settings.out_dir),
        device: Some(device),
        fault: None,
    });
    let (plan, attempt) = request
        .into_detached(&registry)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("cannot set the attempt up")?;
    let node = plan.node(attempt.node).id.clone();

    let events = std::fs::File::create(files.events_path())
        .with_context(|| format!("cannot create `{}`", files.events_path().display()))?;
    let monitor = ResourceMonitor::builder()
        .reset_peak_rss(true)
        .build()
        .context("cannot start the resource monitor")?;
    let _ = monitor.start();
    let scope = monitor.scope(&node);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        // Slurm stops a job with SIGTERM (scancel, the time limit, preemption): the node
        // is cancelled, saves what it can and returns.
        let cancel = CancellationToken::new();
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                if term.recv().await.is_some() {
                    cancel.cancel();
                }
            });
        }
        let seq = Arc::new(Mutex::new(0u64));
        let progress_files = files.clone();
        run_detached(
            &registry,
            plan,
            attempt,
            vec![Arc::new(LiveLog(Mutex::new(events)))],
            cancel,
            move |saved| {
                let Ok(mut n) = seq.lock() else { return };
                *n += 1;
                if let Err(e) = progress_files.write_progress(*n, &saved) {
                    tracing::warn!("cannot write the saved progress: {e}");
                }
            },
        )
        .await
    });
    runtime.shutdown_background();
    let usage = crate::observer::usage_of(&scope.finish());
    monitor.stop();
    let result = AttemptResult::from_outcome(outcome.as_ref(), Some(usage))
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("cannot save the node's outputs")?;
    files
        .write_result(&result)
        .with_context(|| format!("cannot write the result into `{}`", dir.display()))?;
    Ok(match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: {}", e.chain().join(": "));
            ExitCode::from(crate::output::EXIT_FAILED)
        }
    })
}
