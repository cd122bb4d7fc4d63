//! Independent seeds for separate purposes (initialisation, dropout, streams, …) from one run seed.

/// Derives an independent seed for one purpose from the run seed.
pub fn derive_seed(seed: u64, purpose: u64) -> u64 {
    // SplitMix64 finaliser over (seed, purpose).
    let mut z = seed
        .wrapping_add(purpose.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(0x632b_e59b_d9b4_e019);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
