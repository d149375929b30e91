use burn::tensor::{Device, Distribution, Int, Tensor};

use super::*;
use crate::data::ImageShape;

fn info(channels: usize, size: usize, features: Option<usize>, classes: usize) -> DatasetInfo {
    DatasetInfo {
        classes,
        class_names: Vec::new(),
        image: Some(ImageShape {
            channels,
            depth: 1,
            height: size,
            width: size,
        }),
        tabular_features: features,
    }
}

fn count(name: &str, info: &DatasetInfo) -> usize {
    let config: ModelConfig = name.parse().unwrap();
    config
        .build_uninit(info, &Device::flex())
        .unwrap()
        .num_parameters()
}

#[test]
fn resnet_parameter_counts_match_torchvision() {
    assert_eq!(count("resnet50", &info(3, 224, None, 1000)), 25_557_032);
    assert_eq!(count("resnet18", &info(1, 64, None, 2)), 11_171_266);
    assert_eq!(count("resnet18", &info(3, 224, None, 1000)), 11_689_512);
    assert_eq!(count("resnet34", &info(3, 224, None, 1000)), 21_797_672);
    assert_eq!(count("resnet101", &info(3, 224, None, 1000)), 44_549_160);
}

#[test]
fn swin_parameter_counts_match_torchvision() {
    // torchvision.models.swin_t and swin_b (relative position bias tables included, the
    // index buffers are not parameters).
    assert_eq!(count("swin_tiny", &info(3, 224, None, 1000)), 28_288_354);
    assert_eq!(count("swin_base", &info(3, 224, None, 1000)), 87_768_224);
}

#[test]
fn cnn_matches_the_benchmark_workload() {
    assert_eq!(count("cnn", &info(1, 64, None, 2)), 241_218);
}

#[test]
fn vit_base_has_the_published_size() {
    // torchvision's vit_b_16 has 86,567,656 parameters for 1000 classes at 224 px; Burn's
    // attention has the same weights, so the counts agree.
    assert_eq!(count("vit_base", &info(3, 224, None, 1000)), 86_567_656);
}

fn volume_info(
    channels: usize,
    depth: usize,
    size: usize,
    features: Option<usize>,
    classes: usize,
) -> DatasetInfo {
    DatasetInfo {
        image: Some(ImageShape {
            channels,
            depth,
            height: size,
            width: size,
        }),
        ..info(channels, size, features, classes)
    }
}

#[test]
fn resnet18_3d_has_torchvision_r3d_18_size() {
    // torchvision.models.video.r3d_18: 33,371,472 parameters for 3 channels and 400 classes
    // (the stem, blocks and shortcuts are the same; only the parameter names differ).
    assert_eq!(
        count("resnet18_3d", &volume_info(3, 16, 112, None, 400)),
        33_371_472
    );
}

#[test]
fn volume_models_give_logits_and_refuse_2d_data() {
    let device = Device::flex();
    let data = volume_info(1, 8, 16, Some(5), 3);
    for name in ["cnn3d", "resnet18_3d", "fusion_cnn3d", "fusion_resnet18_3d"] {
        let model = name
            .parse::<ModelConfig>()
            .unwrap()
            .build(&data, &device, 1)
            .unwrap();
        let logits = model.forward(&batch(&data, 2, &device)).unwrap();
        assert_eq!(logits.dims(), [2, 3], "{name}");
    }
    let err = "cnn3d"
        .parse::<ModelConfig>()
        .unwrap()
        .build_uninit(&info(1, 16, None, 2), &device)
        .unwrap_err();
    assert!(err.to_string().contains("reads volumes"), "{err}");
    let err = "resnet18"
        .parse::<ModelConfig>()
        .unwrap()
        .build_uninit(&data, &device)
        .unwrap_err();
    assert!(err.to_string().contains("cnn3d"), "{err}");
    // A 3D model fed 2D images (and a 2D model fed volumes) is an error, not a panic.
    let model3d = "cnn3d"
        .parse::<ModelConfig>()
        .unwrap()
        .build(&data, &device, 1)
        .unwrap();
    let err = model3d
        .forward(&batch(&info(1, 16, None, 3), 2, &device))
        .unwrap_err();
    assert!(err.to_string().contains("reads volumes"), "{err}");
    let model2d = "cnn"
        .parse::<ModelConfig>()
        .unwrap()
        .build(&info(1, 16, None, 3), &device, 1)
        .unwrap();
    let err = model2d.forward(&batch(&data, 2, &device)).unwrap_err();
    assert!(err.to_string().contains("reads 2D images"), "{err}");
}

fn batch(info: &DatasetInfo, n: usize, device: &Device) -> Batch {
    let volumes = info.image.filter(ImageShape::is_volume).map(|s| {
        Tensor::<5>::random(
            [n, s.channels, s.depth, s.height, s.width],
            Distribution::Normal(0.0, 1.0),
            device,
        )
    });
    let images = info.image.filter(|s| !s.is_volume()).map(|s| {
        Tensor::<4>::random(
            [n, s.channels, s.height, s.width],
            Distribution::Normal(0.0, 1.0),
            device,
        )
    });
    let tabular = info
        .tabular_features
        .map(|f| Tensor::<2>::random([n, f], Distribution::Normal(0.0, 1.0), device));
    let labels: Vec<i64> = (0..n as i64).map(|i| i % info.classes as i64).collect();
    Batch {
        volumes,
        images,
        tabular,
        labels: Tensor::<1, Int>::from_data(labels.as_slice(), device),
    }
}

#[test]
fn every_small_model_gives_logits_of_the_right_shape() {
    let device = Device::flex();
    let data = info(1, 32, Some(5), 3);
    for name in [
        "cnn",
        "resnet18",
        "vit_small",
        "mlp",
        "fusion_cnn",
        "fusion_resnet18",
        "fusion_vit_small",
        "swin_tiny",
        "fusion_swin_tiny",
    ] {
        let mut config: ModelConfig = name.parse().unwrap();
        config.fusion = FusionMode::Concat;
        let model = config.build(&data, &device, 1).unwrap();
        let logits = model.forward(&batch(&data, 4, &device)).unwrap();
        assert_eq!(logits.dims(), [4, 3], "{name}");
    }
}

#[test]
fn same_seed_same_weights() {
    let device = Device::flex();
    let data = info(1, 16, Some(3), 2);
    let config: ModelConfig = "fusion_cnn".parse().unwrap();
    let a = config.build(&data, &device, 7).unwrap();
    let b = config.build(&data, &device, 7).unwrap();
    let c = config.build(&data, &device, 8).unwrap();
    let input = batch(&data, 2, &device);
    let la = a.valid().forward(&input).unwrap().into_data();
    let lb = b.valid().forward(&input).unwrap().into_data();
    let lc = c.valid().forward(&input).unwrap().into_data();
    assert_eq!(la, lb);
    assert_ne!(la, lc);
}

#[test]
fn missing_or_mismatched_parts_are_errors() {
    let device = Device::flex();
    let tab_only = DatasetInfo {
        image: None,
        ..info(1, 16, Some(4), 2)
    };
    let err = "resnet18"
        .parse::<ModelConfig>()
        .unwrap()
        .build_uninit(&tab_only, &device)
        .unwrap_err();
    assert!(err.to_string().contains("needs images"), "{err}");

    let img_only = info(1, 16, None, 2);
    let err = "fusion_cnn"
        .parse::<ModelConfig>()
        .unwrap()
        .build_uninit(&img_only, &device)
        .unwrap_err();
    assert!(err.to_string().contains("needs tabular features"), "{err}");

    let err = "vit_small"
        .parse::<ModelConfig>()
        .unwrap()
        .build_uninit(&info(1, 20, None, 2), &device)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("not a multiple of the patch size 8"),
        "{err}"
    );

    let model = "cnn"
        .parse::<ModelConfig>()
        .unwrap()
        .build(&img_only, &device, 0)
        .unwrap();
    let err = model
        .forward(&batch(&info(3, 16, None, 2), 2, &device))
        .unwrap_err();
    assert!(
        err.to_string().contains("built for 1-channel images"),
        "{err}"
    );
    let err = model.forward(&batch(&tab_only, 2, &device)).unwrap_err();
    assert!(err.to_string().contains("no images"), "{err}");
}

#[test]
fn swin_weights_carry_torchvision_names() {
    let model = "swin_tiny"
        .parse::<ModelConfig>()
        .unwrap()
        .build(&info(3, 32, None, 2), &Device::flex(), 1)
        .unwrap();
    let bytes = crate::state::model_to_safetensors(&model).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names: std::collections::BTreeSet<String> =
        file.names().into_iter().map(ToString::to_string).collect();
    for name in [
        "features.0.0.weight",
        "features.0.2.weight",
        "features.1.0.norm1.weight",
        "features.1.1.attn.qkv.weight",
        "features.1.1.attn.proj.bias",
        "features.1.1.attn.relative_position_bias_table",
        "features.1.1.mlp.0.weight",
        "features.1.1.mlp.3.bias",
        "features.2.reduction.weight",
        "features.5.5.norm2.bias",
        "features.7.1.mlp.3.weight",
        "norm.weight",
        "head.weight",
    ] {
        assert!(names.contains(name), "no `{name}` in {names:?}");
    }
    // torchvision's Linear weight is [out, in].
    let qkv = file.tensor("features.1.1.attn.qkv.weight").unwrap();
    assert_eq!(qkv.shape(), [288, 96]);
    let table = file
        .tensor("features.1.1.attn.relative_position_bias_table")
        .unwrap();
    assert_eq!(table.shape(), [169, 3]);
}
