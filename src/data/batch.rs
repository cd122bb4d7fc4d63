//! Per-domain infinite shuffled streams and how one step's batch is divided over domains.

use rand::seq::SliceRandom;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How the total batch size is divided over domains (the reference's `--batch_division`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BatchDivision {
    /// Divide over every source and the target: each gets ⌊batch / (n_sources + 1)⌋ rows
    /// (also for source-only training, which leaves the target slot unused, as the reference does).
    All,
    /// Divide over the sources only; the target gets the whole batch.
    Sources,
    /// No division: every source and the target get the whole batch.
    None,
}

impl BatchDivision {
    /// Rows per source domain and rows of target per step for `batch` in total.
    pub fn sizes(self, batch: usize, n_sources: usize) -> (usize, usize) {
        let n = n_sources.max(1);
        match self {
            BatchDivision::All => (batch / (n + 1), batch / (n + 1)),
            BatchDivision::Sources => (batch / n, batch),
            BatchDivision::None => (batch, batch),
        }
    }
    /// Lower-case name as used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchDivision::All => "all",
            BatchDivision::Sources => "sources",
            BatchDivision::None => "none",
        }
    }
}

/// An infinite stream of shuffled window indices of one domain: each epoch is a fresh
/// permutation drawn from the stream's own seeded RNG — or, after [`DomainStream::set_order`],
/// a method's own order, repeated. Its whole state serialises for resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainStream {
    indices: Vec<usize>,
    order: Vec<usize>,
    pos: usize,
    rng: ChaCha8Rng,
    /// The order was set by [`DomainStream::set_order`]: start it over instead of reshuffling.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    fixed: bool,
}

impl DomainStream {
    /// A stream over `indices` (must be non-empty) seeded with `seed`.
    pub fn new(indices: Vec<usize>, seed: u64) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(seed);
        let mut s = Self {
            order: indices.clone(),
            indices,
            pos: 0,
            rng,
            fixed: false,
        };
        s.order.shuffle(&mut s.rng);
        s
    }

    /// Draws `order` (window indices, repetitions allowed; must be non-empty) from now on,
    /// from its first element, starting it over at its end (a method's resampler,
    /// [`crate::methods::Method::draw_order`]).
    pub fn set_order(&mut self, order: Vec<usize>) {
        self.order = order;
        self.pos = 0;
        self.fixed = true;
    }

    /// The next `n` indices, continuing into a new permutation at the end of an epoch.
    pub fn next_batch(&mut self, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(n);
        if self.indices.is_empty() {
            return out;
        }
        while out.len() < n {
            if self.pos == self.order.len() {
                if !self.fixed {
                    self.order.clone_from(&self.indices);
                    self.order.shuffle(&mut self.rng);
                }
                self.pos = 0;
            }
            let take = (n - out.len()).min(self.order.len() - self.pos);
            out.extend_from_slice(&self.order[self.pos..self.pos + take]);
            self.pos += take;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_division_sizes() {
        assert_eq!(BatchDivision::All.sizes(128, 1), (64, 64));
        assert_eq!(BatchDivision::All.sizes(128, 3), (32, 32));
        assert_eq!(BatchDivision::All.sizes(128, 4), (25, 25));
        assert_eq!(BatchDivision::Sources.sizes(128, 3), (42, 128));
        assert_eq!(BatchDivision::Sources.sizes(128, 1), (128, 128));
        assert_eq!(BatchDivision::None.sizes(128, 5), (128, 128));
    }

    #[test]
    fn a_set_order_is_drawn_as_given_and_repeated() {
        let mut s = DomainStream::new(vec![0, 1, 2, 3], 1);
        s.next_batch(1);
        s.set_order(vec![3, 3, 1]);
        assert_eq!(s.next_batch(2), vec![3, 3]);
        assert_eq!(s.next_batch(3), vec![1, 3, 3]);
        let json = serde_json::to_string(&s).unwrap();
        let mut back: DomainStream = serde_json::from_str(&json).unwrap();
        assert_eq!(back.next_batch(2), s.next_batch(2));
    }

    #[test]
    fn stream_visits_every_index_once_per_epoch() {
        let mut s = DomainStream::new((10..20).collect(), 3);
        let mut a = s.next_batch(4);
        a.extend(s.next_batch(6));
        a.sort_unstable();
        assert_eq!(a, (10..20).collect::<Vec<_>>());
        // crosses an epoch boundary and a batch larger than the domain
        let b = s.next_batch(25);
        assert_eq!(b.len(), 25);
    }

    #[test]
    fn stream_state_round_trips() {
        let mut s = DomainStream::new((0..7).collect(), 9);
        s.next_batch(5);
        let saved = serde_json::to_string(&s).unwrap();
        let mut r: DomainStream = serde_json::from_str(&saved).unwrap();
        assert_eq!(s.next_batch(20), r.next_batch(20));
    }
}
