//! The models: ResNets, ViTs, the benchmark CNN, a tabular MLP and fusion models, all behind
//! one [`Model`] that takes a [`Batch`].

mod cnn;
mod config;
mod fusion;
mod layers;
mod mlp;
mod resnet;
mod swin;
mod vit;
mod volume;

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
pub use swin::{Swin, SwinSize};
pub use vit::{Vit, VitSize};
pub use volume::{Cnn3d, ResNet3d};

/// The image part of a model's input: 2D images or volumes.
#[derive(Debug, Clone)]
pub enum Images {
    /// `[batch, channels, height, width]`.
    Planar(Tensor<4>),
    /// `[batch, channels, depth, height, width]`.
    Volumes(Tensor<5>),
}

impl Images {
    /// The batch size.
    pub fn len(&self) -> usize {
        match self {
            Images::Planar(t) => t.dims()[0],
            Images::Volumes(t) => t.dims()[0],
        }
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same values in `dtype`.
    pub fn cast(self, dtype: burn::tensor::FloatDType) -> Images {
        match self {
            Images::Planar(t) => Images::Planar(t.cast(dtype)),
            Images::Volumes(t) => Images::Volumes(t.cast(dtype)),
        }
    }
}

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
    /// A Swin Transformer.
    Swin(Swin),
    /// The 3D CNN.
    Cnn3d(Cnn3d),
    /// ResNet-18 in 3D.
    ResNet3d(ResNet3d),
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
            if arch.is_volume() != shape.is_volume() {
                return Err(bad(if arch.is_volume() {
                    format!(
                        "reads volumes, the data has 2D images ({shape}); use a dataset with \
                         `depth` above 1, or a 2D model"
                    )
                } else {
                    format!(
                        "reads 2D images, the data has volumes ({shape}); use `cnn3d` or \
                         `resnet18_3d`"
                    )
                }));
            }
            match arch {
                ImageArch::Cnn3d => {
                    return Ok(ImageBackbone::Cnn3d(Cnn3d::new(
                        shape.channels,
                        classes,
                        device,
                    )));
                }
                ImageArch::ResNet18_3d => {
                    return Ok(ImageBackbone::ResNet3d(ResNet3d::new(
                        shape.channels,
                        classes,
                        device,
                    )));
                }
                ImageArch::SwinTiny | ImageArch::SwinBase => {
                    let size = if arch == ImageArch::SwinTiny {
                        SwinSize::TINY
                    } else {
                        SwinSize::BASE
                    };
                    return Ok(ImageBackbone::Swin(Swin::new(
                        size,
                        shape.channels,
                        classes,
                        device,
                    )));
                }
                _ => {}
            }
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
                ImageBackbone::Swin(m) => Model::Swin(m),
                ImageBackbone::Cnn3d(m) => Model::Cnn3d(m),
                ImageBackbone::ResNet3d(m) => Model::ResNet3d(m),
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
        ImageBackbone::Swin(m) => m.feature_width(),
        ImageBackbone::Cnn3d(_) => Cnn3d::FEATURES,
        ImageBackbone::ResNet3d(_) => ResNet3d::FEATURES,
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
            Model::Swin(_) => "swin",
            Model::Cnn3d(_) => "cnn3d",
            Model::ResNet3d(_) => "resnet3d",
        }
    }

    /// Trainable parameters (running statistics left out).
    pub fn num_parameters(&self) -> usize {
        count_parameters(self)
    }

    /// Logits `[batch, classes]` for `batch`, after checking it has the parts the model needs
    /// with the shapes it was built for.
    pub fn forward(&self, batch: &Batch) -> Result<Tensor<2>> {
        let images = match (&batch.volumes, &batch.images) {
            (Some(v), _) => Some(Images::Volumes(v.clone())),
            (None, Some(i)) => Some(Images::Planar(i.clone())),
            (None, None) => None,
        };
        self.forward_inputs(images, batch.tabular.clone())
    }

    /// Logits from 2D images and tabular features (the parts the model does not use are
    /// ignored).
    pub fn forward_parts(
        &self,
        images: Option<Tensor<4>>,
        tabular: Option<Tensor<2>>,
    ) -> Result<Tensor<2>> {
        self.forward_inputs(images.map(Images::Planar), tabular)
    }

    /// Logits from images or volumes and tabular features (the parts the model does not use
    /// are ignored).
    pub fn forward_inputs(
        &self,
        images: Option<Images>,
        tabular: Option<Tensor<2>>,
    ) -> Result<Tensor<2>> {
        let wrong = || self.bad("the batch mixes 2D images and volumes".into());
        let planar =
            |images: Option<Images>, channels: usize, vit: Option<&Vit>| -> Result<Tensor<4>> {
                match self.images(images, channels, false, vit)? {
                    Images::Planar(x) => Ok(x),
                    Images::Volumes(_) => Err(wrong()),
                }
            };
        let volumes = |images: Option<Images>, channels: usize| -> Result<Tensor<5>> {
            match self.images(images, channels, true, None)? {
                Images::Volumes(x) => Ok(x),
                Images::Planar(_) => Err(wrong()),
            }
        };
        match self {
            Model::Cnn(m) => Ok(m.forward(planar(images, m.in_channels(), None)?)),
            Model::ResNet(m) => Ok(m.forward(planar(images, m.in_channels(), None)?)),
            Model::Vit(m) => Ok(m.forward(planar(images, m.in_channels(), Some(m))?)),
            Model::Swin(m) => Ok(m.forward(planar(images, m.in_channels(), None)?)),
            Model::Cnn3d(m) => Ok(m.forward(volumes(images, m.in_channels())?)),
            Model::ResNet3d(m) => Ok(m.forward(volumes(images, m.in_channels())?)),
            Model::Mlp(m) => Ok(m.forward(self.tabular(tabular, m.in_features())?)),
            Model::Fusion(m) => {
                let backbone = m.image();
                let vit = match backbone {
                    ImageBackbone::Vit(b) => Some(b),
                    _ => None,
                };
                let images =
                    self.images(images, backbone.in_channels(), backbone.is_volume(), vit)?;
                let tabular = self.tabular(tabular, m.tabular().in_features())?;
                if images.len() != tabular.dims()[0] {
                    return Err(self.bad(format!(
                        "{} images but {} tabular rows in the batch",
                        images.len(),
                        tabular.dims()[0]
                    )));
                }
                m.forward(images, tabular)
                    .ok_or_else(|| self.bad("the batch mixes 2D images and volumes".into()))
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
        images: Option<Images>,
        channels: usize,
        volume: bool,
        vit: Option<&Vit>,
    ) -> Result<Images> {
        let images = images.ok_or_else(|| self.bad("the batch has no images".into()))?;
        let c = match (&images, volume) {
            (Images::Planar(x), false) => x.dims()[1],
            (Images::Volumes(x), true) => x.dims()[1],
            (Images::Planar(_), true) => {
                return Err(self.bad(
                    "reads volumes, the batch has 2D images (use a dataset with `depth` above 1)"
                        .into(),
                ));
            }
            (Images::Volumes(_), false) => {
                return Err(self.bad(
                    "reads 2D images, the batch has volumes (use `cnn3d` or `resnet18_3d`)".into(),
                ));
            }
        };
        if c != channels {
            return Err(self.bad(format!(
                "built for {channels}-channel images, the batch has {c} channels"
            )));
        }
        if let (Some(vit), Images::Planar(x)) = (vit, &images) {
            let [_, _, h, w] = x.dims();
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
