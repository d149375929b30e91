//! One training step: forward and backward of a micro-batch (under mixed precision when
//! asked), and the gradient post-processing before the optimizer (accumulation correction,
//! unscaling, finiteness check, global-norm clipping).

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLoss;
use burn::optim::GradientsParams;
use burn::tensor::{FloatDType, Tensor};

use crate::amp::{Precision, cast_model};
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::model::{Images, Model};

/// The loss of `batch` (mean cross-entropy, computed in f32 from the logits).
pub(crate) fn loss(
    model: &Model,
    batch: &Batch,
    precision: Precision,
    loss_fn: &CrossEntropyLoss,
) -> Result<Tensor<1>> {
    let dtype = precision.dtype();
    let images = match (&batch.volumes, &batch.images) {
        (Some(v), _) => Some(Images::Volumes(v.clone().cast(dtype))),
        (None, Some(i)) => Some(Images::Planar(i.clone().cast(dtype))),
        (None, None) => None,
    };
    let tabular = batch.tabular.clone().map(|t| t.cast(dtype));
    let logits = if precision == Precision::F32 {
        model.forward_inputs(images, tabular)?
    } else {
        cast_model(model, dtype).forward_inputs(images, tabular)?
    };
    Ok(loss_fn.forward(logits.cast(FloatDType::F32), batch.labels.clone()))
}

/// Forward and backward of one micro-batch: the loss value (unscaled) and the gradients of
/// `loss * factor` on the master parameters. Backend panics become errors (out of memory has
/// its own kind); `fault` makes the step fail with that message (fault injection).
pub(crate) fn micro_step(
    model: &Model,
    batch: &Batch,
    precision: Precision,
    loss_fn: &CrossEntropyLoss,
    factor: f32,
    fault: Option<String>,
    device_name: &str,
) -> Result<(f32, GradientsParams)> {
    let run = || -> Result<(f32, GradientsParams)> {
        if let Some(message) = fault {
            panic!("{message}");
        }
        let loss = loss(model, batch, precision, loss_fn)?;
        let value: f32 = loss.clone().into_scalar();
        #[allow(clippy::float_cmp)] // exactly 1: nothing to scale
        let scaled = if factor == 1.0 {
            loss
        } else {
            loss.mul_scalar(factor)
        };
        let grads = scaled.backward();
        Ok((value, GradientsParams::from_grads(grads, model)))
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(result) => result,
        Err(payload) => Err(classify_panic(payload.as_ref(), batch.len(), device_name)),
    }
}

/// Turns a backend panic into an error; out-of-memory messages become [`Error::OutOfMemory`].
pub(crate) fn classify_panic(
    payload: &(dyn std::any::Any + Send),
    batch_size: usize,
    device: &str,
) -> Error {
    let detail = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned());
    let squashed: String = detail
        .to_ascii_lowercase()
        .chars()
        .filter(char::is_ascii_alphabetic)
        .collect();
    let device = device.to_owned();
    if squashed.contains("outofmemory") || squashed.contains("outofdevicememory") {
        Error::OutOfMemory {
            device,
            batch_size,
            detail,
        }
    } else {
        Error::Backend { device, detail }
    }
}

/// Sum of squares of all gradients (infinite or NaN when any gradient is).
pub(crate) fn squared_norm(grads: &GradientsParams, model: &Model) -> f64 {
    struct Sq<'a> {
        grads: &'a GradientsParams,
        parts: Vec<Tensor<1>>,
    }
    impl ModuleVisitor for Sq<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.parts.push(g.square().sum());
            }
        }
    }
    let mut v = Sq {
        grads,
        parts: Vec::new(),
    };
    model.visit(&mut v);
    if v.parts.is_empty() {
        return 0.0;
    }
    f64::from(Tensor::cat(v.parts, 0).sum().into_scalar::<f32>())
}

/// Multiplies every gradient by `factor`.
pub(crate) fn scale_grads(
    mut grads: GradientsParams,
    model: &Model,
    factor: f32,
) -> GradientsParams {
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f32,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads
                    .register::<D>(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    model.visit(&mut Scale {
        grads: &mut grads,
        factor,
    });
    grads
}
