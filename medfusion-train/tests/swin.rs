//! Swin-T trains on the CPU: the loss falls on a small synthetic set (shifted windows,
//! padding to whole windows and patch merging all on the path at 32x32).

use burn::tensor::Device;
use medfusion_train::data::{
    BatchLoader, LoaderConfig, SplitName, SyntheticConfig, SyntheticModality, generate_synthetic,
};
use medfusion_train::{NoHooks, SchedulerKind, TrainConfig, train_on};

#[test]
fn swin_tiny_trains_on_the_cpu() {
    let data = generate_synthetic(&SyntheticConfig {
        samples: 40,
        image_size: 32,
        image_share: 1.0,
        modality: SyntheticModality::Image,
        val_fraction: 0.2,
        test_fraction: 0.2,
        seed: 9,
        ..SyntheticConfig::default()
    })
    .unwrap();
    let train = BatchLoader::new(
        data.split(SplitName::Train).clone(),
        LoaderConfig {
            batch_size: 8,
            num_workers: 0,
            ..LoaderConfig::default()
        },
    )
    .unwrap();
    let config = TrainConfig {
        model: "swin_tiny".parse().unwrap(),
        epochs: 4,
        batch_size: 8,
        learning_rate: 3e-4,
        scheduler: SchedulerKind::None,
        checkpoint_interval: 0,
        device: medfusion_train::DeviceSpec::Cpu,
        ..TrainConfig::default()
    };
    let out = train_on(
        &Device::flex(),
        &config,
        &data.info().model_info(),
        &train,
        None,
        &mut NoHooks,
        None,
    )
    .unwrap();
    let losses: Vec<f64> = out.history.iter().map(|r| r.train_loss).collect();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[3] < losses[0], "{losses:?}");
}
