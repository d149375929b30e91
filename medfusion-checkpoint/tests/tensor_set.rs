//! Any tensor set survives safetensors bytes, and the safetensors crate reads our bytes
//! the same way.

use medfusion_checkpoint::{Dtype, Tensor, TensorSet};
use proptest::prelude::*;

const DTYPES: [Dtype; 13] = [
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
];

fn tensor() -> impl Strategy<Value = Tensor> {
    (0..DTYPES.len(), prop::collection::vec(0usize..4, 0..4)).prop_flat_map(|(d, shape)| {
        let dtype = DTYPES[d];
        let len = shape.iter().product::<usize>() * dtype.size();
        prop::collection::vec(any::<u8>(), len)
            .prop_map(move |bytes| Tensor::new(dtype, shape.clone(), bytes).unwrap())
    })
}

fn tensor_set() -> impl Strategy<Value = TensorSet> {
    (
        prop::collection::vec(("[a-z._0-9]{1,12}", tensor()), 0..8),
        prop::collection::btree_map("[a-z]{1,6}", ".{0,10}", 0..3),
    )
        .prop_map(|(tensors, metadata)| {
            let mut set = TensorSet::new();
            for (name, t) in tensors {
                set.insert(name, t);
            }
            *set.metadata_mut() = metadata;
            set
        })
}

proptest! {
    #[test]
    fn round_trips_and_matches_the_safetensors_crate(set in tensor_set()) {
        let bytes = set.to_safetensors().unwrap();
        let theirs = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        prop_assert_eq!(theirs.len(), set.len());
        for (name, tensor) in set.iter() {
            let view = theirs.tensor(name).unwrap();
            prop_assert_eq!(view.shape(), tensor.shape());
            prop_assert_eq!(view.dtype().to_string(), tensor.dtype().as_str());
            prop_assert_eq!(view.data(), &tensor.data()[..]);
        }
        let back = TensorSet::from_safetensors(bytes.clone()).unwrap();
        prop_assert_eq!(&back, &set);
        // Deterministic: the same set gives the same bytes (content addressing needs it).
        prop_assert_eq!(back.to_safetensors().unwrap(), bytes);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = TensorSet::from_safetensors(bytes);
    }
}
