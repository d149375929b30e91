//! Drawing one synthetic case: which modalities show its disease, its image and its row.

use std::f64::consts::{PI, TAU};

use crate::rng::SplitMix64;
use crate::synthetic::SyntheticConfig;

/// One generated sample before rendering.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) label: u32,
    /// Whether the image shows the disease.
    pub(crate) in_image: bool,
    /// Whether the table shows the disease.
    pub(crate) in_table: bool,
    /// The case's own random stream seed.
    seed: u64,
}

impl Case {
    /// Draws where a case of class `label` shows its disease.
    pub(crate) fn draw(config: &SyntheticConfig, label: u32, index: u64) -> Case {
        let seed = crate::rng::mix(config.seed, &[0xCA5E, index]);
        let mut rng = SplitMix64::new(seed ^ 0x0D15_EA5E);
        let (in_image, in_table) = if label == 0 {
            (false, false)
        } else if rng.chance(config.both_share) {
            (true, true)
        } else {
            let image = rng.chance(config.image_share);
            (image, !image)
        };
        Case {
            label,
            in_image,
            in_table,
            seed,
        }
    }
}

/// Bilinearly interpolated random values on a `cells x cells` grid over the unit square:
/// smooth noise with a chosen grain.
struct ValueNoise {
    cells: usize,
    grid: Vec<f64>,
}

impl ValueNoise {
    fn new(cells: usize, rng: &mut SplitMix64) -> ValueNoise {
        let n = cells + 1;
        ValueNoise {
            cells,
            grid: (0..n * n).map(|_| rng.normal()).collect(),
        }
    }

    /// The noise at `(u, v)` in `[0, 1]^2`, smoothstep-interpolated.
    fn at(&self, u: f64, v: f64) -> f64 {
        let stride = self.cells + 1;
        let (gx, gy) = (u * self.cells as f64, v * self.cells as f64);
        let (x0, y0) = (
            (gx as usize).min(self.cells - 1),
            (gy as usize).min(self.cells - 1),
        );
        let smooth = |t: f64| t * t * (3.0 - 2.0 * t);
        let (fx, fy) = (smooth(gx - x0 as f64), smooth(gy - y0 as f64));
        let g = |col: usize, row: usize| self.grid[row * stride + col];
        let top = g(x0, y0) * (1.0 - fx) + g(x0 + 1, y0) * fx;
        let bottom = g(x0, y0 + 1) * (1.0 - fx) + g(x0 + 1, y0 + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

/// Renders the case's image into `out` (`size * size` grey bytes, or `depth` such slices
/// for a volume); returns the lesion's mean diameter in pixels at a 64-pixel scale.
///
/// A volume's lesion is an ellipsoid: its cross-section shrinks away from a central slice,
/// and the slices share the tissue pattern, each with its own noise.
pub(crate) fn render_image(case: &Case, config: &SyntheticConfig, out: &mut [u8]) -> f64 {
    let mut rng = SplitMix64::new(case.seed);
    let size = config.image_size;
    let difficulty = config.difficulty;

    // Tissue: base level, smooth blotches, a few oriented waves (fibres).
    let base = rng.uniform(0.35, 0.5);
    let blotches = ValueNoise::new(5, &mut rng);
    let blotch_amp = rng.uniform(0.03, 0.06);
    let waves: Vec<(f64, f64, f64, f64)> = (0..3)
        .map(|_| {
            let freq = rng.uniform(1.5, 6.0) * TAU;
            let angle = rng.uniform(0.0, PI);
            (
                freq * angle.cos(),
                freq * angle.sin(),
                rng.uniform(0.0, TAU),
                rng.uniform(0.008, 0.025),
            )
        })
        .collect();

    // The lesion: shape, size, look.
    let abnormal = case.in_image;
    let prototype = (case.label as usize).saturating_sub(1) % 4;
    let stage = (case.label as usize).saturating_sub(1) / 4;
    let (cx, cy) = (rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7));
    let radius = if abnormal {
        rng.uniform(6.0, 10.5)
    } else {
        rng.uniform(5.0, 9.0)
    } / 64.0;
    let ratio = if abnormal {
        rng.uniform(0.6, 0.95)
    } else {
        rng.uniform(0.8, 1.0)
    };
    let theta = rng.uniform(0.0, PI);
    let irregularity = if abnormal {
        0.24 - 0.12 * difficulty
    } else {
        0.03
    };
    // Lobes k = 3, 4, ..., 7 of the border: sin(k phi + phase) with these phases' (sin, cos).
    let lobe_phases: Vec<(f64, f64)> = (3..=7).map(|_| rng.uniform(0.0, TAU).sin_cos()).collect();
    let lobe_amp: Vec<f64> = lobe_phases
        .iter()
        .map(|_| rng.uniform(0.3, 1.0) * irregularity / 2.0)
        .collect();
    let contrast = if abnormal {
        (0.10 + (0.20 - 0.10 * difficulty) * (1.0 + 0.5 * stage as f64) + 0.03 * rng.normal())
            .max(0.05)
    } else {
        (0.10 + 0.025 * rng.normal()).max(0.02)
    };
    let heterogeneity = if abnormal {
        0.6 - 0.3 * difficulty
    } else {
        0.08
    };
    let speckle = ValueNoise::new((size / 3).max(4), &mut rng);
    let edge = (if abnormal { 0.6 } else { 1.2 }) / 64.0;
    let noise_sd = 0.02 + 0.04 * difficulty;

    // Per slice, the lesion's scale (1 in 2D; drawn only for volumes, so that 2D images stay
    // what they always were).
    let depth = config.depth.max(1);
    let scales: Vec<f64> = if depth == 1 {
        vec![1.0]
    } else {
        let zc = rng.uniform(0.35, 0.65);
        let half = (radius * rng.uniform(1.0, 1.6)).max(1.5 / depth as f64);
        (0..depth)
            .map(|z| {
                let t = ((z as f64 + 0.5) / depth as f64 - zc) / half;
                (1.0 - t * t).max(0.0).sqrt()
            })
            .collect()
    };
    let full_radius = radius;

    let (cos_t, sin_t) = (theta.cos(), theta.sin());
    let inv = 1.0 / size as f64;
    // The trigonometry is separated so that no pixel calls sin/cos (it was most of the
    // rendering time): a wave's sin(fx u + fy v + phase) comes from the sines and cosines of
    // its column and row parts, and a lobe's sin(k phi + p) from powers of e^(i phi), whose
    // cosine and sine are the lesion-frame coordinates over the distance.
    let column_parts: Vec<(f64, f64)> = (0..size)
        .flat_map(|px| {
            let u = (px as f64 + 0.5) * inv;
            waves.iter().map(move |&(fx, ..)| (fx * u).sin_cos())
        })
        .collect();
    let mut spare_noise: Option<f64> = None;
    for (slice, &scale) in out.chunks_exact_mut(size * size).zip(&scales) {
        let radius = full_radius * scale;
        for (py, row) in slice.chunks_exact_mut(size).enumerate() {
            let v = (py as f64 + 0.5) * inv;
            let row_parts: Vec<(f64, f64)> = waves
                .iter()
                .map(|&(_, fy, phase, _)| (fy * v + phase).sin_cos())
                .collect();
            for (px, o) in row.iter_mut().enumerate() {
                let u = (px as f64 + 0.5) * inv;
                let mut value = base + blotch_amp * blotches.at(u, v);
                let columns = &column_parts[px * waves.len()..(px + 1) * waves.len()];
                for ((&(_, _, _, amp), &(su, cu)), &(sv, cv)) in
                    waves.iter().zip(columns).zip(&row_parts)
                {
                    value += amp * (su * cv + cu * sv);
                }
                // Elliptical distance from the lesion centre, in units of the radius.
                let (dx, dy) = (u - cx, v - cy);
                let (a, b) = (dx * cos_t + dy * sin_t, (-dx * sin_t + dy * cos_t) / ratio);
                let dist = (a * a + b * b).sqrt();
                if dist < radius * 2.0 {
                    // e^(i phi), phi the angle of (a, b); the lobes' k run from 3 upwards.
                    let (c1, s1) = if dist > 0.0 {
                        (a / dist, b / dist)
                    } else {
                        (1.0, 0.0)
                    };
                    let (c2, s2) = (c1 * c1 - s1 * s1, 2.0 * c1 * s1);
                    let (mut ck, mut sk) = (c2 * c1 - s2 * s1, s2 * c1 + c2 * s1);
                    let mut wobble = 0.0;
                    for (&(sp, cp), amp) in lobe_phases.iter().zip(&lobe_amp) {
                        wobble += amp * (sk * cp + ck * sp);
                        (ck, sk) = (ck * c1 - sk * s1, sk * c1 + ck * s1);
                    }
                    let border = radius * (1.0 + wobble);
                    let inside = 1.0 / (1.0 + ((dist - border) / edge).exp());
                    let texture = 1.0 + heterogeneity * speckle.at(u, v);
                    value += inside
                        * match (abnormal, prototype) {
                            (false, _) | (true, 0) => contrast * texture,
                            // Rim-enhancing: a bright ring around a darker core.
                            (true, 1) => {
                                let rim =
                                    (-((dist - 0.75 * border) / (0.25 * border)).powi(2)).exp();
                                contrast * (0.3 + 1.2 * rim) * texture
                            }
                            // Hypodense: darker than the tissue around it.
                            (true, 2) => -contrast * texture,
                            // Calcified: faint body with bright specks.
                            _ => contrast * (0.4 + 2.0 * (speckle.at(u, v) - 0.8).max(0.0)),
                        };
                }
                let noise = spare_noise.take().unwrap_or_else(|| {
                    let (first, second) = rng.normal_pair();
                    spare_noise = Some(second);
                    first
                });
                value += noise_sd * noise;
                *o = (value.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    // Mean of the major and minor axes, in pixels of a 64-pixel image.
    full_radius * 64.0 * (1.0 + ratio)
}

/// Names of the distractor columns, in order, before the generic `noise_<j>` ones.
const DISTRACTORS: [&str; 7] = [
    "bmi",
    "heart_rate",
    "systolic_bp",
    "glucose",
    "cholesterol",
    "sodium",
    "temperature",
];

/// The table's column names for `config`.
pub(crate) fn column_names(config: &SyntheticConfig) -> Vec<String> {
    let mut names = vec!["age".to_string(), "lesion_diameter_mm".to_string()];
    names.extend((1..config.classes).map(|k| format!("marker_{k}")));
    let mut j = 0;
    while names.len() < config.tabular_features {
        names.push(match DISTRACTORS.get(j) {
            Some(name) => (*name).to_string(),
            None => format!("noise_{}", j - DISTRACTORS.len() + 1),
        });
        j += 1;
    }
    names
}

/// The raw (unstandardised) table row of a case, in [`column_names`] order.
pub(crate) fn render_row(case: &Case, config: &SyntheticConfig, diameter_px: f64) -> Vec<f64> {
    let mut rng = SplitMix64::new(case.seed ^ 0x7AB1_E000);
    let difficulty = config.difficulty;
    let mut values = Vec::with_capacity(config.tabular_features);
    let age_shift = if case.in_table {
        12.0 - 6.0 * difficulty
    } else {
        0.0
    };
    let age = (55.0 + 12.0 * rng.normal() + age_shift).clamp(18.0, 95.0);
    values.push(age.round());
    values.push((diameter_px * 0.8 + 1.2 * rng.normal()).max(1.0));
    for k in 1..config.classes {
        let shift = if case.in_table && case.label as usize == k {
            3.2 - 1.6 * difficulty
        } else {
            0.0
        };
        values.push((2.0 + 0.35 * (rng.normal() + shift)).exp());
    }
    let mut j = 0;
    while values.len() < config.tabular_features {
        let z = rng.normal();
        values.push(match j {
            0 => 26.0 + 4.0 * z,                // bmi
            1 => 75.0 + 10.0 * z,               // heart_rate
            2 => 100.0 + 0.45 * age + 12.0 * z, // systolic_bp rises with age
            3 => 95.0 + 15.0 * z,               // glucose
            4 => 195.0 + 35.0 * z,              // cholesterol
            5 => 140.0 + 3.0 * z,               // sodium
            6 => 36.8 + 0.4 * z,                // temperature
            _ => z,
        });
        j += 1;
    }
    values
}
