//! tannoy: an in-process publish/subscribe broker with Redis pub/sub semantics.

#![forbid(unsafe_code)]

mod broker;
mod error;
mod message;
mod pattern;
mod queue;
mod shard;
mod subscriber;
mod sync;

pub use broker::{
    Broker, BrokerBuilder, ChannelFilter, DEFAULT_QUEUE_CAPACITY, DEFAULT_SHARDS, MAX_SHARDS,
};
pub use bytes::Bytes;
pub use error::{RecvError, RecvTimeoutError, TryRecvError};
pub use message::{Message, MessageKind};
pub use pattern::{Pattern, glob_match};
pub use queue::OverflowPolicy;
pub use subscriber::{Iter, Recv, Subscriber, TryIter};
