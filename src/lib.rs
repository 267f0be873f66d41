//! An embeddable, in-process publish/subscribe engine with Redis pub/sub
//! semantics.
//!
//! Components publish to named channels without knowing who listens;
//! subscribers receive what was published to the channels they hold, or to
//! channels matching their glob patterns. Everything Redis's `PUBLISH`,
//! `SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE`, their unsubscribe forms and
//! `PUBSUB` introspection do, tannoy does the same way, inside one process,
//! with no server and no networking. That makes it both a fast in-process
//! event bus and a faithful stand-in for Redis in tests.
//!
//! ```
//! use tannoy::{Broker, MessageKind};
//!
//! let broker = Broker::new();                  // a cheap, cloneable handle
//! let analyzer = broker.subscriber();      // one Redis "connection"
//! analyzer.subscribe(["conversations:new"]);
//! let monitor = broker.subscriber();
//! monitor.psubscribe(["conversations:*", "ai:*"]);
//!
//! let receivers = broker.publish("conversations:new", "Where is my order?");
//! assert_eq!(receivers, 2);                    // what Redis's PUBLISH returns
//!
//! let msg = analyzer.recv()?;                  // blocking; also try_recv, recv_timeout, iter, async
//! assert_eq!((msg.kind(), msg.payload()), (MessageKind::Message, &"Where is my order?".into()));
//! let msg = monitor.recv()?;
//! assert_eq!(msg.pattern().unwrap(), "conversations:*");
//!
//! assert_eq!(broker.numsub(["conversations:new"])[0].1, 1);
//! assert_eq!(broker.numpat(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Channels and patterns
//!
//! A [`Subscriber`] holds three separate sets, as a Redis client does:
//! exact channels ([`subscribe`](Subscriber::subscribe)), glob patterns
//! ([`psubscribe`](Subscriber::psubscribe)) and shard channels
//! ([`ssubscribe`](Subscriber::ssubscribe)). Names are binary-safe byte
//! strings (anything `AsRef<[u8]>`); the empty name is valid.
//!
//! [`Broker::publish`] queues one [`Message`] for every subscriber holding
//! the channel, plus one for every pattern a subscriber holds that matches
//! it, and returns that number. A subscriber holding the channel and `k`
//! matching patterns receives `1 + k` messages: first the exact one, then
//! the pattern ones (in no particular order among themselves, as in Redis).
//! [`Broker::spublish`] reaches shard subscribers only; patterns never
//! match shard channels.
//!
//! Subscribing twice to a name changes nothing; unsubscribing a name not
//! held is harmless; unsubscribing with an empty list drops every name of
//! that kind. Each call returns the subscription count Redis would report.
//! Dropping a `Subscriber` unsubscribes it from everything at once.
//!
//! Payloads are generic: `Broker<P = Bytes>` carries any
//! `P: Clone + Send + Sync + 'static`. Subscribers reached by the same
//! delivery share one copy of `P`: a publish clones it at most once per kind
//! of delivery (the channel, and each matching pattern), never per
//! subscriber, and a payload's bytes are never copied.
//!
//! # Pattern syntax
//!
//! Patterns are Redis globs, matched byte by byte (never by UTF-8
//! character), case-sensitively, anchored at both ends. Every byte string is
//! a valid pattern; malformed constructs have the meaning Redis gives them.
//!
//! | element | matches |
//! |---|---|
//! | `*` | any run of bytes, including none; consecutive `*`s act as one |
//! | `?` | exactly one byte |
//! | `[abc]` | one byte from the set; `[^abc]` one byte not in it |
//! | `[a-z]` | one byte in the range; reversed ranges (`[z-a]`) are swapped |
//! | `\x` | the byte `x` literally, whatever it is (`\*`, `\?`, `\[`, `\\`) |
//! | any other byte | itself |
//!
//! The corners, all as Redis 7 answers them:
//!
//! * The empty channel is matched only by the empty pattern: `*` does not
//!   match it.
//! * In a class, `]` right after `[` (or `[^`) closes it: `[]` never
//!   matches, `[^]` matches any single byte. `!` is not a negation. A class
//!   with no closing `]` runs to the end of the pattern: `[abc` matches `b`,
//!   and a lone `[` at the end never matches.
//! * In a class, `X-Y` is a range whenever a byte follows the `-`, even `]`
//!   or `\`: `[a-]` is the range `]`..`a`. Range ends are compared as
//!   **signed** bytes (as Redis on x86-64), so bytes 0x80–0xFF sort below
//!   0x00: `[\x00-\xff]` matches only 0x00 and 0xFF.
//! * A backslash that is the last byte of the pattern (or of an unterminated
//!   class) is a literal backslash.
//! * `{a,b}`, `**/`, `/`, `.`, `+(..)` have no special meaning.
//! * A pattern whose matching would expand more than 1000 star runs never
//!   matches (Redis's CVE-2024-31228 limit).
//!
//! [`glob_match`] is the reference implementation of these rules and
//! [`Pattern`] a compiled form of one pattern; both answer exactly as Redis.
//!
//! # Untrusted patterns
//!
//! Channel names and patterns may come from untrusted clients. No input
//! panics, there is no backtracking blow-up (`*a*a*a*a*a*a*b` against a
//! long channel costs one pass over it), and there is no size limit beyond
//! memory, as in Redis. What a pattern costs:
//!
//! * **Subscribing** parses and compiles the pattern before the pattern
//!   index's lock is taken, in time linear in its length (20–80 ms for
//!   1 MiB). Publishers wait only for the insert itself: a hash of the
//!   pattern and one tree path. The compiled form holds at most about four
//!   bytes per pattern byte (0 to 2.2 for the shapes measured), plus a few
//!   KiB.
//! * **Matching** a pattern against an `n`-byte channel costs a constant
//!   per channel byte for literal runs, `?`, classes and stars, so it is
//!   linear for nearly every pattern. The exception is a run of `m`
//!   elements between two stars that mixes literals with `?` or classes
//!   (`*a?c?e*`): it is searched bit-parallel, 64 elements per machine
//!   word, at up to ⌈m / 64⌉ word operations per channel byte while many
//!   partial matches stay alive. A run longer than the channel is never
//!   searched, so one pattern costs at most about n² / 64 word operations,
//!   however long it is. Measured worst cases (`*` + `a?` × `k` + `b*`
//!   against `n` × `a`, release build, `benches/pattern_index.rs`): 17 µs
//!   for a 1 KiB channel, 0.6 ms for 16 KiB, 3.6 ms for 32 KiB and 53 ms
//!   for 128 KiB. Redis's own matcher is O(pattern × channel): for a 1 KiB
//!   and a 4 KiB channel [`glob_match`], which follows it, takes 0.56 ms
//!   and 6.8 ms where the compiled pattern takes 17 µs and 64 µs.
//!
//! A publish matches under the pattern index's read lock, which a
//! subscribing thread waits for, and publishers wait behind that thread in
//! turn. So when untrusted clients choose both patterns and channel
//! names, bound the channel length too: every pattern then costs a publish
//! microseconds at 1 KiB and at most milliseconds at 32 KiB.
//!
//! # Backpressure
//!
//! Each subscriber receives through one bounded queue
//! ([`BrokerBuilder::queue_capacity`], 1024 messages by default; see
//! *Trade-offs* for how it is stored). `publish` never blocks or waits for
//! a subscriber: when a queue is full, its [`OverflowPolicy`] decides what
//! to lose. The default, [`OverflowPolicy::DropOldest`], drops the oldest
//! queued message, so a slow subscriber never holds up publishers, memory
//! stays bounded, and the subscriber sees the most recent messages.
//!
//! Loss is never silent. [`Subscriber::dropped`] counts every discarded
//! message, and [`Message::seq`] numbers every message addressed to a
//! subscriber, so a jump in `seq` shows exactly where messages were lost and
//! how many. For every subscriber, messages addressed to it = messages
//! received + `dropped()` + messages still queued.
//!
//! ```
//! let broker = tannoy::Broker::builder().queue_capacity(3).build();
//! let slow = broker.subscriber();
//! slow.subscribe(["ticks"]);
//! for i in 0..10 {
//!     broker.publish("ticks", i.to_string());   // never blocks
//! }
//! let first = slow.try_recv()?;
//! assert_eq!((first.seq(), first.payload()), (7, &"7".into()));
//! assert_eq!(slow.dropped(), 7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Ordering and hand-off
//!
//! * When `publish` returns, the message is already in every receiving
//!   subscriber's queue: a `try_recv` right after sees it, just as Redis has
//!   written a message to every client's buffer before it replies.
//! * Messages published by one thread reach every subscriber in publish
//!   order, across channels and patterns.
//! * Messages published to one channel, by any threads, reach all of its
//!   subscribers in the same order.
//! * A subscriber receives only what was published after its subscribe call
//!   returned; after an unsubscribe call returns, nothing more arrives
//!   through that subscription (messages queued before it stay queued).
//!
//! # Async
//!
//! [`Subscriber::recv_async`] and the [`Stream`](futures_core::Stream)
//! implementation are woken directly by publishers: no polling, no helper
//! threads, no particular runtime. Both are cancellation-safe.
//!
//! # Shutdown
//!
//! [`Broker::close`], or dropping the last [`Broker`] handle, ends every
//! subscriber once its queue is drained: `recv` returns
//! [`RecvError::Closed`], `iter()` and streams end. Publishing to a closed
//! broker returns 0. [`Broker::closed`] is a future that completes at that
//! moment, and a [`WeakBroker`] refers to a broker without keeping it
//! open.
//!
//! # Differences from Redis
//!
//! * **Slow subscribers.** Redis disconnects a subscriber whose output
//!   buffer passes `client-output-buffer-limit` (32 MiB by default), losing
//!   its subscriptions and everything buffered. tannoy by default keeps the
//!   subscriber and drops its oldest queued messages, counting them.
//!   [`OverflowPolicy::Disconnect`] reproduces Redis's behaviour (by message
//!   count rather than bytes) for code that must handle reconnects.
//! * **Global order.** Redis runs one command at a time, so all subscribers
//!   see all publishes in one global order. tannoy gives every subscriber
//!   one channel's messages in the same order (publishes to a channel are
//!   serialised), and each publishing thread's messages in publish order;
//!   but messages published *concurrently* by different threads to
//!   *different* channels may interleave differently at different
//!   subscribers.
//! * **No protocol.** There is no RESP, `PING`, `RESET`, subscribed-mode
//!   gate or confirmation frames: subscribe calls return their count
//!   directly, and `Message` carries what a push frame would.
//!
//! # Trade-offs
//!
//! **Storage.** A publish stores its message once per kind of delivery
//! (the channel, and each matching pattern), in that channel's or
//! pattern's *feed*, however many subscribers it reaches; each subscriber
//! with the default policy reads the feeds it holds through its own
//! cursors and merges them into one stream (by a broker-wide stamp, which
//! is what keeps each publishing thread's order across channels). Fan-out
//! therefore costs the publisher O(1) per kind of delivery, and each
//! receiver one reference-count increment. A subscriber with
//! [`OverflowPolicy::DropNewest`] or [`OverflowPolicy::Disconnect`] has a
//! queue of its own instead, because its policy must be applied when the
//! message is published; the publish pushes a reference into each such
//! queue.
//!
//! **Memory.** A feed keeps an entry until every cursor has passed it, and
//! never more entries than the largest capacity of any subscriber it has
//! had: a subscriber that stops reading holds at most `capacity` messages
//! per channel or pattern it holds (a queue of its own holds at most
//! `capacity` in all), and costs publishers nothing more. What it holds
//! beyond its capacity counts as dropped, exactly as a drop-oldest queue
//! would have dropped it.
//!
//! **Locks.** A publish locks one of the channel registry's shards (chosen
//! by the channel's hash) and, while any pattern is subscribed, takes a
//! read lock on the pattern index; then it locks each receiving feed for
//! the time of an append. Subscribing takes the same shard lock or the
//! index's write lock. A receive locks its subscriber's reader and, once
//! per batch of entries, the feed it reads. This favours many publishers
//! on different channels, one order per channel and exactly counted
//! delivery over wait-free progress: a publisher can wait briefly on a
//! lock, but never for a subscriber.
//!
//! **User code never runs under a broker lock.** A payload's `Clone`
//! (called once per kind of delivery, before any lock is taken) and
//! `Drop`, and a task's `Waker`, may call back into the broker: publish,
//! subscribe, even drop the last handle. Evicted, dropped and released
//! messages are dropped, and waiting receivers woken, only after every
//! lock is released.
//!
//! **Payload ownership.** A message lives only as long as some receiver
//! still holds it: once every subscriber it reached has received (or
//! dropped) it, nothing in the broker keeps it, so a payload that holds a
//! [`Broker`] handle cannot keep the broker open, and
//! [`Message::into_payload`] hands a sole receiver the payload without a
//! clone. A payload that must refer back to its broker without keeping it
//! open can hold a [`WeakBroker`].

#![forbid(unsafe_code)] // Lifting this would need a benchmark showing the win, and a miri job.
#![doc(test(attr(deny(warnings))))]

mod broker;
mod builder;
mod closed;
mod delivery;
mod endpoint;
mod error;
mod feed;
mod filter;
mod interest;
#[cfg(test)]
mod interleave;
mod message;
mod pattern;
mod payload;
mod queue;
mod reader;
mod registry;
mod shard;
mod signal;
mod subscriber;
mod sync;
mod weak;

pub use broker::Broker;
pub use builder::{
    BrokerBuilder, DEFAULT_QUEUE_CAPACITY, DEFAULT_SHARDS, MAX_SHARDS, SubscriberBuilder,
};
pub use bytes::Bytes;
pub use closed::Closed;
pub use error::{RecvError, RecvTimeoutError, TryRecvError};
pub use filter::ChannelFilter;
pub use interest::{InterestChange, InterestKind, InterestWatch};
pub use message::{Message, MessageKind};
pub use pattern::{Pattern, glob_match};
pub use payload::IntoPayload;
pub use queue::OverflowPolicy;
pub use subscriber::{Iter, Recv, RecvMany, Subscriber, TryIter};
pub use weak::WeakBroker;
