//! Running a model over data: per-sample probabilities, labels and the mean loss.

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::module::Module;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::device::device_name;
use crate::error::{Error, Result};
use crate::metrics::ClassificationMetrics;
use crate::model::Model;
use crate::source::BatchSource;
use crate::step::classify_panic;

/// A model's outputs over a whole split, in the source's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predictions {
    /// Class probabilities, row-major: `labels.len()` rows of `classes` values.
    pub probabilities: Vec<f32>,
    /// True class of each sample.
    pub labels: Vec<u32>,
    /// Number of classes.
    pub classes: usize,
    /// Mean cross-entropy loss.
    pub loss: f64,
}

impl Predictions {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The metrics of the data module (accuracy, ROC AUC, ...); `class_names` may be empty
    /// (the classes are then named by index).
    pub fn metrics(&self, class_names: &[String]) -> Result<ClassificationMetrics> {
        let names: Vec<String> = if class_names.len() == self.classes {
            class_names.to_vec()
        } else {
            (0..self.classes).map(|c| c.to_string()).collect()
        };
        Ok(ClassificationMetrics::compute(
            &self.probabilities,
            &self.labels,
            &names,
        )?)
    }
}

/// Runs `model` in inference mode (batch norms on their running statistics, no autodiff)
/// over every batch of `source` (epoch 0) on `device`.
pub fn predict(model: &Model, source: &dyn BatchSource, device: &Device) -> Result<Predictions> {
    let device = device.clone().without_autodiff();
    let model = model.valid();
    let mut out = Predictions {
        probabilities: Vec::new(),
        labels: Vec::new(),
        classes: 0,
        loss: 0.0,
    };
    let name = device_name(&device);
    let mut loss_sum = 0.0;
    for batch in source.batches(0, &device) {
        let batch = batch?;
        let n = batch.len();
        // A backend panic (out of device memory, say) becomes an error, as in training.
        let scored = catch_unwind(AssertUnwindSafe(|| -> Result<_> {
            let logits = model.forward(&batch)?;
            let [n, k] = logits.dims();
            let labels = to_labels(batch.labels.clone(), k, &name)?;
            let targets = batch.labels.clone().reshape([n, 1]);
            let nll = -log_softmax(logits.clone(), 1).gather(1, targets);
            let loss = f64::from(nll.sum().into_scalar::<f32>());
            Ok((k, labels, loss, to_f32(softmax(logits, 1), &name)?))
        }))
        .unwrap_or_else(|payload| Err(classify_panic(payload.as_ref(), n, &name)))?;
        let (k, labels, loss, probabilities) = scored;
        out.classes = k;
        out.labels.extend(labels);
        loss_sum += loss;
        out.probabilities.extend(probabilities);
    }
    if !out.labels.is_empty() {
        out.loss = loss_sum / out.labels.len() as f64;
    }
    Ok(out)
}

fn to_f32(t: Tensor<2>, device: &str) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Backend {
            device: device.to_owned(),
            detail: format!("reading probabilities back: {e}"),
        })
}

fn to_labels(t: Tensor<1, Int>, classes: usize, device: &str) -> Result<Vec<u32>> {
    let values = t
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .map_err(|e| Error::Backend {
            device: device.to_owned(),
            detail: format!("reading labels back: {e}"),
        })?;
    values
        .into_iter()
        .map(|l| {
            u32::try_from(l)
                .ok()
                .filter(|&l| (l as usize) < classes)
                .ok_or_else(|| Error::ModelInput {
                    model: "classifier".into(),
                    reason: format!("label {l} is outside 0..{classes}"),
                })
        })
        .collect()
}

/// The median wall time, in milliseconds, of a forward pass of `model` (inference mode)
/// over the first batch of `source` on `device`, results read back (so queued GPU work is
/// counted): `warmup` passes first, then `runs` timed ones.
pub fn forward_latency(
    model: &Model,
    source: &dyn BatchSource,
    device: &Device,
    warmup: usize,
    runs: usize,
) -> Result<f64> {
    let device = device.clone().without_autodiff();
    let model = model.valid();
    let name = device_name(&device);
    let Some(batch) = source.batches(0, &device).next() else {
        return Err(Error::config(
            "data",
            "has no samples to time a forward pass on",
        ));
    };
    let batch = batch?;
    let mut times = Vec::with_capacity(runs);
    for i in 0..warmup + runs.max(1) {
        let started = std::time::Instant::now();
        let logits = model.forward(&batch)?;
        to_f32(logits, &name)?;
        if i >= warmup {
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
