//! Commands: the table of every command this server knows, and the checks
//! Redis makes before running one.
//!
//! Each command family lives in its own file, which holds every handler of
//! the family:
//!
//! | file | commands |
//! |---|---|
//! | `pubsub.rs` | `SUBSCRIBE` `UNSUBSCRIBE` `PSUBSCRIBE` `PUNSUBSCRIBE` `SSUBSCRIBE` `SUNSUBSCRIBE` `PUBLISH` `SPUBLISH` `PUBSUB` |
//! | `connection.rs` | `PING` `ECHO` `HELLO` `AUTH` `SELECT` `QUIT` `RESET` |
//! | `client.rs` | `CLIENT` |
//! | `server.rs` | `INFO` `CONFIG` `COMMAND` `FLUSHALL` `FLUSHDB` `DBSIZE` `FUNCTION` |
//! | `transaction.rs` | `MULTI` `EXEC` `DISCARD` `WATCH` `UNWATCH` |
//!
//! # Before a command runs
//!
//! In Redis's order (`processCommand`): an unknown command or subcommand is
//! refused; then a wrong number of arguments; then, if the client must
//! authenticate, anything but `AUTH`, `HELLO`, `QUIT` and `RESET`; then, for
//! a RESP2 client in subscribed mode, anything but the (un)subscribe
//! commands, `PING`, `QUIT` and `RESET`; then, inside `MULTI`, the command
//! is queued rather than run. A refusal inside `MULTI` makes `EXEC` abort.

use bytes::Bytes;

use crate::output::Protocol;
use crate::parse::c_str_max;
pub(crate) use crate::parse::{c_str, is};
use crate::session::{Closing, ReplyMode, Session};

mod client;
mod connection;
mod pubsub;
mod server;
mod transaction;

/// A command handler: runs the command for `session` with its arguments
/// (`args[0]` is the command name as sent).
pub(crate) type Handler = fn(&mut Session, &[Bytes]);

/// One command or subcommand, with what `COMMAND INFO` reports of it.
#[derive(Debug)]
pub(crate) struct Command {
    /// Full name in lowercase: `publish`, `client|list`.
    pub(crate) name: &'static str,
    /// Redis's arity: `n` exactly `n` arguments (name included), `-n` at
    /// least `n`.
    pub(crate) arity: i64,
    /// Command flags, as `COMMAND INFO` lists them.
    pub(crate) flags: &'static [&'static str],
    /// First key, last key and key step, as `COMMAND INFO` lists them.
    pub(crate) keys: (i64, i64, i64),
    /// ACL categories, as `COMMAND INFO` lists them.
    pub(crate) acl: &'static [&'static str],
    /// Command tips, as `COMMAND INFO` lists them.
    pub(crate) tips: &'static [&'static str],
    /// The command group (`COMMAND DOCS`).
    pub(crate) group: &'static str,
    /// The Redis version that introduced it (`COMMAND DOCS`).
    pub(crate) since: &'static str,
    /// A one-line description (`COMMAND DOCS`).
    pub(crate) summary: &'static str,
    /// Runs it. For a container (`CLIENT`), unused: a container alone
    /// always fails its arity check.
    pub(crate) run: Handler,
    /// Subcommands of a container command.
    pub(crate) subcommands: &'static [Command],
}

impl Command {
    /// Whether the command may run before the client authenticates.
    fn no_auth(&self) -> bool {
        self.flags.contains(&"no_auth")
    }

    /// Whether a RESP2 client in subscribed mode may run it.
    fn allowed_in_subscribed_mode(&self) -> bool {
        matches!(
            self.name,
            "ping"
                | "subscribe"
                | "ssubscribe"
                | "unsubscribe"
                | "sunsubscribe"
                | "psubscribe"
                | "punsubscribe"
                | "quit"
                | "reset"
        )
    }

    /// Whether it runs at once inside `MULTI` instead of being queued.
    fn runs_inside_multi(&self) -> bool {
        matches!(
            self.name,
            "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
        )
    }

    /// Whether `argc` arguments (name included) satisfy the arity.
    fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }
}

/// What Redis's table gives every container command (`CLIENT`, `CONFIG`,
/// `FUNCTION`, `PUBSUB`): each entry takes these by struct update and names
/// itself, its group, version, summary and subcommands. The container alone
/// never runs: without a subcommand it fails its arity check, and with one
/// the subcommand runs or is unknown.
const CONTAINER: Command = Command {
    name: "",
    arity: -2,
    flags: &[],
    keys: (0, 0, 0),
    acl: &["@slow"],
    tips: &[],
    group: "",
    since: "",
    summary: "",
    run: subcommand_syntax_error,
    subcommands: &[],
};

/// Every top-level command, the most frequent first (lookup is a scan).
pub(crate) static COMMANDS: &[Command] = &[
    pubsub::PUBLISH,
    pubsub::SPUBLISH,
    connection::PING,
    pubsub::SUBSCRIBE,
    pubsub::UNSUBSCRIBE,
    pubsub::PSUBSCRIBE,
    pubsub::PUNSUBSCRIBE,
    pubsub::SSUBSCRIBE,
    pubsub::SUNSUBSCRIBE,
    pubsub::PUBSUB,
    connection::ECHO,
    connection::HELLO,
    connection::AUTH,
    connection::SELECT,
    connection::QUIT,
    connection::RESET,
    client::CLIENT,
    server::INFO,
    server::CONFIG,
    server::COMMAND,
    server::FLUSHALL,
    server::FLUSHDB,
    server::DBSIZE,
    server::FUNCTION,
    transaction::MULTI,
    transaction::EXEC,
    transaction::DISCARD,
    transaction::WATCH,
    transaction::UNWATCH,
];

/// Finds a command by name, case-insensitively.
pub(crate) fn find(name: &[u8]) -> Option<&'static Command> {
    COMMANDS
        .iter()
        .find(|c| c.name.as_bytes().eq_ignore_ascii_case(name))
}

/// What looking up a request's command found.
enum Lookup {
    /// A command to check and run.
    Found(&'static Command),
    /// No such command.
    Unknown,
    /// A container command with no such subcommand.
    UnknownSubcommand,
}

/// Looks up a request's command as Redis's `lookupCommand` does: a
/// container's subcommand is looked up when there is a second argument.
fn lookup(args: &[Bytes]) -> Lookup {
    let Some(command) = find(&args[0]) else {
        return Lookup::Unknown;
    };
    if command.subcommands.is_empty() || args.len() < 2 {
        return Lookup::Found(command);
    }
    let prefix_len = command.name.len() + 1;
    match command
        .subcommands
        .iter()
        .find(|s| s.name.as_bytes()[prefix_len..].eq_ignore_ascii_case(&args[1]))
    {
        Some(sub) => Lookup::Found(sub),
        None => Lookup::UnknownSubcommand,
    }
}

/// `ERR unknown command '<name>', with args beginning with: '<a>' '<b>' `,
/// truncated as Redis truncates it.
fn unknown_command_error(args: &[Bytes]) -> Vec<u8> {
    let mut quoted = Vec::new();
    for arg in &args[1..] {
        if quoted.len() >= 128 {
            break;
        }
        let precision = 128 - quoted.len();
        quoted.push(b'\'');
        quoted.extend_from_slice(c_str_max(arg, precision));
        quoted.extend_from_slice(b"' ");
    }
    let mut message = b"ERR unknown command '".to_vec();
    message.extend_from_slice(c_str_max(&args[0], 128));
    message.extend_from_slice(b"', with args beginning with: ");
    message.extend_from_slice(&quoted);
    message
}

/// `<opening>'<sub>'. Try <CMD> HELP.`: the two subcommand errors differ
/// only in their opening words.
fn subcommand_error(opening: &[u8], args: &[Bytes]) -> Vec<u8> {
    let mut message = opening.to_vec();
    message.push(b'\'');
    message.extend_from_slice(c_str_max(&args[1], 128));
    message.extend_from_slice(b"'. Try ");
    message.extend_from_slice(&c_str(&args[0]).to_ascii_uppercase());
    message.extend_from_slice(b" HELP.");
    message
}

/// `ERR unknown subcommand '<sub>'. Try <CMD> HELP.`
fn unknown_subcommand_error(args: &[Bytes]) -> Vec<u8> {
    subcommand_error(b"ERR unknown subcommand ", args)
}

/// `ERR unknown subcommand or wrong number of arguments for '<sub>'. Try
/// <CMD> HELP.`, Redis's reply to a subcommand's bad arguments.
pub(crate) fn subcommand_syntax_error(session: &mut Session, args: &[Bytes]) {
    let message = subcommand_error(
        b"ERR unknown subcommand or wrong number of arguments for ",
        args,
    );
    session.out.error(&message);
}

/// `ERR wrong number of arguments for '<name>' command`.
pub(crate) fn arity_error(session: &mut Session, name: &str) {
    session
        .out
        .err(&format!("wrong number of arguments for '{name}' command"));
}

/// `ERR syntax error`.
pub(crate) fn syntax_error(session: &mut Session) {
    session.out.err("syntax error");
}

/// Replies with a help text: the command's name line, then `lines`, then
/// the `HELP` entry, as status replies in an array.
pub(crate) fn help(session: &mut Session, args: &[Bytes], lines: &[&str]) {
    let name = String::from_utf8_lossy(c_str(&args[0])).to_ascii_uppercase();
    session.out.array(lines.len() + 3);
    session
        .out
        .simple(&format!("{name} <subcommand> [<arg> ...]. Subcommands:"));
    for line in lines {
        session.out.simple(line);
    }
    session.out.simple("HELP");
    session.out.simple("    Show this help.");
}

/// Refuses a command: replies with `message`, and inside `MULTI` makes
/// `EXEC` abort (Redis's `rejectCommand`).
fn reject(session: &mut Session, message: &[u8]) {
    if let Some(transaction) = session.multi.as_mut() {
        transaction.failed = true;
    }
    session.out.error(message);
}

/// Runs one request: the checks of the module docs, then the command.
pub(crate) fn execute(session: &mut Session, args: &[Bytes]) {
    session.shared.stats.count_command();
    session.last_interaction = std::time::Instant::now();
    session
        .out
        .set_muted(matches!(session.reply, ReplyMode::Off | ReplyMode::Skip));
    dispatch(session, args);
    // Redis's resetClient: a SKIP lasts one command.
    session.reply = match session.reply {
        ReplyMode::Skip => ReplyMode::On,
        ReplyMode::SkipNext => ReplyMode::Skip,
        other => other,
    };
}

/// The checks and the command, without the per-request bookkeeping.
fn dispatch(session: &mut Session, args: &[Bytes]) {
    let name = &args[0];
    if name.eq_ignore_ascii_case(b"host:") || name.eq_ignore_ascii_case(b"post") {
        // Redis treats these as an HTTP request sent to it (a cross-protocol
        // attack) and drops the connection without a reply.
        session.closing = Closing::Now;
        return;
    }
    let command = match lookup(args) {
        Lookup::Found(command) => command,
        Lookup::Unknown => {
            session.last_command = "NULL";
            return reject(session, &unknown_command_error(args));
        }
        Lookup::UnknownSubcommand => {
            session.last_command = "NULL";
            return reject(session, &unknown_subcommand_error(args));
        }
    };
    session.last_command = command.name;
    if !command.arity_ok(args.len()) {
        let message = format!(
            "ERR wrong number of arguments for '{}' command",
            command.name
        );
        return reject(session, message.as_bytes());
    }
    if session.auth_required() && !command.no_auth() {
        return reject(session, b"NOAUTH Authentication required.");
    }
    if session.subscribed
        && session.protocol() == Protocol::Resp2
        && !command.allowed_in_subscribed_mode()
    {
        let message = format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            command.name
        );
        return reject(session, message.as_bytes());
    }
    if let Some(transaction) = session.multi.as_mut() {
        if !command.runs_inside_multi() {
            transaction.queued.push(args.to_vec());
            session.out.simple("QUEUED");
            return;
        }
    }
    (command.run)(session, args);
}

/// Runs a queued command inside `EXEC`: Redis calls it directly, without
/// the checks made when it was queued.
pub(crate) fn run_queued(session: &mut Session, args: &[Bytes]) {
    if let Lookup::Found(command) = lookup(args) {
        session.last_command = command.name;
        (command.run)(session, args);
    }
}

/// An integer argument as Redis's `getLongLongFromObject` reads it.
pub(crate) fn int_arg(arg: &[u8]) -> Option<i64> {
    crate::parse::parse_i64(arg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command's arity and name are consistent, subcommands are
    /// named after their container, and no entry left out a field that a
    /// shared base such as [`CONTAINER`] leaves empty.
    #[test]
    fn table_is_consistent() {
        for command in COMMANDS {
            assert_eq!(command.name, command.name.to_ascii_lowercase());
            assert!(!command.name.contains('|'));
            assert_ne!(command.arity, 0, "{}", command.name);
            for sub in command.subcommands {
                assert!(
                    sub.name.starts_with(&format!("{}|", command.name)),
                    "{}",
                    sub.name
                );
                assert!(sub.subcommands.is_empty());
                assert_ne!(sub.arity, 0, "{}", sub.name);
            }
            for entry in std::iter::once(command).chain(command.subcommands) {
                for field in [entry.name, entry.group, entry.since, entry.summary] {
                    assert!(!field.is_empty(), "{entry:?}");
                }
            }
        }
    }

    /// The unknown-command error quotes at most about 128 bytes of
    /// arguments, each cut at a NUL, as Redis does.
    #[test]
    fn unknown_command_error_truncates() {
        let args: Vec<Bytes> = vec!["FOO".into(), "a\0b".into(), "c".into()];
        assert_eq!(
            unknown_command_error(&args),
            b"ERR unknown command 'FOO', with args beginning with: 'a' 'c' "
        );
        let long: Vec<Bytes> = vec!["x".into(), "y".repeat(200).into(), "z".into()];
        let message = unknown_command_error(&long);
        let expected = format!(
            "ERR unknown command 'x', with args beginning with: '{}' ",
            "y".repeat(128)
        );
        assert_eq!(message, expected.as_bytes());
    }
}
