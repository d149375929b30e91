//! Which `medfusion run`s are going on, for `medfusion checkpoint --now`: each run writes
//! `<checkpoint dir>/.running/<run id>.json` (its pid, workflow and run id) and holds an
//! exclusive `flock` on it while it runs. A run is alive exactly while its lock is held: the
//! kernel drops the lock when the process ends, however it ends (kill -9 included), so a
//! file left behind is recognised as stale even if its pid now belongs to another process.
//! A run is signalled through a pidfd opened before its lock is checked, so a pid reused
//! after the check is never signalled.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
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

/// The registration of this process's run: the file, locked while this lives; dropping it
/// removes the file.
#[derive(Debug)]
pub(crate) struct Registration {
    path: PathBuf,
    _file: File,
}

/// Try to take `file`'s lock without waiting; `Ok(false)` when another holds it.
fn try_lock(file: &File, exclusive: bool) -> io::Result<bool> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    } | libc::LOCK_NB;
    loop {
        // SAFETY: flock on a descriptor that `file` keeps open.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(err),
        }
    }
}

fn open(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

impl Registration {
    /// Registers `run` in `checkpoint_dir` and holds the registration's lock.
    pub(crate) fn new(checkpoint_dir: &Path, run: &LiveRun) -> io::Result<Self> {
        let folder = checkpoint_dir.join(FOLDER);
        fs::create_dir_all(&folder)?;
        let path = folder.join(format!("{}.json", run.run_id));
        let text = serde_json::to_vec(run).map_err(io::Error::other)?;
        // Written whole and locked under a temporary name, then renamed: a reader never
        // sees half a file, nor a file whose lock is not yet held.
        let tmp = folder.join(format!(".{}.{}.tmp", run.run_id, run.pid));
        let _ = fs::remove_file(&tmp);
        let mut file = open(&tmp, true)?;
        if !try_lock(&file, true)? {
            return Err(io::Error::other(format!(
                "`{}` is locked by another process",
                tmp.display()
            )));
        }
        io::Write::write_all(&mut file, &text)?;
        fs::rename(&tmp, &path)?;
        Ok(Self { path, _file: file })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The runs registered in `checkpoint_dir` that are alive (their lock is held), of
/// `workflow` when given. Stale files (no lock held: their run ended) are removed.
pub(crate) fn find(checkpoint_dir: &Path, workflow: Option<&str>) -> io::Result<Vec<LiveRun>> {
    Ok(find_with_files(checkpoint_dir, workflow)?
        .into_iter()
        .map(|(run, _)| run)
        .collect())
}

fn find_with_files(
    checkpoint_dir: &Path,
    workflow: Option<&str>,
) -> io::Result<Vec<(LiveRun, PathBuf)>> {
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
        let Some((run, alive)) = read(&path) else {
            continue;
        };
        if !alive {
            let _ = fs::remove_file(&path);
            continue;
        }
        if workflow.is_none_or(|w| w == run.workflow) {
            runs.push((run, path));
        }
    }
    runs.sort_by(|a, b| a.0.run_id.cmp(&b.0.run_id));
    Ok(runs)
}

/// The registered run in `path` and whether it is alive (its lock is held).
fn read(path: &Path) -> Option<(LiveRun, bool)> {
    let file = open(path, false).ok()?;
    let run: LiveRun = serde_json::from_reader(io::Read::take(&file, 64 * 1024)).ok()?;
    // A shared lock we can take means no run holds the exclusive one.
    let alive = !try_lock(&file, false).ok()?;
    Some((run, alive))
}

/// Sends `run` the request to save a checkpoint (SIGUSR1), only if it is still the live
/// holder of its registration: the signal goes through a pidfd opened before the check.
pub(crate) fn request_checkpoint(checkpoint_dir: &Path, run: &LiveRun) -> io::Result<()> {
    let gone = || {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("run {} (pid {}) has ended", run.run_id, run.pid),
        )
    };
    let pid = libc::pid_t::try_from(run.pid).map_err(io::Error::other)?;
    let pidfd = Pidfd::open(pid)?;
    let still_alive = find_with_files(checkpoint_dir, Some(&run.workflow))?
        .iter()
        .any(|(r, _)| r == run);
    if !still_alive {
        return Err(gone());
    }
    pidfd.signal(libc::SIGUSR1).map_err(|e| {
        if e.raw_os_error() == Some(libc::ESRCH) {
            gone()
        } else {
            e
        }
    })
}

/// A process handle that keeps naming the same process even if its pid is reused.
struct Pidfd(std::os::fd::OwnedFd);

impl Pidfd {
    fn open(pid: libc::pid_t) -> io::Result<Pidfd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(io::Error::other)?;
        // SAFETY: the descriptor was just returned by the kernel and is owned by no one else.
        Ok(Pidfd(unsafe {
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
        }))
    }

    fn signal(&self, signal: i32) -> io::Result<()> {
        // SAFETY: pidfd_send_signal with a valid descriptor, a signal number and no info.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
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
        // What kill -9 leaves: the file, with no process holding its lock.
        let folder = dir.path().join(FOLDER);
        fs::create_dir_all(&folder).unwrap();
        fs::write(
            folder.join("demo-x.json"),
            serde_json::to_vec(&run).unwrap(),
        )
        .unwrap();
        assert!(find(dir.path(), None).unwrap().is_empty());
        assert!(!dir.path().join(FOLDER).join("demo-x.json").exists());
    }

    #[test]
    fn a_stale_file_naming_a_live_pid_is_not_a_run() {
        // kill -9 left the file; its pid now belongs to an unrelated process (here: this
        // test, which holds no lock on the file). It must never be signalled.
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(FOLDER);
        fs::create_dir_all(&folder).unwrap();
        let stranger = LiveRun {
            pid: std::process::id(),
            workflow: "demo".into(),
            run_id: "demo-stale".into(),
        };
        fs::write(
            folder.join("demo-stale.json"),
            serde_json::to_vec(&stranger).unwrap(),
        )
        .unwrap();
        assert!(find(dir.path(), None).unwrap().is_empty());
        assert!(!folder.join("demo-stale.json").exists());
        let err = request_checkpoint(dir.path(), &stranger).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }

    #[test]
    fn no_registry_means_no_runs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(find(&dir.path().join("missing"), None).unwrap().is_empty());
    }
}
