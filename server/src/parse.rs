//! A request's arguments read the way Redis reads them: strict integers
//! (`string2ll`), case-insensitive keywords (`strcasecmp`), and names as C
//! strings where Redis prints them with `%s` (cut at the first NUL).

/// Redis's `string2ll`: a strict decimal `i64` (see the module docs).
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    // Redis's LONG_STR_SIZE is 21: longer strings are rejected outright.
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut value: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        if value > i64::MAX as u64 + 1 {
            return None;
        }
        Some((value as i64).wrapping_neg())
    } else {
        i64::try_from(value).ok()
    }
}

/// `bytes` up to its first NUL, as C's `%s` prints it.
pub(crate) fn c_str(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or_default()
}

/// `bytes` as `%.<max>s` prints it: up to the first NUL, at most `max`.
pub(crate) fn c_str_max(bytes: &[u8], max: usize) -> &[u8] {
    let s = c_str(bytes);
    &s[..s.len().min(max)]
}

/// Whether `a` equals the keyword `b` ignoring ASCII case (Redis's
/// `strcasecmp`, which also stops at a NUL).
pub(crate) fn is(a: &[u8], b: &str) -> bool {
    c_str(a).eq_ignore_ascii_case(b.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis's `string2ll`.
    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"123456789012345678901",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }

    /// Keywords compare case-insensitively, up to a NUL.
    #[test]
    fn keywords() {
        assert!(is(b"HeLp", "help"));
        assert!(is(b"help\0junk", "help"));
        assert!(!is(b"helps", "help"));
        assert_eq!(c_str_max(b"abcdef", 3), b"abc");
    }
}
