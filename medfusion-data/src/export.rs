//! Writing the synthetic dataset in the real file formats, so the workflows built on
//! `dataset.image_folder`, `dataset.csv`, `dataset.npz` and `dataset.multimodal` run on
//! data made with one command (`medfusion example-data`).
//!
//! Under the output folder:
//!
//! ```text
//! images/{train,val,test}/<class>/<id>.png   dataset.image_folder (8-bit grey PNGs)
//! table.csv                                  dataset.csv: id,label,split,<features>
//! medmnist.npz                               dataset.npz: MedMNIST arrays
//! multimodal/images/<id>.png                 dataset.multimodal: flat image folder
//! multimodal/table.csv                       ... joined to it by the `id` column
//! ```
//!
//! An export never replaces a file it did not write: it records what it wrote (sizes and
//! content fingerprints) in `.medfusion-export.json`, and a later export replaces only files
//! that still match that record, unless asked to replace any file (`force`). Image folders
//! are emptied only when they hold nothing but an earlier export's images.
//!
//! Every file holds the same samples as [`generate_synthetic`](crate::generate_synthetic)
//! with the same config, in the splits it assigned; the table holds the raw (unstandardised)
//! feature values, rounded to 4 decimals.

use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use crate::dataset::SplitSizes;
use crate::error::DataError;
use crate::synthetic::{Drawn, SyntheticConfig, case_id, class_names, draw_samples};
use crate::synthetic_render::column_names;

/// What [`export_example_data`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportReport {
    /// The output folder.
    pub dir: PathBuf,
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// The feature columns of the tables, in order.
    pub features: Vec<String>,
    /// Samples per split (the same in every output).
    pub split_sizes: SplitSizes,
    /// One entry per dataset written.
    pub outputs: Vec<ExportedOutput>,
}

impl ExportReport {
    /// Files written over all outputs.
    pub fn files(&self) -> usize {
        self.outputs.iter().map(|o| o.files).sum()
    }
}

/// One dataset written by [`export_example_data`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportedOutput {
    /// The node type that reads it (`dataset.image_folder`, ...).
    pub node_type: &'static str,
    /// Its file or folder, inside the output folder.
    pub path: PathBuf,
    /// Files written for it.
    pub files: usize,
    /// Samples in it.
    pub samples: usize,
}

const SPLITS: [&str; 3] = ["train", "val", "test"];

/// Generates the synthetic dataset of `config` (deterministic by its seed) and writes it
/// under `dir` as an image folder, a CSV table, a MedMNIST-style `.npz` and an image folder
/// plus table for `dataset.multimodal`, replacing an earlier export.
///
/// `config.modality` is ignored: every output is written. Each file is written under a
/// temporary name and renamed into place. Before anything is written, every output is
/// checked: the image folders must hold nothing but files of an earlier export, and
/// `table.csv`, `medmnist.npz` and `multimodal/table.csv` must be absent or unchanged since
/// an earlier export wrote them (or `force` set); anything else is an error naming the file,
/// and nothing is written.
pub fn export_example_data(
    dir: &Path,
    config: &SyntheticConfig,
    force: bool,
) -> Result<ExportReport, DataError> {
    if config.depth != 1 {
        return Err(DataError::config(
            "depth",
            format!(
                "must be 1 for example-data (2D images), got {}",
                config.depth
            ),
        ));
    }
    let drawn = draw_samples(config)?;
    let record = ExportRecord::read(dir);
    for file in EXPORT_FILES {
        record.check_replaceable(dir, file, force)?;
    }
    for folder in ["images", "multimodal/images", "dicom", "nifti"] {
        check_previous(&dir.join(folder))?;
    }
    let classes = class_names(config);
    let features = column_names(config);
    let count = |s| drawn.split_of.iter().filter(|&&x| x == s).count();
    let split_sizes = SplitSizes {
        train: count(0),
        val: count(1),
        test: count(2),
    };
    create_dir(dir)?;
    let n = drawn.cases.len();
    let folder_output = |node_type, path: PathBuf, files| ExportedOutput {
        node_type,
        path,
        files,
        samples: n,
    };
    let mut outputs = Vec::with_capacity(4);

    let images = dir.join("images");
    let paths: Vec<PathBuf> = (0..n)
        .map(|i| {
            let class = &classes[drawn.cases[i].label as usize];
            images
                .join(SPLITS[drawn.split_of[i]])
                .join(class)
                .join(format!("{}.png", case_id(i)))
        })
        .collect();
    write_images(&images, &paths, &drawn, config.image_size)?;
    outputs.push(folder_output("dataset.image_folder", images, n));

    let table = dir.join("table.csv");
    write_atomic(&table, |w| write_table(w, &drawn, &classes, &features))?;
    outputs.push(folder_output("dataset.csv", table, 1));

    let npz = dir.join("medmnist.npz");
    write_atomic(&npz, |w| write_medmnist(w, &drawn, config))?;
    outputs.push(folder_output("dataset.npz", npz, 1));

    let multimodal = dir.join("multimodal");
    let mm_images = multimodal.join("images");
    create_dir(&multimodal)?;
    let paths: Vec<PathBuf> = (0..n)
        .map(|i| mm_images.join(format!("{}.png", case_id(i))))
        .collect();
    write_images(&mm_images, &paths, &drawn, config.image_size)?;
    write_atomic(&multimodal.join("table.csv"), |w| {
        write_table(w, &drawn, &classes, &features)
    })?;
    outputs.push(folder_output("dataset.multimodal", multimodal, n + 1));

    let dicom = dir.join("dicom");
    clear_previous(&dicom)?;
    write_dicom_series(&dicom, &drawn, config.image_size)?;
    write_atomic(&dir.join("dicom.csv"), |w| {
        write_dicom_labels(w, &drawn, &classes)
    })?;
    outputs.push(ExportedOutput {
        node_type: "dataset.dicom",
        path: dicom,
        files: n * DICOM_SLICES + 1,
        samples: n * DICOM_SLICES,
    });

    let nifti = dir.join("nifti");
    clear_previous(&nifti)?;
    let volumes = draw_samples(&SyntheticConfig {
        depth: NIFTI_DEPTH,
        image_size: config.image_size.min(NIFTI_SIDE),
        ..config.clone()
    })?;
    write_nifti_volumes(&nifti, &volumes, config.image_size.min(NIFTI_SIDE))?;
    write_atomic(&dir.join("nifti.csv"), |w| {
        write_volume_labels(w, &volumes, &classes)
    })?;
    outputs.push(ExportedOutput {
        node_type: "dataset.nifti",
        path: nifti,
        files: n + 1,
        samples: n,
    });
    ExportRecord::write(dir)?;

    Ok(ExportReport {
        dir: dir.to_path_buf(),
        classes,
        features,
        split_sizes,
        outputs,
    })
}

fn create_dir(dir: &Path) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|source| DataError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `write`'s output to a hidden temporary file next to `path`, then renames it
/// into place (removing the temporary file on failure).
fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<(), DataError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let result = File::create(&tmp).and_then(|file| {
        let mut out = BufWriter::new(file);
        write(&mut out)?;
        out.into_inner().map_err(io::IntoInnerError::into_error)?;
        std::fs::rename(&tmp, path)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|source| DataError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The single files an export writes, relative to its folder.
const EXPORT_FILES: [&str; 5] = [
    "table.csv",
    "medmnist.npz",
    "multimodal/table.csv",
    "dicom.csv",
    "nifti.csv",
];
/// Where an export records what it wrote.
const RECORD: &str = ".medfusion-export.json";

/// What an earlier export wrote: per file, its size and content fingerprint.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct ExportRecord {
    files: std::collections::BTreeMap<String, (u64, u64)>,
}

/// A fingerprint of a file's content (FNV-1a, 64 bits): stable across versions.
fn fingerprint(path: &Path) -> io::Result<(u64, u64)> {
    let mut reader = io::BufReader::new(File::open(path)?);
    let (mut hash, mut size) = (0xcbf2_9ce4_8422_2325_u64, 0_u64);
    loop {
        let buf = io::BufRead::fill_buf(&mut reader)?;
        if buf.is_empty() {
            return Ok((size, hash));
        }
        for &b in buf {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let n = buf.len();
        size += n as u64;
        io::BufRead::consume(&mut reader, n);
    }
}

impl ExportRecord {
    fn read(dir: &Path) -> ExportRecord {
        std::fs::read(dir.join(RECORD))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Records the files just written.
    fn write(dir: &Path) -> Result<(), DataError> {
        let mut record = ExportRecord::default();
        for file in EXPORT_FILES {
            let path = dir.join(file);
            let print = fingerprint(&path).map_err(|e| DataError::io(&path, e))?;
            record.files.insert(file.to_string(), print);
        }
        let bytes = serde_json::to_vec_pretty(&record).map_err(|e| DataError::Write {
            path: dir.join(RECORD),
            source: io::Error::other(e),
        })?;
        write_atomic(&dir.join(RECORD), |w| w.write_all(&bytes))
    }

    /// An error unless `file` may be written: absent, unchanged since an export wrote it,
    /// or `force`.
    fn check_replaceable(&self, dir: &Path, file: &str, force: bool) -> Result<(), DataError> {
        let path = dir.join(file);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            return Ok(());
        };
        let ours = meta.is_file()
            && self
                .files
                .get(file)
                .is_some_and(|&print| fingerprint(&path).is_ok_and(|p| p == print));
        if ours || (force && meta.is_file()) {
            return Ok(());
        }
        Err(DataError::Write {
            path: path.clone(),
            source: io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "`{}` exists and was not written by an example-data export (or was \
                     changed since); move it away, export to another folder, or replace it \
                     with `--force`",
                    path.display()
                ),
            ),
        })
    }
}

/// Whether `name` is a file an export writes into an image folder (or its temporary).
fn is_export_file(name: &str) -> bool {
    let name = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".tmp").or_else(|| n.strip_prefix("tmp-")))
        .unwrap_or(name);
    let digits = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    name.strip_prefix("case-")
        .and_then(|n| n.strip_suffix(".png").or_else(|| n.strip_suffix(".nii.gz")))
        .is_some_and(digits)
        || name
            .strip_prefix("slice-")
            .and_then(|n| n.strip_suffix(".dcm"))
            .is_some_and(digits)
}

/// Slices of the NIfTI export's volumes, and their largest side.
const NIFTI_DEPTH: usize = 16;
const NIFTI_SIDE: usize = 32;

/// Writes each case's volume as `folder/case-NNNNN.nii.gz` (1 mm voxels, 2.5 mm slices).
fn write_nifti_volumes(folder: &Path, drawn: &Drawn, side: usize) -> Result<(), DataError> {
    std::fs::create_dir_all(folder).map_err(|source| DataError::Write {
        path: folder.to_path_buf(),
        source,
    })?;
    let len = NIFTI_DEPTH * side * side;
    let jobs: Vec<usize> = (0..drawn.cases.len()).collect();
    crate::dicom::parallel_map(&jobs, |&i| {
        crate::nifti::write_nifti(
            &folder.join(format!("{}.nii.gz", case_id(i))),
            &drawn.pixels[i * len..(i + 1) * len],
            [NIFTI_DEPTH, side, side],
            [1.0, 1.0, 2.5],
        )
    })
    .into_iter()
    .collect()
}

/// The labels of a volume export: `id,label`.
fn write_volume_labels(out: impl Write, drawn: &Drawn, classes: &[String]) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(["id", "label"])?;
    for (i, case) in drawn.cases.iter().enumerate() {
        csv.write_record([case_id(i), classes[case.label as usize].clone()])?;
    }
    csv.flush()
}

/// Slices per case in the DICOM export.
const DICOM_SLICES: usize = 3;

/// Writes each case as a CT series of [`DICOM_SLICES`] axial slices under
/// `folder/case-NNNNN/`: the grey image mapped to -1000..400 HU, fainter away from the
/// middle slice, 2.5 mm apart; file names do not follow the slices' order (their positions
/// and instance numbers do), as often in real exports.
fn write_dicom_series(folder: &Path, drawn: &Drawn, side: usize) -> Result<(), DataError> {
    use crate::dicom::{CtSlice, write_ct_slice};
    let n = drawn.cases.len();
    let root = "1.2.826.0.1.3680043.10.1389";
    for i in 0..n {
        let case = folder.join(case_id(i));
        std::fs::create_dir_all(&case).map_err(|source| DataError::Write {
            path: case.clone(),
            source,
        })?;
        let grey = &drawn.pixels[i * side * side..(i + 1) * side * side];
        for k in 0..DICOM_SLICES {
            // File k holds the slice at position (k * 2) % DICOM_SLICES.
            let z = (k * 2) % DICOM_SLICES;
            let fade = 1.0 - 0.2 * (z as f64 - (DICOM_SLICES as f64 - 1.0) / 2.0).abs();
            let hu: Vec<i16> = grey
                .iter()
                .map(|&g| (-1000.0 + f64::from(g) / 255.0 * 1400.0 * fade).round() as i16)
                .collect();
            write_ct_slice(
                &case.join(format!("slice-{k}.dcm")),
                &CtSlice {
                    patient_id: &case_id(i),
                    study_uid: &format!("{root}.1.{i}"),
                    series_uid: &format!("{root}.2.{i}"),
                    sop_uid: &format!("{root}.3.{i}.{z}"),
                    instance_number: z as i32 + 1,
                    position: [0.0, 0.0, z as f64 * 2.5],
                    spacing: [0.7, 0.7, 2.5],
                    size: [side as u16, side as u16],
                    hu: &hu,
                    window: (-300.0, 1400.0),
                },
            )?;
        }
    }
    Ok(())
}

/// The labels of the DICOM export: `PatientID,label` (`dataset.dicom` splits by patient).
fn write_dicom_labels(out: impl Write, drawn: &Drawn, classes: &[String]) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(["PatientID", "label"])?;
    for (i, case) in drawn.cases.iter().enumerate() {
        csv.write_record([case_id(i), classes[case.label as usize].clone()])?;
    }
    csv.flush()
}

/// Removes `folder` when it holds only files of an earlier export (a stale image would
/// otherwise join the dataset); errors naming the first other file.
fn clear_previous(folder: &Path) -> Result<(), DataError> {
    if check_previous(folder)? {
        std::fs::remove_dir_all(folder).map_err(|source| DataError::Write {
            path: folder.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// Whether `folder` exists; an error naming the first file in it that an export did not
/// write.
fn check_previous(folder: &Path) -> Result<bool, DataError> {
    let write_err = |source| DataError::Write {
        path: folder.to_path_buf(),
        source,
    };
    if std::fs::symlink_metadata(folder).is_err() {
        return Ok(false);
    }
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DataError::io(&dir, e))?;
            let kind = entry
                .file_type()
                .map_err(|e| DataError::io(entry.path(), e))?;
            let name = entry.file_name();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if !(kind.is_file() && is_export_file(&name.to_string_lossy())) {
                return Err(write_err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "`{}` was not written by an example-data export; move it away or \
                         export to another folder",
                        entry.path().display()
                    ),
                )));
            }
        }
    }
    Ok(true)
}

/// Writes image `i` of `drawn` to `paths[i]` as a grey PNG, on a few threads, after
/// clearing `folder` of an earlier export.
fn write_images(
    folder: &Path,
    paths: &[PathBuf],
    drawn: &Drawn,
    size: usize,
) -> Result<(), DataError> {
    clear_previous(folder)?;
    let mut parents: Vec<&Path> = paths.iter().filter_map(|p| p.parent()).collect();
    parents.sort_unstable();
    parents.dedup();
    for dir in parents {
        create_dir(dir)?;
    }
    let len = size * size;
    let side = u32::try_from(size).map_err(|_| DataError::config("image_size", "is too large"))?;
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(8);
    let per = paths.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(per)
            .zip(drawn.pixels.chunks(per * len))
            .map(|(paths, pixels)| {
                scope.spawn(move || {
                    for (path, image) in paths.iter().zip(pixels.chunks_exact(len)) {
                        write_atomic(path, |w| write_png(w, side, image))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(DataError::input("image export", "a thread panicked")))
        })
    })
}

/// Encodes a `side`x`side` 8-bit grey image as PNG.
fn write_png(out: impl Write, side: u32, pixels: &[u8]) -> io::Result<()> {
    let mut encoder = png::Encoder::new(out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels)?;
    Ok(writer.finish()?)
}

/// A table value with at most 4 decimals and no trailing zeros (`63`, `7.3891`).
fn format_value(v: f64) -> String {
    let text = format!("{v:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// Writes `id,label,split,<features>`, one row per case in generation order.
fn write_table(
    out: impl Write,
    drawn: &Drawn,
    classes: &[String],
    features: &[String],
) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    let header = ["id", "label", "split"]
        .into_iter()
        .chain(features.iter().map(String::as_str));
    csv.write_record(header)?;
    for (i, (case, row)) in drawn.cases.iter().zip(&drawn.rows).enumerate() {
        let mut record = vec![
            case_id(i),
            classes[case.label as usize].clone(),
            SPLITS[drawn.split_of[i]].to_string(),
        ];
        record.extend(row.iter().map(|&v| format_value(v)));
        csv.write_record(&record)?;
    }
    csv.flush()
}

/// Writes the MedMNIST arrays: `<split>_images` uint8 N×H×W and `<split>_labels` uint8
/// N×1 (int64 beyond 256 classes).
fn write_medmnist<W: Write + Seek>(
    out: W,
    drawn: &Drawn,
    config: &SyntheticConfig,
) -> io::Result<()> {
    let mut npz = NpzWriter::new(out);
    let size = config.image_size;
    let len = size * size;
    for (s, split) in SPLITS.iter().enumerate() {
        let rows: Vec<usize> = (0..drawn.cases.len())
            .filter(|&i| drawn.split_of[i] == s)
            .collect();
        let mut pixels = Vec::with_capacity(rows.len() * len);
        for &i in &rows {
            pixels.extend_from_slice(&drawn.pixels[i * len..(i + 1) * len]);
        }
        let n = rows.len() as u64;
        npz.array(
            &format!("{split}_images"),
            &[n, size as u64, size as u64],
            &pixels,
        )?;
        let labels = rows.iter().map(|&i| drawn.cases[i].label);
        let name = format!("{split}_labels");
        if config.classes <= 256 {
            let labels: Vec<u8> = labels.map(|l| l as u8).collect();
            npz.array(&name, &[n, 1], &labels)?;
        } else {
            let labels: Vec<i64> = labels.map(i64::from).collect();
            npz.array(&name, &[n, 1], &labels)?;
        }
    }
    npz.finish().map(drop)
}

/// Writes a NumPy `.npz` archive (a zip of `.npy` files, deflated as `numpy.savez_compressed`
/// does), array by array.
pub(crate) struct NpzWriter<W: Write + Seek> {
    zip: zip::ZipWriter<W>,
}

impl<W: Write + Seek> NpzWriter<W> {
    /// Starts an archive in `out`.
    pub(crate) fn new(out: W) -> NpzWriter<W> {
        NpzWriter {
            zip: zip::ZipWriter::new(out),
        }
    }

    /// Adds the C-order array `name` of `shape` holding `data`.
    pub(crate) fn array<T: npyz::AutoSerialize + Copy>(
        &mut self,
        name: &str,
        shape: &[u64],
        data: &[T],
    ) -> io::Result<()> {
        use npyz::WriterBuilder as _;
        let count: u64 = shape.iter().product();
        if count != data.len() as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "array `{name}` of shape {shape:?} needs {count} values, got {}",
                    data.len()
                ),
            ));
        }
        // Zip64 once an entry may pass 4 GiB (the .npy header adds a few bytes).
        let bytes = count.saturating_mul(size_of::<T>() as u64);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(bytes >= u64::from(u32::MAX) - 4096);
        self.zip.start_file(format!("{name}.npy"), options)?;
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(&mut self.zip)
            .begin_nd()?;
        writer.extend(data.iter().copied())?;
        writer.finish()
    }

    /// Writes the zip directory and hands back `out`.
    pub(crate) fn finish(self) -> io::Result<W> {
        Ok(self.zip.finish()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_rounded_without_trailing_zeros() {
        assert_eq!(format_value(63.0), "63");
        assert_eq!(format_value(7.389_056_1), "7.3891");
        assert_eq!(format_value(-0.000_01), "0");
        assert_eq!(format_value(-1.25), "-1.25");
    }

    #[test]
    fn only_export_files_count_as_earlier_exports() {
        assert!(is_export_file("case-00012.png"));
        assert!(is_export_file(".case-00012.png.tmp"));
        assert!(!is_export_file("case-.png"));
        assert!(!is_export_file("scan.png"));
        assert!(!is_export_file("case-00012.jpg"));
    }

    #[test]
    fn npz_arrays_must_match_their_shape() {
        let mut npz = NpzWriter::new(io::Cursor::new(Vec::new()));
        let err = npz.array("x", &[2, 3], &[0u8; 5]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("`x`"), "{err}");
    }
}
