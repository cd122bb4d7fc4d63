//! DANN-GS: domain-adversarial training (Ganin et al., JMLR 2016) with all sources grouped into
//! one "source" domain, as the CoDATS paper's multi-source baseline: the FCN and task head of
//! CoDATS, a gradient-reversed domain head with two outputs (target 0, any source 1), the same
//! λ schedule and the same second Adam on the domain head. Only the domain head's width and its
//! labels differ from `codats` ([`super::codats::DomainHead::Grouped`]).

use crate::methods::Task;
use candle_core::Result;
use candle_nn::VarBuilder;

use super::codats::{Codats, DomainHead};
use crate::data::batch::BatchDivision;
use crate::methods::{DataNeeds, Method, MethodInfo, MethodKind, MethodSetup};

fn build(kind: MethodKind, setup: &MethodSetup, vb: VarBuilder) -> Result<Box<dyn Method>> {
    Ok(Box::new(Codats::with_head(
        kind,
        setup,
        vb,
        DomainHead::Grouped,
    )?))
}

/// DANN-GS's registry entry.
pub const DANN_GS: MethodInfo = MethodInfo {
    name: "dann_gs",
    aliases: &[],
    label: "DANN-GS",
    help: "DANN with the sources grouped: one gradient-reversed source-vs-target domain head",
    color: (204, 121, 167),
    task: Task::Adaptation,
    needs: DataNeeds::ADAPTATION,
    batch_division: BatchDivision::All,
    uses_proportions: false,
    params: &[],
    survey: None,
    backbone: None,
    build,
};

#[cfg(test)]
mod tests {
    use super::super::codats::grouped_domain_labels;
    use crate::losses::cross_entropy;
    use crate::losses::gradcheck::max_error;
    use crate::methods::{build, trainable_vars, MethodKind, MethodSetup};
    use candle_core::{Device, Result, Tensor};
    use candle_nn::VarMap;

    #[test]
    fn every_source_is_domain_one_and_the_target_domain_zero() {
        assert_eq!(
            grouped_domain_labels(&[2, 1, 3], 2),
            vec![1, 1, 1, 1, 1, 1, 0, 0]
        );
        assert_eq!(grouped_domain_labels(&[], 1), vec![0]);
    }

    #[test]
    fn the_domain_loss_is_binary_cross_entropy_over_the_grouped_labels() -> Result<()> {
        // Two source rows and one target row; logits (target, source).
        let ln3 = 3f64.ln();
        let logits = Tensor::from_vec(vec![0.0, ln3, ln3, 0.0, 0.0, 0.0], (3, 2), &Device::Cpu)?;
        let y = Tensor::from_vec(grouped_domain_labels(&[1, 1], 1), 3, &Device::Cpu)?;
        // -(ln 3/4 + ln 1/4 + ln 1/2) / 3
        let want = -((0.75f64).ln() + (0.25f64).ln() + (0.5f64).ln()) / 3.0;
        let got = cross_entropy(&logits, &y)?.to_scalar::<f64>()?;
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // Its gradient w.r.t. the logits, by finite differences.
        let err = max_error(|l| cross_entropy(l, &y), &logits, 1e-5)?;
        assert!(err < 1e-6, "finite-difference error {err}");
        Ok(())
    }

    #[test]
    fn the_domain_head_has_two_outputs_whatever_the_number_of_sources() -> Result<()> {
        let kind = MethodKind::parse("dann_gs").expect("registered");
        for n_sources in [1, 3] {
            let setup = MethodSetup {
                channels: 3,
                classes: 4,
                n_sources,
                given_proportions: None,
                target_train_proportions: None,
                ws_noise: None,
                ws: false,
                seed: 0,
                kernels: crate::nn::Kernels::Fast,
                gct: false,
                backbone: Default::default(),
                params: Default::default(),
                image: None,
            };
            let varmap = VarMap::new();
            let method = build(kind, &setup, &varmap)?;
            let out: Vec<Vec<usize>> = trainable_vars(&varmap, "domain.out.weight")
                .into_iter()
                .map(|(_, v)| v.as_tensor().dims().to_vec())
                .collect();
            assert_eq!(out, vec![vec![2, 500]], "{n_sources} sources");
            assert_eq!(method.param_groups().len(), 2, "model + domain head");
        }
        Ok(())
    }
}
