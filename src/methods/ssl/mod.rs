//! Image classification with few labels (`codats ssl train`): one file per method, on the shared
//! [`ImageNet`] (a backbone and a linear head) with an EMA teacher ([`StudentTeacher`]) that
//! USB evaluates for every algorithm.
//!
//! The trainer hands an image method the labelled pool as the one source slice (labels and the
//! views the method declared) and the unlabelled pool as the target slice (views only; its labels
//! never reach a method).

pub mod fixmatch;
pub mod supervised;

use candle_core::{Result, Tensor};
use candle_nn::{Init, Linear, Module, VarBuilder, VarMap};

use super::ema::Ema;
use super::{Batch, ImageSetup, MethodSetup, Param, ParamGroup, Slice};
use crate::nn::backbones::{ImageBackbone, SmallCnn, Wrn28_2};
use crate::nn::{Backbone, Mode};

/// USB's `ema_m`: the decay of the evaluated EMA weights (0: evaluate the trained weights).
pub const EMA_M: Param = Param {
    name: "ema_m",
    default: 0.999,
    min: 0.0,
    max: 0.99999,
    help: "decay of the EMA weights that are evaluated (USB ema_m; 0 = the trained weights)",
};

/// An image classifier: backbone features → one linear layer (`head`).
#[derive(Debug)]
pub struct ImageNet {
    backbone: Box<dyn Backbone>,
    head: Linear,
}

/// The image network settings, or the error that the method needs an image problem.
pub fn image_setup(setup: &MethodSetup, method: &str) -> Result<ImageSetup> {
    setup.image.ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "{method} is an image method: train it with `codats ssl train`"
        ))
    })
}

impl ImageNet {
    /// The network of `image` for `classes` classes under `vb` (`backbone.*`, `head.*`).
    pub fn new(image: ImageSetup, classes: usize, vb: VarBuilder) -> Result<Self> {
        let c = image.shape.channels;
        let backbone: Box<dyn Backbone> = match image.backbone {
            ImageBackbone::SmallCnn => Box::new(SmallCnn::new(c, image.gct, vb.pp("backbone"))?),
            ImageBackbone::Wrn28_2 => Box::new(Wrn28_2::new(c, image.gct, vb.pp("backbone"))?),
        };
        let f = backbone.feature_dim();
        let vb = vb.pp("head");
        let w = vb.get_with_hints((classes, f), "weight", Init::Const(0.0))?;
        let b = vb.get_with_hints(classes, "bias", Init::Const(0.0))?;
        Ok(Self {
            backbone,
            head: Linear::new(w, Some(b)),
        })
    }

    /// Logits of images `[B, C, H, W]` in `mode`.
    pub fn logits(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.head.forward(&self.backbone.forward(x, mode)?)
    }
}

/// The trained network (`model.*`) and its exponential moving average (`ema.*`, decay
/// `ema_m`), which is what evaluation and model selection use when `ema_m` > 0.
#[derive(Debug)]
pub struct StudentTeacher {
    /// The trained network.
    pub student: ImageNet,
    teacher: ImageNet,
    ema: Ema,
    decay: f64,
}

impl StudentTeacher {
    /// Both networks under `vb`, for the problem in `setup`; `decay` from the `ema_m` parameter.
    pub fn new(setup: &MethodSetup, method: &str, vb: VarBuilder) -> Result<Self> {
        let image = image_setup(setup, method)?;
        let decay = setup.param(EMA_M.name)?;
        Ok(Self {
            student: ImageNet::new(image, setup.classes, vb.pp("model"))?,
            teacher: ImageNet::new(image, setup.classes, vb.pp("ema"))?,
            ema: Ema::new(decay, "model.", "ema."),
            decay,
        })
    }

    /// Eval-mode logits of the evaluated weights.
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        if self.decay > 0.0 {
            self.teacher.logits(x, Mode::Eval)
        } else {
            self.student.logits(x, Mode::Eval)
        }
    }

    /// `raw` or `ema`, as result.json records it.
    pub fn evaluated_weights(&self) -> &'static str {
        if self.decay > 0.0 {
            "ema"
        } else {
            "raw"
        }
    }

    /// Only the student is trained.
    pub fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup::new("model", "model.")]
    }

    /// The teacher starts as a copy of the initialised student.
    pub fn after_init(&self, vars: &VarMap) -> Result<()> {
        self.ema.copy(vars)
    }

    /// One EMA update after an optimiser step.
    pub fn after_step(&self, vars: &VarMap) -> Result<()> {
        self.ema.update(vars)
    }
}

/// The labelled slice of an image batch (the one source) and its labels.
pub fn labelled(batch: &Batch) -> Result<(&Slice, &Tensor)> {
    let s = batch
        .sources
        .first()
        .ok_or_else(|| candle_core::Error::Msg("image batch without a labelled slice".into()))?;
    let y =
        s.y.as_ref()
            .ok_or_else(|| candle_core::Error::Msg("labelled slice without labels".into()))?;
    Ok((s, y))
}

/// The unlabelled slice of an image batch.
pub fn unlabelled(batch: &Batch) -> Result<&Slice> {
    batch
        .target
        .as_ref()
        .ok_or_else(|| candle_core::Error::Msg("image batch without an unlabelled slice".into()))
}

/// View `i` of a slice (as the method declared them).
pub fn view(slice: &Slice, i: usize) -> Result<&Tensor> {
    slice
        .views
        .get(i)
        .ok_or_else(|| candle_core::Error::Msg(format!("slice has no view {i}")))
}
