//! Mixed precision: the low-precision working copy of a model and dynamic loss scaling.
//!
//! Burn has no autocast and does not promote mixed dtypes, so each step works on a copy of
//! the f32 master model cast to bf16/f16. The cast is an autodiff operation: gradients flow
//! back through it and arrive on the master parameters in f32. Batch norms are not cast:
//! their running statistics are shared between a module and its clones, so casting them
//! would cast the master's too, and their f32 parameters keep the statistics accurate; the
//! models cast activations around them (see `model::layers::norm`).

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::AmpDtype;

/// The compute precision of a training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Plain f32.
    F32,
    /// bfloat16 compute, f32 master weights.
    Bf16,
    /// float16 compute, f32 master weights, dynamic loss scaling.
    F16,
}

impl Precision {
    /// The precision of `use_amp` + `amp_dtype`.
    pub fn from_settings(use_amp: bool, dtype: AmpDtype) -> Precision {
        match (use_amp, dtype) {
            (false, _) => Precision::F32,
            (true, AmpDtype::Bf16) => Precision::Bf16,
            (true, AmpDtype::F16) => Precision::F16,
        }
    }

    /// The Burn dtype of the compute.
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::Bf16 => FloatDType::BF16,
            Precision::F16 => FloatDType::F16,
        }
    }

    /// Whether this precision needs loss scaling (only f16's narrow range does).
    pub fn needs_loss_scaling(self) -> bool {
        self == Precision::F16
    }
}

/// A copy of `model` whose parameters are `dtype` views of the master's (batch norms left in
/// f32). With autodiff on, gradients of the copy's parameters reach the master's.
pub fn cast_model<M: Module>(model: &M, dtype: FloatDType) -> M {
    if dtype == FloatDType::F32 {
        return model.clone();
    }
    model.clone().map(&mut CastMapper {
        dtype,
        containers: Vec::new(),
    })
}

struct CastMapper {
    dtype: FloatDType,
    containers: Vec<bool>,
}

impl ModuleMapper for CastMapper {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        self.containers.push(container_type.ends_with(":BatchNorm"));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.containers.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.containers.iter().any(|&bn| bn) {
            return param;
        }
        let dtype = self.dtype;
        param.map(|t| t.cast(dtype))
    }
}

/// The state of dynamic loss scaling, saved with checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    /// The factor the loss is multiplied by before backward.
    pub scale: f32,
    /// Clean steps since the scale last changed.
    pub clean_steps: u32,
    /// Clean steps after which the scale doubles.
    pub growth_interval: u32,
    /// Steps skipped because a gradient overflowed.
    pub skipped_steps: u64,
}

impl LossScaler {
    /// Starting scale of f16 training (PyTorch's `GradScaler` default).
    pub const INITIAL_SCALE: f32 = 65_536.0;

    /// The scaler for `precision`: 2^16 for f16, a constant 1 otherwise.
    pub fn new(precision: Precision) -> LossScaler {
        LossScaler {
            scale: if precision.needs_loss_scaling() {
                Self::INITIAL_SCALE
            } else {
                1.0
            },
            clean_steps: 0,
            growth_interval: 2000,
            skipped_steps: 0,
        }
    }

    /// Records the outcome of a step: on overflow the scale halves and the step must be
    /// skipped (returns `false`); after `growth_interval` clean steps it doubles.
    pub fn update(&mut self, finite: bool, scaling: bool) -> bool {
        if finite {
            if scaling {
                self.clean_steps += 1;
                if self.clean_steps >= self.growth_interval {
                    self.scale = (self.scale * 2.0).min(f32::MAX / 2.0);
                    self.clean_steps = 0;
                }
            }
            true
        } else {
            if scaling {
                self.scale = (self.scale / 2.0).max(f32::MIN_POSITIVE);
            }
            self.clean_steps = 0;
            self.skipped_steps += 1;
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // scales are powers of two
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn scaler_halves_on_overflow_and_grows_after_clean_steps() {
        let mut s = LossScaler::new(Precision::F16);
        assert_eq!(s.scale, 65_536.0);
        assert!(!s.update(false, true));
        assert_eq!(s.scale, 32_768.0);
        assert_eq!(s.skipped_steps, 1);
        s.growth_interval = 3;
        assert!(s.update(true, true) && s.update(true, true));
        assert_eq!(s.scale, 32_768.0);
        assert!(s.update(true, true));
        assert_eq!(s.scale, 65_536.0);
        assert_eq!(s.clean_steps, 0);
        assert_eq!(LossScaler::new(Precision::Bf16).scale, 1.0);
    }

    struct Collect<'a>(
        &'a mut Vec<(String, burn::tensor::DType, bool)>,
        &'a burn::tensor::Gradients,
    );
    impl burn::module::ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let v = p.val();
            let has_grad = v
                .grad(self.1)
                .is_some_and(|g| g.dtype() == burn::tensor::DType::F32);
            self.0.push((format!("{:?}", p.id), v.dtype(), has_grad));
        }
    }

    #[test]
    fn cast_copy_leaves_master_and_batch_norm_in_f32() {
        use crate::{DatasetInfo, ImageShape, ModelConfig};
        let device = Device::flex().autodiff();
        let info = DatasetInfo {
            classes: 2,
            class_names: vec![],
            image: Some(ImageShape {
                channels: 1,
                depth: 1,
                height: 8,
                width: 8,
            }),
            tabular_features: None,
        };
        let model = "cnn"
            .parse::<ModelConfig>()
            .unwrap()
            .build(&info, &device, 0)
            .unwrap();
        let low = cast_model(&model, FloatDType::BF16);
        let x = Tensor::<4>::random([2, 1, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        let logits = low
            .forward_parts(Some(x.cast(FloatDType::BF16)), None)
            .unwrap();
        assert_eq!(logits.dtype(), FloatDType::BF16.into());
        let grads = logits.cast(FloatDType::F32).sum().backward();
        let mut dtypes = Vec::new();
        model.visit(&mut Collect(&mut dtypes, &grads));
        assert!(
            dtypes
                .iter()
                .all(|(_, d, _)| *d == burn::tensor::DType::F32)
        );
        // Every trainable master parameter got an f32 gradient through the cast (the 8
        // running statistics are buffers without one).
        assert_eq!(
            dtypes.iter().filter(|(_, _, g)| *g).count(),
            dtypes.len() - 8
        );
    }
}
