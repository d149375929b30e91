//! The models: ResNets, ViTs, the benchmark CNN, a tabular MLP and fusion models, all behind
//! one [`Model`] that takes a [`Batch`].

mod cnn;
mod config;
mod fusion;
mod layers;
mod mlp;
mod resnet;
mod vit;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::batch::Batch;
use crate::data::DatasetInfo;
use crate::error::{Error, Result};

pub use cnn::Cnn;
pub use config::{FusionMode, ImageArch, ModelConfig, ModelKind};
pub use fusion::{Fusion, FusionHead, ImageBackbone};
pub use layers::count_parameters;
pub use mlp::Mlp;
pub use resnet::ResNet;
pub use vit::{Vit, VitSize};

/// Any of the models. Every variant takes the same [`Batch`] and uses the parts it needs.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // built once; boxing would change the module paths
pub enum Model {
    /// The benchmark CNN.
    Cnn(Cnn),
    /// ResNet-18/34/50/101.
    ResNet(ResNet),
    /// A vision transformer.
    Vit(Vit),
    /// The tabular MLP.
    Mlp(Mlp),
    /// Image + tabular fusion.
    Fusion(Fusion),
}

impl ModelConfig {
    /// Builds the model for `info` on `device`, its weights drawn from `seed` alone (two
    /// builds with the same seed are equal, whatever else runs).
    pub fn build(&self, info: &DatasetInfo, device: &Device, seed: u64) -> Result<Model> {
        Ok(layers::init_weights(self.build_uninit(info, device)?, seed))
    }

    /// Builds the model with Burn's lazy initialisation (weights are created on first use):
    /// cheap, for counting parameters or loading saved weights over it.
    pub fn build_uninit(&self, info: &DatasetInfo, device: &Device) -> Result<Model> {
        self.validate()?;
        let name = self.arch.to_string();
        let bad = |reason: String| Error::ModelInput {
            model: name.clone(),
            reason,
        };
        if info.classes < 2 {
            return Err(bad(format!(
                "needs at least 2 classes, the data has {}",
                info.classes
            )));
        }
        let image = if self.arch.uses_images() {
            Some(
                info.image
                    .ok_or_else(|| bad("needs images, the data has none".into()))?,
            )
        } else {
            None
        };
        let tabular = if self.arch.uses_tabular() {
            match info.tabular_features {
                Some(n) if n > 0 => Some(n),
                _ => return Err(bad("needs tabular features, the data has none".into())),
            }
        } else {
            None
        };
        let classes = info.classes;
        let backbone = |arch: ImageArch, classes: Option<usize>| -> Result<ImageBackbone> {
            let shape = image.expect("image models have an image shape");
            if let Some(depth) = arch.resnet_depth() {
                return Ok(ImageBackbone::ResNet(ResNet::new(
                    depth,
                    shape.channels,
                    classes,
                    device,
                )));
            }
            let size = match arch {
                ImageArch::Cnn => {
                    return Ok(ImageBackbone::Cnn(Cnn::new(
                        shape.channels,
                        classes,
                        device,
                    )));
                }
                ImageArch::VitSmall => VitSize::SMALL,
                _ => VitSize::BASE,
            };
            let size = VitSize {
                patch: self.patch_size.unwrap_or(size.patch),
                ..size
            };
            if shape.height % size.patch != 0 || shape.width % size.patch != 0 {
                return Err(bad(format!(
                    "image size {}x{} is not a multiple of the patch size {} (set \
                     `model.patch_size` or resize the images)",
                    shape.height, shape.width, size.patch
                )));
            }
            Ok(ImageBackbone::Vit(Vit::new(
                size,
                shape.channels,
                [shape.height, shape.width],
                classes,
                device,
            )))
        };
        let mlp = |classes: Option<usize>| {
            Mlp::new(
                tabular.expect("tabular models have features"),
                &self.tabular_hidden,
                self.tabular_batch_norm,
                classes,
                device,
            )
        };
        Ok(match self.arch {
            ModelKind::Mlp => Model::Mlp(mlp(Some(classes))),
            ModelKind::Image(arch) => match backbone(arch, Some(classes))? {
                ImageBackbone::Cnn(m) => Model::Cnn(m),
                ImageBackbone::ResNet(m) => Model::ResNet(m),
                ImageBackbone::Vit(m) => Model::Vit(m),
            },
            ModelKind::Fusion(arch) => {
                let image = backbone(arch, None)?;
                let image_width = image_features(arch, &image);
                let tabular = mlp(None);
                let tabular_width = self
                    .tabular_hidden
                    .last()
                    .copied()
                    .unwrap_or(tabular.in_features());
                let head = match self.fusion {
                    FusionMode::Concat => FusionHead::concat(
                        image_width,
                        tabular_width,
                        self.fusion_width,
                        classes,
                        device,
                    ),
                    FusionMode::Gated => FusionHead::gated(
                        image_width,
                        tabular_width,
                        self.fusion_width,
                        classes,
                        device,
                    ),
                };
                Model::Fusion(Fusion::new(image, tabular, head))
            }
        })
    }
}

fn image_features(arch: ImageArch, backbone: &ImageBackbone) -> usize {
    match backbone {
        ImageBackbone::Cnn(_) => Cnn::FEATURES,
        ImageBackbone::ResNet(_) => arch
            .resnet_depth()
            .map_or(512, resnet::ResNetDepth::features),
        ImageBackbone::Vit(m) => m.feature_width(),
    }
}

impl Model {
    /// A short name of the variant for messages (`cnn`, `resnet`, `vit`, `mlp`, `fusion`).
    pub fn family(&self) -> &'static str {
        match self {
            Model::Cnn(_) => "cnn",
            Model::ResNet(_) => "resnet",
            Model::Vit(_) => "vit",
            Model::Mlp(_) => "mlp",
            Model::Fusion(_) => "fusion",
        }
    }

    /// Trainable parameters (running statistics left out).
    pub fn num_parameters(&self) -> usize {
        count_parameters(self)
    }

    /// Logits `[batch, classes]` for `batch`, after checking it has the parts the model needs
    /// with the shapes it was built for.
    pub fn forward(&self, batch: &Batch) -> Result<Tensor<2>> {
        self.forward_parts(batch.images.clone(), batch.tabular.clone())
    }

    /// Logits from the parts of a batch (the ones the model does not use are ignored).
    pub fn forward_parts(
        &self,
        images: Option<Tensor<4>>,
        tabular: Option<Tensor<2>>,
    ) -> Result<Tensor<2>> {
        match self {
            Model::Cnn(m) => Ok(m.forward(self.images(images, m.in_channels(), None)?)),
            Model::ResNet(m) => Ok(m.forward(self.images(images, m.in_channels(), None)?)),
            Model::Vit(m) => Ok(m.forward(self.images(images, m.in_channels(), Some(m))?)),
            Model::Mlp(m) => Ok(m.forward(self.tabular(tabular, m.in_features())?)),
            Model::Fusion(m) => {
                let (channels, vit) = match m.image() {
                    ImageBackbone::Cnn(b) => (b.in_channels(), None),
                    ImageBackbone::ResNet(b) => (b.in_channels(), None),
                    ImageBackbone::Vit(b) => (b.in_channels(), Some(b)),
                };
                let images = self.images(images, channels, vit)?;
                let tabular = self.tabular(tabular, m.tabular().in_features())?;
                if images.dims()[0] != tabular.dims()[0] {
                    return Err(self.bad(format!(
                        "{} images but {} tabular rows in the batch",
                        images.dims()[0],
                        tabular.dims()[0]
                    )));
                }
                Ok(m.forward(images, tabular))
            }
        }
    }

    fn bad(&self, reason: String) -> Error {
        Error::ModelInput {
            model: self.family().to_owned(),
            reason,
        }
    }

    fn images(
        &self,
        images: Option<Tensor<4>>,
        channels: usize,
        vit: Option<&Vit>,
    ) -> Result<Tensor<4>> {
        let images = images.ok_or_else(|| self.bad("the batch has no images".into()))?;
        let [_, c, h, w] = images.dims();
        if c != channels {
            return Err(self.bad(format!(
                "built for {channels}-channel images, the batch has {c} channels"
            )));
        }
        if let Some(vit) = vit {
            let p = vit.patch();
            if h % p != 0 || w % p != 0 || (h / p) * (w / p) + 1 != vit.tokens() {
                return Err(self.bad(format!(
                    "built for {} patches of {p}x{p}, the batch has {h}x{w} images",
                    vit.tokens() - 1
                )));
            }
        }
        Ok(images)
    }

    fn tabular(&self, tabular: Option<Tensor<2>>, features: usize) -> Result<Tensor<2>> {
        let tabular =
            tabular.ok_or_else(|| self.bad("the batch has no tabular features".into()))?;
        let f = tabular.dims()[1];
        if f != features {
            return Err(self.bad(format!(
                "built for {features} tabular features, the batch has {f}"
            )));
        }
        Ok(tabular)
    }
}

#[cfg(test)]
mod tests;
