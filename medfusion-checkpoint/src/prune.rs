//! Rotation, removal of interrupted saves, and collection of unused tensor files.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
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
    let best = config
        .keep_best
        .as_ref()
        .map(|(m, goal)| (m.as_str(), *goal));
    let keep = select(&all, config.max_checkpoints, best);
    let (mut kept, mut doomed) = (Vec::new(), Vec::new());
    for (info, keep) in all.into_iter().zip(keep) {
        if keep {
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

/// Which of `all` (the checkpoints of one workflow, oldest first) rotation keeps: the
/// union of
///
/// - the newest `max` (at least 1) that are not provisional;
/// - the provisional ones newer than every checkpoint that is not (all of them, when
///   every checkpoint is provisional);
/// - the best by `best`'s metric, if given;
/// - for each progress key, the newest checkpoint holding the key's highest value.
pub(crate) fn select(all: &[CheckpointInfo], max: usize, best: Option<(&str, Goal)>) -> Vec<bool> {
    let mut keep = vec![false; all.len()];
    let regular: Vec<usize> = (0..all.len()).filter(|&i| !all[i].provisional).collect();
    for &i in regular.iter().rev().take(max.max(1)) {
        keep[i] = true;
    }
    let newest_regular = regular.last().copied();
    for (i, info) in all.iter().enumerate() {
        if info.provisional && newest_regular.is_none_or(|newest| i > newest) {
            keep[i] = true;
        }
    }
    if let Some(sequence) = best.and_then(|(metric, goal)| self::best(all, metric, goal)) {
        for (i, info) in all.iter().enumerate() {
            if info.sequence == sequence {
                keep[i] = true;
            }
        }
    }
    let mut top: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
    for (i, info) in all.iter().enumerate() {
        for (key, &value) in &info.progress {
            match top.entry(key.as_str()) {
                Entry::Vacant(slot) => {
                    slot.insert((value, i));
                }
                // `>=`: among equal values the newest holds the work.
                Entry::Occupied(mut slot) if value >= slot.get().0 => {
                    slot.insert((value, i));
                }
                Entry::Occupied(_) => {}
            }
        }
    }
    for (_, i) in top.into_values() {
        keep[i] = true;
    }
    keep
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
            provisional: false,
            progress: BTreeMap::new(),
            files: Vec::new(),
        }
    }

    /// Checkpoints from a spec such as `R t=3 @loss=0.5 | P | R t=max`: `R` or `P`
    /// (provisional), then progress marks `key=value` and metrics `@name=value`.
    fn parse(spec: &str) -> Vec<CheckpointInfo> {
        spec.split('|')
            .enumerate()
            .map(|(i, item)| {
                let mut words = item.split_whitespace();
                let mut info = info(i as u64 + 1, None);
                info.provisional = match words.next() {
                    Some("R") => false,
                    Some("P") => true,
                    other => panic!("bad kind {other:?} in {spec}"),
                };
                for word in words {
                    let (key, value) = word.split_once('=').expect("key=value");
                    if let Some(metric) = key.strip_prefix('@') {
                        info.metrics.insert(metric.into(), value.parse().unwrap());
                    } else {
                        let value = if value == "max" {
                            u64::MAX
                        } else {
                            value.parse().unwrap()
                        };
                        info.progress.insert(key.into(), value);
                    }
                }
                info
            })
            .collect()
    }

    #[rstest::rstest]
    #[case::newest_n("R | R | R | R | R | R | R", 3, None, &[4, 5, 6])]
    #[case::zero_counts_as_one("R | R", 0, None, &[1])]
    #[case::provisional_do_not_count("R | R | P | P | R", 2, None, &[1, 4])]
    #[case::provisional_after_the_newest_regular_stay("R | R | R | P | P", 2, None, &[1, 2, 3, 4])]
    #[case::only_provisional("P | P | P", 1, None, &[0, 1, 2])]
    #[case::highest_progress_survives(
        "R t=5 | R t=5 | R t=1 | R t=2 | R t=3",
        2,
        None,
        &[1, 3, 4]
    )]
    #[case::each_key_keeps_its_holder(
        "R a=max t=3 | R a=max t=4 | R a=max t=0 | R a=max t=1",
        1,
        None,
        &[1, 3]
    )]
    #[case::a_key_newer_ones_lack("R t=2 | R | R", 1, None, &[0, 2])]
    #[case::finished_beats_any_count("R t=max | R t=7 | R t=8", 1, None, &[0, 2])]
    #[case::provisional_holding_the_top_value_stays("R t=3 | P t=3 | R t=0", 1, None, &[1, 2])]
    #[case::progress_already_held_by_a_kept_one("R t=1 | R t=2 | R t=3", 2, None, &[1, 2])]
    #[case::failed_resumes_keep_the_work(
        "R t=1 | R t=2 | R t=3 | R t=4 | R t=5 | P t=5 | R t=0 | P t=5 | R t=0 | P t=5 | R t=0",
        5,
        None,
        &[3, 4, 6, 8, 9, 10]
    )]
    #[case::best_also_kept(
        "R @loss=0.1 | R @loss=0.5 | R @loss=0.3",
        1,
        Some(("loss", Goal::Minimize)),
        &[0, 2]
    )]
    #[case::best_provisional_kept(
        "P @loss=0.1 | R @loss=0.5 | R",
        1,
        Some(("loss", Goal::Minimize)),
        &[0, 2]
    )]
    fn rotation_keeps(
        #[case] spec: &str,
        #[case] max: usize,
        #[case] best: Option<(&str, Goal)>,
        #[case] expected: &[usize],
    ) {
        let all = parse(spec);
        let kept: Vec<usize> = select(&all, max, best)
            .into_iter()
            .enumerate()
            .filter_map(|(i, keep)| keep.then_some(i))
            .collect();
        assert_eq!(kept, expected, "{spec}");
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
