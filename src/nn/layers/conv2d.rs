//! Bias-free 2D convolution (kernel 1 or 3, "same" padding `(k−1)/2`, stride 1 or 2) from plain
//! candle ops whose autograd is right, optionally with a [`Gct`] gate in front.
//!
//! candle 0.11.1's CPU `conv1d` backward gives a wrong kernel gradient for batches > 1 (see
//! docs/ARCHITECTURE.md) and its issue #3735 reports the same family for `conv2d`, so this path
//! does not call `conv2d`: it pads, stacks the k² shifted views into `[B, Cin·k², H·W]` and
//! multiplies once by the kernel `[Cout, Cin·k²]`. Stride 2 takes every other row and column of
//! the stride-1 result (the same values PyTorch's strided convolution computes with this padding).

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::Gct;

/// A convolution `[Cout, Cin, k, k]` named `weight` (and `gct.*` when gated) under its prefix.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    stride: usize,
    gct: Option<Gct>,
}

impl Conv2d {
    /// Creates a `k × k` convolution (`k` ∈ {1, 3}) with `stride` ∈ {1, 2}; `gct` adds a gate on
    /// its input. Weights start at zero: initialise them with [`crate::nn::init::kaiming_normal_init`].
    pub fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        gct: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        if !(k == 1 || k == 3) || !(stride == 1 || stride == 2) {
            candle_core::bail!("conv2d: kernel {k}, stride {stride} (supported: 1 or 3, 1 or 2)");
        }
        let weight = vb.get_with_hints((c_out, c_in, k, k), "weight", Init::Const(0.0))?;
        let gct = if gct {
            Some(Gct::new(c_in, vb.pp("gct"))?)
        } else {
            None
        };
        Ok(Self {
            weight,
            stride,
            gct,
        })
    }

    /// The kernel `[Cout, Cin, k, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Whether a GCT gate runs before the convolution.
    pub fn gated(&self) -> bool {
        self.gct.is_some()
    }

    /// `[B, Cin, H, W]` → `[B, Cout, H/stride, W/stride]` (H, W even for stride 2).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = match &self.gct {
            Some(g) => g.forward(x)?,
            None => x.clone(),
        };
        let (b, c_in, h, w) = x.dims4()?;
        let (c_out, c_w, k, _) = self.weight.dims4()?;
        if c_in != c_w {
            candle_core::bail!("conv2d: input has {c_in} channels, kernel expects {c_w}");
        }
        if self.stride == 2 && (h % 2 != 0 || w % 2 != 0) {
            candle_core::bail!("conv2d: stride 2 needs even height and width, got {h}×{w}");
        }
        let cols = if k == 1 {
            x.reshape((b, c_in, h * w))?
        } else {
            let xp = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
            let mut views = Vec::with_capacity(9);
            for dy in 0..3 {
                for dx in 0..3 {
                    views.push(xp.narrow(2, dy, h)?.narrow(3, dx, w)?);
                }
            }
            Tensor::stack(&views, 2)?.reshape((b, c_in * 9, h * w))?
        };
        let y = self
            .weight
            .reshape((1, c_out, c_in * k * k))?
            .broadcast_matmul(&cols)?
            .reshape((b, c_out, h, w))?;
        if self.stride == 1 {
            return Ok(y);
        }
        y.reshape((b, c_out, h / 2, 2, w / 2, 2))?
            .narrow(3, 0, 1)?
            .narrow(5, 0, 1)?
            .reshape((b, c_out, h / 2, w / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::gradcheck::max_error;
    use candle_core::Device;

    use super::super::test_values as values;

    /// Direct loops: out[b,o,i,j] = Σ_{c,u,v} w[o,c,u,v]·x[b,c,s·i+u−p, s·j+v−p].
    fn direct(
        x: &[f64],
        w: &[f64],
        d: (usize, usize, usize, usize),
        co: usize,
        k: usize,
        s: usize,
    ) -> Vec<f64> {
        let (b, c, h, wd) = d;
        let (ho, wo, p) = (h / s, wd / s, (k - 1) / 2);
        let mut out = vec![0.0; b * co * ho * wo];
        for bi in 0..b {
            for o in 0..co {
                for i in 0..ho {
                    for j in 0..wo {
                        let mut acc = 0.0;
                        for ci in 0..c {
                            for u in 0..k {
                                for v in 0..k {
                                    let (y, xx) = (
                                        (s * i + u) as isize - p as isize,
                                        (s * j + v) as isize - p as isize,
                                    );
                                    if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < wd {
                                        acc += w[((o * c + ci) * k + u) * k + v]
                                            * x[((bi * c + ci) * h + y as usize) * wd
                                                + xx as usize];
                                    }
                                }
                            }
                        }
                        out[((bi * co + o) * ho + i) * wo + j] = acc;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_direct_loops_and_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        for (k, s) in [(3, 1), (3, 2), (1, 2)] {
            let (b, c, h, w, co) = (3, 2, 4, 6, 3);
            let wv = values(co * c * k * k, 5);
            let weight = Tensor::from_vec(wv.clone(), (co, c, k, k), &dev)?;
            let xv = values(b * c * h * w, 9);
            let x = Tensor::from_vec(xv.clone(), (b, c, h, w), &dev)?;
            let y = Conv2d {
                weight: weight.clone(),
                stride: s,
                gct: None,
            }
            .forward(&x)?;
            let got = y.flatten_all()?.to_vec1::<f64>()?;
            let want = direct(&xv, &wv, (b, c, h, w), co, k, s);
            for (a, e) in got.iter().zip(&want) {
                assert!((a - e).abs() < 1e-12, "k{k} s{s}: {a} vs {e}");
            }
            let tw = Tensor::from_vec(values(got.len(), 3), y.shape(), &dev)?;
            let loss_w = |wt: &Tensor| {
                (Conv2d {
                    weight: wt.clone(),
                    stride: s,
                    gct: None,
                }
                .forward(&x)?
                    * &tw)?
                    .sum_all()
            };
            let loss_x = |xt: &Tensor| {
                (Conv2d {
                    weight: weight.clone(),
                    stride: s,
                    gct: None,
                }
                .forward(xt)?
                    * &tw)?
                    .sum_all()
            };
            assert!(
                max_error(loss_w, &weight, 1e-6)? < 1e-7,
                "kernel gradient k{k} s{s}"
            );
            assert!(
                max_error(loss_x, &x, 1e-6)? < 1e-7,
                "input gradient k{k} s{s}"
            );
        }
        Ok(())
    }
}
