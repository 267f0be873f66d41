//! `SUBSCRIBE`, `UNSUBSCRIBE`, `PSUBSCRIBE`, `PUNSUBSCRIBE`, `SSUBSCRIBE`,
//! `SUNSUBSCRIBE`, `PUBLISH`, `SPUBLISH` and `PUBSUB`: the engine's
//! operations, with Redis's confirmations.
//!
//! # Ordering against messages
//!
//! The connection moves every waiting message into the output before it
//! runs a command, so a command's replies follow every message delivered
//! before it ran. Beyond that:
//!
//! * A subscribe command subscribes every argument, then writes its
//!   confirmations: messages published after it ran come after all of them.
//! * An unsubscribe command unsubscribes every argument, moves the messages
//!   that arrived meanwhile into the output, then confirms: messages queued
//!   before the unsubscription precede its confirmation, and nothing arrives
//!   through that subscription after it.
//! * `PUBLISH` moves the messages it queued to the publishing client itself
//!   into the output before its reply, so a RESP3 client publishing to its
//!   own channel gets the push before the integer, as Redis 7.0 sends them.

use bytes::Bytes;
use tannoy::Subscriber;

use super::{CONTAINER, Command, help, is, subcommand_syntax_error};
use crate::session::Session;

/// `SUBSCRIBE channel [channel ...]`, whose flags and categories every
/// subscribe and unsubscribe command shares.
pub(super) const SUBSCRIBE: Command = Command {
    name: "subscribe",
    arity: -2,
    flags: &["pubsub", "noscript", "loading", "stale"],
    keys: (0, 0, 0),
    acl: &["@pubsub", "@slow"],
    tips: &[],
    group: "pubsub",
    since: "2.0.0",
    summary: "Receive the messages published to these channels",
    run: subscribe,
    subcommands: &[],
};

/// `UNSUBSCRIBE [channel ...]`: in Redis's table as `SUBSCRIBE`, but with no
/// argument needed.
pub(super) const UNSUBSCRIBE: Command = Command {
    name: "unsubscribe",
    arity: -1,
    summary: "Stop receiving from these channels, or from every channel",
    run: unsubscribe,
    ..SUBSCRIBE
};

/// `PSUBSCRIBE pattern [pattern ...]`: in Redis's table as `SUBSCRIBE`.
pub(super) const PSUBSCRIBE: Command = Command {
    name: "psubscribe",
    summary: "Receive the messages published to channels matching these glob patterns",
    run: psubscribe,
    ..SUBSCRIBE
};

/// `PUNSUBSCRIBE [pattern ...]`: in Redis's table as `UNSUBSCRIBE`.
pub(super) const PUNSUBSCRIBE: Command = Command {
    name: "punsubscribe",
    summary: "Stop receiving through these patterns, or through every pattern",
    run: punsubscribe,
    ..UNSUBSCRIBE
};

/// `SSUBSCRIBE shardchannel [shardchannel ...]`: in Redis's table as
/// `SUBSCRIBE`, but its arguments are keys (for cluster routing) and it came
/// with 7.0.
pub(super) const SSUBSCRIBE: Command = Command {
    name: "ssubscribe",
    keys: (1, -1, 1),
    since: "7.0.0",
    summary: "Receive the messages published to these shard channels",
    run: ssubscribe,
    ..SUBSCRIBE
};

/// `SUNSUBSCRIBE [shardchannel ...]`: in Redis's table as `SSUBSCRIBE`, but
/// with no argument needed.
pub(super) const SUNSUBSCRIBE: Command = Command {
    name: "sunsubscribe",
    arity: -1,
    summary: "Stop receiving from these shard channels, or from every one",
    run: sunsubscribe,
    ..SSUBSCRIBE
};

/// `PUBLISH channel message`.
pub(super) const PUBLISH: Command = Command {
    name: "publish",
    arity: 3,
    flags: &["pubsub", "loading", "stale", "fast"],
    keys: (0, 0, 0),
    acl: &["@pubsub", "@fast"],
    tips: &[],
    group: "pubsub",
    since: "2.0.0",
    summary: "Send a message to a channel's subscribers and matching patterns",
    run: publish,
    subcommands: &[],
};

/// `SPUBLISH shardchannel message`: in Redis's table as `PUBLISH`, but its
/// channel is a key and it came with 7.0.
pub(super) const SPUBLISH: Command = Command {
    name: "spublish",
    keys: (1, 1, 1),
    since: "7.0.0",
    summary: "Send a message to a shard channel's subscribers",
    run: spublish,
    ..PUBLISH
};

/// `PUBSUB CHANNELS [pattern]`, whose flags and categories every `PUBSUB`
/// introspection subcommand shares.
const PUBSUB_CHANNELS: Command = Command {
    name: "pubsub|channels",
    arity: -2,
    flags: &["pubsub", "loading", "stale"],
    keys: (0, 0, 0),
    acl: &["@pubsub", "@slow"],
    tips: &[],
    group: "pubsub",
    since: "2.8.0",
    summary: "List the active channels, or those matching a pattern",
    run: pubsub_channels,
    subcommands: &[],
};

/// `PUBSUB SHARDCHANNELS [pattern]`, which came with 7.0.
const PUBSUB_SHARDCHANNELS: Command = Command {
    name: "pubsub|shardchannels",
    since: "7.0.0",
    summary: "List the active shard channels, or those matching a pattern",
    run: pubsub_shardchannels,
    ..PUBSUB_CHANNELS
};

/// `PUBSUB <subcommand>`.
pub(super) const PUBSUB: Command = Command {
    name: "pubsub",
    group: "pubsub",
    since: "2.8.0",
    summary: "Pub/sub introspection",
    subcommands: &[
        PUBSUB_CHANNELS,
        Command {
            name: "pubsub|numsub",
            summary: "Count the exact subscribers of channels",
            run: pubsub_numsub,
            ..PUBSUB_CHANNELS
        },
        Command {
            name: "pubsub|numpat",
            arity: 2,
            summary: "Count the distinct patterns subscribed",
            run: pubsub_numpat,
            ..PUBSUB_CHANNELS
        },
        PUBSUB_SHARDCHANNELS,
        Command {
            name: "pubsub|shardnumsub",
            summary: "Count the subscribers of shard channels",
            run: pubsub_shardnumsub,
            ..PUBSUB_SHARDCHANNELS
        },
        Command {
            name: "pubsub|help",
            arity: 2,
            flags: &["loading", "stale"],
            acl: &["@slow"],
            since: "6.2.0",
            summary: "Show the PUBSUB subcommands",
            run: pubsub_help,
            ..PUBSUB_CHANNELS
        },
    ],
    ..CONTAINER
};

/// The three namespaces of Redis's pub/sub: each has its own subscribe,
/// unsubscribe, publish and listing commands, which otherwise behave alike.
#[derive(Clone, Copy)]
enum Namespace {
    /// `SUBSCRIBE`, `UNSUBSCRIBE`, `PUBLISH`, `PUBSUB CHANNELS`.
    Channel,
    /// `PSUBSCRIBE`, `PUNSUBSCRIBE`.
    Pattern,
    /// `SSUBSCRIBE`, `SUNSUBSCRIBE`, `SPUBLISH`, `PUBSUB SHARDCHANNELS`.
    Shard,
}

impl Namespace {
    /// Subscribes to `name` in this namespace; the count to confirm.
    fn subscribe(self, subscriber: &Subscriber, name: &Bytes) -> usize {
        match self {
            Namespace::Channel => subscriber.subscribe([name]),
            Namespace::Pattern => subscriber.psubscribe([name]),
            Namespace::Shard => subscriber.ssubscribe([name]),
        }
    }

    /// Unsubscribes from `name` in this namespace; the count to confirm.
    fn unsubscribe(self, subscriber: &Subscriber, name: &Bytes) -> usize {
        match self {
            Namespace::Channel => subscriber.unsubscribe([name]),
            Namespace::Pattern => subscriber.punsubscribe([name]),
            Namespace::Shard => subscriber.sunsubscribe([name]),
        }
    }
}

/// The shared body of the three subscribe commands: subscribes every
/// argument, then confirms each with `kind` (the command's name).
fn subscribe_in(session: &mut Session, args: &[Bytes], namespace: Namespace, kind: &str) {
    let counts: Vec<usize> = {
        let subscriber = &*session.handle.subscriber();
        args[1..]
            .iter()
            .map(|name| namespace.subscribe(subscriber, name))
            .collect()
    };
    if let Namespace::Pattern = namespace {
        for pattern in &args[1..] {
            session.patterns.insert(pattern);
        }
    }
    for (name, count) in args[1..].iter().zip(counts) {
        session.out.confirmation(kind, Some(name), count);
    }
    session.subscribed = true;
}

/// `SUBSCRIBE`.
fn subscribe(session: &mut Session, args: &[Bytes]) {
    subscribe_in(session, args, Namespace::Channel, "subscribe");
}

/// `PSUBSCRIBE`.
fn psubscribe(session: &mut Session, args: &[Bytes]) {
    subscribe_in(session, args, Namespace::Pattern, "psubscribe");
}

/// `SSUBSCRIBE`.
fn ssubscribe(session: &mut Session, args: &[Bytes]) {
    if session.in_exec {
        // Redis refuses it inside a transaction (a "deny blocking" client),
        // unlike SUBSCRIBE and PSUBSCRIBE, which it lets through.
        session
            .out
            .err("SSUBSCRIBE isn't allowed for a DENY BLOCKING client");
        return;
    }
    subscribe_in(session, args, Namespace::Shard, "ssubscribe");
}

/// The shared body of the three unsubscribe commands.
fn unsubscribe_in(session: &mut Session, args: &[Bytes], namespace: Namespace, kind: &str) {
    let confirmations: Vec<(Option<Bytes>, usize)> = {
        let subscriber = &*session.handle.subscriber();
        let names = if args.len() > 1 {
            args[1..].to_vec()
        } else {
            match namespace {
                Namespace::Channel => subscriber.subscribed_channels(),
                Namespace::Pattern => session.patterns.all(),
                Namespace::Shard => subscriber.subscribed_shard_channels(),
            }
        };
        if names.is_empty() {
            let count = match namespace {
                Namespace::Shard => subscriber.shard_subscription_count(),
                _ => subscriber.subscription_count(),
            };
            vec![(None, count)]
        } else {
            names
                .into_iter()
                .map(|name| {
                    let count = namespace.unsubscribe(subscriber, &name);
                    (Some(name), count)
                })
                .collect()
        }
    };
    if let Namespace::Pattern = namespace {
        for (name, _) in &confirmations {
            if let Some(name) = name {
                session.patterns.remove(name);
            }
        }
    }
    session.forward_all();
    for (name, count) in &confirmations {
        session.out.confirmation(kind, name.as_deref(), *count);
    }
    session.refresh_subscribed();
}

/// `UNSUBSCRIBE`.
fn unsubscribe(session: &mut Session, args: &[Bytes]) {
    unsubscribe_in(session, args, Namespace::Channel, "unsubscribe");
}

/// `PUNSUBSCRIBE`.
fn punsubscribe(session: &mut Session, args: &[Bytes]) {
    unsubscribe_in(session, args, Namespace::Pattern, "punsubscribe");
}

/// `SUNSUBSCRIBE`.
fn sunsubscribe(session: &mut Session, args: &[Bytes]) {
    unsubscribe_in(session, args, Namespace::Shard, "sunsubscribe");
}

/// The shared body of `PUBLISH` and `SPUBLISH`: the messages queued to the
/// publishing client itself go out before the count (see the module docs).
fn publish_in(session: &mut Session, args: &[Bytes], namespace: Namespace) {
    let broker = &session.shared.broker;
    let receivers = match namespace {
        Namespace::Shard => broker.spublish(&args[1], args[2].clone()),
        _ => broker.publish(&args[1], args[2].clone()),
    };
    session.forward_all();
    session.out.integer(receivers as i64);
}

/// `PUBLISH`.
fn publish(session: &mut Session, args: &[Bytes]) {
    publish_in(session, args, Namespace::Channel);
}

/// `SPUBLISH`.
fn spublish(session: &mut Session, args: &[Bytes]) {
    publish_in(session, args, Namespace::Shard);
}

/// The shared body of `PUBSUB CHANNELS` and `PUBSUB SHARDCHANNELS`.
fn channels_in(session: &mut Session, args: &[Bytes], namespace: Namespace) {
    let broker = &session.shared.broker;
    let pattern = match args.len() {
        2 => None,
        3 => Some(&args[2]),
        _ => return subcommand_syntax_error(session, args),
    };
    let channels = match namespace {
        Namespace::Shard => broker.shard_channels(&pattern),
        _ => broker.channels(&pattern),
    };
    session.out.array(channels.len());
    for channel in &channels {
        session.out.bulk(channel);
    }
}

/// `PUBSUB CHANNELS [pattern]`.
fn pubsub_channels(session: &mut Session, args: &[Bytes]) {
    channels_in(session, args, Namespace::Channel);
}

/// `PUBSUB SHARDCHANNELS [pattern]`.
fn pubsub_shardchannels(session: &mut Session, args: &[Bytes]) {
    channels_in(session, args, Namespace::Shard);
}

/// Replies with `NUMSUB`-style pairs.
fn counts(session: &mut Session, pairs: &[(Bytes, usize)]) {
    session.out.array(pairs.len() * 2);
    for (name, count) in pairs {
        session.out.bulk(name);
        session.out.integer(*count as i64);
    }
}

/// `PUBSUB NUMSUB [channel ...]`.
fn pubsub_numsub(session: &mut Session, args: &[Bytes]) {
    let pairs = session.shared.broker.numsub(&args[2..]);
    counts(session, &pairs);
}

/// `PUBSUB SHARDNUMSUB [shardchannel ...]`.
fn pubsub_shardnumsub(session: &mut Session, args: &[Bytes]) {
    let pairs = session.shared.broker.shard_numsub(&args[2..]);
    counts(session, &pairs);
}

/// `PUBSUB NUMPAT`.
fn pubsub_numpat(session: &mut Session, _args: &[Bytes]) {
    let n = session.shared.broker.numpat();
    session.out.integer(n as i64);
}

/// `PUBSUB HELP`.
fn pubsub_help(session: &mut Session, args: &[Bytes]) {
    if !is(&args[1], "help") {
        return subcommand_syntax_error(session, args);
    }
    help(
        session,
        args,
        &[
            "CHANNELS [<pattern>]",
            "    List the channels with at least one subscriber, all or those matching <pattern>.",
            "NUMPAT",
            "    Count the distinct patterns subscribed to.",
            "NUMSUB [<channel> ...]",
            "    Count each channel's subscribers, not counting pattern subscriptions.",
            "SHARDCHANNELS [<pattern>]",
            "    List the shard channels with at least one subscriber.",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Count each shard channel's subscribers.",
        ],
    );
}
