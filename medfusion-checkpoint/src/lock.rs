//! The run lock of a workflow: one run at a time per workflow and checkpoint directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::Stamp;

/// The directory of the lock files, inside the checkpoint directory.
pub(crate) const LOCKS_DIR: &str = ".locks";
/// The most of a lock file read back (it holds one short JSON object).
const MAX_HOLDER_BYTES: u64 = 4096;

/// What the holder writes into its lock file.
#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    started: String,
}

/// The run lock of one workflow, held until dropped (or until the process ends, however
/// it ends): see [`CheckpointManager::lock_workflow`](crate::CheckpointManager::lock_workflow).
#[derive(Debug)]
#[must_use = "the lock is released when this is dropped"]
pub struct WorkflowLock {
    file: File,
    path: PathBuf,
    workflow_id: String,
}

impl WorkflowLock {
    /// The lock file, `<dir>/.locks/<workflow_id>.lock`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The workflow it locks.
    pub fn workflow_id(&self) -> &str {
        &self.workflow_id
    }

    /// Take the lock of `workflow_id` (already validated) in `dir`, or fail at once.
    pub(crate) fn acquire(dir: &Path, workflow_id: &str) -> Result<WorkflowLock> {
        let locks = dir.join(LOCKS_DIR);
        create_dirs(dir, &locks)?;
        let path = locks.join(format!("{workflow_id}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    Error::Symlink { path: path.clone() }
                } else {
                    Error::io("open lock file", &path, e)
                }
            })?;
        loop {
            // SAFETY: flock takes a file descriptor that `file` keeps open.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EWOULDBLOCK) => {
                    let holder = read_holder(&file);
                    return Err(Error::WorkflowLocked {
                        workflow_id: workflow_id.to_string(),
                        path,
                        pid: holder.as_ref().map(|h| h.pid),
                        since: holder.map(|h| h.started),
                    });
                }
                _ => return Err(Error::io("lock", &path, err)),
            }
        }
        let holder = Holder {
            pid: std::process::id(),
            started: Stamp::now().rfc3339(),
        };
        let mut text = serde_json::to_vec(&holder).expect("a holder is plain JSON");
        text.push(b'\n');
        file.set_len(0)
            .and_then(|()| file.write_all_at(&text, 0))
            .map_err(Error::io_at("write", &path))?;
        Ok(WorkflowLock {
            file,
            path,
            workflow_id: workflow_id.to_string(),
        })
    }
}

impl Drop for WorkflowLock {
    fn drop(&mut self) {
        // Clear the holder before closing the file releases the lock, so that no one
        // reads a process that holds nothing. The file itself stays: removing it could
        // let two processes lock two different files of the same name.
        let _ = self.file.set_len(0);
    }
}

/// Create the checkpoint directory if needed and `.locks` inside it, never through a
/// symbolic link.
fn create_dirs(dir: &Path, locks: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(Error::io_at("create directory", dir))?;
    match fs::create_dir(locks) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("create directory", locks, e)),
    }
    let meta = fs::symlink_metadata(locks).map_err(Error::io_at("inspect", locks))?;
    if meta.file_type().is_symlink() {
        return Err(Error::Symlink {
            path: locks.to_path_buf(),
        });
    }
    if !meta.is_dir() {
        let err = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
        return Err(Error::io("create directory", locks, err));
    }
    Ok(())
}

/// Who holds the lock, as the holder wrote it; `None` when the file does not say.
fn read_holder(file: &File) -> Option<Holder> {
    let mut text = Vec::new();
    // Just opened: the offset is the start.
    file.take(MAX_HOLDER_BYTES).read_to_end(&mut text).ok()?;
    serde_json::from_slice(&text).ok()
}
