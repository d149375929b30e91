//! Regression tests of hostile or unlucky inputs: symbolic-link loops and links across
//! splits, images and arrays whose headers claim huge sizes, labels that are not class
//! indices, and splits that come out empty. Each is named after what broke.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use super::{NpyArray, write_grey_png, write_npz, write_rgb, write_text};
use crate::walk::{SkipReason, Walker};
use crate::{
    BadImagePolicy, CsvConfig, DataError, DatasetSplits, ImageFolderConfig, MAX_CLASSES,
    MultimodalConfig, NpzConfig, SyntheticConfig, generate_synthetic, load_csv, load_image_folder,
    load_multimodal, load_npz,
};

/// Runs `f` on another thread and fails the test if it takes longer than a minute (instead
/// of hanging, as a symlink loop used to).
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_mins(1))
        .expect("the walk did not end (a symlink loop?)")
}

#[cfg(unix)]
fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// `root/{train,test}/{benign,malignant}/` with `n` images each.
fn split_folders(root: &Path, n: usize) {
    for split in ["train", "test"] {
        for class in ["benign", "malignant"] {
            for i in 0..n {
                write_grey_png(&root.join(format!("{split}/{class}/{i}.png")), 4, 9);
            }
        }
    }
}

fn folder_config(root: &Path) -> ImageFolderConfig {
    ImageFolderConfig {
        root: root.to_path_buf(),
        image_size: 4,
        val_fraction: 0.0,
        ..ImageFolderConfig::default()
    }
}

fn ids(data: &DatasetSplits) -> [Vec<String>; 3] {
    [&data.train, &data.val, &data.test].map(|s| s.ids().to_vec())
}

#[cfg(unix)]
#[test]
fn symlink_loop_in_image_folder_ends_and_names_what_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    split_folders(&root, 2);
    // A link to the folder itself, and one to its parent: both loops once followed.
    symlink(".", root.join("train/benign/self"));
    symlink("..", root.join("train/benign/up"));

    let config = folder_config(&root);
    let data = within_a_minute(move || load_image_folder(&config)).unwrap();
    assert_eq!(data.train.class_counts(), [2, 2]);

    let benign = root.join("train/benign");
    let mut walker = Walker::new(false);
    let images = within_a_minute(move || {
        let images = walker.images(&benign).unwrap();
        (images, walker.skipped)
    });
    assert_eq!(images.0.len(), 2);
    let skipped: Vec<(String, SkipReason)> = images
        .1
        .iter()
        .map(|(p, r)| (p.file_name().unwrap().to_string_lossy().into_owned(), *r))
        .collect();
    assert_eq!(
        skipped,
        [
            ("self".to_owned(), SkipReason::Symlink),
            ("up".to_owned(), SkipReason::Symlink)
        ]
    );

    // Followed, the self-link is a folder already entered: skipped, and the walk ends.
    let benign = root.join("train/benign");
    std::fs::remove_file(root.join("train/benign/up")).unwrap();
    let mut walker = Walker::new(true);
    let (images, skipped) = within_a_minute(move || {
        let images = walker.images(&benign).unwrap();
        (images, walker.skipped)
    });
    assert_eq!(images.len(), 2);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].1, SkipReason::Revisit);
    assert!(skipped[0].0.ends_with("train/benign/self"));
}

#[cfg(unix)]
#[test]
fn symlink_loop_under_multimodal_images_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,age,label,split\n");
    for i in 0..6 {
        write_grey_png(&dir.path().join(format!("images/p{i}.png")), 4, 9);
        let split = ["train", "train", "train", "train", "val", "test"][i];
        writeln!(csv, "p{i},{},{},{split}", 40 + i, i % 2).unwrap();
    }
    write_text(&dir.path().join("table.csv"), &csv);
    symlink("..", dir.path().join("images/up"));
    symlink(".", dir.path().join("images/self"));
    for follow_symlinks in [false, true] {
        let config = MultimodalConfig {
            images: dir.path().join("images"),
            table: dir.path().join("table.csv"),
            split_column: Some("split".into()),
            image_size: 4,
            follow_symlinks,
            ..MultimodalConfig::default()
        };
        let data = within_a_minute(move || load_multimodal(&config)).unwrap();
        assert_eq!(data.train.len(), 4, "follow_symlinks: {follow_symlinks}");
    }
}

#[cfg(unix)]
#[test]
fn dotdot_link_in_a_class_folder_does_not_mix_splits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    split_folders(&root, 2);
    // `train/benign/a` leads to the dataset root, and so to the test images.
    symlink("../..", root.join("train/benign/a"));

    let plain = ids(&within_a_minute({
        let config = folder_config(&root);
        move || load_image_folder(&config)
    })
    .unwrap());
    assert_eq!(
        plain[0],
        [
            "train/benign/0.png",
            "train/benign/1.png",
            "train/malignant/0.png",
            "train/malignant/1.png"
        ]
    );
    assert_eq!(plain[2].len(), 4);
    assert!(plain[2].iter().all(|id| id.starts_with("test/")));

    // Followed, the test images would count twice: an error naming both paths.
    let config = ImageFolderConfig {
        follow_symlinks: true,
        ..folder_config(&root)
    };
    let err = within_a_minute(move || load_image_folder(&config)).unwrap_err();
    assert!(matches!(err, DataError::DuplicateFile { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("same file") && text.contains("train/benign/a/"),
        "{text}"
    );
}

#[cfg(unix)]
#[test]
fn one_image_linked_into_two_splits_is_an_error_naming_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    split_folders(root, 2);
    // A link to a file is read like a file, but one file may be used once.
    symlink(
        "../../test/malignant/0.png",
        root.join("train/benign/copy.png"),
    );
    let err = load_image_folder(&folder_config(root)).unwrap_err();
    let DataError::DuplicateFile { first, second } = &err else {
        panic!("{err}");
    };
    assert_eq!(first, &root.join("train/benign/copy.png"));
    assert_eq!(second, &root.join("test/malignant/0.png"));
    // A hard link in the same split, too.
    std::fs::remove_file(root.join("train/benign/copy.png")).unwrap();
    std::fs::hard_link(
        root.join("train/benign/0.png"),
        root.join("train/malignant/9.png"),
    )
    .unwrap();
    let err = load_image_folder(&folder_config(root)).unwrap_err();
    assert!(err.to_string().contains("9.png"), "{err}");
}

#[cfg(unix)]
#[test]
fn symlinked_class_folder_is_read_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    for i in 0..3 {
        write_grey_png(&root.join(format!("benign/{i}.png")), 4, 9);
        write_grey_png(&dir.path().join(format!("elsewhere/{i}.png")), 4, 9);
    }
    symlink(dir.path().join("elsewhere"), root.join("malignant"));
    let config = ImageFolderConfig {
        test_fraction: 0.0,
        ..folder_config(&root)
    };
    let err = load_image_folder(&config).unwrap_err().to_string();
    assert!(
        err.contains("follow_symlinks") && err.contains("malignant"),
        "{err}"
    );
    let data = load_image_folder(&ImageFolderConfig {
        follow_symlinks: true,
        ..config
    })
    .unwrap();
    assert_eq!(data.train.class_counts(), [3, 3]);
}

/// A CRC-32 (IEEE) for patching PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A small PNG whose header claims `width` x `height` (its pixel data is of a 4x4 image).
fn png_claiming(path: &Path, width: u32, height: u32) {
    write_grey_png(path, 4, 9);
    let mut bytes = std::fs::read(path).unwrap();
    // Signature (8), IHDR length (4), `IHDR` (4), then width and height; the CRC covers the
    // chunk type and its 13 bytes of data.
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn png_claiming_20000x20000_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..4 {
        write_grey_png(&root.join(format!("benign/{i}.png")), 4, 9);
        write_grey_png(&root.join(format!("malignant/{i}.png")), 4, 9);
    }
    let bomb = root.join("malignant/bomb.png");
    png_claiming(&bomb, 20_000, 20_000);
    let config = ImageFolderConfig {
        test_fraction: 0.0,
        ..folder_config(root)
    };
    for on_error in [BadImagePolicy::Fail, BadImagePolicy::Skip] {
        let err = load_image_folder(&ImageFolderConfig {
            on_error,
            ..config.clone()
        })
        .unwrap_err();
        assert!(matches!(err, DataError::ImageTooLarge { .. }), "{err}");
        let text = err.to_string();
        for part in [
            "bomb.png",
            "20000x20000 (400000000 pixels)",
            "67108864",
            "raise `max_image_pixels`",
        ] {
            assert!(text.contains(part), "{on_error:?}: `{part}` not in: {text}");
        }
    }
    // The loader checks again when it decodes (the file may have changed since loading).
    let mut scratch = crate::decode::Scratch::default();
    let shape = crate::ImageShape {
        channels: 1,
        depth: 1,
        height: 4,
        width: 4,
    };
    let err = crate::decode::decode_file(&bomb, shape, 1 << 20, &mut scratch).unwrap_err();
    assert!(matches!(err, DataError::ImageTooLarge { .. }), "{err}");
    // Raising the limit lets the header through (this one then fails to decode, as a
    // damaged file: the point is that the limit is the setting that decides).
    let err = load_image_folder(&ImageFolderConfig {
        max_image_pixels: 400_000_000,
        ..config
    });
    assert!(
        !matches!(err, Err(DataError::ImageTooLarge { .. })),
        "{err:?}"
    );
}

#[test]
fn jpeg_over_max_image_pixels_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..3 {
        write_rgb(&root.join(format!("benign/{i}.jpg")), 16, 16, [9, 9, 9]);
        write_rgb(&root.join(format!("malignant/{i}.jpg")), 16, 16, [9, 9, 9]);
    }
    write_rgb(&root.join("malignant/wide.jpg"), 64, 16, [9, 9, 9]);
    let config = ImageFolderConfig {
        test_fraction: 0.0,
        max_image_pixels: 16 * 16,
        ..folder_config(root)
    };
    let err = load_image_folder(&config).unwrap_err().to_string();
    assert!(err.contains("wide.jpg") && err.contains("64x16"), "{err}");
    let mut scratch = crate::decode::Scratch::default();
    let shape = crate::ImageShape {
        channels: 3,
        depth: 1,
        height: 8,
        width: 8,
    };
    let err =
        crate::decode::decode_file(&root.join("malignant/wide.jpg"), shape, 256, &mut scratch)
            .unwrap_err();
    assert!(matches!(err, DataError::ImageTooLarge { .. }), "{err}");
}

fn npz_labels(dir: &Path, labels: NpyArray<'_>, n: usize) -> PathBuf {
    let path = dir.join("labels.npz");
    write_npz(
        &path,
        &[
            NpyArray::U8("train_images", vec![n as u64, 2, 2], vec![7; n * 4]),
            labels,
        ],
    );
    path
}

#[test]
fn npz_label_2_pow_62_is_an_error_not_a_capacity_overflow() {
    let dir = tempfile::tempdir().unwrap();
    for (bad, shown) in [
        (1i64 << 62, "4611686018427387904"),
        (1_000_000, "1000000"),
        (MAX_CLASSES as i64, "10000"),
    ] {
        let path = npz_labels(
            dir.path(),
            NpyArray::I64("train_labels", vec![4], vec![0, 1, bad, 1]),
            4,
        );
        let err = load_npz(&NpzConfig {
            path,
            ..NpzConfig::default()
        })
        .unwrap_err()
        .to_string();
        for part in [
            "train_labels",
            "labels must be 0..K-1",
            shown,
            "at most 10000",
        ] {
            assert!(err.contains(part), "`{part}` not in: {err}");
        }
    }
    let path = npz_labels(
        dir.path(),
        NpyArray::I64("train_labels", vec![4], vec![0, 1, -3, 1]),
        4,
    );
    let err = load_npz(&NpzConfig {
        path,
        ..NpzConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("train_labels") && err.contains("negative label -3"),
        "{err}"
    );
    // The largest allowed label still loads.
    let path = npz_labels(
        dir.path(),
        NpyArray::I64("train_labels", vec![4], vec![0, 1, 9_999, 1]),
        4,
    );
    let data = load_npz(&NpzConfig {
        path,
        val_fraction: 0.0,
        test_fraction: 0.0,
        ..NpzConfig::default()
    })
    .unwrap();
    assert_eq!(data.info().num_classes(), MAX_CLASSES);
}

/// An `.npz` holding one `.npy` entry `name` whose header claims `shape` (as a Python tuple),
/// followed by `data`.
fn forged_npz(path: &Path, name: &str, shape: &str, data: &[u8]) {
    let mut header = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    npy.extend_from_slice(data);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    zip.start_file(
        format!("{name}.npy"),
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.write_all(&npy).unwrap();
    zip.finish().unwrap();
}

#[test]
fn npz_header_claiming_10_12_elements_fails_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forged.npz");
    for shape in [
        "(1000000, 1000, 1000)",
        "(4294967296, 4294967296, 4294967296)",
    ] {
        forged_npz(&path, "train_images", shape, &[0; 64]);
        let err = load_npz(&NpzConfig {
            path: path.clone(),
            ..NpzConfig::default()
        })
        .unwrap_err();
        assert!(matches!(err, DataError::BadArray { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("train_images") && text.contains("64 bytes"),
            "{text}"
        );
    }
    // A zero-sized image is an error, not a panic.
    forged_npz(&path, "train_images", "(4, 0, 0)", &[]);
    let err = load_npz(&NpzConfig {
        path: path.clone(),
        ..NpzConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("4×0×0"), "{err}");
}

#[test]
fn csv_label_column_with_more_than_max_classes_values_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ids.csv");
    let mut text = String::from("x,label\n");
    for i in 0..=MAX_CLASSES {
        writeln!(text, "1,{i}").unwrap();
    }
    write_text(&path, &text);
    let err = load_csv(&CsvConfig {
        path,
        ..CsvConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("label_column") && err.contains("10001 distinct labels"),
        "{err}"
    );
}

#[test]
fn image_folder_with_more_than_max_classes_folders_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..=MAX_CLASSES {
        std::fs::create_dir(dir.path().join(format!("c{i}"))).unwrap();
    }
    let err = load_image_folder(&folder_config(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("10001 class folders"), "{err}");
}

#[test]
fn six_row_csv_says_the_validation_split_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.csv");
    write_text(&path, "x,label\n1,a\n2,a\n3,a\n4,b\n5,b\n6,b\n");
    let err = load_csv(&CsvConfig {
        path: path.clone(),
        ..CsvConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(&err, DataError::EmptySplit { split, .. } if split == "val"),
        "{err}"
    );
    let text = err.to_string();
    for part in [
        "validation split",
        "tiny.csv",
        "6 samples",
        "val_fraction: 0.15",
        "larger `val_fraction`",
    ] {
        assert!(text.contains(part), "`{part}` not in: {text}");
    }
    // Asked for no validation split: that is fine; the test split is then the empty one.
    let err = load_csv(&CsvConfig {
        path,
        val_fraction: 0.0,
        ..CsvConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("test split") && err.contains("test_fraction: 0.15"),
        "{err}"
    );
}

#[test]
fn few_images_say_which_split_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..2 {
        write_grey_png(&dir.path().join(format!("benign/{i}.png")), 4, 9);
        write_grey_png(&dir.path().join(format!("malignant/{i}.png")), 4, 9);
    }
    let err = load_image_folder(&ImageFolderConfig {
        root: dir.path().to_path_buf(),
        image_size: 4,
        ..ImageFolderConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("validation split") && err.contains("4 samples"),
        "{err}"
    );

    let path = npz_labels(
        dir.path(),
        NpyArray::I64("train_labels", vec![4], vec![0, 1, 0, 1]),
        4,
    );
    let err = load_npz(&NpzConfig {
        path,
        val_fraction: 0.0,
        ..NpzConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("test split") && err.contains("4 samples"),
        "{err}"
    );

    let err = generate_synthetic(&SyntheticConfig {
        samples: 10,
        image_size: 8,
        val_fraction: 0.01,
        ..SyntheticConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("validation split") && err.contains("0.01 of 10 rounds to 0"),
        "{err}"
    );
}

#[test]
fn an_empty_split_fed_to_a_consumer_says_how_the_samples_are_split() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    write_text(
        &path,
        "x,label,split\n1,a,train\n2,b,train\n3,a,test\n4,b,test\n",
    );
    let data = load_csv(&CsvConfig {
        path,
        split_column: Some("split".into()),
        ..CsvConfig::default()
    })
    .unwrap();
    assert!(data.train.require_samples().is_ok());
    let err = data.val.require_samples().unwrap_err().to_string();
    assert!(
        err.contains("validation split") && err.contains("2 train, 0 val and 2 test"),
        "{err}"
    );
}
