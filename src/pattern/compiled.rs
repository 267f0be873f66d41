//! One pattern compiled for repeated matching, in linear time.
//!
//! # Why greedy leftmost matching is exact
//!
//! A pattern is `head (STAR segment)* [STAR]` (see [`super::parse`]), each
//! segment a run of one-byte elements. Redis retries only the most recent
//! star run (R7): once the segment after star run *k* has matched and star
//! run *k + 1* is reached, run *k* is never expanded again. So the segment
//! after each star run is placed at its **leftmost** occurrence at or after
//! the current position, and the match commits to it. That is also the
//! best choice (it leaves the most channel for what follows), which is why
//! R7 never changes an answer for plain globs. The matcher below is
//! therefore:
//!
//! 1. empty channel: match iff the pattern is empty (R0);
//! 2. the head must match at offset 0;
//! 3. each later segment that is followed by another star run: if the
//!    channel is used up, no match (R6: the run is skipped and a segment
//!    follows); else jump to its leftmost occurrence, none means no match;
//! 4. the final segment, if no star run follows it, must end exactly at the
//!    channel's end without overlapping what is consumed; if a star run
//!    ends the pattern, match.
//!
//! R8 needs no check at match time: a pattern with more than 1000 star runs
//! followed by a segment can never match (see
//! [`Parsed::never_matches`]), so it compiles to a constant "no".
//!
//! # Cost
//!
//! Every search starts where the previous one ended and the position only
//! moves forward, so each channel byte is scanned by at most one search,
//! plus one final failing search that scans to the end. Per segment kind:
//!
//! * anchored head and tail: O(segment length), a slice compare when
//!   literal;
//! * a run of `?` only: O(1);
//! * a literal core (leading and trailing `?`s are peeled off first):
//!   `memchr` or `memchr::memmem`, linear in the bytes scanned;
//! * a core with classes or `?` inside: bit-parallel shift-and, O(1) per
//!   byte for cores of at most 64 elements, O(⌈m / 64⌉) per byte for a core
//!   of `m` elements (only words that can hold live bits are updated, so
//!   the cost stays near one word per byte unless long partial matches
//!   stay alive, as in `*` + 1,000 × `a?` against `aaaa…`).
//!
//! So a match costs O(|pattern| + |channel| · ⌈m_max / 64⌉), with `m_max`
//! the longest non-literal middle core: linear for every pattern whose such
//! cores are at most 64 elements, and never worse than the reference
//! matcher's O(|pattern| · |channel|). Memory is O(|pattern|) plus, for each
//! non-literal middle core, one `⌈m / 64⌉`-word mask per byte class (byte
//! values the core cannot tell apart share a class; at most 256).
//!
//! Matching allocates nothing, with one exception: a non-literal middle
//! core longer than [`STACK_WORDS`]` · 64` elements keeps its shift-and state
//! in a heap vector for the duration of the search.

use memchr::memmem;

use super::parse::{ByteSet, Element, Parsed};

/// Shift-and state words kept on the stack: cores up to 4,096 elements
/// search without allocating. 512 bytes of stack is small for any thread,
/// and a core that long is already an adversarial pattern, for which one
/// allocation per search is noise beside its 64+ words of work per byte.
const STACK_WORDS: usize = 64;

/// A pattern prepared for matching many channels.
#[derive(Clone, Debug)]
pub(crate) struct CompiledPattern {
    /// Whether the pattern is empty: R0 makes it the only one matching the
    /// empty channel.
    empty: bool,
    /// Whether no channel can match at all (an empty class, or more than
    /// 1000 expandable star runs).
    never: bool,
    /// The elements before the first star run, matched at offset 0.
    head: Anchored,
    /// The segments followed by a star run, each placed at its leftmost
    /// occurrence.
    middles: Box<[Searched]>,
    /// The last segment when no star run follows it: it must end at the
    /// channel's end. `None` when the pattern has no star run, or ends
    /// with one.
    tail: Option<Anchored>,
    /// Whether at least one star run follows the head.
    has_star: bool,
}

impl CompiledPattern {
    /// Compiles `pattern`; every byte string is a valid pattern.
    pub(crate) fn new(pattern: &[u8]) -> Self {
        Self::from_parsed(&Parsed::new(pattern))
    }

    /// Compiles an already parsed pattern.
    pub(crate) fn from_parsed(parsed: &Parsed) -> Self {
        let never = parsed.never_matches();
        let (head, rest) = parsed
            .segments
            .split_first()
            .expect("a parsed pattern has at least one segment");
        let has_star = !rest.is_empty() || parsed.trailing_star;
        let (middles, tail) = match rest.split_last() {
            _ if never => (&[][..], None),
            Some((last, middles)) if !parsed.trailing_star => (middles, Some(last)),
            _ => (rest, None),
        };
        Self {
            empty: parsed.empty,
            never,
            head: Anchored::new(if never { &[] } else { head }),
            middles: middles.iter().map(|s| Searched::new(s)).collect(),
            tail: tail.map(|s| Anchored::new(s)),
            has_star,
        }
    }

    /// Returns whether `channel` matches.
    pub(crate) fn matches(&self, channel: &[u8]) -> bool {
        if channel.is_empty() {
            return self.empty; // R0
        }
        if self.never || !self.head.matches_at(channel, 0) {
            return false;
        }
        if !self.has_star {
            return self.head.len == channel.len();
        }
        let mut pos = self.head.len;
        for segment in &self.middles {
            if pos == channel.len() {
                return false; // R6: the star run is skipped, a segment follows
            }
            match segment.find(channel, pos) {
                Some(at) => pos = at + segment.len,
                None => return false,
            }
        }
        match &self.tail {
            // R1: a star run ends the pattern (R6 if the channel is used up).
            None => true,
            Some(tail) => {
                pos < channel.len()
                    && channel
                        .len()
                        .checked_sub(tail.len)
                        .is_some_and(|start| start >= pos && tail.matches_at(channel, start))
            }
        }
    }
}

/// A segment only ever tested at one known offset.
#[derive(Clone, Debug)]
struct Anchored {
    /// Channel bytes the segment consumes.
    len: usize,
    /// The elements, in the cheapest form to compare.
    body: Body,
}

/// The elements of an anchored segment.
#[derive(Clone, Debug)]
enum Body {
    /// Every element is a literal byte: a slice compare.
    Literal(Box<[u8]>),
    /// At least one `?` or class: tested element by element.
    Elements(Box<[Element]>),
}

impl Anchored {
    /// Prepares `elements` for anchored tests.
    fn new(elements: &[Element]) -> Self {
        let literal: Option<Box<[u8]>> = elements.iter().map(Element::literal).collect();
        Self {
            len: elements.len(),
            body: match literal {
                Some(bytes) => Body::Literal(bytes),
                None => Body::Elements(elements.into()),
            },
        }
    }

    /// Whether the segment matches `channel[at..at + len]` (false if the
    /// channel is too short).
    #[inline]
    fn matches_at(&self, channel: &[u8], at: usize) -> bool {
        let Some(window) = channel.get(at..at.saturating_add(self.len)) else {
            return false;
        };
        match &self.body {
            Body::Literal(bytes) => **bytes == *window,
            Body::Elements(elements) => elements.iter().zip(window).all(|(e, &c)| e.accepts(c)),
        }
    }
}

/// A segment placed at its leftmost occurrence after a star run.
///
/// Leading and trailing `?`s are peeled off: the segment occurs at `q` iff
/// its core occurs at `q + lead` and `trail` bytes remain after the core,
/// so the search is for the core inside `channel[pos + lead .. len - trail]`.
#[derive(Clone, Debug)]
struct Searched {
    /// Channel bytes the whole segment consumes.
    len: usize,
    /// Leading `?` elements.
    lead: usize,
    /// Trailing `?` elements.
    trail: usize,
    /// How the core (what remains) is searched for.
    core: Core,
}

/// The search strategy for a segment's core.
#[derive(Clone, Debug)]
enum Core {
    /// The segment is all `?`: it occurs wherever there is room.
    Empty,
    /// A one-byte literal core: `memchr`.
    Byte(u8),
    /// A longer literal core: memchr's `memmem` (boxed: a finder is
    /// about 300 bytes, and `*a*a*a...` patterns hold many cores).
    Literal(Box<memmem::Finder<'static>>),
    /// A core with `?` or classes inside: shift-and.
    ShiftAnd(ShiftAnd),
}

impl Searched {
    /// Prepares `elements` (non-empty) for leftmost search.
    fn new(elements: &[Element]) -> Self {
        let lead = elements.iter().take_while(|e| **e == Element::Any).count();
        let trail = elements[lead..]
            .iter()
            .rev()
            .take_while(|e| **e == Element::Any)
            .count();
        let core_elements = &elements[lead..elements.len() - trail];
        let literal: Option<Vec<u8>> = core_elements.iter().map(Element::literal).collect();
        let core = match literal {
            _ if core_elements.is_empty() => Core::Empty,
            Some(bytes) if bytes.len() == 1 => Core::Byte(bytes[0]),
            Some(bytes) => Core::Literal(Box::new(memmem::Finder::new(&bytes).into_owned())),
            None => Core::ShiftAnd(ShiftAnd::new(core_elements)),
        };
        Self {
            len: elements.len(),
            lead,
            trail,
            core,
        }
    }

    /// The leftmost `q >= pos` where the segment matches `channel[q..]`.
    #[inline]
    fn find(&self, channel: &[u8], pos: usize) -> Option<usize> {
        let from = pos + self.lead;
        let to = channel.len().checked_sub(self.trail)?;
        let window = channel.get(from..to)?;
        let at = match &self.core {
            Core::Empty => Some(0),
            Core::Byte(byte) => memchr::memchr(*byte, window),
            Core::Literal(finder) => finder.find(window),
            Core::ShiftAnd(core) => core.find(window),
        }?;
        Some(from + at - self.lead)
    }
}

/// Bit-parallel shift-and for a core of `len` one-byte elements.
///
/// State bit `i` is set after reading a byte when the core's first `i + 1`
/// elements match the bytes just read; an occurrence ends where bit
/// `len - 1` is set. Byte values that every element treats alike share a
/// class, so the mask table has one row per class rather than per byte.
#[derive(Clone)]
struct ShiftAnd {
    /// Number of elements in the core.
    len: usize,
    /// Words per state and per mask row: `⌈len / 64⌉`.
    words: usize,
    /// Byte value to its class (row of `masks`).
    class_of: Box<[u8; 256]>,
    /// `classes × words` words: bit `i` of row `k` is set when element `i`
    /// accepts the bytes of class `k`.
    masks: Box<[u64]>,
    /// The first element's byte when it is a literal: while no partial
    /// match is alive, memchr skips to the next place one can start.
    first: Option<u8>,
}

impl std::fmt::Debug for ShiftAnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShiftAnd")
            .field("len", &self.len)
            .field("classes", &(self.masks.len() / self.words))
            .finish_non_exhaustive()
    }
}

impl ShiftAnd {
    /// Builds the tables for `elements` (non-empty).
    fn new(elements: &[Element]) -> Self {
        let len = elements.len();
        let words = len.div_ceil(64);
        let (class_of, representatives) = byte_classes(elements);
        let mut masks = vec![0u64; representatives.len() * words];
        for (class, &byte) in representatives.iter().enumerate() {
            let row = &mut masks[class * words..][..words];
            for (i, element) in elements.iter().enumerate() {
                if element.accepts(byte) {
                    row[i / 64] |= 1 << (i % 64);
                }
            }
        }
        Self {
            len,
            words,
            class_of,
            masks: masks.into(),
            first: elements[0].literal(),
        }
    }

    /// The mask row for `byte`.
    #[inline]
    fn row(&self, byte: u8) -> &[u64] {
        let class = usize::from(self.class_of[usize::from(byte)]);
        &self.masks[class * self.words..][..self.words]
    }

    /// The start of the leftmost occurrence of the core in `hay`.
    fn find(&self, hay: &[u8]) -> Option<usize> {
        if self.words == 1 {
            self.find_one_word(hay)
        } else if self.words <= STACK_WORDS {
            self.find_many_words(hay, &mut [0; STACK_WORDS][..self.words])
        } else {
            self.find_many_words(hay, &mut vec![0; self.words])
        }
    }

    /// [`Self::find`] for cores of at most 64 elements.
    fn find_one_word(&self, hay: &[u8]) -> Option<usize> {
        let accept = 1u64 << (self.len - 1);
        let mut state = 0u64;
        let mut i = 0;
        while i < hay.len() {
            if state == 0 {
                if let Some(first) = self.first {
                    i += memchr::memchr(first, &hay[i..])?;
                }
            }
            state = ((state << 1) | 1) & self.row(hay[i])[0];
            if state & accept != 0 {
                return Some(i + 1 - self.len);
            }
            i += 1;
        }
        None
    }

    /// [`Self::find`] for longer cores; `state` is `words` zeroed words.
    fn find_many_words(&self, hay: &[u8], state: &mut [u64]) -> Option<usize> {
        let last = self.words - 1;
        let accept = 1u64 << ((self.len - 1) % 64);
        // Words above `top` are zero. Only a carry out of word `top` (its
        // high bit) can make the next word non-zero, so each byte updates
        // `top + 1` words, or `top + 2` when that bit is set.
        let mut top = 0;
        let mut i = 0;
        while i < hay.len() {
            if top == 0 {
                // Only the first word is live, usually for long stretches:
                // keep it in a register until a partial match outgrows it.
                let mut word = state[0];
                while i < hay.len() && word >> 63 == 0 {
                    if word == 0 {
                        if let Some(first) = self.first {
                            i += memchr::memchr(first, &hay[i..])?;
                        }
                    }
                    word = ((word << 1) | 1) & self.row(hay[i])[0];
                    i += 1;
                }
                state[0] = word;
                if i == hay.len() {
                    return None; // the accept bit lives in a later word
                }
            }
            let row = self.row(hay[i]);
            let limit = (top + (state[top] >> 63) as usize).min(last);
            let mut carry = 1;
            for (word, mask) in state[..=limit].iter_mut().zip(row) {
                let old = *word;
                *word = ((old << 1) | carry) & mask;
                carry = old >> 63;
            }
            top = limit;
            while top > 0 && state[top] == 0 {
                top -= 1;
            }
            if top == last && state[last] & accept != 0 {
                return Some(i + 1 - self.len);
            }
            i += 1;
        }
        None
    }
}

/// Partitions the 256 byte values into classes that every element of
/// `elements` accepts or rejects alike. Returns each byte's class and one
/// representative byte per class.
fn byte_classes(elements: &[Element]) -> (Box<[u8; 256]>, Vec<u8>) {
    let mut sets: Vec<ByteSet> = elements
        .iter()
        .filter(|e| **e != Element::Any)
        .map(|e| e.to_set())
        .collect();
    sets.sort_unstable();
    sets.dedup();
    let mut class_of = Box::new([0u8; 256]);
    let mut classes = 1usize;
    for set in &sets {
        // Split each class by membership in `set`: (class, member) pairs
        // are renumbered in order of first appearance.
        let mut renumber = [[u16::MAX; 2]; 256];
        let mut next = 0u16;
        for byte in 0..=255u8 {
            let slot = &mut renumber[usize::from(class_of[usize::from(byte)])]
                [usize::from(set.contains(byte))];
            if *slot == u16::MAX {
                *slot = next;
                next += 1;
            }
            // At most 256 classes exist, so every id fits in a byte.
            class_of[usize::from(byte)] = *slot as u8;
        }
        classes = usize::from(next);
        if classes == 256 {
            break; // every byte is alone already
        }
    }
    let mut representatives = vec![None; classes];
    for byte in 0..=255u8 {
        representatives[usize::from(class_of[usize::from(byte)])].get_or_insert(byte);
    }
    let representatives = representatives.into_iter().flatten().collect();
    (class_of, representatives)
}

#[cfg(test)]
mod tests {
    use super::super::reference;
    use super::CompiledPattern;

    /// Asserts the compiled matcher agrees with the reference on each
    /// channel, and that the reference gives the expected answer.
    macro_rules! check {
        ($pattern:expr => $($channel:expr => $want:expr),+ $(,)?) => {{
            let pattern = $pattern;
            let pattern: &[u8] = pattern.as_ref();
            let compiled = CompiledPattern::new(pattern);
            $(
                let channel = $channel;
                let channel: &[u8] = channel.as_ref();
                assert_eq!(
                    reference::matches(pattern, channel), $want,
                    "reference: {:?} vs {:?}", pattern.escape_ascii().to_string(),
                    channel.escape_ascii().to_string(),
                );
                assert_eq!(
                    compiled.matches(channel), $want,
                    "compiled: {:?} vs {:?}", pattern.escape_ascii().to_string(),
                    channel.escape_ascii().to_string(),
                );
            )+
        }};
    }

    /// A segment ending exactly at the channel's end, followed by a star
    /// run: a final run matches (R6), a run followed by more does not.
    #[test]
    fn segment_ends_at_channel_end() {
        check!(b"*ab*" => b"xab" => true, b"ab" => true, b"xa" => false);
        check!(b"*ab*c" => b"xab" => false, b"xabc" => true, b"abc" => true);
        check!(b"a*" => b"a" => true, b"" => false);
        check!(b"a*b*" => b"ab" => true, b"a" => false);
        check!(b"ab*?" => b"ab" => false, b"abc" => true);
    }

    /// The tail is anchored at the end and may not overlap the prefix
    /// already consumed.
    #[test]
    fn tail_does_not_overlap() {
        check!(b"ab*ba" => b"aba" => false, b"abba" => true, b"abxba" => true);
        check!(b"a*b*ab" => b"abab" => true, b"aab" => false, b"abb" => false);
        check!(b"*a*a" => b"aa" => true, b"a" => false, b"xaya" => true);
    }

    /// Middle segments are placed at their leftmost occurrence.
    #[test]
    fn leftmost_middle() {
        check!(b"*a?c*d" => b"abcabcd" => true, b"abxd" => false, b"aacd" => true);
        check!(b"x*?b?*y" => b"xabcy" => true, b"xbcy" => false, b"xabby" => true);
        check!(b"*[ab]c*" => b"xxbc" => true, b"xxcc" => false);
        check!(b"*?*" => b"x" => true, b"" => false);
        check!(b"*??*??" => b"abc" => false, b"abcd" => true);
    }

    /// Malformed constructs keep Redis's meaning.
    #[test]
    fn malformed_constructs() {
        check!(b"[" => b"[" => false, b"" => false);
        check!(b"*[]" => b"a" => false);
        check!(b"a[^" => b"ab" => true, b"a" => false);
        check!(b"*[^]x" => b"ax" => true, b"x" => false);
        check!(b"\\" => b"\\" => true);
        check!(b"*\\" => b"a\\" => true, b"a" => false);
        check!(b"*[a-" => b"x-" => true, b"xb" => false);
        check!(b"*[\x80-\xff]*" => b"a\x90b" => true, b"a\x10b" => false);
        check!(b"*[a-\xff]x" => b"\x00x" => true, b"bx" => false);
        check!(b"[a*b" => b"*" => true, b"ab" => false);
    }

    /// Long cores with classes take the multi-word shift-and path.
    #[test]
    fn multi_word_cores() {
        for len in [63usize, 64, 65, 127, 128, 129, 300, 4200] {
            let core: Vec<u8> = (0..len)
                .flat_map(|i| if i % 7 == 3 { *b"?" } else { *b"a" })
                .collect();
            let pattern = [b"*".as_slice(), &core, b"*"].concat();
            let mut hit = vec![b'b'; len * 2];
            hit.extend(std::iter::repeat_n(b'a', len));
            // Never six `a`s in a row, which every core needs.
            let miss = b"aaaaab".repeat(len);
            check!(&pattern => &hit => true, &miss => false);
            let tight = [b"*".as_slice(), &core, b"x"].concat();
            let mut channel = vec![b'a'; len - 1];
            channel.push(b'x');
            check!(&tight => &channel => false);
            channel.insert(0, b'a');
            check!(&tight => &channel => true);
        }
    }

    /// R8 boundary: 1000 expandable star runs are evaluated, 1001 never
    /// match; a final run and runs skipped at the end are not counted.
    #[test]
    fn nesting_limit() {
        let a = |n: usize| vec![b'a'; n];
        check!(b"*?".repeat(1000) => a(1000) => true);
        check!(b"*?".repeat(1001) => a(1001) => false);
        check!([b"*?".repeat(1000), b"*".to_vec()].concat() => a(1000) => true);
        check!(b"a*".repeat(1001) => a(1001) => true);
        check!([b"a*".repeat(1000), b"b".to_vec()].concat() => [a(1000), b"b".to_vec()].concat() => true);
        check!([b"a*".repeat(1001), b"b".to_vec()].concat() => [a(1001), b"b".to_vec()].concat() => false);
    }

    /// Every byte string of the given alphabet up to `max_len` bytes.
    fn all_strings(alphabet: &[u8], max_len: usize) -> Vec<Vec<u8>> {
        let mut all = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..max_len {
            last = last
                .iter()
                .flat_map(|s: &Vec<u8>| {
                    alphabet.iter().map(move |&b| [s.as_slice(), &[b]].concat())
                })
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    /// Exhaustive agreement on every pattern of up to 4 grammar bytes
    /// against every channel of up to 3 bytes.
    #[test]
    fn exhaustive_small() {
        let channels = all_strings(b"a]-\\\x80", 3);
        for pattern in all_strings(b"*?[]^-\\a", 4) {
            let compiled = CompiledPattern::new(&pattern);
            for channel in &channels {
                assert_eq!(
                    compiled.matches(channel),
                    reference::matches(&pattern, channel),
                    "{:?} vs {:?}",
                    pattern.escape_ascii().to_string(),
                    channel.escape_ascii().to_string()
                );
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// The compiled matcher agrees with the reference everywhere.
        #[test]
        fn prop_agrees_with_reference(
            pattern in super::super::testgen::pattern(),
            channel in super::super::testgen::channel(),
        ) {
            proptest::prop_assert_eq!(
                CompiledPattern::new(&pattern).matches(&channel),
                reference::matches(&pattern, &channel)
            );
        }

        /// Agreement on long cores (the multi-word shift-and path), with
        /// channels that embed the core, sometimes with one byte flipped.
        #[test]
        fn prop_long_cores_agree(
            core in proptest::collection::vec(0u8..5, 60..200),
            tail in proptest::sample::select(vec![&b"*"[..], b"*b", b"", b"?"]),
            noise in proptest::collection::vec(proptest::bool::ANY, 300),
            prefix in 0usize..80,
            flip in proptest::option::of(0usize..200),
        ) {
            let units: [&[u8]; 5] = [b"a", b"b", b"?", b"[ab]", b"[^b]"];
            let pattern: Vec<u8> = [b"*".as_slice(), &core.iter().map(|&u| units[usize::from(u)]).collect::<Vec<_>>().concat(), tail].concat();
            let coin = |i: usize| if noise[i % noise.len()] { b'a' } else { b'b' };
            let mut channel: Vec<u8> = (0..prefix).map(coin).collect();
            channel.extend(core.iter().enumerate().map(|(i, &u)| match u {
                0 | 4 => b'a',
                1 => b'b',
                _ => coin(prefix + i),
            }));
            if let Some(at) = flip.filter(|&at| at < channel.len()) {
                channel[at] ^= b'a' ^ b'b';
            }
            channel.extend((0..3).map(|i| coin(i + 7)));
            proptest::prop_assert_eq!(
                CompiledPattern::new(&pattern).matches(&channel),
                reference::matches(&pattern, &channel)
            );
        }

        /// Agreement near the star-run limit.
        #[test]
        fn prop_agrees_near_limit((pattern, channel) in super::super::testgen::near_limit()) {
            proptest::prop_assert_eq!(
                CompiledPattern::new(&pattern).matches(&channel),
                reference::matches(&pattern, &channel)
            );
        }
    }
}
