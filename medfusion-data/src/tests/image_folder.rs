use std::path::PathBuf;

use super::{raw, write_grey_png, write_rgb, write_text};
use crate::{
    BadImagePolicy, BatchLoader, DataError, DatasetKind, ImageFolderConfig, LoaderConfig,
    SplitName, load_image_folder,
};

fn config(root: PathBuf, channels: usize, size: usize) -> ImageFolderConfig {
    ImageFolderConfig {
        root,
        image_size: size,
        channels,
        ..ImageFolderConfig::default()
    }
}

#[test]
fn split_layout_loads_png_and_jpeg_as_grey() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (split, n) in [("train", 3), ("val", 1), ("test", 2)] {
        for i in 0..n {
            write_grey_png(&root.join(format!("{split}/benign/b{i}.png")), 8, 40);
            // RGB JPEG of a different size: converted to grey and resized.
            write_rgb(
                &root.join(format!("{split}/malignant/m{i}.JPG")),
                12,
                10,
                [200, 200, 200],
            );
        }
    }
    write_text(&root.join("train/benign/notes.txt"), "not an image");
    write_grey_png(&root.join("train/benign/.hidden.png"), 8, 1);

    let data = load_image_folder(&config(root.to_path_buf(), 1, 8)).unwrap();
    let meta = data.info();
    assert_eq!(meta.kind, DatasetKind::Image);
    assert_eq!(meta.classes, ["benign", "malignant"]);
    assert_eq!(
        (
            meta.split_sizes.train,
            meta.split_sizes.val,
            meta.split_sizes.test
        ),
        (6, 2, 4)
    );
    assert_eq!(data.train.class_counts(), [3, 3]);
    assert_eq!(
        data.val.ids(),
        ["val/benign/b0.png", "val/malignant/m0.JPG"]
    );
    assert_eq!(data.test.name(), SplitName::Test);

    let loader = BatchLoader::new(
        data.train.clone(),
        LoaderConfig {
            batch_size: 6,
            num_workers: 0,
            ..LoaderConfig::default()
        },
    )
    .unwrap();
    let batch = loader.epoch(0).next().unwrap().unwrap();
    assert_eq!(batch.image_shape.unwrap().channels, 1);
    let images = batch.images.unwrap();
    assert_eq!(images.len(), 6 * 64);
    assert_eq!(batch.labels, [0, 0, 0, 1, 1, 1]);
    assert_eq!(raw(images[0]), 40);
    let jpeg_pixel = raw(images[3 * 64 + 27]);
    assert!(
        jpeg_pixel.abs_diff(200) <= 3,
        "JPEG grey value {jpeg_pixel}"
    );
}

#[test]
fn grey_images_are_repeated_into_rgb() {
    let dir = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        for i in 0..5 {
            write_grey_png(&dir.path().join(format!("{class}/{i}.png")), 4, 100);
        }
    }
    let data = load_image_folder(&config(dir.path().to_path_buf(), 3, 4)).unwrap();
    let loader = BatchLoader::new(
        data.train.clone(),
        LoaderConfig {
            num_workers: 0,
            ..LoaderConfig::default()
        },
    )
    .unwrap();
    let batch = loader.epoch(0).next().unwrap().unwrap();
    let n = batch.len();
    let images = batch.images.unwrap();
    assert_eq!(images.len(), n * 3 * 16);
    assert!(images.iter().all(|&v| raw(v) == 100));
}

#[test]
fn flat_layout_is_split_by_fractions_per_class() {
    let dir = tempfile::tempdir().unwrap();
    for (class, n) in [("normal", 20), ("lesion", 10)] {
        for i in 0..n {
            write_grey_png(&dir.path().join(format!("{class}/sub/{i:02}.png")), 4, 9);
        }
    }
    let mut cfg = config(dir.path().to_path_buf(), 1, 4);
    cfg.val_fraction = 0.2;
    cfg.test_fraction = 0.1;
    let data = load_image_folder(&cfg).unwrap();
    assert_eq!(data.info().classes, ["lesion", "normal"]);
    assert_eq!(data.train.class_counts(), [7, 14]);
    assert_eq!(data.val.class_counts(), [2, 4]);
    assert_eq!(data.test.class_counts(), [1, 2]);
    let again = load_image_folder(&cfg).unwrap();
    assert_eq!(
        again.val.ids(),
        data.val.ids(),
        "the split is deterministic"
    );
}

#[test]
fn missing_val_folder_is_carved_from_train() {
    let dir = tempfile::tempdir().unwrap();
    for class in ["x", "y"] {
        for i in 0..10 {
            write_grey_png(&dir.path().join(format!("train/{class}/{i}.png")), 4, 9);
        }
        write_grey_png(&dir.path().join(format!("test/{class}/t.png")), 4, 9);
    }
    let data = load_image_folder(&config(dir.path().to_path_buf(), 1, 4)).unwrap();
    let sizes = data.info().split_sizes;
    assert_eq!((sizes.train, sizes.val, sizes.test), (16, 4, 2));
}

#[test]
fn configured_classes_fix_the_label_order() {
    let dir = tempfile::tempdir().unwrap();
    for class in ["a", "b", "c"] {
        for i in 0..3 {
            write_grey_png(&dir.path().join(format!("{class}/{i}.png")), 4, 9);
        }
    }
    let mut cfg = config(dir.path().to_path_buf(), 1, 4);
    cfg.classes = vec!["c".into(), "a".into()];
    cfg.val_fraction = 0.0;
    cfg.test_fraction = 0.0;
    let data = load_image_folder(&cfg).unwrap();
    assert_eq!(data.info().classes, ["c", "a"]);
    assert_eq!(data.train.class_counts(), [3, 3]);
    assert!(data.train.ids().iter().all(|id| !id.starts_with("b/")));
}

#[test]
fn folder_errors_name_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let missing = load_image_folder(&config(dir.path().join("nope"), 1, 4)).unwrap_err();
    assert!(matches!(missing, DataError::MissingFolder { .. }));
    assert!(missing.to_string().contains("nope"), "{missing}");

    let empty = load_image_folder(&config(dir.path().to_path_buf(), 1, 4)).unwrap_err();
    assert!(matches!(empty, DataError::NoClasses { .. }), "{empty:?}");
    assert!(empty.to_string().contains("no class folders"), "{empty}");

    write_grey_png(&dir.path().join("only/1.png"), 4, 1);
    let one = load_image_folder(&config(dir.path().to_path_buf(), 1, 4))
        .unwrap_err()
        .to_string();
    assert!(one.contains("at least 2"), "{one}");

    std::fs::create_dir_all(dir.path().join("empty_class")).unwrap();
    let no_images = load_image_folder(&config(dir.path().to_path_buf(), 1, 4)).unwrap_err();
    assert!(
        matches!(no_images, DataError::NoImages { .. }),
        "{no_images:?}"
    );
    assert!(no_images.to_string().contains("empty_class"));

    let bad_channels = load_image_folder(&config(dir.path().to_path_buf(), 2, 4))
        .unwrap_err()
        .to_string();
    assert!(bad_channels.contains("`channels`"), "{bad_channels}");
    let no_root = load_image_folder(&ImageFolderConfig::default())
        .unwrap_err()
        .to_string();
    assert!(no_root.contains("`root`"), "{no_root}");
}

#[test]
fn unknown_class_in_val_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        write_grey_png(&dir.path().join(format!("train/{class}/1.png")), 4, 1);
    }
    write_grey_png(&dir.path().join("val/zzz/1.png"), 4, 1);
    let err = load_image_folder(&config(dir.path().to_path_buf(), 1, 4)).unwrap_err();
    assert!(matches!(err, DataError::ClassMismatch { .. }), "{err:?}");
    assert!(
        err.to_string().contains("zzz") && err.to_string().contains("`val`"),
        "{err}"
    );
}

#[test]
fn corrupt_images_fail_by_name_or_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        for i in 0..4 {
            write_grey_png(&dir.path().join(format!("{class}/{i}.png")), 4, 1);
        }
    }
    write_text(&dir.path().join("b/broken.png"), "this is not a png");
    let mut cfg = config(dir.path().to_path_buf(), 1, 4);
    cfg.val_fraction = 0.0;
    cfg.test_fraction = 0.0;
    let err = load_image_folder(&cfg).unwrap_err();
    assert!(matches!(err, DataError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("broken.png"), "{err}");

    cfg.on_error = BadImagePolicy::Skip;
    let data = load_image_folder(&cfg).unwrap();
    assert_eq!(data.train.len(), 8);
    assert!(data.train.ids().iter().all(|id| !id.contains("broken")));
}
