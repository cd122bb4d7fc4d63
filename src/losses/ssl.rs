//! Losses of the image semi-supervised methods, as pure functions of tensors.
//!
//! Conventions and defaults follow USB (Wang et al. 2022, `semilearn`) and TorchSSL: logits
//! are `[B, K]`, every reduction is a mean over the batch, targets computed from a second view
//! (pseudo-labels, teacher probabilities, the clean prediction of VAT) are detached, and every
//! probability that enters a logarithm comes from a log-softmax, so logits of ±1e3 give no NaN.

use candle_core::{DType, Result, Tensor, Var, D};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// USB's default `unsup_warmup`: the unsupervised weight ramps up over the first 40 % of steps.
pub const USB_UNSUP_WARMUP: f64 = 0.4;
/// FixMatch's default confidence threshold (USB `p_cutoff`).
pub const FIXMATCH_THRESHOLD: f64 = 0.95;
/// USB VAT's finite-difference step `xi` of the power iteration.
pub const VAT_XI: f64 = 1e-6;
/// USB VAT's adversarial radius `eps`.
pub const VAT_EPS: f64 = 6.0;
/// USB VAT's number of power iterations.
pub const VAT_ITERS: usize = 1;
/// Added to a norm before dividing by it, so a zero vector normalises to zero, not NaN.
pub const NORM_EPS: f64 = 1e-8;

/// Linear warm-up of an unsupervised loss weight: `clip(step / (warmup_fraction · total), 0, 1)`.
///
/// USB's `unsup_warmup` ramp (Π-model, Mean Teacher, VAT; default fraction [`USB_UNSUP_WARMUP`]).
/// A zero-length warm-up (`warmup_fraction · total == 0`) gives the full weight at once.
pub fn ramp_linear(step: usize, total: usize, warmup_fraction: f64) -> f64 {
    let len = warmup_fraction * total as f64;
    if len <= 0.0 {
        return 1.0;
    }
    (step as f64 / len).clamp(0.0, 1.0)
}

/// Sigmoid-shaped ramp-up of a loss weight: `exp(−5 (1 − t)²)`, `t = clip(step / ramp_steps, 0, 1)`.
///
/// Laine & Aila 2017 (temporal ensembling / Π-model). `ramp_steps == 0` gives the full weight.
pub fn ramp_sigmoid(step: usize, ramp_steps: usize) -> f64 {
    if ramp_steps == 0 {
        return 1.0;
    }
    let t = (step as f64 / ramp_steps as f64).clamp(0.0, 1.0);
    (-5.0 * (1.0 - t) * (1.0 - t)).exp()
}

/// Log-softmax over the last axis, differentiable and stable for large logits.
///
/// `log p_k = z_k − m − log Σ_j exp(z_j − m)` with `m = max_j z_j` (detached: the result does
/// not depend on it).
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// Per-row cross-entropy `−log softmax(logits)[b, labels_b]`, shape `[B]` (no reduction).
///
/// USB's `ce_loss(logits, targets, reduction='none')` for hard labels.
pub fn cross_entropy_per_row(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let labels = labels.to_dtype(DType::U32)?.unsqueeze(1)?;
    log_softmax(logits)?.gather(&labels, 1)?.squeeze(1)?.neg()
}

/// Hard pseudo-labels with a confidence mask, from the detached softmax of `logits` `[B, K]`.
///
/// `labels_b = argmax_k p_bk` (u32 `[B]`), `mask_b = 1[max_k p_bk ≥ threshold]` (f32 `[B]`,
/// inclusive as FixMatch's `max_probs.ge(p_cutoff)`; Sohn et al. 2020, USB `FixMatch`).
pub fn pseudo_labels(logits: &Tensor, threshold: f64) -> Result<(Tensor, Tensor)> {
    let p = crate::losses::softmax(&logits.detach())?;
    let labels = p.argmax(D::Minus1)?;
    // The threshold is cast to the logits' dtype before comparing, as torch does.
    let mask = p.max(D::Minus1)?.ge(threshold)?.to_dtype(DType::F32)?;
    Ok((labels, mask))
}

/// Cross-entropy restricted by a per-row mask: `(1/B) Σ_b mask_b · CE(logits_b, labels_b)`.
///
/// The mean is over ALL `B` rows, masked or not, as USB's `(ce_loss(...) * mask).mean()`.
/// `labels` u32 `[B]`, `mask` `[B]` (any float dtype; a constant).
pub fn masked_cross_entropy(logits: &Tensor, labels: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.detach().to_dtype(logits.dtype())?;
    (cross_entropy_per_row(logits, labels)? * mask)?.mean(0)
}

/// FixMatch's unlabelled loss and the fraction of rows above the threshold (for logging).
///
/// `(1/B) Σ_b 1[max p_weak,b ≥ τ] · CE(strong_b, argmax p_weak,b)`, `p_weak` the detached
/// softmax of the weak view (Sohn et al. 2020; USB `FixMatch.train_step`, `p_cutoff` τ, default
/// [`FIXMATCH_THRESHOLD`]). Returns `(loss, mask_rate)`, `mask_rate = (1/B) Σ_b mask_b`.
pub fn fixmatch_unlabelled(
    weak_logits: &Tensor,
    strong_logits: &Tensor,
    tau: f64,
) -> Result<(Tensor, f64)> {
    let (labels, mask) = pseudo_labels(weak_logits, tau)?;
    let loss = masked_cross_entropy(strong_logits, &labels, &mask)?;
    let rate = mask.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    Ok((loss, rate))
}

/// Softmax mean-squared consistency: `(1/B) Σ_b (1/K) Σ_k (softmax(z)_bk − softmax(t)_bk)²`.
///
/// USB's `consistency_loss(..., name='mse')` (Π-model, Mean Teacher; Laine & Aila 2017,
/// Tarvainen & Valpola 2017); `target_logits` are detached (the teacher / other view).
pub fn softmax_mse(logits: &Tensor, target_logits: &Tensor) -> Result<Tensor> {
    let p = log_softmax(logits)?.exp()?;
    let q = log_softmax(&target_logits.detach())?.exp()?;
    (p - q)?.sqr()?.mean_all()
}

/// Entropy-minimisation loss: `(1/B) Σ_b −Σ_k p_bk log p_bk`, `p = softmax(logits)`.
///
/// Grandvalet & Bengio 2005; the entropy term of VAT+EntMin (Miyato et al. 2018) in USB/TorchSSL.
pub fn entropy(logits: &Tensor) -> Result<Tensor> {
    let logp = log_softmax(logits)?;
    let p = logp.exp()?;
    (p * logp)?.sum(D::Minus1)?.neg()?.mean(0)
}

/// `(1/B) Σ_b KL(softmax(t_b) ‖ softmax(z_b)) = (1/B) Σ_b Σ_k q_bk (log q_bk − log p_bk)`.
///
/// VAT's distance (Miyato et al. 2018; USB `VAT.kl_div_with_logit(q_logit, p_logit)`):
/// `target_logits` `t` are detached, the gradient reaches `logits` `z` only.
pub fn kl_div_softmax(target_logits: &Tensor, logits: &Tensor) -> Result<Tensor> {
    let logq = log_softmax(&target_logits.detach())?;
    let q = logq.exp()?;
    let logp = log_softmax(logits)?;
    (q * (logq - logp)?)?.sum(D::Minus1)?.mean(0)
}

/// Cross-entropy against soft targets: `(1/B) Σ_b −Σ_k t_bk log softmax(z_b)_k`.
///
/// Noisy Student's loss on the teacher's soft pseudo-labels (Xie et al. 2020); `targets` are
/// probabilities `[B, K]` (rows summing to 1; one-hot rows give the hard-label cross-entropy),
/// detached: the gradient reaches `logits` only.
pub fn soft_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let t = targets.detach().to_dtype(logits.dtype())?;
    (t * log_softmax(logits)?)?.sum(D::Minus1)?.neg()?.mean(0)
}

/// Divides each sample (row of axis 0) by its L2 norm over all other axes, plus [`NORM_EPS`].
pub fn l2_normalize_per_sample(d: &Tensor) -> Result<Tensor> {
    let b = d.dim(0)?;
    let flat = d.reshape((b, ()))?;
    let norm = flat.sqr()?.sum_keepdim(1)?.sqrt()?;
    flat.broadcast_div(&(norm + NORM_EPS)?)?.reshape(d.shape())
}

/// VAT's adversarial perturbation `r_adv` (same shape as `x`, detached), by power iteration.
///
/// `d ~ N(0, I)` from `rng`, normalised per sample; `iters` times: `g = ∇_r KL(clean ‖ f(x + r))`
/// at `r = xi·d`, `d = g / (‖g‖ + 1e-8)`; then `r_adv = eps·d` (Miyato et al. 2018; USB
/// `VAT.vat_loss`, defaults [`VAT_XI`], [`VAT_EPS`], [`VAT_ITERS`]). `clean_logits` is `f(x)`,
/// detached here. A zero gradient (or a `forward` that does not reach its input) gives `d = 0`.
/// The batch-mean KL is multiplied by `B / xi` before differentiating (same direction), so that
/// the 1e-8 guard stays negligible for USB's tiny `xi` and large batches. `xi` must be > 0.
pub fn vat_perturbation(
    forward: &dyn Fn(&Tensor) -> Result<Tensor>,
    x: &Tensor,
    clean_logits: &Tensor,
    xi: f64,
    eps: f64,
    iters: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Tensor> {
    if xi.is_nan() || xi <= 0.0 {
        candle_core::bail!("VAT needs xi > 0 (got {xi})");
    }
    let clean = clean_logits.detach();
    // ∂KL_mean/∂r at r = xi·d is ≈ (xi/B)·H d: about 1e-9 per sample with USB's xi = 1e-6 and
    // 448 unlabelled rows, below the 1e-8 of the normalisation. Scaling the loss by B/xi (a
    // positive constant, so the direction is unchanged) makes g ≈ H d, of the model's scale.
    let scale = x.dim(0)? as f64 / xi;
    let noise: Vec<f32> = (0..x.elem_count())
        .map(|_| StandardNormal.sample(rng))
        .collect();
    let mut d = l2_normalize_per_sample(
        &Tensor::from_vec(noise, x.shape(), x.device())?.to_dtype(x.dtype())?,
    )?;
    let x = x.detach();
    for _ in 0..iters {
        let r = Var::from_tensor(&(d * xi)?)?;
        let logits = forward(&(&x + r.as_tensor())?)?;
        let grads = (kl_div_softmax(&clean, &logits)? * scale)?.backward()?;
        let g = match grads.get(r.as_tensor()) {
            Some(g) => g.detach(),
            None => r.as_tensor().zeros_like()?,
        };
        d = l2_normalize_per_sample(&g)?;
    }
    Ok((d * eps)?.detach())
}

/// VAT's local-distributional-smoothness loss `KL(softmax(f(x)) ‖ softmax(f(x + r_adv)))`.
///
/// `r_adv` from [`vat_perturbation`] (same arguments); the clean prediction is detached, so the
/// gradient reaches the model through `f(x + r_adv)` only (Miyato et al. 2018; USB `VAT.vat_loss`).
pub fn vat_loss(
    forward: &dyn Fn(&Tensor) -> Result<Tensor>,
    x: &Tensor,
    clean_logits: &Tensor,
    xi: f64,
    eps: f64,
    iters: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Tensor> {
    let r_adv = vat_perturbation(forward, x, clean_logits, xi, eps, iters, rng)?;
    kl_div_softmax(clean_logits, &forward(&(x + r_adv)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::gradcheck::max_error;
    use candle_core::Device;
    use rand_chacha::rand_core::SeedableRng;

    fn t64(v: &[f64], shape: (usize, usize)) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    fn t32(v: &[f32], shape: (usize, usize)) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    fn scalar(t: &Tensor) -> f64 {
        t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
    }

    /// Both rows are permutations of (0, 1, 2): softmax = (1, e, e²)/S, S = 1 + e + e² = 11.1073.
    const Z: [f64; 6] = [1.0, 2.0, 0.0, 0.5, -0.5, 1.5];
    /// Targets: softmax rows (0.155362, 0.422319, 0.422319) and (0.843795, 0.114195, 0.042010).
    const T: [f64; 6] = [0.0, 1.0, 1.0, 2.0, 0.0, -1.0];
    /// A 4×3 batch for the finite-difference checks.
    const G: [f64; 12] = [
        0.3, -1.2, 2.0, 0.5, 1.1, 0.0, -0.7, 0.9, -2.0, 1.5, 0.2, -0.4,
    ];
    const GT: [f64; 12] = [
        1.0, 0.2, -0.3, -1.5, 0.4, 0.8, 0.0, 0.0, 1.0, 2.2, -0.6, 0.1,
    ];
    /// Logits of ±1e3: exp underflows to exactly 0 in the non-maximal classes.
    const HUGE: [f32; 6] = [1e3, -1e3, 0.0, -1e3, 1e3, 1e3];

    /// The gradient that reaches `target` when `f(logits, target)` is back-propagated.
    fn target_gets_no_gradient(f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<bool> {
        let l = Var::from_tensor(&t64(&G, (4, 3)))?;
        let t = Var::from_tensor(&t64(&GT, (4, 3)))?;
        let grads = f(l.as_tensor(), t.as_tensor())?.backward()?;
        assert!(
            grads.get(l.as_tensor()).is_some(),
            "the logits get a gradient"
        );
        Ok(grads.get(t.as_tensor()).is_none())
    }

    fn all_finite(t: &Tensor) -> bool {
        t.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
            .iter()
            .all(|v| v.is_finite())
    }

    /// Value and logits-gradient of `f` at the ±1e3 logits, both finite.
    fn finite_at_huge_logits(f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<f64> {
        let l = Var::from_tensor(&t32(&HUGE, (2, 3)))?;
        let loss = f(l.as_tensor())?;
        let g = loss.backward()?;
        let g = g.get(l.as_tensor()).expect("gradient");
        assert!(all_finite(&loss) && all_finite(g), "{loss} {g}");
        Ok(scalar(&loss))
    }

    #[test]
    fn ramp_linear_endpoints_and_midpoint() {
        // USB: clip(step / (0.4 · 100), 0, 1).
        assert_eq!(ramp_linear(0, 100, USB_UNSUP_WARMUP), 0.0);
        assert_eq!(ramp_linear(10, 100, USB_UNSUP_WARMUP), 0.25);
        assert_eq!(ramp_linear(20, 100, USB_UNSUP_WARMUP), 0.5);
        assert_eq!(ramp_linear(40, 100, USB_UNSUP_WARMUP), 1.0);
        assert_eq!(ramp_linear(100, 100, USB_UNSUP_WARMUP), 1.0);
        assert_eq!(ramp_linear(500, 100, USB_UNSUP_WARMUP), 1.0);
        assert_eq!(ramp_linear(50, 100, 1.0), 0.5);
        // No warm-up at all: full weight from step 0.
        assert_eq!(ramp_linear(0, 100, 0.0), 1.0);
        assert_eq!(ramp_linear(0, 0, 0.4), 1.0);
    }

    #[test]
    fn ramp_sigmoid_endpoints_and_midpoint() {
        // exp(−5) = 0.006737947 at t = 0, exp(−5/4) = 0.2865048 at t = 1/2, 1 at t ≥ 1.
        assert!((ramp_sigmoid(0, 10) - 0.006_737_947).abs() < 1e-9);
        assert!((ramp_sigmoid(5, 10) - 0.286_504_797).abs() < 1e-9);
        assert_eq!(ramp_sigmoid(10, 10), 1.0);
        assert_eq!(ramp_sigmoid(25, 10), 1.0);
        assert_eq!(ramp_sigmoid(3, 0), 1.0);
        assert!(ramp_sigmoid(4, 10) < ramp_sigmoid(6, 10));
    }

    #[test]
    fn log_softmax_is_stable_and_differentiable() -> Result<()> {
        let got = log_softmax(&t32(&HUGE, (2, 3)))?.to_vec2::<f32>()?;
        assert_eq!(got[0], [0.0, -2000.0, -1000.0]);
        // Two equal maxima: log(1/2) each.
        assert!((got[1][1] + std::f32::consts::LN_2).abs() < 1e-6, "{got:?}");
        assert_eq!(got[1][0], -2000.0 - std::f32::consts::LN_2);
        let w = t64(&GT, (4, 3));
        let err = max_error(
            |l| (log_softmax(l)? * &w)?.sum_all(),
            &t64(&G, (4, 3)),
            1e-6,
        )?;
        assert!(err < 1e-8, "{err}");
        Ok(())
    }

    #[test]
    fn pseudo_labels_are_argmax_with_an_inclusive_threshold() -> Result<()> {
        // Row 0: p = (1/2, 1/2) exactly; row 1: p = (0.269, 0.731); row 2: p = (1, 0) exactly.
        let l = t32(&[0.0, 0.0, 1.0, 2.0, 1e3, -1e3], (3, 2));
        let (labels, mask) = pseudo_labels(&l, 0.5)?;
        assert_eq!(labels.dtype(), DType::U32);
        assert_eq!(mask.dtype(), DType::F32);
        assert_eq!(
            mask.to_vec1::<f32>()?,
            [1.0, 1.0, 1.0],
            "p = τ is kept (ge)"
        );
        let labels = labels.to_vec1::<u32>()?;
        assert_eq!(&labels[1..], [1, 0]);
        let (_, mask) = pseudo_labels(&l, 0.500_001)?;
        assert_eq!(mask.to_vec1::<f32>()?, [0.0, 1.0, 1.0]);
        let (_, mask) = pseudo_labels(&l, 0.8)?;
        assert_eq!(mask.to_vec1::<f32>()?, [0.0, 0.0, 1.0]);
        // p = 1 exactly reaches a threshold of 1.
        let (_, mask) = pseudo_labels(&l, 1.0)?;
        assert_eq!(mask.to_vec1::<f32>()?, [0.0, 0.0, 1.0]);
        Ok(())
    }

    #[test]
    fn pseudo_labels_compare_in_the_logits_dtype_as_torch() -> Result<()> {
        // softmax((ln 19, 0)) = 0.95 up to rounding: in f32 the threshold 0.95 is rounded to
        // f32 as well, so a probability that rounds to 0.95f32 is kept.
        let p = 0.95f32;
        let l = t32(&[(p / (1.0 - p)).ln(), 0.0], (1, 2));
        let prob = crate::losses::softmax(&l)?.to_vec2::<f32>()?[0][0];
        // Precondition: the f32 probability is 0.95f32 = 0.949999988 < 0.95 (f64), so a
        // comparison in f64 would drop the row.
        assert_eq!(prob, 0.95f32);
        let (_, mask) = pseudo_labels(&l, FIXMATCH_THRESHOLD)?;
        assert_eq!(mask.to_vec1::<f32>()?, [1.0], "p = {prob}");
        Ok(())
    }

    #[test]
    fn masked_cross_entropy_matches_hand_computation() -> Result<()> {
        // Labels (1, 2) are each row's largest logit: CE = log S − 2 = 0.4076060 per row.
        // Mask (1, 0): the mean is over both rows, 0.4076060 / 2 = 0.2038030 (not 0.4076060).
        let z = t32(&Z.map(|v| v as f32), (2, 3));
        let y = Tensor::new(&[1u32, 2], &Device::Cpu)?;
        let per_row = cross_entropy_per_row(&z, &y)?.to_vec1::<f32>()?;
        for v in per_row {
            assert!((v - 0.407_606).abs() < 1e-6, "{v}");
        }
        let m = Tensor::new(&[1f32, 0.0], &Device::Cpu)?;
        let got = scalar(&masked_cross_entropy(&z, &y, &m)?);
        assert!((got - 0.203_802_98).abs() < 1e-6, "{got}");
        let ones = Tensor::new(&[1f32, 1.0], &Device::Cpu)?;
        let all = scalar(&masked_cross_entropy(&z, &y, &ones)?);
        let plain = scalar(&crate::losses::cross_entropy(&z, &y)?);
        assert!(
            (all - plain).abs() < 1e-6 && (all - 0.407_606).abs() < 1e-6,
            "{all} {plain}"
        );
        Ok(())
    }

    #[test]
    fn masked_cross_entropy_gradient_matches_finite_differences() -> Result<()> {
        let y = Tensor::new(&[2u32, 0, 1, 0], &Device::Cpu)?;
        let m = Tensor::new(&[1f32, 0.0, 0.5, 1.0], &Device::Cpu)?;
        let err = max_error(|l| masked_cross_entropy(l, &y, &m), &t64(&G, (4, 3)), 1e-6)?;
        assert!(err < 1e-8, "{err}");
        // The masked row gets exactly zero gradient.
        let l = Var::from_tensor(&t64(&G, (4, 3)))?;
        let g = masked_cross_entropy(l.as_tensor(), &y, &m)?.backward()?;
        let g = g.get(l.as_tensor()).expect("gradient").to_vec2::<f64>()?;
        assert_eq!(g[1], [0.0, 0.0, 0.0]);
        assert!(g[0][2] < -1e-3, "{g:?}");
        // CE of a ±1e3 row: 2000 for the wrong class, 0 for the right one.
        let y = Tensor::new(&[1u32, 1], &Device::Cpu)?;
        let m = Tensor::new(&[1f32, 1.0], &Device::Cpu)?;
        let v = finite_at_huge_logits(|l| masked_cross_entropy(l, &y, &m))?;
        assert!(
            (v - (2000.0 + std::f64::consts::LN_2) / 2.0).abs() < 1e-3,
            "{v}"
        );
        Ok(())
    }

    #[test]
    fn fixmatch_masks_inclusively_and_averages_over_all_rows() -> Result<()> {
        // τ = 1/2. Weak rows: p = (1/2, 1/2, 0) exactly → kept (p = τ); (1/3, 1/3, 1/3) → dropped;
        // (1, 0, 0) exactly → kept, label 0; p_max = e^½/(2 + e^½) = 0.452 → dropped.
        let weak = t32(
            &[0.0, 0.0, -1e3, 0.0, 0.0, 0.0, 1e3, -1e3, 0.0, 0.0, 0.5, 0.0],
            (4, 3),
        );
        // Strong rows: (0, 0, ln 2) → softmax (1/4, 1/4, 1/2): CE = ln 4 for label 0 or 1 (the
        // tie's label does not matter); (0, ln 3, 0) → (1/5, 3/5, 1/5): CE = ln 5 for label 0.
        let ln2 = 2f32.ln();
        let ln3 = 3f32.ln();
        let strong = t32(
            &[0.0, 0.0, ln2, 5.0, -3.0, 0.0, 0.0, ln3, 0.0, 1.0, 2.0, 3.0],
            (4, 3),
        );
        let (loss, rate) = fixmatch_unlabelled(&weak, &strong, 0.5)?;
        assert_eq!(rate, 0.5);
        // (ln 4 + ln 5) / 4 = ln 20 / 4 = 0.7489331; over the kept rows only it would be twice
        // that, and with a strict threshold ln 5 / 4.
        let got = scalar(&loss);
        assert!((got - 0.748_933_07).abs() < 1e-6, "{got}");
        // Nothing above a threshold of 1 but the exact one-hot row: ln 5 / 4, rate 1/4.
        let (loss, rate) = fixmatch_unlabelled(&weak, &strong, 1.0)?;
        assert_eq!(rate, 0.25);
        assert!((scalar(&loss) - 5f64.ln() / 4.0).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn fixmatch_gradient_reaches_the_strong_view_only() -> Result<()> {
        let weak = t64(&GT, (4, 3));
        let err = max_error(
            |s| Ok(fixmatch_unlabelled(&weak, s, 0.5)?.0),
            &t64(&G, (4, 3)),
            1e-6,
        )?;
        assert!(err < 1e-8, "{err}");
        assert!(target_gets_no_gradient(|s, w| Ok(fixmatch_unlabelled(
            w, s, 0.5
        )?
        .0))?);
        Ok(())
    }

    #[test]
    fn softmax_mse_matches_hand_computation() -> Result<()> {
        // (1/6) Σ (p − q)², p rows (0.244728, 0.665241, 0.090031), (0.244728, 0.090031,
        // 0.665241); q rows in `T`'s comment: 0.1542157 (python3, math module).
        let got = scalar(&softmax_mse(
            &t32(&Z.map(|v| v as f32), (2, 3)),
            &t32(&T.map(|v| v as f32), (2, 3)),
        )?);
        assert!((got - 0.154_215_67).abs() < 1e-6, "{got}");
        let same = scalar(&softmax_mse(&t64(&Z, (2, 3)), &t64(&Z, (2, 3)))?);
        assert_eq!(same, 0.0);
        Ok(())
    }

    #[test]
    fn softmax_mse_gradient_matches_finite_differences() -> Result<()> {
        let target = t64(&GT, (4, 3));
        let err = max_error(|l| softmax_mse(l, &target), &t64(&G, (4, 3)), 1e-6)?;
        assert!(err < 1e-8, "{err}");
        assert!(target_gets_no_gradient(softmax_mse)?);
        let target = t32(&[0.0, 1e3, -1e3, 1e3, -1e3, 0.0], (2, 3));
        finite_at_huge_logits(|l| softmax_mse(l, &target))?;
        Ok(())
    }

    #[test]
    fn entropy_matches_hand_computation() -> Result<()> {
        // Each row: −Σ p log p = log S − (e + 2e²)/S = 0.8323956.
        let got = scalar(&entropy(&t32(&Z.map(|v| v as f32), (2, 3)))?);
        assert!((got - 0.832_395_58).abs() < 1e-6, "{got}");
        // Uniform over 3: log 3.
        let u = scalar(&entropy(&t64(&[0.7; 3], (1, 3)))?);
        assert!((u - 3f64.ln()).abs() < 1e-12, "{u}");
        Ok(())
    }

    #[test]
    fn entropy_gradient_matches_finite_differences() -> Result<()> {
        let err = max_error(entropy, &t64(&G, (4, 3)), 1e-6)?;
        assert!(err < 1e-8, "{err}");
        // ±1e3: row 0 is one-hot (entropy 0), row 1 two equal maxima (ln 2); mean ln 2 / 2.
        let v = finite_at_huge_logits(entropy)?;
        assert!((v - std::f64::consts::LN_2 / 2.0).abs() < 1e-6, "{v}");
        Ok(())
    }

    #[test]
    fn soft_cross_entropy_matches_hand_computation() -> Result<()> {
        // log S = log(1 + e + e²) = 2.4076060; row 0 against (0.2, 0.5, 0.3):
        // 0.2(logS − 1) + 0.5(logS − 2) + 0.3 logS = 1.2076060; row 1 one-hot on class 0:
        // logS − 1 = 1.4076060 (python3, math module); mean 1.3076060.
        let z = t32(&Z.map(|v| v as f32), (2, 3));
        let tg = t32(&[0.2, 0.5, 0.3, 1.0, 0.0, 0.0], (2, 3));
        let got = scalar(&soft_cross_entropy(&z, &tg)?);
        assert!((got - 1.307_605_96).abs() < 1e-6, "{got}");
        // One-hot targets give the hard-label cross-entropy.
        let hard = Tensor::from_vec(vec![1u32, 0], 2, &Device::Cpu)?;
        let onehot = t32(&[0.0, 1.0, 0.0, 1.0, 0.0, 0.0], (2, 3));
        let a = scalar(&soft_cross_entropy(&z, &onehot)?);
        let b = scalar(&crate::losses::cross_entropy(&z, &hard)?);
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        Ok(())
    }

    #[test]
    fn soft_cross_entropy_gradient_matches_finite_differences() -> Result<()> {
        let p = crate::losses::softmax(&t64(&GT, (4, 3)))?;
        let err = max_error(|l| soft_cross_entropy(l, &p), &t64(&G, (4, 3)), 1e-6)?;
        assert!(err < 1e-8, "{err}");
        Ok(())
    }

    #[test]
    fn kl_div_softmax_matches_hand_computation() -> Result<()> {
        // Σ_k q (log q − log p) per row = 0.3902488 and 0.9555245 (python3, math module); mean
        // 0.6728866. KL is not symmetric: the target is the first argument.
        let z = t32(&Z.map(|v| v as f32), (2, 3));
        let tg = t32(&T.map(|v| v as f32), (2, 3));
        let got = scalar(&kl_div_softmax(&tg, &z)?);
        assert!((got - 0.672_886_62).abs() < 1e-6, "{got}");
        assert!((scalar(&kl_div_softmax(&z, &tg)?) - got).abs() > 1e-3);
        assert!(scalar(&kl_div_softmax(&z, &z)?).abs() < 1e-7);
        Ok(())
    }

    #[test]
    fn kl_div_softmax_gradient_matches_finite_differences() -> Result<()> {
        let target = t64(&GT, (4, 3));
        let err = max_error(|l| kl_div_softmax(&target, l), &t64(&G, (4, 3)), 1e-6)?;
        assert!(err < 1e-8, "{err}");
        assert!(target_gets_no_gradient(|l, t| kl_div_softmax(t, l))?);
        // A one-hot target at ±1e3 against ±1e3 predictions: finite (0 · log 0 terms vanish).
        let target = t32(&[1e3, -1e3, 0.0, 0.0, 1e3, -1e3], (2, 3));
        let v = finite_at_huge_logits(|l| kl_div_softmax(&target, l))?;
        // Row 0: KL(e₀ ‖ e₀) = 0; row 1: −log(1/2): mean ln 2 / 2.
        assert!((v - std::f64::consts::LN_2 / 2.0).abs() < 1e-4, "{v}");
        Ok(())
    }

    #[test]
    fn l2_normalize_per_sample_uses_all_non_batch_axes() -> Result<()> {
        // [2, 1, 2, 2]: sample 0 has norm √(1+4+4+16) = 5, sample 1 is zero (stays zero).
        let d = Tensor::from_vec(
            vec![1f32, 2.0, -2.0, 4.0, 0.0, 0.0, 0.0, 0.0],
            (2, 1, 2, 2),
            &Device::Cpu,
        )?;
        let n = l2_normalize_per_sample(&d)?;
        assert_eq!(n.dims(), [2, 1, 2, 2]);
        let v = n.flatten_all()?.to_vec1::<f32>()?;
        for (a, b) in v.iter().zip([0.2, 0.4, -0.4, 0.8, 0.0, 0.0, 0.0, 0.0]) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }
        Ok(())
    }

    /// The tiny linear model of the VAT tests: logits = x Wᵀ, W 3×2 (K = 3 classes, D = 2).
    const W: [f32; 6] = [1.0, 0.5, -0.5, 1.0, 0.3, -2.0];
    const X: [f32; 4] = [0.2, -0.4, 1.0, 0.5];

    /// Top eigenvector of H = Wᵀ(diag(p) − ppᵀ)W, p = softmax(W x), in f64; and λ₂/λ₁.
    fn fisher_top_eigenvector(x: [f64; 2]) -> ([f64; 2], f64) {
        let w: Vec<f64> = W.iter().map(|&v| v as f64).collect();
        let z: Vec<f64> = (0..3)
            .map(|k| w[2 * k] * x[0] + w[2 * k + 1] * x[1])
            .collect();
        let s: f64 = z.iter().map(|v| v.exp()).sum();
        let p: Vec<f64> = z.iter().map(|v| v.exp() / s).collect();
        let mut h = [[0f64; 2]; 2];
        for (a, row) in h.iter_mut().enumerate() {
            for (b, hab) in row.iter_mut().enumerate() {
                for i in 0..3 {
                    for j in 0..3 {
                        let c = if i == j { p[i] } else { 0.0 } - p[i] * p[j];
                        *hab += w[2 * i + a] * c * w[2 * j + b];
                    }
                }
            }
        }
        // Symmetric 2×2 [[a, b], [b, c]]: λ = m ± r, eigenvector of λ₁ = (b, λ₁ − a).
        let (a, b, c) = (h[0][0], h[0][1], h[1][1]);
        let m = (a + c) / 2.0;
        let r = (((a - c) / 2.0).powi(2) + b * b).sqrt();
        let l1 = m + r;
        let v = if b.abs() > 1e-12 {
            [b, l1 - a]
        } else if a >= c {
            [1.0, 0.0]
        } else {
            [0.0, 1.0]
        };
        let n = (v[0] * v[0] + v[1] * v[1]).sqrt();
        ([v[0] / n, v[1] / n], (m - r) / l1)
    }

    fn vat_model() -> (Tensor, Tensor, impl Fn(&Tensor) -> Result<Tensor>) {
        let w = t32(&W, (3, 2));
        let x = t32(&X, (2, 2));
        let wt = w.t().unwrap();
        let fwd = move |x: &Tensor| x.matmul(&wt);
        let clean = fwd(&x).unwrap();
        (x, clean, fwd)
    }

    #[test]
    fn vat_perturbation_has_radius_eps_along_the_top_fisher_eigenvector() -> Result<()> {
        let (x, clean, fwd) = vat_model();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let r = vat_perturbation(&fwd, &x, &clean, 1e-2, VAT_EPS, 10, &mut rng)?;
        assert_eq!(r.dims(), x.dims());
        let r = r.to_vec2::<f32>()?;
        let xs = x.to_vec2::<f32>()?;
        for (b, rb) in r.iter().enumerate() {
            let norm = ((rb[0] * rb[0] + rb[1] * rb[1]) as f64).sqrt();
            assert!((norm - VAT_EPS).abs() < 1e-4, "sample {b}: ‖r‖ = {norm}");
            let (v, ratio) = fisher_top_eigenvector([xs[b][0] as f64, xs[b][1] as f64]);
            // The check means something only with an eigengap (0.12 and 0.55 here).
            assert!(ratio < 0.6, "sample {b}: λ₂/λ₁ = {ratio}");
            let cos = (rb[0] as f64 * v[0] + rb[1] as f64 * v[1]).abs() / norm;
            assert!(
                cos > 0.99,
                "sample {b}: |cos| = {cos}, r = {rb:?}, v = {v:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn vat_perturbation_keeps_radius_eps_with_usb_defaults_and_a_large_batch() -> Result<()> {
        // USB: xi = 1e-6, one iteration. With 128 rows the raw gradient of the batch-mean KL is
        // ~1e-6 · λ / 128 ≈ 1e-9 per sample, below the 1e-8 guard: unscaled, ‖r_adv‖ ≈ 0.6, not 6.
        let (_, _, fwd) = vat_model();
        let x = Tensor::from_vec(X.repeat(64), (128, 2), &Device::Cpu)?;
        let clean = fwd(&x)?;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let r = vat_perturbation(&fwd, &x, &clean, VAT_XI, VAT_EPS, VAT_ITERS, &mut rng)?;
        for (b, rb) in r.to_vec2::<f32>()?.iter().enumerate() {
            let norm = ((rb[0] * rb[0] + rb[1] * rb[1]) as f64).sqrt();
            assert!((norm - VAT_EPS).abs() < 1e-3, "sample {b}: ‖r‖ = {norm}");
        }
        let (x1, c1, _) = vat_model();
        let zero = vat_perturbation(&fwd, &x1, &c1, 0.0, VAT_EPS, 1, &mut rng).unwrap_err();
        assert!(zero.to_string().contains("xi > 0"), "{zero}");
        Ok(())
    }

    #[test]
    fn vat_perturbation_is_deterministic_from_the_seed() -> Result<()> {
        let (x, clean, fwd) = vat_model();
        let run = |seed, iters| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            vat_perturbation(&fwd, &x, &clean, VAT_XI, VAT_EPS, iters, &mut rng)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(run(3, 1), run(3, 1));
        // With no power iteration r_adv is eps times the normalised random draw: the seed shows.
        assert_ne!(run(3, 0), run(4, 0));
        let r0 = run(3, 0);
        for b in 0..2 {
            let n = (r0[2 * b].powi(2) + r0[2 * b + 1].powi(2)).sqrt();
            assert!((n as f64 - VAT_EPS).abs() < 1e-4, "{n}");
        }
        Ok(())
    }

    #[test]
    fn vat_perturbation_survives_a_zero_gradient() -> Result<()> {
        let (x, clean, _) = vat_model();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // A model whose output does not depend on its input: g = 0, so r_adv = 0, not NaN.
        let flat = |x: &Tensor| x.matmul(&Tensor::zeros((2, 3), DType::F32, x.device())?)? + 1.0;
        let r = vat_perturbation(&flat, &x, &clean, 1e-2, VAT_EPS, 2, &mut rng)?;
        assert_eq!(r.flatten_all()?.to_vec1::<f32>()?, [0.0; 4]);
        // One that does not even reach its input: same.
        let cut = |_: &Tensor| Ok(clean.clone());
        let r = vat_perturbation(&cut, &x, &clean, 1e-2, VAT_EPS, 1, &mut rng)?;
        assert_eq!(r.flatten_all()?.to_vec1::<f32>()?, [0.0; 4]);
        Ok(())
    }

    #[test]
    fn vat_loss_is_the_kl_at_the_adversarial_point_and_trains_the_model_only() -> Result<()> {
        // In f64: W is a Var; r_adv (detached) and the clean prediction are constants.
        let w = Var::from_tensor(&t64(&W.map(|v| v as f64), (3, 2)))?;
        let x = t64(&X.map(|v| v as f64), (2, 2));
        let fwd = |x: &Tensor| x.matmul(&w.as_tensor().t()?);
        let clean = Var::from_tensor(&fwd(&x)?.detach())?;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let loss = vat_loss(&fwd, &x, clean.as_tensor(), 1e-3, 2.0, 3, &mut rng)?;
        let r = vat_perturbation(
            &fwd,
            &x,
            clean.as_tensor(),
            1e-3,
            2.0,
            3,
            &mut ChaCha8Rng::seed_from_u64(11),
        )?;
        let kl = |w: &Tensor| kl_div_softmax(clean.as_tensor(), &(&x + &r)?.matmul(&w.t()?)?);
        assert!((scalar(&loss) - scalar(&kl(w.as_tensor())?)).abs() < 1e-12);
        assert!(
            scalar(&loss) > 1e-3,
            "the adversarial point moves the prediction"
        );
        let grads = loss.backward()?;
        assert!(
            grads.get(clean.as_tensor()).is_none(),
            "clean prediction is a constant"
        );
        let g = grads
            .get(w.as_tensor())
            .expect("gradient reaches W")
            .flatten_all()?;
        // The gradient w.r.t. W is that of the KL at the fixed r_adv (finite differences).
        let err = max_error(kl, w.as_tensor(), 1e-6)?;
        assert!(err < 1e-8, "{err}");
        let want = {
            let v = Var::from_tensor(w.as_tensor())?;
            let gr = kl(v.as_tensor())?.backward()?;
            gr.get(v.as_tensor()).expect("gradient").flatten_all()?
        };
        let diff = scalar(&(g - want)?.abs()?.max(0)?);
        assert!(diff < 1e-12, "{diff}");
        Ok(())
    }
}
