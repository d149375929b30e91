//! `medfusion example-data` end to end: the files the example workflows read.

use std::path::Path;
use std::process::{Command, Output};

fn medfusion(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medfusion"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("medfusion runs")
}

fn is_png(file: &str) -> bool {
    Path::new(file).extension().is_some_and(|e| e == "png")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The files under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn writes_every_example_dataset_into_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "example-data",
        "out",
        "--samples",
        "40",
        "--image-size",
        "12",
        "--seed",
        "3",
    ];
    let out = medfusion(tmp.path(), &args);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // 40 samples: 28 train, 6 val, 6 test.
    assert!(
        stdout.starts_with("wrote 245 files to out: 40 samples (28 train, 6 val, 6 test)"),
        "{stdout}"
    );
    for node_type in [
        "dataset.image_folder",
        "dataset.csv",
        "dataset.npz",
        "dataset.multimodal",
        "dataset.dicom",
        "dataset.nifti",
    ] {
        assert!(stdout.contains(node_type), "{stdout}");
    }

    let dir = tmp.path().join("out");
    let all = files(&dir);
    // 245 data files (83, then 40 CT series of 3 slices and their labels, 40 NIfTI volumes
    // and theirs) and the record of what the export wrote.
    assert_eq!(all.len(), 246, "{all:?}");
    assert!(all.contains(&"nifti.csv".to_string()));
    assert!(all.contains(&"nifti/case-00000.nii.gz".to_string()));
    assert!(all.contains(&"dicom.csv".to_string()));
    let slices = all
        .iter()
        .filter(|f| f.starts_with("dicom/case-") && f.contains("/slice-"))
        .count();
    assert_eq!(slices, 120);
    assert!(all.contains(&".medfusion-export.json".to_string()));
    assert!(all.contains(&"table.csv".to_string()));
    assert!(all.contains(&"medmnist.npz".to_string()));
    assert!(all.contains(&"multimodal/table.csv".to_string()));
    let split_images = |split: &str| {
        all.iter()
            .filter(|f| f.starts_with(&format!("images/{split}/")) && is_png(f))
            .count()
    };
    assert_eq!(
        (
            split_images("train"),
            split_images("val"),
            split_images("test")
        ),
        (28, 6, 6)
    );
    let flat = all
        .iter()
        .filter(|f| f.starts_with("multimodal/images/case-") && is_png(f))
        .count();
    assert_eq!(flat, 40);

    // Every image is a 12x12 grey PNG.
    let png = std::fs::File::open(dir.join("multimodal/images/case-00000.png")).unwrap();
    let reader = png::Decoder::new(std::io::BufReader::new(png))
        .read_info()
        .unwrap();
    let info = reader.info();
    assert_eq!((info.width, info.height), (12, 12));
    assert_eq!(info.color_type, png::ColorType::Grayscale);

    let table = std::fs::read_to_string(dir.join("table.csv")).unwrap();
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("id,label,split,age,lesion_diameter_mm,marker_1,"),
        "{header}"
    );
    assert_eq!(table.lines().count(), 41);

    // Run again with the same seed: the same files, replaced.
    let again = medfusion(tmp.path(), &args);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(files(&dir), all);
    assert_eq!(
        std::fs::read_to_string(dir.join("table.csv")).unwrap(),
        table
    );
}

#[test]
fn the_default_folder_is_examples_data() {
    let tmp = tempfile::tempdir().unwrap();
    let out = medfusion(
        tmp.path(),
        &["example-data", "--samples", "12", "--image-size", "8"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(tmp.path().join("examples/data/medmnist.npz").is_file());
}

#[test]
fn a_setting_out_of_range_exits_2_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = medfusion(tmp.path(), &["example-data", "out", "--image-size", "4"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`image_size`"), "{stderr}");
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn a_folder_holding_other_images_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("out/images/train/benign/scan.png");
    std::fs::create_dir_all(mine.parent().unwrap()).unwrap();
    std::fs::write(&mine, b"mine").unwrap();
    let out = medfusion(
        tmp.path(),
        &[
            "example-data",
            "out",
            "--samples",
            "12",
            "--image-size",
            "8",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("scan.png"), "{stderr}");
    assert_eq!(std::fs::read(&mine).unwrap(), b"mine");
}
