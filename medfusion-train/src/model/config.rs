//! Model names (`resnet18`, `fusion_cnn`, ...) and the model settings.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// Swin-T (torchvision's `swin_t`).
    SwinTiny,
    /// Swin-B (torchvision's `swin_b`).
    SwinBase,
    /// The benchmark CNN in 3D, for volumes.
    Cnn3d,
    /// ResNet-18 in 3D, for volumes.
    ResNet18_3d,
}

impl ImageArch {
    const ALL: [(ImageArch, &'static str); 11] = [
        (ImageArch::Cnn, "cnn"),
        (ImageArch::ResNet18, "resnet18"),
        (ImageArch::ResNet34, "resnet34"),
        (ImageArch::ResNet50, "resnet50"),
        (ImageArch::ResNet101, "resnet101"),
        (ImageArch::VitSmall, "vit_small"),
        (ImageArch::VitBase, "vit_base"),
        (ImageArch::SwinTiny, "swin_tiny"),
        (ImageArch::SwinBase, "swin_base"),
        (ImageArch::Cnn3d, "cnn3d"),
        (ImageArch::ResNet18_3d, "resnet18_3d"),
    ];

    /// Whether the architecture reads volumes (`[n, c, d, h, w]`).
    pub fn is_volume(self) -> bool {
        matches!(self, ImageArch::Cnn3d | ImageArch::ResNet18_3d)
    }

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

/// Read from a config: the error is the reason alone, as the config check names the key.
impl TryFrom<String> for ModelKind {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse().map_err(|e| match e {
            Error::Config { reason, .. } => reason,
            other => other.to_string(),
        })
    }
}

impl From<ModelKind> for String {
    fn from(kind: ModelKind) -> String {
        kind.to_string()
    }
}

impl JsonSchema for ModelKind {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ModelKind".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "enum": ModelKind::names() })
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FusionMode {
    /// Concatenate, then a hidden layer.
    Concat,
    /// A learned per-feature gate between the two projected modalities.
    #[default]
    Gated,
}

/// The model settings: in a workflow file, the `model` key of `train.classifier` and the
/// keys beside it (`model: fusion_cnn`, `fusion: concat`, `tabular_hidden: [64, 32]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ModelConfig {
    /// The architecture.
    #[serde(rename = "model", alias = "arch")]
    pub arch: ModelKind,
    /// How fusion models join the two parts.
    pub fusion: FusionMode,
    /// Hidden width of the fusion head.
    #[schemars(range(min = 1, max = 65_536))]
    pub fusion_width: usize,
    /// Hidden widths of the tabular MLP (also the tabular encoder of fusion models), e.g.
    /// `[64, 32]`.
    #[schemars(inner(range(min = 1, max = 65_536)))]
    pub tabular_hidden: Vec<usize>,
    /// Batch norm after each hidden linear layer of the MLP.
    pub tabular_batch_norm: bool,
    /// ViT patch side (default 8 for `vit_small`, 16 for `vit_base`).
    #[schemars(range(min = 1, max = 1024))]
    pub patch_size: Option<usize>,
}

impl Default for ModelConfig {
    fn default() -> ModelConfig {
        ModelConfig::new(ModelKind::Fusion(ImageArch::ResNet18))
    }
}

impl ModelConfig {
    /// The defaults for `arch`.
    pub fn new(arch: ModelKind) -> ModelConfig {
        ModelConfig {
            arch,
            fusion: FusionMode::default(),
            fusion_width: 64,
            tabular_hidden: vec![64, 32],
            tabular_batch_norm: true,
            patch_size: None,
        }
    }

    /// Checks the settings that do not depend on the data: each key's range, as a workflow's
    /// `train.classifier` config would be checked.
    pub fn validate(&self) -> Result<()> {
        medfusion_graph::check_config(self).map_err(Error::from_issues)
    }
}

impl medfusion_graph::NodeConfig for ModelConfig {}

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
        assert!(err.contains("`tabular_hidden`"), "{err}");
    }
}
