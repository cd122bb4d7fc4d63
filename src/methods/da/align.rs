//! The shared body of feature-alignment methods (Deep CORAL, DDC-style MMD, …): cross-entropy on
//! the labelled sources plus a weighted distance between source and target features, with the
//! CoDATS FCN and task head and no domain head. A method supplies the distance and its weight.

use super::Joint;
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::losses::cross_entropy;
use crate::methods::{Batch, Method, MethodKind, MethodSetup, StepContext, StepOutput};
use crate::nn::CodatsModel;

/// A distance between source features `[n_s, d]` and target features `[n_t, d]` (a scalar).
pub type Distance = fn(&Tensor, &Tensor) -> Result<Tensor>;

/// Source cross-entropy + `weight` × `distance(source features, target features)`.
pub struct Aligned {
    kind: MethodKind,
    model: CodatsModel,
    distance: Distance,
    weight: f64,
    scalar: &'static str,
}

impl Aligned {
    /// Builds the method; `weight_param` names its weight in `setup.params`, `scalar` is the
    /// metrics.csv column of the distance.
    pub fn new(
        kind: MethodKind,
        setup: &MethodSetup,
        vb: VarBuilder,
        distance: Distance,
        weight_param: &str,
        scalar: &'static str,
    ) -> Result<Self> {
        let cfg = setup.model_config(None);
        Ok(Self {
            kind,
            model: CodatsModel::new(cfg, vb)?,
            distance,
            weight: setup.param(weight_param)?,
            scalar,
        })
    }
}

impl Method for Aligned {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        vec!["task_loss", self.scalar]
    }

    fn step(&mut self, batch: &Batch, ctx: &mut StepContext) -> Result<StepOutput> {
        // One forward pass over [sources, target], as CoDATS does (shared batch statistics).
        let Joint {
            features,
            ys,
            n_src,
            n_tgt,
            ..
        } = Joint::forward(&self.model, batch, self.kind, &mut *ctx.rng)?;
        let f_src = features.narrow(0, 0, n_src)?;
        let f_tgt = features.narrow(0, n_src, n_tgt)?;
        let task_loss = cross_entropy(&self.model.task_logits(&f_src)?, &ys)?;
        let distance = (self.distance)(&f_src, &f_tgt)?;
        let loss = (&task_loss + distance.affine(self.weight, 0.0)?)?;
        Ok(StepOutput {
            scalars: vec![
                ("task_loss", task_loss.to_scalar::<f32>()?),
                (self.scalar, distance.to_scalar::<f32>()?),
            ],
            loss,
            target_logits: Some(self.model.task_logits(&f_tgt)?),
        })
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.model.predict(x)
    }

    fn features(&self, x: &Tensor) -> Result<Option<Tensor>> {
        self.model.features(x, false, None).map(Some)
    }
}
