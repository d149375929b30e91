//! Model names (`resnet18`, `fusion_cnn`, ...) and the model settings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use super::resnet::ResNetDepth;
use crate::error::{Error, Result};

/// An image architecture (alone or as the backbone of a fusion model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageArch {
    /// The benchmark CNN (four conv/BN/ReLU blocks).
    Cnn,
    /// ResNet-18.
    ResNet18,
    /// ResNet-34.
    ResNet34,
    /// ResNet-50.
    ResNet50,
    /// ResNet-101.
    ResNet101,
    /// A small ViT for the CPU (patch 8, 6 layers, 192 wide).
    VitSmall,
    /// ViT-Base/16 (12 layers, 768 wide).
    VitBase,
}

impl ImageArch {
    const ALL: [(ImageArch, &'static str); 7] = [
        (ImageArch::Cnn, "cnn"),
        (ImageArch::ResNet18, "resnet18"),
        (ImageArch::ResNet34, "resnet34"),
        (ImageArch::ResNet50, "resnet50"),
        (ImageArch::ResNet101, "resnet101"),
        (ImageArch::VitSmall, "vit_small"),
        (ImageArch::VitBase, "vit_base"),
    ];

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(a, _)| *a == self)
            .map_or("?", |(_, n)| n)
    }

    pub(crate) fn resnet_depth(self) -> Option<ResNetDepth> {
        match self {
            ImageArch::ResNet18 => Some(ResNetDepth::R18),
            ImageArch::ResNet34 => Some(ResNetDepth::R34),
            ImageArch::ResNet50 => Some(ResNetDepth::R50),
            ImageArch::ResNet101 => Some(ResNetDepth::R101),
            _ => None,
        }
    }
}

/// Which model: image-only, tabular-only or fusion. Written as its name: `cnn`, `resnet18`,
/// `resnet34`, `resnet50`, `resnet101`, `vit_small`, `vit_base`, `mlp`, or `fusion_` followed
/// by an image name (`fusion_resnet18`, `fusion_cnn`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ModelKind {
    /// An image classifier.
    Image(ImageArch),
    /// The tabular MLP.
    Mlp,
    /// Image backbone + tabular encoder + fusion head.
    Fusion(ImageArch),
}

impl ModelKind {
    /// Whether the model reads images.
    pub fn uses_images(self) -> bool {
        !matches!(self, ModelKind::Mlp)
    }

    /// Whether the model reads tabular features.
    pub fn uses_tabular(self) -> bool {
        !matches!(self, ModelKind::Image(_))
    }

    /// Every model name, for messages and the node catalog.
    pub fn names() -> Vec<String> {
        let mut names: Vec<String> = ImageArch::ALL
            .iter()
            .map(|(_, n)| (*n).to_owned())
            .collect();
        names.push("mlp".to_owned());
        names.extend(ImageArch::ALL.iter().map(|(_, n)| format!("fusion_{n}")));
        names
    }
}

impl FromStr for ModelKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let name = s.trim().to_ascii_lowercase();
        let image = |n: &str| {
            ImageArch::ALL
                .iter()
                .find(|(_, m)| *m == n)
                .map(|(a, _)| *a)
        };
        if name == "mlp" {
            return Ok(ModelKind::Mlp);
        }
        if let Some(arch) = image(&name) {
            return Ok(ModelKind::Image(arch));
        }
        if let Some(arch) = name.strip_prefix("fusion_").and_then(image) {
            return Ok(ModelKind::Fusion(arch));
        }
        Err(Error::config(
            "model",
            format!(
                "unknown model `{s}` (known: {})",
                ModelKind::names().join(", ")
            ),
        ))
    }
}

impl TryFrom<String> for ModelKind {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<ModelKind> for String {
    fn from(kind: ModelKind) -> String {
        kind.to_string()
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelKind::Image(a) => f.write_str(a.name()),
            ModelKind::Mlp => f.write_str("mlp"),
            ModelKind::Fusion(a) => write!(f, "fusion_{}", a.name()),
        }
    }
}

/// How a fusion model combines its two feature vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FusionMode {
    /// Concatenate, then a hidden layer.
    Concat,
    /// A learned per-feature gate between the two projected modalities.
    #[default]
    Gated,
}

/// The model settings. In a workflow file either just the name (`model: fusion_resnet18`) or
/// a map (`model: { arch: fusion_cnn, fusion: concat, tabular_hidden: [64, 32] }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Which model.
    pub arch: ModelKind,
    /// Fusion head (fusion models only).
    #[serde(default)]
    pub fusion: FusionMode,
    /// Width of the fusion head's hidden features.
    #[serde(default = "default_fusion_width")]
    pub fusion_width: usize,
    /// Hidden widths of the tabular MLP (also the tabular encoder of fusion models).
    #[serde(default = "default_tabular_hidden")]
    pub tabular_hidden: Vec<usize>,
    /// Batch norm after each hidden linear layer of the MLP.
    #[serde(default = "default_true")]
    pub tabular_batch_norm: bool,
    /// ViT patch side (default 8 for `vit_small`, 16 for `vit_base`).
    #[serde(default)]
    pub patch_size: Option<usize>,
}

fn default_fusion_width() -> usize {
    64
}

fn default_tabular_hidden() -> Vec<usize> {
    vec![64, 32]
}

fn default_true() -> bool {
    true
}

impl ModelConfig {
    /// The defaults for `arch`.
    pub fn new(arch: ModelKind) -> ModelConfig {
        ModelConfig {
            arch,
            fusion: FusionMode::default(),
            fusion_width: default_fusion_width(),
            tabular_hidden: default_tabular_hidden(),
            tabular_batch_norm: true,
            patch_size: None,
        }
    }

    /// Checks the settings that do not depend on the data.
    pub fn validate(&self) -> Result<()> {
        if self.fusion_width == 0 {
            return Err(Error::config("model.fusion_width", "must be at least 1"));
        }
        if self.arch.uses_tabular() && self.tabular_hidden.contains(&0) {
            return Err(Error::config(
                "model.tabular_hidden",
                "widths must be at least 1",
            ));
        }
        if self.patch_size == Some(0) {
            return Err(Error::config("model.patch_size", "must be at least 1"));
        }
        Ok(())
    }
}

impl From<ModelKind> for ModelConfig {
    fn from(arch: ModelKind) -> ModelConfig {
        ModelConfig::new(arch)
    }
}

impl FromStr for ModelConfig {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        s.parse::<ModelKind>().map(ModelConfig::new)
    }
}

/// Accepts a bare name or a map.
pub(crate) fn deserialize_model<'de, D: Deserializer<'de>>(d: D) -> Result<ModelConfig, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Name(String),
        Full(serde_json::Value),
    }
    match Repr::deserialize(d)? {
        Repr::Name(name) => name.parse().map_err(serde::de::Error::custom),
        Repr::Full(value) => serde_json::from_value(value).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in ModelKind::names() {
            let kind: ModelKind = name.parse().unwrap();
            assert_eq!(kind.to_string(), name);
        }
        assert_eq!(
            "fusion_resnet18".parse::<ModelKind>().unwrap(),
            ModelKind::Fusion(ImageArch::ResNet18)
        );
        let err = "resnet19".parse::<ModelKind>().unwrap_err().to_string();
        assert!(err.contains("unknown model `resnet19`"), "{err}");
        assert!(err.contains("fusion_vit_small"), "{err}");
    }

    #[test]
    fn parts_used_by_each_kind() {
        assert!(ModelKind::Mlp.uses_tabular() && !ModelKind::Mlp.uses_images());
        let img = ModelKind::Image(ImageArch::Cnn);
        assert!(img.uses_images() && !img.uses_tabular());
        let fusion = ModelKind::Fusion(ImageArch::Cnn);
        assert!(fusion.uses_images() && fusion.uses_tabular());
    }

    #[test]
    fn validate_rejects_zero_widths() {
        let mut config = ModelConfig::new(ModelKind::Mlp);
        config.tabular_hidden = vec![8, 0];
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("model.tabular_hidden"), "{err}");
    }
}
