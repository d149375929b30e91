use std::fmt::Write as _;

use super::{raw, write_grey_png, write_text};
use crate::{
    BatchLoader, DataError, DatasetKind, LoaderConfig, MultimodalConfig, UnmatchedPolicy,
    load_multimodal,
};

fn setup(dir: &std::path::Path, rows: usize) -> MultimodalConfig {
    let mut csv = String::from("patient_id,age,label,split\n");
    for i in 0..rows {
        // Image of patient i is filled with 10 * i; label alternates.
        write_grey_png(
            &dir.join(format!("images/batch{}/pt{i}.png", i % 2)),
            4,
            (10 * i) as u8,
        );
        let split = match i.cmp(&(rows - 2)) {
            std::cmp::Ordering::Less => "train",
            std::cmp::Ordering::Equal => "val",
            std::cmp::Ordering::Greater => "test",
        };
        writeln!(csv, "pt{i},{},{},{split}", 40 + i, i % 2).unwrap();
    }
    write_text(&dir.join("clinical.csv"), &csv);
    MultimodalConfig {
        images: dir.join("images"),
        table: dir.join("clinical.csv"),
        id_column: "patient_id".into(),
        split_column: Some("split".into()),
        image_size: 4,
        channels: 1,
        ..MultimodalConfig::default()
    }
}

#[test]
fn rows_are_joined_to_images_by_file_stem() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), 8);
    let data = load_multimodal(&cfg).unwrap();
    assert_eq!(data.info().kind, DatasetKind::Multimodal);
    assert_eq!(data.info().tabular_features(), 1);
    assert_eq!(data.train.len(), 6);
    assert_eq!(data.test.ids(), ["pt7"]);
    assert!(
        data.train
            .image_path(3)
            .unwrap()
            .ends_with("batch1/pt3.png")
    );

    let loader = BatchLoader::new(
        data.train.clone(),
        LoaderConfig {
            num_workers: 0,
            ..LoaderConfig::default()
        },
    )
    .unwrap();
    let batch = loader.epoch(0).next().unwrap().unwrap();
    let (images, table) = (batch.images.unwrap(), batch.tabular.unwrap());
    for i in 0..6 {
        assert_eq!(raw(images[i * 16]), (10 * i) as u8, "image of row {i}");
    }
    // Ages 40..45 standardised: increasing with the row.
    assert!(table.windows(2).all(|w| w[0] < w[1]));
    let model = data.info().model_info();
    assert_eq!((model.classes, model.tabular_features), (2, Some(1)));
}

#[test]
fn unmatched_rows_fail_or_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(dir.path(), 8);
    std::fs::remove_file(dir.path().join("images/batch0/pt2.png")).unwrap();
    std::fs::remove_file(dir.path().join("images/batch1/pt5.png")).unwrap();
    let err = load_multimodal(&cfg).unwrap_err();
    assert!(
        matches!(err, DataError::UnmatchedIds { count: 2, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("pt2, pt5") && text.contains("on_unmatched"),
        "{text}"
    );

    cfg.on_unmatched = UnmatchedPolicy::Drop;
    let data = load_multimodal(&cfg).unwrap();
    assert_eq!(data.train.len(), 4);
    assert!(!data.train.ids().contains(&"pt2".to_string()));
}

#[test]
fn image_column_gives_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    write_grey_png(&dir.path().join("imgs/a.png"), 4, 1);
    write_grey_png(&dir.path().join("imgs/b.png"), 4, 2);
    write_text(
        &dir.path().join("t.csv"),
        "file,x,label\na.png,1,0\nb.png,2,1\nmissing.png,3,1\n",
    );
    let cfg = MultimodalConfig {
        images: dir.path().join("imgs"),
        table: dir.path().join("t.csv"),
        val_fraction: 0.0,
        test_fraction: 0.0,
        image_column: Some("file".into()),
        image_size: 4,
        channels: 1,
        on_unmatched: UnmatchedPolicy::Drop,
        ..MultimodalConfig::default()
    };
    let data = load_multimodal(&cfg).unwrap();
    assert_eq!(data.train.len(), 2);
    assert_eq!(data.info().features.len(), 1);
}

#[test]
fn join_errors_are_explicit() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(dir.path(), 4);
    cfg.id_column = "patient".into();
    let err = load_multimodal(&cfg).unwrap_err();
    assert!(matches!(err, DataError::MissingColumn { .. }), "{err:?}");
    assert!(
        err.to_string().contains("`patient`") && err.to_string().contains("patient_id"),
        "{err}"
    );

    let mut cfg = setup(dir.path(), 4);
    write_grey_png(&dir.path().join("images/other/pt1.png"), 4, 0);
    let err = load_multimodal(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("`pt1`") && err.contains("image_column"),
        "{err}"
    );

    cfg.images = dir.path().join("nowhere");
    assert!(matches!(
        load_multimodal(&cfg).unwrap_err(),
        DataError::MissingFolder { .. }
    ));
}
