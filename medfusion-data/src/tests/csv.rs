use std::fmt::Write as _;

use super::write_text;
use crate::{CsvConfig, DataError, DatasetKind, load_csv};

const TABLE: &str = "\
patient,age,sex,smoker,split,diagnosis
p1,40,f,yes,train,benign
p2,60,m,no,train,malignant
p3,,f,no,train,benign
p4,50,m,NA,train,malignant
p5,70,x,yes,val,malignant
p6,30,f,no,test,benign
";

fn config(path: &std::path::Path) -> CsvConfig {
    CsvConfig {
        path: path.to_path_buf(),
        label_column: "diagnosis".into(),
        id_column: Some("patient".into()),
        split_column: Some("split".into()),
        ..CsvConfig::default()
    }
}

#[test]
fn features_are_encoded_with_training_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clinical.csv");
    write_text(&path, TABLE);
    let data = load_csv(&config(&path)).unwrap();
    let meta = data.info();
    assert_eq!(meta.kind, DatasetKind::Tabular);
    assert_eq!(meta.classes, ["benign", "malignant"]);
    let names: Vec<&str> = meta.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["age", "sex=f", "sex=m", "smoker=no", "smoker=yes"]);
    // Training ages 40, 60, 50 (p3 missing): mean 50, std sqrt(200/3).
    let std = (200.0f32 / 3.0).sqrt();
    assert!(
        (meta.features[0].mean - 50.0).abs() < 1e-4 && (meta.features[0].std - std).abs() < 1e-4
    );
    assert_eq!(data.train.ids(), ["p1", "p2", "p3", "p4"]);
    assert_eq!(data.train.labels(), [0, 1, 0, 1]);
    let row = |split: &crate::DataSplit, i| split.features(i).unwrap().to_vec();
    assert!((row(&data.train, 0)[0] + 10.0 / std).abs() < 1e-5);
    assert!(
        row(&data.train, 2)[0].abs() < 1e-6,
        "missing age imputed with the training mean"
    );
    // p4's smoker is missing: the training mode of {yes, no, no} is `no`.
    assert_eq!(row(&data.train, 3)[3..], [1.0, 0.0]);
    // p5 (val) has sex `x`, never seen in training: all zeros.
    assert_eq!(row(&data.val, 0)[1..3], [0.0, 0.0]);
    assert!((row(&data.val, 0)[0] - 20.0 / std).abs() < 1e-5);
    assert_eq!(data.test.ids(), ["p6"]);
}

#[test]
fn numeric_codes_can_be_categorical_and_columns_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    write_text(
        &path,
        "id;stage;noise;label\na;1;5;0\nb;2;6;1\nc;3;7;0\nd;1;8;1\n",
    );
    let cfg = CsvConfig {
        path,
        delimiter: ';',
        id_column: Some("id".into()),
        categorical_columns: vec!["stage".into()],
        drop_columns: vec!["noise".into()],
        val_fraction: 0.0,
        test_fraction: 0.0,
        ..CsvConfig::default()
    };
    let data = load_csv(&cfg).unwrap();
    let names: Vec<&str> = data
        .info()
        .features
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["stage=1", "stage=2", "stage=3"]);
    assert_eq!(data.train.features(1).unwrap(), [0.0, 1.0, 0.0]);
}

#[test]
fn numeric_labels_sort_numerically_and_fractions_stratify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let mut text = String::from("x,label\n");
    for i in 0..40 {
        writeln!(text, "{i},{}", [2, 10][i % 2]).unwrap();
    }
    write_text(&path, &text);
    let cfg = CsvConfig {
        path,
        val_fraction: 0.25,
        test_fraction: 0.25,
        ..CsvConfig::default()
    };
    let data = load_csv(&cfg).unwrap();
    assert_eq!(data.info().classes, ["2", "10"]);
    assert_eq!(data.train.class_counts(), [10, 10]);
    assert_eq!(data.val.class_counts(), [5, 5]);
    assert!(data.train.ids()[0].starts_with("row-"));
}

#[test]
fn table_errors_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clinical.csv");
    write_text(&path, TABLE);

    let mut cfg = config(&path);
    cfg.label_column = "outcome".into();
    let err = load_csv(&cfg).unwrap_err();
    assert!(matches!(err, DataError::MissingColumn { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("`outcome`") && text.contains("diagnosis") && text.contains("clinical.csv"),
        "{text}"
    );

    write_text(
        &path,
        &TABLE.replace("p6,30,f,no,test", "p6,30,f,no,holdout"),
    );
    let err = load_csv(&config(&path)).unwrap_err();
    assert!(
        matches!(err, DataError::BadValue { line: 7, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("holdout"), "{err}");

    write_text(&path, &TABLE.replace("yes,val,malignant", "yes,val,"));
    let err = load_csv(&config(&path)).unwrap_err().to_string();
    assert!(
        err.contains("label is missing") && err.contains("line 6"),
        "{err}"
    );

    write_text(&path, TABLE);
    let mut cfg = config(&path);
    cfg.classes = vec!["benign".into(), "other".into()];
    let err = load_csv(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("malignant") && err.contains("not one of the classes"),
        "{err}"
    );

    write_text(&path, &TABLE.replace("p2,", "p1,"));
    let err = load_csv(&config(&path)).unwrap_err().to_string();
    assert!(err.contains("unique"), "{err}");

    write_text(&path, "a,b\n1,2,3\n");
    let err = load_csv(&CsvConfig {
        path: path.clone(),
        ..CsvConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, DataError::Csv { .. }), "{err:?}");

    write_text(&path, "x,label\n1,a\n2,a\n");
    let err = load_csv(&CsvConfig {
        path: path.clone(),
        ..CsvConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("at least 2"), "{err}");

    let err = load_csv(&CsvConfig {
        path: dir.path().join("none.csv"),
        ..CsvConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, DataError::Io { .. }) && err.to_string().contains("none.csv"),
        "{err}"
    );
}
