//! Parsing a Redis glob into star-separated segments of one-byte elements.
//!
//! Every element other than a star run consumes exactly one channel byte
//! (rules R2–R5), so a pattern is a sequence of *segments* (runs of one-byte
//! elements) separated by star runs (R1):
//!
//! ```text
//! pattern = segment₀ ( STAR segment )* [ STAR ]
//! ```
//!
//! `segment₀` may be empty (the pattern starts with a star); every later
//! segment is non-empty, because star runs are maximal. The parse follows
//! the reference matcher byte for byte: the same escape, class and range
//! rules, including unterminated classes that swallow the rest of the
//! pattern, trailing backslashes and signed range endpoints.

/// A set of bytes, one bit per byte value.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct ByteSet {
    /// Bit `b % 64` of word `b / 64` is set when byte `b` is a member.
    bits: [u64; 4],
}

impl ByteSet {
    /// The set holding every byte.
    #[cfg(test)]
    pub(crate) const FULL: Self = Self {
        bits: [u64::MAX; 4],
    };

    /// Whether `byte` is a member.
    #[inline]
    pub(crate) fn contains(&self, byte: u8) -> bool {
        self.bits[usize::from(byte >> 6)] >> (byte & 63) & 1 != 0
    }

    /// Adds `byte`.
    pub(crate) fn insert(&mut self, byte: u8) {
        self.bits[usize::from(byte >> 6)] |= 1 << (byte & 63);
    }

    /// Adds every byte in `first..=last` (unsigned, `first <= last`).
    pub(crate) fn insert_range(&mut self, first: u8, last: u8) {
        for (w, word) in self.bits.iter_mut().enumerate() {
            // This word's bytes are `64 w .. 64 w + 63`; clamp the range.
            let (lo, hi) = (64 * w, 64 * w + 63);
            let (a, b) = (usize::from(first).max(lo), usize::from(last).min(hi));
            if a <= b {
                let width = b - a + 1;
                let mask = if width == 64 {
                    u64::MAX
                } else {
                    ((1u64 << width) - 1) << (a - lo)
                };
                *word |= mask;
            }
        }
    }

    /// Number of members.
    pub(crate) fn len(&self) -> u32 {
        self.bits.iter().map(|w| w.count_ones()).sum()
    }

    /// The complement.
    fn negated(self) -> Self {
        Self {
            bits: self.bits.map(|w| !w),
        }
    }

    /// The smallest member, if any.
    fn first(&self) -> Option<u8> {
        (0..=255u8).find(|&b| self.contains(b))
    }

    /// The members as maximal runs of consecutive byte values, in
    /// increasing order: `(first, last)` pairs, at most 128 of them.
    pub(crate) fn ranges(&self) -> Vec<[u8; 2]> {
        let mut ranges = Vec::new();
        let mut run: Option<[u8; 2]> = None;
        for byte in 0..=255u8 {
            match (self.contains(byte), &mut run) {
                (true, Some(r)) => r[1] = byte,
                (true, None) => run = Some([byte, byte]),
                (false, Some(_)) => ranges.extend(run.take()),
                (false, None) => {}
            }
        }
        ranges.extend(run);
        ranges
    }
}

impl std::fmt::Debug for ByteSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let members: Vec<u8> = (0..=255u8).filter(|&b| self.contains(b)).collect();
        write!(f, "[{}]", members.escape_ascii())
    }
}

/// One element of a segment: it consumes exactly one channel byte.
///
/// Classes are normalised: a class with one member is a [`Element::Byte`]
/// and a class with all 256 members is [`Element::Any`], since each
/// accepts exactly the same bytes. An empty class stays a `Set` (it can
/// never match, which [`Parsed::never_matches`] reports).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Element {
    /// A literal byte: R5, an escape (R3) or a one-member class.
    Byte(u8),
    /// `?` (R2), or a class accepting every byte such as `[^]`.
    Any,
    /// Any other class (R4), already negated if it was `[^...]`.
    Set(ByteSet),
}

impl Element {
    /// Whether this element accepts `byte`.
    #[inline]
    pub(crate) fn accepts(&self, byte: u8) -> bool {
        match self {
            Element::Byte(b) => *b == byte,
            Element::Any => true,
            Element::Set(set) => set.contains(byte),
        }
    }

    /// The literal byte, if this element is one.
    pub(crate) fn literal(&self) -> Option<u8> {
        match self {
            Element::Byte(b) => Some(*b),
            _ => None,
        }
    }
}

/// One run of one-byte elements between star runs, located in the
/// pattern's bytes rather than copied out of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Pattern index of the segment's first byte.
    pub(crate) start: usize,
    /// Pattern index just past the segment's last byte.
    pub(crate) end: usize,
    /// Number of elements: the channel bytes the segment consumes.
    pub(crate) len: usize,
    /// Whether every element is a literal byte.
    pub(crate) literal: bool,
    /// Whether the segment's pattern bytes are its literal bytes as they
    /// stand (no escapes, no one-member classes), so matching can compare
    /// against the pattern itself.
    pub(crate) verbatim: bool,
}

impl Segment {
    /// The segment made of the elements in `pattern[start..end]`, which
    /// must be a star-free run of whole elements as [`Parsed`] split them.
    pub(crate) fn measure(pattern: &[u8], start: usize, end: usize) -> Self {
        let mut segment = Self::empty_at(start);
        let pattern = &pattern[..end];
        let mut i = start;
        while i < end {
            let (element, next) = element_at(pattern, i);
            segment.len += 1;
            segment.literal &= element.literal().is_some();
            segment.verbatim &= element.literal().is_some() && next == i + 1;
            i = next;
        }
        segment.end = end;
        segment
    }

    /// An empty segment starting at pattern index `start`.
    fn empty_at(start: usize) -> Self {
        Self {
            start,
            end: start,
            len: 0,
            literal: true,
            verbatim: true,
        }
    }
}

/// A pattern split into segments at its star runs.
///
/// Segments are spans of the pattern: parsing allocates one small record
/// per segment, never one per element, so a pattern of any length parses
/// in one pass and O(number of star runs) memory. Elements are read from
/// the pattern again when they are needed ([`Parsed::elements`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parsed<'p> {
    /// The pattern's bytes.
    pattern: &'p [u8],
    /// `segments[0]` precedes the first star run (possibly empty); each
    /// later segment follows one star run and is non-empty. There is
    /// always at least one segment.
    pub(crate) segments: Vec<Segment>,
    /// Whether the pattern ends with a star run (one that no segment
    /// follows).
    pub(crate) trailing_star: bool,
    /// Whether the pattern is the empty byte string (R0: the only pattern
    /// matching the empty channel).
    pub(crate) empty: bool,
    /// Whether some element accepts no byte (`[]`, a lone `[` at the end).
    empty_class: bool,
    /// Whether more star runs than R8 allows are followed by a segment.
    /// Parsing stops at the first one too many, so `segments` then holds
    /// only the first segments.
    too_many_star_runs: bool,
}

impl<'p> Parsed<'p> {
    /// Parses `pattern`; every byte string is a valid pattern.
    pub(crate) fn new(pattern: &'p [u8]) -> Self {
        let mut segments = Vec::new();
        let mut segment = Segment::empty_at(0);
        let mut trailing_star = false;
        let mut empty_class = false;
        let mut too_many_star_runs = false;
        let mut i = 0;
        while i < pattern.len() {
            if pattern[i] == b'*' {
                while i < pattern.len() && pattern[i] == b'*' {
                    i += 1;
                }
                if i == pattern.len() {
                    trailing_star = true;
                } else {
                    segments.push(segment);
                    segment = Segment::empty_at(i);
                    if segments.len() > super::reference::MAX_EXPANDED_STAR_RUNS {
                        // The pattern can never match (R8): the rest of it
                        // would only cost time and memory.
                        too_many_star_runs = true;
                        break;
                    }
                }
                continue;
            }
            let (element, next) = element_at(pattern, i);
            segment.len += 1;
            segment.literal &= element.literal().is_some();
            segment.verbatim &= element.literal().is_some() && next == i + 1;
            empty_class |= matches!(element, Element::Set(set) if set.len() == 0);
            i = next;
            segment.end = i;
        }
        segments.push(segment);
        Self {
            pattern,
            segments,
            trailing_star,
            empty: pattern.is_empty(),
            empty_class,
            too_many_star_runs,
        }
    }

    /// The pattern's bytes.
    pub(crate) fn pattern(&self) -> &'p [u8] {
        self.pattern
    }

    /// The elements of `segment`, read from the pattern.
    pub(crate) fn elements(&self, segment: &Segment) -> Elements<'p> {
        Elements {
            pattern: &self.pattern[..segment.end],
            at: segment.start,
        }
    }

    /// The literal bytes of `segment`, if every element is a literal.
    pub(crate) fn literal_bytes(&self, segment: &Segment) -> Option<Vec<u8>> {
        if !segment.literal {
            return None;
        }
        if segment.verbatim {
            return Some(self.pattern[segment.start..segment.end].to_vec());
        }
        self.elements(segment).map(|e| e.literal()).collect()
    }

    /// Whether no channel can ever match.
    ///
    /// True when an element accepts no byte (`[]`, `[`, `[]]`...), since
    /// every element must consume a byte; and when more than
    /// [`MAX_EXPANDED_STAR_RUNS`](super::reference::MAX_EXPANDED_STAR_RUNS)
    /// star runs are followed by a segment: reaching the 1001st such run
    /// fails with bytes left (R8) and also without (R6, a segment follows),
    /// and no match can end before every segment is consumed.
    pub(crate) fn never_matches(&self) -> bool {
        self.too_many_star_runs || self.empty_class
    }

    /// Channel bytes every match consumes: the sum of the segment lengths.
    pub(crate) fn min_len(&self) -> usize {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// The literal bytes, if the pattern has no star and only literal
    /// elements (then it matches exactly that channel).
    pub(crate) fn as_literal(&self) -> Option<Vec<u8>> {
        if self.segments.len() != 1 || self.trailing_star {
            return None;
        }
        self.literal_bytes(&self.segments[0])
    }

    /// `Some(prefix)` if the pattern is a literal prefix followed by one
    /// star run: it matches every non-empty channel starting with the
    /// prefix (the prefix may be empty: `*` matches any non-empty channel).
    pub(crate) fn as_prefix(&self) -> Option<Vec<u8>> {
        if self.segments.len() != 1 || !self.trailing_star {
            return None;
        }
        self.literal_bytes(&self.segments[0])
    }

    /// `Some(suffix)` if the pattern is one star run followed by a literal:
    /// it matches every channel ending with the suffix (never empty here).
    pub(crate) fn as_suffix(&self) -> Option<Vec<u8>> {
        if self.segments.len() != 2 || self.trailing_star || self.segments[0].len != 0 {
            return None;
        }
        self.literal_bytes(&self.segments[1])
    }
}

/// The elements of one segment, parsed as they are read.
#[derive(Clone, Debug)]
pub(crate) struct Elements<'p> {
    /// The pattern, cut at the segment's end.
    pattern: &'p [u8],
    /// Index of the next element's first byte.
    at: usize,
}

impl Iterator for Elements<'_> {
    type Item = Element;

    fn next(&mut self) -> Option<Element> {
        if self.at == self.pattern.len() {
            return None;
        }
        let (element, next) = element_at(self.pattern, self.at);
        self.at = next;
        Some(element)
    }
}

/// Reads the element starting at `pattern[i]`, which is not a star, and
/// returns it with the index just past it.
///
/// Classes are normalised: a class with one member is a [`Element::Byte`]
/// and a class with all 256 members is [`Element::Any`].
pub(crate) fn element_at(pattern: &[u8], i: usize) -> (Element, usize) {
    match pattern[i] {
        b'?' => (Element::Any, i + 1),
        b'\\' if i + 1 < pattern.len() => (Element::Byte(pattern[i + 1]), i + 2),
        b'[' => {
            let (set, next) = parse_class(pattern, i);
            let element = match set.len() {
                1 => Element::Byte(set.first().unwrap_or_default()),
                256 => Element::Any,
                _ => Element::Set(set),
            };
            (element, next)
        }
        // R5, and R3's lone trailing backslash.
        literal => (Element::Byte(literal), i + 1),
    }
}

/// R4: parses the class starting at `pattern[start] == b'['`, returning the
/// set it accepts (negation applied) and the index just past it.
fn parse_class(pattern: &[u8], start: usize) -> (ByteSet, usize) {
    let mut i = start + 1;
    let negated = pattern.get(i) == Some(&b'^');
    if negated {
        i += 1;
    }
    let mut set = ByteSet::default();
    while i < pattern.len() {
        match pattern[i] {
            b']' => {
                i += 1;
                break;
            }
            b'\\' if i + 1 < pattern.len() => {
                set.insert(pattern[i + 1]);
                i += 2;
            }
            x if i + 2 < pattern.len() && pattern[i + 1] == b'-' => {
                // Signed comparison, as Redis's `char` on x86-64.
                let (a, b) = (x as i8, pattern[i + 2] as i8);
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                if (lo < 0) == (hi < 0) {
                    // Same sign: the bytes are in the same order unsigned.
                    set.insert_range(lo as u8, hi as u8);
                } else {
                    set.insert_range(0, hi as u8);
                    set.insert_range(lo as u8, 255);
                }
                i += 3;
            }
            x => {
                set.insert(x);
                i += 1;
            }
        }
    }
    // An unterminated class runs to the end of the pattern: `i` is there.
    (if negated { set.negated() } else { set }, i)
}

#[cfg(test)]
mod tests {
    use super::{ByteSet, Element, Parsed};

    fn set(bytes: &[u8]) -> Element {
        let mut s = ByteSet::default();
        for &b in bytes {
            s.insert(b);
        }
        Element::Set(s)
    }

    macro_rules! parses {
        ($name:ident, $pattern:expr, [$([$($e:expr),*]),*], $trailing:expr) => {
            #[test]
            fn $name() {
                let parsed = Parsed::new($pattern);
                let want: Vec<Vec<Element>> = vec![$(vec![$($e),*]),*];
                let got: Vec<Vec<Element>> = parsed
                    .segments
                    .iter()
                    .map(|s| parsed.elements(s).collect())
                    .collect();
                assert_eq!(got, want, "{:?}", $pattern.escape_ascii().to_string());
                for segment in &parsed.segments {
                    assert_eq!(segment.len, parsed.elements(segment).count());
                }
                assert_eq!(parsed.trailing_star, $trailing);
            }
        };
    }

    use Element::{Any, Byte};

    parses!(empty, b"", [[]], false);
    parses!(star, b"*", [[]], true);
    parses!(
        stars_collapse,
        b"a***b",
        [[Byte(b'a')], [Byte(b'b')]],
        false
    );
    parses!(leading_star, b"*ab", [[], [Byte(b'a'), Byte(b'b')]], false);
    parses!(question, b"a?*", [[Byte(b'a'), Any]], true);
    parses!(escape_star, b"\\*", [[Byte(b'*')]], false);
    parses!(
        trailing_backslash,
        b"a\\",
        [[Byte(b'a'), Byte(b'\\')]],
        false
    );
    parses!(single_member_class, b"[a]", [[Byte(b'a')]], false);
    parses!(negated_empty_class, b"[^]", [[Any]], false);
    parses!(unterminated_negated_empty, b"[^", [[Any]], false);
    parses!(
        empty_class,
        b"[]a]",
        [[set(b""), Byte(b'a'), Byte(b']')]],
        false
    );
    parses!(lone_bracket, b"[", [[set(b"")]], false);
    parses!(unterminated_swallows_stars, b"[a*", [[set(b"a*")]], false);
    parses!(range_to_bracket, b"[a-]", [[set(b"]^_`a")]], false);
    parses!(short_range_is_literals, b"[a-", [[set(b"a-")]], false);
    parses!(escaped_dash, b"[a\\-z]", [[set(b"a-z")]], false);
    parses!(backslash_range_end, b"[a-\\]", [[set(b"\\]^_`a")]], false);
    parses!(class_trailing_backslash, b"[\\", [[Byte(b'\\')]], false);
    parses!(signed_range, b"[\x00-\xff]", [[set(b"\x00\xff")]], false);

    /// Shapes the index relies on are recognised exactly.
    #[test]
    fn shapes() {
        assert_eq!(Parsed::new(b"a\\*b").as_literal(), Some(b"a*b".to_vec()));
        assert_eq!(Parsed::new(b"").as_literal(), Some(Vec::new()));
        assert_eq!(Parsed::new(b"a*").as_literal(), None);
        assert_eq!(Parsed::new(b"ai:*").as_prefix(), Some(b"ai:".to_vec()));
        assert_eq!(Parsed::new(b"**").as_prefix(), Some(Vec::new()));
        assert_eq!(Parsed::new(b"a*b").as_prefix(), None);
        assert_eq!(Parsed::new(b"*:x").as_suffix(), Some(b":x".to_vec()));
        assert_eq!(Parsed::new(b"*:x*").as_suffix(), None);
        assert_eq!(Parsed::new(b"*?x").as_suffix(), None);
    }

    /// Segments know whether their bytes can be compared as written, and
    /// how many channel bytes a match needs.
    #[test]
    fn segment_spans() {
        let parsed = Parsed::new(b"ab*a\\*b*[x]y*a?[bc]");
        let flags: Vec<(bool, bool, usize)> = parsed
            .segments
            .iter()
            .map(|s| (s.literal, s.verbatim, s.len))
            .collect();
        assert_eq!(
            flags,
            [
                (true, true, 2),
                (true, false, 3),
                (true, false, 2),
                (false, false, 3)
            ]
        );
        assert_eq!(parsed.min_len(), 10);
        assert_eq!(
            parsed.literal_bytes(&parsed.segments[1]),
            Some(b"a*b".to_vec())
        );
        assert_eq!(parsed.literal_bytes(&parsed.segments[3]), None);
        assert_eq!(Parsed::new(b"").segments, [super::Segment::empty_at(0)]);
    }

    /// Measuring a segment's span again gives the segment the parse made:
    /// the compiler re-measures the cores of middle segments this way, and
    /// a verbatim literal measured as not verbatim would be copied instead
    /// of sharing the pattern's bytes.
    #[test]
    fn measure_agrees_with_parse() {
        for pattern in [
            &b"ab*a\\*b*[x]y*a?[bc]"[..],
            b"*abc*",
            b"x*?yz?*[^a]b\\",
            b"[a-c]d*e[",
        ] {
            let parsed = Parsed::new(pattern);
            for segment in &parsed.segments {
                assert_eq!(
                    super::Segment::measure(pattern, segment.start, segment.end),
                    *segment,
                    "{:?}",
                    pattern.escape_ascii().to_string()
                );
            }
        }
    }

    /// Ranges are maximal runs, in order, covering exactly the members.
    #[test]
    fn set_ranges() {
        let mut set = ByteSet::default();
        for b in [0u8, 1, 2, 7, 9, 10, 255] {
            set.insert(b);
        }
        assert_eq!(set.ranges(), [[0, 2], [7, 7], [9, 10], [255, 255]]);
        assert_eq!(ByteSet::FULL.ranges(), [[0, 255]]);
        for (first, last) in [
            (0u8, 255u8),
            (3, 3),
            (60, 70),
            (64, 127),
            (63, 64),
            (200, 255),
        ] {
            let mut set = ByteSet::default();
            set.insert_range(first, last);
            assert_eq!(set.ranges(), [[first, last]]);
        }
        assert!(ByteSet::default().ranges().is_empty());
    }

    /// Patterns that can never match are recognised, and only those.
    #[test]
    fn never_matches() {
        assert!(Parsed::new(b"a[]").never_matches());
        assert!(Parsed::new(b"*[").never_matches());
        assert!(Parsed::new(&b"*?".repeat(1001)).never_matches());
        assert!(!Parsed::new(&b"*?".repeat(1000)).never_matches());
        assert!(!Parsed::new(&[b"a*".repeat(1001), b"".to_vec()].concat()).never_matches());
        assert!(Parsed::new(&[b"a*".repeat(1001), b"b".to_vec()].concat()).never_matches());
        assert!(!Parsed::new(b"[^]").never_matches());
    }
}
