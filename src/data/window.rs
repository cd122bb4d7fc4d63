//! Cutting recordings into fixed-length windows, one sample at a time (streaming, bounded memory).
//!
//! A recording is a sequence of samples (one value per channel) with a class label each. Windows of
//! `length` samples start every `stride` samples; a window's label is its last sample's (the
//! reference's rule) or the most frequent one. Windows are stored `[channels, length]`, matching
//! [`super::DomainData::x`].

use serde::{Deserialize, Serialize};

use super::DataError;

/// How a window's class is chosen from its samples' labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LabelRule {
    /// The label of the window's last sample (CoDATS' rule).
    #[default]
    Last,
    /// The most frequent label in the window; ties go to the smallest class id.
    Majority,
}

impl LabelRule {
    /// The name used in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LabelRule::Last => "last",
            LabelRule::Majority => "majority",
        }
    }
}

/// Window length, stride and label rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Samples per window.
    pub length: usize,
    /// Samples from one window's start to the next (`length` = no overlap).
    pub stride: usize,
    /// How the window's class is chosen.
    #[serde(default)]
    pub label: LabelRule,
    /// Reproduce the reference implementation's bound: it cuts a window at start `s` only while
    /// `s < n - length`, so a window that ends exactly on a recording's last sample is dropped.
    #[serde(default)]
    pub reference_bounds: bool,
}

impl WindowSpec {
    /// Checks the numbers make sense.
    pub fn check(&self) -> Result<(), DataError> {
        if self.length == 0 {
            return Err(DataError::Options(
                "window length must be at least 1".into(),
            ));
        }
        if self.stride == 0 {
            return Err(DataError::Options(
                "window stride must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// How many windows a recording of `n` samples gives.
    pub fn count(&self, n: usize) -> usize {
        let lag = usize::from(self.reference_bounds);
        if n < self.length + lag {
            0
        } else {
            (n - self.length - lag) / self.stride + 1
        }
    }
}

/// Windows and labels of one domain, appended to as recordings are cut.
#[derive(Debug, Default, Clone)]
pub struct WindowSink {
    /// Windows, `[n, channels, length]`.
    pub x: Vec<f32>,
    /// One class per window.
    pub y: Vec<u32>,
}

/// Cuts one recording into windows as its samples arrive; keeps at most `length + 1` samples.
#[derive(Debug, Clone)]
pub struct Windower {
    spec: WindowSpec,
    channels: usize,
    /// Buffered samples, interleaved `[t, channels]`, starting at sample index `base`.
    buf: Vec<f32>,
    /// Labels of the buffered samples.
    labels: Vec<u32>,
    /// Index of the first buffered sample.
    base: u64,
    /// Samples pushed so far.
    seen: u64,
    /// Start of the next window.
    next_start: u64,
    /// Scratch for the majority rule.
    counts: Vec<u32>,
}

impl Windower {
    /// A windower for a recording of `channels` channels.
    pub fn new(spec: WindowSpec, channels: usize) -> Windower {
        Windower {
            spec,
            channels,
            buf: Vec::with_capacity((spec.length + 1) * channels),
            labels: Vec::with_capacity(spec.length + 1),
            base: 0,
            seen: 0,
            next_start: 0,
            counts: Vec::new(),
        }
    }

    /// Samples pushed so far.
    pub fn samples(&self) -> u64 {
        self.seen
    }

    /// Adds the next sample (`channels` values) with its label; completed windows go to `out`.
    #[inline]
    pub fn push(&mut self, sample: &[f32], label: u32, out: &mut WindowSink) {
        debug_assert_eq!(sample.len(), self.channels);
        let t = self.seen;
        self.seen += 1;
        if t < self.next_start {
            // Between windows (stride > length): never needed.
            self.base = t + 1;
            return;
        }
        self.buf.extend_from_slice(sample);
        self.labels.push(label);
        let length = self.spec.length as u64;
        let lag = u64::from(self.spec.reference_bounds);
        while self.next_start + length + lag <= self.seen {
            let off = (self.next_start - self.base) as usize;
            self.emit(off, out);
            self.next_start += self.spec.stride as u64;
        }
        // Drop samples no later window needs.
        let keep_from = self.next_start.min(self.seen);
        if keep_from > self.base {
            let k = (keep_from - self.base) as usize;
            self.buf.drain(..k * self.channels);
            self.labels.drain(..k);
            self.base = keep_from;
        }
    }

    /// Writes the window starting at buffer offset `off`, transposed to `[channels, length]`.
    fn emit(&mut self, off: usize, out: &mut WindowSink) {
        let (c, l) = (self.channels, self.spec.length);
        let samples = &self.buf[off * c..(off + l) * c];
        out.x.reserve(c * l);
        for ch in 0..c {
            out.x.extend(samples.iter().skip(ch).step_by(c));
        }
        let labels = &self.labels[off..off + l];
        let label = match self.spec.label {
            LabelRule::Last => labels[l - 1],
            LabelRule::Majority => {
                let max = labels.iter().copied().max().unwrap_or(0) as usize;
                self.counts.clear();
                self.counts.resize(max + 1, 0);
                for &y in labels {
                    self.counts[y as usize] += 1;
                }
                let best = self.counts.iter().copied().max().unwrap_or(0);
                self.counts.iter().position(|&n| n == best).unwrap_or(0) as u32
            }
        };
        out.y.push(label);
    }
}

/// `v` with its spare capacity released (sinks grow by doubling; a loaded dataset lives long).
pub fn shrunk(mut v: Vec<f32>) -> Vec<f32> {
    v.shrink_to_fit();
    v
}

/// Cuts a whole in-memory recording (interleaved `[t, channels]`, one label per sample) into `out`.
pub fn cut(
    samples: &[f32],
    labels: &[u32],
    channels: usize,
    spec: WindowSpec,
    out: &mut WindowSink,
) {
    let mut w = Windower::new(spec, channels);
    for (sample, &label) in samples.chunks_exact(channels).zip(labels) {
        w.push(sample, label, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(length: usize, stride: usize, label: LabelRule, reference: bool) -> WindowSpec {
        WindowSpec {
            length,
            stride,
            label,
            reference_bounds: reference,
        }
    }

    /// Samples t = 0..n with channel values (t, 100 + t) and label t / 3.
    fn recording(n: usize) -> (Vec<f32>, Vec<u32>) {
        let x = (0..n).flat_map(|t| [t as f32, 100.0 + t as f32]).collect();
        let y = (0..n).map(|t| (t / 3) as u32).collect();
        (x, y)
    }

    #[test]
    fn windows_are_transposed_and_labelled_by_their_last_sample() {
        let (x, y) = recording(10);
        let mut out = WindowSink::default();
        cut(&x, &y, 2, spec(4, 4, LabelRule::Last, false), &mut out);
        // Windows [0..4), [4..8); [8..10) is incomplete.
        assert_eq!(out.y, [1, 2]);
        assert_eq!(
            out.x,
            [
                0., 1., 2., 3., 100., 101., 102., 103., //
                4., 5., 6., 7., 104., 105., 106., 107.
            ]
        );
    }

    #[test]
    fn reference_bounds_drop_a_window_ending_on_the_last_sample() {
        let s = spec(4, 4, LabelRule::Last, true);
        for n in 0..30 {
            let (x, y) = recording(n);
            let mut out = WindowSink::default();
            cut(&x, &y, 2, s, &mut out);
            // The reference: i = 0; while i < n - w: window; i += stride.
            let mut want = 0;
            let mut i = 0i64;
            while i < n as i64 - 4 {
                want += 1;
                i += 4;
            }
            assert_eq!(out.y.len(), want, "n = {n}");
            assert_eq!(s.count(n), want, "n = {n}");
        }
        let standard = spec(4, 4, LabelRule::Last, false);
        assert_eq!(standard.count(8), 2);
        assert_eq!(s.count(8), 1);
    }

    #[test]
    fn overlapping_and_gapped_strides() {
        let (x, y) = recording(10);
        let mut out = WindowSink::default();
        cut(&x, &y, 2, spec(4, 2, LabelRule::Last, false), &mut out);
        assert_eq!(out.y.len(), 4); // starts 0, 2, 4, 6
        assert_eq!(&out.x[3 * 8..3 * 8 + 4], [6., 7., 8., 9.]);
        let mut out = WindowSink::default();
        cut(&x, &y, 2, spec(2, 5, LabelRule::Last, false), &mut out);
        assert_eq!(out.y.len(), 2); // starts 0, 5
        assert_eq!(&out.x[4..6], [5., 6.]);
        assert_eq!(spec(2, 5, LabelRule::Last, false).count(10), 2);
        assert_eq!(spec(4, 2, LabelRule::Last, false).count(10), 4);
    }

    #[test]
    fn majority_label_breaks_ties_toward_the_smallest_class() {
        let x = vec![0.0f32; 6];
        let mut out = WindowSink::default();
        cut(
            &x,
            &[2, 1, 1, 2, 2, 0],
            1,
            spec(3, 3, LabelRule::Majority, false),
            &mut out,
        );
        assert_eq!(out.y, [1, 2]);
        let mut out = WindowSink::default();
        cut(
            &x[..4],
            &[3, 0, 3, 0],
            1,
            spec(4, 4, LabelRule::Majority, false),
            &mut out,
        );
        assert_eq!(out.y, [0]);
    }
}
