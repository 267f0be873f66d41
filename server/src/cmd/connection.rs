//! `PING`, `ECHO`, `HELLO`, `AUTH`, `SELECT`, `QUIT` and `RESET`: the
//! connection's own state.

use bytes::Bytes;

use super::{Command, arity_error, c_str, int_arg, is, syntax_error};
use crate::output::Protocol;
use crate::session::{Closing, ReplyMode, Session};

/// The Redis version this server answers as (`HELLO`, `INFO`).
pub(crate) const REDIS_VERSION: &str = "7.0.15";

/// Flags of the commands a client may send before authenticating.
const NO_AUTH_FLAGS: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
];

/// `PING [message]`.
pub(super) const PING: Command = Command {
    name: "ping",
    arity: -1,
    flags: &["fast"],
    tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
    summary: "Check that the server answers",
    run: ping,
    ..ECHO
};

/// `ECHO message`, whose categories and group every connection command
/// shares.
pub(super) const ECHO: Command = Command {
    name: "echo",
    arity: 2,
    flags: &["loading", "stale", "fast"],
    keys: (0, 0, 0),
    acl: &["@fast", "@connection"],
    tips: &[],
    group: "connection",
    since: "1.0.0",
    summary: "Return the message sent",
    run: echo,
    subcommands: &[],
};

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
pub(super) const HELLO: Command = Command {
    name: "hello",
    arity: -1,
    flags: NO_AUTH_FLAGS,
    since: "6.0.0",
    summary: "Choose the protocol version, optionally authenticating and naming the connection",
    run: hello,
    ..ECHO
};

/// `AUTH [username] password`.
pub(super) const AUTH: Command = Command {
    name: "auth",
    arity: -2,
    flags: NO_AUTH_FLAGS,
    summary: "Authenticate the connection",
    run: auth,
    ..ECHO
};

/// `SELECT index`.
pub(super) const SELECT: Command = Command {
    name: "select",
    summary: "Select a database (pub/sub is the same in every one)",
    run: select,
    ..ECHO
};

/// `QUIT`.
pub(super) const QUIT: Command = Command {
    name: "quit",
    arity: -1,
    flags: NO_AUTH_FLAGS,
    summary: "Close the connection once the replies so far are sent",
    run: quit,
    ..ECHO
};

/// `RESET`.
pub(super) const RESET: Command = Command {
    name: "reset",
    arity: 1,
    flags: NO_AUTH_FLAGS,
    since: "6.2.0",
    summary: "Return the connection to the state of a new one",
    run: reset,
    ..ECHO
};

/// `PING`: `[pong, message]` for a RESP2 client in subscribed mode.
fn ping(session: &mut Session, args: &[Bytes]) {
    if args.len() > 2 {
        return arity_error(session, "ping");
    }
    if session.subscribed && session.protocol() == Protocol::Resp2 {
        session.out.array(2);
        session.out.bulk(b"pong");
        session.out.bulk(args.get(1).map_or(&b""[..], |m| &m[..]));
    } else if let Some(message) = args.get(1) {
        session.out.bulk(message);
    } else {
        session.out.simple("PONG");
    }
}

/// `ECHO`.
fn echo(session: &mut Session, args: &[Bytes]) {
    session.out.bulk(&args[1]);
}

/// Whether `name` is a valid client name (printable ASCII, no spaces), as
/// Redis requires so `CLIENT LIST` stays parseable.
pub(super) fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// The error for an invalid client name.
pub(super) const BAD_NAME: &str =
    "Client names cannot contain spaces, newlines or special characters.";

/// The error for a failed authentication.
const WRONGPASS: &[u8] = b"WRONGPASS invalid username-password pair or user is disabled.";

/// `HELLO`.
fn hello(session: &mut Session, args: &[Bytes]) {
    let mut version = None;
    if args.len() >= 2 {
        match int_arg(&args[1]) {
            Some(v @ 2..=3) => version = Some(v),
            Some(_) => return session.out.error(b"NOPROTO unsupported protocol version"),
            None => {
                return session
                    .out
                    .err("Protocol version is not an integer or out of range");
            }
        }
    }
    let mut j = 2;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if is(&args[j], "auth") && more >= 2 {
            if !session.authenticate(&args[j + 1], &args[j + 2]) {
                return session.out.error(WRONGPASS);
            }
            j += 3;
        } else if is(&args[j], "setname") && more >= 1 {
            let name = &args[j + 1];
            if !valid_name(name) {
                return session.out.err(BAD_NAME);
            }
            session.name = Some(name.clone()).filter(|n| !n.is_empty());
            j += 2;
        } else {
            let mut message = b"ERR Syntax error in HELLO option '".to_vec();
            message.extend_from_slice(c_str(&args[j]));
            message.push(b'\'');
            return session.out.error(&message);
        }
    }
    if !session.authenticated && session.shared.config.has_password() {
        return session.out.error(
            b"NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    match version {
        Some(2) => session.out.set_protocol(Protocol::Resp2),
        Some(_) => session.out.set_protocol(Protocol::Resp3),
        None => {}
    }
    let out = &mut session.out;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.integer(out.protocol().version());
    out.bulk(b"id");
    out.integer(session.handle.id as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
}

/// `AUTH`.
fn auth(session: &mut Session, args: &[Bytes]) {
    if args.len() > 3 {
        return syntax_error(session);
    }
    let (user, password): (&[u8], &[u8]) = if args.len() == 2 {
        if !session.shared.config.has_password() {
            return session.out.err(
                "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            );
        }
        (b"default", &args[1])
    } else {
        (&args[1], &args[2])
    };
    if session.authenticate(user, password) {
        session.out.ok();
    } else {
        session.out.error(WRONGPASS);
    }
}

/// Databases a client may `SELECT` (Redis's default `databases`).
const DATABASES: i64 = 16;

/// `SELECT`: accepted for 0..16, with no effect on pub/sub (which Redis
/// also shares across databases).
fn select(session: &mut Session, args: &[Bytes]) {
    match int_arg(&args[1]).filter(|&n| i32::try_from(n).is_ok()) {
        None => session.out.err("value is not an integer or out of range"),
        Some(n) if !(0..DATABASES).contains(&n) => session.out.err("DB index is out of range"),
        Some(n) => {
            session.db = n;
            session.out.ok();
        }
    }
}

/// `QUIT`.
fn quit(session: &mut Session, _args: &[Bytes]) {
    session.out.ok();
    session.closing = Closing::AfterReply;
}

/// `RESET`: drops every subscription without confirmations, ends subscribed
/// mode and any transaction, forgets the name, requires authentication
/// again if a password is set, and returns to RESP2.
fn reset(session: &mut Session, _args: &[Bytes]) {
    {
        let subscriber = &mut *session.handle.subscriber();
        subscriber.unsubscribe(Vec::<Bytes>::new());
        subscriber.punsubscribe(Vec::<Bytes>::new());
        subscriber.sunsubscribe(Vec::<Bytes>::new());
    }
    // Messages queued before the reset go out in the protocol they were
    // sent under, as Redis had encoded them already.
    session.forward_all();
    session.patterns.clear();
    session.subscribed = false;
    session.db = 0;
    session.multi = None;
    session.name = None;
    session.authenticated = !session.shared.config.has_password();
    session.reply = ReplyMode::On;
    session.out.set_muted(false);
    session.out.set_protocol(Protocol::Resp2);
    session.out.simple("RESET");
}
