//! A small deterministic PRNG (xorshift64*), so randomised scenarios are
//! reproducible from their seed.
//!
//! Include it with
//!
//! ```ignore
//! #[path = "support/rng.rs"]
//! mod rng;
//! ```

#![allow(
    dead_code,
    reason = "shared by several test files, each using a subset"
)]

/// The generator; its state is the field.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// A generator seeded from `seed` (any value, zero included).
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next number in `0..n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }

    /// True with probability 1 / `n`.
    pub(crate) fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}
