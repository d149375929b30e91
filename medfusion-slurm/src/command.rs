//! Slurm's commands (`sbatch`, `squeue`, `scancel`), run with a time limit each, their
//! output read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::error::Error;
use crate::queue::JobState;

/// The longest a Slurm command may take (a busy controller answers slowly).
const COMMAND_TIMEOUT: Duration = Duration::from_mins(1);

/// Runs Slurm's commands (from `bin`, or the `PATH`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Slurm {
    pub(crate) bin: Option<PathBuf>,
}

impl Slurm {
    fn program(&self, name: &str) -> PathBuf {
        self.bin
            .as_ref()
            .map_or_else(|| PathBuf::from(name), |b| b.join(name))
    }

    /// Run `name args`, returning its stdout; a non-zero exit is an error with its stderr.
    pub(crate) async fn run(&self, name: &str, args: &[String]) -> Result<String, Error> {
        let program = self.program(name);
        let mut command = tokio::process::Command::new(&program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().map_err(|source| Error::Spawn {
            command: name.to_string(),
            source,
        })?;
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| Error::Command {
                command: format!("{name} {}", args.join(" ")),
                reason: format!(
                    "gave no answer within {}",
                    humantime::format_duration(COMMAND_TIMEOUT)
                ),
            })?
            .map_err(|source| Error::Spawn {
                command: name.to_string(),
                source,
            })?;
        if !output.status.success() {
            return Err(Error::Command {
                command: format!("{name} {}", args.join(" ")),
                reason: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Submit `script` with `args` (`sbatch --parsable`); the job id.
    pub(crate) async fn submit(&self, args: &[String], script: &Path) -> Result<String, Error> {
        let mut all = vec!["--parsable".to_string()];
        all.extend(args.iter().cloned());
        all.push(script.display().to_string());
        let out = self.run("sbatch", &all).await?;
        // `--parsable` prints `<id>` or `<id>;<cluster>`.
        let id = out.trim().split(';').next().unwrap_or_default().to_string();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return Err(Error::Command {
                command: "sbatch".into(),
                reason: format!("printed `{}` instead of a job id", out.trim()),
            });
        }
        Ok(id)
    }

    /// The states of `ids` that the controller still knows, in one `squeue` call.
    pub(crate) async fn states(&self, ids: &[String]) -> Result<HashMap<String, JobState>, Error> {
        let args = vec![
            "--noheader".to_string(),
            "--states=all".to_string(),
            format!("--jobs={}", ids.join(",")),
            "--format=%i|%T|%r".to_string(),
        ];
        let out = match self.run("squeue", &args).await {
            Ok(out) => out,
            // Asked only for jobs it has forgotten, squeue fails instead of listing nothing.
            Err(Error::Command { reason, .. }) if reason.contains("Invalid job id") => {
                String::new()
            }
            Err(e) => return Err(e),
        };
        Ok(out
            .lines()
            .filter_map(|line| {
                let mut parts = line.trim().split('|');
                let id = parts.next()?.trim();
                let state = parts.next()?.trim();
                let reason = parts.next().unwrap_or("").trim();
                (!id.is_empty()).then(|| (id.to_string(), JobState::parse(state, reason)))
            })
            .collect())
    }

    /// Cancel job `id`.
    pub(crate) async fn cancel(&self, id: &str) -> Result<(), Error> {
        self.run("scancel", &[id.to_string()]).await.map(|_| ())
    }
}
