use super::{NpyArray, raw, write_npz, write_text};
use crate::{BatchLoader, DataError, LoaderConfig, NpzConfig, load_npz};

/// `n` grey `h`x`w` images; image `i` is filled with `10 * i + row`.
fn grey_images(n: usize, h: usize, w: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (0..h).flat_map(move |y| std::iter::repeat_n((10 * i + y) as u8, w)))
        .collect()
}

#[test]
fn medmnist_layout_loads_all_three_splits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pneumoniamnist.npz");
    write_npz(
        &path,
        &[
            NpyArray::U8("train_images", vec![4, 5, 5], grey_images(4, 5, 5)),
            NpyArray::U8("train_labels", vec![4, 1], vec![0, 1, 1, 0]),
            NpyArray::U8("val_images", vec![2, 5, 5], grey_images(2, 5, 5)),
            NpyArray::U8("val_labels", vec![2, 1], vec![1, 0]),
            NpyArray::U8("test_images", vec![3, 5, 5], grey_images(3, 5, 5)),
            NpyArray::I64("test_labels", vec![3], vec![0, 1, 1]),
        ],
    );
    let data = load_npz(&NpzConfig {
        path,
        ..NpzConfig::default()
    })
    .unwrap();
    let meta = data.info();
    assert_eq!(meta.classes, ["0", "1"]);
    let shape = meta.image.unwrap();
    assert_eq!((shape.channels, shape.height, shape.width), (1, 5, 5));
    assert_eq!(
        (
            meta.split_sizes.train,
            meta.split_sizes.val,
            meta.split_sizes.test
        ),
        (4, 2, 3)
    );
    assert_eq!(data.test.labels(), [0, 1, 1]);
    assert_eq!(data.train.ids()[2], "train-2");

    let loader = BatchLoader::new(
        data.train.clone(),
        LoaderConfig {
            num_workers: 0,
            ..LoaderConfig::default()
        },
    )
    .unwrap();
    let batch = loader.epoch(0).next().unwrap().unwrap();
    let images = batch.images.unwrap();
    // Image 2, row 3 holds 23.
    assert_eq!(raw(images[2 * 25 + 3 * 5 + 1]), 23);
}

#[test]
fn rgb_archives_convert_and_resize() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("derma.npz");
    // Two 4x4 RGB images: pure red and pure blue.
    let mut pixels = Vec::new();
    for rgb in [[255u8, 0, 0], [0, 0, 255]] {
        for _ in 0..16 {
            pixels.extend_from_slice(&rgb);
        }
    }
    write_npz(
        &path,
        &[
            NpyArray::U8("train_images", vec![2, 4, 4, 3], pixels.clone()),
            NpyArray::U8("train_labels", vec![2, 1], vec![0, 1]),
        ],
    );
    let cfg = NpzConfig {
        path: path.clone(),
        val_fraction: 0.0,
        test_fraction: 0.0,
        ..NpzConfig::default()
    };
    let data = load_npz(&cfg).unwrap();
    let loader = BatchLoader::new(
        data.train.clone(),
        LoaderConfig {
            num_workers: 0,
            ..LoaderConfig::default()
        },
    )
    .unwrap();
    let images = loader.epoch(0).next().unwrap().unwrap().images.unwrap();
    // Planar: image 0 red plane all 255, blue plane 0; image 1 the other way round.
    assert_eq!(raw(images[0]), 255);
    assert_eq!(raw(images[2 * 16]), 0);
    assert_eq!(raw(images[48 + 2 * 16]), 255);

    let grey = load_npz(&NpzConfig {
        channels: Some(1),
        image_size: Some(2),
        ..cfg
    })
    .unwrap();
    let shape = grey.info().image.unwrap();
    assert_eq!((shape.channels, shape.height), (1, 2));
    assert_eq!(grey.train.len(), 2);
}

#[test]
fn missing_val_and_test_are_carved_from_train() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.npz");
    let labels: Vec<i64> = (0..20).map(|i| i % 2).collect();
    write_npz(
        &path,
        &[
            NpyArray::U8("train_images", vec![20, 2, 2], vec![7; 80]),
            NpyArray::I64("train_labels", vec![20], labels),
        ],
    );
    let data = load_npz(&NpzConfig {
        path,
        val_fraction: 0.2,
        test_fraction: 0.1,
        ..NpzConfig::default()
    })
    .unwrap();
    let sizes = data.info().split_sizes;
    assert_eq!((sizes.train, sizes.val, sizes.test), (14, 4, 2));
    assert_eq!(data.val.class_counts(), [2, 2]);
}

#[test]
fn archive_errors_name_the_array() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.npz");
    let cfg = |p: &std::path::Path| NpzConfig {
        path: p.to_path_buf(),
        ..NpzConfig::default()
    };

    let err = load_npz(&cfg(&dir.path().join("absent.npz"))).unwrap_err();
    assert!(
        matches!(err, DataError::Io { .. }) && err.to_string().contains("absent.npz"),
        "{err}"
    );

    write_text(&path, "not a zip");
    let err = load_npz(&cfg(&path)).unwrap_err();
    assert!(matches!(err, DataError::Npz { .. }), "{err:?}");

    write_npz(&path, &[NpyArray::U8("images", vec![1, 2, 2], vec![0; 4])]);
    let err = load_npz(&cfg(&path)).unwrap_err();
    assert!(matches!(err, DataError::MissingArray { .. }), "{err:?}");
    assert!(
        err.to_string().contains("`train_images`") && err.to_string().contains("images"),
        "{err}"
    );

    write_npz(
        &path,
        &[
            NpyArray::U8("train_images", vec![2, 2, 2], vec![0; 8]),
            NpyArray::U8("train_labels", vec![2, 3], vec![0; 6]),
        ],
    );
    let err = load_npz(&cfg(&path)).unwrap_err().to_string();
    assert!(
        err.contains("train_labels") && err.contains("multi-label"),
        "{err}"
    );

    write_npz(
        &path,
        &[
            NpyArray::F32("train_images", vec![2, 2, 2], vec![0.5; 8]),
            NpyArray::U8("train_labels", vec![2], vec![0, 1]),
        ],
    );
    let err = load_npz(&cfg(&path)).unwrap_err().to_string();
    assert!(
        err.contains("train_images") && err.contains("uint8"),
        "{err}"
    );

    write_npz(
        &path,
        &[
            NpyArray::U8("train_images", vec![2, 2, 2], vec![0; 8]),
            NpyArray::U8("train_labels", vec![3], vec![0, 1, 1]),
        ],
    );
    let err = load_npz(&cfg(&path)).unwrap_err().to_string();
    assert!(err.contains("3 labels for 2 images"), "{err}");
}
