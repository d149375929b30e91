//! From modality values to what a radiologist sees: a window (from the config, a preset, the
//! file's own VOI LUT or window, or the image's range), then MONOCHROME1 inverted.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dicom::read::{DicomHeader, VoiFunction, VoiTable, Window};

/// A named window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowPreset {
    /// The file's own VOI LUT, else its first window, else the image's range.
    File,
    /// The image's own minimum to maximum (per image, or per volume).
    MinMax,
    /// Lung: center -600 HU, width 1500.
    Lung,
    /// Mediastinum: center 50 HU, width 350.
    Mediastinum,
    /// Brain: center 40 HU, width 80.
    Brain,
    /// Bone: center 400 HU, width 1800.
    Bone,
    /// Abdomen (soft tissue): center 40 HU, width 400.
    Abdomen,
}

impl WindowPreset {
    /// The preset's center and width in HU, for the anatomical presets.
    pub fn center_width(self) -> Option<(f64, f64)> {
        match self {
            WindowPreset::File | WindowPreset::MinMax => None,
            WindowPreset::Lung => Some((-600.0, 1500.0)),
            WindowPreset::Mediastinum => Some((50.0, 350.0)),
            WindowPreset::Brain => Some((40.0, 80.0)),
            WindowPreset::Bone => Some((400.0, 1800.0)),
            WindowPreset::Abdomen => Some((40.0, 400.0)),
        }
    }
}

/// The `window` key of `dataset.dicom`: a preset name, or `{center, width}` in modality units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum WindowSetting {
    /// `lung`, `mediastinum`, `brain`, `bone`, `abdomen`, `file` or `min_max`.
    Preset(WindowPreset),
    /// An explicit window (linear function).
    Manual {
        /// Window center.
        center: f64,
        /// Window width (at least 1).
        width: f64,
    },
}

impl Default for WindowSetting {
    fn default() -> Self {
        WindowSetting::Preset(WindowPreset::File)
    }
}

/// The transform chosen for one image.
#[derive(Debug, Clone, PartialEq)]
pub enum Voi {
    /// A window.
    Window(Window),
    /// A lookup table.
    Table(VoiTable),
    /// Minimum to maximum of the values given.
    MinMax,
}

impl WindowSetting {
    /// The transform for an image with `header` (and its VOI LUT, if any).
    pub fn voi_for(&self, header: &DicomHeader, table: Option<&VoiTable>) -> Voi {
        match *self {
            WindowSetting::Manual { center, width } => Voi::Window(Window {
                center,
                width,
                function: VoiFunction::Linear,
            }),
            WindowSetting::Preset(WindowPreset::MinMax) => Voi::MinMax,
            WindowSetting::Preset(WindowPreset::File) => match (table, header.windows.first()) {
                (Some(t), _) => Voi::Table(t.clone()),
                (None, Some(w)) if w.width > 0.0 => Voi::Window(*w),
                _ => Voi::MinMax,
            },
            WindowSetting::Preset(p) => {
                let (center, width) = p.center_width().unwrap_or((0.0, 1.0));
                Voi::Window(Window {
                    center,
                    width,
                    function: VoiFunction::Linear,
                })
            }
        }
    }
}

impl Window {
    /// Maps a modality value into `[0, 1]` (DICOM PS3.3 C.11.2.1.2).
    pub fn apply(&self, x: f64) -> f64 {
        let (c, w) = (self.center, self.width);
        match self.function {
            VoiFunction::Linear => {
                let w1 = (w - 1.0).max(f64::MIN_POSITIVE);
                if x <= c - 0.5 - w1 / 2.0 {
                    0.0
                } else if x > c - 0.5 + w1 / 2.0 {
                    1.0
                } else {
                    (x - (c - 0.5)) / w1 + 0.5
                }
            }
            VoiFunction::LinearExact => ((x - c) / w + 0.5).clamp(0.0, 1.0),
            VoiFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - c) / w).exp()),
        }
    }
}

impl VoiTable {
    /// Maps a modality value through the table into `[0, 1]`.
    pub fn apply(&self, x: f64) -> f64 {
        let last = self.data.len() - 1;
        let index = (x - self.first_mapped).clamp(0.0, last as f64) as usize;
        f64::from(self.data[index]) / f64::from((1u32 << self.bits) - 1)
    }
}

/// Maps `values` (modality values of one image or one volume, one sample per pixel) into
/// `[0, 1]` in place with `voi`, then inverts them when `monochrome1` (so white is high).
pub fn apply_voi(values: &mut [f32], voi: &Voi, monochrome1: bool) {
    match voi {
        Voi::Window(w) => values
            .iter_mut()
            .for_each(|v| *v = w.apply(f64::from(*v)) as f32),
        Voi::Table(t) => values
            .iter_mut()
            .for_each(|v| *v = t.apply(f64::from(*v)) as f32),
        Voi::MinMax => {
            let (lo, hi) = values
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            let range = hi - lo;
            for v in values.iter_mut() {
                *v = if range > 0.0 { (*v - lo) / range } else { 0.0 };
            }
        }
    }
    if monochrome1 {
        for v in values.iter_mut() {
            *v = 1.0 - *v;
        }
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact ends of the ramps
mod tests {
    use super::*;

    fn linear(center: f64, width: f64) -> Window {
        Window {
            center,
            width,
            function: VoiFunction::Linear,
        }
    }

    #[test]
    fn the_linear_window_follows_the_standard() {
        // Center 40, width 400: -160 and below black, 240 and above white.
        let w = linear(40.0, 400.0);
        assert_eq!(w.apply(-1000.0), 0.0);
        assert_eq!(w.apply(-160.0), 0.0);
        assert_eq!(w.apply(1000.0), 1.0);
        assert!((w.apply(39.5) - 0.5).abs() < 1e-12);
        let mid = w.apply(100.0);
        assert!(mid > 0.5 && mid < 1.0);
        // Monotone.
        let mut last = 0.0;
        for x in -200..300 {
            let y = w.apply(f64::from(x));
            assert!(y >= last);
            last = y;
        }
    }

    #[test]
    fn min_max_spans_zero_to_one_and_monochrome1_inverts() {
        let mut v = vec![10.0, 20.0, 30.0];
        apply_voi(&mut v, &Voi::MinMax, false);
        assert_eq!(v, [0.0, 0.5, 1.0]);
        let mut v = vec![10.0, 20.0, 30.0];
        apply_voi(&mut v, &Voi::MinMax, true);
        assert_eq!(v, [1.0, 0.5, 0.0]);
        let mut flat = vec![5.0; 4];
        apply_voi(&mut flat, &Voi::MinMax, false);
        assert_eq!(flat, [0.0; 4]);
    }

    #[test]
    fn tables_clamp_at_both_ends() {
        let t = VoiTable {
            first_mapped: 100.0,
            bits: 8,
            data: vec![0, 51, 255],
        };
        assert_eq!(t.apply(0.0), 0.0);
        assert_eq!(t.apply(101.0), 0.2);
        assert_eq!(t.apply(500.0), 1.0);
    }

    #[test]
    fn presets_parse_by_name_and_windows_by_keys() {
        let lung: WindowSetting = serde_json::from_str("\"lung\"").unwrap();
        assert_eq!(lung, WindowSetting::Preset(WindowPreset::Lung));
        let manual: WindowSetting =
            serde_json::from_str(r#"{"center": -300, "width": 600}"#).unwrap();
        assert_eq!(
            manual,
            WindowSetting::Manual {
                center: -300.0,
                width: 600.0
            }
        );
        assert!(serde_json::from_str::<WindowSetting>("\"liver\"").is_err());
    }
}
