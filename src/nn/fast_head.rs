//! The domain classifier in training mode — [linear (no bias) → batch norm → ReLU → dropout] × 2
//! → linear — as one candle op with a hand-written backward pass.
//!
//! Its products are small (batch × 128 × 500, batch × 500 × 500), so as plain candle ops the
//! head is dominated by per-op overhead: dozens of ops, each allocating its output, most of them
//! on one core. Timed inside a batch-128 step: the head's forward 4.1 → 2.7 ms (the op itself
//! 1.5 ms; the rest is drawing dropout masks), and candle's backward outside the FCN 12.5 →
//! ≈ 8 ms (the op itself 2.8 ms). As one op it is a handful of GEMMs and row loops. The batch-norm arithmetic is the
//! FCN's (see [`super::fast_fcn`]), on `[B, H]` rows. Dropout masks are drawn by the caller from
//! the run's RNG in the same order as the candle path draws them, so both paths see the same
//! units dropped. Parameters enter packed (`[W1, W2, W_out, b_out, γ1, β1, γ2, β2]`, weights
//! `[out, in]`) and their gradient comes back in the same packing.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::fast::{bn_bwd_dx, bn_bwd_sums, gemm, scale_shift_relu, slice, tensor, BnBatch};
use super::fast_fcn::{batch_stats, sequence_sums, LayerStats, Rows};
use crate::profile::{span, Phase};

/// What the forward pass keeps for the backward pass, per hidden layer.
struct Saved {
    /// Input of the head `[B, F]`.
    h: Vec<f32>,
    /// Per hidden layer: the linear output (BN input) `[B, H]`, the dropout output `[B, H]`,
    /// and the batch norm + ReLU.
    a: Vec<Vec<f32>>,
    d: Vec<Vec<f32>>,
    bn: Vec<BnBatch>,
}

/// Training-mode domain head on features `[B, F]` with dropout masks `[L, B, H]`; output
/// logits `[B, D]`.
pub struct DomainHeadTrain {
    /// Input width F, hidden width H, hidden layers L, outputs D.
    f: usize,
    h: usize,
    layers: usize,
    d: usize,
    eps: f64,
    saved: Mutex<Option<Saved>>,
    stats: Arc<Mutex<LayerStats>>,
}

/// The head's parameters, as the candle path names them.
pub struct HeadParams<'a> {
    /// Hidden linear weights `[H, in]`.
    pub hidden: Vec<&'a Tensor>,
    /// (γ, β) of each hidden layer's batch norm.
    pub bn: Vec<(&'a Tensor, &'a Tensor)>,
    /// Output weight `[D, H]` and bias `[D]`.
    pub out: (&'a Tensor, &'a Tensor),
}

impl DomainHeadTrain {
    /// Runs the head on `x` `[B, F]` with `masks` `[L·B·H]` (0 or 1/(1−p) per unit); returns the
    /// logits and each hidden batch norm's (mean, biased variance).
    pub fn apply(
        x: &Tensor,
        params: &HeadParams,
        masks: Vec<f32>,
        eps: f64,
    ) -> Result<(Tensor, LayerStats)> {
        let (b, f) = x.dims2()?;
        let (d, h) = params.out.0.dims2()?;
        let layers = params.hidden.len();
        if masks.len() != layers * b * h {
            candle_core::bail!(
                "domain head: {} mask values for {layers} layers of [{b}, {h}]",
                masks.len()
            );
        }
        let mut flat = Vec::new();
        for w in &params.hidden {
            flat.push(w.flatten_all()?);
        }
        flat.push(params.out.0.flatten_all()?);
        flat.push(params.out.1.flatten_all()?);
        for (g, be) in &params.bn {
            flat.push(g.flatten_all()?);
            flat.push(be.flatten_all()?);
        }
        let packed = Tensor::cat(&flat, 0)?;
        let masks = tensor(masks, (layers, b, h))?;
        let stats = Arc::new(Mutex::new(Vec::new()));
        let op = DomainHeadTrain {
            f,
            h,
            layers,
            d,
            eps,
            saved: Mutex::new(None),
            stats: stats.clone(),
        };
        let logits = x.contiguous()?.apply_op3(&packed, &masks, op)?;
        let stats = std::mem::take(&mut *stats.lock().expect("stats lock"));
        Ok((logits, stats))
    }

    /// Offsets of the hidden weights, the output weight and bias, and each layer's (γ, β).
    fn offsets(&self) -> (Vec<usize>, usize, usize, Vec<(usize, usize)>, usize) {
        let mut at = 0;
        let mut hidden = Vec::new();
        for l in 0..self.layers {
            hidden.push(at);
            at += self.h * if l == 0 { self.f } else { self.h };
        }
        let w_out = at;
        at += self.d * self.h;
        let b_out = at;
        at += self.d;
        let mut bn = Vec::new();
        for _ in 0..self.layers {
            bn.push((at, at + self.h));
            at += 2 * self.h;
        }
        (hidden, w_out, b_out, bn, at)
    }
}

impl CustomOp3 for DomainHeadTrain {
    fn name(&self) -> &'static str {
        "codats-domain-head-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _span = span(Phase::HeadForward);
        let (b, _) = l1.shape().dims2()?;
        let (x, p, masks) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let (hidden, w_out, b_out, bn, len) = self.offsets();
        if p.len() != len {
            candle_core::bail!("domain head: {} packed parameters, expected {len}", p.len());
        }
        let (h, d) = (self.h, self.d);
        let mut saved = Saved {
            h: x.to_vec(),
            a: Vec::new(),
            d: Vec::new(),
            bn: Vec::new(),
        };
        let mut stats = Vec::new();
        let rows = Rows { stride: 1 };
        for l in 0..self.layers {
            let (input, cin) = match saved.d.last() {
                Some(prev) => (&prev[..], h),
                None => (x, self.f),
            };
            let mut a = vec![0.0f32; b * h];
            let w = &p[hidden[l]..hidden[l] + h * cin];
            gemm(b, h, cin, &mut a, input, (cin, 1), w, (1, cin), false);
            let (mean, var) = batch_stats(&a, rows, b, 1, h);
            let (go, bo) = bn[l];
            let norm = BnBatch::new(&mean, &var, &p[go..go + h], &p[bo..bo + h], self.eps);
            let mut out = vec![0.0f32; b * h];
            scale_shift_relu(&a, &norm.scale, &norm.shift, &mut out);
            let mask = &masks[l * b * h..(l + 1) * b * h];
            out.iter_mut().zip(mask).for_each(|(o, m)| *o *= m);
            saved.a.push(a);
            saved.d.push(out);
            saved.bn.push(norm);
            stats.push((mean, var));
        }
        let last = saved.d.last().map_or(x, |v| &v[..]);
        let mut logits = vec![0.0f32; b * d];
        let w = &p[w_out..w_out + d * h];
        gemm(b, d, h, &mut logits, last, (h, 1), w, (1, h), false);
        for row in logits.chunks_exact_mut(d) {
            row.iter_mut()
                .zip(&p[b_out..b_out + d])
                .for_each(|(v, bias)| *v += bias);
        }
        *self.saved.lock().expect("saved lock") = Some(saved);
        *self.stats.lock().expect("stats lock") = stats;
        Ok((CpuStorage::F32(logits), Shape::from((b, d))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        packed: &Tensor,
        masks: &Tensor,
        _res: &Tensor,
        dlogits: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let saved = self
            .saved
            .lock()
            .expect("saved lock")
            .take()
            .ok_or_else(|| {
                candle_core::Error::Msg(
                    "domain head backward without (or after) its forward".into(),
                )
            })?;
        let _span = span(Phase::HeadBackward);
        let (b, f) = x.dims2()?;
        let (h, d) = (self.h, self.d);
        let p = packed.to_vec1::<f32>()?;
        let masks = masks.flatten_all()?.to_vec1::<f32>()?;
        let dl = dlogits.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let (hidden, w_out, b_out, bn, len) = self.offsets();
        let mut grads = vec![0.0f32; len];
        // Output layer: dW = dlᵀ·d, db = Σ dl, d(input) = dl·W.
        let last = saved.d.last().unwrap_or(&saved.h);
        let cin = if self.layers == 0 { f } else { h };
        gemm(
            d,
            cin,
            b,
            &mut grads[w_out..w_out + d * cin],
            &dl,
            (1, d),
            last,
            (cin, 1),
            false,
        );
        for row in dl.chunks_exact(d) {
            grads[b_out..b_out + d]
                .iter_mut()
                .zip(row)
                .for_each(|(g, v)| *g += v);
        }
        let mut dy = vec![0.0f32; b * cin];
        let w = &p[w_out..w_out + d * cin];
        gemm(b, cin, d, &mut dy, &dl, (d, 1), w, (cin, 1), false);
        let rows = Rows { stride: 1 };
        let nf = b as f32;
        for l in (0..self.layers).rev() {
            // Through dropout: the gradient reaches only the kept units, scaled like them.
            let mask = &masks[l * b * h..(l + 1) * b * h];
            dy.iter_mut().zip(mask).for_each(|(g, m)| *g *= m);
            let (a, norm) = (&saved.a[l], &saved.bn[l]);
            let mask_p = norm.mask_params();
            let (s1, s2) = sequence_sums(b, 1, h, |bi, acc1, acc2| {
                let (z, g) = (rows.of(a, bi, 1, h), rows.of(&dy, bi, 1, h));
                bn_bwd_sums(z, g, h, &mask_p, acc1, acc2)
            });
            let (go, bo) = bn[l];
            let g = norm.backward(&s1, &s2, &p[go..go + h], nf);
            grads[go..go + h].copy_from_slice(&g.dgamma);
            grads[bo..bo + h].copy_from_slice(&g.dbeta);
            let pp = g.dx_params(norm);
            let mut da = vec![0.0f32; b * h];
            bn_bwd_dx(a, &dy, h, &pp, nf, &mut da);
            let (input, cin) = if l == 0 {
                (&saved.h, f)
            } else {
                (&saved.d[l - 1], h)
            };
            let wo = hidden[l];
            gemm(
                h,
                cin,
                b,
                &mut grads[wo..wo + h * cin],
                &da,
                (1, h),
                input,
                (cin, 1),
                false,
            );
            dy = vec![0.0f32; b * cin];
            gemm(
                b,
                cin,
                h,
                &mut dy,
                &da,
                (h, 1),
                &p[wo..wo + h * cin],
                (cin, 1),
                false,
            );
        }
        let dx = if x.track_op() {
            Some(tensor(dy, (b, f))?)
        } else {
            None
        };
        Ok((dx, Some(tensor(grads, len)?), None))
    }
}
