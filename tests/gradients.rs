//! Every loss reaches every parameter it should: one training step of each method, on both FCN
//! implementations, gives every trainable variable a non-zero gradient, and the DA-WS term
//! changes the task head's gradient (it did not while its softmax had no backward).

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use codats::methods::{self, Batch, MethodKind, MethodSetup, Slice, StepContext};
use codats::nn::series::SeriesBackbone;
use codats::nn::Kernels;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

const CHANNELS: usize = 3;
const LENGTH: usize = 32;
const CLASSES: usize = 4;

fn windows(n: usize, seed: u64) -> Tensor {
    let v: Vec<f32> = (0..n * CHANNELS * LENGTH)
        .map(|i| ((i as f64 * 0.37 + seed as f64 * 1.9).sin() * 1.3) as f32)
        .collect();
    Tensor::from_vec(v, (n, CHANNELS, LENGTH), &Device::Cpu).unwrap()
}

fn slice(n: usize, seed: u64, labelled: bool) -> Slice {
    let y: Vec<u32> = (0..n as u32)
        .map(|i| (i + seed as u32) % CLASSES as u32)
        .collect();
    Slice {
        x: windows(n, seed),
        y: labelled.then(|| Tensor::from_vec(y, n, &Device::Cpu).unwrap()),
        idx: (0..n).collect(),
        views: Vec::new(),
    }
}

fn batch(kind: MethodKind) -> Batch {
    match kind {
        MethodKind::TARGET_ONLY => Batch {
            sources: vec![],
            target: Some(slice(12, 9, true)),
        },
        MethodKind::NONE => Batch {
            sources: vec![slice(8, 1, true), slice(8, 2, true)],
            target: None,
        },
        _ => Batch {
            sources: vec![slice(8, 1, true), slice(8, 2, true)],
            target: Some(slice(8, 3, false)),
        },
    }
}

/// Gradients of one step's loss, by parameter name.
fn step_gradients(kind: MethodKind, kernels: Kernels) -> Vec<(String, Tensor)> {
    step_gradients_with(kind, kernels, false)
}

/// [`step_gradients`], with GCT gates in front of the FCN convolutions when `gct` (set away
/// from their initial values: at α = 1, γ = 0 the gradient of α is exactly zero).
fn step_gradients_with(kind: MethodKind, kernels: Kernels, gct: bool) -> Vec<(String, Tensor)> {
    step_gradients_on(kind, kernels, gct, SeriesBackbone::Fcn)
}

/// [`step_gradients_with`] on feature extractor `backbone`.
fn step_gradients_on(
    kind: MethodKind,
    kernels: Kernels,
    gct: bool,
    backbone: SeriesBackbone,
) -> Vec<(String, Tensor)> {
    // dirt_t's VADA phase (every loss; its DIRT-T phase is checked on its own below).
    let params = match kind.as_str() {
        "dirt_t" => [("vada_fraction".to_string(), 1.0)].into(),
        _ => Default::default(),
    };
    step_gradients_backbone(kind, kernels, gct, backbone, params)
}

/// [`step_gradients_with`] with the method's parameters `params` (defaults for the rest).
fn step_gradients_params(
    kind: MethodKind,
    kernels: Kernels,
    gct: bool,
    params: std::collections::BTreeMap<String, f64>,
) -> Vec<(String, Tensor)> {
    step_gradients_backbone(kind, kernels, gct, SeriesBackbone::Fcn, params)
}

fn step_gradients_backbone(
    kind: MethodKind,
    kernels: Kernels,
    gct: bool,
    backbone: SeriesBackbone,
    params: std::collections::BTreeMap<String, f64>,
) -> Vec<(String, Tensor)> {
    // A method defined on one feature extractor (rdann: the GRU) is checked on its own.
    let backbone = kind.info().backbone.unwrap_or(backbone);
    let setup = MethodSetup {
        channels: CHANNELS,
        classes: CLASSES,
        n_sources: if kind == MethodKind::TARGET_ONLY {
            0
        } else {
            2
        },
        // Far from what the model predicts at init, so the DA-WS term is large.
        given_proportions: Some(vec![0.85, 0.05, 0.05, 0.05]),
        target_train_proportions: None,
        ws_noise: None,
        ws: false,
        seed: 0,
        kernels,
        gct,
        backbone,
        params: kind.resolve_params(&params).unwrap(),
        image: None,
    };
    let varmap = VarMap::new();
    let mut method = methods::build(kind, &setup, &varmap).unwrap();
    codats::nn::glorot_init(&varmap, 7).unwrap();
    for (name, var) in methods::trainable_vars(&varmap, "") {
        if name.contains(".gct.") {
            let c = var.dim(0).unwrap();
            let v: Vec<f32> = (0..c).map(|i| 0.3 + 0.01 * (i % 9) as f32).collect();
            var.set(&Tensor::from_vec(v, c, &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut ctx = StepContext {
        step: 5,
        total_steps: 10,
        rng: &mut rng,
    };
    let out = method.step(&batch(kind), &mut ctx).unwrap();
    let grads = out.loss.backward().unwrap();
    // The parameters the optimisers step (a frozen teacher is in no group).
    let mut stepped: Vec<(String, candle_core::Var)> = method
        .param_groups()
        .iter()
        .flat_map(|g| methods::trainable_vars(&varmap, g.prefix))
        .collect();
    stepped.sort_by(|a, b| a.0.cmp(&b.0));
    stepped.dedup_by(|a, b| a.0 == b.0);
    stepped
        .into_iter()
        .map(|(name, var)| {
            // No gradient at all reads as a zero one (the callers' checks then name it).
            let g = match grads.get(var.as_tensor()) {
                Some(g) => g.clone(),
                None => var.as_tensor().zeros_like().unwrap(),
            };
            (name, g)
        })
        .collect()
}

fn norm(t: &Tensor) -> f64 {
    t.sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64
}

#[test]
fn every_trainable_parameter_gets_a_gradient() {
    for kernels in [Kernels::Fast, Kernels::Candle] {
        // The time-series methods; image methods train on image batches (tests/ssl_images.rs).
        let adaptation = MethodKind::all()
            .into_iter()
            .filter(|k| k.info().task == codats::methods::Task::Adaptation);
        for kind in adaptation {
            let grads = step_gradients(kind, kernels);
            assert!(!grads.is_empty());
            for (name, g) in &grads {
                assert!(
                    norm(g) > 0.0,
                    "{kind} ({kernels:?}): zero gradient for {name}"
                );
            }
            let has_domain = grads.iter().any(|(n, _)| n.starts_with("domain."));
            let adversarial = [
                "codats",
                "codats_ws",
                "dann_gs",
                "mdan",
                "cdan",
                "dirt_t",
                "rdann",
                "vrada",
            ]
            .contains(&kind.as_str());
            assert_eq!(
                has_domain, adversarial,
                "{kind}: domain head present iff adversarial"
            );
        }
    }
}

/// Every adaptation method trains on the other feature extractors too: each parameter gets a
/// gradient, and no method's training pass skips AdaTime's CNN dropout (which refuses a
/// training forward without the step's RNG).
#[test]
fn every_method_trains_every_parameter_of_every_backbone() {
    for backbone in [SeriesBackbone::AdatimeCnn, SeriesBackbone::Gru] {
        let adaptation = MethodKind::all()
            .into_iter()
            .filter(|k| k.info().task == codats::methods::Task::Adaptation);
        for kind in adaptation {
            let grads = step_gradients_on(kind, Kernels::Fast, false, backbone);
            assert!(grads.iter().any(|(n, _)| n.starts_with("fe.")));
            for (name, g) in &grads {
                assert!(
                    norm(g) > 0.0,
                    "{kind} ({backbone}): zero gradient for {name}"
                );
            }
        }
    }
}

#[test]
fn the_weak_supervision_loss_changes_the_gradient() {
    for kernels in [Kernels::Fast, Kernels::Candle] {
        let plain = step_gradients(MethodKind::CODATS, kernels);
        let ws = step_gradients(MethodKind::CODATS_WS, kernels);
        for ((name, a), (name_ws, b)) in plain.iter().zip(&ws) {
            assert_eq!(name, name_ws);
            let diff = norm(&(a - b).unwrap());
            if name.starts_with("domain.") {
                // DA-WS acts on the task logits: the domain head's gradient is the same.
                assert!(
                    diff < 1e-12 * norm(a).max(1.0),
                    "{kernels:?} {name}: {diff}"
                );
            } else {
                // The task head and every FCN layer receive DA-WS's gradient.
                assert!(
                    diff > 1e-6 * norm(a),
                    "{kernels:?} {name}: DA-WS adds no gradient"
                );
            }
        }
    }
}

#[test]
fn gct_gates_get_gradients_through_the_fcn() {
    // `--gct` runs the plain candle path; every gate parameter of every convolution, and every
    // other parameter, gets a gradient (CoDATS: task and adversarial domain losses).
    let grads = step_gradients_with(MethodKind::CODATS, Kernels::Candle, true);
    let gates: Vec<&String> = grads
        .iter()
        .map(|(n, _)| n)
        .filter(|n| n.contains(".gct."))
        .collect();
    assert_eq!(gates.len(), 9, "{gates:?}");
    for (name, g) in &grads {
        assert!(norm(g) > 0.0, "gct: zero gradient for {name}");
    }
}

#[test]
fn dirt_t_refinement_trains_the_network_and_not_the_domain_head() {
    // vada_fraction 0: every step refines (target entropy, target VAT, teacher KL), which
    // reaches every FCN and task-head parameter and leaves the domain head alone; the teacher
    // is in no optimiser group.
    let kind = MethodKind::parse("dirt_t").expect("registered");
    for kernels in [Kernels::Fast, Kernels::Candle] {
        let params = [("vada_fraction".to_string(), 0.0)].into();
        let grads = step_gradients_params(kind, kernels, false, params);
        assert!(grads.iter().all(|(n, _)| !n.starts_with("teacher.")));
        for (name, g) in &grads {
            if name.starts_with("domain.") {
                assert_eq!(norm(g), 0.0, "{kernels:?}: {name}");
            } else {
                assert!(norm(g) > 0.0, "{kernels:?}: zero gradient for {name}");
            }
        }
    }
}
