//! Which `medfusion run`s are going on, for `medfusion checkpoint --now`: each run writes
//! `<checkpoint dir>/.running/<run id>.json` (its pid, workflow and run id) while it runs and
//! removes it at the end. A file left behind by a killed run is recognised by its dead pid.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The folder of the registry inside a checkpoint directory (checkpoint listings skip
/// names starting with a dot).
const FOLDER: &str = ".running";

/// One running `medfusion run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LiveRun {
    /// Its process id.
    pub(crate) pid: u32,
    /// The workflow's name (its checkpoints are `<workflow>_<time>`).
    pub(crate) workflow: String,
    /// The run id.
    pub(crate) run_id: String,
}

/// The registration of this process's run; dropping it removes the file.
#[derive(Debug)]
pub(crate) struct Registration {
    path: PathBuf,
}

impl Registration {
    /// Registers `run` in `checkpoint_dir`.
    pub(crate) fn new(checkpoint_dir: &Path, run: &LiveRun) -> io::Result<Self> {
        let folder = checkpoint_dir.join(FOLDER);
        fs::create_dir_all(&folder)?;
        let path = folder.join(format!("{}.json", run.run_id));
        let text = serde_json::to_vec(run).map_err(io::Error::other)?;
        // Written whole under a temporary name, then renamed: a reader never sees half.
        let tmp = folder.join(format!(".{}.{}.tmp", run.run_id, run.pid));
        fs::write(&tmp, text)?;
        fs::rename(&tmp, &path)?;
        Ok(Self { path })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The runs registered in `checkpoint_dir` whose process is alive, of `workflow` when given.
/// Files of dead processes are removed on the way.
pub(crate) fn find(checkpoint_dir: &Path, workflow: Option<&str>) -> io::Result<Vec<LiveRun>> {
    let folder = checkpoint_dir.join(FOLDER);
    let entries = match fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut runs = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Some(run) = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<LiveRun>(&b).ok())
        else {
            continue;
        };
        if !alive(run.pid) {
            let _ = fs::remove_file(&path);
            continue;
        }
        if workflow.is_none_or(|w| w == run.workflow) {
            runs.push(run);
        }
    }
    runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    Ok(runs)
}

/// Whether process `pid` exists.
#[cfg(unix)]
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 sends nothing; it only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn alive(_pid: u32) -> bool {
    true
}

/// Sends `run` the request to save a checkpoint (SIGUSR1).
#[cfg(unix)]
pub(crate) fn request_checkpoint(run: &LiveRun) -> io::Result<()> {
    let pid = libc::pid_t::try_from(run.pid).map_err(io::Error::other)?;
    // SAFETY: kill with a valid signal number has no memory effects.
    if unsafe { libc::kill(pid, libc::SIGUSR1) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
pub(crate) fn request_checkpoint(_run: &LiveRun) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "asking a running process for a checkpoint needs Unix signals",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_run_is_found_until_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let run = LiveRun {
            pid: std::process::id(),
            workflow: "demo".into(),
            run_id: "demo-20261126-080000".into(),
        };
        let registration = Registration::new(dir.path(), &run).unwrap();
        assert_eq!(find(dir.path(), None).unwrap(), std::slice::from_ref(&run));
        assert_eq!(find(dir.path(), Some("demo")).unwrap(), [run]);
        assert!(find(dir.path(), Some("other")).unwrap().is_empty());
        drop(registration);
        assert!(find(dir.path(), None).unwrap().is_empty());
    }

    #[test]
    fn a_dead_runs_file_is_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        // A child that has exited and been reaped: its pid names no process.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let run = LiveRun {
            pid,
            workflow: "demo".into(),
            run_id: "demo-x".into(),
        };
        std::mem::forget(Registration::new(dir.path(), &run).unwrap());
        assert!(find(dir.path(), None).unwrap().is_empty());
        assert!(!dir.path().join(FOLDER).join("demo-x.json").exists());
    }

    #[test]
    fn no_registry_means_no_runs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(find(&dir.path().join("missing"), None).unwrap().is_empty());
    }
}
