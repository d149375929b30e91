//! An ordered set of named tensors plus string metadata: one safetensors file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use indexmap::IndexMap;
use serde::ser::{SerializeMap, Serializer};

use crate::error::{Error, Result};
use crate::tensor::{Dtype, Tensor};

/// The key safetensors reserves for the string metadata.
const METADATA_KEY: &str = "__metadata__";
/// safetensors refuses headers larger than this.
const MAX_HEADER: usize = 100_000_000;

/// Named tensors in insertion order, plus string metadata: the content of one
/// `.safetensors` file (a model's state dict, an optimizer's state).
///
/// Equality ignores the order of the tensors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TensorSet {
    tensors: IndexMap<String, Tensor>,
    metadata: BTreeMap<String, String>,
}

impl TensorSet {
    /// An empty set.
    pub fn new() -> Self {
        TensorSet::default()
    }

    /// Add (or replace) a tensor, keeping the set's order; returns the tensor it replaced.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) -> Option<Tensor> {
        self.tensors.insert(name.into(), tensor)
    }

    /// The set with `tensor` added, for building a set in one expression.
    pub fn with(mut self, name: impl Into<String>, tensor: Tensor) -> Self {
        self.insert(name, tensor);
        self
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Remove and return the tensor called `name`, keeping the order of the others.
    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        self.tensors.shift_remove(name)
    }

    /// The tensors with their names, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the set holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The bytes of all tensors together.
    pub fn data_len(&self) -> u64 {
        self.tensors.values().map(|t| t.data().len() as u64).sum()
    }

    /// The string metadata (safetensors' `__metadata__`).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The string metadata, to change.
    pub fn metadata_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.metadata
    }

    /// The whole safetensors file in memory.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let encoded = self.encode()?;
        let mut out = Vec::with_capacity(encoded.len as usize);
        out.extend_from_slice(&encoded.header);
        for part in &encoded.parts {
            out.extend_from_slice(part);
        }
        Ok(out)
    }

    /// Parse a safetensors file held in memory; the tensors share `bytes` without copying.
    pub fn from_safetensors(bytes: impl Into<Bytes>) -> Result<Self> {
        decode(&bytes.into(), Path::new("<memory>"))
    }

    /// Write a safetensors file durably (written, then fsynced); returns its size.
    ///
    /// The file is replaced in place; a [`CheckpointManager`](crate::CheckpointManager)
    /// adds the atomic commit around it.
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<u64> {
        let path = path.as_ref();
        let encoded = self.encode()?;
        let file = crate::fs::write_file(
            path,
            &encoded.slices(),
            encoded.len,
            crate::fs::Create::Replace,
        )?;
        file.sync_data().map_err(Error::io_at("fsync", path))?;
        Ok(encoded.len)
    }

    /// Read a safetensors file into owned memory (one buffer shared by the tensors).
    pub fn read_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (bytes, _) = crate::fs::read_file(path, false, None)?;
        decode(&bytes, path)
    }

    /// The file layout: header and tensor bytes in safetensors' own order (largest
    /// alignment first, then by name), so the bytes equal `safetensors::serialize`'s.
    pub(crate) fn encode(&self) -> Result<Encoded<'_>> {
        let mut order: Vec<(&String, &Tensor)> = self.tensors.iter().collect();
        order.sort_by(|(ln, lt), (rn, rt)| {
            rt.dtype()
                .to_safetensors()
                .cmp(&lt.dtype().to_safetensors())
                .then(ln.cmp(rn))
        });
        if let Some((name, _)) = order.iter().find(|(n, _)| n.as_str() == METADATA_KEY) {
            return Err(Error::InvalidTensor {
                name: Some((*name).clone()),
                reason: format!("`{METADATA_KEY}` is reserved by safetensors"),
            });
        }
        let mut json = Vec::with_capacity(64 + order.len() * 96);
        let mut ser = serde_json::Serializer::new(&mut json);
        let metadata_entries = usize::from(!self.metadata.is_empty());
        let mut map = ser
            .serialize_map(Some(order.len() + metadata_entries))
            .map_err(|e| header_error(&e))?;
        if !self.metadata.is_empty() {
            map.serialize_entry(METADATA_KEY, &self.metadata)
                .map_err(|e| header_error(&e))?;
        }
        let mut offset = 0;
        for (name, tensor) in &order {
            let end = offset + tensor.data().len();
            let info = safetensors::tensor::TensorInfo {
                dtype: tensor.dtype().to_safetensors(),
                shape: tensor.shape().to_vec(),
                data_offsets: (offset, end),
            };
            map.serialize_entry(name.as_str(), &info)
                .map_err(|e| header_error(&e))?;
            offset = end;
        }
        map.end().map_err(|e| header_error(&e))?;
        // safetensors pads the header with spaces to a multiple of 8 bytes, so that the
        // tensors that follow stay aligned.
        json.resize(json.len().next_multiple_of(8), b' ');
        if json.len() > MAX_HEADER {
            return Err(Error::InvalidTensor {
                name: None,
                reason: format!("the safetensors header would be {} bytes", json.len()),
            });
        }
        let mut header = Vec::with_capacity(8 + json.len());
        header.extend_from_slice(&(json.len() as u64).to_le_bytes());
        header.extend_from_slice(&json);
        let len = (header.len() + offset) as u64;
        let parts = order.iter().map(|(_, t)| t.data().as_ref()).collect();
        Ok(Encoded { header, parts, len })
    }
}

fn header_error(e: &serde_json::Error) -> Error {
    Error::InvalidTensor {
        name: None,
        reason: format!("cannot write the header: {e}"),
    }
}

/// A tensor set laid out as a safetensors file, ready to hash and write.
pub(crate) struct Encoded<'a> {
    /// The 8-byte length and the JSON header.
    pub(crate) header: Vec<u8>,
    /// The tensors' bytes, in file order.
    pub(crate) parts: Vec<&'a [u8]>,
    /// The file's size.
    pub(crate) len: u64,
}

impl Encoded<'_> {
    /// Every piece of the file in order.
    pub(crate) fn slices(&self) -> Vec<&[u8]> {
        let mut all = Vec::with_capacity(self.parts.len() + 1);
        all.push(self.header.as_slice());
        all.extend(self.parts.iter().copied());
        all
    }
}

/// Parse a whole safetensors file; `path` only names it in errors.
pub(crate) fn decode(bytes: &Bytes, path: &Path) -> Result<TensorSet> {
    let to_err = |source| Error::Safetensors {
        path: PathBuf::from(path),
        source,
    };
    let (n, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(to_err)?;
    let start = 8 + n;
    let names = header.offset_keys();
    let mut tensors = IndexMap::with_capacity(names.len());
    for name in names {
        let info = header.info(&name).expect("offset_keys lists known names");
        let Some(dtype) = Dtype::from_safetensors(info.dtype) else {
            return Err(Error::UnsupportedDtype {
                path: path.to_path_buf(),
                name,
                dtype: info.dtype.to_string(),
            });
        };
        let (s, e) = info.data_offsets;
        let data = bytes.slice(start + s..start + e);
        let tensor = Tensor::new(dtype, info.shape.clone(), data).map_err(|err| match err {
            Error::InvalidTensor { reason, .. } => Error::InvalidTensor {
                name: Some(name.clone()),
                reason,
            },
            other => other,
        })?;
        tensors.insert(name, tensor);
    }
    let metadata = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(TensorSet { tensors, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TensorSet {
        let mut set = TensorSet::new()
            .with(
                "layer.weight",
                Tensor::from_vec([2, 3], vec![1.0f32, 2., 3., 4., 5., 6.]).unwrap(),
            )
            .with(
                "flag",
                Tensor::new(Dtype::Bool, [3], vec![1u8, 0, 1]).unwrap(),
            )
            .with("steps", Tensor::scalar(7i64))
            .with(
                "half",
                Tensor::new(Dtype::F16, [2], vec![0u8, 0x3c, 0, 0xc0]).unwrap(),
            );
        set.metadata_mut().insert("format".into(), "pt".into());
        set.metadata_mut().insert("epoch".into(), "3".into());
        set
    }

    #[test]
    fn bytes_match_the_safetensors_crate() {
        let set = sample();
        let mine = set.to_safetensors().unwrap();
        // One metadata entry, so the crate's HashMap order cannot differ.
        let mut one = set.clone();
        one.metadata_mut().remove("epoch");
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = one
            .iter()
            .map(|(n, t)| {
                let view = safetensors::tensor::TensorView::new(
                    t.dtype().to_safetensors(),
                    t.shape().to_vec(),
                    t.data(),
                )
                .unwrap();
                (n.to_string(), view)
            })
            .collect();
        let info = Some(one.metadata().clone().into_iter().collect());
        let theirs = safetensors::serialize(views, info).unwrap();
        assert_eq!(one.to_safetensors().unwrap(), theirs);
        let back = TensorSet::from_safetensors(mine).unwrap();
        assert_eq!(back, set);
        // File order: 8-byte dtypes first, then 4, 2, 1 byte ones.
        let names: Vec<&str> = back.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["steps", "layer.weight", "half", "flag"]);
    }

    #[test]
    fn header_is_deterministic_and_aligned() {
        let a = sample().to_safetensors().unwrap();
        let b = sample().to_safetensors().unwrap();
        assert_eq!(a, b);
        let n = u64::from_le_bytes(a[..8].try_into().unwrap());
        assert_eq!(n % 8, 0);
    }

    #[test]
    fn reserved_name_and_garbage_are_errors() {
        let set = TensorSet::new().with("__metadata__", Tensor::scalar(1u8));
        assert!(
            set.to_safetensors()
                .unwrap_err()
                .to_string()
                .contains("reserved")
        );
        let err = TensorSet::from_safetensors(vec![1u8, 2, 3]).unwrap_err();
        assert!(err.to_string().contains("<memory>"), "{err}");
    }

    #[test]
    fn files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let set = sample();
        let len = set.write_file(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
        assert_eq!(TensorSet::read_file(&path).unwrap(), set);
        let missing = TensorSet::read_file(dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
    }
}
