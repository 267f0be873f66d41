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

    /// The set of bytes this element accepts.
    pub(crate) fn to_set(self) -> ByteSet {
        match self {
            Element::Byte(b) => {
                let mut set = ByteSet::default();
                set.insert(b);
                set
            }
            Element::Any => ByteSet::FULL,
            Element::Set(set) => set,
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

/// A pattern split into segments at its star runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// `segments[0]` precedes the first star run (possibly empty); each
    /// later segment follows one star run and is non-empty. There is
    /// always at least one segment.
    pub(crate) segments: Vec<Vec<Element>>,
    /// Whether the pattern ends with a star run (one that no segment
    /// follows).
    pub(crate) trailing_star: bool,
    /// Whether the pattern is the empty byte string (R0: the only pattern
    /// matching the empty channel).
    pub(crate) empty: bool,
}

impl Parsed {
    /// Parses `pattern`; every byte string is a valid pattern.
    pub(crate) fn new(pattern: &[u8]) -> Self {
        let mut segments = vec![Vec::new()];
        let mut trailing_star = false;
        let mut i = 0;
        while i < pattern.len() {
            let element = match pattern[i] {
                b'*' => {
                    while i < pattern.len() && pattern[i] == b'*' {
                        i += 1;
                    }
                    if i == pattern.len() {
                        trailing_star = true;
                    } else {
                        segments.push(Vec::new());
                    }
                    continue;
                }
                b'?' => {
                    i += 1;
                    Element::Any
                }
                b'\\' if i + 1 < pattern.len() => {
                    i += 2;
                    Element::Byte(pattern[i - 1])
                }
                b'[' => {
                    let (set, next) = parse_class(pattern, i);
                    i = next;
                    match set.len() {
                        1 => Element::Byte(set.first().unwrap_or_default()),
                        256 => Element::Any,
                        _ => Element::Set(set),
                    }
                }
                // R5, and R3's lone trailing backslash.
                literal => {
                    i += 1;
                    Element::Byte(literal)
                }
            };
            // `segments` starts non-empty and is only ever pushed to.
            if let Some(last) = segments.last_mut() {
                last.push(element);
            }
        }
        Self {
            segments,
            trailing_star,
            empty: pattern.is_empty(),
        }
    }

    /// Number of star runs that a segment follows: the runs the matcher
    /// may have to expand (R8 counts these).
    pub(crate) fn inner_star_runs(&self) -> usize {
        self.segments.len() - 1
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
        self.inner_star_runs() > super::reference::MAX_EXPANDED_STAR_RUNS
            || self
                .segments
                .iter()
                .flatten()
                .any(|e| matches!(e, Element::Set(set) if set.len() == 0))
    }

    /// The literal bytes, if the pattern has no star and only literal
    /// elements (then it matches exactly that channel).
    pub(crate) fn as_literal(&self) -> Option<Vec<u8>> {
        if self.segments.len() != 1 || self.trailing_star {
            return None;
        }
        all_literal(&self.segments[0])
    }

    /// `Some(prefix)` if the pattern is a literal prefix followed by one
    /// star run: it matches every non-empty channel starting with the
    /// prefix (the prefix may be empty: `*` matches any non-empty channel).
    pub(crate) fn as_prefix(&self) -> Option<Vec<u8>> {
        if self.segments.len() != 1 || !self.trailing_star {
            return None;
        }
        all_literal(&self.segments[0])
    }

    /// `Some(suffix)` if the pattern is one star run followed by a literal:
    /// it matches every channel ending with the suffix (never empty here).
    pub(crate) fn as_suffix(&self) -> Option<Vec<u8>> {
        if self.segments.len() != 2 || self.trailing_star || !self.segments[0].is_empty() {
            return None;
        }
        all_literal(&self.segments[1])
    }
}

/// The bytes of `elements` if every one is literal.
fn all_literal(elements: &[Element]) -> Option<Vec<u8>> {
    elements.iter().map(Element::literal).collect()
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
                for c in lo..=hi {
                    set.insert(c as u8);
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
                assert_eq!(parsed.segments, want, "{:?}", $pattern.escape_ascii().to_string());
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
