//! `medfusion report RUN_DIR`: render `report.html` again from `run.json`.

use std::path::PathBuf;
use std::process::ExitCode;

use medfusion_report::RunRecord;

/// Arguments of `medfusion report`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// The run's output folder (holding run.json)
    run_dir: PathBuf,
}

pub(crate) fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let record = RunRecord::read(&args.run_dir)?;
    record.write_report(&args.run_dir)?;
    outln!("{}", args.run_dir.join("report.html").display());
    Ok(ExitCode::SUCCESS)
}
