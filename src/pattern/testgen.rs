// Proptest strategies for patterns and channels biased towards the corners
// of the Redis glob grammar. Used by the unit tests in `src/pattern` and,
// through `#[path]`, by `tests/patterns.rs`; it depends on proptest only.

use proptest::prelude::*;

/// Bytes that make the grammar interesting, plus a few ordinary ones:
/// stars, `?`, class syntax, escapes, NUL and high bytes (signed ranges).
const PATTERN_BYTES: &[u8] = b"**?[]^-\\abc\x00\x80\xff";

/// Bytes channels are made of: the same alphabet, so classes, escapes and
/// literal metacharacters all get hit.
const CHANNEL_BYTES: &[u8] = b"abc-]^[\\*?\x00\x80\xff";

/// A short pattern over [`PATTERN_BYTES`].
pub(crate) fn pattern() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(PATTERN_BYTES), 0..12)
}

/// A short channel over [`CHANNEL_BYTES`], often empty.
pub(crate) fn channel() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        9 => prop::collection::vec(prop::sample::select(CHANNEL_BYTES), 1..16),
    ]
}

/// A pattern with a number of star runs near the 1000-run limit (R8),
/// and a channel that can reach that many runs.
pub(crate) fn near_limit() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        995usize..1006,
        prop::sample::select(vec![&b"*?"[..], b"*a", b"a*", b"?*"]),
        prop::sample::select(vec![&b""[..], b"*", b"b", b"*b"]),
        990usize..1010,
        prop::sample::select(vec![&b""[..], b"b"]),
    )
        .prop_map(|(runs, unit, end, len, channel_end)| {
            let pattern = [unit.repeat(runs), end.to_vec()].concat();
            let channel = [vec![b'a'; len], channel_end.to_vec()].concat();
            (pattern, channel)
        })
}

/// A pattern that has the shape of a subscription in a real system,
/// so that index strategies other than the fallback get exercised: a
/// literal, prefix, suffix or prefix-suffix glob over a tiny alphabet,
/// sometimes with a `?` or class mixed in.
pub(crate) fn shaped_pattern() -> impl Strategy<Value = Vec<u8>> {
    let word = || prop::collection::vec(prop::sample::select(&b"ab:"[..]), 0..4);
    let piece = || {
        prop_oneof![
            6 => word(),
            1 => Just(b"?".to_vec()),
            1 => Just(b"[ab]".to_vec()),
            1 => Just(b"\\*".to_vec()),
        ]
    };
    prop_oneof![
        3 => (piece(), piece()).prop_map(|(a, b)| [a, b].concat()),
        3 => (piece(), piece()).prop_map(|(a, b)| [a, b"*".to_vec(), b].concat()),
        2 => (piece(), piece(), piece())
            .prop_map(|(a, b, c)| [a, b"*".to_vec(), b, b"*".to_vec(), c].concat()),
        2 => pattern(),
    ]
}

/// A channel over the alphabet of [`shaped_pattern`].
pub(crate) fn shaped_channel() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        9 => prop::collection::vec(prop::sample::select(&b"ab:*"[..]), 1..10),
    ]
}

/// Units of [`pathological`] patterns: the pattern bytes, and the channel
/// bytes that one can stand for (empty for a star run, which stands for
/// a few bytes of [`CHANNEL_BYTES`]).
const UNITS: &[(&[u8], &[u8])] = &[
    (b"*", b""),
    (b"**", b""),
    (b"?", b"ab*"),
    (b"a", b"a"),
    (b"a", b"a"),
    (b"b", b"b"),
    (b"[ab]", b"ab"),
    (b"[^a]", b"bc]"),
    (b"[a-c]", b"abc"),
    (b"[c-a]", b"abc"),
    (b"[\\]x]", b"]x"),
    (b"[-!]", b"-!"),
    (b"\\*", b"*"),
    (b"\\\\", b"\\"),
    (b"\\a", b"a"),
    (b"[a]", b"a"),
    (b"[\x80-\x7f]", b"\x80\x00a"),
];

/// A long pattern built from [`UNITS`], many of them stars, classes and
/// escapes, sometimes ending in a malformed construct, and a channel built
/// to match it or nearly: each unit replaced by a byte it accepts (a star
/// by 0–3 bytes), then in three cases out of eight one byte changed, one
/// removed or a byte appended.
pub(crate) fn pathological() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        prop::collection::vec((0..UNITS.len(), any::<u8>()), 0..160),
        prop::sample::select(vec![
            &b""[..],
            b"",
            b"",
            b"*",
            b"[",
            b"\\",
            b"[ab",
            b"[a-]x",
        ]),
        0u8..8,
        any::<usize>(),
    )
        .prop_map(|(units, end, edit, at)| {
            let mut pattern = Vec::new();
            let mut channel = Vec::new();
            for (unit, seed) in units {
                let (bytes, stands_for) = UNITS[unit];
                pattern.extend_from_slice(bytes);
                if stands_for.is_empty() {
                    let n = usize::from(seed % 4);
                    channel.extend(
                        (0..n).map(|k| {
                            CHANNEL_BYTES[(usize::from(seed) / 4 + k) % CHANNEL_BYTES.len()]
                        }),
                    );
                } else {
                    channel.push(stands_for[usize::from(seed) % stands_for.len()]);
                }
            }
            pattern.extend_from_slice(end);
            if !channel.is_empty() {
                let at = at % channel.len();
                match edit {
                    1 => channel[at] = CHANNEL_BYTES[at % CHANNEL_BYTES.len()],
                    2 => {
                        channel.remove(at);
                    }
                    3 => channel.push(b'a'),
                    _ => {}
                }
            }
            (pattern, channel)
        })
}
