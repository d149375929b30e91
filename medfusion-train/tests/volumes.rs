//! Volumes through training: synthetic volumes, the loader's 3D augmentation, a 3D model with
//! mixed precision and gradient accumulation, as in 2D.

use burn::tensor::Device;
use medfusion_train::data::{
    AugmentConfig, BatchLoader, LoaderConfig, SplitName, SyntheticConfig, SyntheticModality,
    generate_synthetic,
};
use medfusion_train::{AmpDtype, NoHooks, SchedulerKind, TrainConfig, predict, train_on};

#[test]
fn a_3d_model_learns_volumes_with_amp_and_accumulation() {
    let data = generate_synthetic(&SyntheticConfig {
        samples: 160,
        image_size: 16,
        depth: 8,
        image_share: 1.0,
        modality: SyntheticModality::Image,
        seed: 3,
        ..SyntheticConfig::default()
    })
    .unwrap();
    let loader = |split: SplitName, shuffle: bool, augment: AugmentConfig| {
        BatchLoader::new(
            data.split(split).clone(),
            LoaderConfig {
                batch_size: 8,
                shuffle,
                num_workers: 1,
                augment,
                ..LoaderConfig::default()
            },
        )
        .unwrap()
    };
    let augment = AugmentConfig {
        horizontal_flip: 0.5,
        depth_flip: 0.5,
        rotation_degrees: 10.0,
        ..AugmentConfig::default()
    };
    let train = loader(SplitName::Train, true, augment);
    let val = loader(SplitName::Val, false, AugmentConfig::default());
    let info = data.info().model_info();
    for (dtype, accumulation) in [(None, 1), (Some(AmpDtype::Bf16), 2)] {
        let config = TrainConfig {
            model: "cnn3d".parse().unwrap(),
            epochs: 4,
            batch_size: 8,
            learning_rate: 3e-3,
            scheduler: SchedulerKind::None,
            checkpoint_interval: 0,
            use_amp: dtype.is_some(),
            amp_dtype: dtype.unwrap_or(AmpDtype::Bf16),
            gradient_accumulation_steps: accumulation,
            device: medfusion_train::DeviceSpec::Cpu,
            ..TrainConfig::default()
        };
        let out = train_on(
            &Device::flex(),
            &config,
            &info,
            &train,
            Some(&val),
            &mut NoHooks,
            None,
        )
        .unwrap();
        let losses: Vec<f64> = out.history.iter().map(|r| r.train_loss).collect();
        assert!(
            losses.iter().all(|l| l.is_finite()) && losses[3] < losses[0],
            "{dtype:?}: {losses:?}"
        );
        let predictions = predict(&out.model.model, &val, &Device::flex()).unwrap();
        assert_eq!(
            predictions.metrics(&info.class_names).unwrap().samples,
            val.split().len()
        );
    }
}
