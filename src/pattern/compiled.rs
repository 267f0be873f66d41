//! One pattern compiled for repeated matching.
//!
//! PLACEHOLDER (being replaced by the linear-time compiled matcher): for now
//! this delegates to the reference matcher so the broker can be built.

use super::reference;

/// A pattern prepared for matching many channels.
#[derive(Clone, Debug)]
pub(crate) struct CompiledPattern {
    /// The raw pattern bytes.
    source: Box<[u8]>,
}

impl CompiledPattern {
    /// Compiles `pattern`; every byte string is a valid pattern.
    pub(crate) fn new(pattern: &[u8]) -> Self {
        Self {
            source: pattern.into(),
        }
    }

    /// Returns whether `channel` matches.
    pub(crate) fn matches(&self, channel: &[u8]) -> bool {
        reference::matches(&self.source, channel)
    }
}
