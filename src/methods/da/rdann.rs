//! R-DANN (Purushotham et al., ICLR 2017's recurrent DANN baseline), as the CoDATS paper runs it:
//! CoDATS's multi-source domain-adversarial loss — per-domain gradient-reversed domain head, the
//! same λ schedule and the second Adam on the domain head — on a GRU feature extractor
//! (`--backbone gru`, 100 units, the last hidden state as the features) instead of the FCN.
//! Only the network differs from `codats`; the loss is [`super::codats::Codats`]'s.

use candle_core::Result;
use candle_nn::VarBuilder;

use super::codats::Codats;
use crate::data::batch::BatchDivision;
use crate::methods::{DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Task};
use crate::nn::series::SeriesBackbone;

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    codats_on(kind, setup, vb, (SeriesBackbone::Gru, "the GRU"))
}

/// CoDATS's loss on the one feature extractor `fixed` (called `net` in the error) a recurrent
/// baseline is defined with (R-DANN's GRU, VRADA's VRNN); another is refused with the way to get
/// it.
pub(super) fn codats_on(
    kind: MethodKind,
    setup: &MethodSetup,
    vb: VarBuilder,
    (fixed, net): (SeriesBackbone, &str),
) -> Result<Box<dyn Method>> {
    if setup.backbone != fixed {
        candle_core::bail!(
            "method {kind} is DANN on {net} (--backbone {fixed}); for another feature extractor use --method codats --backbone {}",
            setup.backbone
        );
    }
    Ok(Box::new(Codats::new(kind, setup, vb)?))
}

/// R-DANN's registry entry.
pub const RDANN: MethodInfo = MethodInfo {
    name: "rdann",
    aliases: &[],
    label: "R-DANN",
    help: "R-DANN: multi-source domain-adversarial training on a GRU feature extractor",
    color: (160, 160, 40),
    task: Task::Adaptation,
    needs: DataNeeds::ADAPTATION,
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[],
    survey: None,
    backbone: Some(SeriesBackbone::Gru),
    build,
};

#[cfg(test)]
pub(crate) mod tests {
    use crate::methods::{build, trainable_vars, Batch, MethodKind, MethodSetup, Slice};
    use crate::methods::{StepContext, REGISTRY};
    use crate::nn::series::SeriesBackbone;
    use candle_core::{Device, Tensor};
    use candle_nn::VarMap;
    use rand::SeedableRng;

    /// A two-source, three-class, two-channel problem's setup on `backbone` (the recurrent
    /// methods' tests).
    pub(crate) fn setup(backbone: SeriesBackbone) -> MethodSetup {
        MethodSetup {
            channels: 2,
            classes: 3,
            n_sources: 2,
            given_proportions: None,
            target_train_proportions: None,
            ws_noise: None,
            ws: false,
            seed: 0,
            kernels: crate::nn::Kernels::Candle,
            gct: false,
            backbone,
            params: Default::default(),
            image: None,
        }
    }

    /// Two windows `[2, 2, 5]` from `seed` (a smooth signal).
    pub(crate) fn windows(seed: f32) -> Tensor {
        let v: Vec<f32> = (0..2 * 2 * 5)
            .map(|i| (i as f32 * 0.7 + seed).sin())
            .collect();
        Tensor::from_vec(v, (2, 2, 5), &Device::Cpu).unwrap()
    }

    /// Two labelled sources (windows of seeds 0 and 1, labels 0 and 2) and the target's
    /// windows of seed 2.
    pub(crate) fn two_source_batch() -> Batch {
        let y = Tensor::new(&[0u32, 2], &Device::Cpu).unwrap();
        let slice = |x: Tensor, y: Option<Tensor>| Slice {
            x,
            y,
            idx: vec![0, 1],
            views: Vec::new(),
        };
        Batch {
            sources: vec![
                slice(windows(0.), Some(y.clone())),
                slice(windows(1.), Some(y)),
            ],
            target: Some(slice(windows(2.), None)),
        }
    }

    fn rdann() -> MethodKind {
        MethodKind::parse("rdann").expect("registered")
    }

    /// Its loss is CoDATS's on the GRU: cross-entropy of the sources' task logits plus the
    /// per-domain cross-entropy of the domain head, recomputed here from the same network.
    #[test]
    fn the_loss_is_task_plus_per_domain_adversarial_cross_entropy_on_the_gru() {
        let vm = VarMap::new();
        let mut m = build(rdann(), &setup(SeriesBackbone::Gru), &vm).unwrap();
        crate::nn::glorot_init(&vm, 3).unwrap();
        assert!(trainable_vars(&vm, "fe.")
            .iter()
            .any(|(n, _)| n == "fe.hh.weight"));
        let batch = two_source_batch();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut ctx = StepContext {
            step: 0,
            total_steps: 10,
            rng: &mut rng,
        };
        let out = m.step(&batch, &mut ctx).unwrap();
        let s = |k: &str| out.scalars.iter().find(|(n, _)| *n == k).unwrap().1;
        // At step 0 the GRL factor is 0 (the schedule starts there), and the total is the sum.
        assert_eq!(s("lambda"), 0.0);
        let total = out.loss.to_scalar::<f32>().unwrap();
        assert!((total - s("task_loss") - s("domain_loss")).abs() < 1e-6);
        // The task loss by hand: softmax cross-entropy of the predicted logits (batch
        // statistics do not exist in a GRU, so eval-mode logits are the training ones).
        let logits = m
            .predict(&Tensor::cat(&[&windows(0.), &windows(1.)], 0).unwrap())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let labels = [0usize, 2, 0, 2];
        let ce: f32 = logits
            .iter()
            .zip(labels)
            .map(|(l, y)| {
                let lse = l.iter().map(|v| v.exp()).sum::<f32>().ln();
                lse - l[y]
            })
            .sum::<f32>()
            / 4.0;
        assert!(
            (ce - s("task_loss")).abs() < 1e-5,
            "{ce} vs {}",
            s("task_loss")
        );
        // With uniform initial domain logits the domain loss would be ln 3; it must be finite.
        assert!(s("domain_loss").is_finite());
        assert_eq!(
            REGISTRY
                .iter()
                .find(|m| m.name == "rdann")
                .unwrap()
                .backbone,
            Some(SeriesBackbone::Gru)
        );
    }

    #[test]
    fn another_backbone_is_refused_with_the_way_to_get_it() {
        let vm = VarMap::new();
        let err = build(rdann(), &setup(SeriesBackbone::AdatimeCnn), &vm)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err.lines().next().unwrap(),
            "method rdann is DANN on the GRU (--backbone gru); for another feature extractor use --method codats --backbone adatime-cnn"
        );
    }
}
