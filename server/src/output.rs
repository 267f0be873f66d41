//! A connection's output: replies encoded in the client's protocol, and
//! pub/sub messages framed around their shared payloads.
//!
//! # One copy per message
//!
//! A message published to a thousand connections is held once, in the
//! engine's shared [`Message`]; each connection queues a reference to it
//! (16 bytes), never a copy of its payload. The frame around the payload
//! (`*3\r\n$7\r\nmessage\r\n$<len>\r\n<channel>\r\n$<len>\r\n` ... `\r\n`)
//! is written into a small per-connection scratch buffer only when the
//! message is about to be sent, and a large payload goes to the socket
//! straight from the shared buffer through a vectored write.
//!
//! A small payload (at most [`INLINE_PAYLOAD`] bytes) is copied instead,
//! with its frame, when it is about to be written: a run of small messages
//! at the front of the queue is framed once into one buffer (a `Framed`
//! chunk, at most [`MAX_STAGED`] bytes ahead of the socket), so one write
//! carries hundreds of them as one slice, where a slice per payload would
//! cap it at [`MAX_SEGMENTS`] / 2, and the kernel copies from one buffer
//! instead of hundreds. A write the socket takes only part of leaves the
//! rest framed for the next one. (Measured with the fan-out benchmark,
//! 64-byte payloads to 50 subscribers: half the writes, as few as
//! redis-server makes, and a third less CPU per delivery.)
//!
//! Replies, which are small and belong to one connection, are encoded into
//! a growing buffer instead; consecutive replies share it, so a pipeline of
//! a thousand `PING`s is one write. The buffer is written from in place:
//! it is cut off into a chunk of its own only when a message is queued
//! behind it, so a client that only sends commands costs no allocation per
//! reply.
//!
//! # Accounting
//!
//! [`Output::pending`] counts the bytes not yet written, as Redis's
//! `client-output-buffer-limit` counts a client's output buffer; the part
//! made of messages is [`Output::message_bytes`], which drop-oldest trims.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use tannoy::{Message, MessageKind};

/// The two protocol versions a client can speak (`HELLO 2` / `HELLO 3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Protocol {
    /// RESP2, every connection's protocol until it sends `HELLO 3`.
    #[default]
    Resp2,
    /// RESP3: maps, nulls, push frames.
    Resp3,
}

impl Protocol {
    /// The version number, as `HELLO` and `CLIENT LIST` show it.
    pub(crate) fn version(self) -> i64 {
        match self {
            Self::Resp2 => 2,
            Self::Resp3 => 3,
        }
    }
}

/// One queued piece of output.
#[derive(Debug)]
enum Chunk {
    /// Encoded replies.
    Data(Bytes),
    /// The frames of consecutive small messages, made just before their
    /// first write (see the module docs). Message bytes, but no longer
    /// dropped by drop-oldest: they are going out.
    Framed(Bytes),
    /// A pub/sub message, framed when written.
    Message {
        /// The shared message.
        message: Message,
        /// Its frame's length, payload included.
        len: usize,
        /// Framed as a RESP3 push (`>`) rather than a RESP2 array (`*`):
        /// decided by the protocol in force when it was queued, as Redis
        /// encodes a message when it queues it.
        push: bool,
    },
}

/// One piece of the next vectored write.
#[derive(Clone, Copy, Debug)]
enum Segment {
    /// `scratch[start..end]`.
    Scratch(usize, usize),
    /// `chunks[index]`'s bytes from `offset` (a `Data` or `Framed` chunk).
    Data(usize, usize),
    /// `chunks[index]`'s payload from `offset` (a `Message` chunk).
    Payload(usize, usize),
    /// The replies in `tail`, after every chunk.
    Tail,
}

/// Most slices handed to one vectored write (the length of the array
/// [`Output::fill_slices`] fills). Linux accepts up to 1024; 128 (about
/// 60 large messages, each a frame slice and a payload slice) already
/// amortises the system call, and keeps the per-write framing work small.
/// Small messages take no slice of their own (see [`INLINE_PAYLOAD`]). Not
/// tuned beyond that.
pub(crate) const MAX_SEGMENTS: usize = 128;

/// Most bytes gathered into one vectored write, so one write never frames
/// far more than the socket will take.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Largest payload copied with its frame rather than given a slice of its
/// own (see the module docs). Copying 1 KiB costs about what the kernel
/// spends on one more slice; past that, a slice of the shared payload is
/// cheaper than a copy.
pub(crate) const INLINE_PAYLOAD: usize = 1024;

/// Most bytes of small messages framed ahead of the socket: 64 KiB, what
/// Redis writes to one client per event (`NET_MAX_WRITES_PER_EVENT`).
/// Framing ahead bounds what a client that stopped reading holds as
/// copies, and what drop-oldest can no longer drop.
pub(crate) const MAX_STAGED: usize = 64 * 1024;

/// A connection's pending output; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Queued output, oldest first; `tail` logically follows it.
    chunks: VecDeque<Chunk>,
    /// Replies encoded since the last chunk was queued.
    tail: BytesMut,
    /// Bytes of `chunks[0]` already written.
    front_written: usize,
    /// Bytes not yet written, including `tail`.
    pending: usize,
    /// The part of `pending` made of whole `Message` chunks (less what
    /// of the front one was written).
    message_bytes: usize,
    /// Messages discarded by [`Output::drop_oldest_message`].
    dropped: u64,
    /// The protocol replies are encoded in.
    protocol: Protocol,
    /// Whether ordinary replies are discarded (`CLIENT REPLY OFF|SKIP`).
    muted: bool,
    /// Frames for the next write.
    scratch: Vec<u8>,
    /// The next write's slices.
    plan: Vec<Segment>,
}

/// Number of decimal digits of `n` (what `$<n>\r\n` spends on it).
fn digits(n: usize) -> usize {
    // At most 20 digits: the cast cannot truncate.
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Bytes of a bulk string `$<len>\r\n<bytes>\r\n` holding `len` bytes.
fn bulk_len(len: usize) -> usize {
    1 + digits(len) + 2 + len + 2
}

/// The frame name and element count of a message kind.
fn kind_frame(kind: MessageKind) -> (&'static [u8], u8) {
    match kind {
        MessageKind::Message => (b"message", b'3'),
        MessageKind::PMessage => (b"pmessage", b'4'),
        MessageKind::SMessage => (b"smessage", b'3'),
        // `MessageKind` may grow; a kind this server does not know yet is
        // framed as a plain message, which every client can read.
        _ => (b"message", b'3'),
    }
}

/// Total encoded size of a message frame.
fn message_len(message: &Message) -> usize {
    let (name, _) = kind_frame(message.kind());
    let pattern = message.pattern().map_or(0, |p| bulk_len(p.len()));
    4 + bulk_len(name.len())
        + pattern
        + bulk_len(message.channel().len())
        + bulk_len(message.payload().len())
}

/// Appends a message's frame up to (not including) its payload bytes.
fn message_header(message: &Message, push: bool, out: &mut Vec<u8>) {
    message_prefix(message, push, out);
    push_len_line(out, b'$', message.payload().len());
}

/// Appends a message's frame up to its payload's length line: what every
/// message of one kind on one channel (and pattern) shares.
fn message_prefix(message: &Message, push: bool, out: &mut Vec<u8>) {
    let (name, count) = kind_frame(message.kind());
    out.extend_from_slice(&[if push { b'>' } else { b'*' }, count, b'\r', b'\n']);
    push_bulk(out, name);
    if let Some(pattern) = message.pattern() {
        push_bulk(out, pattern);
    }
    push_bulk(out, message.channel());
}

/// Whether two messages' frames share their prefix (see
/// [`message_prefix`]).
fn same_prefix(a: &Message, b: &Message) -> bool {
    a.kind() == b.kind() && a.channel() == b.channel() && a.pattern() == b.pattern()
}

/// A length line, `<prefix><n>\r\n`, formatted on the stack: replies and
/// frames are made of these, and formatting through `format!` cost an
/// allocation each.
struct LenLine {
    /// The line, right-aligned: `bytes[start..]`.
    bytes: [u8; 24],
    /// Where the line starts in `bytes`.
    start: usize,
}

impl LenLine {
    /// `<prefix><n>\r\n`.
    fn new(prefix: u8, n: i64) -> Self {
        let mut bytes = [0; 24];
        let mut i = bytes.len() - 2;
        bytes[i..].copy_from_slice(b"\r\n");
        let mut magnitude = n.unsigned_abs();
        loop {
            i -= 1;
            // `magnitude % 10` is a single digit: the cast cannot truncate.
            bytes[i] = b'0' + (magnitude % 10) as u8;
            magnitude /= 10;
            if magnitude == 0 {
                break;
            }
        }
        if n < 0 {
            i -= 1;
            bytes[i] = b'-';
        }
        i -= 1;
        bytes[i] = prefix;
        Self { bytes, start: i }
    }

    /// The line's bytes.
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// Appends `<prefix><n>\r\n`.
fn push_len_line(out: &mut Vec<u8>, prefix: u8, n: usize) {
    out.extend_from_slice(LenLine::new(prefix, n as i64).as_bytes());
}

/// Appends a bulk string.
fn push_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    push_len_line(out, b'$', bytes.len());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

impl Output {
    /// An empty output speaking RESP2.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The protocol replies are encoded in.
    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Switches the protocol for what is queued from now on.
    pub(crate) fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
    }

    /// Discards (or stops discarding) ordinary replies; pub/sub frames are
    /// queued regardless, as Redis sends them under `CLIENT REPLY OFF`.
    pub(crate) fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// Bytes queued and not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// The part of [`pending`](Self::pending) that is pub/sub messages.
    pub(crate) fn message_bytes(&self) -> usize {
        self.message_bytes
    }

    /// Whether nothing waits to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Queued chunks (Redis's `oll`, roughly).
    pub(crate) fn chunk_count(&self) -> usize {
        self.chunks.len() + usize::from(!self.tail.is_empty())
    }

    /// Messages discarded by drop-oldest so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Appends raw protocol bytes unless muted.
    fn raw(&mut self, bytes: &[u8]) {
        if !self.muted {
            self.raw_always(bytes);
        }
    }

    /// Appends raw protocol bytes even when muted.
    fn raw_always(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        self.pending += bytes.len();
    }

    /// Appends `<prefix><n>\r\n` unless muted.
    fn len_line(&mut self, prefix: u8, n: i64, always: bool) {
        let line = LenLine::new(prefix, n);
        if always {
            self.raw_always(line.as_bytes());
        } else {
            self.raw(line.as_bytes());
        }
    }

    /// `+<status>\r\n`.
    pub(crate) fn simple(&mut self, status: &str) {
        if !self.muted {
            self.raw_always(b"+");
            self.raw_always(status.as_bytes());
            self.raw_always(b"\r\n");
        }
    }

    /// `+OK\r\n`.
    pub(crate) fn ok(&mut self) {
        self.raw(b"+OK\r\n");
    }

    /// An error reply. `message` starts with its code (`ERR ...`,
    /// `NOAUTH ...`); any `\r` or `\n` in it becomes a space, as Redis
    /// keeps error replies on one line.
    pub(crate) fn error(&mut self, message: &[u8]) {
        if self.muted {
            return;
        }
        self.raw_always(b"-");
        let start = self.tail.len();
        self.tail.extend_from_slice(message);
        for b in &mut self.tail[start..] {
            if *b == b'\r' || *b == b'\n' {
                *b = b' ';
            }
        }
        self.pending += message.len();
        self.raw_always(b"\r\n");
    }

    /// `ERR <message>`, the generic error.
    pub(crate) fn err(&mut self, message: &str) {
        let mut full = b"ERR ".to_vec();
        full.extend_from_slice(message.as_bytes());
        self.error(&full);
    }

    /// `:<n>\r\n`.
    pub(crate) fn integer(&mut self, n: i64) {
        self.len_line(b':', n, false);
    }

    /// A bulk string.
    pub(crate) fn bulk(&mut self, bytes: &[u8]) {
        if !self.muted {
            self.len_line(b'$', bytes.len() as i64, true);
            self.raw_always(bytes);
            self.raw_always(b"\r\n");
        }
    }

    /// A null: `$-1` in RESP2, `_` in RESP3.
    pub(crate) fn null(&mut self) {
        match self.protocol {
            Protocol::Resp2 => self.raw(b"$-1\r\n"),
            Protocol::Resp3 => self.raw(b"_\r\n"),
        }
    }

    /// The header of an array of `n` elements.
    pub(crate) fn array(&mut self, n: usize) {
        self.len_line(b'*', n as i64, false);
    }

    /// The header of a map of `n` pairs: `%n` in RESP3, an array of `2n`
    /// elements in RESP2.
    pub(crate) fn map(&mut self, n: usize) {
        match self.protocol {
            Protocol::Resp2 => self.len_line(b'*', 2 * n as i64, false),
            Protocol::Resp3 => self.len_line(b'%', n as i64, false),
        }
    }

    /// The header of a set of `n` elements: `~n` in RESP3, an array in RESP2.
    pub(crate) fn set(&mut self, n: usize) {
        match self.protocol {
            Protocol::Resp2 => self.len_line(b'*', n as i64, false),
            Protocol::Resp3 => self.len_line(b'~', n as i64, false),
        }
    }

    /// A text reply Redis sends as a verbatim string (`=<len>\r\ntxt:...`)
    /// in RESP3 and as a bulk string in RESP2 (`INFO`, `CLIENT LIST`).
    pub(crate) fn verbatim(&mut self, text: &[u8]) {
        match self.protocol {
            Protocol::Resp2 => self.bulk(text),
            Protocol::Resp3 => {
                if !self.muted {
                    self.len_line(b'=', text.len() as i64 + 4, true);
                    self.raw_always(b"txt:");
                    self.raw_always(text);
                    self.raw_always(b"\r\n");
                }
            }
        }
    }

    /// A pub/sub confirmation (`subscribe`, `unsubscribe`, ...): a push in
    /// RESP3, an array in RESP2, and queued even when replies are muted.
    /// `name` is `None` for the null name of an unsubscribe-all that had
    /// nothing to drop.
    pub(crate) fn confirmation(&mut self, kind: &str, name: Option<&[u8]>, count: usize) {
        let push = self.protocol == Protocol::Resp3;
        self.raw_always(if push { b">3\r\n" } else { b"*3\r\n" });
        self.len_line(b'$', kind.len() as i64, true);
        self.raw_always(kind.as_bytes());
        self.raw_always(b"\r\n");
        match (name, push) {
            (Some(name), _) => {
                self.len_line(b'$', name.len() as i64, true);
                self.raw_always(name);
                self.raw_always(b"\r\n");
            }
            (None, false) => self.raw_always(b"$-1\r\n"),
            (None, true) => self.raw_always(b"_\r\n"),
        }
        self.len_line(b':', count as i64, true);
    }

    /// Queues a pub/sub message by reference (see the module docs).
    pub(crate) fn message(&mut self, message: Message) {
        self.seal_tail();
        let len = message_len(&message);
        self.pending += len;
        self.message_bytes += len;
        self.chunks.push_back(Chunk::Message {
            message,
            len,
            push: self.protocol == Protocol::Resp3,
        });
    }

    /// Moves the encoded replies in `tail` into the chunk queue.
    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            self.chunks
                .push_back(Chunk::Data(self.tail.split().freeze()));
        }
    }

    /// Discards the oldest queued message that has not started going out,
    /// counting it; returns whether there was one.
    pub(crate) fn drop_oldest_message(&mut self) -> bool {
        let first = usize::from(self.front_written > 0);
        let Some(index) = self
            .chunks
            .iter()
            .skip(first)
            .position(|c| matches!(c, Chunk::Message { .. }))
            .map(|i| i + first)
        else {
            return false;
        };
        if let Some(Chunk::Message { len, .. }) = self.chunks.remove(index) {
            self.pending -= len;
            self.message_bytes -= len;
            self.dropped += 1;
        }
        true
    }

    /// Frames the next batch of output into `slices` for one vectored
    /// write and returns how many it filled; then call
    /// [`advance`](Self::advance) with what the socket took.
    pub(crate) fn fill_slices<'a>(&'a mut self, slices: &mut [IoSlice<'a>; MAX_SEGMENTS]) -> usize {
        self.stage();
        self.scratch.clear();
        self.plan.clear();
        let mut bytes = 0;
        let mut every_chunk = true;
        for (index, chunk) in self.chunks.iter().enumerate() {
            if self.plan.len() + 3 > MAX_SEGMENTS || bytes >= MAX_BATCH_BYTES {
                every_chunk = false;
                break;
            }
            let skip = if index == 0 { self.front_written } else { 0 };
            match chunk {
                Chunk::Data(data) | Chunk::Framed(data) => {
                    self.plan.push(Segment::Data(index, skip));
                    bytes += data.len() - skip;
                }
                Chunk::Message { message, .. }
                    if skip == 0 && message.payload().len() <= INLINE_PAYLOAD =>
                {
                    // Not staged: past what is framed ahead. It goes in a
                    // later write, framed then.
                    every_chunk = false;
                    break;
                }
                Chunk::Message { message, push, .. } => {
                    let start = self.scratch.len();
                    message_header(message, *push, &mut self.scratch);
                    let header = self.scratch.len() - start;
                    let payload = message.payload().len();
                    // The part of this frame already written, if any: skip
                    // it in the header, then the payload, then the "\r\n".
                    let header_skip = skip.min(header);
                    let payload_skip = (skip - header_skip).min(payload);
                    let crlf_skip = skip - header_skip - payload_skip;
                    push_scratch(&mut self.plan, start + header_skip, self.scratch.len());
                    self.plan.push(Segment::Payload(index, payload_skip));
                    let crlf = self.scratch.len();
                    self.scratch.extend_from_slice(b"\r\n");
                    push_scratch(&mut self.plan, crlf + crlf_skip, crlf + 2);
                    bytes += header + payload + 2 - skip;
                }
            }
        }
        if every_chunk && !self.tail.is_empty() && self.plan.len() < MAX_SEGMENTS {
            self.plan.push(Segment::Tail);
        }
        let mut filled = 0;
        for segment in &self.plan {
            let bytes: &[u8] = match *segment {
                Segment::Scratch(start, end) => &self.scratch[start..end],
                Segment::Data(index, skip) => match &self.chunks[index] {
                    Chunk::Data(data) | Chunk::Framed(data) => &data[skip..],
                    Chunk::Message { .. } => &[],
                },
                Segment::Payload(index, skip) => match &self.chunks[index] {
                    Chunk::Message { message, .. } => &message.payload()[skip..],
                    Chunk::Data(_) | Chunk::Framed(_) => &[],
                },
                Segment::Tail => &self.tail,
            };
            if !bytes.is_empty() {
                slices[filled] = IoSlice::new(bytes);
                filled += 1;
            }
        }
        filled
    }

    /// Frames runs of small messages that have not started going out into
    /// `Framed` chunks, each message once, until [`MAX_STAGED`] bytes are
    /// framed ahead of the socket (see the module docs). Looks no further
    /// than the chunks one write can plan.
    fn stage(&mut self) {
        let small = |chunk: &Chunk| {
            matches!(chunk, Chunk::Message { message, .. }
                if message.payload().len() <= INLINE_PAYLOAD)
        };
        let mut staged = 0;
        let mut index = usize::from(self.front_written > 0);
        while index < self.chunks.len().min(MAX_SEGMENTS) && staged < MAX_STAGED {
            if !small(&self.chunks[index]) {
                if let Chunk::Framed(framed) = &self.chunks[index] {
                    staged += framed.len();
                }
                index += 1;
                continue;
            }
            let mut end = index;
            let mut len = 0;
            while end < self.chunks.len() && small(&self.chunks[end]) && staged + len < MAX_STAGED {
                if let Chunk::Message { len: frame, .. } = &self.chunks[end] {
                    len += frame;
                }
                end += 1;
            }
            let mut frames = Vec::with_capacity(len);
            // Consecutive messages on one channel share their frame's
            // prefix: copied, not formatted again.
            let mut prefix = Vec::new();
            let mut previous: Option<(Message, bool)> = None;
            for chunk in self.chunks.drain(index..end) {
                if let Chunk::Message { message, push, .. } = chunk {
                    if !previous
                        .as_ref()
                        .is_some_and(|(p, was)| *was == push && same_prefix(p, &message))
                    {
                        prefix.clear();
                        message_prefix(&message, push, &mut prefix);
                    }
                    frames.extend_from_slice(&prefix);
                    push_len_line(&mut frames, b'$', message.payload().len());
                    frames.extend_from_slice(message.payload());
                    frames.extend_from_slice(b"\r\n");
                    previous = Some((message, push));
                }
            }
            staged += frames.len();
            self.chunks
                .insert(index, Chunk::Framed(Bytes::from(frames)));
            index += 1;
        }
    }

    /// Marks `written` bytes from the front as sent: whole chunks first,
    /// then the front of `tail`.
    pub(crate) fn advance(&mut self, mut written: usize) {
        self.pending -= written;
        while written > 0 {
            let Some(front) = self.chunks.front() else {
                // Only replies are left; they were written from `tail` in
                // place.
                self.tail.advance(written);
                return;
            };
            let (len, is_message) = match front {
                Chunk::Data(data) => (data.len(), false),
                Chunk::Framed(framed) => (framed.len(), true),
                Chunk::Message { len, .. } => (*len, true),
            };
            let left = len - self.front_written;
            if written < left {
                self.front_written += written;
                if is_message {
                    self.message_bytes -= written;
                }
                return;
            }
            written -= left;
            if is_message {
                self.message_bytes -= left;
            }
            self.front_written = 0;
            self.chunks.pop_front();
        }
    }
}

/// Adds `scratch[start..end]` to the plan, merging it with a scratch
/// segment it directly follows.
fn push_scratch(plan: &mut Vec<Segment>, start: usize, end: usize) {
    if start == end {
        return;
    }
    if let Some(Segment::Scratch(_, last_end)) = plan.last_mut() {
        if *last_end == start {
            *last_end = end;
            return;
        }
    }
    plan.push(Segment::Scratch(start, end));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tannoy::Broker;

    /// Everything `out` would write, taken `step` bytes at a time.
    fn drain(out: &mut Output, step: usize) -> Vec<u8> {
        let mut written = Vec::new();
        while !out.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SEGMENTS];
            let count = out.fill_slices(&mut slices);
            let batch: Vec<u8> = slices[..count]
                .iter()
                .flat_map(|s| s.iter().copied())
                .take(step)
                .collect();
            written.extend_from_slice(&batch);
            let n = batch.len();
            out.advance(n);
        }
        written
    }

    /// Messages from a broker: one of each kind on channel `ch`.
    fn messages() -> Vec<Message> {
        let broker = Broker::new();
        let sub = &mut broker.subscriber();
        sub.subscribe(["ch"]);
        sub.psubscribe(["c*"]);
        sub.ssubscribe(["sh"]);
        broker.publish("ch", "hi");
        broker.spublish("sh", "");
        sub.try_iter().collect()
    }

    /// Messages are framed as Redis frames them, in either protocol, and
    /// interleave with replies in queue order.
    #[test]
    fn frames_match_redis() {
        // A reply, the three kinds of message, then a RESP3 push and message.
        let filled = || {
            let mut out = Output::new();
            out.integer(1);
            for m in messages() {
                out.message(m);
            }
            out.set_protocol(Protocol::Resp3);
            out.confirmation("unsubscribe", None, 0);
            out.message(messages().remove(0));
            out
        };
        let out = filled();
        let expected: &[u8] = b":1\r\n\
            *3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n\
            *4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$2\r\nhi\r\n\
            *3\r\n$8\r\nsmessage\r\n$2\r\nsh\r\n$0\r\n\r\n\
            >3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n\
            >3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n";
        assert_eq!(out.pending(), expected.len());
        for step in [1, 2, 3, 7, 1000] {
            let mut copy = filled();
            assert_eq!(drain(&mut copy, step), expected, "step {step}");
            assert_eq!((copy.pending(), copy.message_bytes()), (0, 0));
        }
    }

    /// Muted output drops replies but keeps pub/sub frames.
    #[test]
    fn muted_keeps_pubsub_frames() {
        let mut out = Output::new();
        out.set_muted(true);
        out.ok();
        out.err("nope");
        out.bulk(b"x");
        out.confirmation("subscribe", Some(b"c"), 1);
        out.message(messages().remove(0));
        assert_eq!(
            drain(&mut out, usize::MAX),
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        );
    }

    /// Drop-oldest removes whole messages that have not started going out,
    /// never replies, and counts them.
    #[test]
    fn drop_oldest_skips_a_partly_written_message() {
        let mut out = Output::new();
        let mut all = messages().into_iter();
        let (a, b) = (
            all.next().expect("a message"),
            all.next().expect("a pmessage"),
        );
        out.message(a);
        out.ok();
        out.message(b);
        out.advance(3);
        assert!(out.drop_oldest_message());
        assert!(!out.drop_oldest_message());
        assert_eq!(out.dropped(), 1);
        let rest = drain(&mut out, 5);
        assert_eq!(rest, b"\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n+OK\r\n");
        assert_eq!(out.message_bytes(), 0);
    }

    /// Replies written in place from the reply buffer, in part, stay in
    /// order with a message queued after them.
    #[test]
    fn partly_written_replies_precede_a_later_message() {
        let mut out = Output::new();
        out.integer(-12);
        out.bulk(b"abc");
        let mut slices = [IoSlice::new(&[]); MAX_SEGMENTS];
        assert_eq!(out.fill_slices(&mut slices), 1);
        out.advance(10);
        out.message(messages().remove(0));
        out.simple("OK");
        assert_eq!(out.chunk_count(), 3);
        assert_eq!(
            drain(&mut out, 4),
            b"abc\r\n*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n+OK\r\n"
        );
        out.integer(i64::MIN);
        out.integer(0);
        assert_eq!(drain(&mut out, 3), b":-9223372036854775808\r\n:0\r\n");
    }

    /// Small payloads are copied in with their frames, large ones go out
    /// from the shared buffer; either way, the bytes are the same, in
    /// order, however the socket splits them.
    #[test]
    fn small_payloads_inline_large_ones_by_reference() {
        let broker = Broker::new();
        let sub = &mut broker.subscriber();
        sub.subscribe(["ch"]);
        let sizes = [0, 1, INLINE_PAYLOAD, INLINE_PAYLOAD + 1, 3, 20_000, 5];
        for (i, &size) in sizes.iter().enumerate() {
            broker.publish("ch", vec![b'a' + i as u8; size]);
        }
        let queued: Vec<Message> = sub.try_iter().collect();
        let mut expected = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            expected.extend_from_slice(
                format!("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n${size}\r\n").as_bytes(),
            );
            expected.extend(std::iter::repeat_n(b'a' + i as u8, size));
            expected.extend_from_slice(b"\r\n");
        }
        for step in [1, 7, 1000, 16_384, usize::MAX] {
            let mut out = Output::new();
            out.ok();
            for m in &queued {
                out.message(m.clone());
            }
            let mut all = b"+OK\r\n".to_vec();
            all.extend_from_slice(&expected);
            assert_eq!(drain(&mut out, step), all, "step {step}");
            assert_eq!((out.pending(), out.message_bytes()), (0, 0));
        }

        // A run of small messages is one slice.
        let mut out = Output::new();
        for _ in 0..500 {
            broker.publish("ch", "x".repeat(64));
        }
        for m in sub.try_iter() {
            out.message(m);
        }
        let mut slices = [IoSlice::new(&[]); MAX_SEGMENTS];
        assert_eq!(out.fill_slices(&mut slices), 1);
        assert_eq!(slices[0].len(), out.pending());
    }

    /// Small messages are framed ahead of the socket only up to
    /// `MAX_STAGED` bytes; drop-oldest then drops the oldest message not
    /// yet framed, and what is framed goes out whole and in order.
    #[test]
    fn staging_is_bounded_and_drop_oldest_skips_it() {
        let broker = Broker::new();
        let sub = &mut broker.subscriber();
        sub.subscribe(["ch"]);
        let mut out = Output::new();
        let count = 2 * MAX_STAGED / 64;
        for i in 0..count {
            broker.publish("ch", format!("{i:0>40}"));
            for m in sub.try_iter() {
                out.message(m);
            }
        }
        let frame = |i: usize| format!("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$40\r\n{i:0>40}\r\n");
        let len = frame(0).len();
        assert_eq!(out.pending(), count * len);
        let mut slices = [IoSlice::new(&[]); MAX_SEGMENTS];
        assert_eq!(out.fill_slices(&mut slices), 1);
        let staged = slices[0].len();
        assert!((MAX_STAGED..MAX_STAGED + len).contains(&staged), "{staged}");
        assert_eq!(staged % len, 0);
        out.advance(10);
        assert!(out.drop_oldest_message());
        assert_eq!(out.dropped(), 1);
        let first_unstaged = staged / len;
        let expected: String = (0..count)
            .filter(|&i| i != first_unstaged)
            .map(frame)
            .collect();
        assert_eq!(drain(&mut out, 5000), expected.as_bytes()[10..]);
        assert_eq!((out.pending(), out.message_bytes()), (0, 0));
    }

    /// Frames written together still differ where their messages do:
    /// kind, pattern, channel, and the protocol each was queued under.
    #[test]
    fn consecutive_frames_differ_where_messages_do() {
        let broker = Broker::new();
        let sub = &mut broker.subscriber();
        sub.subscribe(["a", "b"]);
        sub.psubscribe(["a*", "b*"]);
        broker.publish("a", "1");
        broker.publish("a", "22");
        broker.publish("b", "3");
        let queued: Vec<Message> = sub.try_iter().collect();
        let mut out = Output::new();
        for m in &queued {
            out.message(m.clone());
        }
        out.set_protocol(Protocol::Resp3);
        out.message(queued[4].clone());
        assert_eq!(
            String::from_utf8_lossy(&drain(&mut out, usize::MAX)),
            "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\n1\r\n\
             *4\r\n$8\r\npmessage\r\n$2\r\na*\r\n$1\r\na\r\n$1\r\n1\r\n\
             *3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\n22\r\n\
             *4\r\n$8\r\npmessage\r\n$2\r\na*\r\n$1\r\na\r\n$2\r\n22\r\n\
             *3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$1\r\n3\r\n\
             *4\r\n$8\r\npmessage\r\n$2\r\nb*\r\n$1\r\nb\r\n$1\r\n3\r\n\
             >3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$1\r\n3\r\n"
        );
    }

    /// Digit counts, as `$<n>` spends them.
    #[test]
    fn digit_counts() {
        for (n, d) in [(0, 1), (9, 1), (10, 2), (99, 2), (100, 3), (65_536, 5)] {
            assert_eq!(digits(n), d, "{n}");
            assert_eq!(LenLine::new(b'$', n as i64).as_bytes().len(), d + 3, "{n}");
        }
        assert_eq!(digits(usize::MAX), usize::MAX.to_string().len());
    }

    /// Errors stay on one line.
    #[test]
    fn errors_are_one_line() {
        let mut out = Output::new();
        out.err("a\r\nb");
        assert_eq!(drain(&mut out, usize::MAX), b"-ERR a  b\r\n");
    }
}
