//! `process.shell`: the user's own command as a node, with files in and files out.
//!
//! Each attempt runs in a fresh work folder, `<run dir>/work/<node>/<attempt>/`, where the
//! files and folders arriving on the `in` port are linked under their names (as Nextflow
//! stages a task's inputs). The command runs there as a plain process in its own process
//! group (`sh -c` for a string, the program itself for a list), with the node's `env` added,
//! its stdout and stderr kept in `<run dir>/jobs/<node>/<attempt>/`. A non-zero exit is a
//! failure whose error carries the last 20 lines of stderr; cancellation (Ctrl-C, a timeout)
//! stops the whole process group (SIGTERM, then SIGKILL). The declared `outputs` (paths or
//! globs in the work folder) leave on the `out` port as a [`FilesValue`] with checksums, so a
//! resumed run skips the node only while its command, config and input files are unchanged.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use medfusion_graph::{NodeConfig, NodeSpec, PortSpec, PortType};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::context::{NodeContext, Outputs};
use crate::error::{Error, NodeError, NodeErrorKind};
use crate::executor::NodeExecutor;
use crate::files::FilesValue;
use crate::registry::Registry;

/// The node type name of shell nodes.
pub const SHELL_NODE_TYPE: &str = "process.shell";

/// Lines of stderr a failed command's error carries.
const STDERR_TAIL_LINES: usize = 20;
/// How long a cancelled command may take to stop after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where shell nodes of one run keep their work and log folders.
#[derive(Debug, Clone)]
pub struct ShellSettings {
    /// The run's folder (`runs/<run id>`): work folders go to `work/<node>/<attempt>/`, logs
    /// to `jobs/<node>/<attempt>/`.
    pub run_dir: PathBuf,
}

/// The command of a shell node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ShellCommand {
    /// A command line for `sh -c`.
    Line(String),
    /// A program and its arguments, run as they are (no shell).
    Argv(Vec<String>),
}

impl Default for ShellCommand {
    fn default() -> ShellCommand {
        ShellCommand::Line(String::new())
    }
}

impl fmt::Display for ShellCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShellCommand::Line(line) => f.write_str(line),
            ShellCommand::Argv(argv) => f.write_str(&argv.join(" ")),
        }
    }
}

/// The settings of `process.shell`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ShellConfig {
    /// The command: a string run by `sh -c`, or a list of a program and its arguments.
    #[schemars(extend("x-required" = true))]
    pub command: ShellCommand,
    /// The files or folders the command writes, relative to its work folder; globs allowed
    /// (`out/*.csv`). Each must match something after the command ran.
    pub outputs: Vec<String>,
    /// Environment variables for the command, besides the process's own.
    pub env: BTreeMap<String, String>,
}

impl NodeConfig for ShellConfig {
    fn check(&self) -> Vec<medfusion_graph::ConfigIssue> {
        let mut issues = Vec::new();
        let empty = match &self.command {
            ShellCommand::Line(line) => line.trim().is_empty(),
            ShellCommand::Argv(argv) => argv.first().is_none_or(String::is_empty),
        };
        if empty {
            issues.push(medfusion_graph::ConfigIssue::invalid(
                "command",
                "is empty: give a command line, or a list of a program and its arguments",
            ));
        }
        for output in &self.outputs {
            let path = Path::new(output);
            if output.is_empty()
                || path.is_absolute()
                || path
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
            {
                issues.push(medfusion_graph::ConfigIssue::invalid(
                    "outputs",
                    format!("`{output}` must be a path inside the work folder (relative, no `..`)"),
                ));
            } else if let Err(e) = glob::Pattern::new(output) {
                issues.push(medfusion_graph::ConfigIssue::invalid(
                    "outputs",
                    format!("`{output}` is not a valid pattern: {e}"),
                ));
            }
        }
        for key in self.env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                issues.push(medfusion_graph::ConfigIssue::invalid(
                    "env",
                    format!("`{key}` is not a valid variable name"),
                ));
            }
        }
        issues
    }
}

/// The spec of `process.shell`.
pub fn shell_spec() -> NodeSpec {
    NodeSpec::new(
        SHELL_NODE_TYPE,
        "Runs a command of your own: files in, files out",
    )
    .input(
        PortSpec::optional("in", PortType::Files)
            .multiple()
            .describe("files and folders linked into the work folder under their names"),
    )
    .output(PortSpec::output("out", PortType::Files).describe("the declared outputs"))
    .with_config_type::<ShellConfig>()
}

/// Register `process.shell`, keeping its folders under `settings.run_dir`.
pub fn register_shell(registry: &mut Registry, settings: ShellSettings) -> Result<(), Error> {
    registry.register(
        shell_spec(),
        Shell {
            settings: Arc::new(settings),
        },
    )
}

struct Shell {
    settings: Arc<ShellSettings>,
}

/// The last lines a failed command wrote to stderr.
#[derive(Debug)]
struct StderrTail {
    log: PathBuf,
    lines: Vec<String>,
}

impl fmt::Display for StderrTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lines.is_empty() {
            return write!(f, "it wrote nothing to stderr ({})", self.log.display());
        }
        write!(
            f,
            "the last {} line{} of its stderr ({}):",
            self.lines.len(),
            if self.lines.len() == 1 { "" } else { "s" },
            self.log.display()
        )?;
        for line in &self.lines {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StderrTail {}

fn tail(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_string())
        .collect()
}

fn io_error(ctx: &NodeContext, what: &str, path: &Path, e: std::io::Error) -> NodeError {
    NodeError::with_source(
        format!("node `{}`: cannot {what} `{}`", ctx.id(), path.display()),
        e,
    )
}

/// Link every file and folder on the `in` port into `work` under its name.
fn stage_inputs(ctx: &NodeContext, work: &Path) -> Result<(), NodeError> {
    let mut staged: BTreeMap<String, PathBuf> = BTreeMap::new();
    for value in ctx.inputs().all("in") {
        let files = value.downcast_ref::<FilesValue>().ok_or_else(|| {
            NodeError::msg(format!(
                "node `{}`: input `in` holds {value:?}, not files",
                ctx.id()
            ))
            .kind_of(NodeErrorKind::InvalidInput)
        })?;
        for file in &files.files {
            let name = Path::new(&file.name)
                .file_name()
                .map_or_else(|| file.name.clone(), |n| n.to_string_lossy().into_owned());
            if let Some(first) = staged.get(&name) {
                return Err(NodeError::msg(format!(
                    "node `{}`: two inputs are named `{name}`: `{}` and `{}`",
                    ctx.id(),
                    first.display(),
                    file.path.display()
                ))
                .kind_of(NodeErrorKind::InvalidInput));
            }
            let link = work.join(&name);
            std::os::unix::fs::symlink(&file.path, &link)
                .map_err(|e| io_error(ctx, "link an input into", &link, e))?;
            staged.insert(name, file.path.clone());
        }
    }
    Ok(())
}

/// The declared outputs, each matched in `work`.
fn collect_outputs(
    ctx: &NodeContext,
    work: &Path,
    outputs: &[String],
) -> Result<FilesValue, NodeError> {
    let mut entries = Vec::new();
    for pattern in outputs {
        let full = work.join(pattern);
        let matches: Vec<PathBuf> = glob::glob(&full.to_string_lossy())
            .map_err(|e| {
                NodeError::with_source(format!("node `{}`: output `{pattern}`", ctx.id()), e)
            })?
            .filter_map(Result::ok)
            .collect();
        if matches.is_empty() {
            return Err(NodeError::msg(format!(
                "node `{}`: the command did not write its declared output `{pattern}` (in `{}`)",
                ctx.id(),
                work.display()
            ))
            .kind_of(NodeErrorKind::InvalidInput));
        }
        for path in matches {
            let name = path
                .strip_prefix(work)
                .map_or_else(|_| path.to_string_lossy(), |p| p.to_string_lossy())
                .into_owned();
            entries.push((name, path));
        }
    }
    FilesValue::read(entries).map_err(|e| NodeError::msg(format!("node `{}`: {e}", ctx.id())))
}

/// Send `signal` to the process group `pgid`.
fn signal_group(pgid: u32, signal: i32) {
    // 0 would signal our own process group.
    if let Ok(pgid) = libc::pid_t::try_from(pgid)
        && pgid > 0
    {
        // SAFETY: kill with a negative pid signals that process group; no memory effects.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

impl NodeExecutor for Shell {
    async fn execute(&self, ctx: NodeContext) -> Result<Outputs, NodeError> {
        let config: ShellConfig = ctx.config_as()?;
        let attempt = ctx.attempt().to_string();
        let work = self
            .settings
            .run_dir
            .join("work")
            .join(ctx.id())
            .join(&attempt);
        let logs = self
            .settings
            .run_dir
            .join("jobs")
            .join(ctx.id())
            .join(&attempt);
        // An attempt's folders are its own: a resumed run that runs the attempt again
        // starts from empty ones.
        if work.exists() {
            std::fs::remove_dir_all(&work).map_err(|e| io_error(&ctx, "clear", &work, e))?;
        }
        for dir in [&work, &logs] {
            std::fs::create_dir_all(dir).map_err(|e| io_error(&ctx, "create", dir, e))?;
        }
        stage_inputs(&ctx, &work)?;
        let (stdout_log, stderr_log) = (logs.join("stdout.log"), logs.join("stderr.log"));
        let stdout = std::fs::File::create(&stdout_log)
            .map_err(|e| io_error(&ctx, "create", &stdout_log, e))?;
        let stderr = std::fs::File::create(&stderr_log)
            .map_err(|e| io_error(&ctx, "create", &stderr_log, e))?;

        let mut command = match &config.command {
            ShellCommand::Line(line) => {
                let mut c = tokio::process::Command::new("sh");
                c.arg("-c").arg(line);
                c
            }
            ShellCommand::Argv(argv) => {
                let mut c = tokio::process::Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        command
            .current_dir(&work)
            .envs(&config.env)
            .env("MEDFUSION_NODE", ctx.id())
            .env("MEDFUSION_ATTEMPT", &attempt)
            .env("MEDFUSION_WORK_DIR", &work)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            NodeError::with_source(
                format!("node `{}`: cannot start `{}`", ctx.id(), config.command),
                e,
            )
        })?;
        let pgid = child.id().unwrap_or_default();
        ctx.progress(Some(0.0), format!("running `{}`", config.command));
        let status = tokio::select! {
            status = child.wait() => status.map_err(|e| {
                NodeError::with_source(format!("node `{}`: waiting for the command", ctx.id()), e)
            })?,
            () = ctx.cancelled() => {
                // Stop the command and everything it started: SIGTERM to the group, and
                // SIGKILL to what is left of it after the grace period or once the command
                // itself has exited (a child that ignores SIGTERM must not outlive it).
                signal_group(pgid, libc::SIGTERM);
                let exited = tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok();
                signal_group(pgid, libc::SIGKILL);
                if !exited {
                    let _ = child.wait().await;
                }
                return Err(NodeError::cancelled());
            }
        };
        if !status.success() {
            let how = match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(code), _) => format!("exited with status {code}"),
                (None, Some(signal)) => format!("was killed by signal {signal}"),
                (None, None) => "failed".to_string(),
            };
            return Err(NodeError::with_source(
                format!(
                    "node `{}`: the command `{}` {how}",
                    ctx.id(),
                    config.command
                ),
                StderrTail {
                    lines: tail(&stderr_log, STDERR_TAIL_LINES),
                    log: stderr_log,
                },
            ));
        }
        let outputs = config.outputs.clone();
        let inner = ctx.clone();
        let files = ctx
            .run_blocking(move || collect_outputs(&inner, &work, &outputs))
            .await?;
        ctx.progress(Some(1.0), format!("wrote {} output(s)", files.files.len()));
        Ok(Outputs::new().with("out", files))
    }
}
