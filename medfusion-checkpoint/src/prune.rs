//! Rotation, removal of interrupted saves, and collection of unused tensor files.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::checkpoint::{CheckpointInfo, PruneReport};
use crate::error::{Error, Result};
use crate::fs::sync_dir;
use crate::manager::{Config, Goal, OBJECTS_DIR, TMP_PREFIX, TRASH_PREFIX, scan};

/// Remove what interrupted saves and prunes left: `.tmp-*` and `.trash-*` directories
/// and half-written objects. Only called with the directory lock held, so none of them
/// belongs to a save in progress.
pub(crate) fn cleanup_leftovers(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for (parent, dirs_too) in [(dir.to_path_buf(), true), (dir.join(OBJECTS_DIR), false)] {
        let entries = match fs::read_dir(&parent) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("list", &parent, e)),
        };
        for entry in entries {
            let entry = entry.map_err(Error::io_at("list", &parent))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let leftover =
                name.starts_with(TMP_PREFIX) || (dirs_too && name.starts_with(TRASH_PREFIX));
            if !leftover {
                continue;
            }
            let path = entry.path();
            let is_dir = entry
                .file_type()
                .map_err(Error::io_at("inspect", &path))?
                .is_dir();
            let result = if is_dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            result.map_err(Error::io_at("remove leftover", &path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Apply the rotation policy to `workflow_id`; the caller holds the directory lock.
pub(crate) fn prune_locked(config: &Config, workflow_id: &str) -> Result<PruneReport> {
    let dir = config.dir.as_path();
    let leftovers_removed = cleanup_leftovers(dir)?;
    let all = scan(dir, Some(workflow_id))?;
    let keep_from = all.len().saturating_sub(config.max_checkpoints.max(1));
    let best = config
        .keep_best
        .as_ref()
        .and_then(|(metric, goal)| best(&all, metric, *goal));
    let (mut kept, mut doomed) = (Vec::new(), Vec::new());
    for (i, info) in all.into_iter().enumerate() {
        if i >= keep_from || Some(info.sequence) == best {
            kept.push(info.id);
        } else {
            doomed.push(info.id);
        }
    }
    // Renaming first makes each removal atomic: a checkpoint is either listed whole or
    // gone, even if the process dies half way through deleting it.
    for id in &doomed {
        let from = dir.join(id);
        let to = dir.join(format!("{TRASH_PREFIX}{id}"));
        fs::rename(&from, &to).map_err(Error::io_at("move aside", &from))?;
    }
    if !doomed.is_empty() {
        sync_dir(dir)?;
        cleanup_leftovers(dir)?;
    }
    let objects_removed = collect_objects(&dir.join(OBJECTS_DIR))?;
    Ok(PruneReport {
        kept,
        removed: doomed,
        objects_removed,
        leftovers_removed,
    })
}

/// The sequence number of the best checkpoint by `metric`; ties go to the newest.
fn best(all: &[CheckpointInfo], metric: &str, goal: Goal) -> Option<u64> {
    all.iter()
        .filter_map(|info| info.metrics.get(metric).map(|&v| (v, info.sequence)))
        .max_by(|(a, sa), (b, sb)| {
            let by_value = match goal {
                Goal::Minimize => b.total_cmp(a),
                Goal::Maximize => a.total_cmp(b),
            };
            by_value.then(sa.cmp(sb))
        })
        .map(|(_, sequence)| sequence)
}

/// Remove stored tensor files that no checkpoint links to any more (link count 1).
fn collect_objects(objects: &Path) -> Result<usize> {
    let entries = match fs::read_dir(objects) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("list", objects, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(Error::io_at("list", objects))?;
        let path = entry.path();
        let meta = entry.metadata().map_err(Error::io_at("inspect", &path))?;
        if meta.is_file() && meta.nlink() == 1 {
            fs::remove_file(&path).map_err(Error::io_at("remove unused object", &path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn info(sequence: u64, loss: Option<f64>) -> CheckpointInfo {
        let mut metrics = BTreeMap::new();
        if let Some(loss) = loss {
            metrics.insert("loss".to_string(), loss);
        }
        CheckpointInfo {
            id: format!("wf_{sequence}"),
            workflow_id: "wf".into(),
            path: "x".into(),
            sequence,
            created: std::time::UNIX_EPOCH,
            created_rfc3339: String::new(),
            metrics,
            files: Vec::new(),
        }
    }

    #[test]
    fn best_picks_by_goal_and_prefers_the_newest_tie() {
        let all = [
            info(1, Some(0.5)),
            info(2, None),
            info(3, Some(0.2)),
            info(4, Some(0.2)),
        ];
        assert_eq!(best(&all, "loss", Goal::Minimize), Some(4));
        assert_eq!(best(&all, "loss", Goal::Maximize), Some(1));
        assert_eq!(best(&all, "accuracy", Goal::Maximize), None);
    }
}
