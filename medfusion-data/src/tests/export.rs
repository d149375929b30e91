//! The example-data export, read back with the real loaders.

use std::collections::HashMap;
use std::path::Path;

use super::write_grey_png;
use crate::{
    BatchLoader, CsvConfig, DataError, DataSplit, DatasetSplits, ImageFolderConfig, LoaderConfig,
    MultimodalConfig, NpzConfig, SplitName, SyntheticConfig, export_example_data,
    generate_synthetic, load_csv, load_image_folder, load_multimodal, load_npz,
};

fn small() -> SyntheticConfig {
    SyntheticConfig {
        samples: 60,
        image_size: 16,
        ..SyntheticConfig::default()
    }
}

/// Every image of a split, normalised, one `Vec` per sample.
fn images(split: &DataSplit) -> Vec<Vec<f32>> {
    let cfg = LoaderConfig {
        batch_size: split.len(),
        num_workers: 0,
        ..LoaderConfig::default()
    };
    let batch = BatchLoader::new(split.clone(), cfg)
        .unwrap()
        .epoch(0)
        .next()
        .unwrap()
        .unwrap();
    let per = batch.image_shape.unwrap().height * batch.image_shape.unwrap().width;
    batch
        .images
        .unwrap()
        .chunks_exact(per)
        .map(<[f32]>::to_vec)
        .collect()
}

/// Asserts two datasets hold the same samples per split, in the same order.
fn assert_same_order(loaded: &DatasetSplits, expected: &DatasetSplits, what: &str) {
    for name in SplitName::ALL {
        let (got, want) = (loaded.split(name), expected.split(name));
        assert_eq!(got.labels(), want.labels(), "{what} {name}: labels");
        assert_eq!(images(got), images(want), "{what} {name}: pixels");
    }
}

/// Asserts the standardised features agree (the CSV holds 4-decimal values).
fn assert_close_features(loaded: &DataSplit, expected: &DataSplit, what: &str) {
    for i in 0..expected.len() {
        let (got, want) = (loaded.features(i).unwrap(), expected.features(i).unwrap());
        for (j, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() < 1e-3,
                "{what} sample {i} feature {j}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn every_output_loads_with_its_loader_and_matches_the_synthetic_set() {
    let dir = tempfile::tempdir().unwrap();
    let report = export_example_data(dir.path(), &small(), false).unwrap();
    let expected = generate_synthetic(&small()).unwrap();
    let meta = expected.info();
    assert_eq!(report.split_sizes, meta.split_sizes);
    assert_eq!(report.classes, ["benign", "disease_1"]);
    let feature_names: Vec<&str> = meta.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(report.features, feature_names);
    assert_eq!(
        report.features[..3],
        ["age", "lesion_diameter_mm", "marker_1"]
    );
    let types: Vec<&str> = report.outputs.iter().map(|o| o.node_type).collect();
    assert_eq!(
        types,
        [
            "dataset.image_folder",
            "dataset.csv",
            "dataset.npz",
            "dataset.multimodal",
            "dataset.dicom",
            "dataset.nifti"
        ]
    );
    assert_eq!(report.files(), 60 + 1 + 1 + 61 + (60 * 3 + 1) + (60 + 1));

    // Image folder: sorted by class and file name, so compare by id.
    let folder = load_image_folder(&ImageFolderConfig {
        root: dir.path().join("images"),
        image_size: 16,
        ..ImageFolderConfig::default()
    })
    .unwrap();
    assert_eq!(folder.info().classes, meta.classes);
    assert_eq!(folder.info().split_sizes, meta.split_sizes);
    for name in SplitName::ALL {
        let (got, want) = (folder.split(name), expected.split(name));
        assert_eq!(got.class_counts(), want.class_counts(), "{name}");
        let want_images: HashMap<&str, (u32, Vec<f32>)> = want
            .ids()
            .iter()
            .map(String::as_str)
            .zip(want.labels().iter().copied().zip(images(want)))
            .collect();
        for ((id, &label), pixels) in got.ids().iter().zip(got.labels()).zip(images(got)) {
            // `train/benign/case-00003.png`
            let class = &meta.classes[label as usize];
            let stem = id
                .strip_prefix(&format!("{name}/{class}/"))
                .and_then(|s| s.strip_suffix(".png"))
                .unwrap_or_else(|| panic!("unexpected id `{id}`"));
            assert_eq!(want_images[stem], (label, pixels), "{id}");
        }
    }

    // CSV: rows in generation order, raw values standardised again on train.
    let table = load_csv(&CsvConfig {
        path: dir.path().join("table.csv"),
        id_column: Some("id".into()),
        split_column: Some("split".into()),
        ..CsvConfig::default()
    })
    .unwrap();
    assert_eq!(table.info().classes, meta.classes);
    assert_eq!(table.info().features.len(), meta.features.len());
    for name in SplitName::ALL {
        let (got, want) = (table.split(name), expected.split(name));
        assert_eq!(got.ids(), want.ids(), "{name}");
        assert_eq!(got.labels(), want.labels(), "{name}");
        assert_close_features(got, want, "table.csv");
    }

    // NPZ: the same splits, rows in order; classes named in the config.
    let npz = load_npz(&NpzConfig {
        path: dir.path().join("medmnist.npz"),
        classes: meta.classes.clone(),
        ..NpzConfig::default()
    })
    .unwrap();
    assert_eq!(npz.info().split_sizes, meta.split_sizes);
    assert_same_order(&npz, &expected, "npz");

    // Multimodal: table rows joined to the flat image folder by id.
    let mm = load_multimodal(&MultimodalConfig {
        images: dir.path().join("multimodal/images"),
        table: dir.path().join("multimodal/table.csv"),
        split_column: Some("split".into()),
        image_size: 16,
        ..MultimodalConfig::default()
    })
    .unwrap();
    assert_eq!(mm.info().classes, meta.classes);
    assert_same_order(&mm, &expected, "multimodal");
    for name in SplitName::ALL {
        assert_eq!(mm.split(name).ids(), expected.split(name).ids());
        assert_close_features(mm.split(name), expected.split(name), "multimodal");
    }
}

/// Shape and dtype of one array of an `.npz`.
fn npy_header(path: &Path, array: &str) -> (Vec<u64>, String) {
    let file = std::fs::File::open(path).unwrap();
    let mut zip = zip::ZipArchive::new(file).unwrap();
    let npy = npyz::NpyFile::new(zip.by_name(&format!("{array}.npy")).unwrap()).unwrap();
    (npy.shape().to_vec(), npy.dtype().descr())
}

#[test]
fn npz_uses_the_medmnist_dtypes_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let report = export_example_data(dir.path(), &small(), false).unwrap();
    let path = dir.path().join("medmnist.npz");
    let sizes = report.split_sizes;
    for (split, n) in [
        ("train", sizes.train),
        ("val", sizes.val),
        ("test", sizes.test),
    ] {
        let n = n as u64;
        assert_eq!(
            npy_header(&path, &format!("{split}_images")),
            (vec![n, 16, 16], "'|u1'".to_string())
        );
        assert_eq!(
            npy_header(&path, &format!("{split}_labels")),
            (vec![n, 1], "'|u1'".to_string())
        );
    }
}

#[test]
fn same_seed_writes_the_same_bytes() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    export_example_data(a.path(), &small(), false).unwrap();
    export_example_data(b.path(), &small(), false).unwrap();
    let files = ["table.csv".to_string(), "medmnist.npz".to_string()]
        .into_iter()
        .chain((0..60).map(|i| format!("multimodal/images/case-{i:05}.png")));
    for file in files {
        let read = |dir: &Path| std::fs::read(dir.join(&file)).unwrap();
        assert_eq!(read(a.path()), read(b.path()), "{file}");
    }
}

#[test]
fn a_new_export_replaces_an_earlier_one_completely() {
    let dir = tempfile::tempdir().unwrap();
    let three = SyntheticConfig {
        samples: 90,
        classes: 3,
        ..small()
    };
    export_example_data(dir.path(), &three, false).unwrap();
    assert!(dir.path().join("images/train/disease_2").is_dir());
    export_example_data(dir.path(), &small(), false).unwrap();

    // No stale class folder or image is left to join the dataset.
    assert!(!dir.path().join("images/train/disease_2").exists());
    let folder = load_image_folder(&ImageFolderConfig {
        root: dir.path().join("images"),
        image_size: 16,
        ..ImageFolderConfig::default()
    })
    .unwrap();
    assert_eq!(folder.info().classes, ["benign", "disease_1"]);
    let sizes = folder.info().split_sizes;
    assert_eq!(sizes.train + sizes.val + sizes.test, 60);
    let mm_images = std::fs::read_dir(dir.path().join("multimodal/images")).unwrap();
    assert_eq!(mm_images.count(), 60);
    let table = std::fs::read_to_string(dir.path().join("table.csv")).unwrap();
    assert_eq!(table.lines().count(), 61);
    // No temporary file is left behind: the only hidden file is the export's record.
    let hidden: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert_eq!(hidden, [".medfusion-export.json"]);
}

#[test]
fn a_folder_with_other_files_is_left_alone_with_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let scan = dir.path().join("images/train/benign/scan.png");
    write_grey_png(&scan, 4, 7);
    let err = export_example_data(dir.path(), &small(), false).unwrap_err();
    let DataError::Write { path, source } = &err else {
        panic!("unexpected error: {err}");
    };
    assert_eq!(path, &dir.path().join("images"));
    assert!(source.to_string().contains("scan.png"), "{source}");
    assert!(scan.is_file());
}

#[test]
fn an_unwritable_folder_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let out = blocker.join("data");
    let err = export_example_data(&out, &small(), false).unwrap_err();
    assert!(
        matches!(&err, DataError::Write { path, .. } if path == &out),
        "{err}"
    );
    assert!(err.to_string().contains("blocker"), "{err}");
}

#[test]
fn an_invalid_config_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    let err = export_example_data(
        &out,
        &SyntheticConfig {
            samples: 4,
            ..small()
        },
        false,
    )
    .unwrap_err();
    assert!(
        matches!(&err, DataError::InvalidConfig { field, .. } if field == "samples"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn the_users_own_files_are_never_replaced_without_force() {
    let dir = tempfile::tempdir().unwrap();
    // The user's own table and archive where an export would write.
    std::fs::create_dir_all(dir.path().join("multimodal")).unwrap();
    for file in ["table.csv", "medmnist.npz", "multimodal/table.csv"] {
        std::fs::write(dir.path().join(file), b"patient,label\np1,1\n").unwrap();
        let err = export_example_data(dir.path(), &small(), false).unwrap_err();
        assert!(
            err.to_string().contains(file) || format!("{err:?}").contains(file),
            "{file}: {err}"
        );
        assert!(
            !dir.path().join("images").exists(),
            "{file}: nothing is written"
        );
        assert_eq!(
            std::fs::read(dir.path().join(file)).unwrap(),
            b"patient,label\np1,1\n"
        );
        std::fs::remove_file(dir.path().join(file)).unwrap();
    }
    // An export's own files are replaced by the next export; a changed one is not.
    export_example_data(dir.path(), &small(), false).unwrap();
    export_example_data(dir.path(), &small(), false).unwrap();
    std::fs::write(dir.path().join("table.csv"), b"edited by hand\n").unwrap();
    assert!(export_example_data(dir.path(), &small(), false).is_err());
    assert_eq!(
        std::fs::read(dir.path().join("table.csv")).unwrap(),
        b"edited by hand\n"
    );
    // `force` replaces it.
    export_example_data(dir.path(), &small(), true).unwrap();
    assert!(
        std::fs::read_to_string(dir.path().join("table.csv"))
            .unwrap()
            .starts_with("id,label,split")
    );
}
