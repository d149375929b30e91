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
use crate::inspect::{CheckpointReport, ResumeReport, SkippedCheckpoint};
use crate::lock::WorkflowLock;
use crate::objects::VerifiedObjects;
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
    /// Stored objects already checked, shared by every save of the manager.
    pub(crate) objects: Arc<VerifiedObjects>,
}

/// Saves, lists, verifies, loads and rotates the checkpoints in one directory.
///
/// Saves and prunes take an exclusive lock on `<dir>/.lock`, so several managers (in
/// one process or several) can share a directory. Reading needs no lock: a checkpoint
/// appears whole, by one rename, and disappears whole. Two runs of one workflow should
/// not share a directory; [`lock_workflow`](Self::lock_workflow) lets a run make sure.
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
            objects: Arc::default(),
        };
        CheckpointManager {
            config: Arc::new(config),
            writer: Mutex::new(None),
        }
    }

    /// Keep the newest `n` valid checkpoints of each workflow (default 5); 0 counts as
    /// 1, since the only valid checkpoint is never removed.
    ///
    /// [Provisional](Checkpoint::provisional) checkpoints do not count. Rotation also
    /// keeps the provisional checkpoints newer than every other, the
    /// [best](Self::keep_best) one, and for each [progress mark](Checkpoint::with_progress)
    /// the newest checkpoint holding the mark's highest value.
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
    /// the checkpoints the rotation policy no longer keeps (a
    /// [provisional](Checkpoint::provisional) save removes none).
    ///
    /// Unchanged tensor files are hard linked from the store in `.objects/` once the
    /// stored file is checked to match its checksum (a check remembered by this manager
    /// while the file is unchanged); a damaged one is written again, never linked.
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
    /// the error names the first file that differs. [`verify_report`](Self::verify_report)
    /// lists every file that differs.
    pub fn verify(&self, id: &str) -> Result<CheckpointInfo> {
        let info = self.info(id)?;
        check_models_dir(&info)?;
        for file in &info.files {
            check_file(&info, file)?;
        }
        Ok(info)
    }

    /// Check every file of checkpoint `id` against its manifest and report all that
    /// differ, each with the other checkpoints that link the same (damaged) file; a
    /// checkpoint without a valid manifest is a report too, not an error.
    ///
    /// Errors: `id` is not a path-safe id, no entry `id` exists ([`Error::NotFound`]),
    /// the checkpoint directory does not exist ([`Error::NoCheckpointDir`]), or `id` is
    /// not named like a checkpoint and has no valid manifest.
    pub fn verify_report(&self, id: &str) -> Result<CheckpointReport> {
        validate_id("checkpoint id", id)?;
        let dir = &self.config.dir;
        let target = crate::inspect::candidate(dir, id)?;
        let all = crate::inspect::candidates(dir)?;
        Ok(crate::inspect::inspect_one(&target, &all))
    }

    /// Every entry of the checkpoint directory named like a checkpoint of
    /// `workflow_id` (`<workflow_id>_<YYYYMMDD_HHMMSS>[_<n>]`), whether or not its
    /// manifest is valid, each with every file verified: what [`list`](Self::list)
    /// shows plus what it hides. Oldest first by name.
    ///
    /// This reads every file of every checkpoint. A checkpoint directory that does not
    /// exist is [`Error::NoCheckpointDir`].
    pub fn inspect(&self, workflow_id: &str) -> Result<Vec<CheckpointReport>> {
        validate_id("workflow id", workflow_id)?;
        let all = crate::inspect::candidates(&self.config.dir)?;
        Ok(crate::inspect::inspect(&all, |w| w == workflow_id))
    }

    /// [`inspect`](Self::inspect) for every workflow: by workflow, then oldest first.
    pub fn inspect_all(&self) -> Result<Vec<CheckpointReport>> {
        let all = crate::inspect::candidates(&self.config.dir)?;
        Ok(crate::inspect::inspect(&all, |_| true))
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
        checkpoint.provisional = info.provisional;
        checkpoint.progress.clone_from(&info.progress);
        Ok(LoadedCheckpoint { info, checkpoint })
    }

    /// The newest checkpoint of `workflow_id` whose files all verify, skipping damaged
    /// ones; `None` when there is none. Provisional checkpoints count like any other.
    pub fn latest_valid(&self, workflow_id: &str) -> Result<Option<CheckpointInfo>> {
        for info in self.list(workflow_id)?.into_iter().rev() {
            if let Ok(verified) = self.verify(&info.id) {
                return Ok(Some(verified));
            }
        }
        Ok(None)
    }

    /// Load the newest checkpoint of `workflow_id` that verifies, to resume the run
    /// (provisional checkpoints count like any other).
    /// [`resume_workflow_report`](Self::resume_workflow_report) also says what it
    /// passed over.
    pub fn resume_workflow(&self, workflow_id: &str) -> Result<Option<LoadedCheckpoint>> {
        for info in self.list(workflow_id)?.into_iter().rev() {
            if let Ok(loaded) = self.load(&info.id) {
                return Ok(Some(loaded));
            }
        }
        Ok(None)
    }

    /// [`resume_workflow`](Self::resume_workflow), and the newer checkpoints it passed
    /// over, newest first, each with why: a damaged file (named), or a folder named like
    /// a newer checkpoint of the workflow without a valid manifest.
    pub fn resume_workflow_report(&self, workflow_id: &str) -> Result<ResumeReport> {
        let listed = self.list(workflow_id)?;
        let mut skipped = Vec::new();
        let mut loaded = None;
        for info in listed.iter().rev() {
            match self.load(&info.id) {
                Ok(found) => {
                    loaded = Some(found);
                    break;
                }
                Err(reason) => skipped.push((info.id.clone(), info.path.clone(), reason)),
            }
        }
        let candidates = match crate::inspect::candidates(&self.config.dir) {
            Ok(all) => all,
            Err(Error::NoCheckpointDir { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let order_of = |id: &str| crate::inspect::parse_name(id).map(|(_, order)| order);
        let loaded_order = loaded.as_ref().and_then(|l| order_of(&l.info.id));
        for candidate in candidates {
            let newer = loaded.is_none() || Some(&candidate.order) > loaded_order.as_ref();
            if candidate.workflow_id != workflow_id
                || !newer
                || listed.iter().any(|info| info.id == candidate.id)
            {
                continue;
            }
            // Not listed: its manifest is not valid (or names another workflow).
            if let Err(reason) = crate::inspect::read_manifest(&candidate) {
                skipped.push((candidate.id, candidate.path, reason));
            }
        }
        skipped.sort_by_cached_key(|(id, ..)| std::cmp::Reverse(order_of(id)));
        let skipped = skipped
            .into_iter()
            .map(|(id, path, reason)| SkippedCheckpoint { id, path, reason })
            .collect();
        Ok(ResumeReport { loaded, skipped })
    }

    /// Take the run lock of `workflow_id` in this checkpoint directory, or fail at once
    /// with [`Error::WorkflowLocked`] (naming the lock file and the process holding it)
    /// if another run holds it.
    ///
    /// The lock is `flock(LOCK_EX | LOCK_NB)` on `<dir>/.locks/<workflow_id>.lock`
    /// (created as needed, never through a symbolic link); the holder writes its process
    /// id and start time into the file. It is released when the [`WorkflowLock`] is
    /// dropped, or when the process ends in any way (even killed). Each call opens the
    /// file anew, so a second call conflicts with the first within one process too.
    /// Saving does not require the lock: a run takes it to keep a second run of the same
    /// workflow out of its checkpoints.
    pub fn lock_workflow(&self, workflow_id: &str) -> Result<WorkflowLock> {
        validate_id("workflow id", workflow_id)?;
        WorkflowLock::acquire(&self.config.dir, workflow_id)
    }

    /// Apply the rotation policy to `workflow_id` now (see
    /// [`max_checkpoints`](Self::max_checkpoints)), and remove leftovers of interrupted
    /// saves and tensor files no checkpoint uses.
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

/// Check one file of a checkpoint against its manifest entry.
pub(crate) fn check_file(info: &CheckpointInfo, file: &FileInfo) -> Result<()> {
    let path = info.path.join(&file.path);
    let actual = hex(hash_file(&path, file.size)?);
    if actual != file.checksum {
        let problem = Corruption::Checksum {
            expected: file.checksum.clone(),
            actual,
        };
        return Err(Error::Corrupt { path, problem });
    }
    Ok(())
}

/// `models/` must be a real directory: opening files through a link could leave the
/// checkpoint directory.
pub(crate) fn check_models_dir(info: &CheckpointInfo) -> Result<()> {
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
