//! `rotation` (Gidaris, Singh & Komodakis 2018, "Unsupervised Representation Learning by
//! Predicting Image Rotations", RotNet): the pretext task of telling which of 0°, 90°, 180° and
//! 270° an image was rotated by.
//!
//! Each step rotates every unlabelled image (its weak view) by all four angles, as the
//! authors' code does (the four copies of an image in one batch), and trains the backbone and a
//! 4-way rotation head by cross-entropy against the angle. No class label reaches the backbone.
//!
//! The representation is evaluated the way the paper does, by probes on the frozen backbone
//! (`codats ssl probe RUN`: a linear classifier and a kNN vote, [`crate::eval::probe`]). So that
//! the trainer's accuracy, model selection and result.json mean something during training, a
//! linear classifier is also trained online on *detached* features of the labelled pool (as
//! solo-learn's online linear evaluation): its gradient stops at the features, so it never
//! shapes the backbone, and it is what [`Method::predict`] answers with.
//!
//! Scalars: `rot_loss`, `rot_acc` (the batch's rotation accuracy), `probe_loss` (the online
//! head's cross-entropy).

use candle_core::{DType, Result, Tensor, D};
use candle_nn::{Init, Linear, Module, VarBuilder};

use super::{image_setup, labelled, unlabelled, view, ImageNet};
use crate::data::augment::Strength;
use crate::data::batch::BatchDivision;
use crate::losses::cross_entropy;
use crate::methods::survey::{Setting, Survey, Technique};
use crate::methods::{
    Batch, DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, ParamGroup, StepContext,
    StepOutput, TargetUse, Task, Views,
};
use crate::nn::Mode;

/// The rotations the network tells apart, in label order (degrees, counter-clockwise).
pub const ANGLES: [u32; 4] = [0, 90, 180, 270];

/// The registry entry.
pub const ROTATION: MethodInfo = MethodInfo {
    name: "rotation",
    aliases: &["rotnet"],
    label: "Rotation",
    help: "images, self-supervised: predict 0/90/180/270° rotations (Gidaris et al. 2018); \
           evaluate with `codats ssl probe`",
    color: (230, 159, 0),
    task: Task::Images,
    needs: DataNeeds {
        // The labelled pool only trains the online (detached) evaluation head.
        sources: true,
        target: TargetUse::Unlabelled,
        views: Views {
            labelled: &[Strength::Weak],
            unlabelled: &[Strength::Weak],
        },
    },
    batch_division: BatchDivision::None,
    uses_proportions: false,
    params: &[],
    survey: Some(Survey {
        setting: Setting::SelfSupervised,
        techniques: &[Technique::CrossEntropy, Technique::Pretext],
    }),
    backbone: None,
    build,
};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    let image = image_setup(setup, kind.as_str())?;
    if image.shape.height != image.shape.width {
        return Err(candle_core::Error::Msg(format!(
            "rotation needs square images (a 90° turn keeps their shape); these are {}×{} \
             (height × width): resize them with --resize W,W",
            image.shape.height, image.shape.width
        )));
    }
    let net = ImageNet::new(image, ANGLES.len(), setup.kernels, vb.pp("model"))?;
    let f = net.feature_dim();
    let vb = vb.pp("online");
    let w = vb.get_with_hints((setup.classes, f), "weight", Init::Const(0.0))?;
    let b = vb.get_with_hints(setup.classes, "bias", Init::Const(0.0))?;
    Ok(Box::new(Rotation {
        kind,
        net,
        online: Linear::new(w, Some(b)),
    }))
}

struct Rotation {
    kind: MethodKind,
    /// Backbone and the 4-way rotation head (`model.*`).
    net: ImageNet,
    /// The online linear classifier on detached features (`online.*`).
    online: Linear,
}

/// `x` reversed along dimension `dim`.
fn flip(x: &Tensor, dim: usize) -> Result<Tensor> {
    let n = x.dim(dim)?;
    let idx: Vec<u32> = (0..n as u32).rev().collect();
    x.contiguous()?
        .index_select(&Tensor::new(idx.as_slice(), x.device())?, dim)
}

/// Images `[B, C, H, W]` (square) turned counter-clockwise by `angle` (0, 90, 180 or 270).
pub fn rotate(x: &Tensor, angle: u32) -> Result<Tensor> {
    match angle {
        0 => Ok(x.clone()),
        // Counter-clockwise: out[i][j] = in[j][W−1−i], the transpose read bottom-up.
        90 => flip(&x.transpose(2, 3)?, 2),
        180 => flip(&flip(x, 2)?, 3),
        270 => flip(&x.transpose(2, 3)?, 3),
        other => Err(candle_core::Error::Msg(format!(
            "rotation by {other}°: only 0, 90, 180 and 270"
        ))),
    }
}

/// Every image of `x` `[B, …]` in all four rotations, `[4B, …]` grouped by angle, and their
/// labels (the angle's index in [`ANGLES`]).
pub fn rotated_batch(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let b = x.dim(0)?;
    let parts = ANGLES
        .iter()
        .map(|&a| rotate(x, a))
        .collect::<Result<Vec<_>>>()?;
    let labels: Vec<u32> = (0..ANGLES.len() as u32)
        .flat_map(|r| std::iter::repeat_n(r, b))
        .collect();
    Ok((
        Tensor::cat(&parts, 0)?.contiguous()?,
        Tensor::from_vec(labels, ANGLES.len() * b, x.device())?,
    ))
}

/// The fraction of rows whose argmax is their label.
fn batch_accuracy(logits: &Tensor, labels: &Tensor) -> Result<f32> {
    logits
        .argmax(D::Minus1)?
        .eq(labels)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()
}

impl Method for Rotation {
    fn kind(&self) -> MethodKind {
        self.kind
    }

    fn scalars(&self) -> Vec<&'static str> {
        vec!["rot_loss", "rot_acc", "probe_loss"]
    }

    fn step(&mut self, batch: &Batch, _ctx: &mut StepContext) -> Result<StepOutput> {
        let (x, angles) = rotated_batch(view(unlabelled(batch)?, 0)?)?;
        let logits = self.net.classify(&self.net.features(&x, Mode::Train)?)?;
        let rot_loss = cross_entropy(&logits, &angles)?;
        let rot_acc = batch_accuracy(&logits, &angles)?;
        // The online evaluation head: eval-mode features (as predict sees them), detached.
        let (lb, y) = labelled(batch)?;
        let features = self.net.features(view(lb, 0)?, Mode::Eval)?.detach();
        let probe_loss = cross_entropy(&self.online.forward(&features)?, y)?;
        Ok(StepOutput {
            loss: (&rot_loss + &probe_loss)?,
            scalars: vec![
                ("rot_loss", rot_loss.to_scalar::<f32>()?),
                ("rot_acc", rot_acc),
                ("probe_loss", probe_loss.to_scalar::<f32>()?),
            ],
            target_logits: None,
        })
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.online.forward(&self.net.features(x, Mode::Eval)?)
    }

    fn features(&self, x: &Tensor) -> Result<Option<Tensor>> {
        self.net.features(x, Mode::Eval).map(Some)
    }

    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup::new("model", "")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A 2 × 2 image, [[1, 2], [3, 4]].
    fn square() -> Tensor {
        Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &Device::Cpu).unwrap()
    }

    fn rows(x: &Tensor) -> Vec<Vec<f32>> {
        x.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap()
    }

    #[test]
    fn rotations_turn_the_image_counter_clockwise() {
        let x = square();
        assert_eq!(rows(&rotate(&x, 0).unwrap()), [[1., 2.], [3., 4.]]);
        // 90° counter-clockwise: the right column becomes the top row.
        assert_eq!(rows(&rotate(&x, 90).unwrap()), [[2., 4.], [1., 3.]]);
        assert_eq!(rows(&rotate(&x, 180).unwrap()), [[4., 3.], [2., 1.]]);
        assert_eq!(rows(&rotate(&x, 270).unwrap()), [[3., 1.], [4., 2.]]);
        // Four quarter turns are the identity; 90° twice is 180°.
        let mut y = x.clone();
        for _ in 0..4 {
            y = rotate(&y, 90).unwrap();
        }
        assert_eq!(rows(&y), rows(&x));
        assert_eq!(
            rows(&rotate(&rotate(&x, 90).unwrap(), 90).unwrap()),
            rows(&rotate(&x, 180).unwrap())
        );
        assert!(rotate(&x, 45).unwrap_err().to_string().contains("45°"));
    }

    #[test]
    fn a_batch_holds_every_image_at_every_angle_with_its_label() {
        // Two 3 × 3 images.
        let v: Vec<f32> = (0..18).map(|i| i as f32).collect();
        let x = Tensor::from_vec(v, (2, 1, 3, 3), &Device::Cpu).unwrap();
        let (r, y) = rotated_batch(&x).unwrap();
        assert_eq!(r.dims(), [8, 1, 3, 3]);
        assert_eq!(y.to_vec1::<u32>().unwrap(), [0, 0, 1, 1, 2, 2, 3, 3]);
        for (k, &a) in ANGLES.iter().enumerate() {
            let want = rotate(&x, a).unwrap();
            let got = r.narrow(0, 2 * k, 2).unwrap();
            let d = (got - want).unwrap().abs().unwrap().sum_all().unwrap();
            assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0, "angle {a}");
        }
    }

    /// The online head's gradient stops at the features: changing only the labelled images'
    /// labels changes the online head's gradient and leaves every backbone and rotation-head
    /// gradient exactly as it was; both parts get non-zero gradients.
    #[test]
    fn the_online_head_never_shapes_the_backbone() {
        use crate::data::augment::ImageShape;
        use crate::methods::{ImageSetup, MethodSetup, Slice, StepContext};
        use crate::nn::backbones::ImageBackbone;
        use rand::SeedableRng;
        let kind = MethodKind::parse("rotation").unwrap();
        let setup = MethodSetup {
            channels: 1,
            classes: 3,
            n_sources: 1,
            given_proportions: None,
            target_train_proportions: None,
            ws_noise: None,
            ws: false,
            seed: 0,
            kernels: crate::nn::Kernels::Candle,
            gct: false,
            backbone: Default::default(),
            params: kind.resolve_params(&Default::default()).unwrap(),
            image: Some(ImageSetup {
                shape: ImageShape {
                    channels: 1,
                    height: 8,
                    width: 8,
                },
                backbone: ImageBackbone::SmallCnn,
                gct: false,
                bn_momentum: 0.1,
                pool_size: 100,
                teacher: None,
            }),
        };
        let varmap = candle_nn::VarMap::new();
        let mut method = crate::methods::build(kind, &setup, &varmap).unwrap();
        crate::nn::glorot_init(&varmap, 0).unwrap();
        crate::nn::kaiming_normal_init(&varmap, 1).unwrap();
        let images = |n: usize, seed: f32| {
            let v: Vec<f32> = (0..n * 64)
                .map(|i| ((i as f32) * 0.13 + seed).sin())
                .collect();
            Tensor::from_vec(v, (n, 1, 8, 8), &Device::Cpu).unwrap()
        };
        let mut grads = |labels: [u32; 4]| {
            let lb = images(4, 0.5);
            let ub = images(6, 1.5);
            let batch = Batch {
                sources: vec![Slice {
                    x: lb.clone(),
                    y: Some(Tensor::new(&labels, &Device::Cpu).unwrap()),
                    views: vec![lb],
                    idx: (0..4).collect(),
                }],
                target: Some(Slice {
                    x: ub.clone(),
                    y: None,
                    views: vec![ub],
                    idx: (0..6).collect(),
                }),
            };
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let mut ctx = StepContext {
                step: 0,
                total_steps: 10,
                rng: &mut rng,
            };
            let out = method.step(&batch, &mut ctx).unwrap();
            let g = out.loss.backward().unwrap();
            let mut by_name: Vec<(String, Vec<f32>)> = varmap
                .data()
                .lock()
                .unwrap()
                .iter()
                .filter_map(|(n, v)| {
                    g.get(v.as_tensor())
                        .map(|t| (n.clone(), t.flatten_all().unwrap().to_vec1().unwrap()))
                })
                .collect();
            by_name.sort_by(|a, b| a.0.cmp(&b.0));
            by_name
        };
        let a = grads([0, 1, 2, 0]);
        let b = grads([2, 0, 1, 1]);
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>();
        assert!(a
            .iter()
            .any(|(n, g)| n.starts_with("model.backbone.") && norm(g) > 0.0));
        assert!(a
            .iter()
            .any(|(n, g)| n.starts_with("model.head.") && norm(g) > 0.0));
        let mut online = 0;
        for ((na, ga), (nb, gb)) in a.iter().zip(&b) {
            assert_eq!(na, nb);
            if na.starts_with("online.") {
                assert!(norm(ga) > 0.0, "{na}");
                assert_ne!(ga, gb, "{na}: the labels reach the online head");
                online += 1;
            } else {
                assert_eq!(ga, gb, "{na}: the online head's loss reached it");
            }
        }
        assert_eq!(online, 2, "online weight and bias");
    }

    /// The rotation loss's gradient with respect to the input, by finite differences: a
    /// rotation is a permutation, so the gradient reaching the image is the loss gradient of
    /// the rotated copy turned back.
    #[test]
    fn the_rotation_loss_gradient_matches_finite_differences() {
        let x0: Vec<f32> = (0..2 * 9).map(|i| ((i as f32) * 0.71).sin()).collect();
        // A fixed linear "network": 9 pixels → 4 rotation logits.
        let w: Vec<f32> = (0..36).map(|i| ((i as f32) * 0.37).cos()).collect();
        let w = Tensor::from_vec(w, (4, 9), &Device::Cpu).unwrap();
        let loss = |x: &Tensor| -> Tensor {
            let (r, y) = rotated_batch(x).unwrap();
            let logits = r.flatten_from(1).unwrap().matmul(&w.t().unwrap()).unwrap();
            cross_entropy(&logits, &y).unwrap()
        };
        let var = candle_core::Var::from_vec(x0.clone(), (2, 1, 3, 3), &Device::Cpu).unwrap();
        let grads = loss(var.as_tensor()).backward().unwrap();
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let h = 1e-2f64;
        for i in 0..x0.len() {
            let at = |d: f64| {
                let mut v: Vec<f64> = x0.iter().map(|&a| a as f64).collect();
                v[i] += d;
                let t = Tensor::from_vec(v, (2, 1, 3, 3), &Device::Cpu).unwrap();
                let t = t.to_dtype(DType::F32).unwrap();
                loss(&t).to_scalar::<f32>().unwrap() as f64
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            assert!(
                (fd - g[i] as f64).abs() < 2e-3,
                "pixel {i}: finite difference {fd} vs backward {}",
                g[i]
            );
        }
    }
}
