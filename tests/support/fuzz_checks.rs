//! What the fuzz targets in `fuzz/` check, shared with `tests/fuzz_corpus.rs`,
//! which replays the saved corpus and crash artifacts through exactly the
//! same code on stable Rust.
//!
//! Two input formats, both total (every byte string decodes to something):
//!
//! * `pattern_match`: two little-endian bytes `h`, then `rest`; the pattern
//!   is the first `h % (rest.len() + 1)` bytes of `rest`, the channel the
//!   remainder. [`check_pattern_match`] compares the compiled matcher
//!   ([`Pattern`]) with the reference one ([`glob_match`]) on that pair, on
//!   the pair with roles swapped, and on a few patterns derived from it.
//! * `broker_ops`: one configuration byte, then operations (see
//!   [`decode_broker_ops`]) on a broker and up to [`SLOTS`] subscribers.
//!   [`check_broker_ops`] runs them against tannoy and against the
//!   reference model in `broker_model.rs` (one struct, linear scans with
//!   [`glob_match`], one `VecDeque` per subscriber; shared with
//!   `tests/model.rs`) and compares every observable result.
//!
//! A disagreement panics with a description of it, and for `broker_ops` with
//! the decoded operations, which is what a fuzzer records as a crash.

#[macro_use]
#[path = "broker_model.rs"]
mod broker_model;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tannoy::{
    Broker, BrokerBuilder, Message, OverflowPolicy, Pattern, RecvError, RecvTimeoutError,
    Subscriber, TryRecvError, glob_match,
};

pub(crate) use broker_model::Name;
use broker_model::{Model, PublishId, Space, Status, SubModel, check_message, set};

// ---------------------------------------------------------------------------
// pattern_match
// ---------------------------------------------------------------------------

/// Splits a `pattern_match` input into `(pattern, channel)`; see the module
/// docs. Any header value gives a valid split, so mutations of it stay
/// meaningful.
pub(crate) fn split_pattern_input(data: &[u8]) -> (&[u8], &[u8]) {
    let (header, rest) = match data {
        [lo, hi, rest @ ..] => (u16::from_le_bytes([*lo, *hi]), rest),
        _ => (0, &[][..]),
    };
    rest.split_at(usize::from(header) % (rest.len() + 1))
}

/// The `pattern_match` input that [`split_pattern_input`] splits into
/// `(pattern, channel)`.
///
/// # Panics
///
/// If the pattern is longer than `u16::MAX` bytes.
pub(crate) fn encode_pattern_input(pattern: &[u8], channel: &[u8]) -> Vec<u8> {
    let len = u16::try_from(pattern.len()).expect("pattern longer than u16::MAX");
    let mut data = len.to_le_bytes().to_vec();
    data.extend_from_slice(pattern);
    data.extend_from_slice(channel);
    data
}

/// The `pattern_match` check: the compiled matcher agrees with the
/// reference matcher, and neither panics.
///
/// Besides the decoded pair it tries the pair with roles swapped, the
/// pattern wrapped in stars, and the channel escaped byte by byte (a
/// pattern that must match the channel and nothing else).
///
/// # Panics
///
/// On any disagreement.
pub(crate) fn check_pattern_match(data: &[u8]) {
    let (pattern, channel) = split_pattern_input(data);
    check_pair(pattern, channel);
    check_pair(channel, pattern);

    let mut starred = Vec::with_capacity(pattern.len() + 2);
    starred.push(b'*');
    starred.extend_from_slice(pattern);
    starred.push(b'*');
    check_pair(&starred, channel);

    let literal: Vec<u8> = channel.iter().flat_map(|&b| [b'\\', b]).collect();
    check_pair(&literal, channel);
    check_pair(&literal, pattern);
    assert!(
        glob_match(&literal, channel),
        "the escaped channel {:?} does not match the channel itself",
        Name(literal.clone()),
    );
    assert_eq!(
        glob_match(&literal, pattern),
        pattern == channel,
        "the escaped channel {:?} against {:?}",
        Name(literal),
        Name(pattern.to_vec()),
    );
}

/// Compares `Pattern::new(pattern).matches(channel)` with
/// `glob_match(pattern, channel)`.
fn check_pair(pattern: &[u8], channel: &[u8]) {
    let expected = glob_match(pattern, channel);
    let compiled = Pattern::new(pattern);
    assert_eq!(compiled.as_bytes(), pattern, "Pattern::as_bytes");
    assert_eq!(
        compiled.matches(channel),
        expected,
        "Pattern::new({:?}).matches({:?}) disagrees with glob_match",
        Name(pattern.to_vec()),
        Name(channel.to_vec()),
    );
    // Debug must not panic on any bytes either.
    let _ = format!("{compiled:?}");
}

// ---------------------------------------------------------------------------
// broker_ops: names
// ---------------------------------------------------------------------------

/// Subscriber slots a `broker_ops` case works with.
pub(crate) const SLOTS: usize = 4;

/// Most broker handles alive at once.
const MAX_HANDLES: usize = 3;

/// Channel and pattern names a name byte below 0x80 picks from (modulo the
/// length, with [`LONG_NAMES`] after these): glob metacharacters alone and
/// in the corners of the grammar, bytes that sort differently signed, and
/// shapes that land in each strategy of the pattern index (exact, prefix,
/// suffix, anchored literal, gram, fallback, never).
const NAMES: [&[u8]; 48] = [
    b"",
    b"a",
    b"b",
    b"ab",
    b"ba",
    b"aa",
    b"abc",
    b"*",
    b"?",
    b"**",
    b"?*",
    b"*?*",
    b"a*",
    b"*a",
    b"ab*",
    b"*ab",
    b"*ab*",
    b"a*c",
    b"a?",
    b"?b",
    b"[",
    b"]",
    b"[ab]",
    b"[^a]",
    b"[a-",
    b"[]",
    b"[^]",
    b"[a-c]*ab",
    b"??ab*",
    b"ab*c?",
    b"\\",
    b"\\*",
    b"a\\*b",
    b"a\\",
    b"a[",
    b"\x00",
    b"\x80",
    b"\xff",
    b"\x80*",
    b"[\x00-\xff]",
    b"a\x00b",
    b"t:*:ev",
    b"t:1:ev",
    b"*:ev",
    b"t:*",
    b"a*b*c",
    b"ab\xff",
    b"[a-]",
];

/// Generated names, after [`NAMES`]: `(unit, repeats)`. They straddle the
/// 1000-star-run limit (`*?` x 1000 matches `a` x 1000, x 1001 never
/// matches, `a*` x 1001 matches `a` x 1001) and give channels too long for
/// the index's match cache.
const LONG_NAMES: [(&[u8], usize); 5] = [
    (b"*?", 1000),
    (b"*?", 1001),
    (b"a*", 1001),
    (b"a", 1000),
    (b"a", 1001),
];

/// Entries in the name alphabet.
const ALPHABET_LEN: usize = NAMES.len() + LONG_NAMES.len();

/// Entry `i` of the name alphabet.
fn alphabet(i: usize) -> Vec<u8> {
    let i = i % ALPHABET_LEN;
    match NAMES.get(i) {
        Some(name) => name.to_vec(),
        None => {
            let (unit, repeats) = LONG_NAMES[i - NAMES.len()];
            unit.repeat(repeats)
        }
    }
}

// ---------------------------------------------------------------------------
// broker_ops: operations and their encoding
// ---------------------------------------------------------------------------

/// How a subscriber is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ctor {
    /// `broker.subscriber()`: the broker's capacity and policy.
    Default,
    /// `broker.subscriber_with(policy)`: the broker's capacity.
    With(OverflowPolicy),
    /// `broker.subscriber_builder()` with this capacity and policy.
    Builder(usize, OverflowPolicy),
}

/// How a `Recv` operation receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecvMode {
    /// `try_recv`.
    Try,
    /// `recv_timeout(Duration::ZERO)`.
    Timeout,
    /// `recv_deadline(Instant::now())`.
    Deadline,
    /// `try_iter().take(n)`.
    TryIter,
    /// One poll of `recv_async()` with a no-op waker.
    Poll,
}

/// One operation of a `broker_ops` case. Slots are `0..SLOTS`; an operation
/// on an empty slot, or one that needs a broker handle when none is left,
/// does nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// `subscribe`.
    Subscribe(usize, Vec<Name>),
    /// `psubscribe`.
    PSubscribe(usize, Vec<Name>),
    /// `ssubscribe`.
    SSubscribe(usize, Vec<Name>),
    /// `unsubscribe` (all when the list is empty).
    Unsubscribe(usize, Vec<Name>),
    /// `punsubscribe` (all when the list is empty).
    PUnsubscribe(usize, Vec<Name>),
    /// `sunsubscribe` (all when the list is empty).
    SUnsubscribe(usize, Vec<Name>),
    /// `publish` to a channel, this many times in a row (1-8).
    Publish(Name, usize),
    /// `spublish` to a shard channel.
    SPublish(Name),
    /// Receive up to this many messages (1-8).
    Recv(usize, RecvMode, usize),
    /// Drop the slot's subscriber (if any) and create a new one.
    Recreate(usize, Ctor),
    /// Drop the slot's subscriber.
    Drop(usize),
    /// `broker.close()`.
    Close,
    /// `channels(None)` or `channels(pattern)`.
    Channels(Option<Name>),
    /// `shard_channels(None)` or `shard_channels(pattern)`.
    ShardChannels(Option<Name>),
    /// `numsub`.
    Numsub(Vec<Name>),
    /// `shard_numsub`.
    ShardNumsub(Vec<Name>),
    /// `numpat`.
    Numpat,
    /// Everything a subscriber says about itself.
    Inspect(usize),
    /// Clone a broker handle (at most [`MAX_HANDLES`] are kept).
    CloneHandle,
    /// Drop a broker handle; dropping the last one closes the broker.
    DropHandle(usize),
}

/// Opcodes, in the order of the first byte of each encoded operation
/// (taken modulo the count).
const OPCODES: u8 = 20;

/// A decoded `broker_ops` input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Case {
    /// `BrokerBuilder::shards`.
    pub(crate) shards: usize,
    /// `BrokerBuilder::queue_capacity` (1-4).
    pub(crate) capacity: usize,
    /// `BrokerBuilder::overflow_policy`.
    pub(crate) policy: OverflowPolicy,
    /// The operations, run in order after [`SLOTS`] subscribers are created
    /// with `broker.subscriber()`.
    pub(crate) ops: Vec<Op>,
}

/// The shard counts a case can ask for.
const SHARDS: [usize; 4] = [1, 2, 4, 64];

/// The overflow policy a byte picks (by its value modulo 3).
fn policy_from(byte: u8) -> OverflowPolicy {
    match byte % 3 {
        0 => OverflowPolicy::DropOldest,
        1 => OverflowPolicy::DropNewest,
        _ => OverflowPolicy::Disconnect,
    }
}

/// The byte [`policy_from`] reads as `policy`.
fn policy_byte(policy: OverflowPolicy) -> u8 {
    match policy {
        OverflowPolicy::DropNewest => 1,
        OverflowPolicy::Disconnect => 2,
        _ => 0,
    }
}

/// Reads a `broker_ops` input byte by byte.
struct Reader<'a> {
    /// What is left.
    data: &'a [u8],
}

impl Reader<'_> {
    /// The next byte.
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.data.split_first()?;
        self.data = rest;
        Some(first)
    }

    /// Up to `n` next bytes (fewer at the end of the input).
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        taken
    }

    /// A slot index.
    fn slot(&mut self) -> Option<usize> {
        Some(usize::from(self.byte()?) % SLOTS)
    }

    /// A name: a byte below 0x80 picks an alphabet entry; 0x80-0xBF is
    /// followed by that many (`& 0x3F`) raw bytes; 0xC0-0xFF is followed by
    /// two alphabet picks, concatenated.
    fn name(&mut self) -> Option<Name> {
        let b = self.byte()?;
        Some(Name(match b {
            0x00..0x80 => alphabet(usize::from(b)),
            0x80..0xC0 => self.bytes(usize::from(b & 0x3F)).to_vec(),
            _ => {
                let mut name = alphabet(usize::from(self.byte()?));
                name.extend(alphabet(usize::from(self.byte()?)));
                name
            }
        }))
    }

    /// A count byte (modulo 5), then that many names.
    fn names(&mut self) -> Option<Vec<Name>> {
        let n = self.byte()? % 5;
        (0..n).map(|_| self.name()).collect()
    }

    /// A channel filter: a byte, even for none, odd for a name that
    /// follows.
    fn filter(&mut self) -> Option<Option<Name>> {
        Some(match self.byte()? % 2 {
            0 => None,
            _ => Some(self.name()?),
        })
    }

    /// One operation, or `None` at the end of the input.
    fn op(&mut self) -> Option<Op> {
        Some(match self.byte()? % OPCODES {
            0 => Op::Subscribe(self.slot()?, self.names()?),
            1 => Op::PSubscribe(self.slot()?, self.names()?),
            2 => Op::SSubscribe(self.slot()?, self.names()?),
            3 => Op::Unsubscribe(self.slot()?, self.names()?),
            4 => Op::PUnsubscribe(self.slot()?, self.names()?),
            5 => Op::SUnsubscribe(self.slot()?, self.names()?),
            6 => Op::Publish(self.name()?, 1),
            7 => Op::SPublish(self.name()?),
            8 => {
                let slot = self.slot()?;
                let b = self.byte()?;
                let mode = match (b >> 3) % 5 {
                    0 => RecvMode::Try,
                    1 => RecvMode::Timeout,
                    2 => RecvMode::Deadline,
                    3 => RecvMode::TryIter,
                    _ => RecvMode::Poll,
                };
                Op::Recv(slot, mode, usize::from(b & 7) + 1)
            }
            9 => {
                let slot = self.slot()?;
                let b = self.byte()?;
                let policy = policy_from((b >> 2) & 3);
                let ctor = match (b >> 4) % 3 {
                    0 => Ctor::Default,
                    1 => Ctor::With(policy),
                    _ => Ctor::Builder(usize::from(b & 3) + 1, policy),
                };
                Op::Recreate(slot, ctor)
            }
            10 => Op::Drop(self.slot()?),
            11 => Op::Close,
            12 => Op::Channels(self.filter()?),
            13 => Op::ShardChannels(self.filter()?),
            14 => Op::Numsub(self.names()?),
            15 => Op::ShardNumsub(self.names()?),
            16 => Op::Numpat,
            17 => Op::Inspect(self.slot()?),
            18 => match self.byte()? % 2 {
                0 => Op::CloneHandle,
                _ => Op::DropHandle(usize::from(self.byte()?)),
            },
            _ => Op::Publish(self.name()?, usize::from(self.byte()? % 8) + 1),
        })
    }
}

/// Decodes a `broker_ops` input; every byte string is a valid case.
///
/// The first byte configures the broker: shards from bits 0-1 (1, 2, 4 or
/// 64), queue capacity from bits 2-3 (1-4), overflow policy from bits 4-7
/// (modulo 3: drop-oldest, drop-newest, disconnect). Each operation is an
/// opcode byte (modulo 20) and its arguments: slot bytes (modulo 4), names
/// (see `Reader::name`), name lists (a count modulo 5, then names) and a
/// few parameter bytes. A truncated last operation is ignored.
pub(crate) fn decode_broker_ops(data: &[u8]) -> Case {
    let mut reader = Reader { data };
    let config = reader.byte().unwrap_or(0);
    let mut ops = Vec::new();
    while let Some(op) = reader.op() {
        ops.push(op);
    }
    Case {
        shards: SHARDS[usize::from(config & 3)],
        capacity: usize::from((config >> 2) & 3) + 1,
        policy: policy_from(config >> 4),
        ops,
    }
}

/// Appends the encoding of `name` (an alphabet index when it is in the
/// alphabet, else raw bytes).
///
/// # Panics
///
/// If `name` is neither in the alphabet nor at most 63 bytes long.
fn encode_name(out: &mut Vec<u8>, name: &Name) {
    if let Some(i) = (0..ALPHABET_LEN).find(|&i| alphabet(i) == name.0) {
        out.push(u8::try_from(i).expect("the alphabet has fewer than 128 entries"));
    } else {
        let len = u8::try_from(name.0.len())
            .ok()
            .filter(|&len| len < 0x40)
            .expect("a raw name of at most 63 bytes");
        out.push(0x80 | len);
        out.extend_from_slice(&name.0);
    }
}

/// Appends a name list.
///
/// # Panics
///
/// If the list has more than 4 names, or a name cannot be encoded.
fn encode_names(out: &mut Vec<u8>, names: &[Name]) {
    assert!(names.len() <= 4, "at most 4 names per list");
    out.push(names.len() as u8);
    for name in names {
        encode_name(out, name);
    }
}

/// Appends a slot byte.
fn encode_slot(out: &mut Vec<u8>, slot: usize) {
    assert!(slot < SLOTS, "slot {slot} out of range");
    out.push(slot as u8);
}

/// Encodes `case` so that [`decode_broker_ops`] gives it back.
///
/// # Panics
///
/// If the case has a value outside what the format can express (a shard
/// count not in 1/2/4/64, a capacity outside 1-4, a repeat or receive count
/// outside 1-8, a long raw name, more than 4 names in a list).
pub(crate) fn encode_broker_ops(case: &Case) -> Vec<u8> {
    let shards = SHARDS
        .iter()
        .position(|&s| s == case.shards)
        .expect("shards must be 1, 2, 4 or 64") as u8;
    assert!((1..=4).contains(&case.capacity), "capacity must be 1-4");
    let mut out = vec![shards | ((case.capacity as u8 - 1) << 2) | (policy_byte(case.policy) << 4)];
    for op in &case.ops {
        match op {
            Op::Subscribe(slot, names)
            | Op::PSubscribe(slot, names)
            | Op::SSubscribe(slot, names)
            | Op::Unsubscribe(slot, names)
            | Op::PUnsubscribe(slot, names)
            | Op::SUnsubscribe(slot, names) => {
                out.push(match op {
                    Op::Subscribe(..) => 0,
                    Op::PSubscribe(..) => 1,
                    Op::SSubscribe(..) => 2,
                    Op::Unsubscribe(..) => 3,
                    Op::PUnsubscribe(..) => 4,
                    _ => 5,
                });
                encode_slot(&mut out, *slot);
                encode_names(&mut out, names);
            }
            Op::Publish(name, 1) => {
                out.push(6);
                encode_name(&mut out, name);
            }
            Op::Publish(name, times) => {
                assert!((1..=8).contains(times), "publish repeats must be 1-8");
                out.push(19);
                encode_name(&mut out, name);
                out.push(*times as u8 - 1);
            }
            Op::SPublish(name) => {
                out.push(7);
                encode_name(&mut out, name);
            }
            Op::Recv(slot, mode, n) => {
                assert!((1..=8).contains(n), "receive counts must be 1-8");
                out.push(8);
                encode_slot(&mut out, *slot);
                let mode = match mode {
                    RecvMode::Try => 0,
                    RecvMode::Timeout => 1,
                    RecvMode::Deadline => 2,
                    RecvMode::TryIter => 3,
                    RecvMode::Poll => 4,
                };
                out.push((mode << 3) | (*n as u8 - 1));
            }
            Op::Recreate(slot, ctor) => {
                out.push(9);
                encode_slot(&mut out, *slot);
                out.push(match *ctor {
                    Ctor::Default => 0,
                    Ctor::With(policy) => (1 << 4) | (policy_byte(policy) << 2),
                    Ctor::Builder(capacity, policy) => {
                        assert!((1..=4).contains(&capacity), "capacity must be 1-4");
                        (2 << 4) | (policy_byte(policy) << 2) | (capacity as u8 - 1)
                    }
                });
            }
            Op::Drop(slot) => {
                out.push(10);
                encode_slot(&mut out, *slot);
            }
            Op::Close => out.push(11),
            Op::Channels(filter) | Op::ShardChannels(filter) => {
                out.push(if matches!(op, Op::Channels(_)) {
                    12
                } else {
                    13
                });
                match filter {
                    None => out.push(0),
                    Some(name) => {
                        out.push(1);
                        encode_name(&mut out, name);
                    }
                }
            }
            Op::Numsub(names) => {
                out.push(14);
                encode_names(&mut out, names);
            }
            Op::ShardNumsub(names) => {
                out.push(15);
                encode_names(&mut out, names);
            }
            Op::Numpat => out.push(16),
            Op::Inspect(slot) => {
                out.push(17);
                encode_slot(&mut out, *slot);
            }
            Op::CloneHandle => out.extend([18, 0]),
            Op::DropHandle(i) => out.extend([18, 1, (*i % 256) as u8]),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// broker_ops: running a case against tannoy and the model
// ---------------------------------------------------------------------------

/// The payload the fuzzed broker carries: the publish's number, and a count
/// of live payload values shared by every copy, so the end of a case can
/// check that every clone was dropped exactly once.
struct Tracked {
    /// Which publish (0, 1, 2, ...).
    id: u64,
    /// Payload values alive, across the whole case.
    live: Arc<AtomicIsize>,
}

impl Tracked {
    /// A new payload value, counted as live.
    fn new(id: u64, live: &Arc<AtomicIsize>) -> Self {
        live.fetch_add(1, Ordering::Relaxed);
        Self {
            id,
            live: Arc::clone(live),
        }
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        Self::new(self.id, &self.live)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Tracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "publish #{}", self.id)
    }
}

impl PublishId for Tracked {
    fn publish_id(&self) -> Option<u64> {
        Some(self.id)
    }
}

/// What one receive attempt gave.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Nothing queued, and the queue is open.
    Empty,
    /// Nothing queued, and the broker is closed.
    Closed,
    /// Nothing queued, and the subscriber was disconnected.
    Disconnected,
}

/// One receive attempt in `mode` (not `TryIter`).
fn receive_one(sub: &mut Subscriber<Tracked>, mode: RecvMode) -> Result<Message<Tracked>, Outcome> {
    let from_recv = |err| match err {
        RecvError::Closed => Outcome::Closed,
        RecvError::Disconnected => Outcome::Disconnected,
    };
    let from_timeout = |err| match err {
        RecvTimeoutError::Timeout => Outcome::Empty,
        RecvTimeoutError::Closed => Outcome::Closed,
        RecvTimeoutError::Disconnected => Outcome::Disconnected,
    };
    match mode {
        RecvMode::Try | RecvMode::TryIter => sub.try_recv().map_err(|err| match err {
            TryRecvError::Empty => Outcome::Empty,
            TryRecvError::Closed => Outcome::Closed,
            TryRecvError::Disconnected => Outcome::Disconnected,
        }),
        RecvMode::Timeout => sub.recv_timeout(Duration::ZERO).map_err(from_timeout),
        RecvMode::Deadline => sub.recv_deadline(Instant::now()).map_err(from_timeout),
        RecvMode::Poll => {
            let mut cx = Context::from_waker(Waker::noop());
            let mut recv = sub.recv_async();
            match std::pin::Pin::new(&mut recv).poll(&mut cx) {
                Poll::Ready(result) => result.map_err(from_recv),
                Poll::Pending => Err(Outcome::Empty),
            }
        }
    }
}

/// What the model says a receive from an empty queue reports.
fn empty_outcome(sub: &SubModel) -> Outcome {
    match sub.status {
        Status::Open => Outcome::Empty,
        Status::Closed => Outcome::Closed,
        Status::Disconnected => Outcome::Disconnected,
    }
}

/// Compares everything a subscriber says about itself with the model, and
/// formats it with `Debug` (which must not panic).
fn inspect(sub: &Subscriber<Tracked>, m: &SubModel) -> Result<(), String> {
    broker_model::inspect(sub, m)?;
    let _ = format!("{sub:?}");
    Ok(())
}

/// A case in progress: tannoy's side and the model's.
struct Run {
    /// Live broker handles; the first one is used for everything.
    handles: Vec<Broker<Tracked>>,
    /// Subscribers by slot.
    subs: Vec<Option<Subscriber<Tracked>>>,
    /// The model.
    model: Model,
    /// The broker's default queue capacity.
    capacity: usize,
    /// The broker's default overflow policy.
    policy: OverflowPolicy,
    /// Live payload values.
    live: Arc<AtomicIsize>,
}

impl Run {
    /// A broker configured as `case` says, with [`SLOTS`] subscribers made
    /// by `broker.subscriber()`.
    fn new(case: &Case) -> Self {
        let broker = BrokerBuilder::<Tracked>::new()
            .shards(case.shards)
            .queue_capacity(case.capacity)
            .overflow_policy(case.policy)
            .build();
        let subs = (0..SLOTS).map(|_| Some(broker.subscriber())).collect();
        let model =
            Model::new((0..SLOTS).map(|_| SubModel::new(case.capacity, case.policy, false)));
        Self {
            handles: vec![broker],
            subs,
            model,
            capacity: case.capacity,
            policy: case.policy,
            live: Arc::new(AtomicIsize::new(0)),
        }
    }

    /// Receives up to `n` messages from `slot` and compares them with the
    /// model.
    fn receive(&mut self, slot: usize, mode: RecvMode, n: usize) -> Result<(), String> {
        let (Some(sub), Some(m)) = (&mut self.subs[slot], &mut self.model.subs[slot]) else {
            return Ok(());
        };
        if mode == RecvMode::TryIter {
            let got: Vec<Message<Tracked>> = sub.try_iter().take(n).collect();
            ensure_eq!(
                got.len(),
                n.min(m.queue.len()),
                "try_iter().take({n}) count"
            );
            for msg in &got {
                let expected = m.queue.pop_front().expect("counted above");
                check_message(msg, &expected, &mut self.model.groups)?;
            }
            return Ok(());
        }
        for _ in 0..n {
            let got = receive_one(sub, mode);
            match (got, m.queue.pop_front()) {
                (Ok(msg), Some(expected)) => {
                    check_message(&msg, &expected, &mut self.model.groups)?;
                }
                (Err(outcome), None) => {
                    ensure_eq!(
                        outcome,
                        empty_outcome(m),
                        "{mode:?} receive from an empty queue"
                    );
                    break;
                }
                (Ok(msg), None) => {
                    return Err(format!(
                        "{mode:?} received {msg:?}; the model expects {:?}",
                        empty_outcome(m)
                    ));
                }
                (Err(outcome), Some(expected)) => {
                    return Err(format!(
                        "{mode:?} receive gave {outcome:?}; the model expects {expected:?}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Runs one operation on both sides and compares the results.
    fn step(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Subscribe(slot, names)
            | Op::PSubscribe(slot, names)
            | Op::SSubscribe(slot, names) => {
                let (Some(sub), Some(m)) = (&mut self.subs[*slot], &mut self.model.subs[*slot])
                else {
                    return Ok(());
                };
                let (got, space) = match op {
                    Op::Subscribe(..) => (sub.subscribe(names), Space::Channels),
                    Op::PSubscribe(..) => (sub.psubscribe(names), Space::Patterns),
                    _ => (sub.ssubscribe(names), Space::Shards),
                };
                ensure_eq!(got, m.subscribe(space, names), "returned count");
            }
            Op::Unsubscribe(slot, names)
            | Op::PUnsubscribe(slot, names)
            | Op::SUnsubscribe(slot, names) => {
                let (Some(sub), Some(m)) = (&mut self.subs[*slot], &mut self.model.subs[*slot])
                else {
                    return Ok(());
                };
                let (got, space) = match op {
                    Op::Unsubscribe(..) => (sub.unsubscribe(names), Space::Channels),
                    Op::PUnsubscribe(..) => (sub.punsubscribe(names), Space::Patterns),
                    _ => (sub.sunsubscribe(names), Space::Shards),
                };
                ensure_eq!(got, m.unsubscribe(space, names), "returned count");
            }
            Op::Publish(name, times) => {
                for _ in 0..*times {
                    self.publish(false, name)?;
                }
            }
            Op::SPublish(name) => self.publish(true, name)?,
            Op::Recv(slot, mode, n) => self.receive(*slot, *mode, *n)?,
            Op::Recreate(slot, ctor) => {
                let Some(broker) = self.handles.first() else {
                    return Ok(());
                };
                let (sub, capacity, policy) = match *ctor {
                    Ctor::Default => (broker.subscriber(), self.capacity, self.policy),
                    Ctor::With(policy) => (broker.subscriber_with(policy), self.capacity, policy),
                    Ctor::Builder(capacity, policy) => (
                        broker
                            .subscriber_builder()
                            .queue_capacity(capacity)
                            .overflow_policy(policy)
                            .build(),
                        capacity,
                        policy,
                    ),
                };
                self.subs[*slot] = Some(sub);
                self.model.subs[*slot] = Some(SubModel::new(capacity, policy, self.model.closed));
            }
            Op::Drop(slot) => {
                self.subs[*slot] = None;
                self.model.subs[*slot] = None;
            }
            Op::Close => {
                if let Some(broker) = self.handles.first() {
                    broker.close();
                    self.model.close();
                    ensure_eq!(broker.is_closed(), true, "is_closed() after close()");
                }
            }
            Op::Channels(filter) | Op::ShardChannels(filter) => {
                let Some(broker) = self.handles.first() else {
                    return Ok(());
                };
                let shard = matches!(op, Op::ShardChannels(_));
                let got = match (shard, filter) {
                    (false, None) => broker.channels(None),
                    (false, Some(p)) => broker.channels(&p.0),
                    (true, None) => broker.shard_channels(None),
                    (true, Some(p)) => broker.shard_channels(&p.0),
                };
                let listed = set(&got);
                ensure_eq!(got.len(), listed.len(), "names listed twice: {got:?}");
                ensure_eq!(
                    listed,
                    self.model
                        .channels(shard, filter.as_ref().map(|p| &p.0[..])),
                    "listed"
                );
            }
            Op::Numsub(names) | Op::ShardNumsub(names) => {
                let Some(broker) = self.handles.first() else {
                    return Ok(());
                };
                let shard = matches!(op, Op::ShardNumsub(_));
                let got: Vec<(Name, usize)> = if shard {
                    broker.shard_numsub(names)
                } else {
                    broker.numsub(names)
                }
                .into_iter()
                .map(|(name, n)| (Name(name.to_vec()), n))
                .collect();
                let want: Vec<(Name, usize)> = names
                    .iter()
                    .map(|name| (name.clone(), self.model.numsub(shard, &name.0)))
                    .collect();
                ensure_eq!(got, want, "counts");
            }
            Op::Numpat => {
                if let Some(broker) = self.handles.first() {
                    ensure_eq!(broker.numpat(), self.model.numpat(), "numpat()");
                }
            }
            Op::Inspect(slot) => {
                if let (Some(sub), Some(m)) = (&self.subs[*slot], &self.model.subs[*slot]) {
                    inspect(sub, m)?;
                }
                if let Some(broker) = self.handles.first() {
                    ensure_eq!(broker.is_closed(), self.model.closed, "is_closed()");
                    let _ = format!("{broker:?}");
                }
            }
            Op::CloneHandle => {
                if let Some(broker) = self.handles.first() {
                    if self.handles.len() < MAX_HANDLES {
                        let clone = broker.clone();
                        self.handles.push(clone);
                    }
                }
            }
            Op::DropHandle(i) => {
                if !self.handles.is_empty() {
                    let i = *i % self.handles.len();
                    drop(self.handles.remove(i));
                    if self.handles.is_empty() {
                        // The last handle closes the broker.
                        self.model.close();
                    }
                }
            }
        }
        Ok(())
    }

    /// One `publish` (or `spublish`) on both sides.
    fn publish(&mut self, shard: bool, name: &Name) -> Result<(), String> {
        let Some(broker) = self.handles.first() else {
            return Ok(());
        };
        let id = self.model.publishes;
        let payload = Tracked::new(id, &self.live);
        let got = if shard {
            broker.spublish(name, payload)
        } else {
            broker.publish(name, payload)
        };
        let want = self.model.publish(shard, &name.0);
        let what = if shard { "spublish" } else { "publish" };
        ensure_eq!(got, want, "{what} #{id} to {name:?}: receivers");
        Ok(())
    }

    /// The end of a case: every subscriber agrees with the model and drains
    /// what it expects; with every subscriber gone the broker holds nothing;
    /// with every handle gone no payload value is left alive.
    fn finish(mut self) -> Result<(), String> {
        for slot in 0..SLOTS {
            if let (Some(sub), Some(m)) = (&self.subs[slot], &self.model.subs[slot]) {
                inspect(sub, m).map_err(|e| format!("slot {slot} at the end: {e}"))?;
                let queued = m.queue.len();
                self.receive(slot, RecvMode::Try, queued + 1)
                    .map_err(|e| format!("slot {slot} draining at the end: {e}"))?;
            }
        }
        self.subs.clear();
        if let Some(broker) = self.handles.first() {
            ensure_eq!(
                broker.channels(None),
                Vec::<tannoy::Bytes>::new(),
                "channels with no subscribers"
            );
            ensure_eq!(
                broker.shard_channels(None),
                Vec::<tannoy::Bytes>::new(),
                "shard channels with no subscribers"
            );
            ensure_eq!(broker.numpat(), 0, "numpat() with no subscribers");
        }
        self.handles.clear();
        ensure_eq!(
            self.live.load(Ordering::Relaxed),
            0,
            "payload values alive once the broker and every subscriber are gone"
        );
        Ok(())
    }
}

/// Runs a decoded case against tannoy and the model.
///
/// # Errors
///
/// The first disagreement, with the index of the operation that showed it.
pub(crate) fn run_broker_ops(case: &Case) -> Result<(), String> {
    let mut run = Run::new(case);
    for (i, op) in case.ops.iter().enumerate() {
        run.step(op).map_err(|e| format!("op {i} {op:?}: {e}"))?;
    }
    run.finish()
}

/// The `broker_ops` check: decodes `data` and runs it against tannoy and
/// the model.
///
/// # Panics
///
/// On any disagreement, with the decoded case.
pub(crate) fn check_broker_ops(data: &[u8]) {
    let case = decode_broker_ops(data);
    if let Err(err) = run_broker_ops(&case) {
        panic!("tannoy disagrees with the model: {err}\ncase: {case:#?}");
    }
}
