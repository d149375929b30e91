//! Finding image files under folders without following symbolic links into loops, and
//! without taking one file twice.
//!
//! - Symbolic links to folders are not followed unless `follow_symlinks` is on; the ones met
//!   while walking a class folder are skipped and listed in one warning. With
//!   `follow_symlinks`, every folder is entered once per walk, known by its (device, inode):
//!   a link back to a folder already entered (a loop such as `a -> ..`) is skipped the same
//!   way, so a walk always ends.
//! - Symbolic links to files are read like files.
//! - Every file is known by its (device, inode) across all the walks of one dataset (all its
//!   splits): a file reached a second time, through a link, a hard link or a followed folder
//!   link, is an error naming both paths, since it would count twice (in two splits, or
//!   under two labels).

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::path::{Path, PathBuf};

use crate::decode::is_image_file;
use crate::error::{DataError, list_some};

/// What identifies a file or folder whatever the path it is reached by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FileKey {
    #[cfg(unix)]
    Inode(u64, u64),
    #[cfg(not(unix))]
    Path(PathBuf),
}

fn file_key(path: &Path, meta: &Metadata) -> FileKey {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = path;
        FileKey::Inode(meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        FileKey::Path(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
    }
}

/// Why a folder was not entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SkipReason {
    /// A symbolic link to a folder, and `follow_symlinks` is off.
    Symlink,
    /// A folder this walk has entered already (a link loop, or two links to one folder).
    Revisit,
}

/// Walks the folders of one dataset.
#[derive(Debug)]
pub(crate) struct Walker {
    follow_symlinks: bool,
    /// Every file taken so far, with the path it was first taken by.
    files: HashMap<FileKey, PathBuf>,
    /// Folders not entered, and why.
    pub(crate) skipped: Vec<(PathBuf, SkipReason)>,
}

/// What a directory entry is, links resolved as the walker's settings say.
enum Kind {
    Folder(FileKey),
    File(Option<FileKey>),
    SkippedLink,
}

impl Walker {
    pub(crate) fn new(follow_symlinks: bool) -> Walker {
        Walker {
            follow_symlinks,
            files: HashMap::new(),
            skipped: Vec::new(),
        }
    }

    fn kind(&self, path: &Path) -> Result<Kind, DataError> {
        let own = std::fs::symlink_metadata(path).map_err(|e| DataError::io(path, e))?;
        if !own.file_type().is_symlink() {
            return Ok(if own.is_dir() {
                Kind::Folder(file_key(path, &own))
            } else {
                Kind::File(Some(file_key(path, &own)))
            });
        }
        match std::fs::metadata(path) {
            Ok(target) if target.is_dir() => Ok(if self.follow_symlinks {
                Kind::Folder(file_key(path, &target))
            } else {
                Kind::SkippedLink
            }),
            Ok(target) => Ok(Kind::File(Some(file_key(path, &target)))),
            // A dangling link: left to the image check, which names the file.
            Err(_) => Ok(Kind::File(None)),
        }
    }

    /// Whether `path` is a folder to use as part of the dataset's layout (the root's split or
    /// class folders): `Ok(false)` when it is not a folder at all, an error naming
    /// `follow_symlinks` when it is a link to a folder that may not be followed.
    pub(crate) fn is_layout_folder(&self, path: &Path) -> Result<bool, DataError> {
        match std::fs::symlink_metadata(path) {
            Err(_) => Ok(false),
            Ok(_) => match self.kind(path)? {
                Kind::Folder(_) => Ok(true),
                Kind::File(_) => Ok(false),
                Kind::SkippedLink => Err(DataError::config(
                    "follow_symlinks",
                    format!(
                        "is off, and `{}` is a symbolic link to a folder; set \
                         `follow_symlinks: true` to read it (each image is still used once)",
                        path.display()
                    ),
                )),
            },
        }
    }

    /// The sub-folders of `dir` (links to folders per [`Walker::is_layout_folder`]), sorted.
    pub(crate) fn folders(&self, dir: &Path) -> Result<Vec<PathBuf>, DataError> {
        let mut out = Vec::new();
        for entry in read_dir_sorted(dir)? {
            if self.is_layout_folder(&entry)? {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// The image files under `dir`, recursively, sorted; see the module docs for links.
    pub(crate) fn images(&mut self, dir: &Path) -> Result<Vec<PathBuf>, DataError> {
        self.files(dir, is_image_file)
    }

    /// The files under `dir` that `keep` accepts, recursively, sorted, with the same rules for
    /// links and duplicates as [`Walker::images`].
    pub(crate) fn files(
        &mut self,
        dir: &Path,
        keep: impl Fn(&Path) -> bool,
    ) -> Result<Vec<PathBuf>, DataError> {
        let mut entered = HashSet::new();
        if let Kind::Folder(key) = self.kind(dir)? {
            entered.insert(key);
        }
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in read_dir_sorted(&d)? {
                match self.kind(&entry)? {
                    Kind::Folder(key) => {
                        if entered.insert(key) {
                            stack.push(entry);
                        } else {
                            self.skipped.push((entry, SkipReason::Revisit));
                        }
                    }
                    Kind::SkippedLink => self.skipped.push((entry, SkipReason::Symlink)),
                    Kind::File(key) if keep(&entry) => {
                        if let Some(key) = key {
                            if let Some(first) = self.files.get(&key) {
                                return Err(DataError::DuplicateFile {
                                    first: first.clone(),
                                    second: entry,
                                });
                            }
                            self.files.insert(key, entry.clone());
                        }
                        out.push(entry);
                    }
                    Kind::File(_) => {}
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Logs one warning listing the folders that were not entered (if any).
    pub(crate) fn warn_skipped(&self) {
        let list = |reason| {
            let paths: Vec<String> = self
                .skipped
                .iter()
                .filter(|(_, r)| *r == reason)
                .map(|(p, _)| format!("`{}`", p.display()))
                .collect();
            (paths.len(), list_some(paths, 5))
        };
        let (links, first_links) = list(SkipReason::Symlink);
        if links > 0 {
            tracing::warn!(
                count = links,
                first = %first_links,
                "not following symbolic links to folders (set `follow_symlinks: true` to read them)"
            );
        }
        let (loops, first_loops) = list(SkipReason::Revisit);
        if loops > 0 {
            tracing::warn!(
                count = loops,
                first = %first_loops,
                "skipping links to folders already read (a link loop?)"
            );
        }
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// The entries of `dir` but hidden ones, sorted.
fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| DataError::io(dir, err)))
        .collect::<Result<Vec<_>, _>>()?;
    entries.retain(|p| !is_hidden(p));
    entries.sort();
    Ok(entries)
}
