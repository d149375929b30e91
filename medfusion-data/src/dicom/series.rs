//! Putting the slices of a series in order: along the normal of the image plane
//! (ImagePositionPatient projected on ImageOrientationPatient's normal), InstanceNumber when
//! the geometry is missing, with the spacing between slices checked.

use crate::dicom::read::DicomHeader;

/// The order of a series' slices and the spacing between them.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesOrder {
    /// Indices into the headers given, first slice first.
    pub order: Vec<usize>,
    /// Whether the order came from the geometry (`false`: from InstanceNumber).
    pub by_position: bool,
    /// Median distance between neighbouring slices along the normal (mm), when known.
    pub spacing: Option<f64>,
    /// Largest relative deviation of a gap from the median (0 for even spacing).
    pub spacing_deviation: f64,
    /// Slices at the same position (duplicates), as pairs of indices.
    pub duplicates: Vec<(usize, usize)>,
}

/// Orders the slices `headers` of one series.
///
/// With ImagePositionPatient and ImageOrientationPatient on every slice (and one orientation
/// for all), slices are sorted by their position along the plane's normal, ascending, as
/// pydicom-based pipelines and dcm2niix do; otherwise by InstanceNumber, then by file path.
pub fn order_series(headers: &[&DicomHeader]) -> SeriesOrder {
    let normal = headers.first().and_then(|h| h.normal());
    let same_orientation = headers
        .iter()
        .all(|h| match (h.orientation, headers[0].orientation) {
            (Some(a), Some(b)) => a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4),
            _ => false,
        });
    let distances: Option<Vec<f64>> = normal.filter(|_| same_orientation).and_then(|n| {
        headers
            .iter()
            .map(|h| h.position.map(|p| p[0] * n[0] + p[1] * n[1] + p[2] * n[2]))
            .collect()
    });
    let mut order: Vec<usize> = (0..headers.len()).collect();
    let Some(d) = distances else {
        order.sort_by(|&a, &b| {
            headers[a]
                .instance_number
                .cmp(&headers[b].instance_number)
                .then_with(|| headers[a].path.cmp(&headers[b].path))
        });
        return SeriesOrder {
            order,
            by_position: false,
            spacing: None,
            spacing_deviation: 0.0,
            duplicates: Vec::new(),
        };
    };
    order.sort_by(|&a, &b| {
        d[a].total_cmp(&d[b])
            .then_with(|| headers[a].instance_number.cmp(&headers[b].instance_number))
    });
    let gaps: Vec<f64> = order.windows(2).map(|w| d[w[1]] - d[w[0]]).collect();
    let duplicates = order
        .windows(2)
        .zip(&gaps)
        .filter(|(_, g)| g.abs() < 1e-3)
        .map(|(w, _)| (w[0], w[1]))
        .collect();
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let spacing = sorted.get(sorted.len() / 2).copied();
    let spacing_deviation = match spacing {
        Some(s) if s > 1e-6 => gaps.iter().map(|g| (g - s).abs() / s).fold(0.0, f64::max),
        _ => 0.0,
    };
    SeriesOrder {
        order,
        by_position: true,
        spacing,
        spacing_deviation,
        duplicates,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn slice(z: Option<f64>, instance: i64) -> DicomHeader {
        DicomHeader {
            path: PathBuf::from(format!("{instance}.dcm")),
            transfer_syntax: String::new(),
            patient_id: None,
            study_uid: None,
            series_uid: None,
            sop_uid: None,
            modality: None,
            body_part: None,
            sex: None,
            age_years: None,
            instance_number: Some(instance),
            position: z.map(|z| [10.0, -20.0, z]),
            orientation: z.map(|_| [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            pixel_spacing: None,
            bits_stored: 16,
            rows: 2,
            columns: 2,
            frames: 1,
            samples_per_pixel: 1,
            photometric: "MONOCHROME2".into(),
            windows: Vec::new(),
        }
    }

    #[test]
    fn position_beats_instance_number_and_gaps_are_measured() {
        // Instance numbers run against the geometry (as when a scanner numbers head first).
        let h = [
            slice(Some(5.0), 1),
            slice(Some(-5.0), 3),
            slice(Some(0.0), 2),
            slice(Some(12.5), 0),
        ];
        let refs: Vec<&DicomHeader> = h.iter().collect();
        let o = order_series(&refs);
        assert!(o.by_position);
        assert_eq!(o.order, [1, 2, 0, 3]);
        assert_eq!(o.spacing, Some(5.0));
        assert!((o.spacing_deviation - 0.5).abs() < 1e-9);
        assert!(o.duplicates.is_empty());
    }

    #[test]
    fn without_geometry_instance_numbers_decide() {
        let h = [slice(None, 3), slice(None, 1), slice(None, 2)];
        let refs: Vec<&DicomHeader> = h.iter().collect();
        let o = order_series(&refs);
        assert!(!o.by_position);
        assert_eq!(o.order, [1, 2, 0]);
    }
}
