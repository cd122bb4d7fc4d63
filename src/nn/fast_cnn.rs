//! The small image CNN ([`super::backbones::SmallCnn`]) as one candle op with a hand-written
//! backward pass, in the manner of [`super::fast_fcn`]: five [3×3 conv → batch norm → ReLU]
//! blocks, 2×2 max pools after the second and fourth, global average pooling at the end.
//!
//! Activations are channels-last. Each convolution's input is kept *padded*: image `b` occupies
//! `(H+2)·(W+2)` pixels of `C` floats, pixel `(y, x)` at `b·(H+2)(W+2) + (y+1)(W+2) + (x+1)`,
//! zeros around it (and two spare zero pixels after the last image). Then for output position
//! `o = y·(W+2) + x` the three input pixels `o + dy·(W+2) … o + dy·(W+2) + 2` of kernel row `dy`
//! are contiguous (`3·C` floats), so the padded buffer read with a row stride of `C` is, for each
//! `dy`, an im2col matrix that is never materialised, and a convolution is three accumulated
//! GEMMs with inner dimension `3·C`:
//!
//! * forward      `Z  = Σ_dy X_dy · W_dyᵀ` per image, `H·(W+2)` rows (columns `x ≥ W` are
//!   computed and ignored: 7–28 % extra work instead of an im2col copy);
//! * weight grad  `dW_dy = dZᵀ · X_dy`, one GEMM per fixed group of images: the output gradient
//!   is written into the same padded layout, where its rows line up with the forward's windows
//!   and are zero at every ignored position (also between images);
//! * input grad   `dX = Σ_ey dZ_ey · Wflip_eyᵀ`, the same product on the padded output gradient
//!   with the kernel flipped (skipped for the first layer unless the input needs a gradient,
//!   as VAT's perturbed input does).
//!
//! The first layer (1 or 3 input channels, `3·C` far too short an inner dimension) builds a real
//! im2col matrix `[H·(W+2), 9·C]` per image instead.
//!
//! Each output image is one single-threaded GEMM task; per-channel sums run over fixed groups of
//! image rows and weight gradients over fixed groups of images, combined in order, so results do
//! not depend on the thread count. Batch norm + ReLU writes straight into the next convolution's
//! padded input (or through the max pool, which records the winning position of each output for
//! the backward pass; ties go to the first of the four, and a tie can only be at 0, where the
//! ReLU's mask stops the gradient anyway). The parameters enter packed as in the FCN:
//! `[w1 … w5, γ1, β1, …, γ5, β5]`, kernels `[Cout, Cin, 3, 3]`.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::fast::{
    bn_bwd_dx, bn_bwd_sums, gemm_serial, kernel_from_kc, kernel_to_flipped_kc, kernel_to_kc,
    relu_sum_rows, scale_shift_relu, slice, tensor, BnBatch, BufferPool,
};
use super::fast_fcn::{batch_stats, sequence_sums, LayerStats, Rows};
use crate::profile::{span, Phase};

/// Taps of the 3×3 kernel.
const TAPS: usize = 9;
/// Images per weight-gradient group (fixed: the sum order must not depend on the thread count).
const IMG_GROUP: usize = 16;
/// Layers with at most this many input channels use a real im2col matrix.
const IM2COL_MAX_CIN: usize = 4;

/// One convolution's input size and the padded layout around it.
#[derive(Clone, Copy, Debug)]
struct Geom {
    h: usize,
    w: usize,
}

impl Geom {
    /// Pixels per padded row.
    fn pw(self) -> usize {
        self.w + 2
    }
    /// Pixels per padded image.
    fn pimg(self) -> usize {
        (self.h + 2) * (self.w + 2)
    }
    /// Output rows per image (`H` rows of `W+2`, the last two of each ignored).
    fn oimg(self) -> usize {
        self.h * (self.w + 2)
    }
    /// Offset of pixel (0, 0) in the padded image: output row `o` is padded pixel `o + lead`.
    fn lead(self) -> usize {
        self.w + 3
    }
    /// Floats of a padded batch buffer (two spare zero pixels at the end).
    fn padded_len(self, b: usize, c: usize) -> usize {
        (b * self.pimg() + 2) * c
    }
    /// Image rows as "sequences" of `W` pixels, `W+2` apart in an output buffer.
    fn out_rows(self) -> Rows {
        Rows { stride: self.pw() }
    }
}

/// Zeroes the border of one padded image `img` (`pimg·c` floats).
fn zero_pads(img: &mut [f32], g: Geom, c: usize) {
    let pw = g.pw();
    img[..g.lead() * c].fill(0.0);
    for py in 1..g.h {
        let s = py * pw + g.w + 1;
        img[s * c..(s + 2) * c].fill(0.0);
    }
    img[(g.h * pw + g.w + 1) * c..g.pimg() * c].fill(0.0);
}

/// The spare pixels after the last padded image, and a padded batch buffer's image chunks.
fn padded_images(buf: &mut [f32], g: Geom, b: usize, c: usize) -> &mut [f32] {
    let (images, spare) = buf.split_at_mut(b * g.pimg() * c);
    spare.fill(0.0);
    images
}

/// One image's convolution: `xp` is the padded input from the image's first pixel on (to the end
/// of the buffer), `w_kc` the kernel `[Cout, 9·Cin]` (tap-major), `out` `[H·(W+2), Cout]`.
fn conv_image(
    xp: &[f32],
    g: Geom,
    cin: usize,
    w_kc: &[f32],
    cout: usize,
    out: &mut [f32],
    col: &mut Vec<f32>,
) {
    let (m, pw, kc) = (g.oimg(), g.pw(), TAPS * cin);
    if cin <= IM2COL_MAX_CIN {
        im2col(xp, g, cin, col);
        gemm_serial(m, cout, kc, out, col, (kc, 1), w_kc, (1, kc), false);
    } else {
        for dy in 0..3 {
            gemm_serial(
                m,
                cout,
                3 * cin,
                out,
                &xp[dy * pw * cin..],
                (cin, 1),
                &w_kc[dy * 3 * cin..],
                (1, kc),
                dy > 0,
            );
        }
    }
}

/// The im2col matrix `[H·(W+2), 9·Cin]` of one padded image.
fn im2col(xp: &[f32], g: Geom, cin: usize, col: &mut Vec<f32>) {
    let (m, pw, kc) = (g.oimg(), g.pw(), TAPS * cin);
    col.resize(m * kc, 0.0);
    for (o, row) in col.chunks_exact_mut(kc).enumerate() {
        for dy in 0..3 {
            let src = (o + dy * pw) * cin;
            row[dy * 3 * cin..(dy + 1) * 3 * cin].copy_from_slice(&xp[src..src + 3 * cin]);
        }
    }
}

/// `y = max(0, x·scale + shift)` over four candidates, the largest into `dst` and its index
/// (0–3, the first on ties) into `arg`.
fn pool4(z: [&[f32]; 4], p: [&[f32]; 2], dst: &mut [f32], arg: &mut [u8]) {
    let [scale, shift] = p;
    for (c, (d, a)) in dst.iter_mut().zip(arg.iter_mut()).enumerate() {
        let (sc, sh) = (scale[c], shift[c]);
        let mut best = (z[0][c] * sc + sh).max(0.0);
        let mut at = 0u8;
        for (i, zi) in z.iter().enumerate().skip(1) {
            let v = (zi[c] * sc + sh).max(0.0);
            if v > best {
                best = v;
                at = i as u8;
            }
        }
        *d = best;
        *a = at;
    }
}

/// The parameters of one layer inside the packed vector, and its shape.
#[derive(Clone, Copy, Debug)]
struct LayerSpec {
    cin: usize,
    cout: usize,
    /// A 2×2 max pool follows.
    pool: bool,
    /// Input size.
    g: Geom,
    w_off: usize,
    g_off: usize,
    b_off: usize,
}

/// Shapes and packed offsets of every layer for input `[_, cin0, h, w]`.
fn specs(layers: &[(usize, bool)], cin0: usize, h: usize, w: usize) -> (Vec<LayerSpec>, usize) {
    let mut out = Vec::new();
    let (mut at, mut cin, mut g) = (0, cin0, Geom { h, w });
    for &(cout, pool) in layers {
        out.push(LayerSpec {
            cin,
            cout,
            pool,
            g,
            w_off: at,
            g_off: 0,
            b_off: 0,
        });
        at += cout * cin * TAPS;
        cin = cout;
        if pool {
            g = Geom {
                h: g.h / 2,
                w: g.w / 2,
            };
        }
    }
    for s in &mut out {
        s.g_off = at;
        s.b_off = at + s.cout;
        at += 2 * s.cout;
    }
    (out, at)
}

/// What a training forward pass keeps for the backward pass, per layer.
struct Saved {
    /// Padded input of each convolution.
    xp: Vec<Vec<f32>>,
    /// Convolution outputs `[B·H·(W+2), Cout]`.
    zp: Vec<Vec<f32>>,
    bn: Vec<BnBatch>,
    /// Winning position (0–3) of each max-pool output `[B, H/2, W/2, C]`, for pooled layers.
    arg: Vec<Option<Vec<u8>>>,
}

/// How the forward pass normalises: batch statistics (training), or fixed running statistics.
enum Norm<'a> {
    Batch { eps: f64 },
    Running(&'a [(Vec<f64>, Vec<f64>)], f64),
}

/// The whole forward pass on NCHW input `x`; returns the pooled features `[B, C_last]`, each
/// layer's batch statistics (empty for running statistics), and what backward needs (`keep`).
#[allow(clippy::too_many_arguments)]
fn forward_pass(
    x: &[f32],
    b: usize,
    specs: &[LayerSpec],
    p: &[f32],
    norm: Norm,
    keep: bool,
    pool: &BufferPool,
) -> (Vec<f32>, LayerStats, Option<Saved>) {
    let mut saved = Saved {
        xp: Vec::new(),
        zp: Vec::new(),
        bn: Vec::new(),
        arg: Vec::new(),
    };
    let mut stats = Vec::new();
    let s0 = specs[0];
    let (g0, cin0) = (s0.g, s0.cin);
    let mut xp = pool.take(g0.padded_len(b, cin0));
    padded_images(&mut xp, g0, b, cin0)
        .par_chunks_mut(g0.pimg() * cin0)
        .zip(x.par_chunks(cin0 * g0.h * g0.w))
        .for_each(|(d, img)| {
            zero_pads(d, g0, cin0);
            for c in 0..cin0 {
                for y in 0..g0.h {
                    for xx in 0..g0.w {
                        d[((y + 1) * g0.pw() + xx + 1) * cin0 + c] =
                            img[(c * g0.h + y) * g0.w + xx];
                    }
                }
            }
        });
    let last = specs.last().expect("at least one layer");
    let mut feat = vec![0.0f32; b * last.cout];
    for (li, s) in specs.iter().enumerate() {
        let (g, cin, cout) = (s.g, s.cin, s.cout);
        let mut zp = pool.take(b * g.oimg() * cout);
        {
            let _conv = span(Phase::Conv);
            let w_kc = kernel_to_kc(&p[s.w_off..s.w_off + cout * cin * TAPS], cout, cin, TAPS);
            zp.par_chunks_mut(g.oimg() * cout)
                .enumerate()
                .for_each_init(Vec::new, |col, (bi, out)| {
                    conv_image(&xp[bi * g.pimg() * cin..], g, cin, &w_kc, cout, out, col)
                });
        }
        let _bn_span = span(Phase::BnForward);
        let (gamma, beta) = (&p[s.g_off..s.g_off + cout], &p[s.b_off..s.b_off + cout]);
        let rows = g.out_rows();
        let bn = match &norm {
            Norm::Batch { eps } => {
                let (mean, var) = batch_stats(&zp, rows, b * g.h, g.w, cout);
                let bn = BnBatch::new(&mean, &var, gamma, beta, *eps);
                stats.push((mean, var));
                bn
            }
            Norm::Running(running, eps) => {
                let (rm, rv) = &running[li];
                BnBatch::new(rm, rv, gamma, beta, *eps)
            }
        };
        let (scale, shift) = (&bn.scale[..], &bn.shift[..]);
        let mut arg = None;
        if li + 1 == specs.len() {
            // Only the spatial mean of the last ReLU output is needed.
            let inv = 1.0 / (g.h * g.w) as f32;
            feat.par_chunks_mut(cout).enumerate().for_each(|(bi, f)| {
                for y in 0..g.h {
                    relu_sum_rows(rows.of(&zp, bi * g.h + y, g.w, cout), scale, shift, f);
                }
                f.iter_mut().for_each(|v| *v *= inv);
            });
        } else if s.pool {
            let gn = specs[li + 1].g;
            let mut next = pool.take(gn.padded_len(b, cout));
            let mut am = vec![0u8; b * gn.h * gn.w * cout];
            padded_images(&mut next, gn, b, cout)
                .par_chunks_mut(gn.pimg() * cout)
                .zip(am.par_chunks_mut(gn.h * gn.w * cout))
                .enumerate()
                .for_each(|(bi, (d, a))| {
                    zero_pads(d, gn, cout);
                    let z = &zp[bi * g.oimg() * cout..(bi + 1) * g.oimg() * cout];
                    let at = |y: usize, x: usize| &z[(y * g.pw() + x) * cout..][..cout];
                    for yo in 0..gn.h {
                        for xo in 0..gn.w {
                            let o = ((yo + 1) * gn.pw() + xo + 1) * cout;
                            let ai = (yo * gn.w + xo) * cout;
                            let (y, x) = (2 * yo, 2 * xo);
                            pool4(
                                [at(y, x), at(y, x + 1), at(y + 1, x), at(y + 1, x + 1)],
                                [scale, shift],
                                &mut d[o..o + cout],
                                &mut a[ai..ai + cout],
                            );
                        }
                    }
                });
            arg = Some(am);
            saved.xp.push(std::mem::replace(&mut xp, next));
        } else {
            // The ReLU output, written straight into the next convolution's padded input.
            let mut next = pool.take(g.padded_len(b, cout));
            padded_images(&mut next, g, b, cout)
                .par_chunks_mut(g.pimg() * cout)
                .zip(zp.par_chunks(g.oimg() * cout))
                .for_each(|(d, z)| {
                    let lead = g.lead() * cout;
                    scale_shift_relu(z, scale, shift, &mut d[lead..lead + z.len()]);
                    zero_pads(d, g, cout);
                });
            saved.xp.push(std::mem::replace(&mut xp, next));
        }
        if li + 1 == specs.len() {
            saved.xp.push(std::mem::take(&mut xp));
        }
        saved.zp.push(zp);
        saved.bn.push(bn);
        saved.arg.push(arg);
    }
    if keep {
        (feat, stats, Some(saved))
    } else {
        for v in saved.xp.into_iter().chain(saved.zp) {
            pool.give(v);
        }
        (feat, stats, None)
    }
}

/// Training-mode small CNN on NCHW input `[B, C, H, W]` (H, W multiples of 4); output
/// `[B, C_last]`.
pub struct CnnTrain {
    /// (filters, max pool after) per layer.
    layers: Vec<(usize, bool)>,
    eps: f64,
    saved: Mutex<Option<Saved>>,
    stats: Arc<Mutex<LayerStats>>,
    pool: Arc<BufferPool>,
}

/// One layer's parameters: (conv weight `[Cout, Cin, 3, 3]`, γ, β).
pub type CnnParams<'a> = (&'a Tensor, &'a Tensor, &'a Tensor);

fn layers_of(params: &[CnnParams], pools: &[bool]) -> Result<Vec<(usize, bool)>> {
    if params.len() != pools.len() || params.is_empty() {
        candle_core::bail!(
            "small-cnn: {} layers, {} pool flags",
            params.len(),
            pools.len()
        );
    }
    params
        .iter()
        .zip(pools)
        .map(|((w, _, _), &pool)| {
            let (_, _, kh, kw) = w.dims4()?;
            if (kh, kw) != (3, 3) {
                candle_core::bail!("small-cnn fast path: 3×3 kernels only, got {kh}×{kw}");
            }
            Ok((w.dim(0)?, pool))
        })
        .collect()
}

impl CnnTrain {
    /// Runs the training-mode network on `x` `[B, C, H, W]` with the layer parameters and
    /// `pools[i]` = a 2×2 max pool after layer `i`; returns the pooled features and each layer's
    /// batch statistics (mean, biased variance over `B·H·W` values, for the running averages).
    pub fn apply(
        x: &Tensor,
        params: &[CnnParams],
        pools: &[bool],
        eps: f64,
        pool: &Arc<BufferPool>,
    ) -> Result<(Tensor, LayerStats)> {
        let layers = layers_of(params, pools)?;
        let mut flat = Vec::new();
        for (w, _, _) in params {
            flat.push(w.flatten_all()?);
        }
        for (_, g, b) in params {
            flat.push(g.flatten_all()?);
            flat.push(b.flatten_all()?);
        }
        let packed = Tensor::cat(&flat, 0)?;
        let stats = Arc::new(Mutex::new(Vec::new()));
        let y = x.contiguous()?.apply_op2(
            &packed,
            CnnTrain {
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
}

/// Evaluation-mode forward (running statistics `(mean, var)` per layer, no gradients) of the
/// network [`CnnTrain`] trains, on `x` `[B, C, H, W]`.
pub fn cnn_eval(
    x: &Tensor,
    params: &[CnnParams],
    pools: &[bool],
    running: &[(Vec<f64>, Vec<f64>)],
    eps: f64,
    pool: &BufferPool,
) -> Result<Tensor> {
    let layers = layers_of(params, pools)?;
    let (b, cin0, h, w) = x.dims4()?;
    let (specs, _) = specs(&layers, cin0, h, w);
    let mut p = Vec::new();
    for (w, _, _) in params {
        p.extend(w.flatten_all()?.to_vec1::<f32>()?);
    }
    for (_, g, bb) in params {
        p.extend(g.to_vec1::<f32>()?);
        p.extend(bb.to_vec1::<f32>()?);
    }
    let x = x.detach().contiguous()?;
    let feat = super::fast::with_f32(&x, |xs| {
        forward_pass(xs, b, &specs, &p, Norm::Running(running, eps), false, pool).0
    })?;
    tensor(feat, (b, specs.last().expect("layers").cout))
}

/// The output gradient reaching one layer's batch norm + ReLU.
enum Dy {
    /// After global average pooling: one row per image (already divided by `H·W`).
    Gap(Vec<f32>),
    /// One row per pixel; image row `s` starts at pixel `s·step`.
    Rows { buf: Vec<f32>, step: usize },
}

impl CustomOp2 for CnnTrain {
    fn name(&self) -> &'static str {
        "codats-small-cnn-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, cin0, h, w) = l1.shape().dims4()?;
        if h % 4 != 0 || w % 4 != 0 || h == 0 || w == 0 {
            candle_core::bail!("small-cnn: image height and width must be multiples of 4");
        }
        let (specs, len) = specs(&self.layers, cin0, h, w);
        let p = slice(s2, l2)?;
        if p.len() != len {
            candle_core::bail!("small-cnn: {} packed parameters, expected {len}", p.len());
        }
        let norm = Norm::Batch { eps: self.eps };
        let (feat, stats, saved) =
            forward_pass(slice(s1, l1)?, b, &specs, p, norm, true, &self.pool);
        *self.saved.lock().expect("saved lock") = saved;
        *self.stats.lock().expect("stats lock") = stats;
        let c = specs.last().expect("layers").cout;
        Ok((CpuStorage::F32(feat), Shape::from((b, c))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        packed: &Tensor,
        _res: &Tensor,
        dfeat: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let want_dx = x.track_op();
        let (b, cin0, h, w) = x.dims4()?;
        let (specs, len) = specs(&self.layers, cin0, h, w);
        let mut saved = self
            .saved
            .lock()
            .expect("saved lock")
            .take()
            .ok_or_else(|| {
                candle_core::Error::Msg("small-cnn backward without (or after) its forward".into())
            })?;
        let pool = &self.pool;
        let p = packed.to_vec1::<f32>()?;
        let last = specs.last().expect("layers");
        let gap = (last.g.h * last.g.w) as f32;
        let mut dy = Dy::Gap(
            dfeat
                .contiguous()?
                .flatten_all()?
                .to_vec1::<f32>()?
                .into_iter()
                .map(|v| v / gap)
                .collect(),
        );
        let mut grads = vec![0.0f32; len];
        let mut dx_input = None;
        for (li, s) in specs.iter().enumerate().rev() {
            let (g, cin, cout) = (s.g, s.cin, s.cout);
            let (pw, pimg, oimg) = (g.pw(), g.pimg(), g.oimg());
            let zp = saved.zp.pop().expect("one per layer");
            let xp = saved.xp.pop().expect("one per layer");
            let bn = saved.bn.pop().expect("one per layer");
            let rows = g.out_rows();
            let nf = (b * g.h * g.w) as f32;
            let bn_span = span(Phase::BnBackward);
            let (dy_buf, dy_step, dy_stride) = match &dy {
                Dy::Gap(v) => (&v[..], 0, 0),
                Dy::Rows { buf, step } => (&buf[..], *step, cout),
            };
            let dy_of = |s: usize| -> &[f32] {
                if dy_stride == 0 {
                    &dy_buf[(s / g.h) * cout..][..cout]
                } else {
                    &dy_buf[s * dy_step * cout..][..g.w * cout]
                }
            };
            let mask = bn.mask_params();
            let (s1, s2) = sequence_sums(b * g.h, g.w, cout, |sq, a, bb| {
                bn_bwd_sums(
                    rows.of(&zp, sq, g.w, cout),
                    dy_of(sq),
                    dy_stride,
                    &mask,
                    a,
                    bb,
                )
            });
            let gamma = &p[s.g_off..s.g_off + cout];
            let gr = bn.backward(&s1, &s2, gamma, nf);
            grads[s.g_off..s.g_off + cout].copy_from_slice(&gr.dgamma);
            grads[s.b_off..s.b_off + cout].copy_from_slice(&gr.dbeta);
            let pp = gr.dx_params(&bn);
            // dz in the padded layout of this layer's input.
            let mut dzq = pool.take(g.padded_len(b, cout));
            padded_images(&mut dzq, g, b, cout)
                .par_chunks_mut(pimg * cout)
                .enumerate()
                .for_each(|(bi, d)| {
                    zero_pads(d, g, cout);
                    for y in 0..g.h {
                        let sq = bi * g.h + y;
                        let o = ((y + 1) * pw + 1) * cout;
                        let out = &mut d[o..o + g.w * cout];
                        bn_bwd_dx(
                            rows.of(&zp, sq, g.w, cout),
                            dy_of(sq),
                            dy_stride,
                            &pp,
                            nf,
                            out,
                        );
                    }
                });
            drop(bn_span);
            pool.give(zp);
            if let Dy::Rows { buf, .. } = std::mem::replace(&mut dy, Dy::Gap(Vec::new())) {
                pool.give(buf);
            }
            let conv_span = span(Phase::Conv);
            // Weight gradient: per fixed group of images, summed in group order.
            let kc = TAPS * cin;
            let lead = g.lead();
            let parts: Vec<Vec<f32>> = (0..b.div_ceil(IMG_GROUP))
                .into_par_iter()
                .map(|gi| {
                    let (b0, b1) = (gi * IMG_GROUP, ((gi + 1) * IMG_GROUP).min(b));
                    let mut dw = vec![0.0f32; cout * kc];
                    if cin <= IM2COL_MAX_CIN {
                        let mut col = Vec::new();
                        for bi in b0..b1 {
                            im2col(&xp[bi * pimg * cin..], g, cin, &mut col);
                            let dz = &dzq[(bi * pimg + lead) * cout..];
                            gemm_serial(
                                cout,
                                kc,
                                oimg,
                                &mut dw,
                                dz,
                                (1, cout),
                                &col,
                                (kc, 1),
                                bi > b0,
                            );
                        }
                    } else {
                        let k = (b1 - b0 - 1) * pimg + oimg;
                        let dz = &dzq[(b0 * pimg + lead) * cout..];
                        let mut part = vec![0.0f32; cout * 3 * cin];
                        for dy in 0..3 {
                            let xs = &xp[(b0 * pimg + dy * pw) * cin..];
                            gemm_serial(
                                cout,
                                3 * cin,
                                k,
                                &mut part,
                                dz,
                                (1, cout),
                                xs,
                                (cin, 1),
                                false,
                            );
                            for (o, row) in part.chunks_exact(3 * cin).enumerate() {
                                dw[o * kc + dy * 3 * cin..o * kc + (dy + 1) * 3 * cin]
                                    .copy_from_slice(row);
                            }
                        }
                    }
                    dw
                })
                .collect();
            let mut parts = parts.into_iter();
            let mut dw = parts.next().expect("at least one image");
            for part in parts {
                dw.iter_mut().zip(&part).for_each(|(s, v)| *s += v);
            }
            let wn = cout * cin * TAPS;
            grads[s.w_off..s.w_off + wn].copy_from_slice(&kernel_from_kc(&dw, cout, cin, TAPS));
            pool.give(xp);
            if li > 0 || want_dx {
                let flipped = kernel_to_flipped_kc(&p[s.w_off..s.w_off + wn], cout, cin, TAPS);
                let mut dx = pool.take(b * oimg * cin);
                dx.par_chunks_mut(oimg * cin)
                    .enumerate()
                    .for_each(|(bi, out)| {
                        for ey in 0..3 {
                            gemm_serial(
                                oimg,
                                cin,
                                3 * cout,
                                out,
                                &dzq[(bi * pimg + ey * pw) * cout..],
                                (cout, 1),
                                &flipped[ey * 3 * cout..],
                                (1, TAPS * cout),
                                ey > 0,
                            );
                        }
                    });
                drop(conv_span);
                if li == 0 {
                    let mut out = vec![0.0f32; b * cin * g.h * g.w];
                    out.par_chunks_mut(cin * g.h * g.w)
                        .zip(dx.par_chunks(oimg * cin))
                        .for_each(|(o, d)| {
                            for c in 0..cin {
                                for y in 0..g.h {
                                    for xx in 0..g.w {
                                        o[(c * g.h + y) * g.w + xx] = d[(y * pw + xx) * cin + c];
                                    }
                                }
                            }
                        });
                    pool.give(dx);
                    dx_input = Some(Tensor::from_vec(out, (b, cin, g.h, g.w), x.device())?);
                } else if specs[li - 1].pool {
                    // Route each pooled gradient back to the window position that won.
                    let arg = saved.arg[li - 1]
                        .take()
                        .expect("pooled layer keeps its argmax");
                    let gp = specs[li - 1].g;
                    let mut full = pool.take(b * gp.h * gp.w * cin);
                    full.par_chunks_mut(gp.h * gp.w * cin)
                        .zip(dx.par_chunks(oimg * cin))
                        .zip(arg.par_chunks(g.h * g.w * cin))
                        .for_each(|((f, d), a)| {
                            f.fill(0.0);
                            for yo in 0..g.h {
                                for xo in 0..g.w {
                                    let src = &d[(yo * pw + xo) * cin..][..cin];
                                    let am = &a[(yo * g.w + xo) * cin..][..cin];
                                    for c in 0..cin {
                                        let k = am[c] as usize;
                                        let (y, x) = (2 * yo + k / 2, 2 * xo + k % 2);
                                        f[(y * gp.w + x) * cin + c] = src[c];
                                    }
                                }
                            }
                        });
                    pool.give(dx);
                    dy = Dy::Rows {
                        buf: full,
                        step: gp.w,
                    };
                } else {
                    dy = Dy::Rows { buf: dx, step: pw };
                }
            }
            pool.give(dzq);
        }
        Ok((dx_input, Some(tensor(grads, len)?)))
    }
}
