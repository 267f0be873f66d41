//! Request framing: one client request (a command and its arguments) out of
//! the bytes read from a connection so far.
//!
//! Clients send requests in one of two forms, told apart by the first byte,
//! exactly as redis-server does:
//!
//! * **multibulk** (`*`): `*<n>\r\n` then `n` bulk strings `$<len>\r\n<bytes>\r\n`.
//!   This is what every client library sends. Arguments are binary-safe.
//! * **inline** (anything else): one line ending in `\n` (an optional `\r`
//!   before it is dropped), split into arguments like a shell would, with
//!   `"..."` and `'...'` quoting and `\xHH` escapes inside double quotes.
//!   This is what `telnet`, `nc` and `redis-cli` in pipe mode send.
//!
//! # Compatibility
//!
//! The decoder reproduces redis-server 7.0's parser, quirks included, so a
//! byte stream is split into the same requests and fails with the same
//! `ERR Protocol error: ...` reply at the same point:
//!
//! * Length lines are found by searching for `\r` (for multibulk) or `\n`
//!   (inline) the way C's `strchr` does: a NUL byte before it hides it, and
//!   the request waits for more input (or fails once 64 KiB are pending
//!   without a line end). The byte after the `\r` of a length line, and the
//!   two bytes after a bulk's data, are skipped without being checked.
//! * Numbers follow Redis's `string2ll`: no sign other than a leading `-`,
//!   no leading zeros, no spaces, at most 20 characters.
//! * `*0`, `*-1` (any count `<= 0`) and an empty inline line are requests
//!   with no arguments, which the connection skips.
//! * Before a client has authenticated (when a password is required), a
//!   request may have at most 10 arguments of at most 16 KiB each, as Redis
//!   enforces against memory exhaustion by unauthenticated peers.
//!
//! # Memory
//!
//! The decoder keeps the arguments of a partly received multibulk request
//! as it goes, so each byte is examined once however slowly a request
//! arrives. Arguments are split off the read buffer without copying
//! ([`BytesMut::split_to`]); a published payload therefore reaches every
//! subscriber without ever being copied after it was read. Nothing is
//! allocated ahead of the data for a length a client merely claims: the
//! read buffer grows as bytes arrive.

use bytes::{Buf, Bytes, BytesMut};

use crate::parse::parse_i64;

/// Longest length line, or inline request, Redis accepts before it gives
/// up on finding the line's end (`PROTO_INLINE_MAX_SIZE`, 64 KiB).
pub(crate) const INLINE_MAX: usize = 64 * 1024;

/// Most arguments a request may have before the client authenticates.
const UNAUTHENTICATED_MAX_ARGS: i64 = 10;

/// Longest argument allowed before the client authenticates.
const UNAUTHENTICATED_MAX_BULK: i64 = 16 * 1024;

/// Largest multibulk count Redis accepts (`INT_MAX`).
const MAX_MULTIBULK: i64 = i32::MAX as i64;

/// Most argument slots reserved up front for a multibulk request, however
/// many it announces (Redis reserves the same); more grow as they arrive.
const PREALLOCATED_ARGS: usize = 1024;

/// A request the client sent that cannot be decoded.
///
/// The connection replies with `-ERR Protocol error: <reason>` and closes,
/// as Redis does. The reason is bytes, not text: Redis quotes the
/// offending byte as it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProtocolError {
    /// What Redis puts after `Protocol error: `, with any `\r` or `\n`
    /// replaced by a space so the reply stays one line.
    reason: Vec<u8>,
}

impl ProtocolError {
    /// A protocol error with a fixed reason.
    fn new(reason: &str) -> Self {
        Self {
            reason: reason.as_bytes().to_vec(),
        }
    }

    /// The full error message, as sent after `-ERR `.
    pub(crate) fn message(&self) -> Vec<u8> {
        let mut message = b"Protocol error: ".to_vec();
        message.extend(
            self.reason
                .iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        message
    }
}

/// Per-connection limits the decoder enforces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Longest bulk argument (Redis's `proto-max-bulk-len`).
    pub(crate) max_bulk_len: u64,
    /// Whether the client still has to authenticate, which tightens the
    /// limits (see the module docs).
    pub(crate) auth_required: bool,
}

/// A multibulk request whose arguments have not all arrived yet.
#[derive(Debug)]
struct Partial {
    /// Arguments still to come.
    remaining: usize,
    /// Arguments received so far.
    args: Vec<Bytes>,
    /// Length of the bulk argument being received, once its header is in.
    bulk_len: Option<usize>,
    /// Bytes held in `args` (for [`Decoder::pending_bytes`]).
    arg_bytes: usize,
}

/// Splits a connection's input into requests; keeps the state of a
/// multibulk request that is still arriving.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    /// The multibulk request in progress, if any.
    partial: Option<Partial>,
}

/// Where C's `strchr(buf, needle)` would stop: the index of the first
/// `needle` before any NUL byte.
fn strchr(buf: &[u8], needle: u8) -> Option<usize> {
    buf.iter()
        .position(|&b| b == needle || b == 0)
        .filter(|&i| buf[i] == needle)
}

impl Decoder {
    /// A decoder with no request in progress.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Takes the next complete request off the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds no complete request yet (what is
    /// there stays, or is kept inside the decoder), and `Ok(Some(args))`
    /// for a request, whose `args` may be empty (a request to skip).
    ///
    /// # Errors
    ///
    /// [`ProtocolError`] for input redis-server rejects; the connection
    /// must then reply and close, and not call this again.
    pub(crate) fn decode(
        &mut self,
        buf: &mut BytesMut,
        limits: Limits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if self.partial.is_none() {
            match buf.first() {
                None => return Ok(None),
                Some(b'*') => match Self::multibulk_header(buf, limits)? {
                    Header::Incomplete => return Ok(None),
                    Header::Empty => return Ok(Some(Vec::new())),
                    Header::Count(n) => {
                        self.partial = Some(Partial {
                            remaining: n,
                            args: Vec::with_capacity(n.min(PREALLOCATED_ARGS)),
                            bulk_len: None,
                            arg_bytes: 0,
                        });
                    }
                },
                Some(_) => return Self::inline(buf),
            }
        }
        let Some(partial) = self.partial.as_mut() else {
            // Set just above when it was not already.
            return Ok(None);
        };
        while partial.remaining > 0 {
            let len = match partial.bulk_len {
                Some(len) => len,
                None => match Self::bulk_header(buf, limits)? {
                    Some(len) => {
                        partial.bulk_len = Some(len);
                        len
                    }
                    None => return Ok(None),
                },
            };
            if buf.len() < len + 2 {
                return Ok(None);
            }
            let arg = buf.split_to(len).freeze();
            buf.advance(2);
            partial.arg_bytes += arg.len();
            partial.args.push(arg);
            partial.bulk_len = None;
            partial.remaining -= 1;
        }
        Ok(self.partial.take().map(|p| p.args))
    }

    /// Bytes of a partly received request held by the decoder (its
    /// arguments so far; the unparsed rest is still in the read buffer).
    pub(crate) fn pending_bytes(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.arg_bytes)
    }

    /// Whether part of a request has been received (the decoder holds
    /// arguments, or `buf` holds unparsed bytes).
    pub(crate) fn in_progress(&self, buf: &BytesMut) -> bool {
        self.partial.is_some() || !buf.is_empty()
    }

    /// The length of the bulk argument being received, if its header has
    /// arrived and its data has not, so the caller can make room for it.
    pub(crate) fn awaited_bulk(&self) -> Option<usize> {
        self.partial.as_ref().and_then(|p| p.bulk_len)
    }

    /// Parses a `*<count>\r\n` line at the front of `buf`, consuming it.
    fn multibulk_header(buf: &mut BytesMut, limits: Limits) -> Result<Header, ProtocolError> {
        let Some(cr) = strchr(buf, b'\r') else {
            if buf.len() > INLINE_MAX {
                return Err(ProtocolError::new("too big mbulk count string"));
            }
            return Ok(Header::Incomplete);
        };
        if cr + 2 > buf.len() {
            return Ok(Header::Incomplete);
        }
        let count = match parse_i64(&buf[1..cr]) {
            Some(n) if n <= MAX_MULTIBULK => n,
            _ => return Err(ProtocolError::new("invalid multibulk length")),
        };
        if count > UNAUTHENTICATED_MAX_ARGS && limits.auth_required {
            return Err(ProtocolError::new("unauthenticated multibulk length"));
        }
        buf.advance(cr + 2);
        match usize::try_from(count) {
            Ok(n) if n > 0 => Ok(Header::Count(n)),
            _ => Ok(Header::Empty),
        }
    }

    /// Parses a `$<len>\r\n` line at the front of `buf`, consuming it;
    /// `None` if it has not fully arrived.
    fn bulk_header(buf: &mut BytesMut, limits: Limits) -> Result<Option<usize>, ProtocolError> {
        let Some(cr) = strchr(buf, b'\r') else {
            if buf.len() > INLINE_MAX {
                return Err(ProtocolError::new("too big bulk count string"));
            }
            return Ok(None);
        };
        if cr + 2 > buf.len() {
            return Ok(None);
        }
        if buf[0] != b'$' {
            let mut reason = b"expected '$', got '".to_vec();
            reason.push(buf[0]);
            reason.push(b'\'');
            return Err(ProtocolError { reason });
        }
        let len = match parse_i64(&buf[1..cr]) {
            Some(n) if n >= 0 && n as u64 <= limits.max_bulk_len => n,
            _ => return Err(ProtocolError::new("invalid bulk length")),
        };
        if len > UNAUTHENTICATED_MAX_BULK && limits.auth_required {
            return Err(ProtocolError::new("unauthenticated bulk length"));
        }
        buf.advance(cr + 2);
        // `len` fits: it is at most `max_bulk_len`, itself a buffer size.
        Ok(Some(usize::try_from(len).unwrap_or(usize::MAX)))
    }

    /// Takes one inline request off the front of `buf`.
    fn inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let Some(newline) = strchr(buf, b'\n') else {
            if buf.len() > INLINE_MAX {
                return Err(ProtocolError::new("too big inline request"));
            }
            return Ok(None);
        };
        let end = if newline > 0 && buf[newline - 1] == b'\r' {
            newline - 1
        } else {
            newline
        };
        let args = split_args(&buf[..end])
            .ok_or_else(|| ProtocolError::new("unbalanced quotes in request"))?;
        buf.advance(newline + 1);
        Ok(Some(args.into_iter().map(Bytes::from).collect()))
    }
}

/// What a multibulk count line announced.
enum Header {
    /// The line has not fully arrived.
    Incomplete,
    /// A count of zero or less: a request with no arguments.
    Empty,
    /// This many arguments follow.
    Count(usize),
}

/// Whether C's `isspace` holds for `b` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The value of an ASCII hex digit.
fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Splits an inline request line into arguments as Redis's `sdssplitargs`
/// does; `None` for unbalanced quotes, or a closing quote followed by
/// something other than a space.
///
/// `line` never contains a NUL byte (the line search stops at one), so the
/// C function's end-of-string checks become end-of-slice checks here.
pub(crate) fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && is_c_space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Some(args);
        }
        let mut current = Vec::new();
        // The quote the argument is inside: `"` (with C escapes) or `'`
        // (with only `\'`). Either ends the same way.
        let mut quote = None;
        loop {
            let c = at(p);
            if let Some(q) = quote {
                if q == b'"' && c == b'\\' && at(p + 1) == b'x' {
                    if let (Some(hi), Some(lo)) = (hex_value(at(p + 2)), hex_value(at(p + 3))) {
                        current.push(hi * 16 + lo);
                        p += 4;
                        continue;
                    }
                }
                if q == b'"' && c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    current.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if q == b'\'' && c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    current.push(b'\'');
                } else if c == q {
                    if at(p + 1) != 0 && !is_c_space(at(p + 1)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        if c != 0 {
                            p += 1;
                        }
                        break;
                    }
                    b'"' | b'\'' => quote = Some(c),
                    other => current.push(other),
                }
            }
            p += 1;
        }
        args.push(current);
    }
}

/// The requests decoded from some input (each a list of arguments), and
/// the error reply it ended in, if any.
pub(crate) type Decoded = (Vec<Vec<Vec<u8>>>, Option<Vec<u8>>);

/// Decodes every request in `input`, fed at once, with the limits of an
/// authenticated client and Redis's default `proto-max-bulk-len`: the
/// requests, and the error reply the input ends in, if any.
pub(crate) fn decode_all(input: &[u8]) -> Decoded {
    decode_chunked(input, &[])
}

/// As [`decode_all`], with the input arriving in pieces of the given
/// sizes (the rest in one piece), as reads would deliver it.
pub(crate) fn decode_chunked(input: &[u8], sizes: &[usize]) -> Decoded {
    let limits = Limits {
        max_bulk_len: crate::config::DEFAULT_MAX_BULK_LEN,
        auth_required: false,
    };
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    let mut rest = input;
    let mut sizes = sizes.iter();
    while !rest.is_empty() || buf.is_empty() {
        let take = sizes
            .next()
            .map_or(rest.len(), |&n| n.clamp(1, rest.len().max(1)))
            .min(rest.len());
        buf.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        loop {
            match decoder.decode(&mut buf, limits) {
                Ok(Some(args)) => requests.push(args.iter().map(|a| a.to_vec()).collect()),
                Ok(None) => break,
                Err(e) => {
                    let mut reply = b"ERR ".to_vec();
                    reply.extend_from_slice(&e.message());
                    return (requests, Some(reply));
                }
            }
        }
        if rest.is_empty() {
            break;
        }
    }
    (requests, None)
}

/// The decoder's fuzz check: no input panics it, and the requests and
/// error are the same however the input is split into reads (the split
/// points come from the input's first bytes).
pub(crate) fn check_decoder(data: &[u8]) {
    let (head, input) = data.split_at(data.len().min(4));
    let sizes: Vec<usize> = head.iter().map(|&b| usize::from(b) + 1).collect();
    let whole = decode_all(input);
    let split = decode_chunked(input, &sizes);
    let bytewise = decode_chunked(input, &vec![1; input.len().min(4096)]);
    assert_eq!(whole, split, "splitting the input changed the decoding");
    if input.len() <= 4096 {
        assert_eq!(whole, bytewise, "byte-at-a-time input changed the decoding");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Limits of an authenticated client with Redis's defaults.
    const OPEN: Limits = Limits {
        max_bulk_len: 512 * 1024 * 1024,
        auth_required: false,
    };

    /// Decodes everything `input` holds, fed all at once.
    fn decode_with(input: &[u8], limits: Limits) -> (Decoded, usize) {
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::from(input);
        let mut requests = Vec::new();
        loop {
            match decoder.decode(&mut buf, limits) {
                Ok(Some(args)) => requests.push(args.iter().map(|a| a.to_vec()).collect()),
                Ok(None) => return ((requests, None), buf.len()),
                Err(e) => return ((requests, Some(e.message())), buf.len()),
            }
        }
    }

    /// Requests decoded from `input`, which must hold no error.
    fn requests(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let ((requests, error), _) = decode_with(input, OPEN);
        assert_eq!(error, None, "unexpected error for {input:?}");
        requests
    }

    /// The protocol error `input` ends in.
    fn error(input: &[u8], limits: Limits) -> String {
        let ((_, error), _) = decode_with(input, limits);
        String::from_utf8_lossy(&error.expect("an error")).into_owned()
    }

    fn args(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    /// Multibulk requests decode, pipelined ones one at a time, and
    /// arguments are binary-safe.
    #[test]
    fn multibulk_requests() {
        assert_eq!(
            requests(b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n*1\r\n$4\r\nPING\r\n"),
            [args(&["ECHO", "hi"]), args(&["PING"])]
        );
        assert_eq!(
            requests(b"*1\r\n$3\r\n\x00\r\n\r\n"),
            [vec![b"\x00\r\n".to_vec()]]
        );
        assert_eq!(requests(b"*1\r\n$0\r\n\r\n"), [vec![Vec::new()]]);
    }

    /// Counts of zero or less are empty requests; the parser then goes on.
    #[test]
    fn empty_multibulk_requests() {
        assert_eq!(
            requests(b"*0\r\n*-1\r\n*-10\r\n*1\r\n$4\r\nPING\r\n"),
            [vec![], vec![], vec![], args(&["PING"])]
        );
    }

    /// A request split at every possible byte boundary decodes to the same
    /// arguments as when it arrives whole.
    #[test]
    fn byte_at_a_time() {
        let input = b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$5\r\nhello\r\nPING x\r\n";
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in input {
            buf.extend_from_slice(&[b]);
            while let Some(req) = decoder.decode(&mut buf, OPEN).expect("valid") {
                got.push(req.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
            }
        }
        assert_eq!(
            got,
            [args(&["PUBLISH", "ch", "hello"]), args(&["PING", "x"])]
        );
    }

    /// The byte after a length line's `\r`, and the two after a bulk's
    /// data, are skipped unchecked, as Redis does.
    #[test]
    fn line_ends_are_not_checked() {
        assert_eq!(requests(b"*1\rX$4\r\nPINGab"), [args(&["PING"])]);
    }

    /// Protocol errors carry Redis's exact wording.
    #[test]
    fn protocol_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"*x\r\n", "invalid multibulk length"),
            (b"*01\r\n", "invalid multibulk length"),
            (b"*+1\r\n", "invalid multibulk length"),
            (b"*2147483648\r\n", "invalid multibulk length"),
            (b"*\r\n", "invalid multibulk length"),
            (b"*1\r\nfoo\r\n", "expected '$', got 'f'"),
            (b"*1\r\n\r\n", "expected '$', got ' '"),
            (b"*1\r\n$-1\r\n", "invalid bulk length"),
            (b"*1\r\n$536870913\r\n", "invalid bulk length"),
            (b"*1\r\n$1 \r\n", "invalid bulk length"),
            (b"\"unbalanced\r\n", "unbalanced quotes in request"),
            (b"'a'b\r\n", "unbalanced quotes in request"),
        ];
        for (input, reason) in cases {
            assert_eq!(
                error(input, OPEN),
                format!("Protocol error: {reason}"),
                "{input:?}"
            );
        }
        // The largest count and bulk length Redis allows are accepted.
        let ((_, e), _) = decode_with(b"*2147483647\r\n$536870912\r\n", OPEN);
        assert_eq!(e, None);
    }

    /// The offending byte is quoted raw, whatever it is.
    #[test]
    fn expected_dollar_quotes_the_raw_byte() {
        let ((_, e), _) = decode_with(b"*1\r\n\xff\r\n", OPEN);
        assert_eq!(e.unwrap(), b"Protocol error: expected '$', got '\xff'");
    }

    /// Lines with no end fail once more than 64 KiB wait, not before.
    #[test]
    fn line_length_limits() {
        let mut long = vec![b'*'];
        long.resize(INLINE_MAX + 1, b'1');
        assert_eq!(
            error(&long, OPEN),
            "Protocol error: too big mbulk count string"
        );
        long.truncate(INLINE_MAX);
        assert_eq!(decode_with(&long, OPEN).0.1, None);

        let mut bulk = b"*1\r\n$".to_vec();
        bulk.resize(4 + INLINE_MAX + 1, b'1');
        assert_eq!(
            error(&bulk, OPEN),
            "Protocol error: too big bulk count string"
        );

        let inline = vec![b'a'; INLINE_MAX + 1];
        assert_eq!(
            error(&inline, OPEN),
            "Protocol error: too big inline request"
        );
    }

    /// A NUL byte hides the line end after it, as it does from C's `strchr`.
    #[test]
    fn nul_hides_the_line_end() {
        let ((reqs, e), left) = decode_with(b"PING\x00\r\n", OPEN);
        assert!(reqs.is_empty() && e.is_none());
        assert_eq!(left, 7);
        let ((reqs, e), _) = decode_with(b"*1\x00\r\n", OPEN);
        assert!(reqs.is_empty() && e.is_none());
    }

    /// Before authentication: at most 10 arguments of at most 16 KiB.
    #[test]
    fn unauthenticated_limits() {
        let locked = Limits {
            auth_required: true,
            ..OPEN
        };
        assert_eq!(
            error(b"*11\r\n", locked),
            "Protocol error: unauthenticated multibulk length"
        );
        assert_eq!(
            error(b"*1\r\n$16385\r\n", locked),
            "Protocol error: unauthenticated bulk length"
        );
        assert_eq!(decode_with(b"*10\r\n$16384\r\n", locked).0.1, None);
    }

    /// Inline requests split as Redis's `sdssplitargs` does.
    #[test]
    fn inline_requests() {
        assert_eq!(requests(b"PING\r\n"), [args(&["PING"])]);
        assert_eq!(requests(b"PING\n"), [args(&["PING"])]);
        assert_eq!(requests(b"\r\n"), [args(&[])]);
        assert_eq!(requests(b"  \t \n"), [args(&[])]);
        assert_eq!(
            requests(b"publish  \"a b\" 'it\\'s'\r\n"),
            [args(&["publish", "a b", "it's"])]
        );
        assert_eq!(
            requests(b"echo \"\\x41\\n\\q\\x4\"\r\n"),
            [vec![b"echo".to_vec(), b"A\nqx4".to_vec()]]
        );
        assert_eq!(requests(b"a\x0bb\r\n"), [vec![b"a\x0bb".to_vec()]]);
        assert_eq!(
            requests(b"\x0ba \"\"\r\n"),
            [vec![b"a".to_vec(), b"".to_vec()]]
        );
        // A closing quote may be followed by \v, which isspace accepts.
        assert_eq!(requests(b"\"a\"\x0bb\r\n"), [args(&["a", "b"])]);
        // Inside single quotes only \' is an escape, and each kind of quote
        // is plain inside the other.
        assert_eq!(
            requests(b"'\\x41\\n\"' \"it's\"\r\n"),
            [args(&["\\x41\\n\"", "it's"])]
        );
    }
}
