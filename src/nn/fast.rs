//! Fast CPU kernels for the CoDATS FCN, as candle custom ops with hand-written backward passes.
//!
//! Activations are kept channels-last (`[B, T, C]`, i.e. a `[B·T, C]` matrix) between layers, so
//! each "same"-padded convolution and both of its gradients are single large GEMMs over the whole
//! batch. The input is copied once into a zero-padded `[B, T+K−1, Cin]` buffer `xp`; since the
//! channels-last rows `t … t+K−1` are contiguous there, `xp` read with a row stride of `Cin` *is*
//! the im2col matrix `col` `[B·(T+K−1)−(K−1), K·Cin]` (overlapping rows, never materialised):
//!
//! * forward      `Y  = col · Wᵀ`                          `[rows, Cout]`, valid rows gathered
//! * weight grad  `dW = dYᵀ · col`                          `[Cout, K·Cin]`
//! * input grad   `dX = col(dY padded) · W_flippedᵀ`, the same kind of product with the taps
//!   reversed (skipped when the input needs no gradient, as for the first layer's data).
//!
//! [`ConvSameCl`] is one such convolution as a candle op (used for evaluation, and tested on its
//! own); training runs the whole FCN as one op, [`super::fast_fcn::FcnTrain`], built from the same
//! pieces plus batch norm + ReLU with an analytic backward:
//! `dx = γ·inv/N · (N·dz − Σdz − x̂·Σ(dz·x̂))` with `dz = dy·[y > 0]`.
//! Parameter layouts and names are those of the plain candle path, so checkpoints are
//! interchangeable; `tests/fast_kernels.rs` checks both paths agree.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor, Var};
use rayon::prelude::*;

use crate::profile::{span, Phase};

/// About this many rows per group in the per-channel reductions (fixed, so sums do not depend on
/// the thread count).
pub(super) const ROW_CHUNK: usize = 512;

fn threads() -> usize {
    candle_core::utils::get_num_threads().max(1)
}

/// `dst[m×n] (+)= A[m×k] · B[k×n]`, `dst` row-major; A and B are given with their row and column
/// strides (in elements): `(ld, 1)` for row-major, `(1, ld)` for a transposed row-major matrix.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    a: &[f32],
    a_s: (usize, usize),
    b: &[f32],
    b_s: (usize, usize),
    accumulate: bool,
) {
    assert!(dst.len() >= m * n);
    // SAFETY: dst holds at least m·n initialised floats.
    unsafe { gemm_raw(m, n, k, dst.as_mut_ptr(), a, a_s, b, b_s, accumulate, true) }
}

/// [`gemm`] on the calling thread only: for callers that already run one product per rayon
/// task (one image each, as in [`super::fast_cnn`]), where nested parallelism would only add
/// overhead.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_serial(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    a: &[f32],
    a_s: (usize, usize),
    b: &[f32],
    b_s: (usize, usize),
    accumulate: bool,
) {
    assert!(dst.len() >= m * n);
    // SAFETY: dst holds at least m·n initialised floats.
    unsafe { gemm_raw(m, n, k, dst.as_mut_ptr(), a, a_s, b, b_s, accumulate, false) }
}

/// `A[m×k] · B[k×n]` into a new row-major vector, without zero-filling it first (the product
/// overwrites every element; zeroing fresh buffers was ~10 % of a training step).
pub(super) fn gemm_new(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_s: (usize, usize),
    b: &[f32],
    b_s: (usize, usize),
) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(m * n);
    if k == 0 {
        v.resize(m * n, 0.0);
        return v;
    }
    // SAFETY: the spare capacity holds m·n floats; with `accumulate = false` (and k > 0) the
    // kernel only writes dst, every element of it, before `set_len` exposes them.
    unsafe {
        gemm_raw(
            m,
            n,
            k,
            v.spare_capacity_mut().as_mut_ptr().cast::<f32>(),
            a,
            a_s,
            b,
            b_s,
            false,
            true,
        );
        v.set_len(m * n);
    }
    v
}

/// Rows of the inner dimension per block in [`gemm_sum_k`].
const SPLIT_K: usize = 4096;

/// `A[m×k] · B[k×n]` for long, thin products such as weight gradients (`k = B·T` rows, `m·n` at
/// most 256 × 768): the gemm crate parallelises over `m` and `n` only, which are too small here
/// to keep both cores busy. Instead the `k` axis is cut into fixed blocks of [`SPLIT_K`] rows,
/// multiplied in parallel (one core each) and the partial products summed in block order — the
/// fixed blocks keep the result independent of the thread count.
pub(super) fn gemm_sum_k(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
) -> Vec<f32> {
    if k <= SPLIT_K {
        return gemm_new(m, n, k, a, (a_rs, a_cs), b, (b_rs, b_cs));
    }
    let parts: Vec<Vec<f32>> = (0..k.div_ceil(SPLIT_K))
        .into_par_iter()
        .map(|p| {
            let k0 = p * SPLIT_K;
            let kk = SPLIT_K.min(k - k0);
            let mut v: Vec<f32> = Vec::with_capacity(m * n);
            // SAFETY: as in `gemm_new`; the block's operands start at inner index k0.
            unsafe {
                gemm_raw(
                    m,
                    n,
                    kk,
                    v.spare_capacity_mut().as_mut_ptr().cast::<f32>(),
                    &a[k0 * a_cs..],
                    (a_rs, a_cs),
                    &b[k0 * b_rs..],
                    (b_rs, b_cs),
                    false,
                    false,
                );
                v.set_len(m * n);
            }
            v
        })
        .collect();
    let mut parts = parts.into_iter();
    let mut sum = parts.next().expect("k > SPLIT_K gives at least two blocks");
    for part in parts {
        sum.iter_mut().zip(&part).for_each(|(s, v)| *s += v);
    }
    sum
}

/// # Safety
/// `dst` must be valid for writes of `m·n` floats (and reads, when `accumulate`).
/// `parallel = false` keeps the product on the calling thread.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    accumulate: bool,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k > 0 {
        assert!(a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
        assert!(b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    }
    let par = if parallel && m * n * k >= 1 << 18 {
        gemm_crate::Parallelism::Rayon(threads())
    } else {
        gemm_crate::Parallelism::None
    };
    // SAFETY: the asserts above keep every index the kernel touches inside the slices;
    // dst is row-major [m, n] and does not alias a or b (distinct borrows).
    unsafe {
        gemm_crate::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Borrows a contiguous f32 CPU tensor's data.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(v)) = &*storage else {
        candle_core::bail!("fast kernels need f32 CPU tensors")
    };
    let Some((a, b)) = layout.contiguous_offsets() else {
        candle_core::bail!("fast kernels need contiguous tensors")
    };
    Ok(f(&v[a..b]))
}

pub(super) fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("fast kernels need f32 tensors")
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("fast kernels need contiguous tensors")
    };
    Ok(&v[a..b])
}

pub(super) fn tensor(v: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(v, shape, &candle_core::Device::Cpu)
}

/// A "same"-padded, bias-free 1D convolution on channels-last input `[B, T, Cin]` with the
/// kernel `[Cout, Cin, K]` (candle/PyTorch layout); output `[B, T, Cout]`.
pub struct ConvSameCl {
    left: usize,
    /// The zero-padded forward input `[B, T+K−1, Cin]`, kept for the weight gradient.
    xp: Mutex<Option<Arc<Vec<f32>>>>,
}

impl ConvSameCl {
    /// Applies the convolution to `x` `[B, T, Cin]` with `weight` `[Cout, Cin, K]` (TF "same" padding).
    pub fn apply(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
        let k = weight.dim(2)?;
        x.contiguous()?.apply_op2(
            &weight.contiguous()?,
            ConvSameCl {
                left: (k - 1) / 2,
                xp: Mutex::new(None),
            },
        )
    }
}

/// `[Cout, Cin, K]` → `[Cout, K, Cin]` (rows match the padded input's overlapping windows).
/// The three kernel-layout changes run in parallel, one output block per work item: they are
/// done every step and were ≈ 2 ms of single-threaded work at batch 128.
pub(super) fn kernel_to_kc(w: &[f32], cout: usize, cin: usize, k: usize) -> Vec<f32> {
    debug_assert_eq!(w.len(), cout * cin * k);
    let mut out = vec![0.0; w.len()];
    out.par_chunks_mut(k * cin)
        .zip(w.par_chunks(cin * k))
        .for_each(|(dst, src)| {
            for c in 0..cin {
                for j in 0..k {
                    dst[j * cin + c] = src[c * k + j];
                }
            }
        });
    out
}

/// `[Cout, Cin, K]` → `[Cin, K, Cout]` with the taps reversed: the kernel that maps the output
/// gradient back to the input (a "full" correlation with the flipped kernel).
pub(super) fn kernel_to_flipped_kc(w: &[f32], cout: usize, cin: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    out.par_chunks_mut(k * cout)
        .enumerate()
        .for_each(|(c, dst)| {
            for o in 0..cout {
                for j in 0..k {
                    dst[(k - 1 - j) * cout + o] = w[(o * cin + c) * k + j];
                }
            }
        });
    out
}

/// `[Cout, K, Cin]` → `[Cout, Cin, K]`.
pub(super) fn kernel_from_kc(w: &[f32], cout: usize, cin: usize, k: usize) -> Vec<f32> {
    debug_assert_eq!(w.len(), cout * cin * k);
    let mut out = vec![0.0; w.len()];
    out.par_chunks_mut(cin * k)
        .zip(w.par_chunks(k * cin))
        .for_each(|(dst, src)| {
            for j in 0..k {
                for c in 0..cin {
                    dst[c * k + j] = src[j * cin + c];
                }
            }
        });
    out
}

/// Channels-last `x` `[B, T, C]` → `[B, T+K−1, C]` with `left` zero rows before and `K−1−left`
/// after each sequence.
pub(super) fn pad_rows(x: &[f32], b: usize, t: usize, c: usize, k: usize, left: usize) -> Vec<f32> {
    let mut xp = vec![0.0; b * (t + k - 1) * c];
    pad_rows_into(x, t, c, left, &mut xp);
    xp
}

/// [`pad_rows`] into `xp` (`[B, T+K−1, C]`, every element overwritten).
pub(super) fn pad_rows_into(x: &[f32], t: usize, c: usize, left: usize, xp: &mut [f32]) {
    let b = x.len() / (t * c).max(1);
    let tp = xp.len() / b.max(1) / c.max(1);
    xp.par_chunks_mut(tp * c)
        .zip(x.par_chunks(t * c))
        .for_each(|(dst, src)| padded_interior(dst, left, t, c).copy_from_slice(src))
}

/// Channels-last rows `t … t+K−1` of a padded `[B, T+K−1, Cin]` buffer are contiguous, so the
/// im2col matrix is the buffer itself read with a row stride of `Cin` (overlapping rows): one
/// GEMM over all `B·(T+K−1) − (K−1)` window starts, no im2col copy. Sequence `b`'s outputs are
/// rows `b·(T+K−1) …` of the product; the `K−1` starts per sequence that straddle two sequences
/// (at most 7 of every 135 rows here) are computed and skipped by whoever reads the rows.
/// `k` is the kernel size the buffer was padded for.
#[derive(Clone, Copy, Debug)]
pub(super) struct Windows {
    pub b: usize,
    pub t: usize,
    pub k: usize,
}

impl Windows {
    /// Rows per padded sequence, `T+K−1`.
    pub fn stride(&self) -> usize {
        self.t + self.k - 1
    }

    /// Window starts over the whole padded batch, `B·(T+K−1) − (K−1)`.
    pub fn starts(&self) -> usize {
        self.b * self.stride() - (self.k - 1)
    }

    /// `y[start] = Σ_j xp[start + j] · w_j` for every window start, with `w_kc` `[Cout, K·Cin]`:
    /// `[starts, Cout]`.
    pub fn conv(&self, xp: &[f32], cin: usize, w_kc: &[f32], cout: usize) -> Vec<f32> {
        let kc = self.k * cin;
        gemm_new(self.starts(), cout, kc, xp, (cin, 1), w_kc, (1, kc))
    }

    /// [`Windows::conv`] into `out` (`[starts, Cout]`, every element overwritten).
    pub fn conv_into(&self, xp: &[f32], cin: usize, w_kc: &[f32], cout: usize, out: &mut [f32]) {
        let kc = self.k * cin;
        gemm(
            self.starts(),
            cout,
            kc,
            out,
            xp,
            (cin, 1),
            w_kc,
            (1, kc),
            false,
        )
    }

    /// Weight gradient `[Cout, Cin, K]` of [`Windows::conv`] on `xp`, from the output gradient
    /// held in a padded buffer `dyq` `[B, T+K−1, Cout]` with `shift` zero rows before each
    /// sequence: read from row `shift` on, it lines up with the window starts and is zero at the
    /// straddling ones, so `dW = dYᵀ · (overlapping windows of xp)`.
    pub fn weight_grad(
        &self,
        dyq: &[f32],
        shift: usize,
        xp: &[f32],
        cin: usize,
        cout: usize,
    ) -> Vec<f32> {
        let kc = self.k * cin;
        let dw = gemm_sum_k(
            cout,
            kc,
            self.starts(),
            &dyq[shift * cout..],
            (1, cout),
            xp,
            (cin, 1),
        );
        kernel_from_kc(&dw, cout, cin, self.k)
    }

    /// Input gradient (window-start rows `[starts, Cin]`) of a "same" convolution with kernel
    /// `w` `[Cout, Cin, K]`: the same product on `dyq` (padded with `K−1−left` zero rows first)
    /// with the taps reversed.
    pub fn input_grad(&self, dyq: &[f32], w: &[f32], cin: usize, cout: usize) -> Vec<f32> {
        self.conv(dyq, cout, &kernel_to_flipped_kc(w, cout, cin, self.k), cin)
    }

    /// [`Windows::input_grad`] into `out` (`[starts, Cin]`, every element overwritten).
    pub fn input_grad_into(
        &self,
        dyq: &[f32],
        w: &[f32],
        cin: usize,
        cout: usize,
        out: &mut [f32],
    ) {
        let flipped = kernel_to_flipped_kc(w, cout, cin, self.k);
        self.conv_into(dyq, cout, &flipped, cin, out)
    }

    /// The valid rows of a window-start product `yp` `[starts, C]`, as `[B, T, C]`.
    pub fn gather(&self, yp: &[f32], c: usize) -> Vec<f32> {
        let (t, tp) = (self.t, self.stride());
        filled_by(self.b * t * c, |y| {
            y.par_chunks_mut(t * c).enumerate().for_each(|(bi, dst)| {
                dst.copy_from_slice(&yp[bi * tp * c..(bi * tp + t) * c]);
            })
        })
    }
}

impl CustomOp2 for ConvSameCl {
    fn name(&self) -> &'static str {
        "conv1d-same-channels-last"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _conv = span(Phase::Conv);
        let (b, t, cin) = l1.shape().dims3()?;
        let (cout, cin2, k) = l2.shape().dims3()?;
        if cin != cin2 {
            candle_core::bail!("conv: input has {cin} channels, kernel expects {cin2}");
        }
        let win = Windows { b, t, k };
        let w = kernel_to_kc(slice(s2, l2)?, cout, cin, k);
        let xp = pad_rows(slice(s1, l1)?, b, t, cin, k, self.left);
        let y = win.gather(&win.conv(&xp, cin, &w, cout), cout);
        *self.xp.lock().expect("xp lock") = Some(Arc::new(xp));
        Ok((CpuStorage::F32(y), Shape::from((b, t, cout))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let _conv = span(Phase::Conv);
        let (b, t, cin) = x.dims3()?;
        let (cout, _, k) = w.dims3()?;
        let dy = dy.contiguous()?;
        let xp = match self.xp.lock().expect("xp lock").clone() {
            Some(xp) => xp,
            None => Arc::new(with_f32(x, |x| pad_rows(x, b, t, cin, k, self.left))?),
        };
        let win = Windows { b, t, k };
        // dY padded for the input gradient: `K−1−left` zero rows before each sequence.
        let shift = k - 1 - self.left;
        let dyq = with_f32(&dy, |dy| pad_rows(dy, b, t, cout, k, shift))?;
        let w = w.contiguous()?;
        let (dw, dx) = with_f32(&w, |w| {
            let dw = win.weight_grad(&dyq, shift, &xp, cin, cout);
            let dx = x
                .track_op()
                .then(|| win.gather(&win.input_grad(&dyq, w, cin, cout), cin));
            (dw, dx)
        })?;
        let dw = tensor(dw, (cout, cin, k))?;
        let dx = dx.map(|dx| tensor(dx, (b, t, cin))).transpose()?;
        Ok((dx, Some(dw)))
    }
}

/// Defines `$name`, which runs `$generic` compiled for AVX-512 or AVX2+FMA when the CPU has them
/// (checked at run time) and as plain code otherwise. The row kernels below vectorise across
/// channels and Rust never contracts `a·b + c` into an FMA by itself, so all versions add in the
/// same order and give bit-identical results.
macro_rules! simd_dispatch {
    ($name:ident => $generic:ident ($($arg:ident : $ty:ty),*)) => {
        pub(super) fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx512f") {
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    unsafe fn avx512($($arg: $ty),*) {
                        $generic($($arg),*)
                    }
                    // SAFETY: the CPU supports the features `avx512` was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn avx2($($arg: $ty),*) {
                        $generic($($arg),*)
                    }
                    // SAFETY: the CPU supports the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}

/// `s[i] += Σ_rows x[r][i]`.
#[inline(always)]
fn sum_rows_generic(x: &[f32], s: &mut [f32]) {
    for row in x.chunks_exact(s.len()) {
        for (acc, v) in s.iter_mut().zip(row) {
            *acc += v;
        }
    }
}
simd_dispatch!(sum_rows => sum_rows_generic(x: &[f32], s: &mut [f32]));

/// `s[i] += Σ_rows (x[r][i] − mean[i])²`.
#[inline(always)]
fn sq_dev_rows_generic(x: &[f32], mean: &[f32], s: &mut [f32]) {
    for row in x.chunks_exact(s.len()) {
        for ((acc, v), m) in s.iter_mut().zip(row).zip(mean) {
            let d = v - m;
            *acc += d * d;
        }
    }
}
simd_dispatch!(sq_dev_rows => sq_dev_rows_generic(x: &[f32], mean: &[f32], s: &mut [f32]));

/// `y = max(0, x·scale + shift)` row by row.
#[inline(always)]
fn scale_shift_relu_generic(x: &[f32], scale: &[f32], shift: &[f32], y: &mut [f32]) {
    let c = scale.len();
    for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        for (((o, v), sc), sh) in yr.iter_mut().zip(xr).zip(scale).zip(shift) {
            *o = (v * sc + sh).max(0.0);
        }
    }
}
simd_dispatch!(scale_shift_relu => scale_shift_relu_generic(x: &[f32], scale: &[f32], shift: &[f32], y: &mut [f32]));

/// `s[i] += Σ_rows max(0, x·scale + shift)` (the pooled ReLU output, never stored).
#[inline(always)]
fn relu_sum_rows_generic(x: &[f32], scale: &[f32], shift: &[f32], s: &mut [f32]) {
    for row in x.chunks_exact(s.len()) {
        for (((acc, v), sc), sh) in s.iter_mut().zip(row).zip(scale).zip(shift) {
            *acc += (v * sc + sh).max(0.0);
        }
    }
}
simd_dispatch!(relu_sum_rows => relu_sum_rows_generic(x: &[f32], scale: &[f32], shift: &[f32], s: &mut [f32]));

/// `a[i] += Σ dz`, `b[i] += Σ dz·(x − mean)` with `dz = dy·[x·scale + shift > 0]`, the ReLU's
/// mask recomputed from the BN input exactly as the forward pass computed it (so the ReLU output
/// need not be read). `p = [mean, scale, shift]`; `dy` advances `dy_stride` floats per row
/// (0: one row broadcast over all rows, as after global average pooling).
#[inline(always)]
fn bn_bwd_sums_generic(
    x: &[f32],
    dy: &[f32],
    dy_stride: usize,
    p: &[&[f32]; 3],
    a: &mut [f32],
    b: &mut [f32],
) {
    let [mean, scale, shift] = *p;
    let c = mean.len();
    // Zipped slices instead of indexing: no bounds checks, so the loop vectorises.
    for (r, xr) in x.chunks_exact(c).enumerate() {
        let gr = &dy[r * dy_stride..r * dy_stride + c];
        let acc = a.iter_mut().zip(b.iter_mut());
        let row = xr
            .iter()
            .zip(gr)
            .zip(mean.iter().zip(scale.iter().zip(shift)));
        for ((a, b), ((&x, &g), (&mu, (&sc, &sh)))) in acc.zip(row) {
            let dz = if x * sc + sh > 0.0 { g } else { 0.0 };
            *a += dz;
            *b += dz * (x - mu);
        }
    }
}
simd_dispatch!(bn_bwd_sums => bn_bwd_sums_generic(x: &[f32], dy: &[f32], dy_stride: usize, p: &[&[f32]; 3], a: &mut [f32], b: &mut [f32]));

/// `dx = coef·(N·dz − m1 − x̂·m2)` with `x̂ = (x − mean)·inv` and `dz` as in [`bn_bwd_sums`];
/// `p = [mean, scale, shift, inv, coef, m1, m2]`.
#[inline(always)]
fn bn_bwd_dx_generic(
    x: &[f32],
    dy: &[f32],
    dy_stride: usize,
    p: &[&[f32]; 7],
    nf: f32,
    out: &mut [f32],
) {
    let [mean, scale, shift, inv, coef, m1, m2] = *p;
    let c = mean.len();
    for (r, (o, xr)) in out.chunks_exact_mut(c).zip(x.chunks_exact(c)).enumerate() {
        let gr = &dy[r * dy_stride..r * dy_stride + c];
        let row = xr.iter().zip(gr).zip(scale.iter().zip(shift));
        let norm = mean.iter().zip(inv).zip(coef.iter().zip(m1.iter().zip(m2)));
        for ((o, ((&x, &g), (&sc, &sh))), ((&mu, &iv), (&cf, (&s1, &s2)))) in
            o.iter_mut().zip(row).zip(norm)
        {
            let dz = if x * sc + sh > 0.0 { g } else { 0.0 };
            let xh = (x - mu) * iv;
            *o = cf * (nf * dz - s1 - xh * s2);
        }
    }
}
simd_dispatch!(bn_bwd_dx => bn_bwd_dx_generic(x: &[f32], dy: &[f32], dy_stride: usize, p: &[&[f32]; 7], nf: f32, out: &mut [f32]));

/// One batch norm + ReLU layer as a training forward pass left it: the batch mean, 1/σ, and
/// `y = max(0, z·scale + shift)`. Shared by the fused FCN and the fused domain head.
pub(super) struct BnBatch {
    pub mean: Vec<f32>,
    pub inv: Vec<f32>,
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

/// The parameter gradients of a [`BnBatch`] (dγ = Σ dz·x̂ and dβ = Σ dz, which are also the
/// `m2` and `m1` of its input gradient) and the input gradient's `coef` (see [`bn_bwd_dx`]).
pub(super) struct BnGrad {
    pub dgamma: Vec<f32>,
    pub dbeta: Vec<f32>,
    coef: Vec<f32>,
}

impl BnBatch {
    /// From the batch statistics (mean, biased variance) and γ, β.
    pub fn new(mean: &[f64], var: &[f64], gamma: &[f32], beta: &[f32], eps: f64) -> Self {
        let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let scale: Vec<f32> = gamma
            .iter()
            .zip(&inv)
            .map(|(&g, &i)| (g as f64 * i) as f32)
            .collect();
        let shift = beta
            .iter()
            .zip(mean.iter().zip(&scale))
            .map(|(&b, (&m, &sc))| b - m * sc)
            .collect();
        let inv = inv.iter().map(|&v| v as f32).collect();
        Self {
            mean,
            inv,
            scale,
            shift,
        }
    }

    /// `[mean, scale, shift]`, as [`bn_bwd_sums`] takes them.
    pub fn mask_params(&self) -> [&[f32]; 3] {
        [&self.mean, &self.scale, &self.shift]
    }

    /// From `s1 = Σ dz` and `s2 = Σ dz·(z − μ)` over `n` rows: dγ = Σ dz·x̂, dβ = Σ dz, and the
    /// input gradient's coefficients.
    pub fn backward(&self, s1: &[f64], s2: &[f64], gamma: &[f32], n: f32) -> BnGrad {
        let s2: Vec<f64> = s2
            .iter()
            .zip(&self.inv)
            .map(|(s, &v)| s * v as f64)
            .collect();
        let dgamma: Vec<f32> = s2.iter().map(|&v| v as f32).collect();
        let dbeta: Vec<f32> = s1.iter().map(|&v| v as f32).collect();
        let coef = gamma
            .iter()
            .zip(&self.inv)
            .map(|(&g, &i)| g * i / n)
            .collect();
        BnGrad {
            dgamma,
            dbeta,
            coef,
        }
    }
}

impl BnGrad {
    /// `[mean, scale, shift, inv, coef, m1, m2]`, as [`bn_bwd_dx`] takes them.
    pub fn dx_params<'a>(&'a self, bn: &'a BnBatch) -> [&'a [f32]; 7] {
        [
            &bn.mean,
            &bn.scale,
            &bn.shift,
            &bn.inv,
            &self.coef,
            &self.dbeta,
            &self.dgamma,
        ]
    }
}

/// Zeroes the `lead` rows before and the rows after the `t` interior rows of one zero-padded
/// sequence `d` (`c` floats per row) and returns the interior.
pub(super) fn padded_interior(d: &mut [f32], lead: usize, t: usize, c: usize) -> &mut [f32] {
    let (pad, rest) = d.split_at_mut(lead * c);
    let (interior, tail) = rest.split_at_mut(t * c);
    pad.fill(0.0);
    tail.fill(0.0);
    interior
}

/// Activation buffers handed from one training step to the next. A step at batch 128 needs
/// about a dozen 8–17 MB buffers; taking them from here instead of allocating skips both the
/// zero-fill of fresh buffers and the kernel's page faults (≈ 3 % of the step's CPU time in a
/// `perf` profile before the pool, timed together with other changes). A taken
/// buffer holds stale values: its user overwrites every element (padding rows included).
#[derive(Default)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<f32>>>,
}

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.free.lock().map(|v| v.len()).unwrap_or(0);
        write!(f, "BufferPool({n} free)")
    }
}

/// Buffers a pool keeps at most (more than one step's worth).
const POOL_MAX: usize = 24;

impl BufferPool {
    /// A buffer of `n` floats with unspecified (initialised) contents: a free one of exactly that
    /// size (a training step asks for the same sizes every time), or a new one.
    pub(super) fn take(&self, n: usize) -> Vec<f32> {
        let reused = {
            let mut free = self.free.lock().expect("pool lock");
            let found = free.iter().position(|v| v.len() == n);
            found.map(|i| free.swap_remove(i))
        };
        reused.unwrap_or_else(|| vec![0.0; n])
    }

    /// Returns a buffer for a later [`BufferPool::take`].
    pub(super) fn give(&self, v: Vec<f32>) {
        let mut free = self.free.lock().expect("pool lock");
        if free.len() < POOL_MAX && !v.is_empty() {
            free.push(v);
        }
    }
}

/// A zero-initialised vector of `n` floats, filled by `fill` (kept zeroed: the BN outputs are
/// written through `&mut [f32]`, which must not point at uninitialised memory; only the GEMM
/// outputs, written through raw pointers, skip the zero-fill — see [`gemm_new`]).
pub(super) fn filled_by(n: usize, fill: impl FnOnce(&mut [f32])) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    fill(&mut v);
    v
}

/// Batch norm + ReLU over the last axis of channels-last activations, sharing its parameters
/// and running statistics (names `weight`, `bias`, `running_mean`, `running_var`) with
/// `candle_nn::BatchNorm`.
#[derive(Debug, Clone)]
pub struct BnRelu {
    gamma: Tensor,
    beta: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl BnRelu {
    /// Builds from the variables under `vb` (created by `candle_nn::batch_norm` or here).
    pub fn new(
        c: usize,
        cfg: candle_nn::BatchNormConfig,
        vb: candle_nn::VarBuilder,
    ) -> Result<Self> {
        use candle_nn::Init;
        let running_mean =
            Var::from_tensor(&vb.get_with_hints(c, "running_mean", Init::Const(0.0))?)?;
        let running_var =
            Var::from_tensor(&vb.get_with_hints(c, "running_var", Init::Const(1.0))?)?;
        let gamma = vb.get_with_hints(c, "weight", Init::Const(1.0))?;
        let beta = vb.get_with_hints(c, "bias", Init::Const(0.0))?;
        Ok(Self {
            gamma,
            beta,
            running_mean,
            running_var,
            eps: cfg.eps,
            momentum: cfg.momentum,
        })
    }

    /// [`BnRelu::update_running`] for each layer with its batch's statistics.
    pub fn update_all(bns: &[BnRelu], stats: &[(Vec<f64>, Vec<f64>)], n: usize) -> Result<()> {
        for (bn, (mean, var)) in bns.iter().zip(stats) {
            bn.update_running(mean, var, n)?;
        }
        Ok(())
    }

    /// Moves the running averages towards a batch's mean and biased variance over `n` rows, as
    /// candle's BatchNorm does (the variance enters unbiased).
    pub fn update_running(&self, mean: &[f64], var: &[f64], n: usize) -> Result<()> {
        let c = mean.len();
        let n = n as f64;
        let m = self.momentum;
        let rm = self.running_mean.as_tensor().to_vec1::<f32>()?;
        let rv = self.running_var.as_tensor().to_vec1::<f32>()?;
        let rm: Vec<f32> = (0..c)
            .map(|i| (rm[i] as f64 * (1.0 - m) + mean[i] * m) as f32)
            .collect();
        let rv: Vec<f32> = (0..c)
            .map(|i| (rv[i] as f64 * (1.0 - m) + var[i] * n / (n - 1.0) * m) as f32)
            .collect();
        self.running_mean.set(&tensor(rm, c)?)?;
        self.running_var.set(&tensor(rv, c)?)
    }

    /// γ and β.
    pub fn affine(&self) -> (&Tensor, &Tensor) {
        (&self.gamma, &self.beta)
    }

    /// The ε added to the variance.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// Eval mode: running statistics. On channels-last `[…, C]` CPU input that needs no gradient
    /// this is one parallel pass (`y = max(0, x·scale + shift)`); otherwise candle ops.
    pub fn forward_eval(&self, x: &Tensor) -> Result<Tensor> {
        let inv = (self.running_var.as_detached_tensor() + self.eps)?
            .sqrt()?
            .recip()?;
        let scale = (inv * self.gamma.detach())?;
        let shift = (self.beta.detach() - (self.running_mean.as_detached_tensor() * &scale)?)?;
        if x.track_op() || !x.device().is_cpu() || x.dtype() != candle_core::DType::F32 {
            return x.broadcast_mul(&scale)?.broadcast_add(&shift)?.relu();
        }
        let (scale, shift) = (scale.to_vec1::<f32>()?, shift.to_vec1::<f32>()?);
        let c = scale.len();
        let x = x.contiguous()?;
        let y = with_f32(&x, |xs| {
            let mut y = vec![0.0f32; xs.len()];
            y.par_chunks_mut(ROW_CHUNK * c)
                .zip(xs.par_chunks(ROW_CHUNK * c))
                .for_each(|(out, rows)| scale_shift_relu(rows, &scale, &shift, out));
            y
        })?;
        tensor(y, x.shape())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random values in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                let h = (i ^ seed).wrapping_mul(2_654_435_761).rotate_left(13);
                (h % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn split_k_product_matches_one_product_and_direct_sums() {
        // k spans three blocks (the last one partial); A is read transposed, as in dW = dYᵀ·X.
        let (m, n, k) = (5, 7, 2 * SPLIT_K + 123);
        let a = values(k * m, 1); // row-major [k, m]: A = aᵀ
        let b = values(k * n, 2);
        let split = gemm_sum_k(m, n, k, &a, (1, m), &b, (n, 1));
        let whole = gemm_new(m, n, k, &a, (1, m), &b, (n, 1));
        for i in 0..m {
            for j in 0..n {
                let direct: f64 = (0..k)
                    .map(|r| a[r * m + i] as f64 * b[r * n + j] as f64)
                    .sum();
                let (s, w) = (split[i * n + j] as f64, whole[i * n + j] as f64);
                assert!((s - direct).abs() < 1e-3, "({i},{j}): {s} vs {direct}");
                assert!((w - direct).abs() < 1e-3, "({i},{j}): {w} vs {direct}");
            }
        }
    }

    #[test]
    fn padded_rows_hold_each_sequence_between_zeros() {
        let x: Vec<f32> = (1..=12).map(|v| v as f32).collect(); // [B=2, T=3, C=2]
        let xp = pad_rows(&x, 2, 3, 2, 4, 1); // 1 zero row before, 2 after
        #[rustfmt::skip]
        let want = [0., 0., 1., 2., 3., 4., 5., 6., 0., 0., 0., 0.,
                    0., 0., 7., 8., 9., 10., 11., 12., 0., 0., 0., 0.];
        assert_eq!(xp, want);
    }
}
