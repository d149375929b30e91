//! `medfusion dashboard [RUNS_DIR]`: serve the runs of a folder in the browser: an index,
//! each run's report, and a live page for a run still going (from its `run.json`, which a
//! run rewrites every few seconds).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

/// Arguments of `medfusion dashboard`.
#[derive(Debug, clap::Args)]
pub(crate) struct DashboardArgs {
    /// The folder of runs (each `<folder>/<run>/run.json`)
    #[arg(default_value = "runs")]
    runs_dir: PathBuf,
    /// Where to listen: `host:port` (port 0 picks a free one). Binding another address
    /// than localhost shows the runs to whoever can reach it
    #[arg(long, value_name = "ADDR", default_value = medfusion_report::dashboard::DEFAULT_ADDR)]
    addr: String,
}

pub(crate) fn run(args: DashboardArgs) -> anyhow::Result<ExitCode> {
    if !args.runs_dir.is_dir() {
        anyhow::bail!(
            "no runs folder `{}` (runs go to `runs/` unless `--out` names another folder)",
            args.runs_dir.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = medfusion_report::dashboard::bind(&args.addr).await?;
        let addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        errln!(
            "dashboard of `{}`: http://{addr}/ (Ctrl-C to stop)",
            args.runs_dir.display()
        );
        let router = medfusion_report::dashboard::folder_router(args.runs_dir.clone());
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let options = medfusion_report::dashboard::ServeOptions {
            grace: std::time::Duration::ZERO,
            ..Default::default()
        };
        medfusion_report::dashboard::serve(listener, router, stop, options)
            .await
            .context("the dashboard stopped")?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
