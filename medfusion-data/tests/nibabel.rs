//! medfusion-data's NIfTI reader and writer against nibabel: the same voxel values (scaling
//! applied) in the same order on nibabel's own test files, nibabel reading what we write, and
//! NIfTI-2 and 4D files refused by name. Skipped without python3 + nibabel, unless
//! `MEDFUSION_REQUIRE_PYTHON=1` (as in CI, which installs nibabel).
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;

use medfusion_data::nifti::{DEFAULT_MAX_NIFTI_VALUES, read_nifti, write_nifti};

fn nibabel_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import nibabel, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var("MEDFUSION_REQUIRE_PYTHON").as_deref() != Ok("1"),
        "MEDFUSION_REQUIRE_PYTHON=1 but `python3 -c 'import nibabel, numpy'` failed: pip install nibabel"
    );
    if !ok {
        eprintln!("skipping: python3 with nibabel not found");
    }
    ok
}

fn reference(dir: &Path, files: &[&str]) -> Vec<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nibabel_reference.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nibabel_reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    files
        .iter()
        .map(|f| {
            let name = Path::new(f)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
            serde_json::from_str(&text).unwrap()
        })
        .collect()
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn voxels_match_nibabel_on_its_test_files() {
    if !nibabel_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // uint8 gzipped, big-endian int16, big-endian float32.
    let files = [
        "standard.nii.gz",
        "anatomical.nii",
        "reoriented_anat_moved.nii",
    ];
    for info in reference(dir.path(), &files) {
        let path = PathBuf::from(info["path"].as_str().unwrap());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let volume = read_nifti(&path, DEFAULT_MAX_NIFTI_VALUES).unwrap();
        let shape: Vec<usize> = info["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(volume.dims.to_vec(), shape, "{name}");
        let zooms: Vec<f32> = info["zooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(volume.spacing.to_vec(), zooms, "{name}");
        let theirs = read_f32(&dir.path().join(format!("{name}.f32")));
        assert_eq!(volume.values.len(), theirs.len(), "{name}");
        for (i, (a, b)) in volume.values.iter().zip(&theirs).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{name}: voxel {i} is {a} here and {b} in nibabel"
            );
        }
    }
}

#[test]
fn nifti2_and_4d_files_are_refused_by_name() {
    if !nibabel_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let infos = reference(dir.path(), &["example_nifti2.nii.gz", "example4d.nii.gz"]);
    for (info, expected) in infos.iter().zip(["NIfTI-2", "one 3D volume"]) {
        let path = PathBuf::from(info["path"].as_str().unwrap());
        let err = read_nifti(&path, DEFAULT_MAX_NIFTI_VALUES)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(expected) && err.contains(&*path.to_string_lossy()),
            "{err}"
        );
    }
}

#[test]
fn nibabel_reads_what_we_write() {
    if !nibabel_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let [d, h, w] = [3usize, 4, 5];
    let values: Vec<u8> = (0..d * h * w).map(|i| (i * 4) as u8).collect();
    for name in ["ours.nii", "ours.nii.gz"] {
        let path = dir.path().join(name);
        write_nifti(&path, &values, [d, h, w], [0.5, 0.75, 2.0]).unwrap();
        let ours = read_nifti(&path, DEFAULT_MAX_NIFTI_VALUES).unwrap();
        assert_eq!(ours.dims, [w, h, d], "{name}");
        let info = &reference(dir.path(), &[path.to_str().unwrap()])[0];
        assert_eq!(info["shape"], serde_json::json!([w, h, d]), "{name}");
        assert_eq!(info["zooms"], serde_json::json!([0.5, 0.75, 2.0]), "{name}");
        let theirs = read_f32(&dir.path().join(format!("{name}.f32")));
        let expected: Vec<f32> = values.iter().map(|&v| f32::from(v)).collect();
        assert_eq!(theirs, expected, "{name}: nibabel's [z][y][x] voxels");
        assert_eq!(ours.values, expected, "{name}: ours");
    }
}
