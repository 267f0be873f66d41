//! The set of subscribed patterns, and the query `publish` makes of it:
//! which patterns match this channel?
//!
//! PLACEHOLDER (being replaced by the compiled index): a linear scan, which
//! is what Redis does. The interface is the one the broker relies on.

use bytes::Bytes;
use hashbrown::HashMap;

use super::compiled::CompiledPattern;

/// Every distinct subscribed pattern, each with a value `V` (the broker keeps
/// the pattern's subscribers there).
#[derive(Debug)]
pub(crate) struct PatternIndex<V> {
    /// Pattern bytes to (matcher, value).
    entries: HashMap<Bytes, (CompiledPattern, V)>,
}

impl<V> PatternIndex<V> {
    /// An empty index.
    pub(crate) fn new() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }

    /// Number of distinct patterns held (Redis's `PUBSUB NUMPAT`).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The value for `pattern`, if it is held.
    pub(crate) fn get_mut(&mut self, pattern: &[u8]) -> Option<&mut V> {
        self.entries.get_mut(pattern).map(|(_, v)| v)
    }

    /// Adds `pattern`, which must not be held yet, with `value`.
    pub(crate) fn insert(&mut self, pattern: Bytes, value: V) {
        let compiled = CompiledPattern::new(&pattern);
        self.entries.insert(pattern, (compiled, value));
    }

    /// Removes `pattern`, returning its value if it was held.
    pub(crate) fn remove(&mut self, pattern: &[u8]) -> Option<V> {
        self.entries.remove(pattern).map(|(_, v)| v)
    }

    /// Calls `f` with every held pattern that matches `channel`, and its
    /// value, each exactly once, in no particular order.
    pub(crate) fn for_each_match(&self, channel: &[u8], mut f: impl FnMut(&Bytes, &V)) {
        for (pattern, (compiled, value)) in &self.entries {
            if compiled.matches(channel) {
                f(pattern, value);
            }
        }
    }
}
