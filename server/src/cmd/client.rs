//! `CLIENT`: the connection's identity and reply mode, and listing and
//! killing connections.
//!
//! `CLIENT SETINFO` comes from Redis 7.2 (7.0 does not know it); client
//! libraries send it on connect and ignore a failure, and tests may want to
//! see the library name, so it is accepted. `PAUSE`, `TRACKING` and
//! `CACHING` act on keys and are not provided.

use bytes::Bytes;

use super::connection::{BAD_NAME, valid_name};
use super::{CONTAINER, Command, c_str, help, int_arg, is, syntax_error};
use crate::config::Overflow;
use crate::session::{Closing, ReplyMode, Session};

/// Flags of the ordinary `CLIENT` subcommands.
const FLAGS: &[&str] = &["noscript", "loading", "stale"];
/// Flags of the administrative ones.
const ADMIN_FLAGS: &[&str] = &["admin", "noscript", "loading", "stale"];
/// ACL categories of the ordinary ones.
const ACL: &[&str] = &["@slow", "@connection"];
/// ACL categories of the administrative ones.
const ADMIN_ACL: &[&str] = &["@admin", "@slow", "@dangerous", "@connection"];

/// A `CLIENT` subcommand's table entry.
const fn sub(
    name: &'static str,
    arity: i64,
    admin: bool,
    since: &'static str,
    summary: &'static str,
    run: super::Handler,
) -> Command {
    Command {
        name,
        arity,
        flags: if admin { ADMIN_FLAGS } else { FLAGS },
        keys: (0, 0, 0),
        acl: if admin { ADMIN_ACL } else { ACL },
        tips: &[],
        group: "connection",
        since,
        summary,
        run,
        subcommands: &[],
    }
}

/// `CLIENT <subcommand>`.
pub(super) const CLIENT: Command = Command {
    name: "client",
    group: "connection",
    since: "2.4.0",
    summary: "Inspect and manage client connections",
    subcommands: &[
        sub(
            "client|id",
            2,
            false,
            "5.0.0",
            "Return this connection's id",
            id,
        ),
        sub(
            "client|setname",
            3,
            false,
            "2.6.9",
            "Name this connection",
            setname,
        ),
        sub(
            "client|getname",
            2,
            false,
            "2.6.9",
            "Return this connection's name",
            getname,
        ),
        sub(
            "client|setinfo",
            4,
            false,
            "7.2.0",
            "Record the client library's name or version",
            setinfo,
        ),
        Command {
            tips: &["nondeterministic_output"],
            ..sub(
                "client|info",
                2,
                false,
                "6.2.0",
                "Describe this connection",
                info,
            )
        },
        Command {
            tips: &["nondeterministic_output"],
            ..sub(
                "client|list",
                -2,
                true,
                "2.4.0",
                "Describe every connection",
                list,
            )
        },
        sub("client|kill", -3, true, "2.4.0", "Close connections", kill),
        sub(
            "client|reply",
            3,
            false,
            "3.2.0",
            "Turn replies on or off",
            reply,
        ),
        sub(
            "client|no-evict",
            3,
            true,
            "7.0.0",
            "Accepted for compatibility; no client is ever evicted",
            no_evict,
        ),
        sub(
            "client|unpause",
            2,
            true,
            "6.2.0",
            "Accepted for compatibility; clients are never paused",
            unpause,
        ),
        sub(
            "client|getredir",
            2,
            false,
            "6.0.0",
            "Return -1: there is no tracking redirection",
            getredir,
        ),
        Command {
            flags: &["loading", "stale"],
            ..sub(
                "client|help",
                2,
                false,
                "5.0.0",
                "Show the CLIENT subcommands",
                client_help,
            )
        },
    ],
    ..CONTAINER
};

/// `CLIENT ID`.
fn id(session: &mut Session, _args: &[Bytes]) {
    session.out.integer(session.handle.id as i64);
}

/// `CLIENT SETNAME`: an empty name removes the name.
fn setname(session: &mut Session, args: &[Bytes]) {
    if !valid_name(&args[2]) {
        return session.out.err(BAD_NAME);
    }
    session.name = Some(args[2].clone()).filter(|n| !n.is_empty());
    session.out.ok();
}

/// `CLIENT GETNAME`.
fn getname(session: &mut Session, _args: &[Bytes]) {
    match session.name.clone() {
        Some(name) => session.out.bulk(&name),
        None => session.out.null(),
    }
}

/// `CLIENT SETINFO LIB-NAME|LIB-VER value`, as Redis 7.2 answers it.
fn setinfo(session: &mut Session, args: &[Bytes]) {
    let value = &args[3];
    let is_name = is(&args[2], "lib-name");
    if !is_name && !is(&args[2], "lib-ver") {
        let mut message = b"ERR Unrecognized option '".to_vec();
        message.extend_from_slice(c_str(&args[2]));
        message.push(b'\'');
        return session.out.error(&message);
    }
    if !valid_name(value) {
        let field = if is_name { "lib-name" } else { "lib-ver" };
        return session.out.err(&format!(
            "{field} cannot contain spaces, newlines or special characters."
        ));
    }
    let value = Some(value.clone()).filter(|v| !v.is_empty());
    if is_name {
        session.lib_name = value;
    } else {
        session.lib_ver = value;
    }
    session.out.ok();
}

/// Appends one client's `CLIENT LIST` line and its newline.
fn list_line(session: &Session, handle: &crate::clients::ClientHandle, text: &mut Vec<u8>) {
    let show_dropped = session.shared.config.overflow() == Overflow::DropOldest;
    text.extend_from_slice(&handle.info().list_line(handle.fd, show_dropped));
    text.push(b'\n');
}

/// `CLIENT INFO`.
fn info(session: &mut Session, _args: &[Bytes]) {
    session.publish_state();
    let mut text = Vec::new();
    list_line(session, &session.handle, &mut text);
    session.out.verbatim(&text);
}

/// `CLIENT LIST [TYPE type | ID id ...]`.
fn list(session: &mut Session, args: &[Bytes]) {
    session.publish_state();
    let mut handles = session.shared.clients.all();
    if args.len() == 4 && is(&args[2], "type") {
        let Some(kind) = client_type(&args[3]) else {
            return unknown_type(session, &args[3]);
        };
        handles.retain(|h| h.info().kind() == kind);
    } else if args.len() > 3 && is(&args[2], "id") {
        let mut wanted = Vec::new();
        for arg in &args[3..] {
            match int_arg(arg) {
                Some(id) => wanted.push(id),
                None => return session.out.err("Invalid client ID"),
            }
        }
        handles = wanted
            .into_iter()
            .filter_map(|id| u64::try_from(id).ok())
            .filter_map(|id| session.shared.clients.get(id))
            .collect();
    } else if args.len() != 2 {
        return syntax_error(session);
    }
    let mut text = Vec::new();
    for handle in &handles {
        list_line(session, handle, &mut text);
    }
    session.out.verbatim(&text);
}

/// A client type name as Redis accepts it: the type this server has of
/// it (`normal`, `pubsub`), `Some("none")` for the types no client here
/// has (`master`, `slave`, `replica`), `None` if unknown.
fn client_type(name: &[u8]) -> Option<&'static str> {
    if is(name, "normal") {
        Some("normal")
    } else if is(name, "pubsub") {
        Some("pubsub")
    } else if is(name, "master") || is(name, "slave") || is(name, "replica") {
        Some("none")
    } else {
        None
    }
}

/// `ERR Unknown client type '<name>'`.
fn unknown_type(session: &mut Session, name: &[u8]) {
    let mut message = b"ERR Unknown client type '".to_vec();
    message.extend_from_slice(c_str(name));
    message.push(b'\'');
    session.out.error(&message);
}

/// `CLIENT KILL addr` or `CLIENT KILL <filter> <value> ...`.
fn kill(session: &mut Session, args: &[Bytes]) {
    let mut addr: Option<&[u8]> = None;
    let mut laddr: Option<&[u8]> = None;
    let mut kind: Option<&str> = None;
    let mut id: Option<u64> = None;
    let mut skipme = true;
    if args.len() == 3 {
        addr = Some(c_str(&args[2]));
        skipme = false;
    } else {
        let mut i = 2;
        while i < args.len() {
            let more = i + 1 < args.len();
            let (option, value) = (&args[i], args.get(i + 1));
            match value {
                Some(value) if more && is(option, "id") => match int_arg(value) {
                    Some(n) if n >= 1 => id = Some(n as u64),
                    _ => return session.out.err("client-id should be greater than 0"),
                },
                Some(value) if more && is(option, "type") => match client_type(value) {
                    Some(k) => kind = Some(k),
                    None => return unknown_type(session, value),
                },
                Some(value) if more && is(option, "addr") => addr = Some(c_str(value)),
                Some(value) if more && is(option, "laddr") => laddr = Some(c_str(value)),
                Some(value) if more && is(option, "user") => {
                    if !is(value, "default") {
                        let mut message = b"ERR No such user '".to_vec();
                        message.extend_from_slice(c_str(value));
                        message.push(b'\'');
                        return session.out.error(&message);
                    }
                }
                Some(value) if more && is(option, "skipme") => {
                    if is(value, "yes") {
                        skipme = true;
                    } else if is(value, "no") {
                        skipme = false;
                    } else {
                        return syntax_error(session);
                    }
                }
                _ => return syntax_error(session),
            }
            i += 2;
        }
    }
    let mut killed = 0;
    let mut kill_self = false;
    for handle in session.shared.clients.all() {
        let is_self = handle.id == session.handle.id;
        if addr.is_some_and(|a| a != handle.addr.to_string().as_bytes())
            || laddr.is_some_and(|a| a != handle.local_addr.to_string().as_bytes())
            || id.is_some_and(|id| id != handle.id)
            || (is_self && skipme)
        {
            continue;
        }
        if let Some(kind) = kind {
            let handle_kind = if is_self {
                if session.subscribed {
                    "pubsub"
                } else {
                    "normal"
                }
            } else {
                handle.info().kind()
            };
            if handle_kind != kind {
                continue;
            }
        }
        if is_self {
            kill_self = true;
        } else {
            handle.kill();
        }
        killed += 1;
    }
    if args.len() == 3 {
        if killed == 0 {
            session.out.err("No such client");
        } else {
            session.out.ok();
        }
    } else {
        session.out.integer(killed);
    }
    if kill_self {
        session.closing = Closing::AfterReply;
    }
}

/// `CLIENT REPLY ON|OFF|SKIP`.
fn reply(session: &mut Session, args: &[Bytes]) {
    if is(&args[2], "on") {
        session.reply = ReplyMode::On;
        session.out.set_muted(false);
        session.out.ok();
    } else if is(&args[2], "off") {
        session.reply = ReplyMode::Off;
    } else if is(&args[2], "skip") {
        if session.reply != ReplyMode::Off {
            session.reply = ReplyMode::SkipNext;
        }
    } else {
        syntax_error(session);
    }
}

/// `CLIENT NO-EVICT ON|OFF`.
fn no_evict(session: &mut Session, args: &[Bytes]) {
    if is(&args[2], "on") {
        session.no_evict = true;
        session.out.ok();
    } else if is(&args[2], "off") {
        session.no_evict = false;
        session.out.ok();
    } else {
        syntax_error(session);
    }
}

/// `CLIENT UNPAUSE`.
fn unpause(session: &mut Session, _args: &[Bytes]) {
    session.out.ok();
}

/// `CLIENT GETREDIR`.
fn getredir(session: &mut Session, _args: &[Bytes]) {
    session.out.integer(-1);
}

/// `CLIENT HELP`.
fn client_help(session: &mut Session, args: &[Bytes]) {
    help(
        session,
        args,
        &[
            "GETNAME",
            "    Return this connection's name.",
            "GETREDIR",
            "    Return -1 (no tracking here).",
            "ID",
            "    Return this connection's id.",
            "INFO",
            "    Describe this connection, as a CLIENT LIST line.",
            "KILL <ip:port> | <option> <value> [<option> <value> ...]",
            "    Close connections. Options: ID, TYPE (normal|pubsub), ADDR, LADDR, USER, SKIPME (yes|no).",
            "LIST [TYPE <type>] [ID <id> ...]",
            "    Describe every connection, or those of a type, or with these ids.",
            "NO-EVICT (ON|OFF)",
            "    Accepted; connections are never evicted here.",
            "REPLY (ON|OFF|SKIP)",
            "    Turn replies to this connection on or off, or skip the next one.",
            "SETINFO <LIB-NAME|LIB-VER> <value>",
            "    Record the client library's name or version.",
            "SETNAME <name>",
            "    Name this connection.",
            "UNPAUSE",
            "    Accepted; connections are never paused here.",
        ],
    );
}
