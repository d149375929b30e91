//! Smaller models: post-training int8 quantization of the weights (Burn's quantized
//! tensors) and magnitude or channel pruning.
//!
//! Only the weights of convolutions and linear layers are changed: batch and layer norms,
//! biases, embeddings and position tables stay in f32, as in PyTorch's dynamic and static
//! weight quantization. On the CPU backend Burn keeps quantized weights as int8 with their
//! scales and turns them back into f32 inside each layer's forward pass, so a quantized
//! model is about 4x smaller but not faster there.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::quantization::{
    Calibration, QuantScheme, QuantStore, QuantValue, ScaleDtype, compute_q_params, compute_range,
};
use burn::tensor::{DType, Tensor};
use medfusion_graph::NodeConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Model;

/// How finely int8 scales are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One scale per weight tensor.
    PerTensor,
    /// One scale per output channel (per block of at most 255 input channels when a layer has
    /// more): Burn's per-block scheme, PyTorch's `per_channel_symmetric`.
    #[default]
    PerChannel,
}

/// How the range of each weight tensor (or block) is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationKind {
    /// The largest absolute value: no weight is clipped.
    #[default]
    MinMax,
}

/// The settings of `compress.quantize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QuantizeConfig {
    /// `per_tensor` or `per_channel` symmetric int8 scales.
    pub granularity: Granularity,
    /// How each scale's range is found.
    pub calibration: CalibrationKind,
}

impl NodeConfig for QuantizeConfig {}

/// How weights are pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PruneMethod {
    /// Global magnitude pruning: the `sparsity` share of all convolution and linear weights
    /// with the smallest absolute values become zero (unstructured).
    #[default]
    Magnitude,
    /// Structured: in each convolution, the `sparsity` share of output channels with the
    /// smallest L1 norm become zero.
    Channel,
}

/// The settings of `compress.prune`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PruneConfig {
    /// `magnitude` (unstructured, global) or `channel` (structured, per convolution).
    pub method: PruneMethod,
    /// The share of weights (magnitude) or output channels (channel) to zero.
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub sparsity: f64,
    /// Epochs of training after pruning, on `train_data`, with the pruned weights held at
    /// zero (0: none).
    #[schemars(range(min = 0, max = 100_000))]
    pub fine_tune_epochs: usize,
    /// Learning rate of the fine-tuning (AdamW, cosine schedule).
    #[schemars(range(max = 1.0), extend("exclusiveMinimum" = 0.0))]
    pub learning_rate: f64,
    /// Samples per batch of the fine-tuning.
    #[schemars(range(min = 1, max = 65_536))]
    pub batch_size: usize,
}

impl Default for PruneConfig {
    fn default() -> PruneConfig {
        PruneConfig {
            method: PruneMethod::Magnitude,
            sparsity: 0.5,
            fine_tune_epochs: 0,
            learning_rate: 1e-4,
            batch_size: 32,
        }
    }
}

impl NodeConfig for PruneConfig {}

/// The sparsity of one pruned layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSparsity {
    /// The weight's path (`layer1.0.conv1.weight`).
    pub layer: String,
    /// Weights in the tensor.
    pub weights: usize,
    /// Of which zero.
    pub zeros: usize,
}

/// Whether a parameter is a weight that compression changes: the `weight` of a convolution
/// or a linear layer.
fn is_compressed_weight(path: &[(String, String)]) -> bool {
    matches!(
        path.last(),
        Some((name, container)) if name == "weight"
            && ["Struct:Conv2d", "Struct:Conv3d", "Struct:Linear"].contains(&container.as_str())
    )
}

fn is_conv_weight(path: &[(String, String)]) -> bool {
    matches!(
        path.last(),
        Some((name, container)) if name == "weight"
            && ["Struct:Conv2d", "Struct:Conv3d"].contains(&container.as_str())
    )
}

fn path_name(path: &[(String, String)]) -> String {
    path.iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(".")
}

fn int8(granularity: Granularity, shape: &[usize], is_conv: bool) -> QuantScheme {
    let base = QuantScheme::default()
        .with_value(QuantValue::Q8S)
        .with_store(QuantStore::Native);
    let largest_divisor = |n: usize| {
        (1..=n.min(255))
            .rev()
            .find(|&b| n.is_multiple_of(b))
            .unwrap_or(1)
    };
    let block: Option<Vec<u8>> = match (granularity, shape) {
        // Convolutions: [out, in, k...]: a block spans (part of) the input channels and the
        // kernel, so each output channel has its own scale(s).
        (Granularity::PerChannel, [_, i, kernel @ ..])
            if is_conv && kernel.iter().all(|&k| k <= 255) =>
        {
            let mut b = vec![u8::try_from(largest_divisor(*i)).unwrap_or(1)];
            b.extend(kernel.iter().map(|&k| u8::try_from(k).unwrap_or(1)));
            Some(b)
        }
        // Linear: [in, out]: a block spans (part of) an output column.
        (Granularity::PerChannel, [d_in, _]) if !is_conv => {
            Some(vec![u8::try_from(largest_divisor(*d_in)).unwrap_or(1), 1])
        }
        _ => None,
    };
    match block {
        Some(b) => base.per_block(b, ScaleDtype::F32),
        None => base.per_tensor(ScaleDtype::F32),
    }
}

/// Quantizes the weights of convolutions and linear layers to symmetric int8.
struct Quantize {
    path: Vec<(String, String)>,
    granularity: Granularity,
    count: usize,
}

impl ModuleMapper for Quantize {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push((name.to_owned(), container_type.to_owned()));
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if !is_compressed_weight(&self.path) {
            return param;
        }
        let shape = param.lazy_shape().to_vec();
        let scheme = int8(self.granularity, &shape, is_conv_weight(&self.path));
        self.count += 1;
        param.map(|t| {
            if matches!(t.dtype(), DType::QFloat(_)) {
                return t;
            }
            let range = compute_range(&scheme, &t, &Calibration::MinMax);
            let qparams = compute_q_params(&scheme, range);
            t.quantize(&scheme, qparams)
        })
    }
}

/// Turns quantized weights back into f32 (for files that cannot hold int8: safetensors).
struct Dequantize;

impl ModuleMapper for Dequantize {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            if matches!(t.dtype(), DType::QFloat(_)) {
                t.dequantize()
            } else {
                t
            }
        })
    }
}

/// `model` (in inference mode) with the weights of its convolutions and linear layers in
/// symmetric int8; also the number of tensors quantized.
pub fn quantize(model: &Model, config: &QuantizeConfig) -> (Model, usize) {
    let mut mapper = Quantize {
        path: Vec::new(),
        granularity: config.granularity,
        count: 0,
    };
    let model = model.valid().map(&mut mapper);
    (model, mapper.count)
}

/// `model` with every quantized weight back in f32 (the values the int8 weights stand for).
pub fn dequantize(model: &Model) -> Model {
    model.clone().map(&mut Dequantize)
}

/// Whether any weight of `model` is quantized.
pub fn is_quantized(model: &Model) -> bool {
    struct Find(bool);
    impl ModuleVisitor for Find {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0 |= matches!(param.val().dtype(), DType::QFloat(_));
        }
    }
    let mut find = Find(false);
    model.visit(&mut find);
    find.0
}

/// `model` in Burn's own format (burnpack: int8 weights stay int8, with their scales).
pub fn burnpack(model: &Model) -> Result<Vec<u8>> {
    model
        .clone()
        .into_record()
        .into_bytes()
        .map(|b| b.to_vec())
        .map_err(|e| Error::config("model", format!("cannot be serialized: {e}")))
}

/// The size of `model` saved as [`burnpack`].
pub fn stored_size(model: &Model) -> Result<usize> {
    burnpack(model).map(|b| b.len())
}

/// The absolute values of the weights that pruning considers, by layer.
struct Collect {
    path: Vec<(String, String)>,
    channel: bool,
    layers: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push((name.to_owned(), container_type.to_owned()));
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let wanted = if self.channel {
            is_conv_weight(&self.path)
        } else {
            is_compressed_weight(&self.path)
        };
        if !wanted {
            return;
        }
        let t = param.val();
        let shape = t.dims().to_vec();
        let values = t
            .abs()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default();
        self.layers.push((path_name(&self.path), shape, values));
    }
}

/// Zeroes weights by a per-layer mask of kept elements.
struct Mask<'a> {
    path: Vec<(String, String)>,
    masks: &'a std::collections::HashMap<String, Vec<bool>>,
    /// The masks as tensors, made at first use.
    tensors: &'a mut std::collections::HashMap<String, Tensor<1>>,
    /// Keep the masked weights trainable leaves (fine-tuning on the autodiff device).
    trainable: bool,
}

impl ModuleMapper for Mask<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push((name.to_owned(), container_type.to_owned()));
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = path_name(&self.path);
        let Some(keep) = self.masks.get(&name) else {
            return param;
        };
        let trainable = self.trainable;
        let tensors = &mut *self.tensors;
        param.map(|t| {
            let keep = tensors
                .entry(name)
                .or_insert_with(|| {
                    let values: Vec<f32> =
                        keep.iter().map(|&k| if k { 1.0 } else { 0.0 }).collect();
                    Tensor::<1>::from_floats(values.as_slice(), &t.device())
                })
                .clone()
                .reshape(t.shape());
            let masked = t * keep;
            if trainable {
                masked.detach().require_grad()
            } else {
                masked
            }
        })
    }
}

/// `model` (in inference mode) pruned as `config` says, with the sparsity of each layer it
/// considered.
pub fn prune(model: &Model, config: &PruneConfig) -> Result<(Model, Vec<LayerSparsity>)> {
    if !(0.0..1.0).contains(&config.sparsity) {
        return Err(Error::config("sparsity", "must be in [0, 1)"));
    }
    let model = dequantize(&model.valid());
    let mut collect = Collect {
        path: Vec::new(),
        channel: config.method == PruneMethod::Channel,
        layers: Vec::new(),
    };
    model.visit(&mut collect);
    let masks: std::collections::HashMap<String, Vec<bool>> = match config.method {
        PruneMethod::Magnitude => {
            let mut all: Vec<f32> = collect
                .layers
                .iter()
                .flat_map(|l| l.2.iter().copied())
                .collect();
            let k = ((all.len() as f64) * config.sparsity).floor() as usize;
            if k == 0 || all.is_empty() {
                return Ok((model, Vec::new()));
            }
            let (_, threshold, _) = all.select_nth_unstable_by(k - 1, f32::total_cmp);
            let threshold = *threshold;
            // Ties at the threshold: prune exactly k weights, the first ones met.
            let mut budget = k;
            collect
                .layers
                .iter()
                .map(|(name, _, values)| {
                    let keep = values
                        .iter()
                        .map(|&v| {
                            if v.total_cmp(&threshold).is_lt()
                                || (v.total_cmp(&threshold).is_eq() && budget > 0)
                            {
                                budget = budget.saturating_sub(1);
                                false
                            } else {
                                true
                            }
                        })
                        .collect();
                    (name.clone(), keep)
                })
                .collect()
        }
        PruneMethod::Channel => collect
            .layers
            .iter()
            .map(|(name, shape, values)| {
                let out = shape[0].max(1);
                let per = values.len() / out;
                let mut norms: Vec<(f32, usize)> = (0..out)
                    .map(|c| (values[c * per..(c + 1) * per].iter().sum(), c))
                    .collect();
                norms.sort_by(|a, b| a.0.total_cmp(&b.0));
                let cut = ((out as f64) * config.sparsity).floor() as usize;
                let mut keep_channel = vec![true; out];
                for &(_, c) in &norms[..cut] {
                    keep_channel[c] = false;
                }
                let keep = (0..values.len()).map(|i| keep_channel[i / per]).collect();
                (name.clone(), keep)
            })
            .collect(),
    };
    let mut tensors = std::collections::HashMap::new();
    let mut mapper = Mask {
        path: Vec::new(),
        masks: &masks,
        tensors: &mut tensors,
        trainable: false,
    };
    let pruned = model.map(&mut mapper);
    Ok((
        pruned.clone(),
        sparsity(&pruned, config.method == PruneMethod::Channel),
    ))
}

/// The zeros of each weight that pruning considers.
pub fn sparsity(model: &Model, channel: bool) -> Vec<LayerSparsity> {
    let mut collect = Collect {
        path: Vec::new(),
        channel,
        layers: Vec::new(),
    };
    model.visit(&mut collect);
    collect
        .layers
        .into_iter()
        .map(|(layer, _, values)| LayerSparsity {
            layer,
            weights: values.len(),
            zeros: values.iter().filter(|&&v| v == 0.0).count(),
        })
        .collect()
}

/// The zeros of a pruned model, kept through fine-tuning: [`ZeroMask::apply`] after each
/// optimizer step sets them back to zero.
#[derive(Debug, Default)]
pub struct ZeroMask {
    masks: std::collections::HashMap<String, Vec<bool>>,
    tensors: std::collections::HashMap<String, Tensor<1>>,
}

impl ZeroMask {
    /// The zero weights of the layers pruning considers (`channel`: convolutions only).
    pub fn of(model: &Model, channel: bool) -> ZeroMask {
        let mut collect = Collect {
            path: Vec::new(),
            channel,
            layers: Vec::new(),
        };
        model.visit(&mut collect);
        ZeroMask {
            masks: collect
                .layers
                .into_iter()
                .map(|(name, _, values)| (name, values.iter().map(|&v| v != 0.0).collect()))
                .collect(),
            tensors: std::collections::HashMap::new(),
        }
    }

    /// `model` (a training model) with the masked weights zero again, still trainable.
    pub fn apply(&mut self, model: Model) -> Model {
        let mut mapper = Mask {
            path: Vec::new(),
            masks: &self.masks,
            tensors: &mut self.tensors,
            trainable: true,
        };
        model.map(&mut mapper)
    }
}
