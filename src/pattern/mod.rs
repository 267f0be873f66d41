//! Redis glob patterns: the reference matcher, the compiled matcher and the
//! multi-pattern index that `publish` consults.
//!
//! * [`reference`](mod@reference) is the grammar as executable text (rules R0–R8 of the
//!   crate docs' *Pattern syntax*); it is the oracle every other matcher is
//!   tested against.
//! * [`compiled`] turns one pattern into a compact form searched with
//!   `memchr`, `memmem` and bit-parallel shift-and; its docs give the cost.
//! * [`index`] holds every subscribed pattern and answers "which patterns
//!   match this channel" for `publish`.

pub(crate) mod cache;
pub(crate) mod compiled;
pub(crate) mod index;
pub(crate) mod parse;
pub(crate) mod radix;
pub(crate) mod reference;
#[cfg(test)]
pub(crate) mod testgen;

use std::convert::Infallible;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use bytes::Bytes;

use self::compiled::CompiledPattern;

/// Returns whether `channel` matches the Redis glob `pattern`, exactly as
/// Redis 7 decides it for `PSUBSCRIBE` and `PUBSUB CHANNELS`.
///
/// This is the reference implementation of the grammar in the crate docs
/// (*Pattern syntax*): plain, allocation-free and non-recursive, with a worst
/// case of O(|pattern| · |channel|). To test one pattern against many
/// channels, compile it once with [`Pattern::new`], which is faster.
///
/// # Examples
///
/// ```
/// use tannoy::glob_match;
///
/// assert!(glob_match("ai:*", "ai:models:updated"));
/// assert!(!glob_match("*", ""));          // `*` needs at least one byte
/// assert!(glob_match("[z-a]", "m"));      // reversed ranges are swapped
/// assert!(glob_match("[!a]", "!"));       // `!` is not a negation
/// assert!(glob_match(b"\\", b"\\"));      // a trailing backslash is literal
/// ```
pub fn glob_match(pattern: impl AsRef<[u8]>, channel: impl AsRef<[u8]>) -> bool {
    reference::matches(pattern.as_ref(), channel.as_ref())
}

/// A Redis glob pattern compiled for repeated matching.
///
/// Every byte string is a valid pattern, so construction cannot fail.
/// Compiling takes time and memory linear in the pattern's length.
/// Matching an `n`-byte channel takes time linear in `n` for most
/// patterns, and at most about n² / 64 word operations whatever the
/// pattern (see the crate docs, *Untrusted patterns*). It agrees with
/// [`glob_match`] on every input.
///
/// # Examples
///
/// ```
/// use tannoy::Pattern;
///
/// let pattern = Pattern::new("tenant42:*:events");
/// assert!(pattern.matches("tenant42:billing:events"));
/// assert!(!pattern.matches("tenant43:billing:events"));
/// assert_eq!(pattern.as_bytes(), b"tenant42:*:events");
/// ```
#[derive(Clone)]
pub struct Pattern {
    /// The pattern as given, kept for display and for `as_bytes`.
    source: Bytes,
    /// The matcher built from `source`.
    compiled: CompiledPattern,
}

impl Pattern {
    /// Compiles `pattern`.
    ///
    /// # Examples
    ///
    /// ```
    /// let pattern = tannoy::Pattern::new(b"sensor:[0-9]?");
    /// assert!(pattern.matches("sensor:42"));
    /// ```
    pub fn new(pattern: impl AsRef<[u8]>) -> Self {
        let source = Bytes::copy_from_slice(pattern.as_ref());
        let compiled = CompiledPattern::new(&source);
        Self { source, compiled }
    }

    /// Returns whether `channel` matches this pattern.
    ///
    /// # Examples
    ///
    /// ```
    /// let pattern = tannoy::Pattern::new("h?llo");
    /// assert!(pattern.matches("hello"));
    /// assert!(!pattern.matches("hllo"));
    /// ```
    pub fn matches(&self, channel: impl AsRef<[u8]>) -> bool {
        self.compiled.matches(channel.as_ref())
    }

    /// Returns the pattern's bytes, as given to [`Pattern::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tannoy::Pattern::new("a*").as_bytes(), b"a*");
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        &self.source
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern")
            .field(&self.source.escape_ascii().to_string())
            .finish()
    }
}

/// Shows the pattern as given, as text: bytes that are not valid UTF-8
/// show as U+FFFD, as [`String::from_utf8_lossy`] does. Width and alignment
/// flags apply. Use [`Pattern::as_bytes`] for the exact bytes.
///
/// # Examples
///
/// ```
/// use tannoy::Pattern;
///
/// assert_eq!(Pattern::new("news:*").to_string(), "news:*");
/// assert_eq!(Pattern::new(b"a\xff*").to_string(), "a\u{FFFD}*");
/// assert_eq!(format!("[{:>8}]", Pattern::new("a?c")), "[     a?c]");
/// ```
impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&String::from_utf8_lossy(&self.source))
    }
}

/// Patterns are equal when their bytes are. Two patterns with different
/// bytes are different even if they match the same channels (`a**` and
/// `a*`), as they are different subscriptions in Redis.
///
/// # Examples
///
/// ```
/// use tannoy::Pattern;
///
/// assert_eq!(Pattern::new("ai:*"), Pattern::new(b"ai:*"));
/// assert_ne!(Pattern::new("a**"), Pattern::new("a*"));
/// ```
impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

/// Hashes the pattern's bytes, consistently with `Eq`.
///
/// # Examples
///
/// ```
/// use std::collections::HashSet;
///
/// use tannoy::Pattern;
///
/// let patterns: HashSet<Pattern> = ["ai:*", "ml:*", "ai:*"].into_iter().map(Pattern::new).collect();
/// assert_eq!(patterns.len(), 2);
/// assert!(patterns.contains(&Pattern::new("ml:*")));
/// ```
impl Hash for Pattern {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.source.hash(state);
    }
}

/// Compiles a pattern from text. Every string is a valid pattern, so this
/// never fails.
///
/// # Errors
///
/// None: the error type is [`Infallible`].
///
/// # Examples
///
/// ```
/// use tannoy::Pattern;
///
/// let pattern: Pattern = "sensor:[0-9]*".parse()?;
/// assert!(pattern.matches("sensor:7:temperature"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl FromStr for Pattern {
    type Err = Infallible;

    fn from_str(pattern: &str) -> Result<Self, Infallible> {
        Ok(Self::new(pattern))
    }
}

#[cfg(test)]
mod tests {
    #[allow(
        unreachable_pub,
        reason = "the shared table file is also a test crate's module"
    )]
    mod table {
        include!("../../tests/support/glob_table.rs");
    }
    use table::redis_glob_table;

    /// The reference matcher gives Redis's answer on every verified row.
    #[test]
    fn reference_agrees_with_redis_table() {
        let bad: Vec<u32> = redis_glob_table()
            .into_iter()
            .filter(|r| super::reference::matches(&r.pattern, &r.channel) != r.matches)
            .map(|r| r.row)
            .collect();
        assert!(bad.is_empty(), "rows disagreeing with Redis: {bad:?}");
    }

    /// The compiled matcher gives Redis's answer on every verified row.
    #[test]
    fn compiled_agrees_with_redis_table() {
        let bad: Vec<u32> = redis_glob_table()
            .into_iter()
            .filter(|r| super::Pattern::new(&r.pattern).matches(&r.channel) != r.matches)
            .map(|r| r.row)
            .collect();
        assert!(bad.is_empty(), "rows disagreeing with Redis: {bad:?}");
    }
}
