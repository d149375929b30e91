//! Reading one DICOM file: its header (identifiers, geometry, the file's own windows) and its
//! pixels as modality values (after the Modality LUT: Hounsfield units for CT).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use crate::error::DataError;

/// Largest image a file may hold, in samples over all frames (rows x columns x samples per
/// pixel x frames), checked before its pixels are decoded.
pub const DEFAULT_MAX_DICOM_SAMPLES: u64 = 512 * 1024 * 1024;

/// How the file's own VOI function maps values inside its window (DICOM VOILUTFunction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VoiFunction {
    /// `LINEAR` (the default): the standard's linear ramp with its half-pixel offsets.
    #[default]
    Linear,
    /// `LINEAR_EXACT`: `(x - center) / width + 0.5`, clamped.
    LinearExact,
    /// `SIGMOID`: `1 / (1 + exp(-4 (x - center) / width))`.
    Sigmoid,
}

/// A window: values from `center - width/2` to `center + width/2` span black to white.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Window center, in modality units (HU for CT).
    pub center: f64,
    /// Window width (at least 1 for the linear function).
    pub width: f64,
    /// How values inside the window map to grey levels.
    pub function: VoiFunction,
}

/// A VOI lookup table from the file (VOILUTSequence, first item).
#[derive(Debug, Clone, PartialEq)]
pub struct VoiTable {
    /// The modality value mapped to the first entry.
    pub first_mapped: f64,
    /// Bits per entry (entries are `0..2^bits`).
    pub bits: u8,
    /// The entries.
    pub data: Vec<u16>,
}

/// What a DICOM file says about itself, read without decoding its pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct DicomHeader {
    /// The file.
    pub path: PathBuf,
    /// The transfer syntax UID its pixels are encoded in.
    pub transfer_syntax: String,
    /// PatientID.
    pub patient_id: Option<String>,
    /// StudyInstanceUID.
    pub study_uid: Option<String>,
    /// SeriesInstanceUID.
    pub series_uid: Option<String>,
    /// SOPInstanceUID.
    pub sop_uid: Option<String>,
    /// Modality (`CT`, `MR`, `CR`, ...).
    pub modality: Option<String>,
    /// BodyPartExamined.
    pub body_part: Option<String>,
    /// PatientSex (`M`, `F`, `O`).
    pub sex: Option<String>,
    /// PatientAge in years (`045Y`; months, weeks and days converted).
    pub age_years: Option<f64>,
    /// InstanceNumber.
    pub instance_number: Option<i64>,
    /// ImagePositionPatient (mm).
    pub position: Option<[f64; 3]>,
    /// ImageOrientationPatient: row direction, then column direction.
    pub orientation: Option<[f64; 6]>,
    /// PixelSpacing (row spacing, column spacing; mm).
    pub pixel_spacing: Option<[f64; 2]>,
    /// BitsStored.
    pub bits_stored: u16,
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub columns: u32,
    /// NumberOfFrames (1 when absent).
    pub frames: u32,
    /// SamplesPerPixel (1 for greyscale, 3 for colour).
    pub samples_per_pixel: u16,
    /// PhotometricInterpretation (`MONOCHROME1`, `MONOCHROME2`, `RGB`, ...).
    pub photometric: String,
    /// The file's windows (WindowCenter/WindowWidth pairs, with VOILUTFunction).
    pub windows: Vec<Window>,
}

impl DicomHeader {
    /// Whether the minimum value is meant to be shown white (`MONOCHROME1`).
    pub fn is_monochrome1(&self) -> bool {
        self.photometric == "MONOCHROME1"
    }

    /// The unit normal of the image plane (row direction x column direction).
    pub fn normal(&self) -> Option<[f64; 3]> {
        let o = self.orientation?;
        let n = [
            o[1] * o[5] - o[2] * o[4],
            o[2] * o[3] - o[0] * o[5],
            o[0] * o[4] - o[1] * o[3],
        ];
        let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        (len > 1e-6).then(|| [n[0] / len, n[1] / len, n[2] / len])
    }
}

/// A decoded DICOM image: every frame's modality values.
#[derive(Debug, Clone, PartialEq)]
pub struct DicomImage {
    /// The header.
    pub header: DicomHeader,
    /// Modality values (RescaleSlope and RescaleIntercept applied), frames one after another,
    /// each `rows x columns x samples_per_pixel` in row-major order with samples interleaved.
    pub values: Vec<f32>,
    /// The file's VOI LUT, when it has one.
    pub voi_table: Option<VoiTable>,
}

impl DicomImage {
    /// Values per frame.
    pub fn frame_len(&self) -> usize {
        self.header.rows as usize
            * self.header.columns as usize
            * usize::from(self.header.samples_per_pixel)
    }

    /// The modality values of frame `index`.
    pub fn frame(&self, index: usize) -> &[f32] {
        let n = self.frame_len();
        &self.values[index * n..(index + 1) * n]
    }
}

fn dicom_error(path: &Path, reason: impl std::fmt::Display) -> DataError {
    DataError::Dicom {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Opens `path` as DICOM: a Part 10 file (with or without its 128-byte preamble), or a bare
/// data set without a file meta group (implicit VR little endian, explicit little or big
/// endian, told apart by its first bytes). `header_only` stops before the pixel data.
fn open(path: &Path, header_only: bool) -> Result<DefaultDicomObject, DataError> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut head = [0u8; 132];
    let n = read_up_to(&mut file, &mut head).map_err(|e| DataError::io(path, e))?;
    let head = &head[..n];
    let options = || {
        let o = OpenFileOptions::new();
        if header_only {
            o.read_until(tags::PIXEL_DATA)
        } else {
            o
        }
    };
    if head.len() >= 132 && &head[128..132] == b"DICM" {
        return options()
            .read_preamble(ReadPreamble::Always)
            .open_file(path)
            .map_err(|e| dicom_error(path, e));
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| DataError::io(path, e))?;
    if head.starts_with(b"DICM") {
        return options()
            .read_preamble(ReadPreamble::Never)
            .from_reader(BufReader::new(file))
            .map_err(|e| dicom_error(path, e));
    }
    // No meta group: guess the encoding from the first element's header.
    if head.len() < 8 {
        return Err(dicom_error(path, "not a DICOM file (too short)"));
    }
    let explicit = head[4].is_ascii_uppercase() && head[5].is_ascii_uppercase();
    let big_endian = explicit && head[0] == 0 && head[1] != 0;
    let uid = match (explicit, big_endian) {
        (false, _) => "1.2.840.10008.1.2",
        (true, false) => "1.2.840.10008.1.2.1",
        (true, true) => "1.2.840.10008.1.2.2",
    };
    let group = if big_endian {
        u16::from_be_bytes([head[0], head[1]])
    } else {
        u16::from_le_bytes([head[0], head[1]])
    };
    if !(0x0002..=0x0010).contains(&group) {
        return Err(dicom_error(
            path,
            "not a DICOM file (no DICM marker, and the first bytes are not a DICOM data element)",
        ));
    }
    let ts = TransferSyntaxRegistry
        .get(uid)
        .ok_or_else(|| dicom_error(path, format!("transfer syntax {uid} is not registered")))?;
    let reader = BufReader::new(file);
    // (Without a meta group the whole data set is read, pixels included.)
    let object = InMemDicomObject::read_dataset_with_ts(reader, ts)
        .map_err(|e| dicom_error(path, format!("no file meta group, read as {uid}: {e}")))?;
    let sop_class = string(&object, tags::SOP_CLASS_UID).unwrap_or_default();
    let sop_instance = string(&object, tags::SOP_INSTANCE_UID).unwrap_or_default();
    object
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uid)
                .media_storage_sop_class_uid(sop_class)
                .media_storage_sop_instance_uid(sop_instance),
        )
        .map_err(|e| dicom_error(path, e))
}

/// Whether `path` looks like DICOM from its first bytes: the DICM marker after a preamble or
/// at the start, or a data set starting with a plausible element (group 0002 to 0010).
pub fn looks_like_dicom(path: &Path) -> bool {
    let Ok(mut file) = File::open(path) else {
        // Unreadable: let the reader name the error.
        return true;
    };
    let mut head = [0u8; 132];
    let Ok(n) = read_up_to(&mut file, &mut head) else {
        return true;
    };
    if n >= 132 && &head[128..132] == b"DICM" || head[..n].starts_with(b"DICM") {
        return true;
    }
    if n < 8 {
        return false;
    }
    let le = u16::from_le_bytes([head[0], head[1]]);
    let be = u16::from_be_bytes([head[0], head[1]]);
    let explicit = head[4].is_ascii_uppercase() && head[5].is_ascii_uppercase();
    (0x0002..=0x0010).contains(&le) && (le % 2 == 0)
        || explicit && (0x0002..=0x0010).contains(&be) && be % 2 == 0
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn string(object: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = object.get(tag)?.to_str().ok()?;
    let value = value
        .trim_matches(|c: char| c == ' ' || c == '\0')
        .to_owned();
    (!value.is_empty()).then_some(value)
}

fn floats(object: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    object
        .get(tag)?
        .to_multi_float64()
        .ok()
        .filter(|v| !v.is_empty())
}

fn int(object: &InMemDicomObject, tag: Tag) -> Option<i64> {
    object.get(tag)?.to_int::<i64>().ok()
}

fn array<const N: usize>(object: &InMemDicomObject, tag: Tag) -> Option<[f64; N]> {
    floats(object, tag)?.get(..N)?.try_into().ok()
}

/// PatientAge (`nnnD`, `nnnW`, `nnnM`, `nnnY`) in years.
fn parse_age(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        "Y" | "y" => n,
        "M" | "m" => n / 12.0,
        "W" | "w" => n * 7.0 / 365.25,
        "D" | "d" => n / 365.25,
        _ => text.parse().ok()?,
    })
}

fn header_of(path: &Path, object: &DefaultDicomObject) -> Result<DicomHeader, DataError> {
    let transfer_syntax = object
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_owned();
    let function = match string(object, tags::VOILUT_FUNCTION).as_deref() {
        Some("LINEAR_EXACT") => VoiFunction::LinearExact,
        Some("SIGMOID") => VoiFunction::Sigmoid,
        _ => VoiFunction::Linear,
    };
    let windows = match (
        floats(object, tags::WINDOW_CENTER),
        floats(object, tags::WINDOW_WIDTH),
    ) {
        (Some(c), Some(w)) => c
            .iter()
            .zip(&w)
            .map(|(&center, &width)| Window {
                center,
                width,
                function,
            })
            .collect(),
        _ => Vec::new(),
    };
    let dim = |tag: Tag, name: &str| -> Result<u32, DataError> {
        let v = int(object, tag).ok_or_else(|| dicom_error(path, format!("has no {name}")))?;
        u32::try_from(v)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| dicom_error(path, format!("{name} is {v}")))
    };
    let has_pixels = object.get(tags::ROWS).is_some();
    let (rows, columns) = if has_pixels {
        (dim(tags::ROWS, "Rows")?, dim(tags::COLUMNS, "Columns")?)
    } else {
        (0, 0)
    };
    Ok(DicomHeader {
        path: path.to_path_buf(),
        transfer_syntax,
        patient_id: string(object, tags::PATIENT_ID),
        study_uid: string(object, tags::STUDY_INSTANCE_UID),
        series_uid: string(object, tags::SERIES_INSTANCE_UID),
        sop_uid: string(object, tags::SOP_INSTANCE_UID),
        modality: string(object, tags::MODALITY),
        body_part: string(object, tags::BODY_PART_EXAMINED),
        sex: string(object, tags::PATIENT_SEX),
        age_years: string(object, tags::PATIENT_AGE).and_then(|a| parse_age(&a)),
        instance_number: int(object, tags::INSTANCE_NUMBER),
        position: array(object, tags::IMAGE_POSITION_PATIENT),
        orientation: array(object, tags::IMAGE_ORIENTATION_PATIENT),
        pixel_spacing: array(object, tags::PIXEL_SPACING),
        bits_stored: int(object, tags::BITS_STORED)
            .and_then(|b| u16::try_from(b).ok())
            .unwrap_or(0),
        rows,
        columns,
        frames: int(object, tags::NUMBER_OF_FRAMES)
            .and_then(|f| u32::try_from(f).ok())
            .filter(|&f| f > 0)
            .unwrap_or(1),
        samples_per_pixel: int(object, tags::SAMPLES_PER_PIXEL)
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(1),
        photometric: string(object, tags::PHOTOMETRIC_INTERPRETATION)
            .unwrap_or_else(|| "MONOCHROME2".into()),
        windows,
    })
}

/// Reads the header of `path` without decoding its pixels.
pub fn read_dicom_header(path: &Path) -> Result<DicomHeader, DataError> {
    let object = open(path, true)?;
    header_of(path, &object)
}

/// The transfer syntax's name, or an error naming the file and the UID when this build cannot
/// decode its pixels.
fn check_transfer_syntax(path: &Path, uid: &str) -> Result<(), DataError> {
    let unsupported = |why: &str| DataError::UnsupportedTransferSyntax {
        path: path.to_path_buf(),
        uid: uid.to_owned(),
        reason: why.to_owned(),
    };
    match TransferSyntaxRegistry.get(uid) {
        None => Err(unsupported("an unknown transfer syntax")),
        Some(ts) if !ts.can_decode_all() => Err(unsupported(&format!(
            "{}, which this build cannot decode (supported: implicit and explicit VR little \
             endian, explicit VR big endian, deflate, JPEG baseline, extended and lossless, RLE)",
            ts.name()
        ))),
        Some(_) => Ok(()),
    }
}

/// Reads and decodes `path`: its header and the modality values of every frame.
///
/// `max_samples` bounds rows x columns x samples x frames before anything is decoded.
pub fn read_dicom(path: &Path, max_samples: u64) -> Result<DicomImage, DataError> {
    let object = open(path, false)?;
    let header = header_of(path, &object)?;
    if header.rows == 0 {
        return Err(dicom_error(path, "holds no image (no Rows/Columns)"));
    }
    check_transfer_syntax(path, &header.transfer_syntax)?;
    let samples = u64::from(header.rows)
        * u64::from(header.columns)
        * u64::from(header.samples_per_pixel)
        * u64::from(header.frames);
    if samples > max_samples {
        return Err(dicom_error(
            path,
            format!(
                "holds {} frames of {}x{}x{} ({samples} values), more than the limit of {max_samples}",
                header.frames, header.rows, header.columns, header.samples_per_pixel
            ),
        ));
    }
    if !matches!(header.samples_per_pixel, 1 | 3) {
        return Err(dicom_error(
            path,
            format!(
                "has {} samples per pixel (1 or 3 are supported)",
                header.samples_per_pixel
            ),
        ));
    }
    let bits_allocated = int(&object, tags::BITS_ALLOCATED).unwrap_or(0);
    let bits_stored = int(&object, tags::BITS_STORED).unwrap_or(0);
    if !matches!(bits_allocated, 8 | 16 | 32) || bits_stored < 1 || bits_stored > bits_allocated {
        return Err(dicom_error(
            path,
            format!(
                "has BitsAllocated {bits_allocated} and BitsStored {bits_stored} (8, 16 or 32 \
                 bits allocated, 1 to that many stored, are supported)"
            ),
        ));
    }
    let decoded = object
        .decode_pixel_data()
        .map_err(|e| dicom_error(path, format!("cannot decode its pixel data: {e}")))?;
    let frames = decoded.number_of_frames().min(header.frames);
    let mut values = Vec::with_capacity(samples as usize);
    for frame in 0..frames {
        let part = if decoded.bits_allocated() == 32 {
            frame_32bit(&decoded, frame, header.samples_per_pixel)
        } else {
            decoded
                .to_vec_frame::<f32>(frame)
                .map_err(|e| e.to_string())
        }
        .map_err(|e| dicom_error(path, format!("frame {frame}: {e}")))?;
        values.extend(part);
    }
    let expected = samples as usize / header.frames as usize * frames as usize;
    if values.len() != expected || frames != header.frames {
        return Err(dicom_error(
            path,
            format!(
                "decoded {} values in {frames} frames, expected {} frames of {}x{}x{}",
                values.len(),
                header.frames,
                header.rows,
                header.columns,
                header.samples_per_pixel
            ),
        ));
    }
    let voi_table = decoded
        .voi_lut_sequence()
        .ok()
        .flatten()
        .and_then(|s| s.first())
        .map(|lut| VoiTable {
            first_mapped: f64::from(lut.min_pixel_value),
            bits: lut.bits_stored,
            data: lut.data.clone(),
        })
        .filter(|t| !t.data.is_empty() && (1..=16).contains(&t.bits));
    Ok(DicomImage {
        header,
        values,
        voi_table,
    })
}

/// A frame of 32-bit samples (dose grids, some secondary captures), which dicom-pixeldata's
/// converters do not handle, with the rescale applied.
fn frame_32bit(
    decoded: &dicom_pixeldata::DecodedPixelData<'_>,
    frame: u32,
    samples: u16,
) -> Result<Vec<f32>, String> {
    let bytes = decoded.frame_data(frame).map_err(|e| e.to_string())?;
    let signed = decoded.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed;
    let rescale = decoded.rescale().map_err(|e| e.to_string())?;
    let r = if samples == 1 {
        rescale
            .get(frame as usize)
            .or(rescale.first())
            .copied()
            .map_or((1.0, 0.0), |r| (r.slope, r.intercept))
    } else {
        (1.0, 0.0)
    };
    Ok(bytes
        .chunks_exact(4)
        .map(|b| {
            let b = [b[0], b[1], b[2], b[3]];
            let raw = if signed {
                f64::from(i32::from_le_bytes(b))
            } else {
                f64::from(u32::from_le_bytes(b))
            };
            (raw * r.0 + r.1) as f32
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages_in_every_unit_become_years() {
        assert_eq!(parse_age("045Y"), Some(45.0));
        assert_eq!(parse_age("006M"), Some(0.5));
        assert!((parse_age("052W").unwrap() - 0.9966).abs() < 1e-3);
        assert_eq!(parse_age("Y"), None);
        assert_eq!(parse_age(""), None);
        assert_eq!(parse_age("abc"), None);
    }
}
