//! One save: lay the files out in a temporary directory, then commit it atomically.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::checkpoint::{Checkpoint, FileKind, SaveReport};
use crate::error::{Error, Result};
use crate::fs::{Create, DirLock, SyncBatch, hash_parts, hex, sync_dir, write_file};
use crate::ids::{Stamp, checkpoint_name, validate_id};
use crate::manager::{Config, LOCK_FILE, OBJECTS_DIR, TMP_PREFIX, scan};
use crate::manifest::{FileEntry, MANIFEST, Manifest};
use crate::objects::VerifiedObjects;
use crate::prune::{cleanup_leftovers, prune_locked};
use crate::tensor_set::Encoded;

/// Mode of the content-addressed tensor files: they are shared, so never edited.
const OBJECT_MODE: u32 = 0o444;
const FILE_MODE: u32 = 0o644;

/// One file of the checkpoint, serialised and hashed, not yet written.
struct Prepared<'a> {
    kind: FileKind,
    node: Option<&'a str>,
    body: Body<'a>,
    size: u64,
    hash: u128,
}

enum Body<'a> {
    Json(Vec<u8>),
    Tensors(Encoded<'a>),
}

/// Save `checkpoint` as the newest checkpoint of `workflow_id`, then rotate (unless it
/// is provisional: those never push older checkpoints out).
pub(crate) fn save(
    config: &Config,
    workflow_id: &str,
    checkpoint: &Checkpoint,
) -> Result<SaveReport> {
    validate(workflow_id, checkpoint)?;
    // Serialising and hashing needs no lock: do it before taking one.
    let files = prepare(checkpoint)?;
    let dir = config.dir.as_path();
    create_root(dir)?;
    let _lock = DirLock::acquire(&dir.join(LOCK_FILE))?;
    cleanup_leftovers(dir)?;
    let existing = scan(dir, Some(workflow_id))?;
    let newest = existing.last();
    let sequence = newest.map_or(0, |i| i.sequence) + 1;
    let stamp = Stamp::now();
    let id = free_name(dir, workflow_id, stamp, newest.map(|i| i.id.as_str()))?;
    let tmp = dir.join(format!("{TMP_PREFIX}{id}"));
    let manifest = |entries| Manifest::new(&id, workflow_id, sequence, stamp, checkpoint, entries);
    let committed = commit(dir, &config.objects, &tmp, &id, &files, manifest);
    if committed.is_err() {
        // Best effort: whatever stays behind is removed by the next save or prune.
        let _ = fs::remove_dir_all(&tmp);
    }
    let (info, bytes_written, bytes_reused) = committed?;
    sync_dir(dir)?;
    let pruned = if checkpoint.provisional {
        Vec::new()
    } else {
        prune_locked(config, workflow_id)
            .map_err(|source| Error::Rotation {
                saved: id.clone(),
                source: Box::new(source),
            })?
            .removed
    };
    Ok(SaveReport {
        info,
        bytes_written,
        bytes_reused,
        pruned,
    })
}

fn validate(workflow_id: &str, checkpoint: &Checkpoint) -> Result<()> {
    validate_id("workflow id", workflow_id)?;
    for node in checkpoint.nodes.keys() {
        validate_id("node id", node)?;
    }
    if let Some((name, &value)) = checkpoint.metrics.iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::InvalidMetric {
            name: name.clone(),
            value,
        });
    }
    Ok(())
}

fn prepare(checkpoint: &Checkpoint) -> Result<Vec<Prepared<'_>>> {
    let mut files = vec![
        json(FileKind::Workflow, None, &checkpoint.workflow)?,
        json(FileKind::State, None, &checkpoint.state)?,
    ];
    for (node, state) in &checkpoint.nodes {
        let node = Some(node.as_str());
        for (kind, set) in [
            (FileKind::Model, &state.model),
            (FileKind::Optimizer, &state.optimizer),
        ] {
            if let Some(set) = set {
                let encoded = set.encode()?;
                let hash = hash_parts(&encoded.slices());
                let size = encoded.len;
                files.push(Prepared {
                    kind,
                    node,
                    body: Body::Tensors(encoded),
                    size,
                    hash,
                });
            }
        }
        for (kind, value) in [
            (FileKind::History, &state.history),
            (FileKind::NodeState, &state.state),
        ] {
            if let Some(value) = value {
                files.push(json(kind, node, value)?);
            }
        }
    }
    Ok(files)
}

fn json<'a>(
    kind: FileKind,
    node: Option<&'a str>,
    value: &serde_json::Value,
) -> Result<Prepared<'a>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::Json {
        path: kind.relative_path(node.unwrap_or("")).into(),
        source,
    })?;
    bytes.push(b'\n');
    let hash = hash_parts(&[&bytes]);
    Ok(Prepared {
        kind,
        node,
        size: bytes.len() as u64,
        body: Body::Json(bytes),
        hash,
    })
}

/// Create the checkpoint directory (and make its entry durable) if it is new.
fn create_root(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(Error::io_at("create directory", dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Err(e) => return Err(Error::io("inspect", dir, e)),
    }
    let objects = dir.join(OBJECTS_DIR);
    match fs::create_dir(&objects) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("create directory", &objects, e)),
    }
}

/// The first name not taken: two saves in the same second get `_2`, `_3`, ... and a
/// name never goes back below the newest checkpoint's (rotation frees old names).
fn free_name(dir: &Path, workflow_id: &str, stamp: Stamp, newest: Option<&str>) -> Result<String> {
    let base = checkpoint_name(workflow_id, stamp, 1);
    let first = match newest.and_then(|id| id.strip_prefix(base.as_str())) {
        Some("") => 2,
        Some(suffix) => suffix
            .strip_prefix('_')
            .and_then(|n| n.parse::<u32>().ok())
            .map_or(1, |n| n + 1),
        None => 1,
    };
    for attempt in first.. {
        let name = checkpoint_name(workflow_id, stamp, attempt);
        let path = dir.join(&name);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(name),
            Err(e) => return Err(Error::io("inspect", &path, e)),
            Ok(_) => {}
        }
    }
    unreachable!("the attempts never run out")
}

/// Write every file into `tmp`, the manifest last, make them all durable, and rename
/// `tmp` to `id`; the caller fsyncs `dir`.
fn commit(
    dir: &Path,
    verified: &VerifiedObjects,
    tmp: &Path,
    id: &str,
    files: &[Prepared<'_>],
    manifest: impl FnOnce(Vec<FileEntry>) -> Manifest,
) -> Result<(crate::CheckpointInfo, u64, u64)> {
    fs::create_dir(tmp).map_err(Error::io_at("create directory", tmp))?;
    let models = tmp.join("models");
    let has_nodes = files.iter().any(|f| f.kind.is_per_node());
    if has_nodes {
        fs::create_dir(&models).map_err(Error::io_at("create directory", &models))?;
    }
    let objects = dir.join(OBJECTS_DIR);
    let (mut written, mut reused) = (0, 0);
    let mut batch = SyncBatch::default();
    let mut new_objects = Vec::new();
    // The first file placed with each content: a second file with the same content
    // (two nodes with the same weights) is linked to it.
    let mut placed: HashMap<u128, PathBuf> = HashMap::new();
    let mut entries = Vec::with_capacity(files.len());
    for file in files {
        let rel = file.kind.relative_path(file.node.unwrap_or(""));
        let target = tmp.join(&rel);
        match &file.body {
            Body::Json(bytes) => {
                let f = write_file(
                    &target,
                    &[bytes],
                    file.size,
                    Create::New { mode: FILE_MODE },
                )?;
                batch.file(f, &target);
                written += file.size;
            }
            Body::Tensors(encoded) => {
                let twin = placed.get(&file.hash).map(PathBuf::as_path);
                match place_tensors(&objects, verified, twin, file.hash, encoded, &target)? {
                    Placed::Reused => reused += file.size,
                    Placed::Written { file: f, object } => {
                        batch.file(f, &target);
                        new_objects.extend(object);
                        written += file.size;
                    }
                }
                placed.entry(file.hash).or_insert(target);
            }
        }
        entries.push(FileEntry {
            path: rel,
            kind: file.kind,
            node: file.node.map(str::to_string),
            size: file.size,
            xxh3: hex(file.hash),
        });
    }
    let manifest = manifest(entries);
    let text = manifest.to_json();
    let manifest_path = tmp.join(MANIFEST);
    let f = write_file(
        &manifest_path,
        &[&text],
        text.len() as u64,
        Create::New { mode: FILE_MODE },
    )?;
    batch.file(f, &manifest_path);
    written += text.len() as u64;
    if has_nodes {
        batch.dir(&models)?;
    }
    batch.dir(tmp)?;
    batch.run()?;
    // Only durable objects get their content-addressed name. A damaged object already
    // there is replaced: the checkpoints linking it keep their (damaged) copy, later
    // saves link the new one.
    for (from, to) in new_objects {
        fs::rename(&from, &to).map_err(Error::io_at("rename into place", &from))?;
    }
    let target = dir.join(id);
    fs::rename(tmp, &target).map_err(Error::io_at("rename into place", tmp))?;
    Ok((manifest.into_info(target), written, reused))
}

enum Placed {
    /// Linked to a stored object (or a file of this save) with the same content.
    Reused,
    /// Written anew; `object` is the rename that stores it, once durable.
    Written {
        file: File,
        object: Option<(PathBuf, PathBuf)>,
    },
}

/// Put a tensor file at `target`: a hard link to `twin` (a file of this save with the
/// same content) or to the stored object with the same content, once that object is
/// checked to be intact; else a new file, stored for later saves too.
fn place_tensors(
    objects: &Path,
    verified: &VerifiedObjects,
    twin: Option<&Path>,
    hash: u128,
    encoded: &Encoded<'_>,
    target: &Path,
) -> Result<Placed> {
    if let Some(twin) = twin {
        if fs::hard_link(twin, target).is_ok() {
            return Ok(Placed::Reused);
        }
        // No hard links here: a file of its own (the stored object, if any, is the
        // twin's business).
        let file = write_file(
            target,
            &encoded.slices(),
            encoded.len,
            Create::New { mode: OBJECT_MODE },
        )?;
        return Ok(Placed::Written { file, object: None });
    }
    let object = objects.join(hex(hash));
    if verified.is_intact(&object, hash, encoded.len) && fs::hard_link(&object, target).is_ok() {
        return Ok(Placed::Reused);
    }
    let tmp = objects.join(format!("{TMP_PREFIX}{}", hex(hash)));
    let file = match write_file(
        &tmp,
        &encoded.slices(),
        encoded.len,
        Create::New { mode: OBJECT_MODE },
    ) {
        Ok(file) => file,
        Err(e) => {
            // Give the space back now (a full disk is the usual cause); the error says why.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if fs::hard_link(&tmp, target).is_ok() {
        Ok(Placed::Written {
            file,
            object: Some((tmp, object)),
        })
    } else {
        // No hard links here (or the object has too many): the checkpoint gets the file
        // itself, and the next save writes it again.
        fs::rename(&tmp, target).map_err(Error::io_at("rename into place", &tmp))?;
        Ok(Placed::Written { file, object: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_name_gets_the_next_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = Stamp {
            unix_ms: 1_700_000_000_000,
        };
        let name = |newest| free_name(dir.path(), "wf", stamp, newest).unwrap();
        assert_eq!(name(None), "wf_20231114_221320");
        fs::create_dir(dir.path().join("wf_20231114_221320")).unwrap();
        fs::write(
            dir.path().join("wf_20231114_221320_2"),
            b"a file takes the name too",
        )
        .unwrap();
        assert_eq!(name(None), "wf_20231114_221320_3");
        // Names freed by rotation are not reused within the second.
        assert_eq!(name(Some("wf_20231114_221320_7")), "wf_20231114_221320_8");
        assert_eq!(name(Some("wf_20231114_221320")), "wf_20231114_221320_3");
        assert_eq!(name(Some("wf_20231114_221319_7")), "wf_20231114_221320_3");
    }
}
