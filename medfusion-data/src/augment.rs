//! On-the-fly augmentation and normalisation of images, applied while a batch is filled.
//!
//! Each sample's random choices come from its own stream, derived from the loader seed,
//! the epoch and the sample's index, so a batch is the same whatever the number of
//! workers and whichever worker built it, and a resumed run sees the same augmentations.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::DataError;
use crate::rng::SplitMix64;

/// Random image transformations for training (all off by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(extend("additionalProperties" = false))]
pub struct AugmentConfig {
    /// Probability of a left-right flip.
    #[serde(deserialize_with = "probability")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub horizontal_flip: f32,
    /// Probability of an up-down flip.
    #[serde(deserialize_with = "probability")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub vertical_flip: f32,
    /// Largest random rotation in degrees, either way (bilinear, edges repeated).
    #[schemars(range(min = 0.0, max = 180.0))]
    pub rotation_degrees: f32,
    /// Largest brightness shift, as a fraction of the intensity range.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub brightness: f32,
    /// Largest relative contrast change around mid-grey (0.2 means a factor in 0.8..1.2).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub contrast: f32,
    /// Probability of reversing the slice order of a volume (flips and rotations act on every
    /// slice alike, so a volume is flipped along all three axes and rotated about its depth
    /// axis).
    #[serde(deserialize_with = "probability")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub depth_flip: f32,
}

impl medfusion_graph::NodeConfig for AugmentConfig {}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            horizontal_flip: 0.0,
            vertical_flip: 0.0,
            rotation_degrees: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            depth_flip: 0.0,
        }
    }
}

fn probability<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum P {
        Flag(bool),
        Value(f32),
    }
    Ok(match P::deserialize(d)? {
        P::Flag(true) => 0.5,
        P::Flag(false) => 0.0,
        P::Value(v) => v,
    })
}

impl AugmentConfig {
    /// Whether any transformation is switched on.
    pub fn is_identity(&self) -> bool {
        self.horizontal_flip <= 0.0
            && self.vertical_flip <= 0.0
            && self.rotation_degrees <= 0.0
            && self.brightness <= 0.0
            && self.contrast <= 0.0
            && self.depth_flip <= 0.0
    }

    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), DataError> {
        medfusion_graph::check_config(self).map_err(DataError::from_issues)
    }

    /// Draws the transformation of one sample.
    pub(crate) fn draw(&self, rng: &mut SplitMix64) -> SampleAugment {
        // Always draw every value, so switching one option does not shift the others.
        let h = rng.next_f64();
        let v = rng.next_f64();
        let angle = rng.uniform(-1.0, 1.0) * f64::from(self.rotation_degrees);
        let brightness = rng.uniform(-1.0, 1.0) * f64::from(self.brightness);
        let contrast = 1.0 + rng.uniform(-1.0, 1.0) * f64::from(self.contrast);
        let rotation = (angle.abs() > 1e-3).then(|| {
            let rad = angle.to_radians();
            (rad.cos() as f32, rad.sin() as f32)
        });
        // Drawn last and only when on, so 2D augmentation draws what it always drew.
        let dflip = self.depth_flip > 0.0 && rng.next_f64() < f64::from(self.depth_flip);
        SampleAugment {
            hflip: h < f64::from(self.horizontal_flip),
            vflip: v < f64::from(self.vertical_flip),
            rotation,
            brightness: brightness as f32,
            contrast: contrast as f32,
            dflip,
        }
    }
}

/// Per-channel mean and standard deviation subtracted from / divided into intensities in
/// `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Normalization {
    /// One value for every channel, or one per channel.
    pub mean: Vec<f32>,
    /// One value for every channel, or one per channel.
    pub std: Vec<f32>,
}

impl Default for Normalization {
    /// Mean 0.5 and std 0.5: intensities end up in `[-1, 1]`.
    fn default() -> Self {
        Normalization {
            mean: vec![0.5],
            std: vec![0.5],
        }
    }
}

impl Normalization {
    /// ImageNet's statistics (for backbones pretrained on it).
    pub fn imagenet() -> Normalization {
        Normalization {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    /// The mean and std of channel `c` of `channels`, checking the lengths.
    pub(crate) fn channel(&self, c: usize, channels: usize) -> Result<(f32, f32), DataError> {
        let pick = |v: &[f32], name: &str| match v.len() {
            1 => Ok(v[0]),
            n if n == channels => Ok(v[c]),
            n => Err(DataError::config(
                format!("normalization.{name}"),
                format!("has {n} values; give 1 or one per channel ({channels})"),
            )),
        };
        let (mean, std) = (pick(&self.mean, "mean")?, pick(&self.std, "std")?);
        if !(std.is_finite() && std > 0.0 && mean.is_finite()) {
            return Err(DataError::config(
                "normalization.std",
                format!("must be finite and positive, got {std}"),
            ));
        }
        Ok((mean, std))
    }
}

/// The transformation drawn for one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SampleAugment {
    pub(crate) hflip: bool,
    pub(crate) vflip: bool,
    /// Cosine and sine of the rotation angle.
    pub(crate) rotation: Option<(f32, f32)>,
    pub(crate) brightness: f32,
    pub(crate) contrast: f32,
    /// Reverse the slices of a volume.
    pub(crate) dflip: bool,
}

impl SampleAugment {
    /// No change at all.
    pub(crate) const IDENTITY: SampleAugment = SampleAugment {
        hflip: false,
        vflip: false,
        rotation: None,
        brightness: 0.0,
        contrast: 1.0,
        dflip: false,
    };

    /// Maps a raw intensity (0..=255) through jitter, clamping and normalisation.
    #[inline]
    pub(crate) fn intensity(&self, raw: f32, mean: f32, inv_std: f32) -> f32 {
        let x =
            ((raw * (1.0 / 255.0) - 0.5) * self.contrast + 0.5 + self.brightness).clamp(0.0, 1.0);
        (x - mean) * inv_std
    }

    /// The 256-entry table of [`SampleAugment::intensity`] for one channel.
    pub(crate) fn table(&self, mean: f32, std: f32) -> [f32; 256] {
        let inv = 1.0 / std;
        std::array::from_fn(|v| self.intensity(v as f32, mean, inv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_table_is_plain_normalisation() {
        let t = SampleAugment::IDENTITY.table(0.5, 0.5);
        assert!((t[0] + 1.0).abs() < 1e-6);
        assert!((t[255] - 1.0).abs() < 1e-6);
        assert!((t[51] - (51.0 / 255.0 - 0.5) / 0.5).abs() < 1e-6);
    }

    #[test]
    fn jitter_clamps_to_the_intensity_range() {
        let aug = SampleAugment {
            brightness: 0.3,
            ..SampleAugment::IDENTITY
        };
        let t = aug.table(0.0, 1.0);
        assert!((t[0] - 0.3).abs() < 1e-6);
        assert!((t[255] - 1.0).abs() < 1e-6, "clamped at 1");
        let c = SampleAugment {
            contrast: 2.0,
            ..SampleAugment::IDENTITY
        };
        let t = c.table(0.0, 1.0);
        assert!(t[0].abs() < f32::EPSILON);
        assert!((t[128] - ((128.0 / 255.0 - 0.5) * 2.0 + 0.5)).abs() < 1e-6);
    }

    #[test]
    fn draws_are_deterministic_and_respect_probabilities() {
        let cfg = AugmentConfig {
            horizontal_flip: 1.0,
            vertical_flip: 0.0,
            rotation_degrees: 10.0,
            brightness: 0.1,
            contrast: 0.1,
            depth_flip: 0.0,
        };
        let a = cfg.draw(&mut SplitMix64::new(9));
        let b = cfg.draw(&mut SplitMix64::new(9));
        assert_eq!(a, b);
        assert!(a.hflip && !a.vflip);
        let (cos, sin) = a.rotation.expect("rotation drawn");
        assert!(sin.abs() <= 10f32.to_radians().sin() + 1e-6 && cos > 0.98);
        assert!(a.brightness.abs() <= 0.1 && (a.contrast - 1.0).abs() <= 0.1);
    }

    #[test]
    fn flip_accepts_booleans_and_bad_values_are_named() {
        let cfg: AugmentConfig =
            serde_json::from_str(r#"{"horizontal_flip": true, "vertical_flip": 0.25}"#).unwrap();
        assert!((cfg.horizontal_flip - 0.5).abs() < 1e-6);
        assert!((cfg.vertical_flip - 0.25).abs() < 1e-6);
        let bad = AugmentConfig {
            rotation_degrees: 400.0,
            ..AugmentConfig::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("`rotation_degrees`"), "{err}");
    }

    #[test]
    fn normalization_lengths_are_checked() {
        let n = Normalization::imagenet();
        assert_eq!(n.channel(1, 3).unwrap(), (0.456, 0.224));
        let err = n.channel(0, 1).unwrap_err().to_string();
        assert!(err.contains("normalization.mean"), "{err}");
        assert_eq!(Normalization::default().channel(2, 3).unwrap(), (0.5, 0.5));
    }
}
