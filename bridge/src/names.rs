//! The names the bridge holds, or wants to hold, upstream.

use std::collections::HashSet;

use bytes::Bytes;
use tannoy::{InterestChange, InterestKind};

use crate::GAP_CHANNEL;

/// Channels, patterns and shard channels.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    /// Exact channels (`SUBSCRIBE`).
    pub(crate) channels: HashSet<Bytes>,
    /// Patterns (`PSUBSCRIBE`).
    pub(crate) patterns: HashSet<Bytes>,
    /// Shard channels (`SSUBSCRIBE`).
    pub(crate) shard_channels: HashSet<Bytes>,
}

impl Names {
    /// Applies one change of local interest. The reserved notice channel
    /// is local only and never wanted upstream.
    pub(crate) fn apply(&mut self, change: InterestChange) {
        let set = match change.kind() {
            InterestKind::Channel if change.name() == GAP_CHANNEL.as_bytes() => return,
            InterestKind::Channel => &mut self.channels,
            InterestKind::Pattern => &mut self.patterns,
            // Shard channels, and any kind a later engine adds, which
            // would arrive here rather than be lost.
            _ => &mut self.shard_channels,
        };
        if change.is_active() {
            set.insert(change.name().clone());
        } else {
            set.remove(change.name());
        }
    }
}

/// What to send to make `have` equal `want`: (to add, to remove).
pub(crate) fn diff(want: &HashSet<Bytes>, have: &HashSet<Bytes>) -> (Vec<Bytes>, Vec<Bytes>) {
    let add = want.difference(have).cloned().collect();
    let remove = have.difference(want).cloned().collect();
    (add, remove)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_changes_and_skips_the_notice_channel() {
        let broker = tannoy::Broker::new();
        let watch = broker.watch_interest();
        let sub = broker.subscriber();
        sub.subscribe(["a", GAP_CHANNEL]);
        sub.psubscribe(["p*"]);
        sub.ssubscribe(["s"]);
        sub.unsubscribe(["a"]);
        let mut names = Names::default();
        while let Some(change) = watch.try_next() {
            names.apply(change);
        }
        assert!(names.channels.is_empty());
        assert_eq!(names.patterns, HashSet::from([Bytes::from("p*")]));
        assert_eq!(names.shard_channels, HashSet::from([Bytes::from("s")]));
    }

    #[test]
    fn diff_adds_and_removes() {
        let want = HashSet::from([Bytes::from("a"), Bytes::from("b")]);
        let have = HashSet::from([Bytes::from("b"), Bytes::from("c")]);
        assert_eq!(
            diff(&want, &have),
            (vec![Bytes::from("a")], vec![Bytes::from("c")])
        );
    }
}
