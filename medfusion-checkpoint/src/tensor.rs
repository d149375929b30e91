//! One tensor: dtype, shape and little-endian bytes shared without copying.

use bytes::Bytes;

use crate::error::{Error, Result};

/// The element type of a [`Tensor`], as safetensors (and PyTorch) know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Dtype {
    /// `bool`, one byte per element (0 or 1).
    Bool,
    /// `u8`.
    U8,
    /// `i8`.
    I8,
    /// `i16`.
    I16,
    /// `u16`.
    U16,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
    /// `i32`.
    I32,
    /// `u32`.
    U32,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `i64`.
    I64,
    /// `u64`.
    U64,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 => 1,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
        }
    }

    /// The name safetensors writes in its header (`"F32"`, `"BF16"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::F16 => "F16",
            Dtype::Bf16 => "BF16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
        }
    }

    pub(crate) fn to_safetensors(self) -> safetensors::Dtype {
        use safetensors::Dtype as S;
        match self {
            Dtype::Bool => S::BOOL,
            Dtype::U8 => S::U8,
            Dtype::I8 => S::I8,
            Dtype::I16 => S::I16,
            Dtype::U16 => S::U16,
            Dtype::F16 => S::F16,
            Dtype::Bf16 => S::BF16,
            Dtype::I32 => S::I32,
            Dtype::U32 => S::U32,
            Dtype::F32 => S::F32,
            Dtype::F64 => S::F64,
            Dtype::I64 => S::I64,
            Dtype::U64 => S::U64,
        }
    }

    pub(crate) fn from_safetensors(dtype: safetensors::Dtype) -> Option<Dtype> {
        use safetensors::Dtype as S;
        Some(match dtype {
            S::BOOL => Dtype::Bool,
            S::U8 => Dtype::U8,
            S::I8 => Dtype::I8,
            S::I16 => Dtype::I16,
            S::U16 => Dtype::U16,
            S::F16 => Dtype::F16,
            S::BF16 => Dtype::Bf16,
            S::I32 => Dtype::I32,
            S::U32 => Dtype::U32,
            S::F32 => Dtype::F32,
            S::F64 => Dtype::F64,
            S::I64 => Dtype::I64,
            S::U64 => Dtype::U64,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust number type that maps onto a [`Dtype`]: `f32`, `f64`, `i8` ... `u64`.
pub trait Element: bytemuck::Pod + sealed::Sealed + Send + Sync {
    /// The dtype of this element type.
    const DTYPE: Dtype;
}

macro_rules! element {
    ($($t:ty => $d:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: Dtype = Dtype::$d;
        }
    )*};
}
element!(f32 => F32, f64 => F64, i8 => I8, i16 => I16, i32 => I32, i64 => I64,
         u8 => U8, u16 => U16, u32 => U32, u64 => U64);

/// A named tensor's content: dtype, shape (row-major) and its little-endian bytes.
///
/// The bytes are a [`Bytes`], so clones and loaded tensors share one buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Bytes,
}

impl Tensor {
    /// A tensor from raw little-endian bytes; fails if their length does not fit the shape.
    pub fn new(dtype: Dtype, shape: impl Into<Vec<usize>>, data: impl Into<Bytes>) -> Result<Self> {
        let shape = shape.into();
        let data = data.into();
        let expected = shape
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| Error::InvalidTensor {
                name: None,
                reason: format!("shape {shape:?} of {dtype} overflows"),
            })?;
        if expected != data.len() {
            return Err(Error::InvalidTensor {
                name: None,
                reason: format!(
                    "shape {shape:?} of {dtype} needs {expected} bytes, the data has {}",
                    data.len()
                ),
            });
        }
        Ok(Tensor { dtype, shape, data })
    }

    /// A tensor that takes ownership of `values` without copying them (on little-endian
    /// machines): `Tensor::from_vec([2, 3], vec![0.0f32; 6])`.
    pub fn from_vec<T: Element>(shape: impl Into<Vec<usize>>, values: Vec<T>) -> Result<Self> {
        Tensor::new(T::DTYPE, shape, le_bytes(values))
    }

    /// A tensor copied from a slice of values.
    pub fn from_slice<T: Element>(shape: impl Into<Vec<usize>>, values: &[T]) -> Result<Self> {
        Tensor::from_vec(shape, values.to_vec())
    }

    /// A rank-0 tensor holding one value (PyTorch's `num_batches_tracked`, an epoch, ...).
    pub fn scalar<T: Element>(value: T) -> Self {
        Tensor {
            dtype: T::DTYPE,
            shape: Vec::new(),
            data: le_bytes(vec![value]),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The shape, outermost dimension first (empty for a scalar).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The little-endian bytes.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The values as `T`, copied; fails if `T` is not this tensor's dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype {
            return Err(Error::InvalidTensor {
                name: None,
                reason: format!("asked for {} values of a {} tensor", T::DTYPE, self.dtype),
            });
        }
        let mut values = vec![T::zeroed(); self.data.len() / T::DTYPE.size()];
        bytemuck::cast_slice_mut::<T, u8>(&mut values).copy_from_slice(&self.data);
        if cfg!(target_endian = "big") {
            for v in &mut values {
                bytemuck::bytes_of_mut(v).reverse();
            }
        }
        Ok(values)
    }

    /// The values as a borrowed slice, where that needs no copy (matching dtype, aligned
    /// bytes, little-endian machine).
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        if T::DTYPE != self.dtype || cfg!(target_endian = "big") {
            return None;
        }
        bytemuck::try_cast_slice(&self.data).ok()
    }
}

/// `values` as little-endian bytes, without a copy where the machine is little-endian.
fn le_bytes<T: Element>(mut values: Vec<T>) -> Bytes {
    if cfg!(target_endian = "big") {
        for v in &mut values {
            bytemuck::bytes_of_mut(v).reverse();
        }
    }
    Bytes::from_owner(PodVec(values))
}

/// Lets a `Vec<T>` own the memory of a [`Bytes`].
struct PodVec<T>(Vec<T>);

impl<T: bytemuck::Pod> AsRef<[u8]> for PodVec<T> {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_round_trips_without_copying() {
        let values = vec![1.5f32, -2.0, 3.25, 0.0, 7.0, 8.5];
        let owned = values.clone();
        let ptr = owned.as_ptr().cast::<u8>();
        let t = Tensor::from_vec([2, 3], owned).unwrap();
        assert_eq!(t.data().as_ptr(), ptr);
        assert_eq!(t.dtype(), Dtype::F32);
        assert_eq!(t.numel(), 6);
        assert_eq!(t.to_vec::<f32>().unwrap(), values);
        assert_eq!(t.as_slice::<f32>().unwrap(), &values[..]);
        assert_eq!(&t.data()[..4], &1.5f32.to_le_bytes());
    }

    #[test]
    fn wrong_length_and_wrong_type_are_errors() {
        let err = Tensor::new(Dtype::F32, [2, 2], vec![0u8; 15]).unwrap_err();
        assert!(
            err.to_string().contains("needs 16 bytes, the data has 15"),
            "{err}"
        );
        let t = Tensor::scalar(3i64);
        assert!(t.shape().is_empty());
        assert_eq!(t.to_vec::<i64>().unwrap(), vec![3]);
        assert!(
            t.to_vec::<f64>()
                .unwrap_err()
                .to_string()
                .contains("F64 values of a I64")
        );
        assert!(t.as_slice::<u64>().is_none());
        let overflow = Tensor::new(Dtype::F64, [usize::MAX, 2], Vec::<u8>::new()).unwrap_err();
        assert!(overflow.to_string().contains("overflows"), "{overflow}");
    }

    #[test]
    fn dtypes_map_to_safetensors_and_back() {
        for d in [
            Dtype::Bool,
            Dtype::U8,
            Dtype::I8,
            Dtype::I16,
            Dtype::U16,
            Dtype::F16,
            Dtype::Bf16,
            Dtype::I32,
            Dtype::U32,
            Dtype::F32,
            Dtype::F64,
            Dtype::I64,
            Dtype::U64,
        ] {
            let s = d.to_safetensors();
            assert_eq!(Dtype::from_safetensors(s), Some(d));
            assert_eq!(s.bitsize() / 8, d.size());
            assert_eq!(s.to_string(), d.as_str());
        }
        assert_eq!(Dtype::from_safetensors(safetensors::Dtype::F8_E4M3), None);
    }
}
