//! The reference matcher: Redis's glob rules R0–R8, written for clarity.
//!
//! This is the executable form of the grammar documented on the crate root
//! (*Pattern syntax*). It is deliberately plain: one pass over the pattern
//! with a single backtrack point (the most recent star run), exactly as
//! Redis's `stringmatchlen` behaves since its early-exit fix. Its worst case
//! is O(|pattern| · |channel|) with no recursion and no allocation.
//!
//! Everything faster in this crate (the compiled matcher and the pattern
//! index) is tested to agree with this function on every input.

/// Redis stops expanding star runs past this many (CVE-2024-31228 fix):
/// reaching the 1001st expanded star run makes the whole match fail.
pub(crate) const MAX_EXPANDED_STAR_RUNS: usize = 1000;

/// Returns whether `channel` matches the Redis glob `pattern`.
///
/// Anchored at both ends, byte-oriented, case-sensitive; every byte string is
/// a valid pattern. See the crate docs, *Pattern syntax*, for the grammar.
pub(crate) fn matches(pattern: &[u8], channel: &[u8]) -> bool {
    // R0: the empty channel is matched by the empty pattern only.
    if channel.is_empty() {
        return pattern.is_empty();
    }
    let mut p = 0; // next pattern byte
    let mut s = 0; // next channel byte
    // The most recent expanded star run: where its continuation starts in
    // the pattern, the next channel position to try it at, and its ordinal.
    let mut backtrack: Option<Backtrack> = None;
    // Ordinal of the last star run reached, counted from the left (R8).
    let mut star_runs = 0usize;

    loop {
        if s == channel.len() {
            // R6: the channel is used up; trailing stars match nothing.
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            return p == pattern.len();
        }
        if p == pattern.len() {
            // Pattern used up with channel bytes left: retry the last star.
            match retry_last_star(&mut backtrack, channel.len()) {
                Some(b) => {
                    (p, s, star_runs) = (b.pattern_at, b.channel_at, b.ordinal);
                    continue;
                }
                None => return false,
            }
        }
        if pattern[p] == b'*' {
            // R1: a run of stars acts as one.
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            if p == pattern.len() {
                return true;
            }
            star_runs += 1;
            if star_runs > MAX_EXPANDED_STAR_RUNS {
                return false; // R8
            }
            // R7: only the most recent star run is ever retried.
            backtrack = Some(Backtrack {
                pattern_at: p,
                channel_at: s + 1,
                ordinal: star_runs,
            });
            continue;
        }
        let (consumed, hit) = match_one(pattern, p, channel[s]);
        if hit {
            p += consumed;
            s += 1;
        } else {
            match retry_last_star(&mut backtrack, channel.len()) {
                Some(b) => (p, s, star_runs) = (b.pattern_at, b.channel_at, b.ordinal),
                None => return false,
            }
        }
    }
}

/// The single point the matcher may return to: the most recent star run.
#[derive(Clone, Copy)]
struct Backtrack {
    /// Pattern index just after the star run.
    pattern_at: usize,
    /// Next channel index the rest of the pattern will be tried at.
    channel_at: usize,
    /// The run's ordinal from the left, restored so R8 counts runs, not visits.
    ordinal: usize,
}

/// Moves the last star run's attempt one channel byte further, if bytes
/// remain for it (R1: only non-empty suffixes are tried).
fn retry_last_star(backtrack: &mut Option<Backtrack>, len: usize) -> Option<Backtrack> {
    let current = (*backtrack)?;
    if current.channel_at >= len {
        return None;
    }
    *backtrack = Some(Backtrack {
        channel_at: current.channel_at + 1,
        ..current
    });
    Some(current)
}

/// Matches the single non-star element at `pattern[p]` against byte `c`.
///
/// Returns how many pattern bytes the element spans and whether it matched.
fn match_one(pattern: &[u8], p: usize, c: u8) -> (usize, bool) {
    match pattern[p] {
        b'?' => (1, true),                                          // R2
        b'\\' if p + 1 < pattern.len() => (2, pattern[p + 1] == c), // R3
        b'[' => match_class(pattern, p, c),
        literal => (1, literal == c), // R5, and R3's lone trailing backslash
    }
}

/// R4: a character class starting at `pattern[p] == b'['`.
fn match_class(pattern: &[u8], p: usize, c: u8) -> (usize, bool) {
    let mut i = p + 1;
    let negated = pattern.get(i) == Some(&b'^');
    if negated {
        i += 1;
    }
    let mut member = false;
    while i < pattern.len() {
        match pattern[i] {
            b']' => {
                i += 1;
                return (i - p, member != negated);
            }
            b'\\' if i + 1 < pattern.len() => {
                member |= pattern[i + 1] == c;
                i += 2;
            }
            x if i + 2 < pattern.len() && pattern[i + 1] == b'-' => {
                // Redis compares `char`s, signed on x86-64: 0x80..=0xFF sort
                // below 0x00. Endpoints are swapped when reversed.
                let (a, b) = (x as i8, pattern[i + 2] as i8);
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                member |= (lo..=hi).contains(&(c as i8));
                i += 3;
            }
            x => {
                member |= x == c;
                i += 1;
            }
        }
    }
    // Unterminated: the class silently runs to the end of the pattern.
    (i - p, member != negated)
}
