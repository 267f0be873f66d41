//! One pattern compiled for repeated matching.
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
//! 2. a channel shorter than the sum of the segment lengths cannot match;
//! 3. the head must match at offset 0;
//! 4. each later segment that is followed by another star run: if the
//!    channel is used up, no match (R6: the run is skipped and a segment
//!    follows); else jump to its leftmost occurrence, none means no match;
//! 5. the final segment, if no star run follows it, must end exactly at the
//!    channel's end without overlapping what is consumed; if a star run
//!    ends the pattern, match.
//!
//! R8 needs no check at match time: a pattern with more than 1000 star runs
//! followed by a segment can never match (see
//! [`Parsed::never_matches`]), so it compiles to a constant "no".
//!
//! # Representation and memory
//!
//! The compiled form keeps a reference to the pattern's bytes (a [`Bytes`]
//! clone, no copy) and never one record per element:
//!
//! * literal segments are compared against the pattern's own bytes, or
//!   against a decoded copy when they contain escapes or one-member classes;
//! * other segments are packed: one byte per element, two bits per element
//!   saying `?`, class or literal, and for each class element the position
//!   of its class, each distinct class stored once as its runs of byte
//!   values (two bytes per run);
//! * one small record per segment, and a pattern that can match has at most
//!   1,001 segments (R8).
//!
//! Search accelerators (a `memchr::memmem` finder per literal middle
//! segment of at most [`MAX_PREBUILT_NEEDLE`] bytes, a shift-and table per
//! other middle segment, which then needs its packed elements no more) are
//! built at compile time while their total size stays within
//! [`ACCELERATOR_ALLOWANCE`] plus the pattern's length; segments past that
//! budget build what they need on the stack or heap for each search and
//! drop it afterwards. So the compiled form takes at most about four bytes
//! per pattern byte plus a fixed part (see [`CompiledPattern::heap_size`]
//! and its tests; 1 MiB patterns of the costliest shapes hold 0 to 2.2
//! bytes per pattern byte besides the pattern itself, `compile_large` in
//! `benches/pattern_index.rs`), and
//! compiling is a few passes over the pattern plus the budgeted table
//! building.
//!
//! # Cost of a match
//!
//! Every search starts where the previous one ended and the position only
//! moves forward, so each channel byte is scanned by at most one search,
//! plus one final failing search that scans to the end. Per segment kind:
//!
//! * anchored head and tail: O(segment length), a slice compare when
//!   literal, and one element test per byte otherwise (a class test is a
//!   binary search over its runs);
//! * a run of `?` only: O(1);
//! * a literal core (leading and trailing `?`s are peeled off first):
//!   `memchr` or `memchr::memmem`, linear in the bytes scanned;
//! * a core with classes or `?` inside: bit-parallel shift-and, one state
//!   word per 64 elements, updating only the words that hold live partial
//!   matches. A core of `m` elements costs O(1) per byte while `m <= 64`,
//!   and at most ⌈m / 64⌉ word updates per byte beyond that (reached only
//!   when long partial matches stay alive, as in `*` + 1,000 × `a?` + `b`
//!   against `aaaa…`). A core without a precomputed table builds one for
//!   each search: 256 words for its first 64 elements and, only once a
//!   partial match of those 64 is found, 256 words per 64 elements for the
//!   whole core, plus one write per byte its classes cover.
//!
//! A core longer than the rest of the channel is never searched (step 2),
//! so `m <= n` for a channel of `n` bytes, and one match costs
//! O(|pattern| + n · ⌈min(m, n) / 64⌉) with `m` the longest non-literal
//! core: linear for every pattern whose non-literal middle cores are at
//! most 64 elements, never more than about n² / 64 word updates whatever
//! the pattern's length, and never worse than the reference matcher's
//! O(|pattern| · n), which is also Redis's. `benches/pattern_index.rs`
//! (`worst_match`) measures the worst shape: 17 µs for a 1 KiB channel,
//! 3.6 ms for 32 KiB.

use bytes::Bytes;
use hashbrown::{HashMap, HashSet};
use memchr::memmem;

use super::parse::{ByteSet, Element, Parsed, Segment, element_at};

/// Bytes of search accelerators a pattern may hold beyond its own length.
///
/// The budget for a pattern is this plus its length. 4 KiB covers every
/// accelerator of any pattern under a few hundred bytes (a finder is about
/// 300 bytes, a shift-and table for a core of up to 64 elements 256 bytes
/// plus 8 per byte class), so realistic patterns never build tables while
/// matching; past it, a pattern's accelerators grow no faster than the
/// pattern itself. A search without its accelerator costs about 50 ns more
/// for a literal core (`memmem::find` builds its searcher) and a 2 KiB
/// table build for a shift-and core.
const ACCELERATOR_ALLOWANCE: usize = 4096;

/// Longest literal core given a prebuilt `memmem` searcher. A searcher
/// holds its own copy of the needle; past 4 KiB, building one per search
/// (linear in the needle) costs less than the search itself, which scans
/// at least as many channel bytes, so the copy is not worth its memory.
const MAX_PREBUILT_NEEDLE: usize = 4096;

/// Shift-and state words kept on the stack: cores up to 4,096 elements
/// search without allocating. Two states of 64 words are 1 KiB of stack,
/// small for any thread; a core that long is already an adversarial
/// pattern, for which one allocation per search is noise beside its 64+
/// words of work per byte.
const STACK_WORDS: usize = 64;

/// A pattern prepared for matching many channels.
#[derive(Clone)]
pub(crate) struct CompiledPattern {
    /// Whether the pattern is empty: R0 makes it the only one matching the
    /// empty channel.
    empty: bool,
    /// Whether no channel can match at all (an empty class, or more than
    /// 1000 expandable star runs).
    never: bool,
    /// Whether at least one star run follows the head.
    has_star: bool,
    /// Channel bytes any match consumes: the sum of the segment lengths
    /// (saturated: a lower bound is all it needs to be).
    min_len: u32,
    /// The elements before the first star run, matched at offset 0.
    head: Anchored,
    /// The segments followed by a star run, each placed at its leftmost
    /// occurrence.
    middles: Box<[Middle]>,
    /// The last segment when no star run follows it: it must end at the
    /// channel's end. `None` when the pattern has no star run, or ends
    /// with one. Boxed to keep the compiled form small: it is read only
    /// once the head and middles have matched.
    tail: Option<Box<Anchored>>,
    /// Heap bytes of literal segments that differ from their pattern
    /// bytes (escapes, one-member classes), for [`Self::heap_size`].
    decoded: usize,
    /// The elements of non-literal segments without a faster form, packed
    /// (`None` when there are none).
    packed: Option<Box<Packed>>,
}

/// A segment only ever tested at one known offset, in the cheapest form
/// to compare.
#[derive(Clone, Debug)]
enum Anchored {
    /// Every element is a literal byte: a slice compare against these
    /// bytes (a slice of the pattern's own, or a decoded copy).
    Literal(Bytes),
    /// At least one `?` or class: tested element by element, from an
    /// array when the accelerator budget allowed one (40 bytes per
    /// element, so realistic heads and tails)...
    Elements(Box<[Element]>),
    /// ... and else from the packed elements.
    Packed(ElementRange),
}

impl Anchored {
    /// Channel bytes the segment consumes.
    #[inline]
    fn len(&self) -> usize {
        match self {
            Anchored::Literal(bytes) => bytes.len(),
            Anchored::Elements(elements) => elements.len(),
            Anchored::Packed(range) => range.len,
        }
    }
}

/// A segment placed at its leftmost occurrence after a star run.
///
/// Leading and trailing `?`s are peeled off: the segment occurs at `q` iff
/// its core occurs at `q + lead` and `trail` bytes remain after the core,
/// so the search is for the core inside `channel[pos + lead .. len - trail]`.
#[derive(Clone, Debug)]
struct Middle {
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
    /// A longer literal core: `memmem`.
    Literal {
        /// The core's bytes.
        needle: Bytes,
        /// A prebuilt searcher, when the accelerator budget allowed one
        /// (boxed: a finder is about 300 bytes).
        finder: Option<Box<memmem::Finder<'static>>>,
    },
    /// A core with `?` or classes inside: shift-and.
    ShiftAnd(ShiftAnd),
}

impl CompiledPattern {
    /// Compiles `pattern`; every byte string is a valid pattern.
    pub(crate) fn new(pattern: &Bytes) -> Self {
        Self::from_parsed(&Parsed::new(pattern), pattern)
    }

    /// Compiles an already parsed pattern; `source` holds the bytes it was
    /// parsed from (literal segments keep slices of them, not copies).
    pub(crate) fn from_parsed(parsed: &Parsed<'_>, source: &Bytes) -> Self {
        let budget = ACCELERATOR_ALLOWANCE.saturating_add(source.len());
        Self::build(parsed, source, budget)
    }

    /// Compiles `pattern` with no search accelerators, as a pattern past
    /// its budget matches: for tests of that path.
    #[cfg(test)]
    pub(crate) fn without_accelerators(pattern: &[u8]) -> Self {
        Self::build(&Parsed::new(pattern), &Bytes::copy_from_slice(pattern), 0)
    }

    /// [`Self::from_parsed`] with `budget` bytes for accelerators.
    fn build(parsed: &Parsed<'_>, source: &Bytes, budget: usize) -> Self {
        debug_assert_eq!(parsed.pattern(), &source[..]);
        let never = parsed.never_matches();
        let mut builder = Builder {
            parsed,
            source,
            packed: PackedBuilder::default(),
            decoded: 0,
            budget,
        };
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
        let head = if never {
            builder.anchored(&Segment::measure(source, 0, 0))
        } else {
            builder.anchored(head)
        };
        let middles = middles.iter().map(|s| builder.middle(s)).collect();
        let tail = tail.map(|s| Box::new(builder.anchored(s)));
        Self {
            empty: parsed.empty,
            never,
            has_star,
            min_len: u32::try_from(parsed.min_len()).unwrap_or(u32::MAX),
            head,
            middles,
            tail,
            decoded: builder.decoded,
            packed: builder.packed.finish(),
        }
    }

    /// Returns whether `channel` matches.
    pub(crate) fn matches(&self, channel: &[u8]) -> bool {
        if channel.is_empty() {
            return self.empty; // R0
        }
        if self.never
            || channel.len() < self.min_len as usize
            || !self.anchored_at(&self.head, channel, 0)
        {
            return false;
        }
        if !self.has_star {
            return self.head.len() == channel.len();
        }
        let mut pos = self.head.len();
        for segment in &self.middles {
            if pos == channel.len() {
                return false; // R6: the star run is skipped, a segment follows
            }
            let found = match segment.core {
                // All `?`: it occurs right here if there is room.
                Core::Empty => (pos + segment.len <= channel.len()).then_some(pos),
                _ => self.find(segment, channel, pos),
            };
            match found {
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
                        .checked_sub(tail.len())
                        .is_some_and(|start| start >= pos && self.anchored_at(tail, channel, start))
            }
        }
    }

    /// Heap bytes this compiled form holds, not counting the pattern's own
    /// bytes (literal segments share them with the caller): what memory
    /// tests and benchmarks compare with the pattern's length.
    pub(crate) fn heap_size(&self) -> usize {
        let finders: usize = self
            .middles
            .iter()
            .map(|m| match &m.core {
                Core::Literal {
                    finder: Some(finder),
                    ..
                } => size_of::<memmem::Finder<'static>>() + finder.needle().len(),
                Core::ShiftAnd(ShiftAnd {
                    masks: Masks::Table(table),
                    ..
                }) => size_of::<Table>() + 256 + table.rows.len() * 8,
                _ => 0,
            })
            .sum();
        let arrays: usize = [Some(&self.head), self.tail.as_deref()]
            .into_iter()
            .flatten()
            .map(|a| match a {
                Anchored::Elements(elements) => elements.len() * size_of::<Element>(),
                _ => 0,
            })
            .sum();
        self.middles.len() * size_of::<Middle>()
            + self.tail.as_ref().map_or(0, |_| size_of::<Anchored>())
            + self.decoded
            + self
                .packed
                .as_ref()
                .map_or(0, |p| size_of::<Packed>() + p.heap_size())
            + arrays
            + finders
    }

    /// The packed elements (present whenever a segment refers to them).
    fn packed(&self) -> &Packed {
        static EMPTY: Packed = Packed::EMPTY;
        self.packed.as_deref().unwrap_or(&EMPTY)
    }

    /// Whether `segment` matches `channel[at..at + len]` (false if the
    /// channel is too short).
    #[inline(always)]
    fn anchored_at(&self, segment: &Anchored, channel: &[u8], at: usize) -> bool {
        let Some(window) = channel.get(at..at.saturating_add(segment.len())) else {
            return false;
        };
        match segment {
            Anchored::Literal(bytes) => **bytes == *window,
            segment => self.elements_match(segment, window),
        }
    }

    /// [`Self::anchored_at`] for segments with `?` or classes, kept out of
    /// line so that the common literal test stays small.
    #[inline(never)]
    fn elements_match(&self, segment: &Anchored, window: &[u8]) -> bool {
        match segment {
            Anchored::Literal(bytes) => **bytes == *window,
            Anchored::Elements(elements) => elements.iter().zip(window).all(|(e, &c)| e.accepts(c)),
            &Anchored::Packed(range) => self
                .packed()
                .iter(range)
                .zip(window)
                .all(|(e, &c)| e.accepts(c)),
        }
    }

    /// The leftmost start at or after `pos` where `segment` occurs. Kept
    /// out of line: the shift-and searches hold kilobytes of stack, which
    /// [`Self::matches`] should not reserve for patterns rejected by their
    /// head.
    #[inline(never)]
    fn find(&self, segment: &Middle, channel: &[u8], pos: usize) -> Option<usize> {
        let from = pos + segment.lead;
        let to = channel.len().checked_sub(segment.trail)?;
        let window = channel.get(from..to)?;
        let at = match &segment.core {
            Core::Empty => Some(0),
            Core::Byte(byte) => memchr::memchr(*byte, window),
            Core::Literal { needle, finder } => match finder {
                Some(finder) => finder.find(window),
                None => memmem::find(window, needle),
            },
            Core::ShiftAnd(core) => core.find(self.packed(), window),
        }?;
        Some(from + at - segment.lead)
    }
}

impl std::fmt::Debug for CompiledPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPattern")
            .field("never", &self.never)
            .field("middles", &self.middles.len())
            .field("heap_size", &self.heap_size())
            .finish_non_exhaustive()
    }
}

/// What compiling one pattern accumulates.
struct Builder<'a, 'p> {
    /// The parsed pattern.
    parsed: &'a Parsed<'p>,
    /// The pattern's bytes, which literal segments slice.
    source: &'a Bytes,
    /// Elements of non-literal segments.
    packed: PackedBuilder,
    /// Bytes of decoded literal segments.
    decoded: usize,
    /// Accelerator bytes still allowed.
    budget: usize,
}

impl Builder<'_, '_> {
    /// `segment`'s literal bytes (it must be literal): a slice of the
    /// pattern when they are written as they are, else a decoded copy.
    fn literal(&mut self, segment: &Segment) -> Bytes {
        if segment.verbatim {
            return self.source.slice(segment.start..segment.end);
        }
        let decoded: Vec<u8> = self
            .parsed
            .elements(segment)
            .map(|e| e.literal().unwrap_or_default())
            .collect();
        self.decoded += decoded.len();
        Bytes::from(decoded)
    }

    /// Prepares `segment` for tests at one offset.
    fn anchored(&mut self, segment: &Segment) -> Anchored {
        let array = segment.len * size_of::<Element>();
        if segment.literal {
            Anchored::Literal(self.literal(segment))
        } else if array <= self.budget {
            self.budget -= array;
            Anchored::Elements(self.parsed.elements(segment).collect())
        } else {
            Anchored::Packed(self.packed.push(self.parsed.elements(segment)))
        }
    }

    /// Prepares `segment` (non-empty) for leftmost search.
    fn middle(&mut self, segment: &Segment) -> Middle {
        // Find the core: the elements between the leading and trailing `?`s.
        let pattern = &self.parsed.pattern()[..segment.end];
        let mut core: Option<(usize, usize)> = None; // pattern span
        let (mut lead, mut trail) = (0, 0);
        let mut i = segment.start;
        while i < segment.end {
            let (element, next) = element_at(pattern, i);
            if element == Element::Any {
                match core {
                    None => lead += 1,
                    Some(_) => trail += 1,
                }
            } else {
                core = Some((core.map_or(i, |(start, _)| start), next));
                trail = 0;
            }
            i = next;
        }
        let core = match core {
            None => Core::Empty,
            Some((start, end)) => self.core(&Segment::measure(pattern, start, end)),
        };
        Middle {
            len: segment.len,
            lead,
            trail,
            core,
        }
    }

    /// The search strategy for a core (no leading or trailing `?`).
    fn core(&mut self, core: &Segment) -> Core {
        if core.literal {
            let needle = self.literal(core);
            if let [byte] = needle[..] {
                return Core::Byte(byte);
            }
            let bytes = &needle[..];
            // A long needle's searcher copies it, and building one for
            // each search costs little beside scanning a channel at least
            // as long: only short needles get a prebuilt one.
            let cost = size_of::<memmem::Finder<'static>>() + bytes.len();
            let finder = (bytes.len() <= MAX_PREBUILT_NEEDLE && cost <= self.budget).then(|| {
                self.budget -= cost;
                Box::new(memmem::Finder::new(bytes).into_owned())
            });
            return Core::Literal { needle, finder };
        }
        let elements = self.packed.push(self.parsed.elements(core));
        let first = self.parsed.elements(core).next().and_then(|e| e.literal());
        let masks = match self.table(elements) {
            Some(table) => {
                // The table is all a search needs.
                self.packed.truncate(elements);
                Masks::Table(table)
            }
            None => Masks::Elements(elements),
        };
        Core::ShiftAnd(ShiftAnd {
            len: core.len,
            first,
            masks,
        })
    }

    /// A shift-and table for the core at `range`, if one fits the
    /// remaining budget.
    fn table(&mut self, range: ElementRange) -> Option<Box<Table>> {
        let words = range.len.div_ceil(64);
        let fixed = size_of::<Table>() + 256;
        let max_classes = self.budget.checked_sub(fixed)? / (8 * words);
        if max_classes == 0 {
            return None;
        }
        let packed = &self.packed.packed;
        let (class_of, representatives) = byte_classes(packed, range, max_classes)?;
        let classes = representatives.len();
        // One pass over the elements: a literal sets one bit in its
        // class's row, `?` one in every row, a class one in each row whose
        // bytes it accepts.
        let mut rows = vec![0u64; classes * words];
        for (i, element) in packed.iter(range).enumerate() {
            let (word, bit) = (i / 64, 1u64 << (i % 64));
            match element {
                Elem::Byte(b) => {
                    rows[usize::from(class_of[usize::from(b)]) * words + word] |= bit;
                }
                _ => {
                    for (class, &byte) in representatives.iter().enumerate() {
                        if element.accepts(byte) {
                            rows[class * words + word] |= bit;
                        }
                    }
                }
            }
        }
        self.budget -= fixed + rows.len() * 8;
        Some(Box::new(Table {
            words,
            class_of,
            rows: rows.into(),
        }))
    }
}

/// The elements of the non-literal segments, packed (see the module docs).
#[derive(Clone, Debug, Default)]
struct Packed {
    /// Per element: its byte if it is a literal, else 0.
    bytes: Vec<u8>,
    /// One bit per element: a `?`.
    any: Vec<u64>,
    /// One bit per element: a class.
    class: Vec<u64>,
    /// Per class element, in order: index in `runs` of its class.
    class_at: Vec<usize>,
    /// Each distinct class once: a header `[n, 0]`, then its `n` maximal
    /// runs of byte values `[first, last]`, increasing.
    runs: Vec<[u8; 2]>,
}

/// A slice of [`Packed`]'s elements.
#[derive(Clone, Copy, Debug)]
struct ElementRange {
    /// Index of the first element.
    start: usize,
    /// Number of elements.
    len: usize,
    /// Index in `class_at` of the first class element at or after `start`.
    class_start: usize,
}

/// One packed element, as read back.
#[derive(Clone, Copy, Debug)]
enum Elem<'a> {
    /// A literal byte.
    Byte(u8),
    /// `?`.
    Any,
    /// A class, as its runs of byte values.
    Class(&'a [[u8; 2]]),
}

impl Elem<'_> {
    /// Whether this element accepts `byte`.
    #[inline]
    fn accepts(self, byte: u8) -> bool {
        match self {
            Elem::Byte(b) => b == byte,
            Elem::Any => true,
            Elem::Class(runs) => {
                let i = runs.partition_point(|run| run[1] < byte);
                runs.get(i).is_some_and(|run| run[0] <= byte)
            }
        }
    }
}

impl Packed {
    /// No elements.
    const EMPTY: Self = Self {
        bytes: Vec::new(),
        any: Vec::new(),
        class: Vec::new(),
        class_at: Vec::new(),
        runs: Vec::new(),
    };

    /// The elements of `range`, in order.
    fn iter(&self, range: ElementRange) -> impl Iterator<Item = Elem<'_>> + '_ {
        let mut class = range.class_start;
        (range.start..range.start + range.len).map(move |i| {
            let bit = 1u64 << (i % 64);
            if self.any[i / 64] & bit != 0 {
                Elem::Any
            } else if self.class[i / 64] & bit != 0 {
                let at = self.class_at[class];
                class += 1;
                let n = usize::from(self.runs[at][0]);
                Elem::Class(&self.runs[at + 1..][..n])
            } else {
                Elem::Byte(self.bytes[i])
            }
        })
    }

    /// Heap bytes held.
    fn heap_size(&self) -> usize {
        self.bytes.len()
            + (self.any.len() + self.class.len()) * 8
            + self.class_at.len() * size_of::<usize>()
            + self.runs.len() * 2
    }

    /// Fills `rows` (256 rows of `words` words, byte-major, zeroed) with
    /// the shift-and masks of the first `words × 64` elements of `range`:
    /// bit `i % 64` of word `i / 64` of row `b` is set when element `i`
    /// accepts byte `b`.
    fn fill_rows(&self, range: ElementRange, words: usize, rows: &mut [u64]) {
        debug_assert_eq!(rows.len(), 256 * words);
        let mut any = vec![0u64; words];
        // Each word's distinct classes with the bits of the elements using
        // them, so a class used by many elements is expanded once per word.
        let mut classes: Vec<(&[[u8; 2]], u64)> = Vec::new();
        let mut word = 0;
        let flush = |word: usize, classes: &mut Vec<(&[[u8; 2]], u64)>, rows: &mut [u64]| {
            for (runs, bits) in classes.drain(..) {
                for run in runs {
                    for byte in run[0]..=run[1] {
                        rows[usize::from(byte) * words + word] |= bits;
                    }
                }
            }
        };
        for (i, element) in self.iter(range).take(words * 64).enumerate() {
            if i / 64 != word {
                flush(word, &mut classes, rows);
                word = i / 64;
            }
            let bit = 1u64 << (i % 64);
            match element {
                Elem::Byte(b) => rows[usize::from(b) * words + word] |= bit,
                Elem::Any => any[word] |= bit,
                Elem::Class(runs) => match classes.iter_mut().find(|c| std::ptr::eq(c.0, runs)) {
                    Some(class) => class.1 |= bit,
                    None => classes.push((runs, bit)),
                },
            }
        }
        flush(word, &mut classes, rows);
        for (w, &bits) in any.iter().enumerate() {
            if bits != 0 {
                for b in 0..256 {
                    rows[b * words + w] |= bits;
                }
            }
        }
    }
}

/// Collects [`Packed`].
#[derive(Default)]
struct PackedBuilder {
    /// What is collected so far.
    packed: Packed,
    /// Where each distinct class already is in `packed.runs`.
    seen: HashMap<ByteSet, usize>,
}

impl PackedBuilder {
    /// Appends `elements`, returning where they are.
    fn push(&mut self, elements: impl Iterator<Item = Element>) -> ElementRange {
        let packed = &mut self.packed;
        let start = packed.bytes.len();
        let class_start = packed.class_at.len();
        for element in elements {
            let i = packed.bytes.len();
            if i % 64 == 0 {
                packed.any.push(0);
                packed.class.push(0);
            }
            let bit = 1u64 << (i % 64);
            match element {
                Element::Byte(b) => packed.bytes.push(b),
                Element::Any => {
                    packed.bytes.push(0);
                    packed.any[i / 64] |= bit;
                }
                Element::Set(set) => {
                    packed.bytes.push(0);
                    packed.class[i / 64] |= bit;
                    let runs = &mut packed.runs;
                    let at = *self.seen.entry(set).or_insert_with(|| {
                        let at = runs.len();
                        let set_runs = set.ranges();
                        // At most 128 runs: members and gaps alternate.
                        runs.push([set_runs.len() as u8, 0]);
                        runs.extend(set_runs);
                        at
                    });
                    packed.class_at.push(at);
                }
            }
        }
        ElementRange {
            start,
            len: packed.bytes.len() - start,
            class_start,
        }
    }

    /// Forgets the elements of `range`, the last ones pushed. Classes they
    /// introduced stay in `runs`, where later elements may share them.
    fn truncate(&mut self, range: ElementRange) {
        let packed = &mut self.packed;
        debug_assert_eq!(range.start + range.len, packed.bytes.len());
        packed.bytes.truncate(range.start);
        packed.class_at.truncate(range.class_start);
        let words = range.start.div_ceil(64);
        packed.any.truncate(words);
        packed.class.truncate(words);
        if range.start % 64 != 0 {
            let keep = (1u64 << (range.start % 64)) - 1;
            packed.any[words - 1] &= keep;
            packed.class[words - 1] &= keep;
        }
    }

    /// The packed elements, without spare capacity, if there are any.
    fn finish(mut self) -> Option<Box<Packed>> {
        let packed = &mut self.packed;
        if packed.bytes.is_empty() {
            return None;
        }
        packed.bytes.shrink_to_fit();
        packed.any.shrink_to_fit();
        packed.class.shrink_to_fit();
        packed.class_at.shrink_to_fit();
        packed.runs.shrink_to_fit();
        Some(Box::new(self.packed))
    }
}

/// A precomputed shift-and table: one row of `words` words per byte class.
#[derive(Clone)]
struct Table {
    /// Words per row: `⌈core length / 64⌉`.
    words: usize,
    /// Byte value to its class (row of `rows`).
    class_of: Box<[u8; 256]>,
    /// `classes × words` words: bit `i % 64` of word `i / 64` of row `k` is
    /// set when element `i` accepts the bytes of class `k`.
    rows: Box<[u64]>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("words", &self.words)
            .field("classes", &(self.rows.len() / self.words))
            .finish_non_exhaustive()
    }
}

/// A shift-and table's rows, however they are stored.
trait Rows {
    /// The `words` mask words for `byte`.
    fn row(&self, byte: u8) -> &[u64];
}

impl Rows for Table {
    #[inline]
    fn row(&self, byte: u8) -> &[u64] {
        let class = usize::from(self.class_of[usize::from(byte)]);
        &self.rows[class * self.words..][..self.words]
    }
}

/// Rows indexed by byte value, built for one search.
struct Direct<'a> {
    /// Words per row.
    words: usize,
    /// `256 × words` words.
    rows: &'a [u64],
}

impl Rows for Direct<'_> {
    #[inline]
    fn row(&self, byte: u8) -> &[u64] {
        &self.rows[usize::from(byte) * self.words..][..self.words]
    }
}

/// Bit-parallel shift-and for a core of one-byte elements.
///
/// State bit `i` is set after reading a byte when the core's first `i + 1`
/// elements match the bytes just read; an occurrence ends where bit
/// `len - 1` is set.
#[derive(Clone, Debug)]
struct ShiftAnd {
    /// Number of elements in the core.
    len: usize,
    /// The first element's byte when it is a literal: while no partial
    /// match is alive, memchr skips to the next place one can start.
    first: Option<u8>,
    /// Where the masks come from.
    masks: Masks,
}

/// The source of a shift-and core's masks.
#[derive(Clone, Debug)]
enum Masks {
    /// Precomputed rows: the accelerator budget allowed them, and the
    /// elements themselves are not kept.
    Table(Box<Table>),
    /// The packed elements, from which each search builds its rows.
    Elements(ElementRange),
}

impl ShiftAnd {
    /// The start of the leftmost occurrence of the core in `hay`.
    fn find(&self, packed: &Packed, hay: &[u8]) -> Option<usize> {
        let len = self.len;
        if hay.len() < len {
            return None;
        }
        let words = len.div_ceil(64);
        match &self.masks {
            Masks::Table(table) if words == 1 => find_one_word(hay, len, self.first, |b| {
                table.rows[usize::from(table.class_of[usize::from(b)])]
            }),
            Masks::Table(table) => find_many_words(&**table, len, self.first, hay),
            &Masks::Elements(elements) => {
                // The first word's rows, on the stack.
                let mut first_rows = [0u64; 256];
                packed.fill_rows(elements, 1, &mut first_rows);
                if words == 1 {
                    return find_one_word(hay, len, self.first, |b| first_rows[usize::from(b)]);
                }
                // No partial match can outgrow the first word before one
                // of 64 elements forms: find the first, then build every
                // row and resume where that partial match started (no
                // earlier start can still be alive there).
                let start = find_one_word(hay, 64, self.first, |b| first_rows[usize::from(b)])?;
                let mut rows = vec![0u64; 256 * words];
                packed.fill_rows(elements, words, &mut rows);
                let rows = Direct { words, rows: &rows };
                find_many_words(&rows, len, self.first, &hay[start..]).map(|at| start + at)
            }
        }
    }
}

/// The start of the leftmost occurrence in `hay` of a core of `len <= 64`
/// elements whose mask for a byte is `row(byte)`.
#[inline]
fn find_one_word(
    hay: &[u8],
    len: usize,
    first: Option<u8>,
    row: impl Fn(u8) -> u64,
) -> Option<usize> {
    let accept = 1u64 << (len - 1);
    let mut state = 0u64;
    let mut i = 0;
    while i < hay.len() {
        if state == 0 {
            if let Some(first) = first {
                i += memchr::memchr(first, &hay[i..])?;
            }
        }
        state = ((state << 1) | 1) & row(hay[i]);
        if state & accept != 0 {
            return Some(i + 1 - len);
        }
        i += 1;
    }
    None
}

/// The start of the leftmost occurrence in `hay` of a core of `len > 64`
/// elements with these rows.
fn find_many_words<R: Rows>(rows: &R, len: usize, first: Option<u8>, hay: &[u8]) -> Option<usize> {
    let words = len.div_ceil(64);
    if words <= STACK_WORDS {
        let mut states = [[0u64; STACK_WORDS]; 2];
        let [a, b] = &mut states;
        search_words(rows, len, first, hay, &mut a[..words], &mut b[..words])
    } else {
        search_words(
            rows,
            len,
            first,
            hay,
            &mut vec![0; words],
            &mut vec![0; words],
        )
    }
}

/// [`find_many_words`] with two zeroed state buffers of `⌈len / 64⌉`
/// words: the state before a byte and the one after it.
///
/// Only words holding live partial matches are updated: words above `top`
/// are zero, and only a carry out of word `top` (its high bit) can make the
/// next word non-zero, so each byte updates `top + 1` words, or `top + 2`
/// when that bit is set. Writing the new state into the other buffer keeps
/// the loop over words free of dependencies, so it vectorises.
fn search_words<'s, R: Rows>(
    rows: &R,
    len: usize,
    first: Option<u8>,
    hay: &[u8],
    mut cur: &'s mut [u64],
    mut next: &'s mut [u64],
) -> Option<usize> {
    let last = cur.len() - 1;
    let accept = 1u64 << ((len - 1) % 64);
    // Highest word of `next` that may be non-zero (it holds an older state).
    let mut next_high = 0;
    let mut top = 0;
    let mut i = 0;
    while i < hay.len() {
        if top == 0 {
            // Only the first word is live, usually for long stretches:
            // keep it in a register until a partial match outgrows it.
            let mut word = cur[0];
            while i < hay.len() && word >> 63 == 0 {
                if word == 0 {
                    if let Some(first) = first {
                        i += memchr::memchr(first, &hay[i..])?;
                    }
                }
                word = ((word << 1) | 1) & rows.row(hay[i])[0];
                i += 1;
            }
            cur[0] = word;
            if i == hay.len() {
                return None; // the accept bit lives in a later word
            }
        }
        let row = rows.row(hay[i]);
        let limit = (top + (cur[top] >> 63) as usize).min(last);
        next[0] = ((cur[0] << 1) | 1) & row[0];
        for ((new, mask), (old, below)) in next[1..=limit]
            .iter_mut()
            .zip(&row[1..=limit])
            .zip(cur[1..=limit].iter().zip(&cur[..limit]))
        {
            *new = ((old << 1) | (below >> 63)) & mask;
        }
        if next_high > limit {
            next[limit + 1..=next_high].fill(0);
        }
        std::mem::swap(&mut cur, &mut next);
        // `next` now holds the state before this byte: zero above `top`.
        next_high = top;
        top = limit;
        while top > 0 && cur[top] == 0 {
            top -= 1;
        }
        if top == last && cur[last] & accept != 0 {
            return Some(i + 1 - len);
        }
        i += 1;
    }
    None
}

/// Partitions the 256 byte values into classes that every element of
/// `range` accepts or rejects alike. Returns each byte's class and one
/// representative byte per class, or `None` once there are more than
/// `max_classes`.
fn byte_classes(
    packed: &Packed,
    range: ElementRange,
    max_classes: usize,
) -> Option<(Box<[u8; 256]>, Vec<u8>)> {
    // The literal bytes, and the distinct classes (found by where their
    // runs are stored).
    let mut literals = ByteSet::default();
    let mut seen: HashSet<*const [u8; 2]> = HashSet::new();
    let mut sets: Vec<ByteSet> = Vec::new();
    for element in packed.iter(range) {
        match element {
            Elem::Byte(b) => literals.insert(b),
            Elem::Any => {}
            Elem::Class(runs) => {
                if seen.insert(runs.as_ptr()) {
                    let mut set = ByteSet::default();
                    for run in runs {
                        set.insert_range(run[0], run[1]);
                    }
                    sets.push(set);
                }
            }
        }
    }
    // Each literal byte is a class of its own, the other bytes one more:
    // a lower bound that rules out most tables too large before any work.
    // Class 0 is every non-literal byte, if there is one.
    let mut class_of = Box::new([0u8; 256]);
    let mut classes = usize::from(literals.len() < 256);
    for byte in 0..=255u8 {
        if literals.contains(byte) {
            // At most 256 classes exist, so every id fits in a byte.
            class_of[usize::from(byte)] = classes as u8;
            classes += 1;
        }
    }
    if classes > max_classes {
        return None;
    }
    for set in &sets {
        if classes == 256 {
            break; // every byte is alone already
        }
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
            class_of[usize::from(byte)] = *slot as u8;
        }
        classes = usize::from(next);
        if classes > max_classes {
            return None;
        }
    }
    let mut representatives = vec![None; 256];
    for byte in 0..=255u8 {
        representatives[usize::from(class_of[usize::from(byte)])].get_or_insert(byte);
    }
    let representatives: Vec<u8> = representatives.into_iter().flatten().collect();
    debug_assert_eq!(representatives.len(), classes);
    Some((class_of, representatives))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::super::{reference, testgen};
    use super::CompiledPattern;

    /// Both compiled forms of `pattern`: with accelerators, and without
    /// (tables built during each search).
    fn both(pattern: &[u8]) -> [CompiledPattern; 2] {
        [
            CompiledPattern::new(&Bytes::copy_from_slice(pattern)),
            CompiledPattern::without_accelerators(pattern),
        ]
    }

    /// Whether both compiled forms and the reference agree on `channel`.
    fn agree(pattern: &[u8], channel: &[u8]) -> Result<(), TestCaseError> {
        let want = reference::matches(pattern, channel);
        for (i, compiled) in both(pattern).iter().enumerate() {
            prop_assert_eq!(
                compiled.matches(channel),
                want,
                "form {}: {:?} vs {:?}",
                i,
                pattern.escape_ascii().to_string(),
                channel.escape_ascii().to_string()
            );
        }
        Ok(())
    }

    /// Asserts both compiled forms agree with the reference on each
    /// channel, and that the reference gives the expected answer.
    macro_rules! check {
        ($pattern:expr => $($channel:expr => $want:expr),+ $(,)?) => {{
            let pattern = $pattern;
            let pattern: &[u8] = pattern.as_ref();
            let forms = both(pattern);
            $(
                let channel = $channel;
                let channel: &[u8] = channel.as_ref();
                assert_eq!(
                    reference::matches(pattern, channel), $want,
                    "reference: {:?} vs {:?}", pattern.escape_ascii().to_string(),
                    channel.escape_ascii().to_string(),
                );
                for (i, compiled) in forms.iter().enumerate() {
                    assert_eq!(
                        compiled.matches(channel), $want,
                        "compiled form {i}: {:?} vs {:?}", pattern.escape_ascii().to_string(),
                        channel.escape_ascii().to_string(),
                    );
                }
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

    /// A head too long for an element array is kept packed, and a later
    /// core that gets a precomputed table gives its packed elements back:
    /// the head's own elements, sharing the last packed word, keep their
    /// meaning (literal bytes stay literal, `?` stays `?`).
    #[test]
    fn packed_head_survives_a_tabled_core() {
        // 400 elements: past the budget for an element array (4 KiB plus
        // the pattern's length), so the head is packed; 400 is not a
        // multiple of 64, so the core's first element shares a word with
        // the head's last 16.
        let head = [b"?".as_slice(), &[b'b'; 399]].concat();
        let pattern = [&head[..], b"*x?y*"].concat();
        let channel = |fill: &[u8], tail: &[u8]| [b"c".as_slice(), fill, tail].concat();
        let bs = [b'b'; 399];
        let mut last_changed = bs;
        last_changed[398] = b'Q';
        let mut early_changed = bs;
        early_changed[383] = b'Q';
        check!(&pattern =>
            channel(&bs, b"xzy!") => true,
            channel(&bs, b"xzz!") => false,
            channel(&last_changed, b"xzy!") => false,
            channel(&early_changed, b"xzy!") => false,
        );
    }

    /// A core of three state words: partial matches reaching the third
    /// word die at a `z`, which only one element (`j`, in the second word)
    /// accepts, and the match restarted there grows back into the third
    /// word. No trace of the dead matches may count towards an occurrence:
    /// the core (150 elements) occurs only once `149 - j` `a`s follow the
    /// `z`.
    #[test]
    fn restarted_partial_match_leaves_no_trace() {
        for j in 64..127 {
            let pattern = [
                b"*".as_slice(),
                &vec![b'a'; j],
                b"[az]",
                &vec![b'a'; 149 - j],
                b"*",
            ]
            .concat();
            for before in [j + 1, 140, 149] {
                for after in [148 - j, 149 - j] {
                    let channel = [&vec![b'a'; before][..], b"z", &vec![b'a'; after]].concat();
                    agree(&pattern, &channel).unwrap();
                    assert_eq!(reference::matches(&pattern, &channel), after == 149 - j);
                }
            }
        }
    }

    /// A core of two state words: while a partial match is alive in the
    /// second word, a byte that only the 64th element accepts starts no
    /// partial match by itself, so what follows it cannot complete one.
    #[test]
    fn lone_byte_starts_no_long_partial_match() {
        let pattern = [b"*".as_slice(), &[b'a'; 63], b"[ay]", &[b'b'; 8], b"*"].concat();
        let prefix = [&[b'a'; 63][..], b"y"].concat();
        check!(&pattern =>
            [&prefix[..], b"bbbybbbbbbbb"].concat() => false,
            [&prefix[..], b"bbbb", &prefix[..], b"bbbbbbbb"].concat() => true,
        );
    }

    /// A long core found after the channel's first byte ends where it
    /// really ends, so the tail after it needs bytes of its own.
    #[test]
    fn long_core_found_late_ends_where_it_ends() {
        let pattern = [b"*".as_slice(), &[b'a'; 64], b"[ab]*b"].concat();
        let core = [&[b'a'; 64][..], b"b"].concat();
        check!(&pattern =>
            [b"x".as_slice(), &core].concat() => false,
            [b"x".as_slice(), &core, b"b"].concat() => true,
            [b"xy".as_slice(), &core, b"yb"].concat() => true,
        );
    }

    /// Middle segments are placed at their leftmost occurrence.
    #[test]
    fn leftmost_middle() {
        check!(b"*a?c*d" => b"abcabcd" => true, b"abxd" => false, b"aacd" => true);
        check!(b"x*?b?*y" => b"xabcy" => true, b"xbcy" => false, b"xabby" => true);
        check!(b"*[ab]c*" => b"xxbc" => true, b"xxcc" => false);
        check!(b"*?*" => b"x" => true, b"" => false);
        check!(b"*??*??" => b"abc" => false, b"abcd" => true);
        check!(b"*a\\*b*" => b"xa*by" => true, b"xaby" => false);
        check!(b"*[x]y*" => b"axyb" => true, b"ayb" => false);
        // Several non-literal middles and a non-literal tail: the elements
        // of each are read from where they were packed, after any dropped.
        check!(
            b"*a?b*[xy]?c*d?[ef]" =>
            b"_a1b_x2c_d3e" => true,
            b"_a1b_x2c_d3g" => false,
            b"_a1b_z2c_d3e" => false,
            b"a1bx2cd3f" => true,
        );
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
        check!(b"*a[^b]c*" => b"xabcaxc" => true, b"abc" => false);
    }

    /// A channel shorter than the segments together is rejected at once,
    /// and one exactly that long can still match.
    #[test]
    fn minimum_length() {
        check!(b"ab*cd*ef" => b"abcdef" => true, b"abcde" => false, b"abcdxef" => true);
        check!(b"a?*?b" => b"axyb" => true, b"axb" => false);
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

    /// A search without a table restarts at the right place when a
    /// partial match outgrows the first word: an occurrence overlapping an
    /// earlier long partial match is still found.
    #[test]
    fn restart_after_first_word() {
        // 70-element core `a` × 69 then `b` (with a `?` so it is not
        // literal); the channel has a 69-`a` run broken before its end.
        let core = [vec![b'a'; 30], b"?".to_vec(), vec![b'a'; 38], b"b".to_vec()].concat();
        let pattern = [b"*".as_slice(), &core, b"*"].concat();
        let channel = [vec![b'a'; 68], b"c".to_vec(), vec![b'a'; 69], b"b".to_vec()].concat();
        check!(&pattern => &channel => true);
        let channel = [vec![b'a'; 100], b"b".to_vec()].concat();
        check!(&pattern => &channel => true);
        let channel = [vec![b'a'; 100], b"c".to_vec()].concat();
        check!(&pattern => &channel => false);
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

    /// The compiled form stays within a small multiple of the pattern's
    /// length, whatever its shape: at most four bytes per pattern byte,
    /// plus the accelerator allowance and one record per segment.
    #[test]
    fn memory_is_linear_in_the_pattern() {
        let len = 1 << 16;
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut random = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u8
        };
        // Random bytes with a star run every 4 KiB (R8 allows 1000) and
        // no `[` (an unterminated class would swallow the rest).
        let varied: Vec<u8> = (0..len)
            .map(|i| match random() {
                _ if i % 4096 == 0 => b'*',
                b'*' | b'[' => b'x',
                b => b,
            })
            .collect();
        let mut endpoint = || match random() {
            b']' | b'\\' => b'x',
            b => b,
        };
        let ranges: Vec<u8> = (0..len / 5)
            .flat_map(|_| [b'[', endpoint(), b'-', endpoint(), b']'])
            .collect();
        let literal_with_any: Vec<u8> = (0..len)
            .map(|i| {
                if i % 64 == 63 {
                    b'?'
                } else {
                    b'a' + (i % 26) as u8
                }
            })
            .collect();
        // Two-member classes, nearly all distinct; no member is special
        // inside a class (`]`, `\\`, `^` first, `-` second).
        let member = |k: usize| match (k % 200) as u8 + 40 {
            b']' | b'\\' | b'^' | b'-' => b'x',
            b => b,
        };
        let distinct_classes: Vec<u8> = (0..len / 4)
            .flat_map(|i| [b'[', member(i), member(i / 200), b']'])
            .collect();
        let shapes: Vec<(&str, Vec<u8>)> = vec![
            ("varied bytes", varied),
            ("literal", vec![b'a'; len]),
            (
                "star literal star",
                [b"*", &vec![b'a'; len][..], b"*"].concat(),
            ),
            (
                "star a? b",
                [b"*".as_slice(), &b"a?".repeat(len / 2), b"b*"].concat(),
            ),
            (
                "star literal with ? star",
                [b"*", &literal_with_any[..], b"*"].concat(),
            ),
            (
                "star classes star",
                [b"*", &distinct_classes[..], b"*"].concat(),
            ),
            (
                "escapes",
                [b"*", &b"\\*".repeat(len / 2)[..], b"*"].concat(),
            ),
            ("question marks", b"?".repeat(len)),
            ("star a star", b"*ab".repeat(1000)),
            ("star class star", b"*a[bc]".repeat(1000)),
            (
                "star random ranges star",
                [b"*", &ranges[..], b"*"].concat(),
            ),
        ];
        for (name, pattern) in shapes {
            let compiled = CompiledPattern::new(&Bytes::from(pattern.clone()));
            assert!(!compiled.never, "{name}: the shape should be able to match");
            let bound = 4 * pattern.len() + super::ACCELERATOR_ALLOWANCE + 1001 * 128;
            assert!(
                compiled.heap_size() <= bound,
                "{name}: {} bytes for a {}-byte pattern",
                compiled.heap_size(),
                pattern.len()
            );
        }
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
            let forms = both(&pattern);
            for channel in &channels {
                let want = reference::matches(&pattern, channel);
                for compiled in &forms {
                    assert_eq!(
                        compiled.matches(channel),
                        want,
                        "{:?} vs {:?}",
                        pattern.escape_ascii().to_string(),
                        channel.escape_ascii().to_string()
                    );
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The compiled matcher agrees with the reference everywhere.
        #[test]
        fn prop_agrees_with_reference(
            pattern in testgen::pattern(),
            channel in testgen::channel(),
        ) {
            agree(&pattern, &channel)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Agreement on long pathological patterns: many star runs, long
        /// classes, escapes and long cores, against channels made of the
        /// bytes they mention.
        #[test]
        fn prop_pathological_agree((pattern, channel) in testgen::pathological()) {
            agree(&pattern, &channel)?;
        }

        /// Agreement on long cores (the multi-word shift-and path), with
        /// channels that embed the core, sometimes with one byte flipped.
        #[test]
        fn prop_long_cores_agree(
            core in prop::collection::vec(0u8..5, 60..200),
            tail in prop::sample::select(vec![&b"*"[..], b"*b", b"", b"?"]),
            noise in prop::collection::vec(any::<bool>(), 300),
            prefix in 0usize..80,
            flip in prop::option::of(0usize..200),
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
            agree(&pattern, &channel)?;
        }

        /// Agreement near the star-run limit.
        #[test]
        fn prop_agrees_near_limit((pattern, channel) in testgen::near_limit()) {
            agree(&pattern, &channel)?;
        }
    }
}
