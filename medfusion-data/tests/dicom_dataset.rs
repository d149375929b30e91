//! `dataset.dicom` and `dataset.nifti` on the example-data export: every slice read, patients
//! never split, the series order recovered from the geometry, bad files named or skipped,
//! pydicom reading the DICOM files written, NIfTI volumes as volumes or slices.

#![allow(clippy::print_stderr)]

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use medfusion_data::dicom::{DicomConfig, order_series, read_dicom_header};
use medfusion_data::{
    BadImagePolicy, DataError, SplitName, SyntheticConfig, export_example_data, load_dicom,
};

fn export(dir: &Path) {
    export_example_data(
        dir,
        &SyntheticConfig {
            samples: 40,
            image_size: 24,
            ..SyntheticConfig::default()
        },
        false,
    )
    .unwrap();
}

fn config(dir: &Path) -> DicomConfig {
    DicomConfig {
        root: dir.join("dicom"),
        labels: dir.join("dicom.csv"),
        image_size: 24,
        val_fraction: 0.2,
        test_fraction: 0.2,
        ..DicomConfig::default()
    }
}

#[test]
fn slices_load_and_patients_stay_in_one_split() {
    let tmp = tempfile::tempdir().unwrap();
    export(tmp.path());
    let data = load_dicom(&config(tmp.path())).unwrap();
    let sizes = data.info().split_sizes;
    assert_eq!(sizes.train + sizes.val + sizes.test, 40 * 3);
    assert_eq!(data.info().classes.len(), 2);
    let patient = |id: &str| id.split('/').next().unwrap().to_owned();
    let mut seen: HashMap<String, SplitName> = HashMap::new();
    for name in SplitName::ALL {
        for id in data.split(name).ids() {
            let p = patient(id);
            if let Some(other) = seen.insert(p.clone(), name) {
                assert_eq!(other, name, "patient {p} is in {other} and {name}");
            }
        }
    }
    assert_eq!(seen.len(), 40);
    // Each patient's 3 slices share the label.
    assert!(data.val.len().is_multiple_of(3) && data.test.len().is_multiple_of(3));
}

#[test]
fn the_series_order_comes_from_positions_not_file_names() {
    let tmp = tempfile::tempdir().unwrap();
    export(tmp.path());
    let case = tmp.path().join("dicom/case-00000");
    let headers: Vec<_> = (0..3)
        .map(|k| read_dicom_header(&case.join(format!("slice-{k}.dcm"))).unwrap())
        .collect();
    let refs: Vec<_> = headers.iter().collect();
    let order = order_series(&refs);
    assert!(order.by_position);
    // File k holds position (2k) % 3: files 0, 2, 1 from bottom to top.
    assert_eq!(order.order, [0, 2, 1]);
    assert_eq!(order.spacing, Some(2.5));
    assert!(order.spacing_deviation < 1e-9);
    let instances: Vec<_> = order
        .order
        .iter()
        .map(|&i| headers[i].instance_number)
        .collect();
    assert_eq!(instances, [Some(1), Some(2), Some(3)]);
}

#[test]
fn a_bad_file_is_named_or_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    export(tmp.path());
    let bad = tmp.path().join("dicom/case-00003/slice-1.dcm");
    let mut bytes = std::fs::read(&bad).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&bad, bytes).unwrap();
    // Not DICOM at all: ignored.
    std::fs::write(tmp.path().join("dicom/README.txt"), "exported by medfusion").unwrap();
    let err = load_dicom(&config(tmp.path())).unwrap_err();
    assert!(
        matches!(&err, DataError::Dicom { path, .. } if path == &bad),
        "{err}"
    );
    assert!(err.to_string().contains("case-00003/slice-1.dcm"), "{err}");
    let skipping = DicomConfig {
        on_error: BadImagePolicy::Skip,
        ..config(tmp.path())
    };
    let data = load_dicom(&skipping).unwrap();
    let sizes = data.info().split_sizes;
    assert_eq!(sizes.train + sizes.val + sizes.test, 40 * 3 - 1);
}

#[test]
fn unlabelled_files_and_unknown_columns_are_errors_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    export(tmp.path());
    let labels = tmp.path().join("dicom.csv");
    let text = std::fs::read_to_string(&labels).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("case-00007,"))
        .flat_map(|l| [l, "\n"])
        .collect();
    std::fs::write(&labels, without).unwrap();
    let err = load_dicom(&config(tmp.path())).unwrap_err().to_string();
    assert!(err.contains("case-00007"), "{err}");
    let dropping = DicomConfig {
        on_unmatched: medfusion_data::UnmatchedPolicy::Drop,
        ..config(tmp.path())
    };
    let data = load_dicom(&dropping).unwrap();
    let ids: BTreeSet<_> = SplitName::ALL
        .iter()
        .flat_map(|&s| data.split(s).ids().to_vec())
        .collect();
    assert_eq!(ids.len(), 39 * 3);
    let wrong = DicomConfig {
        label_column: "diagnosis".into(),
        ..config(tmp.path())
    };
    let err = load_dicom(&wrong).unwrap_err().to_string();
    assert!(
        err.contains("diagnosis") && err.contains("dicom.csv"),
        "{err}"
    );
}

#[test]
fn pydicom_reads_the_files_written() {
    let has_pydicom = std::process::Command::new("python3")
        .args(["-c", "import pydicom, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_pydicom {
        assert!(
            std::env::var("MEDFUSION_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "MEDFUSION_REQUIRE_PYTHON=1 but pydicom is missing"
        );
        eprintln!("skipping: no pydicom");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    export(tmp.path());
    let file = tmp.path().join("dicom/case-00001/slice-2.dcm");
    let script = "import sys, pydicom\n\
                  from pydicom.pixels import apply_modality_lut\n\
                  ds = pydicom.dcmread(sys.argv[1])\n\
                  hu = apply_modality_lut(ds.pixel_array, ds)\n\
                  print(ds.PatientID, ds.Rows, ds.Columns, int(hu.min()), int(hu.max()), \
                  ds.ImagePositionPatient[2])";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields[..3], ["case-00001", "24", "24"]);
    let (lo, hi): (i32, i32) = (fields[3].parse().unwrap(), fields[4].parse().unwrap());
    assert!((-1000..=400).contains(&lo) && (-1000..=400).contains(&hi) && lo < hi);
    assert!((fields[5].parse::<f64>().unwrap() - 2.5).abs() < 1e-9);

    // The slice order pydicom-based pipelines use (position along the normal of the
    // orientation) is the order `order_series` gives.
    let case = tmp.path().join("dicom/case-00001");
    let script = "import sys, glob, os, numpy as np, pydicom\n\
                  files = sorted(glob.glob(os.path.join(sys.argv[1], '*.dcm')))\n\
                  ds = [pydicom.dcmread(f) for f in files]\n\
                  o = np.array(ds[0].ImageOrientationPatient, dtype=float)\n\
                  n = np.cross(o[:3], o[3:])\n\
                  key = lambda i: float(np.dot(np.array(ds[i].ImagePositionPatient, dtype=float), n))\n\
                  print(' '.join(os.path.basename(files[i]) for i in sorted(range(len(ds)), key=key)))";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&case)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = String::from_utf8(out.stdout).unwrap();
    let files: Vec<_> = (0..3)
        .map(|k| case.join(format!("slice-{k}.dcm")))
        .collect();
    let headers: Vec<_> = files
        .iter()
        .map(|f| read_dicom_header(f).unwrap())
        .collect();
    let ours: Vec<String> = order_series(&headers.iter().collect::<Vec<_>>())
        .order
        .iter()
        .map(|&i| format!("slice-{i}.dcm"))
        .collect();
    assert_eq!(theirs.split_whitespace().collect::<Vec<_>>(), ours);
}

#[test]
fn nifti_volumes_load_as_volumes_or_slices() {
    use medfusion_data::{NiftiConfig, load_nifti, nifti::SliceAxis};
    let tmp = tempfile::tempdir().unwrap();
    export(tmp.path());
    let config = NiftiConfig {
        root: tmp.path().join("nifti"),
        labels: tmp.path().join("nifti.csv"),
        volume_size: [8, 16, 16],
        val_fraction: 0.2,
        test_fraction: 0.2,
        ..NiftiConfig::default()
    };
    let volumes = load_nifti(&config).unwrap();
    let shape = volumes.info().image.unwrap();
    assert_eq!((shape.depth, shape.height, shape.width), (8, 16, 16));
    let sizes = volumes.info().split_sizes;
    assert_eq!(sizes.train + sizes.val + sizes.test, 40);
    let slices = load_nifti(&NiftiConfig {
        slice_axis: SliceAxis::Z,
        ..config.clone()
    })
    .unwrap();
    let shape = slices.info().image.unwrap();
    assert_eq!((shape.depth, shape.height, shape.width), (1, 16, 16));
    let sizes = slices.info().split_sizes;
    assert_eq!(sizes.train + sizes.val + sizes.test, 40 * 8);
    // A volume's slices stay together, in the split its volume has.
    let volume_split = |id: &str| {
        SplitName::ALL
            .into_iter()
            .find(|&s| volumes.split(s).ids().iter().any(|v| v == id))
            .unwrap()
    };
    for name in SplitName::ALL {
        for id in slices.split(name).ids() {
            let volume = id.split('#').next().unwrap();
            assert_eq!(volume_split(volume), name, "{id}");
        }
    }
    // A corrupt file is named, or skipped.
    std::fs::write(tmp.path().join("nifti/case-00005.nii.gz"), b"not gzip").unwrap();
    let err = load_nifti(&config).unwrap_err().to_string();
    assert!(err.contains("case-00005.nii.gz"), "{err}");
    let skipped = load_nifti(&NiftiConfig {
        on_error: BadImagePolicy::Skip,
        ..config
    })
    .unwrap();
    let sizes = skipped.info().split_sizes;
    assert_eq!(sizes.train + sizes.val + sizes.test, 39);
}

#[test]
fn volume_mode_stacks_each_series_in_position_order() {
    use medfusion_data::dicom::{
        DEFAULT_MAX_DICOM_SAMPLES, DicomMode, WindowPreset, WindowSetting, apply_voi, read_dicom,
    };
    let tmp = tempfile::tempdir().unwrap();
    export(tmp.path());
    let volumes = load_dicom(&DicomConfig {
        mode: DicomMode::Volume,
        depth: 3,
        window: WindowSetting::Preset(WindowPreset::Lung),
        ..config(tmp.path())
    })
    .unwrap();
    let shape = volumes.info().image.unwrap();
    assert_eq!((shape.depth, shape.height, shape.width), (3, 24, 24));
    let sizes = volumes.info().split_sizes;
    assert_eq!(sizes.train + sizes.val + sizes.test, 40);
    // Case 2's volume, by hand: its files in order of position (file k is at (2k) % 3, so
    // files 0, 2, 1), each through the lung window.
    let series = "1.2.826.0.1.3680043.10.1389.2.2";
    let split = SplitName::ALL
        .into_iter()
        .find(|&s| volumes.split(s).ids().iter().any(|id| id == series))
        .unwrap();
    let reader = medfusion_data::SampleReader::new(
        volumes.split(split).clone(),
        &medfusion_data::Normalization {
            mean: vec![0.0],
            std: vec![1.0 / 255.0],
        },
    )
    .unwrap();
    let index = volumes
        .split(split)
        .ids()
        .iter()
        .position(|id| id == series)
        .unwrap();
    let ours: Vec<u8> = reader
        .get(index)
        .unwrap()
        .image
        .unwrap()
        .iter()
        .map(|&v| v.round() as u8)
        .collect();
    let mut expected = Vec::new();
    for file in [0, 2, 1] {
        let image = read_dicom(
            &tmp.path()
                .join(format!("dicom/case-00002/slice-{file}.dcm")),
            DEFAULT_MAX_DICOM_SAMPLES,
        )
        .unwrap();
        let mut v = image.values.clone();
        let voi = WindowSetting::Preset(WindowPreset::Lung).voi_for(&image.header, None);
        apply_voi(&mut v, &voi, false);
        expected.extend(v.iter().map(|&x| (x.clamp(0.0, 1.0) * 255.0).round() as u8));
    }
    assert_eq!(ours, expected);
}
