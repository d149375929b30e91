//! The checkpoint manager: configuration, listing, loading and verification.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::checkpoint::{
    Checkpoint, CheckpointInfo, FileInfo, FileKind, LoadedCheckpoint, NodeState, PruneReport,
    SaveReport,
};
use crate::error::{Corruption, Error, Result};
use crate::fs::{DirLock, hash_file, hex, read_file};
use crate::ids::validate_id;
use crate::tensor_set::decode;
use crate::writer::{SaveHandle, Writer};

/// Lock file serialising saves and prunes, between threads and processes.
pub(crate) const LOCK_FILE: &str = ".lock";
/// Content-addressed tensor files, named by their xxh3-128.
pub(crate) const OBJECTS_DIR: &str = ".objects";
/// Prefix of a save in progress (or interrupted).
pub(crate) const TMP_PREFIX: &str = ".tmp-";
/// Prefix of a checkpoint being removed.
pub(crate) const TRASH_PREFIX: &str = ".trash-";

/// Which way a metric is better, for [`CheckpointManager::keep_best`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Lower is better (a loss).
    Minimize,
    /// Higher is better (an accuracy, an AUC).
    Maximize,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) dir: PathBuf,
    pub(crate) max_checkpoints: usize,
    pub(crate) keep_best: Option<(String, Goal)>,
    pub(crate) queue_capacity: usize,
}

/// Saves, lists, verifies, loads and rotates the checkpoints in one directory.
///
/// Saves and prunes take an exclusive lock on `<dir>/.lock`, so several managers (in
/// one process or several) can share a directory. Reading needs no lock: a checkpoint
/// appears whole, by one rename, and disappears whole.
#[derive(Debug)]
pub struct CheckpointManager {
    config: Arc<Config>,
    writer: Mutex<Option<Writer>>,
}

impl CheckpointManager {
    /// A manager for the checkpoints in `dir` (created by the first save), keeping 5
    /// checkpoints per workflow.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let config = Config {
            dir: dir.into(),
            max_checkpoints: 5,
            keep_best: None,
            queue_capacity: 1,
        };
        CheckpointManager {
            config: Arc::new(config),
            writer: Mutex::new(None),
        }
    }

    /// Keep the newest `n` valid checkpoints of each workflow (default 5); 0 counts as
    /// 1, since the only valid checkpoint is never removed.
    pub fn max_checkpoints(mut self, n: usize) -> Self {
        Arc::make_mut(&mut self.config).max_checkpoints = n.max(1);
        self
    }

    /// Also keep the checkpoint with the best value of `metric`, however old.
    pub fn keep_best(mut self, metric: impl Into<String>, goal: Goal) -> Self {
        Arc::make_mut(&mut self.config).keep_best = Some((metric.into(), goal));
        self
    }

    /// How many checkpoints [`save_async`](Self::save_async) may queue behind the one
    /// being written before it blocks (default 1; 0 counts as 1). Bounds the memory held.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        Arc::make_mut(&mut self.config).queue_capacity = n.max(1);
        self
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Save `checkpoint` durably as the newest checkpoint of `workflow_id`, then remove
    /// the checkpoints the rotation policy no longer keeps.
    pub fn save(&self, workflow_id: &str, checkpoint: &Checkpoint) -> Result<SaveReport> {
        crate::save::save(&self.config, workflow_id, checkpoint)
    }

    /// Hand `checkpoint` to the background writer and return at once (or, when the
    /// queue is full, as soon as there is room). Wait on the handle for the outcome;
    /// failures of saves whose handle was dropped are returned by [`flush`](Self::flush).
    pub fn save_async(&self, workflow_id: &str, checkpoint: Checkpoint) -> Result<SaveHandle> {
        validate_id("workflow id", workflow_id)?;
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let writer = match writer.as_mut() {
            Some(w) => w,
            None => writer.insert(Writer::start(self.config.queue_capacity, &self.config.dir)?),
        };
        writer.submit(
            Arc::clone(&self.config),
            workflow_id.to_string(),
            checkpoint,
        )
    }

    /// Wait until every queued background save is done; fails with
    /// [`Error::Background`] if any whose handle was dropped failed.
    pub fn flush(&self) -> Result<()> {
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        writer.as_ref().map_or(Ok(()), Writer::flush)
    }

    /// The checkpoints of `workflow_id` with a valid manifest, oldest first.
    pub fn list(&self, workflow_id: &str) -> Result<Vec<CheckpointInfo>> {
        validate_id("workflow id", workflow_id)?;
        scan(&self.config.dir, Some(workflow_id))
    }

    /// Every checkpoint with a valid manifest, by workflow, then oldest first.
    pub fn list_all(&self) -> Result<Vec<CheckpointInfo>> {
        scan(&self.config.dir, None)
    }

    /// The manifest of checkpoint `id`, without verifying its files.
    pub fn info(&self, id: &str) -> Result<CheckpointInfo> {
        let path = self.checkpoint_path(id)?;
        crate::manifest::read(&path, id)
    }

    /// Check every file of checkpoint `id` against its manifest (size and xxh3-128);
    /// the error names the first file that differs.
    pub fn verify(&self, id: &str) -> Result<CheckpointInfo> {
        let info = self.info(id)?;
        check_models_dir(&info)?;
        for file in &info.files {
            let path = info.path.join(&file.path);
            let actual = hex(hash_file(&path, file.size)?);
            if actual != file.checksum {
                let problem = Corruption::Checksum {
                    expected: file.checksum.clone(),
                    actual,
                };
                return Err(Error::Corrupt { path, problem });
            }
        }
        Ok(info)
    }

    /// Read checkpoint `id` into memory, verifying every file on the way.
    pub fn load(&self, id: &str) -> Result<LoadedCheckpoint> {
        let info = self.info(id)?;
        check_models_dir(&info)?;
        let mut checkpoint = Checkpoint::default();
        for file in &info.files {
            let path = info.path.join(&file.path);
            let (bytes, hash) = read_file(&path, true, Some(file.size))?;
            let actual = hex(hash.expect("asked for the hash"));
            if actual != file.checksum {
                let problem = Corruption::Checksum {
                    expected: file.checksum.clone(),
                    actual,
                };
                return Err(Error::Corrupt { path, problem });
            }
            let json = || {
                serde_json::from_slice(&bytes).map_err(|source| Error::Json {
                    path: path.clone(),
                    source,
                })
            };
            match file.kind {
                FileKind::Workflow => checkpoint.workflow = json()?,
                FileKind::State => checkpoint.state = json()?,
                FileKind::History => node_mut(&mut checkpoint, file).history = Some(json()?),
                FileKind::NodeState => node_mut(&mut checkpoint, file).state = Some(json()?),
                FileKind::Model => {
                    node_mut(&mut checkpoint, file).model = Some(decode(&bytes, &path)?);
                }
                FileKind::Optimizer => {
                    node_mut(&mut checkpoint, file).optimizer = Some(decode(&bytes, &path)?);
                }
            }
        }
        checkpoint.metrics.clone_from(&info.metrics);
        Ok(LoadedCheckpoint { info, checkpoint })
    }

    /// The newest checkpoint of `workflow_id` whose files all verify, skipping damaged
    /// ones; `None` when there is none.
    pub fn latest_valid(&self, workflow_id: &str) -> Result<Option<CheckpointInfo>> {
        for info in self.list(workflow_id)?.into_iter().rev() {
            if let Ok(verified) = self.verify(&info.id) {
                return Ok(Some(verified));
            }
        }
        Ok(None)
    }

    /// Load the newest checkpoint of `workflow_id` that verifies, to resume the run.
    pub fn resume_workflow(&self, workflow_id: &str) -> Result<Option<LoadedCheckpoint>> {
        for info in self.list(workflow_id)?.into_iter().rev() {
            if let Ok(loaded) = self.load(&info.id) {
                return Ok(Some(loaded));
            }
        }
        Ok(None)
    }

    /// Apply the rotation policy to `workflow_id` now, and remove leftovers of
    /// interrupted saves and tensor files no checkpoint uses.
    pub fn prune(&self, workflow_id: &str) -> Result<PruneReport> {
        validate_id("workflow id", workflow_id)?;
        let dir = &self.config.dir;
        if !dir.exists() {
            return Ok(PruneReport::default());
        }
        let _lock = DirLock::acquire(&dir.join(LOCK_FILE))?;
        crate::prune::prune_locked(&self.config, workflow_id)
    }

    /// The directory of checkpoint `id`, refusing unsafe ids and symbolic links.
    fn checkpoint_path(&self, id: &str) -> Result<PathBuf> {
        validate_id("checkpoint id", id)?;
        let path = self.config.dir.join(id);
        let not_found = || Error::NotFound {
            id: id.to_string(),
            dir: self.config.dir.clone(),
        };
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => Err(Error::Symlink { path }),
            Ok(meta) if meta.is_dir() => Ok(path),
            Ok(_) => Err(not_found()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_found()),
            Err(e) => Err(Error::io("inspect", &path, e)),
        }
    }
}

impl Drop for CheckpointManager {
    fn drop(&mut self) {
        // Finish the queued saves: their handles may still be waited on.
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(writer) = writer.take() {
            writer.shut_down();
        }
    }
}

fn node_mut<'a>(checkpoint: &'a mut Checkpoint, file: &FileInfo) -> &'a mut NodeState {
    checkpoint
        .nodes
        .entry(file.node.clone().unwrap_or_default())
        .or_default()
}

/// `models/` must be a real directory: opening files through a link could leave the
/// checkpoint directory.
fn check_models_dir(info: &CheckpointInfo) -> Result<()> {
    if !info.files.iter().any(|f| f.kind.is_per_node()) {
        return Ok(());
    }
    let models = info.path.join("models");
    match fs::symlink_metadata(&models) {
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::Symlink { path: models }),
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::Corrupt {
            path: models,
            problem: Corruption::NotAFile,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::Corrupt {
            path: models,
            problem: Corruption::Missing,
        }),
        Err(e) => Err(Error::io("inspect", &models, e)),
    }
}

/// The checkpoints in `dir` with a valid manifest (of `workflow_id`, when given),
/// sorted by workflow, then oldest first. Hidden entries (saves in progress, removals,
/// the object store) and symbolic links are never listed.
pub(crate) fn scan(dir: &Path, workflow_id: Option<&str>) -> Result<Vec<CheckpointInfo>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let prefix = workflow_id.map(|w| format!("{w}_"));
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io_at("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || prefix.as_deref().is_some_and(|p| !name.starts_with(p)) {
            continue;
        }
        if !entry.file_type().is_ok_and(|t| t.is_dir())
            || validate_id("checkpoint id", name).is_err()
        {
            continue;
        }
        let Ok(info) = crate::manifest::read(&entry.path(), name) else {
            continue;
        };
        if workflow_id.is_none_or(|w| w == info.workflow_id) {
            found.push(info);
        }
    }
    found.sort_by(|a, b| {
        (a.workflow_id.as_str(), a.sequence, &a.id).cmp(&(
            b.workflow_id.as_str(),
            b.sequence,
            &b.id,
        ))
    });
    Ok(found)
}
