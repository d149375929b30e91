//! Inspection that hides nothing: every entry named like a checkpoint, with what is
//! wrong with it, and which other checkpoints share a damaged file.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::checkpoint::{CheckpointInfo, LoadedCheckpoint};
use crate::error::{Corruption, Error, Result};
use crate::ids::validate_id;

/// One entry of the checkpoint directory named like a checkpoint, verified.
#[derive(Debug)]
#[non_exhaustive]
pub struct CheckpointReport {
    /// The directory name, `<workflow_id>_<YYYYMMDD_HHMMSS>[_<n>]`.
    pub id: String,
    /// The workflow: the manifest's, or the one the name gives when there is no valid
    /// manifest.
    pub workflow_id: String,
    /// The entry's path.
    pub path: PathBuf,
    /// The manifest, when it is valid.
    pub info: Option<CheckpointInfo>,
    /// What verification found.
    pub status: CheckpointStatus,
}

impl CheckpointReport {
    /// Whether every file matches the manifest.
    pub fn is_valid(&self) -> bool {
        matches!(self.status, CheckpointStatus::Valid)
    }
}

/// The state of a checkpoint on disk.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckpointStatus {
    /// The manifest is valid and every file matches it.
    Valid,
    /// The manifest is valid, but some files do not match it.
    Corrupt {
        /// Each file that does not match, in manifest order.
        files: Vec<BadFile>,
    },
    /// The manifest is missing or cannot be read, or the entry is a symbolic link: the
    /// files cannot be checked.
    NoValidManifest {
        /// Why (it names the manifest, or the link).
        error: Error,
    },
}

/// A file of a checkpoint that does not match its manifest.
#[derive(Debug)]
#[non_exhaustive]
pub struct BadFile {
    /// The file (or `models/`, when that directory is missing or a link).
    pub path: PathBuf,
    /// What is wrong, naming the file.
    pub error: Error,
    /// The other checkpoints (any workflow) linking the same file, by id, sorted: a
    /// tensor file is stored once and hard linked into every checkpoint holding the
    /// same content, so damage to it shows in all of them.
    pub shared_with: Vec<String>,
}

/// What [`CheckpointManager::resume_workflow_report`](crate::CheckpointManager::resume_workflow_report)
/// found.
#[derive(Debug)]
#[non_exhaustive]
pub struct ResumeReport {
    /// The newest checkpoint that loaded and verified, if any.
    pub loaded: Option<LoadedCheckpoint>,
    /// The newer checkpoints passed over, newest first, with why.
    pub skipped: Vec<SkippedCheckpoint>,
}

/// A checkpoint that resuming passed over.
#[derive(Debug)]
#[non_exhaustive]
pub struct SkippedCheckpoint {
    /// Its id (directory name).
    pub id: String,
    /// Its directory.
    pub path: PathBuf,
    /// Why it could not be used; names the damaged file or the manifest.
    pub reason: Error,
}

/// An entry of the checkpoint directory named like a checkpoint.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) id: String,
    /// The workflow the name gives.
    pub(crate) workflow_id: String,
    pub(crate) path: PathBuf,
    pub(crate) symlink: bool,
    /// Where the name sorts among the workflow's: `(YYYYMMDD_HHMMSS, n)`.
    pub(crate) order: (String, u32),
}

/// Split `<workflow_id>_<YYYYMMDD_HHMMSS>[_<n>]` into the workflow id and the order
/// key `(YYYYMMDD_HHMMSS, n)` (n is 1 without a suffix).
pub(crate) fn parse_name(name: &str) -> Option<(&str, (String, u32))> {
    let digits = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    let split = |rest: &str| -> Option<(usize, String)> {
        let (rest, time) = rest.rsplit_once('_')?;
        let (workflow, date) = rest.rsplit_once('_')?;
        (digits(date, 8) && digits(time, 6) && validate_id("workflow id", workflow).is_ok())
            .then(|| (workflow.len(), format!("{date}_{time}")))
    };
    if let Some((rest, n)) = name.rsplit_once('_')
        && !n.starts_with('0')
        && n.len() <= 9
        && n.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = n.parse::<u32>()
        && let Some((len, stamp)) = split(rest)
    {
        return Some((&name[..len], (stamp, n)));
    }
    let (len, stamp) = split(name)?;
    Some((&name[..len], (stamp, 1)))
}

/// The directories (and symbolic links) in `dir` named like checkpoints, in no order.
/// A missing `dir` is [`Error::NoCheckpointDir`].
pub(crate) fn candidates(dir: &Path) -> Result<Vec<Candidate>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::NoCheckpointDir {
                dir: dir.to_path_buf(),
            });
        }
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io_at("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if validate_id("checkpoint id", name).is_err() {
            continue;
        }
        let Some((workflow_id, order)) = parse_name(name) else {
            continue;
        };
        let path = entry.path();
        let kind = entry.file_type().map_err(Error::io_at("inspect", &path))?;
        if !kind.is_dir() && !kind.is_symlink() {
            continue;
        }
        found.push(Candidate {
            id: name.to_string(),
            workflow_id: workflow_id.to_string(),
            path,
            symlink: kind.is_symlink(),
            order,
        });
    }
    Ok(found)
}

/// Read the manifest of `candidate`: the info, or why there is none. A missing manifest
/// is reported as a missing file.
pub(crate) fn read_manifest(candidate: &Candidate) -> Result<CheckpointInfo> {
    if candidate.symlink {
        return Err(Error::Symlink {
            path: candidate.path.clone(),
        });
    }
    crate::manifest::read(&candidate.path, &candidate.id).map_err(|e| match e {
        Error::Io { source, path, .. } if source.kind() == io::ErrorKind::NotFound => {
            Error::Corrupt {
                path,
                problem: Corruption::Missing,
            }
        }
        other => other,
    })
}

/// Verify the checkpoints among `all` (every candidate of the directory) that `wanted`
/// accepts by workflow id, sorted by workflow, then oldest first by name.
pub(crate) fn inspect(all: &[Candidate], wanted: impl Fn(&str) -> bool) -> Vec<CheckpointReport> {
    let mut reports: Vec<(CheckpointReport, (String, u32))> = Vec::new();
    for candidate in all {
        let manifest = read_manifest(candidate);
        let workflow_id = match &manifest {
            Ok(info) => info.workflow_id.clone(),
            Err(_) => candidate.workflow_id.clone(),
        };
        if !wanted(&workflow_id) {
            continue;
        }
        let report = report(candidate, manifest);
        if !report.is_valid() && removed_meanwhile(&candidate.path) {
            // Rotated away while being read: not a broken checkpoint.
            continue;
        }
        reports.push((report, candidate.order.clone()));
    }
    reports.sort_by(|(a, a_order), (b, b_order)| {
        (a.workflow_id.as_str(), a_order, &a.id).cmp(&(b.workflow_id.as_str(), b_order, &b.id))
    });
    let mut reports: Vec<CheckpointReport> = reports.into_iter().map(|(r, _)| r).collect();
    add_sharing(all, &mut reports);
    reports
}

/// Whether the entry at `path` is gone (a save or prune elsewhere removed it).
fn removed_meanwhile(path: &Path) -> bool {
    fs::symlink_metadata(path).is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
}

/// Verify `candidate`, whose manifest read as `manifest`.
fn report(candidate: &Candidate, manifest: Result<CheckpointInfo>) -> CheckpointReport {
    let (workflow_id, info, status) = match manifest {
        Ok(info) => {
            let status = status_of(&info);
            (info.workflow_id.clone(), Some(info), status)
        }
        Err(error) => (
            candidate.workflow_id.clone(),
            None,
            CheckpointStatus::NoValidManifest { error },
        ),
    };
    CheckpointReport {
        id: candidate.id.clone(),
        workflow_id,
        path: candidate.path.clone(),
        info,
        status,
    }
}

/// Check every file of a checkpoint with a valid manifest.
fn status_of(info: &CheckpointInfo) -> CheckpointStatus {
    let mut files = Vec::new();
    let models_ok = match crate::manager::check_models_dir(info) {
        Ok(()) => true,
        Err(error) => {
            files.push(bad(info.path.join("models"), error));
            false
        }
    };
    for file in &info.files {
        if file.kind.is_per_node() && !models_ok {
            continue;
        }
        if let Err(error) = crate::manager::check_file(info, file) {
            files.push(bad(info.path.join(&file.path), error));
        }
    }
    if files.is_empty() {
        CheckpointStatus::Valid
    } else {
        CheckpointStatus::Corrupt { files }
    }
}

fn bad(path: PathBuf, error: Error) -> BadFile {
    BadFile {
        path,
        error,
        shared_with: Vec::new(),
    }
}

/// Fill in [`BadFile::shared_with`]: which other checkpoints link each damaged file.
fn add_sharing(all: &[Candidate], reports: &mut [CheckpointReport]) {
    let any_bad = reports
        .iter()
        .any(|r| matches!(&r.status, CheckpointStatus::Corrupt { files } if !files.is_empty()));
    if !any_bad {
        return;
    }
    let links = links_by_inode(all);
    for report in reports {
        let CheckpointStatus::Corrupt { files } = &mut report.status else {
            continue;
        };
        for file in files {
            let Ok(meta) = fs::symlink_metadata(&file.path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let mut others: Vec<String> = links
                .get(&(meta.dev(), meta.ino()))
                .into_iter()
                .flatten()
                .filter(|id| **id != report.id)
                .cloned()
                .collect();
            others.sort();
            others.dedup();
            file.shared_with = others;
        }
    }
}

/// For every regular file in the checkpoints' directories and their `models/`, the ids
/// of the checkpoints holding it, by `(device, inode)`. Links are not followed; what
/// cannot be read is left out (this only adds detail to a report).
fn links_by_inode(all: &[Candidate]) -> HashMap<(u64, u64), Vec<String>> {
    let mut links: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    for candidate in all.iter().filter(|c| !c.symlink) {
        for dir in [candidate.path.clone(), candidate.path.join("models")] {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                // `DirEntry::metadata` does not follow a link.
                if let Ok(meta) = entry.metadata()
                    && meta.is_file()
                {
                    links
                        .entry((meta.dev(), meta.ino()))
                        .or_default()
                        .push(candidate.id.clone());
                }
            }
        }
    }
    links
}

/// The folder a report is about, for a single checkpoint: `id` in `dir`.
pub(crate) fn candidate(dir: &Path, id: &str) -> Result<Candidate> {
    let path = dir.join(id);
    let not_found = || Error::NotFound {
        id: id.to_string(),
        dir: dir.to_path_buf(),
    };
    let kind = match fs::symlink_metadata(&path) {
        Ok(meta) => meta.file_type(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(if dir.exists() {
                not_found()
            } else {
                Error::NoCheckpointDir {
                    dir: dir.to_path_buf(),
                }
            });
        }
        Err(e) => return Err(Error::io("inspect", &path, e)),
    };
    if !kind.is_dir() && !kind.is_symlink() {
        return Err(not_found());
    }
    let (workflow_id, order) = match parse_name(id) {
        Some((workflow_id, order)) => (workflow_id.to_string(), order),
        None if kind.is_symlink() => return Err(Error::Symlink { path }),
        None => {
            // Not named like a checkpoint: one only if its manifest says so.
            let info = crate::manifest::read(&path, id)?;
            (info.workflow_id, (String::new(), 0))
        }
    };
    Ok(Candidate {
        id: id.to_string(),
        workflow_id,
        path,
        symlink: kind.is_symlink(),
        order,
    })
}

/// The report on `id` alone; `all` (every candidate in the directory) tells which
/// other checkpoints share its damaged files.
pub(crate) fn inspect_one(target: &Candidate, all: &[Candidate]) -> CheckpointReport {
    let mut pool = all.to_vec();
    if !pool.iter().any(|c| c.id == target.id) {
        pool.push(target.clone());
    }
    let mut report = report(target, read_manifest(target));
    add_sharing(&pool, std::slice::from_mut(&mut report));
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::plain("wf_20240101_120000", Some(("wf", "20240101_120000", 1)))]
    #[case::suffix("wf_20240101_120000_3", Some(("wf", "20240101_120000", 3)))]
    #[case::underscored_workflow("wf_b_20240101_120000_12", Some(("wf_b", "20240101_120000", 12)))]
    #[case::workflow_like_a_stamp(
        "a_20240101_000000_20240202_000000",
        Some(("a_20240101_000000", "20240202_000000", 1))
    )]
    #[case::six_digit_suffix("wf_20240101_120000_123456", Some(("wf", "20240101_120000", 123_456)))]
    #[case::zero_suffix("wf_20240101_120000_0", None)]
    #[case::short_time("wf_20240101_1200", None)]
    #[case::no_workflow("_20240101_120000", None)]
    #[case::only_stamp("20240101_120000", None)]
    #[case::hidden_workflow(".tmp-wf_20240101_120000", None)]
    #[case::letters("wf_2024010a_120000", None)]
    fn names(#[case] name: &str, #[case] expected: Option<(&str, &str, u32)>) {
        let parsed = parse_name(name);
        let parsed = parsed
            .as_ref()
            .map(|(w, (stamp, n))| (*w, stamp.as_str(), *n));
        assert_eq!(parsed, expected, "{name}");
    }
}
