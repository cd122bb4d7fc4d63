//! Image augmentation for semi-supervised learning (FixMatch, USB): a weak view (translate, flip) and a
//! strong view (weak, then RandAugment, then Cutout), on one f32 image or a batch in parallel.
//!
//! Images are f32 `C×H×W` (channel-planar, rows top to bottom) with values in [0, 1], as
//! [`crate::data::images::ImageSet::to_f32`] gives them; f32 so a batch goes to the network without a
//! second conversion. Every op keeps the shape and clamps to [0, 1]; all randomness comes from the RNG
//! passed in, so a seed fixes the result. Geometric ops sample the nearest pixel and fill with 0 (black,
//! as PIL's default); Cutout fills with gray 0.5.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::seed::derive_seed;

/// The shape of one image, `C×H×W`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageShape {
    /// Channels.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageShape {
    /// Values per image.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// True when the image holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One RandAugment operation. [`Op::range`] gives the magnitude range a random draw uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Stretches each channel to span [0, 1] (magnitude unused).
    AutoContrast,
    /// Multiplies by the factor (blend with black).
    Brightness,
    /// Blends with the image's mean luminance by the factor.
    Contrast,
    /// Histogram-equalizes each channel on 256 levels, as PIL (magnitude unused).
    Equalize,
    /// Leaves the image unchanged.
    Identity,
    /// Keeps this many high bits of each 8-bit value (magnitude rounded).
    Posterize,
    /// Rotates by this many degrees counter-clockwise about the centre.
    Rotate,
    /// Blends with a 3×3 smoothed copy by the factor (below 1 blurs).
    Sharpness,
    /// Shears horizontally: the row at height y shifts by magnitude × y.
    ShearX,
    /// Shears vertically: the column at x shifts by magnitude × x.
    ShearY,
    /// Inverts values at or above the threshold.
    Solarize,
    /// Shifts horizontally by magnitude × width.
    TranslateX,
    /// Shifts vertically by magnitude × height.
    TranslateY,
}

impl Op {
    /// Every op, the set RandAugment draws from.
    pub const ALL: [Op; 13] = [
        Op::AutoContrast,
        Op::Brightness,
        Op::Contrast,
        Op::Equalize,
        Op::Identity,
        Op::Posterize,
        Op::Rotate,
        Op::Sharpness,
        Op::ShearX,
        Op::ShearY,
        Op::Solarize,
        Op::TranslateX,
        Op::TranslateY,
    ];

    /// Magnitude range of a random draw, FixMatch's RandAugment ranges as USB uses them: factors
    /// 0.05..0.95, posterize 4..8 bits, rotate ±30°, shear ±0.3, solarize threshold 0..1, translate ±0.3.
    pub fn range(self) -> (f32, f32) {
        match self {
            Op::AutoContrast | Op::Equalize | Op::Identity => (0.0, 1.0),
            Op::Brightness | Op::Contrast | Op::Sharpness => (0.05, 0.95),
            Op::Posterize => (4.0, 8.0),
            Op::Rotate => (-30.0, 30.0),
            Op::ShearX | Op::ShearY | Op::TranslateX | Op::TranslateY => (-0.3, 0.3),
            Op::Solarize => (0.0, 1.0),
        }
    }

    /// Applies the op with this magnitude (deterministic).
    pub fn apply(self, img: &[f32], shape: ImageShape, magnitude: f32) -> Vec<f32> {
        let (w, h) = (shape.width as f32, shape.height as f32);
        let out = match self {
            Op::AutoContrast => per_channel(img, shape, autocontrast_plane),
            Op::Brightness => img.iter().map(|&x| x * magnitude).collect(),
            Op::Contrast => contrast(img, shape, magnitude),
            Op::Equalize => per_channel(img, shape, equalize_plane),
            Op::Identity => img.to_vec(),
            Op::Posterize => posterize(img, magnitude),
            Op::Rotate => rotate(img, shape, magnitude),
            Op::Sharpness => sharpness(img, shape, magnitude),
            Op::ShearX => affine(img, shape, [1.0, magnitude, 0.0, 0.0, 1.0, 0.0]),
            Op::ShearY => affine(img, shape, [1.0, 0.0, 0.0, magnitude, 1.0, 0.0]),
            Op::Solarize => img
                .iter()
                .map(|&x| if x >= magnitude { 1.0 - x } else { x })
                .collect(),
            Op::TranslateX => affine(img, shape, [1.0, 0.0, magnitude * w, 0.0, 1.0, 0.0]),
            Op::TranslateY => affine(img, shape, [1.0, 0.0, 0.0, 0.0, 1.0, magnitude * h]),
        };
        out.into_iter().map(|x| x.clamp(0.0, 1.0)).collect()
    }

    /// Applies the op with a magnitude drawn uniformly from [`Op::range`].
    pub fn apply_random<R: Rng>(self, img: &[f32], shape: ImageShape, rng: &mut R) -> Vec<f32> {
        let (lo, hi) = self.range();
        self.apply(img, shape, lo + (hi - lo) * rng.random::<f32>())
    }
}

/// Applies `f` to each channel plane.
fn per_channel(img: &[f32], shape: ImageShape, f: fn(&[f32]) -> Vec<f32>) -> Vec<f32> {
    let plane = shape.height * shape.width;
    if plane == 0 {
        return img.to_vec();
    }
    img.chunks(plane).flat_map(f).collect()
}

/// Stretches one plane linearly to [0, 1]; a flat plane is unchanged.
fn autocontrast_plane(p: &[f32]) -> Vec<f32> {
    let lo = p.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if hi <= lo {
        return p.to_vec();
    }
    p.iter().map(|&x| (x - lo) / (hi - lo)).collect()
}

/// A value in [0, 1] as an 8-bit level.
fn level(x: f32) -> usize {
    (x.clamp(0.0, 1.0) * 255.0).round() as usize
}

/// PIL's `ImageOps.equalize` on one plane quantised to 256 levels (unchanged when it cannot spread).
fn equalize_plane(p: &[f32]) -> Vec<f32> {
    let mut hist = [0usize; 256];
    p.iter().for_each(|&x| hist[level(x)] += 1);
    let last = hist.iter().rev().find(|&&c| c > 0).copied().unwrap_or(0);
    let step = (p.len() - last) / 255;
    if step == 0 {
        return p.to_vec();
    }
    let mut lut = [0.0f32; 256];
    let mut n = step / 2;
    for (i, &c) in hist.iter().enumerate() {
        lut[i] = ((n / step).min(255)) as f32 / 255.0;
        n += c;
    }
    p.iter().map(|&x| lut[level(x)]).collect()
}

/// Mean luminance (ITU-R 601 weights for RGB, the plain mean otherwise) of the image.
fn mean_luma(img: &[f32], shape: ImageShape) -> f32 {
    let plane = shape.height * shape.width;
    if plane == 0 {
        return 0.0;
    }
    let weights: Vec<f32> = match shape.channels {
        3 => vec![0.299, 0.587, 0.114],
        c => vec![1.0 / c as f32; c],
    };
    let total: f32 = img
        .chunks(plane)
        .zip(&weights)
        .map(|(p, w)| w * p.iter().sum::<f32>())
        .sum();
    total / plane as f32
}

/// Blends with a solid image of the mean luminance: `mean + factor × (x − mean)`.
fn contrast(img: &[f32], shape: ImageShape, factor: f32) -> Vec<f32> {
    let mean = mean_luma(img, shape);
    img.iter().map(|&x| mean + factor * (x - mean)).collect()
}

/// Keeps `bits` (rounded, 1..=8) high bits of each value's 8-bit level.
fn posterize(img: &[f32], bits: f32) -> Vec<f32> {
    let bits = bits.round().clamp(1.0, 8.0) as u32;
    let mask = (0xFFu32 << (8 - bits)) & 0xFF;
    img.iter()
        .map(|&x| (level(x) as u32 & mask) as f32 / 255.0)
        .collect()
}

/// Blends with PIL's SMOOTH filter (3×3, centre 5, others 1, /13; border pixels kept) by `factor`.
fn sharpness(img: &[f32], shape: ImageShape, factor: f32) -> Vec<f32> {
    let (h, w) = (shape.height, shape.width);
    let mut out = img.to_vec();
    if h < 3 || w < 3 {
        return out;
    }
    for c in 0..shape.channels {
        let p = &img[c * h * w..(c + 1) * h * w];
        for y in 1..h - 1 {
            for x in 1..w - 1 {
                let mut sum = 4.0 * p[y * w + x];
                for (dy, dx) in (0..3).flat_map(|dy| (0..3).map(move |dx| (dy, dx))) {
                    sum += p[(y + dy - 1) * w + x + dx - 1];
                }
                let smooth = sum / 13.0;
                out[c * h * w + y * w + x] = smooth + factor * (p[y * w + x] - smooth);
            }
        }
    }
    out
}

/// Inverse affine map, as PIL's `Image.transform(AFFINE)`: output pixel centre (x, y) samples input
/// (m0·x + m1·y + m2, m3·x + m4·y + m5), nearest pixel, 0 outside.
fn affine(img: &[f32], shape: ImageShape, m: [f32; 6]) -> Vec<f32> {
    let (h, w) = (shape.height, shape.width);
    let mut out = vec![0.0; img.len()];
    for y in 0..h {
        for x in 0..w {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let sx = (m[0] * px + m[1] * py + m[2]).floor();
            let sy = (m[3] * px + m[4] * py + m[5]).floor();
            if sx < 0.0 || sy < 0.0 || sx >= w as f32 || sy >= h as f32 {
                continue;
            }
            let (sx, sy) = (sx as usize, sy as usize);
            for c in 0..shape.channels {
                out[c * h * w + y * w + x] = img[c * h * w + sy * w + sx];
            }
        }
    }
    out
}

/// Rotates by `degrees` (counter-clockwise on screen) about the image centre.
fn rotate(img: &[f32], shape: ImageShape, degrees: f32) -> Vec<f32> {
    let (s, c) = degrees.to_radians().sin_cos();
    let (cx, cy) = (shape.width as f32 / 2.0, shape.height as f32 / 2.0);
    // Output offset d from the centre samples input centre + R(θ)·d with y pointing down, which turns
    // the content counter-clockwise on screen; θ = 0 gives the identity exactly.
    let m = [c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy];
    affine(img, shape, m)
}

/// Mirrors the image left to right.
pub fn hflip(img: &[f32], shape: ImageShape) -> Vec<f32> {
    let w = shape.width;
    let mut out = img.to_vec();
    if w > 0 {
        out.chunks_mut(w).for_each(|row| row.reverse());
    }
    out
}

/// Index `i` reflected into `0..n` without repeating the edge (`-1 → 1`, `n → n − 2`), as reflect padding.
fn reflect(i: i64, n: i64) -> usize {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    (if m >= n { period - m } else { m }) as usize
}

/// A crop of the reflect-padded image offset by (`dx`, `dy`): output (x, y) = input (x + dx, y + dy).
pub fn translate_reflect(img: &[f32], shape: ImageShape, dx: i64, dy: i64) -> Vec<f32> {
    let (h, w) = (shape.height, shape.width);
    let mut out = vec![0.0; img.len()];
    for c in 0..shape.channels {
        for y in 0..h {
            let sy = reflect(y as i64 + dy, h as i64);
            for x in 0..w {
                out[c * h * w + y * w + x] =
                    img[c * h * w + sy * w + reflect(x as i64 + dx, w as i64)];
            }
        }
    }
    out
}

/// Sets the square of side `side` with top-left corner (`x0`, `y0`), clipped to the image, to gray 0.5.
pub fn cutout(img: &[f32], shape: ImageShape, x0: usize, y0: usize, side: usize) -> Vec<f32> {
    let (h, w) = (shape.height, shape.width);
    let mut out = img.to_vec();
    for c in 0..shape.channels {
        for y in y0.min(h)..(y0 + side).min(h) {
            for x in x0.min(w)..(x0 + side).min(w) {
                out[c * h * w + y * w + x] = 0.5;
            }
        }
    }
    out
}

/// Settings of the weak and strong views.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentConfig {
    /// Whether the weak view flips left-right with probability 0.5 (off for digits).
    pub hflip: bool,
    /// Largest translation of the weak view, as a fraction of the side (padding = ⌊fraction × side⌋).
    pub translate: f32,
    /// RandAugment ops per strong view (drawn with replacement).
    pub strong_ops: usize,
    /// Largest Cutout side, as a fraction of the width.
    pub cutout: f32,
}

impl Default for AugmentConfig {
    /// FixMatch's CIFAR settings: flip on, translate 12.5 %, 2 ops, Cutout up to half the side.
    fn default() -> Self {
        AugmentConfig {
            hflip: true,
            translate: 0.125,
            strong_ops: 2,
            cutout: 0.5,
        }
    }
}

impl AugmentConfig {
    /// The default without flips, for digits (a mirrored 2 is no 2).
    pub fn digits() -> Self {
        AugmentConfig {
            hflip: false,
            ..Self::default()
        }
    }
}

/// Which view to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strength {
    /// Translate (reflect-pad + crop) and maybe flip.
    Weak,
    /// The weak view, then RandAugment, then Cutout.
    Strong,
}

/// The weak view: a random reflect-padded translation up to `translate` of each side, then a flip
/// with probability 0.5 when `hflip` is on.
pub fn weak<R: Rng>(
    img: &[f32],
    shape: ImageShape,
    config: &AugmentConfig,
    rng: &mut R,
) -> Vec<f32> {
    let pad_x = (config.translate * shape.width as f32) as i64;
    let pad_y = (config.translate * shape.height as f32) as i64;
    let dx = rng.random_range(-pad_x..=pad_x);
    let dy = rng.random_range(-pad_y..=pad_y);
    let out = translate_reflect(img, shape, dx, dy);
    if config.hflip && rng.random_bool(0.5) {
        hflip(&out, shape)
    } else {
        out
    }
}

/// RandAugment: `n_ops` ops drawn uniformly (with replacement) from [`Op::ALL`], each with a random magnitude.
pub fn rand_augment<R: Rng>(img: &[f32], shape: ImageShape, n_ops: usize, rng: &mut R) -> Vec<f32> {
    let mut out = img.to_vec();
    for _ in 0..n_ops {
        let op = *Op::ALL.choose(rng).unwrap_or(&Op::Identity);
        out = op.apply_random(&out, shape, rng);
    }
    out
}

/// Cutout as USB: side uniform in [0, `max_fraction` × width), centre uniform over the image.
pub fn random_cutout<R: Rng>(
    img: &[f32],
    shape: ImageShape,
    max_fraction: f32,
    rng: &mut R,
) -> Vec<f32> {
    let side = rng.random::<f32>() * max_fraction * shape.width as f32;
    let cx = rng.random::<f32>() * shape.width as f32;
    let cy = rng.random::<f32>() * shape.height as f32;
    let (x0, y0) = ((cx - side / 2.0).max(0.0), (cy - side / 2.0).max(0.0));
    cutout(img, shape, x0 as usize, y0 as usize, side as usize)
}

/// The strong view: the weak view, then RandAugment with `strong_ops` ops, then Cutout.
pub fn strong<R: Rng>(
    img: &[f32],
    shape: ImageShape,
    config: &AugmentConfig,
    rng: &mut R,
) -> Vec<f32> {
    let out = weak(img, shape, config, rng);
    let out = rand_augment(&out, shape, config.strong_ops, rng);
    random_cutout(&out, shape, config.cutout, rng)
}

/// The weak or the strong view of one image.
pub fn augment<R: Rng>(
    img: &[f32],
    shape: ImageShape,
    strength: Strength,
    config: &AugmentConfig,
    rng: &mut R,
) -> Vec<f32> {
    match strength {
        Strength::Weak => weak(img, shape, config, rng),
        Strength::Strong => strong(img, shape, config, rng),
    }
}

/// The RNG of one image's view: seeded from (run seed, step, sample id, strength), so weak and strong
/// views are independent and a view does not depend on the batch it is in or on the thread count.
pub fn sample_rng(seed: u64, step: u64, sample_id: u64, strength: Strength) -> ChaCha8Rng {
    let tag = match strength {
        Strength::Weak => 0,
        Strength::Strong => 1,
    };
    ChaCha8Rng::seed_from_u64(derive_seed(
        derive_seed(derive_seed(seed, tag), step),
        sample_id,
    ))
}

/// Augments a batch `N×C×H×W` in parallel (rayon); image `k` uses [`sample_rng`] with `sample_ids[k]`.
///
/// Panics when `images` does not hold `sample_ids.len()` images of `shape` (a caller bug).
pub fn augment_batch(
    images: &[f32],
    shape: ImageShape,
    sample_ids: &[u64],
    seed: u64,
    step: u64,
    strength: Strength,
    config: &AugmentConfig,
) -> Vec<f32> {
    let len = shape.len();
    assert_eq!(
        images.len(),
        sample_ids.len() * len,
        "augment_batch: buffer does not hold {} images of {shape:?}",
        sample_ids.len()
    );
    let mut out = vec![0.0; images.len()];
    if len == 0 {
        return out;
    }
    out.par_chunks_mut(len)
        .zip(images.par_chunks(len))
        .zip(sample_ids.par_iter())
        .for_each(|((o, img), &id)| {
            let mut rng = sample_rng(seed, step, id, strength);
            o.copy_from_slice(&augment(img, shape, strength, config, &mut rng));
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: ImageShape = ImageShape {
        channels: 3,
        height: 12,
        width: 10,
    };

    /// A deterministic image with distinct values in [0, 1] (a hash pattern, not smooth).
    fn image(salt: u64) -> Vec<f32> {
        (0..SHAPE.len() as u64)
            .map(|i| (derive_seed(salt, i) % 256) as f32 / 255.0)
            .collect()
    }

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    #[test]
    fn every_op_is_deterministic_shape_preserving_and_in_range() {
        let img = image(1);
        for op in Op::ALL {
            let a = op.apply_random(&img, SHAPE, &mut rng(5));
            assert_eq!(a, op.apply_random(&img, SHAPE, &mut rng(5)), "{op:?}");
            assert_eq!(a.len(), img.len(), "{op:?}");
            assert!(a.iter().all(|x| (0.0..=1.0).contains(x)), "{op:?}");
        }
        for op in Op::ALL
            .into_iter()
            .filter(|op| !matches!(op, Op::AutoContrast | Op::Equalize | Op::Identity))
        {
            let (lo, hi) = op.range();
            assert!(
                op.apply(&img, SHAPE, lo) != op.apply(&img, SHAPE, hi),
                "{op:?} ignores its magnitude"
            );
        }
    }

    #[test]
    fn identity_and_neutral_magnitudes_are_exact() {
        let img = image(2);
        assert_eq!(Op::Identity.apply(&img, SHAPE, 0.3), img);
        for (op, m) in [
            (Op::Brightness, 1.0),
            (Op::Contrast, 1.0),
            (Op::Sharpness, 1.0),
            (Op::Rotate, 0.0),
        ] {
            let out = op.apply(&img, SHAPE, m);
            assert!(
                out.iter().zip(&img).all(|(a, b)| (a - b).abs() < 1e-6),
                "{op:?}"
            );
        }
        for op in [Op::ShearX, Op::ShearY, Op::TranslateX, Op::TranslateY] {
            assert_eq!(op.apply(&img, SHAPE, 0.0), img, "{op:?}");
        }
        assert_eq!(Op::Solarize.apply(&img, SHAPE, 1.01), img);
        assert_eq!(translate_reflect(&img, SHAPE, 0, 0), img);
    }

    #[test]
    fn flip_twice_is_identity_and_flip_mirrors() {
        let img = image(3);
        let once = hflip(&img, SHAPE);
        assert_ne!(once, img);
        assert_eq!(once[0], img[SHAPE.width - 1]);
        assert_eq!(hflip(&once, SHAPE), img);
    }

    #[test]
    fn pixel_level_ops_do_what_they_say() {
        let img = image(4);
        let ac = Op::AutoContrast.apply(
            &img.iter().map(|x| 0.25 + x / 4.0).collect::<Vec<_>>(),
            SHAPE,
            0.0,
        );
        assert!(ac.iter().any(|&x| x == 0.0) && ac.iter().any(|&x| x == 1.0));
        assert!(Op::Posterize
            .apply(&img, SHAPE, 4.0)
            .iter()
            .all(|&x| level(x) % 16 == 0));
        let sol = Op::Solarize.apply(&img, SHAPE, 0.5);
        assert!(sol
            .iter()
            .zip(&img)
            .all(|(s, x)| if *x >= 0.5 { *s == 1.0 - x } else { s == x }));
        // Equalize needs 255+ pixels per plane to spread anything (as PIL); a dark 32×32 plane brightens.
        let big = ImageShape {
            channels: 1,
            height: 32,
            width: 32,
        };
        let dark: Vec<f32> = (0..1024u64)
            .map(|i| (derive_seed(9, i) % 128) as f32 / 255.0)
            .collect();
        let eq = Op::Equalize.apply(&dark, big, 0.0);
        assert!(
            eq.iter().copied().fold(0.0, f32::max) > 0.9,
            "equalize spreads a dark image"
        );
        assert_eq!(
            Op::Equalize.apply(&img, SHAPE, 0.0),
            img,
            "too few pixels to equalize"
        );
        // A shift by one column: output (x, y) = input (x + 1, y), last column zero-filled.
        let t = Op::TranslateX.apply(&img, SHAPE, 1.0 / SHAPE.width as f32);
        assert_eq!((t[0], t[SHAPE.width - 1]), (img[1], 0.0));
        // A quarter turn of a square: output (x, y) = input (3 − y, x), the right column on top.
        let sq = ImageShape {
            channels: 1,
            height: 4,
            width: 4,
        };
        let grid: Vec<f32> = (0..16).map(|i| i as f32 / 15.0).collect();
        let quarter = Op::Rotate.apply(&grid, sq, 90.0);
        assert!(
            (0..16).all(|i| quarter[i] == grid[(i % 4) * 4 + 3 - i / 4]),
            "{quarter:?}"
        );
        let r = translate_reflect(&img, SHAPE, -1, 0);
        assert_eq!(
            (r[0], r[1]),
            (img[1], img[0]),
            "reflect padding mirrors without the edge"
        );
    }

    #[test]
    fn cutout_fills_a_clipped_gray_square() {
        let img = image(5);
        let out = cutout(&img, SHAPE, 8, 10, 4);
        let plane = SHAPE.height * SHAPE.width;
        let grey =
            out.iter().filter(|&&x| x == 0.5).count() - img.iter().filter(|&&x| x == 0.5).count();
        assert_eq!(grey, 3 * 2 * 2);
        assert_eq!(out[plane + 11 * SHAPE.width + 9], 0.5);
        assert_eq!(out[7 * SHAPE.width + 9], img[7 * SHAPE.width + 9]);
    }

    #[test]
    fn views_are_seeded_shape_preserving_and_flip_switchable() {
        let img = image(6);
        for strength in [Strength::Weak, Strength::Strong] {
            let cfg = AugmentConfig::default();
            let a = augment(&img, SHAPE, strength, &cfg, &mut rng(1));
            assert_eq!(a, augment(&img, SHAPE, strength, &cfg, &mut rng(1)));
            assert_eq!(a.len(), img.len());
            assert!((2..20).any(|s| augment(&img, SHAPE, strength, &cfg, &mut rng(s)) != a));
        }
        let no_move = AugmentConfig {
            translate: 0.0,
            ..AugmentConfig::default()
        };
        let flips = (0..20)
            .filter(|&s| weak(&img, SHAPE, &no_move, &mut rng(s)) != img)
            .count();
        assert!(flips > 0 && flips < 20);
        let still = AugmentConfig {
            translate: 0.0,
            ..AugmentConfig::digits()
        };
        assert!((0..20).all(|s| weak(&img, SHAPE, &still, &mut rng(s)) == img));
    }

    #[test]
    fn batch_is_independent_of_thread_count_and_batch_order() {
        let ids: Vec<u64> = (0..16).map(|i| i * 3 + 1).collect();
        let batch: Vec<f32> = ids.iter().flat_map(|&i| image(i)).collect();
        let cfg = AugmentConfig::default();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            pool.install(|| augment_batch(&batch, SHAPE, &ids, 42, 7, Strength::Strong, &cfg))
        };
        let one = run(1);
        assert_eq!(one, run(2));
        let k = 5;
        let alone = augment(
            &image(ids[k]),
            SHAPE,
            Strength::Strong,
            &cfg,
            &mut sample_rng(42, 7, ids[k], Strength::Strong),
        );
        assert_eq!(&one[k * SHAPE.len()..(k + 1) * SHAPE.len()], &alone[..]);
        assert_ne!(
            one,
            augment_batch(&batch, SHAPE, &ids, 42, 8, Strength::Strong, &cfg)
        );
    }
}
