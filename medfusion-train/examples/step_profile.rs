//! Where the time of one training step goes (WORKLOADS.md section 6).
//!
//! `cargo run --release -p medfusion-train --example step_profile -- [cnn|resnet18] [bf16]`
//! prints the median wall and process CPU time of each phase of a step (Burn directly, as the
//! trainer does it), then for the `cnn` the convolution kernels the step runs, one by one:
//! forward, input gradient (Burn's transposed convolution) and weight gradient (Burn's
//! convolution with batch and channels swapped).
#![allow(clippy::print_stdout)]

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Device, Distribution, FloatDType, Int, Tensor};
use medfusion_train::{
    DatasetInfo, ImageShape, ModelConfig, OptimizerKind, TrainConfig, build_optimizer, cast_model,
    tune_allocator,
};

/// Process CPU time in milliseconds (all threads).
fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &raw mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median (wall, cpu) milliseconds of `f` over `n` runs after 2 warm-ups.
fn time<T>(n: usize, mut f: impl FnMut() -> T) -> (f64, f64) {
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for i in 0..n + 2 {
        let (t, c) = (Instant::now(), cpu_ms());
        std::hint::black_box(f());
        if i >= 2 {
            wall.push(t.elapsed().as_secs_f64() * 1e3);
            cpu.push(cpu_ms() - c);
        }
    }
    (median(wall), median(cpu))
}

fn step_phases(model_name: &str, bf16: bool) {
    let device = Device::flex().autodiff();
    let info = DatasetInfo {
        classes: 2,
        class_names: vec![],
        image: Some(ImageShape {
            channels: 1,
            depth: 1,
            height: 64,
            width: 64,
        }),
        tabular_features: None,
    };
    let mut model = model_name
        .parse::<ModelConfig>()
        .expect("model name")
        .build(&info, &device, 0)
        .expect("model");
    let burn_adam = std::env::var("BURN_ADAM").is_ok_and(|v| !v.is_empty());
    let mut optim = if burn_adam {
        burn::optim::AdamConfig::new().with_epsilon(1e-8).init()
    } else {
        build_optimizer(&TrainConfig {
            optimizer: OptimizerKind::Adam,
            weight_decay: 0.0,
            ..TrainConfig::default()
        })
    };
    let x = Tensor::<4>::random([32, 1, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<1, Int>::from_ints([0, 1].repeat(16).as_slice(), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let names = [
        "cast",
        "forward",
        "loss",
        "backward",
        "grads",
        "optimizer",
        "readback",
    ];
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for step in 0..25 {
        let (mut t, mut c) = (Instant::now(), cpu_ms());
        let mut lap = |i: usize, t: &mut Instant, c: &mut f64| {
            if step >= 5 {
                wall[i].push(t.elapsed().as_secs_f64() * 1e3);
                cpu[i].push(cpu_ms() - *c);
            }
            (*t, *c) = (Instant::now(), cpu_ms());
        };
        let (low, input) = if bf16 {
            (
                cast_model(&model, FloatDType::BF16),
                x.clone().cast(FloatDType::BF16),
            )
        } else {
            (model.clone(), x.clone())
        };
        lap(0, &mut t, &mut c);
        let logits = low.forward_parts(Some(input), None).expect("forward");
        lap(1, &mut t, &mut c);
        let loss = loss_fn.forward(logits.cast(FloatDType::F32), y.clone());
        lap(2, &mut t, &mut c);
        let value: f32 = loss.clone().into_scalar();
        let grads = loss.backward();
        drop((loss, low));
        lap(3, &mut t, &mut c);
        let grads = GradientsParams::from_grads(grads, &model);
        lap(4, &mut t, &mut c);
        model = optim.step(1e-3, model, grads);
        lap(5, &mut t, &mut c);
        std::hint::black_box(value);
        lap(6, &mut t, &mut c);
    }
    let (mut tw, mut tc) = (0.0, 0.0);
    println!(
        "{model_name} {}: phase, median wall ms, median CPU ms",
        if bf16 { "bf16" } else { "fp32" }
    );
    for ((n, w), c) in names.iter().zip(wall).zip(cpu) {
        let (w, c) = (median(w), median(c));
        (tw, tc) = (tw + w, tc + c);
        println!("{n:>10} {w:9.2} {c:9.2}");
    }
    println!("{:>10} {tw:9.2} {tc:9.2}", "sum");
}

fn cnn_kernels() {
    let device = Device::flex();
    let normal = Distribution::Normal(0.0, 1.0);
    println!("cnn conv kernels (fp32, no autodiff): layer, kind, median wall ms, median CPU ms");
    let layers = [
        (1, 32, 1, 64),
        (32, 64, 2, 64),
        (64, 128, 2, 32),
        (128, 128, 2, 16),
    ];
    let (mut tw, mut tc) = (0.0, 0.0);
    for (i, &(cin, cout, s, side)) in layers.iter().enumerate() {
        let out = side / s;
        let x = Tensor::<4>::random([32, cin, side, side], normal, &device);
        let w = Tensor::<4>::random([cout, cin, 3, 3], normal, &device);
        let b = Tensor::<1>::random([cout], normal, &device);
        let g = Tensor::<4>::random([32, cout, out, out], normal, &device);
        let fwd = time(8, || {
            conv2d(
                x.clone(),
                w.clone(),
                Some(b.clone()),
                ConvOptions::new([s, s], [1, 1], [1, 1], 1),
            )
        });
        let pad_out = (side + 2 - 3) % s;
        let dx = time(8, || {
            conv_transpose2d(
                g.clone(),
                w.clone(),
                None,
                ConvTransposeOptions::new([s, s], [1, 1], [pad_out, pad_out], [1, 1], 1),
            )
        });
        let dw = time(8, || {
            conv2d(
                x.clone().swap_dims(0, 1),
                g.clone().swap_dims(0, 1),
                None,
                ConvOptions::new([1, 1], [1, 1], [s, s], 1),
            )
            .swap_dims(0, 1)
            .slice([0..cout, 0..cin, 0..3, 0..3])
        });
        let kinds: &[(&str, (f64, f64))] = if i == 0 {
            &[("forward", fwd), ("weight grad", dw)]
        } else {
            &[("forward", fwd), ("input grad", dx), ("weight grad", dw)]
        };
        for (kind, (w, c)) in kinds {
            (tw, tc) = (tw + w, tc + c);
            println!(
                "conv{} {cin}->{cout} s{s} {side}px {kind:>12} {w:9.2} {c:9.2}",
                i + 1
            );
        }
    }
    println!("{:>31} {tw:9.2} {tc:9.2}", "conv sum");
    let ad = Device::flex().autodiff();
    let (mut tw, mut tc) = (0.0, 0.0);
    for &(cout, side) in &[(32, 64), (64, 32), (128, 16), (128, 8)] {
        let bn = burn::nn::BatchNormConfig::new(cout).init(&ad);
        let x = Tensor::<4>::random([32, cout, side, side], normal, &ad).require_grad();
        let fwd = time(8, || burn::tensor::activation::relu(bn.forward(x.clone())));
        let both = time(8, || {
            burn::tensor::activation::relu(bn.forward(x.clone()))
                .sum()
                .backward()
        });
        for (kind, (w, c)) in [("bn+relu forward", fwd), ("bn+relu fwd+bwd", both)] {
            if kind.ends_with("bwd") {
                (tw, tc) = (tw + w, tc + c);
            }
            println!("{cout}ch {side}px {kind:>22} {w:9.2} {c:9.2}");
        }
    }
    println!("{:>31} {tw:9.2} {tc:9.2}", "bn+relu fwd+bwd sum");
}

fn main() {
    // `DEFAULT_MALLOC=1` keeps glibc's defaults, to see what the tuning saves.
    if std::env::var("DEFAULT_MALLOC").is_err() {
        tune_allocator();
    }
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).map_or("cnn", String::as_str);
    let bf16 = args.get(2).is_some_and(|a| a == "bf16");
    step_phases(model, bf16);
    if model == "cnn" && !bf16 {
        cnn_kernels();
    }
}
