//! `files` values: files and folders on disk flowing between nodes, with checksums of their
//! content, so that a resumed run notices a file that changed since it was saved.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use medfusion_graph::PortType;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::error::BoxError;
use crate::value::{PortValue, SavedValue, Value};

/// One file or folder of a [`FilesValue`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Where it is.
    pub path: PathBuf,
    /// The name it goes by (the name a shell node declared it under, or its file name);
    /// downstream shell nodes see it under this name in their work folder.
    pub name: String,
    /// Its size in bytes (a folder: the sum of its files').
    pub size: u64,
    /// xxh3-128 of its content, hex (a folder: of each file's relative path and content).
    pub checksum: String,
    /// Whether it is a folder.
    pub is_dir: bool,
}

impl FileEntry {
    /// The entry for the file or folder at `path` (made absolute), named `name`, with its
    /// checksum.
    pub fn read(name: impl Into<String>, path: impl Into<PathBuf>) -> io::Result<FileEntry> {
        let path = std::path::absolute(path.into())?;
        let meta = fs::metadata(&path)?;
        let (size, checksum) = if meta.is_dir() {
            folder_checksum(&path)?
        } else {
            file_checksum(&path)?
        };
        Ok(FileEntry {
            path,
            name: name.into(),
            size,
            checksum,
            is_dir: meta.is_dir(),
        })
    }

    /// Why the file on disk is no longer what this entry recorded, if it is not.
    pub fn changed(&self) -> Option<String> {
        match FileEntry::read(self.name.clone(), self.path.clone()) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Some(format!("`{}` is gone", self.path.display()))
            }
            Err(e) => Some(format!("`{}` cannot be read: {e}", self.path.display())),
            Ok(now) if now.checksum != self.checksum || now.is_dir != self.is_dir => Some(format!(
                "`{}` changed since it was saved",
                self.path.display()
            )),
            Ok(_) => None,
        }
    }
}

fn file_checksum(path: &Path) -> io::Result<(u64, String)> {
    let mut hasher = Xxh3::new();
    let size = hash_file(path, &mut hasher)?;
    Ok((size, format!("{:032x}", hasher.digest128())))
}

fn hash_file(path: &Path, hasher: &mut Xxh3) -> io::Result<u64> {
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(size);
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}

/// The checksum of a folder: every file below it (links to folders are not followed), in
/// order of relative path, each as its path and content.
fn folder_checksum(root: &Path) -> io::Result<(u64, String)> {
    let mut files = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        for entry in fs::read_dir(root.join(&relative))? {
            let entry = entry?;
            let name = relative.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(name);
            } else if kind.is_file() || fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
                files.push(name);
            }
        }
    }
    files.sort();
    let mut hasher = Xxh3::new();
    let mut size = 0;
    for file in &files {
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update(&[0]);
        size += hash_file(&root.join(file), &mut hasher)?;
    }
    Ok((size, format!("{:032x}", hasher.digest128())))
}

/// Files and folders on disk, on a `files` port: what shell nodes read and write, and what
/// dataset nodes hand to them or take from them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilesValue {
    /// The files and folders, in the order they were declared.
    pub files: Vec<FileEntry>,
}

impl FilesValue {
    /// The codec name of saved `files` values.
    pub const CODEC: &'static str = "medfusion.files";

    /// The value holding these `(name, path)` files and folders, their checksums computed.
    pub fn read(
        entries: impl IntoIterator<Item = (String, PathBuf)>,
    ) -> Result<FilesValue, BoxError> {
        let files = entries
            .into_iter()
            .map(|(name, path)| {
                FileEntry::read(name, &path)
                    .map_err(|e| format!("cannot read `{}`: {e}", path.display()))
            })
            .collect::<Result<_, _>>()?;
        Ok(FilesValue { files })
    }

    /// Restore a saved value; an error names the first file that is gone or changed since
    /// it was saved (so a resumed run runs the nodes behind it again).
    pub fn restore(saved: &SavedValue) -> Result<Value, BoxError> {
        let files: Vec<FileEntry> = serde_json::from_value(saved.data["files"].clone())?;
        if let Some(why) = files.iter().find_map(FileEntry::changed) {
            return Err(why.into());
        }
        Ok(Value::new(FilesValue { files }))
    }
}

impl PortValue for FilesValue {
    fn port_type(&self) -> PortType {
        PortType::Files
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "files": self.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            "bytes": self.files.iter().map(|f| f.size).sum::<u64>(),
        })
    }

    fn save(&self) -> Result<SavedValue, BoxError> {
        Ok(SavedValue::json(
            FilesValue::CODEC,
            serde_json::json!({ "files": self.files }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_or_missing_file_cannot_be_restored() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        let folder = dir.path().join("images");
        fs::create_dir_all(folder.join("x")).unwrap();
        fs::write(&a, "1,2\n").unwrap();
        fs::write(folder.join("x/1.png"), "png").unwrap();
        let value = FilesValue::read([
            ("a.csv".to_string(), a.clone()),
            ("images".to_string(), folder.clone()),
        ])
        .unwrap();
        assert_eq!(value.files[1].size, 3);
        assert!(value.files[1].is_dir);
        let saved = value.save().unwrap();
        let back = FilesValue::restore(&saved).unwrap();
        assert_eq!(back.downcast_ref::<FilesValue>().unwrap(), &value);

        fs::write(folder.join("x/1.png"), "PNG").unwrap();
        let err = FilesValue::restore(&saved).unwrap_err().to_string();
        assert!(err.contains("images") && err.contains("changed"), "{err}");
        fs::write(folder.join("x/1.png"), "png").unwrap();
        FilesValue::restore(&saved).unwrap();
        fs::remove_file(&a).unwrap();
        let err = FilesValue::restore(&saved).unwrap_err().to_string();
        assert!(err.contains("a.csv") && err.contains("gone"), "{err}");
    }
}
