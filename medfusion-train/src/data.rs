//! Datasets and loaders: the Burn-free [`medfusion_data`] crate, re-exported, and its
//! adapters to Burn (tensors from host batches, Burn's own `Dataset` and `Batcher`).

pub use crate::burn_compat::{BurnSampleDataset, SampleBatcher};
pub use medfusion_data::*;
