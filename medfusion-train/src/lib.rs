//! Training with Burn for medfusion (skeleton: being filled in by the train and data work).
#![warn(missing_docs)]

pub mod data;
pub mod metrics;
mod batch;

pub use batch::{Batch, DatasetInfo, ImageShape};
