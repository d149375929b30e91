use std::collections::HashSet;

use super::{write_grey_png, write_text};
use crate::{
    AugmentConfig, BatchLoader, DataError, HostBatch, ImageFolderConfig, LoaderConfig,
    Normalization, SyntheticConfig, generate_synthetic, load_image_folder,
};

fn small_synthetic() -> crate::DatasetSplits {
    generate_synthetic(&SyntheticConfig {
        samples: 90,
        image_size: 16,
        tabular_features: 5,
        ..SyntheticConfig::default()
    })
    .unwrap()
}

fn augmenting(workers: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size: 8,
        shuffle: true,
        seed: 11,
        num_workers: workers,
        prefetch: 1,
        augment: AugmentConfig {
            horizontal_flip: 0.5,
            vertical_flip: 0.5,
            rotation_degrees: 15.0,
            brightness: 0.1,
            contrast: 0.1,
            depth_flip: 0.0,
        },
        ..LoaderConfig::default()
    }
}

fn collect(loader: &BatchLoader, epoch: u64) -> Vec<HostBatch> {
    loader.epoch(epoch).collect::<Result<_, _>>().unwrap()
}

#[test]
fn batches_do_not_depend_on_the_number_of_workers() {
    let data = small_synthetic();
    let reference = collect(
        &BatchLoader::new(data.train.clone(), augmenting(0)).unwrap(),
        3,
    );
    for workers in [1, 2, 5] {
        let loader = BatchLoader::new(data.train.clone(), augmenting(workers)).unwrap();
        assert_eq!(collect(&loader, 3), reference, "{workers} workers");
    }
}

#[test]
fn every_sample_once_per_epoch_in_a_new_order() {
    let data = small_synthetic();
    let loader = BatchLoader::new(data.train.clone(), augmenting(2)).unwrap();
    assert_eq!(loader.num_batches(), data.train.len().div_ceil(8));
    let epoch0 = collect(&loader, 0);
    let seen: Vec<usize> = epoch0.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(seen.len(), data.train.len());
    assert_eq!(
        seen.iter().copied().collect::<HashSet<_>>().len(),
        data.train.len()
    );
    assert_eq!(seen, loader.order(0));
    assert_ne!(loader.order(0), loader.order(1));
    assert_eq!(
        collect(&loader, 0),
        epoch0,
        "an epoch can be replayed (resume)"
    );
    // Labels and features travel with their sample.
    let b = &epoch0[1];
    for (slot, &i) in b.indices.iter().enumerate() {
        assert_eq!(b.labels[slot], data.train.labels()[i]);
        assert_eq!(
            &b.tabular.as_ref().unwrap()[slot * 5..(slot + 1) * 5],
            data.train.features(i).unwrap()
        );
    }
}

#[test]
fn augmentation_changes_with_the_epoch_not_the_call() {
    let data = small_synthetic();
    let cfg = LoaderConfig {
        shuffle: false,
        ..augmenting(0)
    };
    let loader = BatchLoader::new(data.train.clone(), cfg.clone()).unwrap();
    let plain = BatchLoader::new(
        data.train.clone(),
        LoaderConfig {
            augment: AugmentConfig::default(),
            ..cfg
        },
    )
    .unwrap();
    let (a0, a1, p0) = (collect(&loader, 0), collect(&loader, 1), collect(&plain, 0));
    assert_eq!(a0[0].indices, a1[0].indices);
    assert_ne!(a0[0].images, a1[0].images, "epochs augment differently");
    assert_ne!(a0[0].images, p0[0].images);
    assert_eq!(a0, collect(&loader, 0));
    // Without augmentation, values are the pixels normalised with mean 0.5, std 0.5.
    assert!(
        p0[0]
            .images
            .as_ref()
            .unwrap()
            .iter()
            .all(|v| (-1.0..=1.0).contains(v))
    );
}

#[test]
fn drop_last_and_small_batches() {
    let data = small_synthetic();
    let n = data.train.len();
    let cfg = LoaderConfig {
        batch_size: 10,
        drop_last: true,
        num_workers: 3,
        ..LoaderConfig::default()
    };
    let loader = BatchLoader::new(data.train.clone(), cfg).unwrap();
    let batches = collect(&loader, 0);
    assert_eq!(batches.len(), n / 10);
    assert!(batches.iter().all(|b| b.len() == 10));
    let keep = BatchLoader::new(
        data.train.clone(),
        LoaderConfig {
            batch_size: 10,
            ..LoaderConfig::default()
        },
    )
    .unwrap();
    assert_eq!(collect(&keep, 0).last().unwrap().len(), n % 10);
}

#[test]
fn stopping_early_then_starting_again_works() {
    let data = small_synthetic();
    let loader = BatchLoader::new(data.train.clone(), augmenting(2)).unwrap();
    let mut epoch = loader.epoch(0);
    let first = epoch.next().unwrap().unwrap();
    assert_eq!(epoch.remaining(), loader.num_batches() - 1);
    drop(epoch); // workers blocked on full queues are released and joined
    assert_eq!(collect(&loader, 0)[0], first);
}

#[test]
fn a_file_broken_after_loading_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        for i in 0..6 {
            write_grey_png(&dir.path().join(format!("{class}/{i}.png")), 4, 1);
        }
    }
    let cfg = ImageFolderConfig {
        root: dir.path().to_path_buf(),
        image_size: 4,
        channels: 1,
        val_fraction: 0.0,
        test_fraction: 0.0,
        ..ImageFolderConfig::default()
    };
    let data = load_image_folder(&cfg).unwrap();
    write_text(&dir.path().join("b/3.png"), "corrupted later");
    for workers in [0, 2] {
        let cfg = LoaderConfig {
            batch_size: 4,
            num_workers: workers,
            ..LoaderConfig::default()
        };
        let loader = BatchLoader::new(data.train.clone(), cfg).unwrap();
        let results: Vec<_> = loader.epoch(0).collect();
        assert_eq!(results.len(), 3, "the loader stops after the error");
        assert!(results[0].is_ok() && results[1].is_ok());
        let err = results[2].as_ref().unwrap_err();
        assert!(matches!(err, DataError::Decode { .. }), "{err:?}");
        assert!(err.to_string().contains("3.png"), "{err}");
    }
}

#[test]
fn bad_loader_configs_are_rejected() {
    let data = small_synthetic();
    let err = |cfg: LoaderConfig| {
        BatchLoader::new(data.train.clone(), cfg)
            .unwrap_err()
            .to_string()
    };
    assert!(
        err(LoaderConfig {
            batch_size: 0,
            ..LoaderConfig::default()
        })
        .contains("batch_size")
    );
    let three = Normalization {
        mean: vec![0.1, 0.2, 0.3],
        std: vec![1.0],
    };
    assert!(
        err(LoaderConfig {
            normalization: three,
            ..LoaderConfig::default()
        })
        .contains("normalization.mean")
    );
    let zero = Normalization {
        mean: vec![0.5],
        std: vec![0.0],
    };
    assert!(
        err(LoaderConfig {
            normalization: zero,
            ..LoaderConfig::default()
        })
        .contains("normalization.std")
    );
}
