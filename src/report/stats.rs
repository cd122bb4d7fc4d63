//! Summary statistics and the paired t-test the report uses.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Arithmetic mean (NaN for no values).
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample standard deviation (n − 1 in the denominator; NaN for fewer than two values).
pub fn std(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return f64::NAN;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

/// Result of a two-sided paired t-test of `a` against `b`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedT {
    /// Number of pairs.
    pub n: usize,
    /// Mean of a − b.
    pub mean_diff: f64,
    /// t statistic (±inf when every difference is equal and non-zero).
    pub t: f64,
    /// Degrees of freedom, n − 1.
    pub df: f64,
    /// Two-sided p-value (NaN for fewer than two pairs).
    pub p: f64,
}

/// Paired t-test: t = mean(d) / (sd(d) / √n) with d = a − b, p from Student's t with n − 1
/// degrees of freedom, two-sided.
pub fn paired_t(a: &[f64], b: &[f64]) -> PairedT {
    assert_eq!(a.len(), b.len(), "paired samples must have equal length");
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = d.len();
    let mean_diff = mean(&d);
    let df = n.saturating_sub(1) as f64;
    if n < 2 {
        return PairedT {
            n,
            mean_diff,
            t: f64::NAN,
            df,
            p: f64::NAN,
        };
    }
    let sd = std(&d);
    if sd == 0.0 {
        let (t, p) = if mean_diff == 0.0 {
            (0.0, 1.0)
        } else {
            (mean_diff.signum() * f64::INFINITY, 0.0)
        };
        return PairedT {
            n,
            mean_diff,
            t,
            df,
            p,
        };
    }
    let t = mean_diff / (sd / (n as f64).sqrt());
    let dist = StudentsT::new(0.0, 1.0, df).expect("df >= 1");
    let p = (2.0 * dist.sf(t.abs())).min(1.0);
    PairedT {
        n,
        mean_diff,
        t,
        df,
        p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_t_matches_scipy() {
        // scipy.stats.ttest_rel([0.8, 0.7, 0.9, 0.65], [0.75, 0.6, 0.85, 0.66])
        // -> TtestResult(statistic=2.111111111111112, pvalue=0.12523480398436868, df=3)
        let r = paired_t(&[0.8, 0.7, 0.9, 0.65], &[0.75, 0.6, 0.85, 0.66]);
        assert_eq!((r.n, r.df), (4, 3.0));
        assert!((r.mean_diff - 0.0475).abs() < 1e-12);
        assert!((r.t - 2.111111111111112).abs() < 1e-9, "t = {}", r.t);
        assert!((r.p - 0.12523480398436868).abs() < 1e-9, "p = {}", r.p);
    }

    #[test]
    fn degenerate_cases() {
        assert!(paired_t(&[1.0], &[0.5]).p.is_nan());
        assert_eq!(paired_t(&[1.0, 2.0], &[1.0, 2.0]).p, 1.0);
        assert_eq!(paired_t(&[1.0, 2.0], &[0.0, 1.0]).p, 0.0);
        assert!(std(&[1.0]).is_nan());
        assert_eq!(std(&[1.0, 3.0]), 2f64.sqrt());
    }
}
