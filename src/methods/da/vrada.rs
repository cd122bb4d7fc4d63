//! VRADA (Purushotham et al., ICLR 2017, "Variational Recurrent Adversarial Deep Domain
//! Adaptation"), as the CoDATS paper runs it: CoDATS's multi-source domain-adversarial loss —
//! per-domain gradient-reversed domain head, the same λ schedule and the second Adam on the
//! domain head — on a variational RNN feature extractor (`--backbone vrnn`,
//! [`crate::nn::series::vrnn`]: 100 units, 100 latent dimensions, the last step's latent as the
//! features), plus the VRNN's negative ELBO (its KL and reconstruction terms) over every window
//! of the batch, sources and target:
//!
//! loss = CE(sources) + CE_domain(GRL(z_T)) + KL(q ‖ prior) + NLL(x | decoder).
//!
//! metrics.csv logs the two ELBO terms as `vrnn_kl` and `vrnn_nll`.

use candle_core::Result;
use candle_nn::VarBuilder;

use crate::data::batch::BatchDivision;
use crate::methods::{DataNeeds, Method, MethodInfo, MethodKind, MethodSetup, Task};
use crate::nn::series::SeriesBackbone;

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    super::rdann::codats_on(kind, setup, vb, (SeriesBackbone::Vrnn, "the VRNN"))
}

/// VRADA's registry entry.
pub const VRADA: MethodInfo = MethodInfo {
    name: "vrada",
    aliases: &[],
    label: "VRADA",
    help: "VRADA: multi-source domain-adversarial training on a variational RNN, with its ELBO",
    color: (120, 60, 160),
    task: Task::Adaptation,
    needs: DataNeeds::ADAPTATION,
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[],
    survey: None,
    backbone: Some(SeriesBackbone::Vrnn),
    build,
};

#[cfg(test)]
mod tests {
    use super::super::rdann::tests::{setup, two_source_batch, windows};
    use crate::methods::{build, trainable_vars, MethodKind, StepContext};
    use crate::nn::series::SeriesBackbone;
    use candle_core::{Device, Tensor};
    use candle_nn::VarMap;
    use rand::SeedableRng;

    fn vrada() -> MethodKind {
        MethodKind::parse("vrada").expect("registered")
    }

    /// The loss is the adversarial DANN loss plus the VRNN's ELBO terms, each logged; the
    /// ELBO is recomputed here from the same network and the same draws.
    #[test]
    fn the_loss_adds_the_vrnn_elbo_to_the_adversarial_loss() {
        let vm = VarMap::new();
        let mut m = build(vrada(), &setup(SeriesBackbone::Vrnn), &vm).unwrap();
        crate::nn::glorot_init(&vm, 3).unwrap();
        assert!(trainable_vars(&vm, "fe.")
            .iter()
            .any(|(n, _)| n == "fe.encoder.mu.weight"));
        let batch = two_source_batch();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut ctx = StepContext {
            step: 0,
            total_steps: 10,
            rng: &mut rng,
        };
        assert_eq!(
            m.scalars(),
            ["task_loss", "domain_loss", "lambda", "vrnn_kl", "vrnn_nll"]
        );
        let out = m.step(&batch, &mut ctx).unwrap();
        let s = |k: &str| out.scalars.iter().find(|(n, _)| *n == k).unwrap().1;
        let total = out.loss.to_scalar::<f32>().unwrap();
        let sum = s("task_loss") + s("domain_loss") + s("vrnn_kl") + s("vrnn_nll");
        assert!((total - sum).abs() < 1e-5, "{total} vs {sum}");
        // The ELBO of the same windows and draws (the run's RNG from the same seed: the
        // VRNN is the first to draw), through the same variables (a VarBuilder over the
        // run's VarMap returns the existing ones).
        let all = Tensor::cat(&[&windows(0.), &windows(1.), &windows(2.)], 0).unwrap();
        let vb = candle_nn::VarBuilder::from_varmap(&vm, candle_core::DType::F32, &Device::Cpu);
        let net = crate::nn::series::Vrnn::new(2, 100, 100, vb.pp("fe")).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let o = net
            .forward(&all, crate::nn::Mode::Train, Some(&mut rng))
            .unwrap();
        assert!((o.kl.to_scalar::<f32>().unwrap() - s("vrnn_kl")).abs() < 1e-6);
        assert!((o.nll.to_scalar::<f32>().unwrap() - s("vrnn_nll")).abs() < 1e-6);
        assert!(s("vrnn_kl") >= 0.0);
    }

    #[test]
    fn another_backbone_is_refused_with_the_way_to_get_it() {
        let vm = VarMap::new();
        let err = build(vrada(), &setup(SeriesBackbone::Gru), &vm)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err.lines().next().unwrap(),
            "method vrada is DANN on the VRNN (--backbone vrnn); for another feature extractor use --method codats --backbone gru"
        );
    }
}
