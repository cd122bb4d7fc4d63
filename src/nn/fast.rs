//! Fast CPU kernels for the CoDATS FCN, as candle custom ops with hand-written backward passes.
//!
//! Activations are kept channels-last (`[B, T, C]`, i.e. a `[B·T, C]` matrix) between layers, so
//! each "same"-padded convolution and both of its gradients are single large GEMMs over the whole
//! batch (im2col of the batch: `[B·T, K·Cin]`):
//!
//! * forward      `Y  = col · Wᵀ`            `[B·T, Cout]`
//! * weight grad  `dW = dYᵀ · col`           `[Cout, K·Cin]`
//! * input grad   `dcol = dY · W`, then col2im (skipped when the input needs no gradient,
//!   as for the first layer's data).
//!
//! Batch norm (training mode) and ReLU are fused into one op with an analytic backward:
//! `dx = γ·inv/N · (N·dz − Σdz − x̂·Σ(dz·x̂))` with `dz = dy·[y > 0]`.
//! Reductions use a fixed chunking, so results do not depend on the thread count.
//! Parameter layouts and names are those of the plain candle path, so checkpoints are
//! interchangeable; `tests/fast_kernels.rs` checks both paths agree.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Storage, Tensor, Var};
use rayon::prelude::*;

/// Nanoseconds spent inside the fast convolutions (forward and backward), for `codats bench`.
static CONV_NANOS: AtomicU64 = AtomicU64::new(0);

/// Time spent in the fast convolution kernels since the last [`reset_conv_time`].
pub fn conv_time() -> std::time::Duration {
    std::time::Duration::from_nanos(CONV_NANOS.load(Ordering::Relaxed))
}

/// Resets the counter behind [`conv_time`].
pub fn reset_conv_time() {
    CONV_NANOS.store(0, Ordering::Relaxed);
}

struct ConvTimer(std::time::Instant);

impl Drop for ConvTimer {
    fn drop(&mut self) {
        CONV_NANOS.fetch_add(self.0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

/// Rows per chunk in the per-channel reductions (fixed, for thread-count-independent sums).
const ROW_CHUNK: usize = 512;

#[cfg_attr(feature = "openblas", allow(dead_code))]
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
    unsafe { gemm_raw(m, n, k, dst.as_mut_ptr(), a, a_s, b, b_s, accumulate) }
}

/// `A[m×k] · B[k×n]` into a new row-major vector, without zero-filling it first (the product
/// overwrites every element; zeroing fresh buffers was ~10 % of a training step).
fn gemm_new(
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
        );
        v.set_len(m * n);
    }
    v
}

/// # Safety
/// `dst` must be valid for writes of `m·n` floats (and reads, when `accumulate`).
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
) {
    if m == 0 || n == 0 {
        return;
    }
    if k > 0 {
        assert!(a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
        assert!(b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    }
    #[cfg(feature = "openblas")]
    {
        blas::sgemm(m, n, k, dst, a, (a_rs, a_cs), b, (b_rs, b_cs), accumulate);
    }
    #[cfg(not(feature = "openblas"))]
    {
        let par = if m * n * k >= 1 << 18 {
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
}

/// GEMM through the system's CBLAS (Debian's libopenblas-dev), behind the `openblas` feature.
#[cfg(feature = "openblas")]
pub mod blas {
    const ROW_MAJOR: i32 = 101;
    const NO_TRANS: i32 = 111;
    const TRANS: i32 = 112;

    #[link(name = "openblas")]
    extern "C" {
        fn cblas_sgemm(
            layout: i32,
            trans_a: i32,
            trans_b: i32,
            m: i32,
            n: i32,
            k: i32,
            alpha: f32,
            a: *const f32,
            lda: i32,
            b: *const f32,
            ldb: i32,
            beta: f32,
            c: *mut f32,
            ldc: i32,
        );
    }

    extern "C" {
        fn openblas_set_num_threads(n: i32);
    }

    /// Sets OpenBLAS' own thread count (it reads its environment before `main`).
    pub fn set_threads(n: usize) {
        // SAFETY: a plain setter in the OpenBLAS runtime.
        unsafe { openblas_set_num_threads(n as i32) }
    }

    /// (transpose flag, leading dimension) of a matrix given by its strides.
    fn op((rs, cs): (usize, usize), cols: usize) -> (i32, i32) {
        if cs == 1 {
            (NO_TRANS, rs.max(cols) as i32)
        } else {
            assert_eq!(rs, 1, "CBLAS needs one unit stride");
            (TRANS, cs as i32)
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn sgemm(
        m: usize,
        n: usize,
        k: usize,
        dst: *mut f32,
        a: &[f32],
        a_s: (usize, usize),
        b: &[f32],
        b_s: (usize, usize),
        accumulate: bool,
    ) {
        let (ta, lda) = op(a_s, k);
        let (tb, ldb) = op(b_s, n);
        // SAFETY: the caller checked that every index lies inside the slices; C is row-major m×n.
        unsafe {
            cblas_sgemm(
                ROW_MAJOR,
                ta,
                tb,
                m as i32,
                n as i32,
                k as i32,
                1.0,
                a.as_ptr(),
                lda,
                b.as_ptr(),
                ldb,
                if accumulate { 1.0 } else { 0.0 },
                dst,
                n as i32,
            );
        }
    }
}

/// Borrows a contiguous f32 CPU tensor's data.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(v)) = &*storage else {
        candle_core::bail!("fast kernels need f32 CPU tensors")
    };
    let Some((a, b)) = layout.contiguous_offsets() else {
        candle_core::bail!("fast kernels need contiguous tensors")
    };
    Ok(f(&v[a..b]))
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("fast kernels need f32 tensors")
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("fast kernels need contiguous tensors")
    };
    Ok(&v[a..b])
}

fn tensor(v: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(v, shape, &candle_core::Device::Cpu)
}

/// A "same"-padded, bias-free 1D convolution on channels-last input `[B, T, Cin]` with the
/// kernel `[Cout, Cin, K]` (candle/PyTorch layout); output `[B, T, Cout]`.
pub struct ConvSameCl {
    left: usize,
    /// im2col of the forward input, kept for the weight gradient.
    col: Mutex<Option<Arc<Vec<f32>>>>,
}

impl ConvSameCl {
    /// Applies the convolution to `x` `[B, T, Cin]` with `weight` `[Cout, Cin, K]` (TF "same" padding).
    pub fn apply(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
        let k = weight.dim(2)?;
        x.contiguous()?.apply_op2(
            &weight.contiguous()?,
            ConvSameCl {
                left: (k - 1) / 2,
                col: Mutex::new(None),
            },
        )
    }
}

/// `[Cout, Cin, K]` → `[Cout, K, Cin]` (rows match the channels-last im2col layout).
fn kernel_to_kc(w: &[f32], cout: usize, cin: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for o in 0..cout {
        for c in 0..cin {
            for j in 0..k {
                out[(o * k + j) * cin + c] = w[(o * cin + c) * k + j];
            }
        }
    }
    out
}

/// `[Cout, K, Cin]` → `[Cout, Cin, K]`.
fn kernel_from_kc(w: &[f32], cout: usize, cin: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for o in 0..cout {
        for j in 0..k {
            for c in 0..cin {
                out[(o * cin + c) * k + j] = w[(o * k + j) * cin + c];
            }
        }
    }
    out
}

/// im2col of channels-last `x` `[B, T, Cin]` → `[B·T, K·Cin]` with `left` zeros before each sequence.
fn im2col(x: &[f32], b: usize, t: usize, cin: usize, k: usize, left: usize) -> Vec<f32> {
    let row = k * cin;
    let mut col = vec![0.0f32; b * t * row];
    col.par_chunks_mut(t * row)
        .enumerate()
        .for_each(|(bi, dst)| {
            let xs = &x[bi * t * cin..(bi + 1) * t * cin];
            for ti in 0..t {
                for j in 0..k {
                    let src = ti as isize + j as isize - left as isize;
                    if src >= 0 && (src as usize) < t {
                        let s = src as usize;
                        dst[ti * row + j * cin..ti * row + (j + 1) * cin]
                            .copy_from_slice(&xs[s * cin..(s + 1) * cin]);
                    }
                }
            }
        });
    col
}

/// Adjoint of [`im2col`]: sums `dcol` `[B·T, K·Cin]` back into `[B, T, Cin]`.
fn col2im(dcol: &[f32], b: usize, t: usize, cin: usize, k: usize, left: usize) -> Vec<f32> {
    let row = k * cin;
    let mut dx = vec![0.0f32; b * t * cin];
    dx.par_chunks_mut(t * cin)
        .enumerate()
        .for_each(|(bi, dst)| {
            let src = &dcol[bi * t * row..(bi + 1) * t * row];
            for ti in 0..t {
                for j in 0..k {
                    let to = ti as isize + j as isize - left as isize;
                    if to >= 0 && (to as usize) < t {
                        let to = to as usize;
                        let d = &mut dst[to * cin..(to + 1) * cin];
                        let s = &src[ti * row + j * cin..ti * row + (j + 1) * cin];
                        for (a, b) in d.iter_mut().zip(s) {
                            *a += *b;
                        }
                    }
                }
            }
        });
    dx
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
        let _timer = ConvTimer(std::time::Instant::now());
        let (b, t, cin) = l1.shape().dims3()?;
        let (cout, cin2, k) = l2.shape().dims3()?;
        if cin != cin2 {
            candle_core::bail!("conv: input has {cin} channels, kernel expects {cin2}");
        }
        let x = slice(s1, l1)?;
        let w = kernel_to_kc(slice(s2, l2)?, cout, cin, k);
        let col = im2col(x, b, t, cin, k, self.left);
        // Y[B·T, Cout] = col[B·T, K·Cin] · W_kcᵀ
        let y = gemm_new(b * t, cout, k * cin, &col, (k * cin, 1), &w, (1, k * cin));
        *self.col.lock().expect("col lock") = Some(Arc::new(col));
        Ok((CpuStorage::F32(y), Shape::from((b, t, cout))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let _timer = ConvTimer(std::time::Instant::now());
        let (b, t, cin) = x.dims3()?;
        let (cout, _, k) = w.dims3()?;
        let dy = dy.contiguous()?;
        let col = match self.col.lock().expect("col lock").clone() {
            Some(c) => c,
            None => Arc::new(with_f32(x, |x| im2col(x, b, t, cin, k, self.left))?),
        };
        let rows = b * t;
        let (dw, dx) = with_f32(&dy, |dy| -> Result<(Tensor, Option<Tensor>)> {
            // dW_kc[Cout, K·Cin] = dYᵀ · col
            let dw = gemm_new(cout, k * cin, rows, dy, (1, cout), &col, (k * cin, 1));
            let dw = tensor(kernel_from_kc(&dw, cout, cin, k), (cout, cin, k))?;
            let dx = if x.track_op() {
                let w_kc = with_f32(&w.contiguous()?, |w| kernel_to_kc(w, cout, cin, k))?;
                // dcol[B·T, K·Cin] = dY · W_kc
                let dcol = gemm_new(rows, k * cin, cout, dy, (cout, 1), &w_kc, (k * cin, 1));
                Some(tensor(col2im(&dcol, b, t, cin, k, self.left), (b, t, cin))?)
            } else {
                None
            };
            Ok((dw, dx))
        })??;
        Ok((dx, Some(dw)))
    }
}

/// Defines `$name`, which runs `$generic` compiled for AVX2+FMA when the CPU has them (checked at
/// run time) and as plain code otherwise. The row kernels below vectorise across channels, so
/// both versions add in the same order and give bit-identical results.
macro_rules! simd_dispatch {
    ($name:ident => $generic:ident ($($arg:ident : $ty:ty),*)) => {
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
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

/// `a[i] += Σ dz`, `b[i] += Σ dz·(x − mean)` with `dz = dy·[y > 0]`.
#[inline(always)]
fn bn_bwd_sums_generic(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    mean: &[f32],
    a: &mut [f32],
    b: &mut [f32],
) {
    let c = mean.len();
    for ((xr, yr), gr) in x
        .chunks_exact(c)
        .zip(y.chunks_exact(c))
        .zip(dy.chunks_exact(c))
    {
        for i in 0..c {
            let dz = if yr[i] > 0.0 { gr[i] } else { 0.0 };
            a[i] += dz;
            b[i] += dz * (xr[i] - mean[i]);
        }
    }
}
simd_dispatch!(bn_bwd_sums => bn_bwd_sums_generic(x: &[f32], y: &[f32], dy: &[f32], mean: &[f32], a: &mut [f32], b: &mut [f32]));

/// `dx = coef·(N·dz − m1 − x̂·m2)` with `x̂ = (x − mean)·inv`; `p = [mean, inv, coef, m1, m2]`.
#[inline(always)]
fn bn_bwd_dx_generic(x: &[f32], y: &[f32], dy: &[f32], p: &[&[f32]; 5], nf: f32, out: &mut [f32]) {
    let [mean, inv, coef, m1, m2] = *p;
    let c = mean.len();
    for (((o, xr), yr), gr) in out
        .chunks_exact_mut(c)
        .zip(x.chunks_exact(c))
        .zip(y.chunks_exact(c))
        .zip(dy.chunks_exact(c))
    {
        for i in 0..c {
            let dz = if yr[i] > 0.0 { gr[i] } else { 0.0 };
            let xh = (xr[i] - mean[i]) * inv[i];
            o[i] = coef[i] * (nf * dz - m1[i] - xh * m2[i]);
        }
    }
}
simd_dispatch!(bn_bwd_dx => bn_bwd_dx_generic(x: &[f32], y: &[f32], dy: &[f32], p: &[&[f32]; 5], nf: f32, out: &mut [f32]));

/// Per-channel sums over the rows of a row-major `[N, C]` matrix: `f(chunk_rows, acc1, acc2)`
/// accumulates one chunk of at most [`ROW_CHUNK`] rows in f32; chunks are combined in f64, in
/// order, so the result does not depend on the number of threads.
fn column_sums(
    data_len: usize,
    c: usize,
    f: impl Fn(std::ops::Range<usize>, &mut [f32], &mut [f32]) + Sync,
) -> (Vec<f64>, Vec<f64>) {
    let n = data_len / c;
    let chunks = n.div_ceil(ROW_CHUNK);
    let parts: Vec<(Vec<f32>, Vec<f32>)> = (0..chunks)
        .into_par_iter()
        .map(|ch| {
            let mut s1 = vec![0.0f32; c];
            let mut s2 = vec![0.0f32; c];
            f(
                ch * ROW_CHUNK..((ch + 1) * ROW_CHUNK).min(n),
                &mut s1,
                &mut s2,
            );
            (s1, s2)
        })
        .collect();
    let mut s1 = vec![0.0f64; c];
    let mut s2 = vec![0.0f64; c];
    for (a, b) in parts {
        for i in 0..c {
            s1[i] += a[i] as f64;
            s2[i] += b[i] as f64;
        }
    }
    (s1, s2)
}

/// A zero-initialised vector of `n` floats, filled by `fill` (kept zeroed: the BN outputs are
/// written through `&mut [f32]`, which must not point at uninitialised memory; only the GEMM
/// outputs, written through raw pointers, skip the zero-fill — see [`gemm_new`]).
fn filled_by(n: usize, fill: impl FnOnce(&mut [f32])) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    fill(&mut v);
    v
}

/// Training-mode batch norm fused with ReLU on channels-last `[.., C]` input, with γ and β.
/// The batch mean and biased variance it used are left in `stats` for the running averages.
pub struct BnReluTrain {
    eps: f64,
    stats: Arc<Mutex<Option<(Vec<f64>, Vec<f64>)>>>,
}

impl CustomOp3 for BnReluTrain {
    fn name(&self) -> &'static str {
        "batchnorm-relu-train"
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
        let c = *l1.shape().dims().last().expect("rank >= 1");
        let n = l1.shape().elem_count() / c;
        let (x, gamma, beta) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let (sum, _) = column_sums(x.len(), c, |rows, s, _| {
            sum_rows(&x[rows.start * c..rows.end * c], s)
        });
        let mean: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
        let mean32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let (sq, _) = column_sums(x.len(), c, |rows, s, _| {
            sq_dev_rows(&x[rows.start * c..rows.end * c], &mean32, s)
        });
        let var: Vec<f64> = sq.iter().map(|s| s / n as f64).collect();
        let scale: Vec<f32> = (0..c)
            .map(|i| (gamma[i] as f64 / (var[i] + self.eps).sqrt()) as f32)
            .collect();
        let shift: Vec<f32> = (0..c).map(|i| beta[i] - mean32[i] * scale[i]).collect();
        let y = filled_by(n * c, |y| {
            y.par_chunks_mut(ROW_CHUNK * c)
                .zip(x.par_chunks(ROW_CHUNK * c))
                .for_each(|(yo, xi)| scale_shift_relu(xi, &scale, &shift, yo))
        });
        *self.stats.lock().expect("stats lock") = Some((mean, var));
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let c = x.dim(candle_core::D::Minus1)?;
        let n = x.elem_count() / c;
        let (mean, var) = self
            .stats
            .lock()
            .expect("stats lock")
            .clone()
            .ok_or_else(|| candle_core::Error::Msg("batch-norm backward before forward".into()))?;
        let inv: Vec<f32> = var
            .iter()
            .map(|v| (1.0 / (v + self.eps).sqrt()) as f32)
            .collect();
        let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let dy = dy.contiguous()?;
        let gamma_v = gamma.to_vec1::<f32>()?;
        let (dx, s1, s2) = with_f32(x, |x| {
            with_f32(res, |y| {
                with_f32(&dy, |dy| {
                    // Σ dz and Σ dz·(x − μ) per channel, dz = dy·[y > 0]; x̂ = (x − μ)·inv.
                    let (s1, s2) = column_sums(x.len(), c, |rows, a, b| {
                        let r = rows.start * c..rows.end * c;
                        bn_bwd_sums(&x[r.clone()], &y[r.clone()], &dy[r], &mean, a, b)
                    });
                    let s2: Vec<f64> = s2.iter().zip(&inv).map(|(s, &v)| s * v as f64).collect();
                    let nf = n as f32;
                    let coef: Vec<f32> = (0..c).map(|i| gamma_v[i] * inv[i] / nf).collect();
                    let m1: Vec<f32> = s1.iter().map(|&v| v as f32).collect();
                    let m2: Vec<f32> = s2.iter().map(|&v| v as f32).collect();
                    let dx = filled_by(n * c, |dx| {
                        dx.par_chunks_mut(ROW_CHUNK * c)
                            .zip(x.par_chunks(ROW_CHUNK * c))
                            .zip(
                                y.par_chunks(ROW_CHUNK * c)
                                    .zip(dy.par_chunks(ROW_CHUNK * c)),
                            )
                            .for_each(|((out, xc), (yc, gc))| {
                                let p = [&mean[..], &inv[..], &coef[..], &m1[..], &m2[..]];
                                bn_bwd_dx(xc, yc, gc, &p, nf, out)
                            })
                    });
                    (dx, s1, s2)
                })
            })
        })???;
        let dgamma = tensor(s2.iter().map(|&v| v as f32).collect(), c)?;
        let dbeta = tensor(s1.iter().map(|&v| v as f32).collect(), c)?;
        Ok((Some(tensor(dx, x.shape())?), Some(dgamma), Some(dbeta)))
    }
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

    /// Training mode: batch statistics, running averages updated as candle's BatchNorm does.
    pub fn forward_train(&self, x: &Tensor) -> Result<Tensor> {
        let stats = Arc::new(Mutex::new(None));
        let y = x.contiguous()?.apply_op3(
            &self.gamma,
            &self.beta,
            BnReluTrain {
                eps: self.eps,
                stats: stats.clone(),
            },
        )?;
        let (mean, var) = stats
            .lock()
            .expect("stats lock")
            .clone()
            .expect("forward ran");
        let c = mean.len();
        let n = (x.elem_count() / c) as f64;
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
        self.running_var.set(&tensor(rv, c)?)?;
        Ok(y)
    }

    /// Eval mode: running statistics.
    pub fn forward_eval(&self, x: &Tensor) -> Result<Tensor> {
        let inv = (self.running_var.as_detached_tensor() + self.eps)?
            .sqrt()?
            .recip()?;
        let scale = (inv * self.gamma.detach())?;
        let shift = (self.beta.detach() - (self.running_mean.as_detached_tensor() * &scale)?)?;
        x.broadcast_mul(&scale)?.broadcast_add(&shift)?.relu()
    }
}
