//! PCA with whitening, as DeepCluster prepares features for k-means (Caron et al. 2018: PCA to
//! 256 dimensions, whitening, L2 normalisation). The covariance's eigen-decomposition is cyclic
//! Jacobi on the `d × d` matrix (exact to round-off; `d` is a network's feature width, a few
//! hundred at most), so no linear-algebra crate is needed.

/// Eigenvalues (descending) and unit eigenvectors (rows, in the same order) of the symmetric
/// `d × d` matrix `a` (row-major), by cyclic Jacobi rotations until the off-diagonal mass is
/// below 1e-12 of the total (or 100 sweeps).
pub fn symmetric_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    assert_eq!(a.len(), d * d);
    let mut m = a.to_vec();
    // v: columns are the eigenvectors.
    let mut v = vec![0.0; d * d];
    (0..d).for_each(|i| v[i * d + i] = 1.0);
    let total: f64 = m.iter().map(|x| x * x).sum::<f64>().max(1e-300);
    for _ in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * d + j] * m[i * d + j])
            .sum();
        if off <= 1e-24 * total {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = m[p * d + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let (app, aqq) = (m[p * d + p], m[q * d + q]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum().max(0.0) * 2.0 - 1.0;
                let t = t / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (mkp, mkq) = (m[k * d + p], m[k * d + q]);
                    m[k * d + p] = c * mkp - s * mkq;
                    m[k * d + q] = s * mkp + c * mkq;
                }
                for k in 0..d {
                    let (mpk, mqk) = (m[p * d + k], m[q * d + k]);
                    m[p * d + k] = c * mpk - s * mqk;
                    m[q * d + k] = s * mpk + c * mqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&i, &j| m[j * d + j].total_cmp(&m[i * d + i]).then(i.cmp(&j)));
    let values = order.iter().map(|&i| m[i * d + i]).collect();
    let vectors = order
        .iter()
        .map(|&i| (0..d).map(|k| v[k * d + i]).collect())
        .collect();
    (values, vectors)
}

/// Added to each eigenvalue before whitening (faiss' PCA matrix uses the same guard).
pub const WHITEN_EPS: f64 = 1e-5;

/// [`pca_whiten`], then every row scaled to unit L2 norm: DeepCluster's input to k-means.
pub fn pca_whiten_normalise(x: &[f32], d: usize, dims: usize) -> Result<Vec<f32>, String> {
    let (mut y, k) = pca_whiten(x, d, dims)?;
    for r in y.chunks_mut(k) {
        let norm = r
            .iter()
            .map(|v| (*v as f64).powi(2))
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        r.iter_mut().for_each(|v| *v = (*v as f64 / norm) as f32);
    }
    Ok(y)
}

/// The rows of `x` (`n × d`, row-major) projected on their covariance's `dims` leading
/// principal components, each divided by the square root of its eigenvalue (whitened): the
/// values, `n × k` with `k = min(dims, d)`, and `k`.
pub fn pca_whiten(x: &[f32], d: usize, dims: usize) -> Result<(Vec<f32>, usize), String> {
    if d == 0 || x.len() % d != 0 {
        return Err(format!("{} values are not rows of {d}", x.len()));
    }
    let n = x.len() / d;
    if n < 2 {
        return Err(format!("PCA needs at least 2 rows (got {n})"));
    }
    let dims = dims.min(d).max(1);
    let mut mean = vec![0.0f64; d];
    for r in x.chunks(d) {
        mean.iter_mut().zip(r).for_each(|(m, &v)| *m += v as f64);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0.0f64; d * d];
    let mut c = vec![0.0f64; d];
    for r in x.chunks(d) {
        c.iter_mut()
            .zip(r.iter().zip(&mean))
            .for_each(|(c, (&v, m))| *c = v as f64 - m);
        for i in 0..d {
            let ci = c[i];
            let row = &mut cov[i * d..(i + 1) * d];
            row.iter_mut().zip(&c).for_each(|(a, &cj)| *a += ci * cj);
        }
    }
    cov.iter_mut().for_each(|a| *a /= (n - 1) as f64);
    let (values, vectors) = symmetric_eigen(&cov, d);
    let scale: Vec<f64> = values[..dims]
        .iter()
        .map(|&l| 1.0 / (l.max(0.0) + WHITEN_EPS).sqrt())
        .collect();
    let mut out = Vec::with_capacity(n * dims);
    let mut row = vec![0.0f64; dims];
    for r in x.chunks(d) {
        for (k, o) in row.iter_mut().enumerate() {
            let p: f64 = vectors[k]
                .iter()
                .zip(r.iter().zip(&mean))
                .map(|(e, (&v, m))| e * (v as f64 - m))
                .sum();
            *o = p * scale[k];
        }
        out.extend(row.iter().map(|&v| v as f32));
    }
    Ok((out, dims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_finds_the_eigenpairs_of_a_hand_made_matrix() {
        // [[2, 1], [1, 2]]: eigenvalues 3 and 1, eigenvectors (1, 1)/√2 and (1, −1)/√2.
        let (vals, vecs) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        assert!(
            (vals[0] - 3.0).abs() < 1e-12 && (vals[1] - 1.0).abs() < 1e-12,
            "{vals:?}"
        );
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!((vecs[0][0].abs() - h).abs() < 1e-12 && (vecs[0][0] - vecs[0][1]).abs() < 1e-12);
        assert!((vecs[1][0] + vecs[1][1]).abs() < 1e-12);
        // A 3 × 3 with a known spectrum: diag(4, 2, 1) rotated stays {4, 2, 1}, and A v = λ v.
        let a = [3.0, 1.0, 0.0, 1.0, 3.0, 0.0, 0.0, 0.0, 1.0];
        let (vals, vecs) = symmetric_eigen(&a, 3);
        for (l, want) in vals.iter().zip([4.0, 2.0, 1.0]) {
            assert!((l - want).abs() < 1e-12, "{vals:?}");
        }
        for (l, v) in vals.iter().zip(&vecs) {
            for i in 0..3 {
                let av: f64 = (0..3).map(|j| a[i * 3 + j] * v[j]).sum();
                assert!((av - l * v[i]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn whitened_features_have_identity_covariance_before_normalising() {
        // Correlated 3-d rows: after PCA + whitening (before the L2 step) the covariance is the
        // identity; with the L2 step every row has unit norm.
        let x: Vec<f32> = (0..200)
            .flat_map(|i| {
                let a = ((i as f32) * 0.37).sin();
                let b = ((i as f32) * 0.91).cos();
                [
                    a + 0.5 * b,
                    2.0 * a - b,
                    0.3 * b + 0.1 * ((i as f32) * 1.3).sin(),
                ]
            })
            .collect();
        let (w, k) = pca_whiten(&x, 3, 2).unwrap();
        assert_eq!(k, 2);
        for a in 0..2 {
            for b in 0..2 {
                let mean = |c: usize| w.chunks(2).map(|r| r[c] as f64).sum::<f64>() / 200.0;
                let cov = w
                    .chunks(2)
                    .map(|r| (r[a] as f64 - mean(a)) * (r[b] as f64 - mean(b)))
                    .sum::<f64>()
                    / 199.0;
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((cov - want).abs() < 1e-3, "cov[{a}][{b}] = {cov}");
            }
        }
        let y = pca_whiten_normalise(&x, 3, 2).unwrap();
        assert_eq!(y.len(), 200 * 2);
        for r in y.chunks(2) {
            let n: f32 = r.iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-5);
        }
        assert!(pca_whiten_normalise(&x[..3], 3, 2)
            .unwrap_err()
            .contains("at least 2 rows"));
    }
}
