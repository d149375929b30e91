//! Compression of a trained ResNet-18: int8 weights agree with the float model on at least
//! 98% of the synthetic test set at about a quarter of the size, survive a safetensors round
//! trip exactly, and pruning zeroes what it says.

use medfusion_train::compress::{
    Granularity, PruneConfig, PruneMethod, QuantizeConfig, ZeroMask, dequantize, is_quantized,
    prune, quantize, sparsity, stored_size,
};
use medfusion_train::data::{BatchLoader, DatasetConfig, LoaderConfig, SplitName};
use medfusion_train::{
    DeviceSpec, Model, NoHooks, Predictions, TrainConfig, TrainHooks, TrainedModel, fine_tune,
    predict,
};
use serde_json::json;

/// Fine-tuning hooks that hold a pruned model's zeros.
struct Keep(ZeroMask);

impl TrainHooks for Keep {
    fn after_step(&mut self, model: Model) -> Model {
        self.0.apply(model)
    }
}

fn argmax(p: &Predictions) -> Vec<usize> {
    p.probabilities
        .chunks(p.classes)
        .map(|row| {
            row.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0
        })
        .collect()
}

fn agreement(a: &Predictions, b: &Predictions) -> f64 {
    let (a, b) = (argmax(a), argmax(b));
    a.iter().zip(&b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

#[test]
fn a_quantized_resnet18_agrees_with_the_float_model_and_pruning_zeroes_what_it_says() {
    let splits = DatasetConfig::from_json(
        "dataset.synthetic",
        &json!({ "samples": 480, "image_size": 32, "modality": "image" }),
        Some(11),
    )
    .unwrap()
    .load()
    .unwrap();
    let loader = |name, shuffle| {
        BatchLoader::new(
            splits.split(name).clone(),
            LoaderConfig {
                batch_size: 32,
                shuffle,
                num_workers: 0,
                ..LoaderConfig::default()
            },
        )
        .unwrap()
    };
    let (train, val, test) = (
        loader(SplitName::Train, true),
        loader(SplitName::Val, false),
        loader(SplitName::Test, false),
    );
    let config: TrainConfig = TrainConfig::from_json(
        json!({ "model": "resnet18", "epochs": 2, "learning_rate": 1e-3, "device": "cpu", "num_workers": 0 })
            .as_object()
            .unwrap(),
    )
    .unwrap();
    let info = splits.split(SplitName::Train).info().model_info();
    let outcome =
        medfusion_train::train(&config, &info, &train, Some(&val), &mut NoHooks, None).unwrap();
    let device = DeviceSpec::Cpu.resolve().unwrap();
    let float = outcome.model.model;
    let reference = predict(&float, &test, &device).unwrap();
    let float_size = stored_size(&float).unwrap();

    for granularity in [Granularity::PerChannel, Granularity::PerTensor] {
        let q = QuantizeConfig {
            granularity,
            ..QuantizeConfig::default()
        };
        let (quantized, tensors) = quantize(&float, &q);
        assert!(is_quantized(&quantized));
        assert_eq!(tensors, 21, "20 convolutions and the classifier");
        let got = predict(&quantized, &test, &device).unwrap();
        let agree = agreement(&reference, &got);
        assert!(agree >= 0.98, "{granularity:?}: agreement {agree}");
        let size = stored_size(&quantized).unwrap();
        assert!(
            (size as f64) < 0.3 * float_size as f64,
            "{granularity:?}: {size} bytes against {float_size} in f32"
        );

        // Saved as safetensors (f32 values of the int8 weights) and quantized again: the
        // same model, to the bit.
        let trained = TrainedModel {
            config: config.model.clone(),
            info: info.clone(),
            model: quantized.clone(),
        };
        let bytes = trained.to_safetensors().unwrap();
        let restored =
            TrainedModel::from_safetensors(config.model.clone(), info.clone(), bytes, &device)
                .unwrap();
        assert!(!is_quantized(&restored.model));
        let (requantized, _) = quantize(&restored.model, &q);
        let again = predict(&requantized, &test, &device).unwrap();
        assert_eq!(again.probabilities, got.probabilities, "{granularity:?}");
        assert!(!is_quantized(&dequantize(&quantized)));
    }

    // Global magnitude pruning to 60%: exactly 60% of the weights considered are zero.
    let (pruned, layers) = prune(
        &float,
        &PruneConfig {
            method: PruneMethod::Magnitude,
            sparsity: 0.6,
            ..PruneConfig::default()
        },
    )
    .unwrap();
    let (w, z) = layers
        .iter()
        .fold((0, 0), |(w, z), l| (w + l.weights, z + l.zeros));
    assert_eq!(layers.len(), 21);
    assert!(
        (z as f64 / w as f64 - 0.6).abs() < 1e-3,
        "{z} of {w} weights are zero"
    );
    assert_eq!(sparsity(&pruned, false), layers);
    let before = predict(&pruned, &test, &device).unwrap();

    // Fine-tuning with the zeros held: the weights move, the zeros stay.
    let tuning = TrainConfig {
        epochs: 1,
        learning_rate: 1e-4,
        ..config.clone()
    };
    let tuned = fine_tune(
        &device,
        &tuning,
        &info,
        &pruned,
        &train,
        Some(&val),
        &mut Keep(ZeroMask::of(&pruned, false)),
    )
    .unwrap()
    .model
    .model;
    let after = predict(&tuned, &test, &device).unwrap();
    assert_ne!(
        before.probabilities, after.probabilities,
        "fine-tuning changed nothing"
    );
    let kept = sparsity(&tuned, false);
    for (a, b) in kept.iter().zip(&layers) {
        assert!(
            a.zeros >= b.zeros,
            "{}: {} zeros after fine-tuning, {} before",
            a.layer,
            a.zeros,
            b.zeros
        );
    }

    // Channel pruning: a quarter of each convolution's output channels, whole.
    let (_, layers) = prune(
        &float,
        &PruneConfig {
            method: PruneMethod::Channel,
            sparsity: 0.25,
            ..PruneConfig::default()
        },
    )
    .unwrap();
    assert_eq!(layers.len(), 20, "convolutions only");
    for l in &layers {
        let share = l.zeros as f64 / l.weights as f64;
        assert!((share - 0.25).abs() < 0.02, "{}: {share}", l.layer);
    }
}
