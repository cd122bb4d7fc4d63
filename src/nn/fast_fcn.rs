//! The whole CoDATS FCN in training mode — 3 × [conv → batch norm → ReLU] → global average
//! pooling — as one candle op with a hand-written backward pass.
//!
//! Built from the same pieces as the per-layer ops in [`super::fast`], but the activations never
//! become candle tensors. That matters on the CPU: candle's backward pass accumulates every
//! tensor's gradient as `zeros_like(t) + g` (a fresh zero-filled buffer and an add per
//! activation), and global average pooling's backward broadcasts through two more full-size ops;
//! together about a third of a training step at batch 128. Fusing also drops the copies
//! between layers:
//!
//! * each batch-norm + ReLU writes straight into the next convolution's zero-padded input
//!   `[B, T+K−1, C]`, whose rows, read with a row stride of `C`, are that convolution's im2col
//!   matrix (see [`super::fast`]);
//! * batch norm reads the convolution's GEMM output in place, skipping the `K−1` rows per sequence
//!   that straddle two sequences;
//! * the backward batch norm writes `dz` straight into the padded layout that both the weight
//!   gradient and the input gradient GEMMs read.
//!
//! Per-channel sums run over fixed groups of whole sequences and are combined in order in f64, so
//! results do not depend on the thread count. The parameters enter packed into one vector
//! (`[w1, w2, w3, γ1, β1, γ2, β2, γ3, β3]`, weights in `[Cout, Cin, K]`), and the gradient comes
//! back in the same packing; `tests/fast_kernels.rs` checks it against the plain candle model.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::fast::{
    bn_bwd_dx, bn_bwd_sums, kernel_to_kc, pad_rows_into, padded_interior, relu_sum_rows,
    scale_shift_relu, slice, sq_dev_rows, sum_rows, tensor, BnBatch, BufferPool, Windows,
    ROW_CHUNK,
};
use crate::profile::{span, Phase};

/// Batch statistics (mean, biased variance) of each layer, from the latest forward pass.
pub type LayerStats = Vec<(Vec<f64>, Vec<f64>)>;

/// What the forward pass keeps for the backward pass, per layer.
struct Saved {
    /// Padded input `[B, T+K−1, Cin]` of each convolution (for layers 2–3 this is also the
    /// previous layer's ReLU output, in its interior rows).
    xp: Vec<Vec<f32>>,
    /// Convolution outputs `[B·(T+K−1) − (K−1), Cout]`; sequence `b`'s rows start at `b·(T+K−1)`.
    zp: Vec<Vec<f32>>,
    /// Each layer's batch norm + ReLU.
    bn: Vec<BnBatch>,
}

/// Training-mode FCN forward/backward on channels-last input `[B, T, Cin]`; output `[B, C_last]`.
pub struct FcnTrain {
    /// (filters, kernel size) per layer.
    layers: Vec<(usize, usize)>,
    eps: f64,
    saved: Mutex<Option<Saved>>,
    stats: Arc<Mutex<LayerStats>>,
    pool: Arc<BufferPool>,
}

/// Rows of sequence `bi` inside a buffer that stores sequences `stride` rows apart.
#[derive(Clone, Copy)]
pub(super) struct Rows {
    pub stride: usize,
}

impl Rows {
    pub fn of<'a>(&self, buf: &'a [f32], bi: usize, t: usize, c: usize) -> &'a [f32] {
        let r = bi * self.stride;
        &buf[r * c..(r + t) * c]
    }
}

/// Sequences per reduction group (whole sequences, about [`ROW_CHUNK`] rows).
fn group(t: usize) -> usize {
    (ROW_CHUNK / t.max(1)).max(1)
}

/// Per-channel sums over the sequences `0..b`: `f(bi, acc1, acc2)` accumulates sequence `bi`
/// in f32; fixed groups of sequences are combined in order in f64.
pub(super) fn sequence_sums(
    b: usize,
    t: usize,
    c: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) -> (Vec<f64>, Vec<f64>) {
    let g = group(t);
    let parts: Vec<(Vec<f32>, Vec<f32>)> = (0..b.div_ceil(g))
        .into_par_iter()
        .map(|gi| {
            let mut s1 = vec![0.0f32; c];
            let mut s2 = vec![0.0f32; c];
            for bi in gi * g..((gi + 1) * g).min(b) {
                f(bi, &mut s1, &mut s2);
            }
            (s1, s2)
        })
        .collect();
    let mut s1 = vec![0.0f64; c];
    let mut s2 = vec![0.0f64; c];
    for (a, bb) in parts {
        for i in 0..c {
            s1[i] += a[i] as f64;
            s2[i] += bb[i] as f64;
        }
    }
    (s1, s2)
}

/// Per-channel mean and biased variance of the rows of `b` sequences, in one pass over memory:
/// each fixed group of sequences (small enough to stay in cache) gets its own mean and sum of
/// squared deviations, and the groups are merged in order in f64 (Chan et al.'s pairwise update).
pub(super) fn batch_stats(
    z: &[f32],
    rows: Rows,
    b: usize,
    t: usize,
    c: usize,
) -> (Vec<f64>, Vec<f64>) {
    /// One group's row count, per-channel sum, centre (its own mean) and Σ(x − centre)².
    struct Group {
        n: usize,
        sum: Vec<f32>,
        centre: Vec<f32>,
        sq: Vec<f32>,
    }
    let g = group(t);
    let parts: Vec<Group> = (0..b.div_ceil(g))
        .into_par_iter()
        .map(|gi| {
            let seqs = gi * g..((gi + 1) * g).min(b);
            let n = seqs.len() * t;
            let mut sum = vec![0.0f32; c];
            for bi in seqs.clone() {
                sum_rows(rows.of(z, bi, t, c), &mut sum);
            }
            let centre: Vec<f32> = sum.iter().map(|s| s / n as f32).collect();
            let mut sq = vec![0.0f32; c];
            for bi in seqs {
                sq_dev_rows(rows.of(z, bi, t, c), &centre, &mut sq);
            }
            Group { n, sum, centre, sq }
        })
        .collect();
    let total = (b * t) as f64;
    let mut mean = vec![0.0f64; c];
    for part in &parts {
        mean.iter_mut()
            .zip(&part.sum)
            .for_each(|(m, &s)| *m += s as f64);
    }
    mean.iter_mut().for_each(|m| *m /= total);
    // Σ(x − μ)² = Σ(x − c)² + 2(c − μ)·Σ(x − c) + n·(c − μ)² for each group's centre c.
    let mut m2 = vec![0.0f64; c];
    for part in &parts {
        let n = part.n as f64;
        for i in 0..c {
            let ci = part.centre[i] as f64;
            let d = ci - mean[i];
            m2[i] += part.sq[i] as f64 + 2.0 * d * (part.sum[i] as f64 - n * ci) + n * d * d;
        }
    }
    let var = m2.iter().map(|v| (v / total).max(0.0)).collect();
    (mean, var)
}

impl FcnTrain {
    /// Runs the training-mode FCN on `x` `[B, Cin, T]` with the layer parameters
    /// `(conv weight [Cout, Cin, K], γ, β)`; returns the pooled features `[B, C_last]` and the
    /// batch statistics each layer used (for the running averages). Activation buffers come from
    /// and go back to `pool`.
    pub fn apply(
        x: &Tensor,
        params: &[(&Tensor, &Tensor, &Tensor)],
        eps: f64,
        pool: &Arc<BufferPool>,
    ) -> Result<(Tensor, LayerStats)> {
        let mut flat = Vec::new();
        let mut layers = Vec::new();
        for (w, _, _) in params {
            layers.push((w.dim(0)?, w.dim(2)?));
            flat.push(w.flatten_all()?);
        }
        for (_, g, b) in params {
            flat.push(g.flatten_all()?);
            flat.push(b.flatten_all()?);
        }
        let packed = Tensor::cat(&flat, 0)?;
        let stats = Arc::new(Mutex::new(Vec::new()));
        let y = x.transpose(1, 2)?.contiguous()?.apply_op2(
            &packed,
            FcnTrain {
                layers,
                eps,
                saved: Mutex::new(None),
                stats: stats.clone(),
                pool: pool.clone(),
            },
        )?;
        let stats = std::mem::take(&mut *stats.lock().expect("stats lock"));
        Ok((y, stats))
    }

    /// Offsets of (weight, γ, β) of each layer in the packed parameter vector.
    fn offsets(&self, cin0: usize) -> Vec<(usize, usize, usize)> {
        let mut w_off = Vec::new();
        let mut at = 0;
        let mut cin = cin0;
        for &(cout, k) in &self.layers {
            w_off.push(at);
            at += cout * cin * k;
            cin = cout;
        }
        self.layers
            .iter()
            .zip(w_off)
            .map(|(&(cout, _), w)| {
                let g = at;
                at += 2 * cout;
                (w, g, g + cout)
            })
            .collect()
    }

    fn packed_len(&self, cin0: usize) -> usize {
        let (_, _, last_b) = *self.offsets(cin0).last().expect("at least one layer");
        last_b + self.layers.last().expect("at least one layer").0
    }
}

impl CustomOp2 for FcnTrain {
    fn name(&self) -> &'static str {
        "codats-fcn-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, t, cin0) = l1.shape().dims3()?;
        let p = slice(s2, l2)?;
        if p.len() != self.packed_len(cin0) {
            candle_core::bail!(
                "fcn: {} packed parameters, expected {}",
                p.len(),
                self.packed_len(cin0)
            );
        }
        let offs = self.offsets(cin0);
        let pool = &self.pool;
        let mut saved = Saved {
            xp: Vec::new(),
            zp: Vec::new(),
            bn: Vec::new(),
        };
        let mut stats = Vec::new();
        let (_, k0) = self.layers[0];
        let mut xp = pool.take(b * (t + k0 - 1) * cin0);
        pad_rows_into(slice(s1, l1)?, t, cin0, (k0 - 1) / 2, &mut xp);
        let mut cin = cin0;
        let mut feat = vec![0.0f32; b * self.layers[self.layers.len() - 1].0];
        for (li, &(cout, k)) in self.layers.iter().enumerate() {
            let (wo, go, bo) = offs[li];
            let (gamma, beta) = (&p[go..go + cout], &p[bo..bo + cout]);
            let win = Windows { b, t, k };
            let z_rows = Rows {
                stride: win.stride(),
            };
            let mut zp = pool.take(win.starts() * cout);
            {
                let _conv = span(Phase::Conv);
                let w_kc = kernel_to_kc(&p[wo..wo + cout * cin * k], cout, cin, k);
                win.conv_into(&xp, cin, &w_kc, cout, &mut zp);
            }
            let bn_span = span(Phase::BnForward);
            let (mean, var) = batch_stats(&zp, z_rows, b, t, cout);
            let bn = BnBatch::new(&mean, &var, gamma, beta, self.eps);
            let (scale, shift) = (&bn.scale, &bn.shift);
            match self.layers.get(li + 1) {
                // The ReLU output goes straight into the next convolution's padded input.
                Some(&(_, kn)) => {
                    let (tn, left) = (t + kn - 1, (kn - 1) / 2);
                    let mut next = pool.take(b * tn * cout);
                    next.par_chunks_mut(tn * cout)
                        .enumerate()
                        .for_each(|(bi, d)| {
                            let out = padded_interior(d, left, t, cout);
                            scale_shift_relu(z_rows.of(&zp, bi, t, cout), scale, shift, out)
                        });
                    saved.xp.push(std::mem::replace(&mut xp, next));
                }
                // After the last layer only the time average of the ReLU output is needed.
                None => {
                    saved.xp.push(std::mem::take(&mut xp));
                    let inv_t = 1.0 / t as f32;
                    feat.par_chunks_mut(cout).enumerate().for_each(|(bi, f)| {
                        relu_sum_rows(z_rows.of(&zp, bi, t, cout), scale, shift, f);
                        f.iter_mut().for_each(|v| *v *= inv_t);
                    });
                }
            }
            drop(bn_span);
            saved.zp.push(zp);
            saved.bn.push(bn);
            stats.push((mean, var));
            cin = cout;
        }
        *self.saved.lock().expect("saved lock") = Some(saved);
        *self.stats.lock().expect("stats lock") = stats;
        Ok((CpuStorage::F32(feat), Shape::from((b, cin))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        packed: &Tensor,
        _res: &Tensor,
        dfeat: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Data needs no input gradient; an input that is (derived from) a variable gets one
        // (VAT's adversarial direction), at the cost of one more GEMM for the first layer.
        let want_dx = x.track_op();
        let (b, t, cin0) = x.dims3()?;
        let mut dx_input = None;
        let mut saved = self
            .saved
            .lock()
            .expect("saved lock")
            .take()
            .ok_or_else(|| {
                candle_core::Error::Msg("fcn backward without (or after) its forward".into())
            })?;
        let pool = &self.pool;
        let p = packed.to_vec1::<f32>()?;
        let offs = self.offsets(cin0);
        let nl = self.layers.len();
        // d(mean over time): every time step of sequence b gets dfeat[b] / T, kept as one row
        // per sequence and broadcast over time (row stride 0) instead of materialised.
        let mut dy: Vec<f32> = dfeat
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|v| v / t as f32)
            .collect();
        // Rows per sequence in `dy` (1: broadcast over time), and floats per row step (0: broadcast).
        let mut dy_seq = 1;
        let mut dy_stride = 0;
        let mut grads = vec![0.0f32; p.len()];
        let nf = (b * t) as f32;
        for li in (0..nl).rev() {
            let (cout, k) = self.layers[li];
            let cin = if li == 0 { cin0 } else { self.layers[li - 1].0 };
            let (wo, go, bo) = offs[li];
            let gamma = &p[go..go + cout];
            let win = Windows { b, t, k };
            let tp = win.stride();
            let z_rows = Rows { stride: tp };
            let zp = saved.zp.pop().expect("one per layer");
            let bn = &saved.bn[li];
            let dy_of = |bi: usize| {
                let len = if dy_stride == 0 { cout } else { t * cout };
                &dy[bi * dy_seq * cout..bi * dy_seq * cout + len]
            };
            let bn_span = span(Phase::BnBackward);
            // Σ dz and Σ dz·(z − μ) per channel, dz = dy·[z·scale + shift > 0].
            let mask = bn.mask_params();
            let (s1, s2) = sequence_sums(b, t, cout, |bi, a, bb| {
                let z = z_rows.of(&zp, bi, t, cout);
                bn_bwd_sums(z, dy_of(bi), dy_stride, &mask, a, bb)
            });
            let g = bn.backward(&s1, &s2, gamma, nf);
            grads[go..go + cout].copy_from_slice(&g.dgamma);
            grads[bo..bo + cout].copy_from_slice(&g.dbeta);
            let pp = g.dx_params(bn);
            // dz into the padded layout [B, T+K−1, Cout] with `lead` zero rows first: read from
            // row `lead` on it lines up with the forward's window starts (weight gradient), and
            // as a whole it is the input of the flipped convolution (input gradient).
            let lead = k - 1 - (k - 1) / 2;
            let mut dzq = pool.take(b * tp * cout);
            dzq.par_chunks_mut(tp * cout)
                .enumerate()
                .for_each(|(bi, d)| {
                    let out = padded_interior(d, lead, t, cout);
                    let z = z_rows.of(&zp, bi, t, cout);
                    bn_bwd_dx(z, dy_of(bi), dy_stride, &pp, nf, out)
                });
            drop(bn_span);
            pool.give(zp);
            let _conv = span(Phase::Conv);
            let w = &p[wo..wo + cout * cin * k];
            let xp = saved.xp.pop().expect("one per layer");
            grads[wo..wo + w.len()].copy_from_slice(&win.weight_grad(&dzq, lead, &xp, cin, cout));
            pool.give(xp);
            if li > 0 {
                let mut dx = pool.take(win.starts() * cin);
                win.input_grad_into(&dzq, w, cin, cout, &mut dx);
                pool.give(std::mem::replace(&mut dy, dx));
                dy_seq = tp;
                dy_stride = cin;
            } else if want_dx {
                // Sequence b's gradient is rows b·(T+K−1) .. b·(T+K−1) + T, as for the layers above.
                let mut dx = pool.take(win.starts() * cin);
                win.input_grad_into(&dzq, w, cin, cout, &mut dx);
                let mut out = vec![0.0f32; b * t * cin];
                out.par_chunks_mut(t * cin).enumerate().for_each(|(bi, o)| {
                    o.copy_from_slice(&dx[bi * tp * cin..bi * tp * cin + t * cin])
                });
                pool.give(dx);
                dx_input = Some(Tensor::from_vec(out, (b, t, cin), x.device())?);
            }
            pool.give(dzq);
        }
        pool.give(dy);
        let n = grads.len();
        Ok((dx_input, Some(tensor(grads, n)?)))
    }
}
