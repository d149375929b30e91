//! medfusion-data's DICOM reader against pydicom on pydicom's own test files: the same
//! modality values (rescale applied), the same values after the file's window or VOI LUT and
//! after a lung window, MONOCHROME1 inverted. Skipped without python3 + pydicom, unless
//! `MEDFUSION_REQUIRE_PYTHON=1` (as in CI, which installs pydicom and pydicom-data).

#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;

use medfusion_data::DataError;
use medfusion_data::dicom::{
    DEFAULT_MAX_DICOM_SAMPLES, WindowPreset, WindowSetting, apply_voi, read_dicom,
};

/// Files compared (pydicom's test files and pydicom-data's), each a different way of being
/// stored: encodings, compression, no meta group, multi-frame, MONOCHROME1, VOI LUT.
const COMPARED: [&str; 14] = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "MR_small_expb.dcm",
    "MR_small_RLE.dcm",
    "MR_small_padded.dcm",
    "image_dfl.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "emri_small.dcm",
    "emri_small_RLE.dcm",
    "emri_small_big_endian.dcm",
    "RG1_UNCI.dcm",
    "vlut_04.dcm",
];

/// Files pydicom must decode in CI (numpy and pillow alone).
const MUST_COMPARE: [&str; 9] = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "MR_small_RLE.dcm",
    "image_dfl.dcm",
    "emri_small.dcm",
    "RG1_UNCI.dcm",
    "vlut_04.dcm",
];

fn pydicom_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import pydicom, numpy, data_store"])
        .output()
        .is_ok_and(|o| o.status.success());
    let required = std::env::var("MEDFUSION_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    assert!(
        ok || !required,
        "MEDFUSION_REQUIRE_PYTHON=1 but `python3 -c 'import pydicom, numpy, data_store'` failed: \
         pip install pydicom pydicom-data numpy pillow"
    );
    if !ok {
        eprintln!("skipping: python3 with pydicom and pydicom-data not found");
    }
    ok
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn assert_close(what: &str, ours: &[f32], theirs: &[f32], tolerance: f32) {
    assert_eq!(ours.len(), theirs.len(), "{what}: value count");
    let (i, worst) = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .enumerate()
        .fold(
            (0, 0f32),
            |best, (i, d)| if d > best.1 { (i, d) } else { best },
        );
    assert!(
        worst <= tolerance,
        "{what}: value {i} is {} here and {} in pydicom",
        ours[i],
        theirs[i]
    );
}

fn reference(names: &[&str]) -> (tempfile::TempDir, Vec<(String, serde_json::Value)>) {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pydicom_reference.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .args(names)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pydicom_reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let infos = names
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.path().join(format!("{n}.json"))).unwrap();
            ((*n).to_owned(), serde_json::from_str(&text).unwrap())
        })
        .collect();
    (dir, infos)
}

#[test]
fn pixels_and_windows_match_pydicom() {
    if !pydicom_available() {
        return;
    }
    let (dir, infos) = reference(&COMPARED);
    let mut compared = Vec::new();
    for (name, info) in &infos {
        if let Some(reason) = info.get("skipped") {
            assert!(
                !MUST_COMPARE.contains(&name.as_str()),
                "pydicom could not read {name}: {reason}"
            );
            eprintln!("{name}: pydicom cannot decode it here ({reason})");
            continue;
        }
        let path = PathBuf::from(info["path"].as_str().unwrap());
        let image =
            read_dicom(&path, DEFAULT_MAX_DICOM_SAMPLES).unwrap_or_else(|e| panic!("{name}: {e}"));
        let h = &image.header;
        assert_eq!(
            u64::from(h.rows),
            info["rows"].as_u64().unwrap(),
            "{name}: rows"
        );
        assert_eq!(
            u64::from(h.columns),
            info["columns"].as_u64().unwrap(),
            "{name}: columns"
        );
        assert_eq!(
            u64::from(h.frames),
            info["frames"].as_u64().unwrap(),
            "{name}: frames"
        );
        assert_eq!(h.photometric, info["photometric"].as_str().unwrap());
        assert_eq!(h.patient_id.as_deref(), info["patient_id"].as_str());
        let modality = read_f32(&dir.path().join(format!("{name}.modality.f32")));
        // Lossy JPEG decoders may differ by a grey level.
        let tolerance = if h.transfer_syntax.starts_with("1.2.840.10008.1.2.4.5") {
            2.0 / 255.0 * 255.0
        } else {
            1e-5
        };
        assert_close(
            &format!("{name} modality values"),
            &image.values,
            &modality,
            tolerance,
        );
        if h.samples_per_pixel == 1 {
            let frame_len = image.frame_len();
            let windows = [
                ("file", WindowSetting::Preset(WindowPreset::File)),
                ("lung", WindowSetting::Preset(WindowPreset::Lung)),
            ];
            for (window, setting) in windows {
                let file = dir.path().join(format!("{name}.{window}.f32"));
                if !file.exists() {
                    continue;
                }
                let theirs = read_f32(&file);
                let mut ours = Vec::with_capacity(image.values.len());
                for f in 0..h.frames as usize {
                    let mut v = image.frame(f).to_vec();
                    apply_voi(
                        &mut v,
                        &setting.voi_for(h, image.voi_table.as_ref()),
                        h.is_monochrome1(),
                    );
                    ours.extend(v);
                }
                assert_eq!(ours.len(), frame_len * h.frames as usize);
                assert_close(
                    &format!("{name} with the {window} window"),
                    &ours,
                    &theirs,
                    1e-4,
                );
            }
        }
        compared.push(name.clone());
    }
    eprintln!("compared with pydicom: {}", compared.join(", "));
    for name in MUST_COMPARE {
        assert!(
            compared.iter().any(|c| c == name),
            "{name} was not compared"
        );
    }
}

fn pydicom_file(name: &str) -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            &format!(
                "from pydicom.data import get_testdata_file; print(get_testdata_file('{name}'))"
            ),
        ])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn files_without_preamble_or_meta_group_read_the_same() {
    if !pydicom_available() {
        return;
    }
    let path = pydicom_file("MR_small_implicit.dcm");
    let whole = read_dicom(&path, DEFAULT_MAX_DICOM_SAMPLES).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[128..132], b"DICM");
    // The meta group's length is the value of (0002,0000), its first element.
    assert_eq!(&bytes[132..136], [2, 0, 0, 0]);
    let meta_len = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("no-preamble", bytes[128..].to_vec()),
        ("no-meta", bytes[144 + meta_len..].to_vec()),
    ];
    for (name, data) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, data).unwrap();
        assert!(medfusion_data::dicom::looks_like_dicom(&file), "{name}");
        let image =
            read_dicom(&file, DEFAULT_MAX_DICOM_SAMPLES).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(image.values, whole.values, "{name}");
        assert_eq!(image.header.patient_id, whole.header.patient_id, "{name}");
    }
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not DICOM at all, just some notes").unwrap();
    assert!(!medfusion_data::dicom::looks_like_dicom(&text));
}

#[test]
fn undecodable_transfer_syntaxes_name_the_file_and_uid() {
    if !pydicom_available() {
        return;
    }
    for (name, uid) in [
        ("MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80"),
        ("JPEG2000.dcm", "1.2.840.10008.1.2.4.91"),
    ] {
        let path = pydicom_file(name);
        let err = read_dicom(&path, DEFAULT_MAX_DICOM_SAMPLES).unwrap_err();
        assert!(
            matches!(&err, DataError::UnsupportedTransferSyntax { uid: u, path: p, .. } if u == uid && p == &path),
            "{name}: {err}"
        );
        let message = err.to_string();
        assert!(message.contains(name) && message.contains(uid), "{message}");
    }
}
