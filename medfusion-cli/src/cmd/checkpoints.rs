//! `medfusion checkpoints list|show|verify|prune`: inspect and tidy a checkpoint directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use medfusion_checkpoint::{
    CheckpointInfo, CheckpointManager, CheckpointReport, CheckpointStatus, Goal,
};
use serde_json::json;

/// Arguments of `medfusion checkpoints`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckpointsArgs {
    #[command(subcommand)]
    action: Action,
}

/// Where the checkpoints are, for every action.
#[derive(Debug, clap::Args)]
struct DirArg {
    /// The checkpoint directory
    #[arg(long, default_value = "checkpoints", value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// List the valid checkpoints, oldest first (of one workflow, or all)
    List {
        #[command(flatten)]
        dir: DirArg,
        /// Only this workflow's checkpoints
        workflow: Option<String>,
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show a checkpoint's manifest: metrics and files (a workflow id shows its newest)
    Show {
        #[command(flatten)]
        dir: DirArg,
        /// A checkpoint id, or a workflow id for its newest checkpoint
        target: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Check every file's size and checksum (exit 1 if any checkpoint is corrupt)
    Verify {
        #[command(flatten)]
        dir: DirArg,
        /// A checkpoint id or a workflow id (default: every checkpoint)
        target: Option<String>,
    },
    /// Remove old checkpoints, leftovers of interrupted saves and unused tensor files
    Prune {
        #[command(flatten)]
        dir: DirArg,
        /// Only this workflow (default: every workflow)
        workflow: Option<String>,
        /// Checkpoints to keep per workflow, newest first
        #[arg(long, default_value_t = 5, value_name = "N")]
        keep: usize,
        /// Also keep the best checkpoint by this metric
        #[arg(long, value_name = "METRIC")]
        keep_best: Option<String>,
        /// With --keep-best: higher is better (default: lower, as for a loss)
        #[arg(long, requires = "keep_best")]
        maximize: bool,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(args: CheckpointsArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let result = match args.action {
        Action::List {
            dir,
            workflow,
            json,
        } => list(&mut out, &dir.dir, workflow.as_deref(), json),
        Action::Show { dir, target, json } => show(&mut out, &dir.dir, &target, json),
        Action::Verify { dir, target } => verify(&mut out, &dir.dir, target.as_deref()),
        Action::Prune {
            dir,
            workflow,
            keep,
            keep_best,
            maximize,
            json,
        } => {
            let mut manager = CheckpointManager::new(&dir.dir).max_checkpoints(keep);
            if let Some(metric) = keep_best {
                let goal = if maximize {
                    Goal::Maximize
                } else {
                    Goal::Minimize
                };
                manager = manager.keep_best(metric, goal);
            }
            prune(&mut out, &manager, workflow.as_deref(), json)
        }
    };
    match result {
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

fn listed(
    manager: &CheckpointManager,
    workflow: Option<&str>,
) -> anyhow::Result<Vec<CheckpointInfo>> {
    anyhow::ensure!(
        manager.dir().is_dir(),
        "checkpoint directory `{}` does not exist",
        manager.dir().display()
    );
    let dir = manager.dir().display();
    match workflow {
        Some(w) => manager.list(w),
        None => manager.list_all(),
    }
    .with_context(|| format!("cannot list the checkpoints in `{dir}`"))
}

/// Every entry named like a checkpoint, verified: corrupt ones and folders without a
/// valid manifest are listed and marked, never hidden.
fn inspected(
    manager: &CheckpointManager,
    workflow: Option<&str>,
) -> anyhow::Result<Vec<CheckpointReport>> {
    let dir = manager.dir().display();
    match workflow {
        Some(w) => manager.inspect(w),
        None => manager.inspect_all(),
    }
    .with_context(|| format!("cannot list the checkpoints in `{dir}`"))
}

/// `ok`, `CORRUPT` or `BROKEN` (no valid manifest), and the reason when not ok.
fn status_text(report: &CheckpointReport) -> (&'static str, Option<String>) {
    match &report.status {
        CheckpointStatus::Valid => ("ok", None),
        CheckpointStatus::Corrupt { files } => {
            let shown: Vec<String> = files
                .iter()
                .map(|f| {
                    let text = crate::output::chain_text(&f.error);
                    match f.shared_with.len() {
                        0 => text,
                        n => format!(
                            "{text} (the same file is linked into {n} other checkpoint{}: {})",
                            if n == 1 { "" } else { "s" },
                            f.shared_with.join(", ")
                        ),
                    }
                })
                .collect();
            ("CORRUPT", Some(shown.join("; ")))
        }
        CheckpointStatus::NoValidManifest { error } => {
            ("BROKEN", Some(crate::output::chain_text(error)))
        }
        _ => ("UNKNOWN", None),
    }
}

fn list(
    out: &mut impl std::io::Write,
    dir: &std::path::Path,
    workflow: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let manager = CheckpointManager::new(dir);
    let all = inspected(&manager, workflow)?;
    if json {
        let rows: Vec<_> = all
            .iter()
            .map(|r| {
                let (status, problem) = status_text(r);
                let mut row = r.info.as_ref().map_or_else(
                    || json!({ "id": r.id, "workflow_id": r.workflow_id, "path": r.path }),
                    summary_json,
                );
                row["status"] = json!(status.to_lowercase());
                if let Some(problem) = problem {
                    row["problem"] = json!(problem);
                }
                row
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        let scope = workflow.map_or_else(String::new, |w| format!(" of workflow `{w}`"));
        writeln!(out, "no checkpoints{scope} in `{}`", dir.display())?;
        return Ok(ExitCode::SUCCESS);
    }
    let width = all.iter().map(|i| i.id.len()).max().unwrap_or(2).max(2);
    writeln!(
        out,
        "{:<width$}  {:<7}  {:>3}  {:<24}  {:>10}  {:<20}  METRICS",
        "ID", "STATUS", "SEQ", "CREATED (UTC)", "SIZE", "NODES"
    )?;
    for report in &all {
        let (status, problem) = status_text(report);
        match &report.info {
            Some(info) => writeln!(
                out,
                "{:<width$}  {status:<7}  {:>3}  {:<24}  {:>10}  {:<20}  {}",
                info.id,
                info.sequence,
                info.created_rfc3339,
                human_bytes(info.size()),
                info.nodes().join(","),
                metrics_text(info),
            )?,
            None => writeln!(out, "{:<width$}  {status:<7}", report.id)?,
        }
        if let Some(problem) = problem {
            errln!("{}: {problem}", report.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn summary_json(info: &CheckpointInfo) -> serde_json::Value {
    json!({
        "id": info.id,
        "workflow_id": info.workflow_id,
        "sequence": info.sequence,
        "created": info.created_rfc3339,
        "path": info.path,
        "size_bytes": info.size(),
        "nodes": info.nodes(),
        "metrics": info.metrics,
    })
}

fn metrics_text(info: &CheckpointInfo) -> String {
    info.metrics
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A checkpoint id, or the newest checkpoint of a workflow id.
fn resolve(manager: &CheckpointManager, target: &str) -> anyhow::Result<CheckpointInfo> {
    match manager.info(target) {
        Ok(info) => Ok(info),
        Err(medfusion_checkpoint::Error::NotFound { .. }) => manager
            .list(target)
            .ok()
            .and_then(|mut all| all.pop())
            .with_context(|| {
                format!(
                    "no checkpoint or workflow `{target}` in `{}`",
                    manager.dir().display()
                )
            }),
        Err(e) => Err(e.into()),
    }
}

fn show(
    out: &mut impl std::io::Write,
    dir: &std::path::Path,
    target: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let manager = CheckpointManager::new(dir);
    let info = resolve(&manager, target)?;
    if json {
        let mut value = summary_json(&info);
        value["files"] = info
            .files
            .iter()
            .map(|f| json!({ "path": f.path, "node": f.node, "size_bytes": f.size, "xxh3": f.checksum }))
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "checkpoint  {}", info.id)?;
    writeln!(out, "workflow    {}", info.workflow_id)?;
    writeln!(out, "sequence    {}", info.sequence)?;
    writeln!(out, "created     {}", info.created_rfc3339)?;
    writeln!(out, "path        {}", info.path.display())?;
    writeln!(
        out,
        "size        {} ({} bytes)",
        human_bytes(info.size()),
        info.size()
    )?;
    writeln!(out, "nodes       {}", info.nodes().join(", "))?;
    writeln!(out, "metrics     {}", metrics_text(&info))?;
    writeln!(out, "files:")?;
    let width = info.files.iter().map(|f| f.path.len()).max().unwrap_or(0);
    for f in &info.files {
        writeln!(
            out,
            "  {:<width$}  {:>10}  {}",
            f.path,
            human_bytes(f.size),
            f.checksum
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(
    out: &mut impl std::io::Write,
    dir: &std::path::Path,
    target: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let manager = CheckpointManager::new(dir);
    let reports: Vec<CheckpointReport> = match target {
        // A checkpoint id is verified even if its manifest is broken: that is a failure.
        Some(t) if dir.join(t).exists() && !t.contains('/') => vec![
            manager
                .verify_report(t)
                .with_context(|| format!("cannot verify `{t}` in `{}`", dir.display()))?,
        ],
        Some(workflow) => {
            let all = inspected(&manager, Some(workflow))?;
            anyhow::ensure!(
                !all.is_empty(),
                "no checkpoint or workflow `{workflow}` in `{}`",
                dir.display()
            );
            all
        }
        None => inspected(&manager, None)?,
    };
    let mut bad = 0;
    for report in &reports {
        let (status, problem) = status_text(report);
        match (&report.info, problem) {
            (Some(info), None) => writeln!(
                out,
                "{status:<8} {}  ({} files, {})",
                report.id,
                info.files.len(),
                human_bytes(info.size())
            )?,
            (_, problem) => {
                bad += 1;
                writeln!(out, "{status:<8} {}", report.id)?;
                if let Some(problem) = problem {
                    errln!("error: checkpoint `{}`: {problem}", report.id);
                }
            }
        }
    }
    writeln!(
        out,
        "{} checkpoint{} verified, {bad} corrupt or broken",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" }
    )?;
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::output::EXIT_FAILED)
    })
}

fn prune(
    out: &mut impl std::io::Write,
    manager: &CheckpointManager,
    workflow: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let workflows: Vec<String> = if let Some(w) = workflow {
        vec![w.to_string()]
    } else {
        let mut all: Vec<String> = listed(manager, None)?
            .into_iter()
            .map(|i| i.workflow_id)
            .collect();
        all.dedup();
        all
    };
    let mut reports = Vec::new();
    for w in &workflows {
        let report = manager.prune(w).with_context(|| {
            format!(
                "cannot prune workflow `{w}` in `{}`",
                manager.dir().display()
            )
        })?;
        reports.push((w, report));
    }
    if json {
        let value: Vec<_> = reports
            .iter()
            .map(|(w, r)| {
                json!({
                    "workflow_id": w,
                    "kept": r.kept,
                    "removed": r.removed,
                    "objects_removed": r.objects_removed,
                    "leftovers_removed": r.leftovers_removed,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (w, r) in &reports {
        for id in &r.removed {
            writeln!(out, "removed  {id}")?;
        }
        writeln!(
            out,
            "{w}: kept {}, removed {}, {} unused tensor files and {} leftovers removed",
            r.kept.len(),
            r.removed.len(),
            r.objects_removed,
            r.leftovers_removed
        )?;
    }
    if reports.is_empty() {
        writeln!(out, "no checkpoints in `{}`", manager.dir().display())?;
    }
    Ok(ExitCode::SUCCESS)
}
