//! Image classification with few labels (`codats ssl train`): one file per method, on the shared
//! [`ImageNet`] (a backbone and a linear head) with an EMA teacher ([`StudentTeacher`]) that
//! USB evaluates for every algorithm.
//!
//! The trainer hands an image method the labelled pool as the one source slice (labels and the
//! views the method declared) and the unlabelled pool as the target slice (views only; its labels
//! never reach a method).

pub mod deepcluster;
pub mod entmin;
pub mod fixmatch;
pub mod mean_teacher;
pub mod noisy_student;
pub mod pi_model;
pub mod pseudo_label;
pub mod rotation;
pub mod supervised;
pub mod uic;
pub mod vat;

use candle_core::{Result, Tensor};
use candle_nn::{Init, Linear, Module, VarBuilder, VarMap};

use super::ema::Ema;
use super::{
    Batch, ImageSetup, Method, MethodKind, MethodSetup, Param, ParamGroup, Slice, StepContext,
    StepOutput,
};
use crate::nn::backbones::{ImageBackbone, SmallCnn, Wrn28_2};
use crate::nn::{Backbone, Mode};

/// USB's `ema_m`: the decay of the evaluated EMA weights (0: evaluate the trained weights),
/// warmed up as Mean Teacher's code does ([`Ema::warmed_decay`]).
pub const EMA_M: Param = Param {
    name: "ema_m",
    default: 0.999,
    min: 0.0,
    max: 0.99999,
    help: "decay of the EMA weights that are evaluated (USB ema_m; 0 = the trained weights)",
};

/// USB's `unsup_warmup`: the unlabelled weight ramps up linearly over this fraction of training.
pub const UNSUP_WARMUP: Param = Param {
    name: "unsup_warmup",
    default: 0.4,
    min: 0.0,
    max: 1.0,
    help:
        "fraction of training over which the unlabelled weight ramps up linearly (USB unsup_warmup)",
};

/// Entropy minimisation's weight, combinable with every image method (0 = off).
pub const LAMBDA_ENT_OFF: Param = Param {
    name: "lambda_ent",
    default: 0.0,
    min: 0.0,
    max: 100.0,
    help: "weight of entropy minimisation on the unlabelled predictions (0 = off)",
};

/// A cross-entropy on the labelled slice's first view (training mode, running statistics
/// updated): every image method's supervised term.
pub fn supervised_loss(net: &ImageNet, batch: &Batch) -> Result<Tensor> {
    let (lb, y) = labelled(batch)?;
    let logits = net.logits(view(lb, 0)?, Mode::Train)?;
    crate::losses::cross_entropy(&logits, y)
}

/// The loss most image methods share: `sup + weight · unsup (+ λ_ent · entropy(logits))`,
/// logging `sup_loss`, `unsup_loss`, the method's `extra` scalars, then `ramp` and `entropy`.
pub fn ramped_output(
    sup: &Tensor,
    unsup: &Tensor,
    weight: f64,
    ramp: f64,
    extra: &[(&'static str, f32)],
    (logits, lambda_ent): (&Tensor, f64),
) -> Result<StepOutput> {
    let mut scalars = vec![
        ("sup_loss", sup.to_scalar::<f32>()?),
        ("unsup_loss", unsup.to_scalar::<f32>()?),
    ];
    scalars.extend_from_slice(extra);
    scalars.push(("ramp", ramp as f32));
    let loss = (sup + (unsup * (weight * ramp))?)?;
    let loss = with_entropy(loss, logits, lambda_ent, &mut scalars)?;
    Ok(StepOutput {
        loss,
        scalars,
        target_logits: None,
    })
}

/// `loss + λ_ent · entropy(logits)` (and the entropy's value) when λ_ent > 0, else `loss`.
pub fn with_entropy(
    loss: Tensor,
    logits: &Tensor,
    lambda_ent: f64,
    scalars: &mut Vec<(&'static str, f32)>,
) -> Result<Tensor> {
    if lambda_ent <= 0.0 {
        return Ok(loss);
    }
    let ent = crate::losses::ssl::entropy(logits)?;
    scalars.push(("entropy", ent.to_scalar::<f32>()?));
    loss + (ent * lambda_ent)?
}

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
    pub fn new(
        image: ImageSetup,
        classes: usize,
        kernels: crate::nn::Kernels,
        vb: VarBuilder,
    ) -> Result<Self> {
        let c = image.shape.channels;
        let backbone: Box<dyn Backbone> = match image.backbone {
            ImageBackbone::SmallCnn => Box::new(
                SmallCnn::new(c, image.gct, kernels, vb.pp("backbone"))?
                    .with_bn_momentum(image.bn_momentum),
            ),
            ImageBackbone::Wrn28_2 => Box::new(
                Wrn28_2::new(c, image.gct, vb.pp("backbone"))?.with_bn_momentum(image.bn_momentum),
            ),
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

    /// Logits of images in a training `mode` with the student's noise of Noisy Student:
    /// stochastic depth at last-block `survival` ([`Backbone::forward_stochastic_depth`]) and
    /// `dropout` on the features in front of the head, both drawn from `rng`.
    pub fn noisy_logits(
        &self,
        x: &Tensor,
        mode: Mode,
        (dropout, survival): (crate::nn::dropout::Dropout, f64),
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> Result<Tensor> {
        let f = self
            .backbone
            .forward_stochastic_depth(x, mode, survival, rng)?;
        self.head.forward(&dropout.forward(&f, Some(rng))?)
    }

    /// The backbone's features of images `[B, C, H, W]` in `mode` (what the probes read).
    pub fn features(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.backbone.forward(x, mode)
    }

    /// The head's logits of features from [`ImageNet::features`].
    pub fn classify(&self, features: &Tensor) -> Result<Tensor> {
        self.head.forward(features)
    }

    /// Width of the backbone's features.
    pub fn feature_dim(&self) -> usize {
        self.backbone.feature_dim()
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
            student: ImageNet::new(image, setup.classes, setup.kernels, vb.pp("model"))?,
            teacher: ImageNet::new(image, setup.classes, setup.kernels, vb.pp("ema"))?,
            ema: Ema::new(decay, "model.", "ema."),
            decay,
        })
    }

    /// Logits of the EMA teacher in `mode` (Mean Teacher's targets; no gradient reaches it).
    pub fn teacher_logits(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        Ok(self.teacher.logits(x, mode)?.detach())
    }

    /// The evaluated network: the EMA teacher when `ema_m` > 0, else the student.
    fn evaluated(&self) -> &ImageNet {
        if self.decay > 0.0 {
            &self.teacher
        } else {
            &self.student
        }
    }

    /// Eval-mode logits of the evaluated weights.
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.evaluated().logits(x, Mode::Eval)
    }

    /// Eval-mode backbone features of the evaluated weights.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        self.evaluated().features(x, Mode::Eval)
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

    /// One EMA update after the optimiser step of update `step` (0-based), with Mean
    /// Teacher's warm-up of the decay ([`Ema::warmed_decay`]).
    pub fn after_step(&self, vars: &VarMap, step: usize) -> Result<()> {
        self.ema.update_with(vars, self.ema.warmed_decay(step + 1))
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

/// The maths of one image method: its loss for a batch, given the student/teacher networks.
/// [`ImageMethod`] turns it into a [`Method`] (EMA teacher, evaluation, optimiser group).
pub trait Objective: Send {
    /// metrics.csv columns of the scalars [`Objective::loss`] returns.
    fn scalars(&self) -> Vec<&'static str>;
    /// The loss of one batch (training mode).
    fn loss(
        &mut self,
        nets: &StudentTeacher,
        batch: &Batch,
        ctx: &mut StepContext,
    ) -> Result<StepOutput>;
}

/// An image method: an [`Objective`] on a [`StudentTeacher`].
pub struct ImageMethod<O> {
    kind: MethodKind,
    nets: StudentTeacher,
    objective: O,
}

/// Builds the image method `kind` with `objective` on networks under `vb`.
pub fn build_with<O: Objective + 'static>(
    kind: MethodKind,
    setup: &MethodSetup,
    vb: VarBuilder,
    objective: O,
) -> Result<Box<dyn Method>> {
    Ok(Box::new(ImageMethod {
        kind,
        nets: StudentTeacher::new(setup, kind.as_str(), vb)?,
        objective,
    }))
}

impl<O: Objective> Method for ImageMethod<O> {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        self.objective.scalars()
    }

    fn step(&mut self, batch: &Batch, ctx: &mut StepContext) -> Result<StepOutput> {
        self.objective.loss(&self.nets, batch, ctx)
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.nets.predict(x)
    }

    fn evaluated_weights(&self) -> &'static str {
        self.nets.evaluated_weights()
    }

    fn features(&self, x: &Tensor) -> Result<Option<Tensor>> {
        self.nets.features(x).map(Some)
    }

    fn param_groups(&self) -> Vec<ParamGroup> {
        self.nets.param_groups()
    }

    fn after_init(&mut self, vars: &VarMap) -> Result<()> {
        self.nets.after_init(vars)
    }

    fn after_step(&mut self, vars: &VarMap, ctx: &mut StepContext) -> Result<()> {
        self.nets.after_step(vars, ctx.step)
    }
}

/// Scalar names, with `entropy` when entropy minimisation is on.
pub fn scalars_with_entropy(base: &[&'static str], lambda_ent: f64) -> Vec<&'static str> {
    let mut v = base.to_vec();
    if lambda_ent > 0.0 {
        v.push("entropy");
    }
    v
}
