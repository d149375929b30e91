//! Writing CT slices as DICOM files (explicit VR little endian, CT Image Storage), for
//! `medfusion example-data` and tests: valid files that pydicom and dicom-rs read.

use std::path::Path;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use crate::error::DataError;

/// CT Image Storage.
const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
/// Explicit VR little endian.
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// One CT slice to write: identifiers, geometry and Hounsfield units.
#[derive(Debug, Clone)]
pub struct CtSlice<'a> {
    /// PatientID.
    pub patient_id: &'a str,
    /// StudyInstanceUID.
    pub study_uid: &'a str,
    /// SeriesInstanceUID.
    pub series_uid: &'a str,
    /// SOPInstanceUID.
    pub sop_uid: &'a str,
    /// InstanceNumber.
    pub instance_number: i32,
    /// ImagePositionPatient (mm); the orientation is axial.
    pub position: [f64; 3],
    /// PixelSpacing and SliceThickness (mm).
    pub spacing: [f64; 3],
    /// Rows and columns.
    pub size: [u16; 2],
    /// Hounsfield units, row-major, `rows * columns` (stored as `HU + 1024`, with
    /// RescaleIntercept -1024).
    pub hu: &'a [i16],
    /// The window the file suggests (center, width).
    pub window: (f64, f64),
}

/// A DS (decimal string) value: at most 16 characters.
fn ds(v: f64) -> String {
    let mut s = format!("{v}");
    if s.len() > 16 {
        s = format!("{v:.6e}");
    }
    s
}

fn multi(values: &[f64]) -> String {
    values.iter().map(|&v| ds(v)).collect::<Vec<_>>().join("\\")
}

/// Writes `slice` to `path` (atomically: a temporary file renamed into place).
pub fn write_ct_slice(path: &Path, slice: &CtSlice<'_>) -> Result<(), DataError> {
    let [rows, columns] = slice.size;
    if slice.hu.len() != usize::from(rows) * usize::from(columns) {
        return Err(DataError::input(
            "CT slice",
            format!("{} values for {rows}x{columns} pixels", slice.hu.len()),
        ));
    }
    let mut obj = InMemDicomObject::new_empty();
    let mut text = |tag, vr, value: &str| {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    };
    text(tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE);
    text(tags::SOP_INSTANCE_UID, VR::UI, slice.sop_uid);
    text(tags::MODALITY, VR::CS, "CT");
    text(tags::PATIENT_ID, VR::LO, slice.patient_id);
    text(tags::PATIENT_NAME, VR::PN, slice.patient_id);
    text(tags::BODY_PART_EXAMINED, VR::CS, "CHEST");
    text(tags::STUDY_INSTANCE_UID, VR::UI, slice.study_uid);
    text(tags::SERIES_INSTANCE_UID, VR::UI, slice.series_uid);
    text(
        tags::INSTANCE_NUMBER,
        VR::IS,
        &slice.instance_number.to_string(),
    );
    text(
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        &multi(&slice.position),
    );
    text(
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        &multi(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
    );
    text(tags::PIXEL_SPACING, VR::DS, &multi(&slice.spacing[..2]));
    text(tags::SLICE_THICKNESS, VR::DS, &ds(slice.spacing[2]));
    text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    text(tags::RESCALE_INTERCEPT, VR::DS, "-1024");
    text(tags::RESCALE_SLOPE, VR::DS, "1");
    text(tags::RESCALE_TYPE, VR::LO, "HU");
    text(tags::WINDOW_CENTER, VR::DS, &ds(slice.window.0));
    text(tags::WINDOW_WIDTH, VR::DS, &ds(slice.window.1));
    for (tag, value) in [
        (tags::SAMPLES_PER_PIXEL, 1u16),
        (tags::ROWS, rows),
        (tags::COLUMNS, columns),
        (tags::BITS_ALLOCATED, 16),
        (tags::BITS_STORED, 12),
        (tags::HIGH_BIT, 11),
        (tags::PIXEL_REPRESENTATION, 0),
    ] {
        obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
    }
    let bytes: Vec<u8> = slice
        .hu
        .iter()
        .flat_map(|&hu| ((i32::from(hu) + 1024).clamp(0, 4095) as u16).to_le_bytes())
        .collect();
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::from(bytes),
    ));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(EXPLICIT_VR_LE)
                .media_storage_sop_class_uid(CT_IMAGE_STORAGE)
                .media_storage_sop_instance_uid(slice.sop_uid),
        )
        .map_err(|e| DataError::input("CT slice", e.to_string()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let write_err = |e: std::io::Error| DataError::Write {
        path: path.to_path_buf(),
        source: e,
    };
    file.write_to_file(&tmp)
        .map_err(|e| write_err(std::io::Error::other(e.to_string())))?;
    std::fs::rename(&tmp, path).map_err(write_err)
}
