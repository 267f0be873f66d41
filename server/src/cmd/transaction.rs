//! `MULTI`, `EXEC`, `DISCARD`, `WATCH` and `UNWATCH`: transactions, so that
//! clients which wrap publishes in one (redis-py's default pipeline,
//! redis-rs's atomic pipelines) work unchanged.
//!
//! There are no keys, so a watched key never changes and `EXEC` never
//! fails for that reason. As in Redis 7.0, a command with an error when it
//! is queued makes `EXEC` abort, and the replies of the queued commands
//! are written one after another behind the array header, so pushes a
//! command causes (a RESP3 client publishing to itself, or a multi-channel
//! `SUBSCRIBE`) land inside `EXEC`'s array exactly as Redis 7.0 puts them
//! there.

use bytes::Bytes;

use super::{Command, run_queued};
use crate::session::{Session, Transaction};

/// `MULTI`, whose flags, categories and group the other transaction
/// commands share (`EXEC` all but the flags and categories).
pub(super) const MULTI: Command = Command {
    name: "multi",
    arity: 1,
    flags: &["noscript", "loading", "stale", "fast", "allow_busy"],
    keys: (0, 0, 0),
    acl: &["@fast", "@transaction"],
    tips: &[],
    group: "transactions",
    since: "1.2.0",
    summary: "Start queuing a transaction",
    run: multi,
    subcommands: &[],
};

/// `EXEC`.
pub(super) const EXEC: Command = Command {
    name: "exec",
    flags: &["noscript", "loading", "stale", "skip_slowlog"],
    acl: &["@slow", "@transaction"],
    summary: "Run the queued transaction",
    run: exec,
    ..MULTI
};

/// `DISCARD`.
pub(super) const DISCARD: Command = Command {
    name: "discard",
    since: "2.0.0",
    summary: "Drop the queued transaction",
    run: discard,
    ..MULTI
};

/// `WATCH key [key ...]`.
pub(super) const WATCH: Command = Command {
    name: "watch",
    arity: -2,
    keys: (1, -1, 1),
    since: "2.2.0",
    summary: "Accepted: keys never change here",
    run: watch,
    ..MULTI
};

/// `UNWATCH`.
pub(super) const UNWATCH: Command = Command {
    name: "unwatch",
    since: "2.2.0",
    summary: "Accepted: keys never change here",
    run: unwatch,
    ..MULTI
};

/// `MULTI`.
fn multi(session: &mut Session, _args: &[Bytes]) {
    if session.multi.is_some() {
        return session.out.err("MULTI calls can not be nested");
    }
    session.multi = Some(Transaction::default());
    session.out.ok();
}

/// `EXEC`.
fn exec(session: &mut Session, _args: &[Bytes]) {
    let Some(transaction) = session.multi.take() else {
        return session.out.err("EXEC without MULTI");
    };
    if transaction.failed {
        return session
            .out
            .error(b"EXECABORT Transaction discarded because of previous errors.");
    }
    session.out.array(transaction.queued.len());
    session.in_exec = true;
    for args in &transaction.queued {
        run_queued(session, args);
    }
    session.in_exec = false;
    session.last_command = "exec";
}

/// `DISCARD`.
fn discard(session: &mut Session, _args: &[Bytes]) {
    if session.multi.take().is_none() {
        return session.out.err("DISCARD without MULTI");
    }
    session.out.ok();
}

/// `WATCH`.
fn watch(session: &mut Session, _args: &[Bytes]) {
    if session.multi.is_some() {
        return session.out.err("WATCH inside MULTI is not allowed");
    }
    session.out.ok();
}

/// `UNWATCH`.
fn unwatch(session: &mut Session, _args: &[Bytes]) {
    session.out.ok();
}
