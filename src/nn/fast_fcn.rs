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
    bn_bwd_dx, bn_bwd_sums, filled_by, kernel_to_kc, pad_rows, scale_shift_relu, slice,
    sq_dev_rows, sum_rows, tensor, ConvTimer, Windows, ROW_CHUNK,
};

/// Batch statistics (mean, biased variance) of each layer, from the latest forward pass.
pub type LayerStats = Vec<(Vec<f64>, Vec<f64>)>;

/// What the forward pass keeps for the backward pass, per layer.
struct Saved {
    /// Padded input `[B, T+K−1, Cin]` of each convolution (for layers 2–3 this is also the
    /// previous layer's ReLU output, in its interior rows).
    xp: Vec<Vec<f32>>,
    /// Convolution outputs `[B·(T+K−1) − (K−1), Cout]`; sequence `b`'s rows start at `b·(T+K−1)`.
    zp: Vec<Vec<f32>>,
    /// Last layer's ReLU output `[B, T, C]`.
    y_last: Vec<f32>,
    mean: Vec<Vec<f32>>,
    inv: Vec<Vec<f32>>,
}

/// Training-mode FCN forward/backward on channels-last input `[B, T, Cin]`; output `[B, C_last]`.
pub struct FcnTrain {
    /// (filters, kernel size) per layer.
    layers: Vec<(usize, usize)>,
    eps: f64,
    saved: Mutex<Option<Saved>>,
    stats: Arc<Mutex<LayerStats>>,
}

/// Rows of sequence `bi` inside a buffer that stores sequences `stride` rows apart.
#[derive(Clone, Copy)]
struct Rows {
    stride: usize,
    offset: usize,
}

impl Rows {
    fn of<'a>(&self, buf: &'a [f32], bi: usize, t: usize, c: usize) -> &'a [f32] {
        let r = bi * self.stride + self.offset;
        &buf[r * c..(r + t) * c]
    }
}

/// Sequences per reduction group (whole sequences, about [`ROW_CHUNK`] rows).
fn group(t: usize) -> usize {
    (ROW_CHUNK / t.max(1)).max(1)
}

/// Per-channel sums over the sequences `0..b`: `f(bi, acc1, acc2)` accumulates sequence `bi`
/// in f32; fixed groups of sequences are combined in order in f64.
fn sequence_sums(
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

impl FcnTrain {
    /// Runs the training-mode FCN on `x` `[B, Cin, T]` with the layer parameters
    /// `(conv weight [Cout, Cin, K], γ, β)`; returns the pooled features `[B, C_last]` and the
    /// batch statistics each layer used (for the running averages).
    pub fn apply(
        x: &Tensor,
        params: &[(&Tensor, &Tensor, &Tensor)],
        eps: f64,
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
        let n = (b * t) as f64;
        let mut saved = Saved {
            xp: Vec::new(),
            zp: Vec::new(),
            y_last: Vec::new(),
            mean: Vec::new(),
            inv: Vec::new(),
        };
        let mut stats = Vec::new();
        let (_, k0) = self.layers[0];
        let mut xp = pad_rows(slice(s1, l1)?, b, t, cin0, k0, (k0 - 1) / 2);
        let mut cin = cin0;
        for (li, &(cout, k)) in self.layers.iter().enumerate() {
            let (wo, go, bo) = offs[li];
            let (gamma, beta) = (&p[go..go + cout], &p[bo..bo + cout]);
            let win = Windows { b, t, k };
            let z_rows = Rows {
                stride: win.stride(),
                offset: 0,
            };
            let zp = {
                let _timer = ConvTimer(std::time::Instant::now());
                win.conv(
                    &xp,
                    cin,
                    &kernel_to_kc(&p[wo..wo + cout * cin * k], cout, cin, k),
                    cout,
                )
            };
            let (sum, _) = sequence_sums(b, t, cout, |bi, s, _| {
                sum_rows(z_rows.of(&zp, bi, t, cout), s)
            });
            let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
            let mean32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
            let (sq, _) = sequence_sums(b, t, cout, |bi, s, _| {
                sq_dev_rows(z_rows.of(&zp, bi, t, cout), &mean32, s)
            });
            let var: Vec<f64> = sq.iter().map(|s| s / n).collect();
            let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
            let scale: Vec<f32> = (0..cout)
                .map(|i| (gamma[i] as f64 * inv[i]) as f32)
                .collect();
            let shift: Vec<f32> = (0..cout).map(|i| beta[i] - mean32[i] * scale[i]).collect();
            // The ReLU output goes into the next convolution's padded input (or, after the last
            // layer, a plain [B, T, C] buffer for the pooling).
            let (tn, left_n) = match self.layers.get(li + 1) {
                Some(&(_, kn)) => (t + kn - 1, (kn - 1) / 2),
                None => (t, 0),
            };
            let next = filled_by(b * tn * cout, |dst| {
                dst.par_chunks_mut(tn * cout)
                    .enumerate()
                    .for_each(|(bi, d)| {
                        let out = &mut d[left_n * cout..(left_n + t) * cout];
                        scale_shift_relu(z_rows.of(&zp, bi, t, cout), &scale, &shift, out)
                    })
            });
            saved.xp.push(std::mem::replace(&mut xp, next));
            saved.zp.push(zp);
            saved.mean.push(mean32);
            saved.inv.push(inv.iter().map(|&v| v as f32).collect());
            stats.push((mean, var));
            cin = cout;
        }
        // Global average pooling over time.
        let y = xp;
        let mut feat = vec![0.0f32; b * cin];
        feat.par_chunks_mut(cin).enumerate().for_each(|(bi, f)| {
            sum_rows(&y[bi * t * cin..(bi + 1) * t * cin], f);
            let inv_t = 1.0 / t as f32;
            f.iter_mut().for_each(|v| *v *= inv_t);
        });
        saved.y_last = y;
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
        if x.track_op() {
            candle_core::bail!("fcn: the input gets no gradient (it is data)");
        }
        let (b, t, cin0) = x.dims3()?;
        let saved = self
            .saved
            .lock()
            .expect("saved lock")
            .take()
            .ok_or_else(|| {
                candle_core::Error::Msg("fcn backward without (or after) its forward".into())
            })?;
        let p = packed.to_vec1::<f32>()?;
        let offs = self.offsets(cin0);
        let nl = self.layers.len();
        let c_last = self.layers[nl - 1].0;
        // d(mean over time): every time step gets dfeat / T.
        let df = dfeat.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut dy = vec![0.0f32; b * t * c_last];
        dy.par_chunks_mut(t * c_last)
            .enumerate()
            .for_each(|(bi, d)| {
                let g = &df[bi * c_last..(bi + 1) * c_last];
                for row in d.chunks_exact_mut(c_last) {
                    for (o, v) in row.iter_mut().zip(g) {
                        *o = v / t as f32;
                    }
                }
            });
        let mut dy_rows = Rows {
            stride: t,
            offset: 0,
        };
        let mut grads = vec![0.0f32; p.len()];
        let nf = (b * t) as f32;
        for li in (0..nl).rev() {
            let (cout, k) = self.layers[li];
            let cin = if li == 0 { cin0 } else { self.layers[li - 1].0 };
            let (wo, go, bo) = offs[li];
            let gamma = &p[go..go + cout];
            let win = Windows { b, t, k };
            let tp = win.stride();
            let z_rows = Rows {
                stride: tp,
                offset: 0,
            };
            let (ybuf, y_rows) = match self.layers.get(li + 1) {
                Some(&(_, kn)) => (
                    &saved.xp[li + 1],
                    Rows {
                        stride: t + kn - 1,
                        offset: (kn - 1) / 2,
                    },
                ),
                None => (
                    &saved.y_last,
                    Rows {
                        stride: t,
                        offset: 0,
                    },
                ),
            };
            let (zp, mean, inv) = (&saved.zp[li], &saved.mean[li], &saved.inv[li]);
            // Σ dz and Σ dz·(z − μ) per channel, dz = dy·[y > 0].
            let (s1, s2) = sequence_sums(b, t, cout, |bi, a, bb| {
                bn_bwd_sums(
                    z_rows.of(zp, bi, t, cout),
                    y_rows.of(ybuf, bi, t, cout),
                    dy_rows.of(&dy, bi, t, cout),
                    mean,
                    a,
                    bb,
                )
            });
            let s2: Vec<f64> = s2.iter().zip(inv).map(|(s, &v)| s * v as f64).collect();
            for i in 0..cout {
                grads[go + i] = s2[i] as f32;
                grads[bo + i] = s1[i] as f32;
            }
            let coef: Vec<f32> = (0..cout).map(|i| gamma[i] * inv[i] / nf).collect();
            let m1: Vec<f32> = s1.iter().map(|&v| v as f32).collect();
            let m2: Vec<f32> = s2.iter().map(|&v| v as f32).collect();
            // dz into the padded layout [B, T+K−1, Cout] with `shift` zero rows first: read from
            // row `shift` on it lines up with the forward's window starts (weight gradient), and
            // as a whole it is the input of the flipped convolution (input gradient).
            let shift = k - 1 - (k - 1) / 2;
            let dzq = filled_by(b * tp * cout, |dst| {
                dst.par_chunks_mut(tp * cout)
                    .enumerate()
                    .for_each(|(bi, d)| {
                        let pp = [&mean[..], &inv[..], &coef[..], &m1[..], &m2[..]];
                        bn_bwd_dx(
                            z_rows.of(zp, bi, t, cout),
                            y_rows.of(ybuf, bi, t, cout),
                            dy_rows.of(&dy, bi, t, cout),
                            &pp,
                            nf,
                            &mut d[shift * cout..(shift + t) * cout],
                        )
                    })
            });
            let _timer = ConvTimer(std::time::Instant::now());
            let w = &p[wo..wo + cout * cin * k];
            grads[wo..wo + w.len()].copy_from_slice(&win.weight_grad(
                &dzq,
                shift,
                &saved.xp[li],
                cin,
                cout,
            ));
            if li > 0 {
                dy = win.input_grad(&dzq, w, cin, cout);
                dy_rows = Rows {
                    stride: tp,
                    offset: 0,
                };
            }
        }
        let n = grads.len();
        Ok((None, Some(tensor(grads, n)?)))
    }
}
