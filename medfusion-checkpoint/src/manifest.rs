//! `manifest.json`: the last file of a checkpoint, listing every other file.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, CheckpointInfo, FileInfo, FileKind};
use crate::error::{Error, Result};
use crate::ids::{Stamp, validate_id};

/// The manifest's file name.
pub(crate) const MANIFEST: &str = "manifest.json";
/// What the `format` field holds.
const FORMAT: &str = "medfusion-checkpoint";
/// The manifest layout this crate writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Manifests are small; a larger file is not one of ours.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) format: String,
    pub(crate) format_version: u32,
    pub(crate) id: String,
    pub(crate) workflow_id: String,
    pub(crate) sequence: u64,
    pub(crate) created: String,
    pub(crate) created_unix_ms: u64,
    #[serde(default)]
    pub(crate) metrics: BTreeMap<String, f64>,
    /// Absent in manifests written before provisional checkpoints existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) provisional: bool,
    /// Absent in manifests written before progress marks existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) progress: BTreeMap<String, u64>,
    pub(crate) files: Vec<FileEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    pub(crate) path: String,
    pub(crate) kind: FileKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) node: Option<String>,
    pub(crate) size: u64,
    pub(crate) xxh3: String,
}

impl Manifest {
    /// The manifest of `checkpoint` (its metrics and marks; the files are `files`).
    pub(crate) fn new(
        id: &str,
        workflow_id: &str,
        sequence: u64,
        stamp: Stamp,
        checkpoint: &Checkpoint,
        files: Vec<FileEntry>,
    ) -> Manifest {
        Manifest {
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            id: id.to_string(),
            workflow_id: workflow_id.to_string(),
            sequence,
            created: stamp.rfc3339(),
            created_unix_ms: stamp.unix_ms,
            metrics: checkpoint.metrics.clone(),
            provisional: checkpoint.provisional,
            progress: checkpoint.progress.clone(),
            files,
        }
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a manifest is plain JSON");
        out.push(b'\n');
        out
    }

    /// Check every field, as if the manifest came from anyone.
    fn check(&self, expected_id: &str) -> std::result::Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "`format` is `{}`, expected `{FORMAT}`",
                self.format
            ));
        }
        if self.format_version != FORMAT_VERSION {
            return Err(format!(
                "format version {} is not the version this crate reads ({FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.id != expected_id {
            return Err(format!("it names checkpoint `{}`", self.id));
        }
        validate_id("workflow id", &self.workflow_id).map_err(|e| e.to_string())?;
        if !self.id.starts_with(&format!("{}_", self.workflow_id)) {
            return Err(format!(
                "id `{}` is not one of workflow `{}`",
                self.id, self.workflow_id
            ));
        }
        let mut seen = HashSet::new();
        for file in &self.files {
            let node = match (&file.node, file.kind.is_per_node()) {
                (Some(node), true) => {
                    validate_id("node id", node).map_err(|e| e.to_string())?;
                    node.as_str()
                }
                (None, false) => "",
                _ => return Err(format!("file `{}` has a wrong `node` field", file.path)),
            };
            let expected = file.kind.relative_path(node);
            if file.path != expected {
                return Err(format!("file `{}` should be `{expected}`", file.path));
            }
            if !seen.insert(file.path.as_str()) {
                return Err(format!("file `{}` is listed twice", file.path));
            }
            if file.xxh3.len() != 32 || !file.xxh3.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("file `{}` has checksum `{}`", file.path, file.xxh3));
            }
        }
        for required in ["workflow.json", "state.json"] {
            if !seen.contains(required) {
                return Err(format!("`{required}` is not listed"));
            }
        }
        Ok(())
    }

    pub(crate) fn into_info(self, path: PathBuf) -> CheckpointInfo {
        let stamp = Stamp {
            unix_ms: self.created_unix_ms,
        };
        CheckpointInfo {
            id: self.id,
            workflow_id: self.workflow_id,
            path,
            sequence: self.sequence,
            created: stamp.system_time(),
            created_rfc3339: self.created,
            metrics: self.metrics,
            provisional: self.provisional,
            progress: self.progress,
            files: self
                .files
                .into_iter()
                .map(|f| FileInfo {
                    path: f.path,
                    kind: f.kind,
                    node: f.node,
                    size: f.size,
                    checksum: f.xxh3.to_ascii_lowercase(),
                })
                .collect(),
        }
    }
}

/// Read and check the manifest of the checkpoint directory `dir` named `id`.
pub(crate) fn read(dir: &Path, id: &str) -> Result<CheckpointInfo> {
    let path = dir.join(MANIFEST);
    let invalid = |reason: String, source| Error::Manifest {
        path: path.clone(),
        reason,
        source,
    };
    let file = crate::fs::open_read(&path)?;
    let mut text = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(Error::io_at("read", &path))?;
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(invalid(
            format!("it is larger than {MAX_MANIFEST_BYTES} bytes"),
            None,
        ));
    }
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| invalid("it is not a checkpoint manifest".to_string(), Some(e)))?;
    manifest.check(id).map_err(|reason| invalid(reason, None))?;
    Ok(manifest.into_info(dir.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: FileKind, node: Option<&str>) -> FileEntry {
        FileEntry {
            path: kind.relative_path(node.unwrap_or("")),
            kind,
            node: node.map(str::to_string),
            size: 3,
            xxh3: "0".repeat(32),
        }
    }

    fn valid() -> Manifest {
        let files = vec![
            entry(FileKind::Workflow, None),
            entry(FileKind::State, None),
            entry(FileKind::Model, Some("train")),
        ];
        Manifest::new(
            "wf_20240101_000000",
            "wf",
            1,
            Stamp { unix_ms: 0 },
            &Checkpoint::default(),
            files,
        )
    }

    fn problem(edit: impl FnOnce(&mut Manifest)) -> String {
        let mut m = valid();
        edit(&mut m);
        m.check("wf_20240101_000000").unwrap_err()
    }

    #[test]
    fn a_valid_manifest_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("wf_20240101_000000");
        std::fs::create_dir(&ckpt).unwrap();
        std::fs::write(ckpt.join(MANIFEST), valid().to_json()).unwrap();
        let info = read(&ckpt, "wf_20240101_000000").unwrap();
        assert_eq!(info.workflow_id, "wf");
        assert_eq!(info.nodes(), ["train"]);
        assert_eq!(info.created_rfc3339, "1970-01-01T00:00:00.000Z");
        let err = read(&ckpt, "wf_20240101_000001").unwrap_err();
        assert!(err.to_string().contains("manifest.json"), "{err}");
    }

    #[test]
    fn marks_round_trip_and_old_manifests_read_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("wf_20240101_000000");
        std::fs::create_dir(&ckpt).unwrap();
        // Written before provisional checkpoints and progress marks: no such fields.
        let old = valid().to_json();
        let text = String::from_utf8(old.clone()).unwrap();
        assert!(
            !text.contains("provisional") && !text.contains("progress"),
            "{text}"
        );
        std::fs::write(ckpt.join(MANIFEST), &old).unwrap();
        let info = read(&ckpt, "wf_20240101_000000").unwrap();
        assert!(!info.provisional);
        assert!(info.progress.is_empty());

        let marked = Checkpoint::default()
            .provisional()
            .with_progress("train", 7)
            .with_progress("data", u64::MAX);
        let mut manifest = valid();
        manifest.provisional = marked.provisional;
        manifest.progress.clone_from(&marked.progress);
        std::fs::write(ckpt.join(MANIFEST), manifest.to_json()).unwrap();
        let info = read(&ckpt, "wf_20240101_000000").unwrap();
        assert!(info.provisional);
        assert_eq!(info.progress, marked.progress);
    }

    #[test]
    fn every_field_is_checked() {
        assert!(problem(|m| m.format = "x".into()).contains("`format`"));
        assert!(problem(|m| m.format_version = 2).contains("format version 2"));
        assert!(problem(|m| m.workflow_id = "other".into()).contains("not one of workflow"));
        assert!(problem(|m| m.workflow_id = "../x".into()).contains("invalid workflow id"));
        assert!(problem(|m| m.files[2].path = "../../etc/passwd".into()).contains("should be"));
        assert!(problem(|m| m.files[2].node = Some("..".into())).contains("invalid node id"));
        assert!(problem(|m| m.files[2].node = None).contains("wrong `node`"));
        assert!(problem(|m| m.files[1].xxh3 = "zz".into()).contains("checksum"));
        assert!(
            problem(|m| {
                m.files.remove(1);
            })
            .contains("`state.json` is not listed")
        );
        assert!(
            problem(|m| {
                let again = entry(FileKind::Workflow, None);
                m.files.push(again);
            })
            .contains("listed twice")
        );
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST), b"{\"format\":").unwrap();
        let err = read(dir.path(), "x").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Manifest {
                    source: Some(_),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(MANIFEST));
    }
}
