//! The training loop on the CPU backend: mixed precision, loss scaling, accumulation,
//! resume, early stopping, cancellation, out-of-memory injection and checkpoints.
#![allow(clippy::float_cmp)] // loss scales are powers of two

use burn::tensor::{Device, Int, Tensor, TensorData};
use medfusion_train::{
    AmpDtype, Batch, BatchSource, CancelToken, DatasetInfo, EpochRecord, Error, ImageShape,
    InMemorySource, ModelConfig, OptimizerKind, Progress, SchedulerKind, TrainConfig, TrainHooks,
    TrainState, TrainedModel, Trainer, load_model_safetensors, model_to_safetensors, predict,
    train_on,
};

/// Deterministic pseudo-random numbers in [-1, 1).
fn noise(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

const SIDE: usize = 8;
const FEATURES: usize = 4;

fn info() -> DatasetInfo {
    DatasetInfo {
        classes: 2,
        class_names: vec!["benign".into(), "malignant".into()],
        image: Some(ImageShape {
            channels: 1,
            depth: 1,
            height: SIDE,
            width: SIDE,
        }),
        tabular_features: Some(FEATURES),
    }
}

/// `sizes.len()` batches cut from one stream of samples (so `[10]` and `[4, 4, 2]` hold the
/// same samples); class 1 images are brighter and its features shifted.
fn batches(sizes: &[usize], seed: u64, scale: f32) -> InMemorySource {
    let device = Device::flex();
    let total: usize = sizes.iter().sum();
    let labels: Vec<i64> = (0..total as i64).map(|i| i % 2).collect();
    let mut images = noise(seed, total * SIDE * SIDE);
    let mut tabular = noise(seed + 7, total * FEATURES);
    for (i, &l) in labels.iter().enumerate() {
        let shift = if l == 1 { 0.8 } else { -0.8 };
        images[i * SIDE * SIDE..(i + 1) * SIDE * SIDE]
            .iter_mut()
            .for_each(|v| *v = (*v + shift) * scale);
        tabular[i * FEATURES..(i + 1) * FEATURES]
            .iter_mut()
            .for_each(|v| *v = (*v + shift) * scale);
    }
    let mut start = 0;
    let out = sizes
        .iter()
        .map(|&n| {
            let range = start..start + n;
            start += n;
            let img = images[range.start * SIDE * SIDE..range.end * SIDE * SIDE].to_vec();
            let tab = tabular[range.start * FEATURES..range.end * FEATURES].to_vec();
            Batch {
                volumes: None,
                images: Some(Tensor::<4>::from_data(
                    TensorData::new(img, [n, 1, SIDE, SIDE]),
                    &device,
                )),
                tabular: Some(Tensor::<2>::from_data(
                    TensorData::new(tab, [n, FEATURES]),
                    &device,
                )),
                labels: Tensor::<1, Int>::from_data(
                    TensorData::new(labels[range].to_vec(), [n]),
                    &device,
                ),
            }
        })
        .collect();
    InMemorySource::new(out)
}

fn config(model: &str, epochs: usize) -> TrainConfig {
    TrainConfig {
        model: model.parse().unwrap(),
        epochs,
        batch_size: 8,
        learning_rate: 1e-2,
        scheduler: SchedulerKind::None,
        checkpoint_interval: 0,
        device: medfusion_train::DeviceSpec::Cpu,
        ..TrainConfig::default()
    }
}

fn mlp_without_batch_norm() -> ModelConfig {
    let mut model: ModelConfig = "mlp".parse().unwrap();
    model.tabular_batch_norm = false;
    model.tabular_hidden = vec![8];
    model
}

#[derive(Default)]
struct Recorder {
    progress: Vec<Progress>,
    epochs: Vec<EpochRecord>,
    states: Vec<TrainState>,
    cancel_after_progress: Option<CancelToken>,
    fault: Option<(usize, usize, String)>,
}

impl TrainHooks for Recorder {
    fn on_progress(&mut self, p: &Progress) {
        self.progress.push(p.clone());
        if let Some(token) = &self.cancel_after_progress {
            token.cancel();
        }
    }
    fn is_cancelled(&self) -> bool {
        self.cancel_after_progress
            .as_ref()
            .is_some_and(CancelToken::is_cancelled)
    }
    fn on_epoch(&mut self, record: &EpochRecord) {
        self.epochs.push(record.clone());
    }
    fn on_checkpoint(
        &mut self,
        state: &TrainState,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.states.push(state.clone());
        Ok(())
    }
    fn inject_fault(&mut self, epoch: usize, batch: usize) -> Option<String> {
        let (e, b, message) = self.fault.as_ref()?;
        (*e == epoch && *b == batch).then(|| message.clone())
    }
}

fn weights(model: &medfusion_train::Model) -> Vec<f32> {
    let bytes = model_to_safetensors(model).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort_unstable();
    names
        .iter()
        .flat_map(|n| {
            let t = file.tensor(n).unwrap();
            t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn mixed_precision_bf16_and_f16_train_and_the_loss_falls() {
    let data = batches(&[8, 8, 8, 8], 1, 1.0);
    for dtype in [AmpDtype::Bf16, AmpDtype::F16] {
        let config = TrainConfig {
            use_amp: true,
            amp_dtype: dtype,
            ..config("fusion_cnn", 4)
        };
        let mut hooks = Recorder::default();
        let out = train_on(
            &Device::flex(),
            &config,
            &info(),
            &data,
            Some(&data),
            &mut hooks,
            None,
        )
        .unwrap();
        let losses: Vec<f64> = out.history.iter().map(|r| r.train_loss).collect();
        assert!(losses[3] < losses[0] * 0.7, "{dtype:?}: {losses:?}");
        assert_eq!(
            out.history.iter().map(|r| r.skipped_steps).sum::<u64>(),
            0,
            "{dtype:?}"
        );
        let expected_scale = if dtype == AmpDtype::F16 {
            65_536.0
        } else {
            1.0
        };
        assert_eq!(out.history[3].loss_scale, expected_scale);
        let accuracy = out.history[3].val_metrics["accuracy"];
        assert!(accuracy > 0.9, "{dtype:?}: accuracy {accuracy}");
    }
}

/// Euclidean norm of `a - b`.
fn distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[test]
fn f16_sgd_with_loss_scaling_moves_the_weights_as_f32_does() {
    // The mixed-precision test above uses AdamW, whose update does not change when the
    // gradients are scaled: it would pass with the loss scale left in the gradients. Plain
    // SGD's update is proportional to the gradient, so here a missing unscale shows as an
    // update 65,536 times too large.
    let data = batches(&[8, 8, 8, 8], 3, 1.0);
    let run = |use_amp: bool| {
        let config = TrainConfig {
            model: mlp_without_batch_norm(),
            optimizer: OptimizerKind::Sgd,
            momentum: 0.0,
            weight_decay: 0.0,
            learning_rate: 0.05,
            use_amp,
            amp_dtype: AmpDtype::F16,
            ..config("mlp", 1)
        };
        let mut trainer = Trainer::new(&Device::flex(), &config, &info(), 4).unwrap();
        let start = weights(trainer.model());
        let losses: Vec<f32> = data
            .batches(0, &trainer.device().clone())
            .map(|b| trainer.step(&b.unwrap()).unwrap())
            .collect();
        let scaler = *trainer.loss_scaler();
        (start, weights(trainer.model()), losses, scaler)
    };
    let (start32, end32, losses32, _) = run(false);
    let (start16, end16, losses16, scaler) = run(true);
    assert_eq!(start16, start32, "same seed, same initial weights");
    let (moved32, moved16) = (distance(&end32, &start32), distance(&end16, &start16));
    assert!(moved32 > 1e-3, "f32 SGD moved the weights by {moved32}");
    let ratio = moved16 / moved32;
    assert!(
        (0.8..1.25).contains(&ratio),
        "f16 moved the weights {ratio:.3}x as far as f32 ({moved16} vs {moved32})"
    );
    let apart = distance(&end16, &end32);
    assert!(
        apart < 0.1 * moved32,
        "f16 and f32 weights are {apart} apart after {} steps (moved {moved32})",
        losses32.len()
    );
    for (l16, l32) in losses16.iter().zip(&losses32) {
        assert!(
            (l16 - l32).abs() < 0.02,
            "losses {losses16:?} vs {losses32:?}"
        );
    }
    assert_eq!(scaler.scale, 65_536.0, "f16 ran with loss scaling");
    assert_eq!(scaler.skipped_steps, 0);
}

#[test]
fn empty_validation_data_is_an_error_naming_it() {
    let data = batches(&[8], 1, 1.0);
    let err = train_on(
        &Device::flex(),
        &config("mlp", 1),
        &info(),
        &data,
        Some(&InMemorySource::new(Vec::new())),
        &mut Recorder::default(),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "val_data"),
        "{err}"
    );
    assert!(err.to_string().contains("no samples"), "{err}");
}

#[test]
fn saved_weights_of_another_shape_are_described_in_words() {
    let device = Device::flex();
    let model: ModelConfig = "mlp".parse().unwrap();
    let three = DatasetInfo {
        classes: 3,
        class_names: Vec::new(),
        ..info()
    };
    let saved = model_to_safetensors(&model.build(&three, &device, 1).unwrap()).unwrap();
    let mut two = model.build_uninit(&info(), &device).unwrap();
    let err = load_model_safetensors(&mut two, saved)
        .unwrap_err()
        .to_string();
    assert!(
        !err.contains("ShapeMismatch") && !err.contains("Shape {"),
        "{err}"
    );
    assert!(
        err.contains("in the file but") && err.contains("number of classes"),
        "{err}"
    );
}

#[test]
fn a_model_fed_data_of_another_shape_says_so_in_words() {
    let device = Device::flex();
    let config: ModelConfig = "cnn".parse().unwrap();
    let trained_on = DatasetInfo {
        image: Some(ImageShape {
            channels: 3,
            depth: 1,
            height: 64,
            width: 64,
        }),
        tabular_features: None,
        ..info()
    };
    let trained = TrainedModel {
        model: config.build(&trained_on, &device, 1).unwrap(),
        config,
        info: trained_on.clone(),
    };
    assert!(trained.check_data(&trained_on).is_ok());
    let small = DatasetInfo {
        image: Some(ImageShape {
            channels: 1,
            depth: 1,
            height: 32,
            width: 32,
        }),
        ..trained_on.clone()
    };
    let err = trained.check_data(&small).unwrap_err().to_string();
    assert!(
        err.contains("the model expects images of 3x64x64 but the data has 1x32x32"),
        "{err}"
    );
    let more = DatasetInfo {
        classes: 5,
        ..trained_on
    };
    let err = trained.check_data(&more).unwrap_err().to_string();
    assert!(
        err.contains("trained for 2 classes but the data has 5"),
        "{err}"
    );
}

#[test]
fn forced_f16_overflow_skips_the_step_and_halves_the_scale() {
    // Features of 1e6 do not fit f16 (max 65504): the loss and gradients are not finite.
    let data = batches(&[8], 2, 1e6);
    let config = TrainConfig {
        model: mlp_without_batch_norm(),
        use_amp: true,
        amp_dtype: AmpDtype::F16,
        ..config("mlp", 1)
    };
    let initial = config
        .model
        .build(&info(), &Device::flex(), config.seed)
        .unwrap();
    let out = train_on(
        &Device::flex(),
        &config,
        &info(),
        &data,
        None,
        &mut Recorder::default(),
        None,
    )
    .unwrap();
    assert_eq!(out.history[0].skipped_steps, 1);
    assert_eq!(out.history[0].loss_scale, 32_768.0);
    assert_eq!(out.state.trainer.loss_scaler.skipped_steps, 1);
    assert_eq!(
        weights(&out.model.model),
        weights(&initial),
        "a skipped step must not change the weights"
    );
}

#[test]
fn accumulated_micro_batches_equal_one_large_batch() {
    for optimizer in [OptimizerKind::Sgd, OptimizerKind::Adam] {
        let base = TrainConfig {
            model: mlp_without_batch_norm(),
            optimizer,
            momentum: 0.0,
            weight_decay: 0.0,
            learning_rate: 0.1,
            ..config("mlp", 1)
        };
        // Same 10 samples: one batch of 10, or micro-batches of 4, 4 and 2 accumulated.
        let large = TrainConfig {
            batch_size: 10,
            ..base.clone()
        };
        let small = TrainConfig {
            batch_size: 4,
            gradient_accumulation_steps: 3,
            ..base.clone()
        };
        let one = train_on(
            &Device::flex(),
            &large,
            &info(),
            &batches(&[10], 3, 1.0),
            None,
            &mut Recorder::default(),
            None,
        )
        .unwrap();
        let split = batches(&[4, 4, 2], 3, 1.0);
        let three = train_on(
            &Device::flex(),
            &small,
            &info(),
            &split,
            None,
            &mut Recorder::default(),
            None,
        )
        .unwrap();
        let initial = weights(
            &base
                .model
                .build(&info(), &Device::flex(), base.seed)
                .unwrap(),
        );
        let (a, b) = (weights(&one.model.model), weights(&three.model.model));
        assert!(
            max_abs_diff(&a, &initial) > 1e-3,
            "{optimizer:?}: the step must move the weights"
        );
        assert!(
            max_abs_diff(&a, &b) < 1e-5,
            "{optimizer:?}: {}",
            max_abs_diff(&a, &b)
        );
        assert!((one.history[0].train_loss - three.history[0].train_loss).abs() < 1e-5);

        // An epoch ending inside a group: [4, 4] then [2] alone, against batches of 8 and 2.
        let pairs = TrainConfig {
            batch_size: 4,
            gradient_accumulation_steps: 2,
            ..base.clone()
        };
        let large = TrainConfig {
            batch_size: 8,
            ..base.clone()
        };
        let a = train_on(
            &Device::flex(),
            &large,
            &info(),
            &batches(&[8, 2], 3, 1.0),
            None,
            &mut Recorder::default(),
            None,
        )
        .unwrap();
        let b = train_on(
            &Device::flex(),
            &pairs,
            &info(),
            &split,
            None,
            &mut Recorder::default(),
            None,
        )
        .unwrap();
        let diff = max_abs_diff(&weights(&a.model.model), &weights(&b.model.model));
        assert!(diff < 1e-5, "{optimizer:?}, short last group: {diff}");
    }
}

#[test]
fn resumed_run_ends_with_the_same_weights() {
    let data = batches(&[8, 8, 6], 4, 1.0);
    let val = batches(&[8], 5, 1.0);
    let base = TrainConfig {
        checkpoint_interval: 2,
        optimizer: OptimizerKind::Adamw,
        scheduler: SchedulerKind::Cosine,
        warmup_epochs: 1,
        ..config("fusion_cnn", 4)
    };
    // Plain, and keeping the best epoch with a learning rate so high that the best epoch
    // is an early one (its weights then travel in the state as `best_model`).
    let plain = TrainConfig {
        restore_best: false,
        ..base.clone()
    };
    let best = TrainConfig {
        restore_best: true,
        learning_rate: 0.5,
        ..base
    };
    for config in [plain, best] {
        let mut straight = Recorder::default();
        let full = train_on(
            &Device::flex(),
            &config,
            &info(),
            &data,
            Some(&val),
            &mut straight,
            None,
        )
        .unwrap();
        assert_eq!(straight.states.len(), 2, "checkpoints after epochs 2 and 4");
        let saved = &straight.states[0];
        assert_eq!(saved.trainer.epochs_done, 2);
        assert_eq!(saved.trainer.scheduler_steps, 6);
        if config.restore_best {
            assert!(
                saved.best_model.is_some(),
                "best epoch {:?}",
                saved.trainer.early_stopping
            );
        }

        // Through the bytes the checkpoint crate would store.
        let json = saved.trainer_json().unwrap();
        let restored = TrainState::from_parts(
            saved.model.clone(),
            saved.optimizer.clone(),
            saved.best_model.clone(),
            &json,
        )
        .unwrap();
        let mut resumed_hooks = Recorder::default();
        let resumed = train_on(
            &Device::flex(),
            &config,
            &info(),
            &data,
            Some(&val),
            &mut resumed_hooks,
            Some(&restored),
        )
        .unwrap();
        assert_eq!(
            resumed_hooks.epochs.len(),
            2,
            "only epochs 2 and 3 run again"
        );
        assert_eq!(resumed.history.len(), 4);
        assert_eq!(resumed.best_epoch, full.best_epoch);
        let diff = max_abs_diff(&weights(&full.model.model), &weights(&resumed.model.model));
        assert!(
            diff < 1e-6,
            "restore_best {}: weights differ by {diff}",
            config.restore_best
        );
        assert!((full.history[3].train_loss - resumed.history[3].train_loss).abs() < 1e-6);
    }
}

#[test]
fn early_stopping_stops_after_patience() {
    let data = batches(&[8], 6, 1.0);
    let config = TrainConfig {
        early_stopping_patience: Some(2),
        min_delta: 10.0,
        ..config("mlp", 10)
    };
    let out = train_on(
        &Device::flex(),
        &config,
        &info(),
        &data,
        Some(&data),
        &mut Recorder::default(),
        None,
    )
    .unwrap();
    assert!(out.stopped_early);
    assert_eq!(out.history.len(), 3);
    assert_eq!(out.best_epoch, Some(0));
    assert!(out.history[0].improved && !out.history[1].improved);
}

#[test]
fn cancellation_is_checked_every_batch() {
    let data = batches(&[8, 8, 8], 7, 1.0);
    let config = TrainConfig {
        log_interval: 1,
        ..config("mlp", 2)
    };
    let mut hooks = Recorder {
        cancel_after_progress: Some(CancelToken::new()),
        ..Recorder::default()
    };
    let err = train_on(
        &Device::flex(),
        &config,
        &info(),
        &data,
        None,
        &mut hooks,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Cancelled { epoch: 0, batch: 1 }),
        "{err}"
    );
    assert_eq!(hooks.progress.len(), 1);
}

#[test]
fn out_of_memory_is_its_own_error_kind() {
    let data = batches(&[8, 8], 8, 1.0);
    let fault = |message: &str| Recorder {
        fault: Some((0, 1, message.to_owned())),
        ..Recorder::default()
    };
    let config = config("mlp", 1);
    let err = train_on(
        &Device::flex(),
        &config,
        &info(),
        &data,
        None,
        &mut fault("CUDA_ERROR_OUT_OF_MEMORY: out of memory"),
        None,
    )
    .unwrap_err();
    assert!(err.is_out_of_memory(), "{err}");
    assert!(matches!(err, Error::OutOfMemory { batch_size: 8, .. }));
    assert!(
        err.to_string()
            .contains("double `gradient_accumulation_steps`"),
        "{err}"
    );
    let err = train_on(
        &Device::flex(),
        &config,
        &info(),
        &data,
        None,
        &mut fault("index out of bounds"),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err}");
}

#[test]
fn progress_history_and_checkpoints_are_reported() {
    let data = batches(&[8, 8, 8], 9, 1.0);
    let config = TrainConfig {
        log_interval: 2,
        checkpoint_interval: 2,
        ..config("mlp", 3)
    };
    let mut hooks = Recorder::default();
    let out = train_on(
        &Device::flex(),
        &config,
        &info(),
        &data,
        Some(&data),
        &mut hooks,
        None,
    )
    .unwrap();
    // Batches 2 and 3 (the end of the epoch) of each of 3 epochs.
    assert_eq!(hooks.progress.len(), 6);
    assert!(
        hooks
            .progress
            .iter()
            .all(|p| p.samples_per_sec > 0.0 && p.loss.is_finite())
    );
    assert_eq!(hooks.epochs.len(), 3);
    assert!(
        hooks
            .epochs
            .iter()
            .all(|r| r.val_loss.is_some() && r.val_metrics.contains_key("roc_auc"))
    );
    assert_eq!(
        hooks
            .states
            .iter()
            .map(|s| s.trainer.epochs_done)
            .collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(out.history, hooks.epochs);
    let optimizer = safetensors::SafeTensors::deserialize(&out.state.optimizer).unwrap();
    assert!(
        optimizer
            .names()
            .iter()
            .any(|n| n.ends_with("/momentum.moment_1")),
        "{:?}",
        optimizer.names()
    );
}

#[test]
fn predictions_cover_every_sample() {
    let data = batches(&[8, 5], 10, 1.0);
    let out = train_on(
        &Device::flex(),
        &config("fusion_cnn", 2),
        &info(),
        &data,
        None,
        &mut Recorder::default(),
        None,
    )
    .unwrap();
    let p = predict(&out.model.model, &data, &Device::flex()).unwrap();
    assert_eq!(p.len(), 13);
    assert_eq!(p.classes, 2);
    assert!(
        p.probabilities
            .chunks(2)
            .all(|r| (r[0] + r[1] - 1.0).abs() < 1e-5)
    );
    assert_eq!(p.labels[..4], [0, 1, 0, 1]);
    let metrics = p.metrics(&info().class_names).unwrap();
    assert_eq!(metrics.samples, 13);
    assert_eq!(data.num_batches(), 2);
}

#[test]
fn weights_use_pytorch_names_and_round_trip() {
    let image_only = DatasetInfo {
        tabular_features: None,
        ..info()
    };
    let config = config("resnet18", 1);
    let model = config.model.build(&image_only, &Device::flex(), 3).unwrap();
    let bytes = model_to_safetensors(&model).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let shape = |name: &str| {
        file.tensor(name)
            .map(|t| t.shape().to_vec())
            .unwrap_or_default()
    };
    assert_eq!(shape("conv1.weight"), [64, 1, 7, 7]);
    assert_eq!(shape("bn1.weight"), [64]);
    assert_eq!(shape("bn1.running_var"), [64]);
    assert_eq!(shape("layer1.0.conv1.weight"), [64, 64, 3, 3]);
    assert_eq!(shape("layer2.0.downsample.0.weight"), [128, 64, 1, 1]);
    assert_eq!(shape("layer2.0.downsample.1.running_mean"), [128]);
    assert_eq!(
        shape("fc.weight"),
        [2, 512],
        "linear weights are [out, in] as in PyTorch"
    );
    assert_eq!(file.len(), 102, "62 parameters and 40 running statistics");

    let restored = medfusion_train::TrainedModel::from_safetensors(
        config.model.clone(),
        image_only.clone(),
        bytes,
        &Device::flex(),
    )
    .unwrap();
    let data = InMemorySource::new(
        batches(&[4], 11, 1.0)
            .batches(0, &Device::flex())
            .map(|b| {
                let b = b.unwrap();
                Batch { tabular: None, ..b }
            })
            .collect(),
    );
    let a = predict(&model, &data, &Device::flex()).unwrap();
    let b = predict(&restored.model, &data, &Device::flex()).unwrap();
    assert_eq!(a.probabilities, b.probabilities);

    let err = medfusion_train::TrainedModel::from_safetensors(
        "cnn".parse().unwrap(),
        image_only,
        model_to_safetensors(&model).unwrap(),
        &Device::flex(),
    )
    .unwrap_err();
    let err = err.to_string();
    assert!(
        err.contains("(model)") && err.contains("fc.weight"),
        "{err}"
    );
}

#[test]
fn global_gradient_norm_is_clipped() {
    let base = TrainConfig {
        model: mlp_without_batch_norm(),
        optimizer: OptimizerKind::Sgd,
        momentum: 0.0,
        weight_decay: 0.0,
        learning_rate: 1.0,
        ..config("mlp", 1)
    };
    let data = batches(&[8], 12, 1.0);
    let initial = weights(
        &base
            .model
            .build(&info(), &Device::flex(), base.seed)
            .unwrap(),
    );
    let moved = |clip: Option<f64>| {
        let config = TrainConfig {
            grad_clip: clip,
            ..base.clone()
        };
        let out = train_on(
            &Device::flex(),
            &config,
            &info(),
            &data,
            None,
            &mut Recorder::default(),
            None,
        )
        .unwrap();
        let w = weights(&out.model.model);
        w.iter()
            .zip(&initial)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let free = moved(None);
    let clipped = moved(Some(1e-3));
    assert!(free > 1e-2, "{free}");
    // With SGD at lr 1 the step is the (clipped) gradient itself.
    assert!((clipped - 1e-3).abs() < 1e-5, "{clipped}");
}

#[test]
fn activation_checkpointing_gives_the_same_training() {
    let data = batches(&[8, 8], 13, 1.0);
    let plain = config("fusion_cnn", 1);
    let checkpointed = TrainConfig {
        activation_checkpointing: true,
        ..plain.clone()
    };
    let a = train_on(
        &Device::flex(),
        &plain,
        &info(),
        &data,
        None,
        &mut Recorder::default(),
        None,
    )
    .unwrap();
    let b = train_on(
        &Device::flex(),
        &checkpointed,
        &info(),
        &data,
        None,
        &mut Recorder::default(),
        None,
    )
    .unwrap();
    let diff = max_abs_diff(&weights(&a.model.model), &weights(&b.model.model));
    assert!(diff < 1e-5, "{diff}");
}

#[test]
fn vision_transformer_fusion_trains_in_bf16() {
    let data = batches(&[8, 8], 14, 1.0);
    let config = TrainConfig {
        use_amp: true,
        ..config("fusion_vit_small", 3)
    };
    let out = train_on(
        &Device::flex(),
        &config,
        &info(),
        &data,
        None,
        &mut Recorder::default(),
        None,
    )
    .unwrap();
    let losses: Vec<f64> = out.history.iter().map(|r| r.train_loss).collect();
    assert!(
        losses.iter().all(|l| l.is_finite()) && losses[2] < losses[0],
        "{losses:?}"
    );
}
