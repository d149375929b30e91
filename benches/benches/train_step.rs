//! WORKLOADS.md section 6: one training step on the CPU (`flex`) backend.
//!
//! Batch 32 x 1 x 64 x 64, two classes, Adam lr 1e-3, cross-entropy, a fixed batch; one step
//! is forward, backward, optimizer step and the loss read back, through the same
//! `medfusion_train::Trainer::step` the training loop uses. Models: the `cnn` of the workload
//! (241,218 parameters) and ResNet-18 with a 1-channel stem (11,171,266), in f32 and with
//! bf16 mixed precision. Reference (PyTorch 2.15, 2 threads): cnn 102 ms fp32 / 48 ms bf16,
//! resnet18 202 ms / 125 ms.
//!
//! `MEDFUSION_BENCH_MODELS=cnn` limits the models.

use std::time::Duration;

use burn::tensor::{Device, Int, Tensor, TensorData};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use medfusion_bench::SplitMix64;
use medfusion_train::{
    Batch, DatasetInfo, ImageShape, OptimizerKind, SchedulerKind, TrainConfig, Trainer,
};

const BATCH: usize = 32;
const SIDE: usize = 64;

fn info() -> DatasetInfo {
    DatasetInfo {
        classes: 2,
        class_names: Vec::new(),
        image: Some(ImageShape {
            channels: 1,
            depth: 1,
            height: SIDE,
            width: SIDE,
        }),
        tabular_features: None,
    }
}

fn batch(device: &Device) -> Batch {
    let mut rng = SplitMix64::new(6);
    let images: Vec<f32> = (0..BATCH * SIDE * SIDE)
        .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
        .collect();
    let labels: Vec<i64> = (0..BATCH as i64).map(|i| i % 2).collect();
    Batch {
        volumes: None,
        images: Some(Tensor::from_data(
            TensorData::new(images, [BATCH, 1, SIDE, SIDE]),
            device,
        )),
        tabular: None,
        labels: Tensor::<1, Int>::from_data(TensorData::new(labels, [BATCH]), device),
    }
}

fn train_step(c: &mut Criterion) {
    // As the `medfusion` binary does: training buffers are reused, not mapped anew.
    medfusion_train::tune_allocator();
    let models = std::env::var("MEDFUSION_BENCH_MODELS").unwrap_or_else(|_| "cnn,resnet18".into());
    let mut group = c.benchmark_group("train_step");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(1500))
        .measurement_time(Duration::from_secs(8));
    for model in models.split(',') {
        for amp in [false, true] {
            let config = TrainConfig {
                model: model.parse().expect("a model name"),
                batch_size: BATCH,
                learning_rate: 1e-3,
                optimizer: OptimizerKind::Adam,
                weight_decay: 0.0,
                scheduler: SchedulerKind::None,
                use_amp: amp,
                ..TrainConfig::default()
            };
            let mut trainer = Trainer::new(&Device::flex(), &config, &info(), 1).expect("trainer");
            let input = batch(trainer.device());
            // The workload's 5 warm-up steps (criterion warms up further).
            for _ in 0..5 {
                trainer.step(&input).expect("step");
            }
            let name = format!("{model}/{}", if amp { "bf16" } else { "fp32" });
            group.bench_function(name, |b| {
                b.iter(|| {
                    let loss = trainer.step(&input).expect("step");
                    assert!(loss.is_finite());
                    loss
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
