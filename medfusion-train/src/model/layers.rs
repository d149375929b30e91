//! Building blocks shared by the models, and the deterministic weight initialisation.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};

/// A `k`x`k` convolution with symmetric padding `pad`.
pub(crate) fn conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    pad: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(bias)
        .init(device)
}

/// Batch normalisation over `features` channels (PyTorch's defaults).
pub(crate) fn batch_norm(features: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(features).init(device)
}

/// A fully connected layer.
pub(crate) fn linear(input: usize, output: usize, device: &Device) -> Linear {
    LinearConfig::new(input, output).init(device)
}

/// Batch normalisation that runs in the dtype of its own parameters.
///
/// Under mixed precision the batch-norm layers keep f32 parameters and running statistics (the
/// statistics are shared with the master model, see [`crate::amp`]); the activation is cast to
/// f32 for the layer and back, as autocast does.
pub(crate) fn norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let param_dtype = bn.gamma.val().dtype();
    let dtype = x.dtype();
    if dtype == param_dtype {
        bn.forward(x)
    } else {
        bn.forward(x.cast(param_dtype)).cast(dtype)
    }
}

/// The number of trainable parameters (batch-norm running statistics are buffers, not
/// parameters, as in PyTorch).
pub fn count_parameters<M: Module>(module: &M) -> usize {
    struct Counter {
        path: Vec<String>,
        count: usize,
    }
    impl ModuleVisitor for Counter {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_owned());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if !is_buffer(self.path.last().map(String::as_str)) {
                self.count += param.lazy_shape().num_elements();
            }
        }
    }
    let mut counter = Counter {
        path: Vec::new(),
        count: 0,
    };
    module.visit(&mut counter);
    counter.count
}

/// Whether a field name is a running statistic rather than a parameter.
fn is_buffer(name: Option<&str>) -> bool {
    matches!(name, Some("running_mean" | "running_var"))
}

/// Re-initialises every parameter from `seed` alone, independent of Burn's global generator
/// (so two models built with the same seed are equal even when other threads draw random
/// numbers). Schemes follow torchvision: convolutions Kaiming-normal (fan-out, ReLU gain),
/// linear layers and biases uniform in ±1/sqrt(fan_in), batch/layer norms 1 and 0, other
/// tensors (tokens, positional embeddings) normal with std 0.02.
pub(crate) fn init_weights<M: Module>(module: M, seed: u64) -> M {
    let mut mapper = InitMapper {
        seed,
        path: Vec::new(),
        containers: Vec::new(),
        last_fan_in: 1,
    };
    module.map(&mut mapper)
}

struct InitMapper {
    seed: u64,
    path: Vec<String>,
    containers: Vec<String>,
    last_fan_in: usize,
}

impl ModuleMapper for InitMapper {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_owned());
        self.containers.push(container_type.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
        self.containers.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let container = self.containers.last().map_or("", String::as_str);
        let field = self.path.last().map_or("", String::as_str);
        if container.ends_with(":BatchNorm") || container.ends_with(":LayerNorm") {
            return param;
        }
        let shape = param.lazy_shape();
        let dims = shape.to_vec();
        let n = shape.num_elements();
        let mut rng = Rng::new(self.seed, &self.path.join("."));
        let values: Vec<f32> = match (container, field, dims.as_slice()) {
            (c, "weight", [out, inp, kh, kw]) if c.ends_with(":Conv2d") => {
                self.last_fan_in = inp * kh * kw;
                let std = (2.0 / (out * kh * kw) as f64).sqrt();
                (0..n).map(|_| (rng.normal() * std) as f32).collect()
            }
            (c, "weight", [out, inp, kd, kh, kw]) if c.ends_with(":Conv3d") => {
                self.last_fan_in = inp * kd * kh * kw;
                let std = (2.0 / (out * kd * kh * kw) as f64).sqrt();
                (0..n).map(|_| (rng.normal() * std) as f32).collect()
            }
            (c, "weight", [inp, _out]) if c.ends_with(":Linear") => {
                self.last_fan_in = *inp;
                uniform(&mut rng, n, *inp)
            }
            (_, "bias", _) => uniform(&mut rng, n, self.last_fan_in),
            _ => (0..n).map(|_| (rng.normal() * 0.02) as f32).collect(),
        };
        let device = param.lazy_device();
        let mut tensor = Tensor::<D>::from_data(TensorData::new(values, shape), &device);
        if device.is_autodiff() {
            tensor = tensor.require_grad();
        }
        Param::initialized(param.id, tensor)
    }
}

fn uniform(rng: &mut Rng, n: usize, fan_in: usize) -> Vec<f32> {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    (0..n)
        .map(|_| ((rng.unit() * 2.0 - 1.0) * bound) as f32)
        .collect()
}

/// splitmix64, seeded from the model seed and the parameter's path.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, path: &str) -> Rng {
        // FNV-1a of the path, mixed with the seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in path.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(seed ^ h.rotate_left(17))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}
