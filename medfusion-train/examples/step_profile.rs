//! Where the time of one training step goes (WORKLOADS.md section 6), phase by phase.
#![allow(missing_docs, clippy::pedantic, clippy::print_stdout)]
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, FloatDType, Int, Tensor};
use medfusion_train::{DatasetInfo, ImageShape, ModelConfig, cast_model};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model_name = args.get(1).map_or("cnn", String::as_str);
    let bf16 = args.get(2).is_some_and(|a| a == "bf16");
    let device = Device::flex().autodiff();
    let info = DatasetInfo {
        classes: 2,
        class_names: vec![],
        image: Some(ImageShape { channels: 1, height: 64, width: 64 }),
        tabular_features: None,
    };
    let mut model = model_name.parse::<ModelConfig>().unwrap().build(&info, &device, 0).unwrap();
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let x = Tensor::<4>::random([32, 1, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<1, Int>::from_ints([0, 1].repeat(16).as_slice(), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let names = ["cast", "forward", "loss", "backward", "grads", "optim", "readback"];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for step in 0..25 {
        let mut t = Instant::now();
        let mut lap = |i: usize, t: &mut Instant| {
            if step >= 5 {
                times[i].push(t.elapsed().as_secs_f64() * 1e3);
            }
            *t = Instant::now();
        };
        let (low, input) = if bf16 {
            (cast_model(&model, FloatDType::BF16), x.clone().cast(FloatDType::BF16))
        } else {
            (model.clone(), x.clone())
        };
        lap(0, &mut t);
        let logits = low.forward_parts(Some(input), None).unwrap();
        lap(1, &mut t);
        let loss = loss_fn.forward(logits.cast(FloatDType::F32), y.clone());
        lap(2, &mut t);
        let grads = loss.backward();
        lap(3, &mut t);
        let grads = GradientsParams::from_grads(grads, &model);
        lap(4, &mut t);
        model = optim.step(1e-3, model, grads);
        lap(5, &mut t);
        let _l: f32 = loss.into_scalar();
        lap(6, &mut t);
    }
    let mut total = 0.0;
    for (n, t) in names.iter().zip(times) {
        let m = median(t);
        total += m;
        println!("{n:>9}: {m:8.2} ms");
    }
    println!("{:>9}: {total:8.2} ms", "sum");
}
