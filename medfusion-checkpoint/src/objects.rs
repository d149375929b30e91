//! The stored tensor files in `.objects/`, checked before a save links one.
//!
//! An object is named by the xxh3-128 of its content, but nothing stops its bytes from
//! changing later (a disk error, a tool editing a checkpoint's model file in place: the
//! file is a hard link of the object). Linking a damaged object into a new checkpoint
//! would make that checkpoint corrupt too, so an object is read and hashed before it is
//! reused; a damaged one is written again instead. The result is remembered per file
//! identity (device, inode, size, modification time), so an unchanged object is hashed
//! once per manager, not once per save.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::fs::{hash_open_file, open_read};

/// A verification is trusted only if the file's modification time was at least this
/// long before it: a write in the same tick of the file system's clock (up to 2 s on
/// some file systems) could leave the time unchanged. Files modified more recently are
/// hashed again at their next use ("racily clean", as git calls them).
const RACY: Duration = Duration::from_secs(2);

/// Entries kept before the cache starts over (each is a few dozen bytes).
const MAX_ENTRIES: usize = 1 << 16;

/// Which file an entry is about: if any part changes, the content may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Verified {
    hash: u128,
    /// When the content was read.
    at: SystemTime,
}

/// Stored objects whose content was checked, shared by a manager and its writer thread.
#[derive(Debug, Default)]
pub(crate) struct VerifiedObjects {
    entries: Mutex<HashMap<Identity, Verified>>,
}

impl VerifiedObjects {
    /// Whether the object at `path` is a regular file of `len` bytes whose xxh3-128 is
    /// `hash`, so that it may be linked into a new checkpoint. Anything else (missing, a
    /// link, unreadable, damaged) is `false`: the caller writes the content afresh.
    pub(crate) fn is_intact(&self, path: &Path, hash: u128, len: u64) -> bool {
        let Ok(file) = open_read(path) else {
            return false;
        };
        let Ok(meta) = file.metadata() else {
            return false;
        };
        if !meta.is_file() || meta.len() != len {
            return false;
        }
        let identity = Identity::of(&meta);
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if self.lookup(identity, modified) == Some(hash) {
            return true;
        }
        let at = SystemTime::now();
        match hash_open_file(&file, path, len) {
            Ok(actual) if actual == hash => {
                self.record(identity, Verified { hash, at });
                true
            }
            _ => false,
        }
    }

    /// The verified hash of the file `identity`, if it was read long enough after it
    /// was last modified.
    fn lookup(&self, identity: Identity, modified: SystemTime) -> Option<u128> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(&identity)?;
        let settled = entry
            .at
            .duration_since(modified)
            .is_ok_and(|age| age >= RACY);
        settled.then_some(entry.hash)
    }

    fn record(&self, identity: Identity, verified: Verified) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(identity, verified);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::hash_parts;
    use std::fs::File;

    fn identity(path: &Path) -> (Identity, SystemTime) {
        let meta = std::fs::metadata(path).unwrap();
        (Identity::of(&meta), meta.modified().unwrap())
    }

    #[test]
    fn a_settled_object_is_hashed_once_and_any_change_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        std::fs::write(&path, b"tensor bytes").unwrap();
        let hash = hash_parts(&[b"tensor bytes"]);
        let cache = VerifiedObjects::default();
        assert!(!cache.is_intact(&path, hash, 11), "wrong size");
        assert!(!cache.is_intact(&path, hash ^ 1, 12), "wrong hash");
        assert!(!cache.is_intact(&dir.path().join("missing"), hash, 12));

        // Just written: verified, but not trusted without reading it again.
        assert!(cache.is_intact(&path, hash, 12));
        let (id, modified) = identity(&path);
        assert_eq!(cache.lookup(id, modified), None);

        // Modified an hour ago: the verification is trusted from now on.
        let old = SystemTime::now() - Duration::from_hours(1);
        File::open(&path).unwrap().set_modified(old).unwrap();
        assert!(cache.is_intact(&path, hash, 12));
        let (id, modified) = identity(&path);
        assert_eq!(cache.lookup(id, modified), Some(hash));
        assert!(!cache.is_intact(&path, hash ^ 1, 12));

        // Rewritten in place, same size: a new modification time, so hashed again.
        std::fs::write(&path, b"tensor bytez").unwrap();
        assert!(!cache.is_intact(&path, hash, 12));
        // Even with the time set back (but not to the very same value).
        let older = old - Duration::from_hours(1);
        File::open(&path).unwrap().set_modified(older).unwrap();
        assert!(!cache.is_intact(&path, hash, 12));
        // A link is never followed.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(!cache.is_intact(&link, hash_parts(&[b"tensor bytez"]), 12));
    }
}
