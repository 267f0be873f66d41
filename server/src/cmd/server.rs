//! `INFO`, `CONFIG`, `COMMAND`, `FLUSHALL`, `FLUSHDB`, `DBSIZE` and
//! `FUNCTION`: the server as a whole.
//!
//! This server holds no keys, so the keyspace commands answer as an empty
//! Redis does: `FLUSHALL`, `FLUSHDB` and `FUNCTION FLUSH` succeed and
//! `DBSIZE` is 0.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tannoy::glob_match;

use super::connection::REDIS_VERSION;
use super::{COMMANDS, CONTAINER, Command, arity_error, c_str, help, is, syntax_error};
use crate::config::SetError;
use crate::output::Output;
use crate::session::Session;

/// `INFO [section ...]`.
pub(super) const INFO: Command = Command {
    name: "info",
    arity: -1,
    flags: &["loading", "stale"],
    keys: (0, 0, 0),
    acl: &["@slow", "@dangerous"],
    tips: &[
        "nondeterministic_output",
        "request_policy:all_shards",
        "response_policy:special",
    ],
    group: "server",
    since: "1.0.0",
    summary: "Describe the server",
    run: info,
    subcommands: &[],
};

/// `CONFIG GET pattern [pattern ...]`, whose flags and categories the other
/// administrative `CONFIG` subcommands share.
const CONFIG_GET: Command = Command {
    name: "config|get",
    arity: -3,
    flags: &["admin", "noscript", "loading", "stale"],
    keys: (0, 0, 0),
    acl: &["@admin", "@slow", "@dangerous"],
    tips: &[],
    group: "server",
    since: "2.0.0",
    summary: "Return the settings matching glob patterns",
    run: config_get,
    subcommands: &[],
};

/// `CONFIG <subcommand>`.
pub(super) const CONFIG: Command = Command {
    name: "config",
    group: "server",
    since: "2.0.0",
    summary: "Read and change settings",
    subcommands: &[
        CONFIG_GET,
        Command {
            name: "config|set",
            arity: -4,
            tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
            summary: "Change settings",
            run: config_set,
            ..CONFIG_GET
        },
        Command {
            name: "config|resetstat",
            arity: 2,
            summary: "Reset the statistics INFO reports",
            run: config_resetstat,
            ..CONFIG_GET
        },
        Command {
            name: "config|rewrite",
            arity: 2,
            since: "2.8.0",
            summary: "Fails: there is no configuration file",
            run: config_rewrite,
            ..CONFIG_GET
        },
        Command {
            name: "config|help",
            arity: 2,
            flags: &["loading", "stale"],
            acl: &["@slow"],
            since: "5.0.0",
            summary: "Show the CONFIG subcommands",
            run: config_help,
            ..CONFIG_GET
        },
    ],
    ..CONTAINER
};

/// `COMMAND` with no subcommand: its subcommands share its flags,
/// categories and group.
const COMMAND_ALONE: Command = Command {
    name: "command",
    arity: -1,
    flags: &["loading", "stale"],
    keys: (0, 0, 0),
    acl: &["@slow", "@connection"],
    tips: &["nondeterministic_output_order"],
    group: "server",
    since: "2.8.13",
    summary: "Describe the commands this server knows",
    run: command,
    subcommands: &[],
};

/// `COMMAND [<subcommand>]`.
pub(super) const COMMAND: Command = Command {
    subcommands: &[
        Command {
            name: "command|count",
            arity: 2,
            tips: &[],
            summary: "Count the commands",
            run: command_count,
            ..COMMAND_ALONE
        },
        Command {
            name: "command|info",
            arity: -2,
            summary: "Describe commands",
            run: command_info,
            ..COMMAND_ALONE
        },
        Command {
            name: "command|docs",
            arity: -2,
            since: "7.0.0",
            summary: "Document commands",
            run: command_docs,
            ..COMMAND_ALONE
        },
        Command {
            name: "command|list",
            arity: -2,
            since: "7.0.0",
            summary: "List command names",
            run: command_list,
            ..COMMAND_ALONE
        },
        Command {
            name: "command|help",
            arity: 2,
            tips: &[],
            since: "5.0.0",
            summary: "Show the COMMAND subcommands",
            run: command_help,
            ..COMMAND_ALONE
        },
    ],
    ..COMMAND_ALONE
};

/// Tips of the keyspace-wide commands.
const ALL_SHARDS: &[&str] = &["request_policy:all_shards", "response_policy:all_succeeded"];

/// `FLUSHALL [ASYNC|SYNC]`.
pub(super) const FLUSHALL: Command = Command {
    name: "flushall",
    arity: -1,
    flags: &["write"],
    keys: (0, 0, 0),
    acl: &["@keyspace", "@write", "@slow", "@dangerous"],
    tips: ALL_SHARDS,
    group: "server",
    since: "1.0.0",
    summary: "Succeeds: there are no keys",
    run: flush,
    subcommands: &[],
};

/// `FLUSHDB [ASYNC|SYNC]`.
pub(super) const FLUSHDB: Command = Command {
    name: "flushdb",
    since: "1.0.0",
    ..FLUSHALL
};

/// `DBSIZE`.
pub(super) const DBSIZE: Command = Command {
    name: "dbsize",
    arity: 1,
    flags: &["readonly", "fast"],
    keys: (0, 0, 0),
    acl: &["@keyspace", "@read", "@fast"],
    tips: &["request_policy:all_shards", "response_policy:agg_sum"],
    group: "server",
    since: "1.0.0",
    summary: "Return 0: there are no keys",
    run: dbsize,
    subcommands: &[],
};

/// `FUNCTION <subcommand>`.
pub(super) const FUNCTION: Command = Command {
    name: "function",
    group: "scripting",
    since: "7.0.0",
    summary: "Functions (there are none)",
    subcommands: &[
        Command {
            name: "function|flush",
            arity: -2,
            flags: &["write", "noscript"],
            keys: (0, 0, 0),
            acl: &["@write", "@slow", "@scripting"],
            tips: ALL_SHARDS,
            group: "scripting",
            since: "7.0.0",
            summary: "Succeeds: there are no functions",
            run: function_flush,
            subcommands: &[],
        },
        Command {
            name: "function|list",
            arity: -2,
            flags: &["noscript"],
            keys: (0, 0, 0),
            acl: &["@slow", "@scripting"],
            tips: &["nondeterministic_output_order"],
            group: "scripting",
            since: "7.0.0",
            summary: "Return an empty list: there are no functions",
            run: function_list,
            subcommands: &[],
        },
    ],
    ..CONTAINER
};

/// `FLUSHALL` and `FLUSHDB`.
fn flush(session: &mut Session, args: &[Bytes]) {
    if args.len() > 2 || (args.len() == 2 && !is(&args[1], "sync") && !is(&args[1], "async")) {
        return syntax_error(session);
    }
    session.out.ok();
}

/// `DBSIZE`.
fn dbsize(session: &mut Session, _args: &[Bytes]) {
    session.out.integer(0);
}

/// `FUNCTION FLUSH [ASYNC|SYNC]`.
fn function_flush(session: &mut Session, args: &[Bytes]) {
    if args.len() > 3 {
        return syntax_error(session);
    }
    if args.len() == 3 && !is(&args[2], "sync") && !is(&args[2], "async") {
        return session
            .out
            .err("FUNCTION FLUSH only supports SYNC|ASYNC option");
    }
    session.out.ok();
}

/// `FUNCTION LIST [WITHCODE] [LIBRARYNAME pattern]`.
fn function_list(session: &mut Session, args: &[Bytes]) {
    let mut i = 2;
    while i < args.len() {
        if is(&args[i], "withcode") {
            i += 1;
        } else if is(&args[i], "libraryname") && i + 1 < args.len() {
            i += 2;
        } else {
            let mut message = b"ERR Unknown argument ".to_vec();
            message.extend_from_slice(c_str(&args[i]));
            return session.out.error(&message);
        }
    }
    session.out.array(0);
}

/// Appends `name:value\r\n`.
fn field(text: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(text, "{name}:{value}\r\n");
}

/// A `/proc/self` reading, where there is one.
fn proc_self(file: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/self/{file}")).ok()
}

/// The process's resident memory in bytes, where `/proc` tells it.
fn resident_bytes() -> u64 {
    proc_self("statm")
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// User and system CPU seconds of the process, where `/proc` tells them.
fn cpu_seconds() -> (f64, f64) {
    let parse = || -> Option<(f64, f64)> {
        let stat = proc_self("stat")?;
        let after_name = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line, in clock
        // ticks; Linux reports them at 100 per second.
        let user = fields.get(11)?.parse::<f64>().ok()? / 100.0;
        let system = fields.get(12)?.parse::<f64>().ok()? / 100.0;
        Some((user, system))
    };
    parse().unwrap_or((0.0, 0.0))
}

/// One `INFO` section's text, or `None` for an unknown section.
fn info_section(session: &Session, name: &str) -> Option<String> {
    let shared = &session.shared;
    let stats = &shared.stats;
    let mut s = String::new();
    match name {
        "server" => {
            s.push_str("# Server\r\n");
            field(&mut s, "redis_version", REDIS_VERSION);
            field(&mut s, "redis_git_sha1", "00000000");
            field(&mut s, "redis_git_dirty", 0);
            field(&mut s, "redis_build_id", "0");
            field(&mut s, "redis_mode", "standalone");
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            field(
                &mut s,
                "os",
                format!(
                    "{} {} {}",
                    capitalised(std::env::consts::OS),
                    release.trim(),
                    std::env::consts::ARCH
                ),
            );
            field(&mut s, "arch_bits", usize::BITS);
            field(&mut s, "monotonic_clock", "POSIX clock_gettime");
            field(&mut s, "multiplexing_api", "epoll");
            field(&mut s, "atomicvar_api", "c11-builtin");
            field(&mut s, "gcc_version", "0.0.0");
            field(&mut s, "process_id", std::process::id());
            field(&mut s, "process_supervised", "no");
            field(&mut s, "run_id", &shared.run_id);
            field(&mut s, "tcp_port", shared.config.port());
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            field(&mut s, "server_time_usec", now.as_micros());
            let uptime = shared.started.elapsed().as_secs();
            field(&mut s, "uptime_in_seconds", uptime);
            field(&mut s, "uptime_in_days", uptime / 86_400);
            field(&mut s, "hz", 10);
            field(&mut s, "configured_hz", 10);
            field(&mut s, "lru_clock", (now.as_secs()) & ((1 << 24) - 1));
            let exe = std::env::current_exe().unwrap_or_default();
            field(&mut s, "executable", exe.display());
            field(&mut s, "config_file", "");
            field(&mut s, "io_threads_active", 0);
            field(&mut s, "tannoy_version", env!("CARGO_PKG_VERSION"));
        }
        "clients" => {
            s.push_str("# Clients\r\n");
            field(&mut s, "connected_clients", shared.clients.len());
            field(&mut s, "cluster_connections", 0);
            field(&mut s, "maxclients", shared.config.maxclients());
            field(&mut s, "client_recent_max_input_buffer", 0);
            field(&mut s, "client_recent_max_output_buffer", 0);
            field(&mut s, "blocked_clients", 0);
            field(&mut s, "tracking_clients", 0);
            field(&mut s, "clients_in_timeout_table", 0);
        }
        "memory" => {
            s.push_str("# Memory\r\n");
            let rss = resident_bytes();
            field(&mut s, "used_memory", rss);
            field(&mut s, "used_memory_rss", rss);
            field(&mut s, "maxmemory", 0);
            field(&mut s, "maxmemory_policy", "noeviction");
            field(&mut s, "mem_allocator", "libc");
        }
        "persistence" => {
            s.push_str("# Persistence\r\n");
            for name in [
                "loading",
                "async_loading",
                "rdb_changes_since_last_save",
                "rdb_bgsave_in_progress",
                "aof_enabled",
                "aof_rewrite_in_progress",
            ] {
                field(&mut s, name, 0);
            }
        }
        "stats" => {
            s.push_str("# Stats\r\n");
            let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
            field(
                &mut s,
                "total_connections_received",
                load(&stats.connections),
            );
            field(&mut s, "total_commands_processed", load(&stats.commands));
            field(&mut s, "instantaneous_ops_per_sec", 0);
            field(&mut s, "total_net_input_bytes", load(&stats.net_input));
            field(&mut s, "total_net_output_bytes", load(&stats.net_output));
            field(&mut s, "rejected_connections", load(&stats.rejected));
            field(
                &mut s,
                "pubsub_channels",
                shared.broker.channels(None::<&str>).len(),
            );
            field(&mut s, "pubsub_patterns", shared.broker.numpat());
            field(
                &mut s,
                "pubsubshard_channels",
                shared.broker.shard_channels(None::<&str>).len(),
            );
            field(
                &mut s,
                "client_output_buffer_limit_disconnections",
                load(&stats.limit_disconnections),
            );
            let dropped: u64 = shared
                .clients
                .all()
                .iter()
                .map(|h| h.info().dropped())
                .sum();
            field(
                &mut s,
                "pubsub_dropped_messages",
                dropped + load(&stats.dropped),
            );
        }
        "replication" => {
            s.push_str("# Replication\r\n");
            field(&mut s, "role", "master");
            field(&mut s, "connected_slaves", 0);
            field(&mut s, "master_failover_state", "no-failover");
            field(&mut s, "master_replid", &shared.run_id);
            field(&mut s, "master_repl_offset", 0);
        }
        "cpu" => {
            s.push_str("# CPU\r\n");
            let (user, system) = cpu_seconds();
            field(&mut s, "used_cpu_sys", format!("{system:.6}"));
            field(&mut s, "used_cpu_user", format!("{user:.6}"));
        }
        "modules" => s.push_str("# Modules\r\n"),
        "errorstats" => s.push_str("# Errorstats\r\n"),
        "cluster" => {
            s.push_str("# Cluster\r\n");
            field(&mut s, "cluster_enabled", 0);
        }
        "keyspace" => s.push_str("# Keyspace\r\n"),
        _ => return None,
    }
    Some(s)
}

/// `Linux` from `linux`.
fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The sections `INFO` with no argument (or `default`, `all`,
/// `everything`) reports, in Redis's order.
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];

/// `INFO`.
fn info(session: &mut Session, args: &[Bytes]) {
    let mut wanted: Vec<&str> = Vec::new();
    if args.len() == 1 {
        wanted.extend(DEFAULT_SECTIONS);
    }
    for arg in &args[1..] {
        let name = String::from_utf8_lossy(c_str(arg)).to_ascii_lowercase();
        match name.as_str() {
            "default" | "all" | "everything" => wanted.extend(DEFAULT_SECTIONS),
            _ => {
                if let Some(known) = DEFAULT_SECTIONS.iter().find(|s| **s == name) {
                    wanted.push(known);
                }
            }
        }
    }
    let mut seen = Vec::new();
    let mut text = String::new();
    for name in wanted {
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        if let Some(section) = info_section(session, name) {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            text.push_str(&section);
        }
    }
    session.out.verbatim(text.as_bytes());
}

/// `CONFIG GET pattern [pattern ...]`: the settings matching any pattern
/// (case-insensitively), each once.
fn config_get(session: &mut Session, args: &[Bytes]) {
    let all = session.shared.config.all();
    // Name as the reply shows it, and value; each parameter once.
    let mut matches: Vec<(Vec<u8>, &str, &String)> = Vec::new();
    for arg in &args[2..] {
        let pattern = c_str(arg);
        let is_glob = pattern.iter().any(|b| b"[*?".contains(b));
        let lower = pattern.to_ascii_lowercase();
        for (name, value) in &all {
            let hit = if is_glob {
                glob_match(&lower, name.as_bytes())
            } else {
                lower == name.as_bytes()
            };
            if hit && !matches.iter().any(|(_, n, _)| *n == name.as_str()) {
                // An exact name is echoed as the client spelled it, as
                // Redis does; a glob match shows the parameter's name.
                let shown = if is_glob {
                    name.as_bytes().to_vec()
                } else {
                    pattern.to_vec()
                };
                matches.push((shown, name.as_str(), value));
            }
        }
    }
    session.out.map(matches.len());
    for (shown, _, value) in matches {
        session.out.bulk(&shown);
        session.out.bulk(value.as_bytes());
    }
}

/// `CONFIG SET parameter value [parameter value ...]`.
fn config_set(session: &mut Session, args: &[Bytes]) {
    if args.len() % 2 != 0 {
        return arity_error(session, "config|set");
    }
    let mut names: Vec<String> = Vec::new();
    for pair in args[2..].chunks(2) {
        let name = String::from_utf8_lossy(c_str(&pair[0])).to_ascii_lowercase();
        if names.contains(&name) {
            return session.out.err(&format!(
                "CONFIG SET failed (possibly related to argument '{name}') - duplicate parameter"
            ));
        }
        names.push(name);
    }
    for (name, pair) in names.iter().zip(args[2..].chunks(2)) {
        let result = session.shared.config.set(name, &pair[1]);
        let message = match result {
            Ok(()) => continue,
            Err(SetError::Unknown) => {
                format!("Unknown option or number of arguments for CONFIG SET - '{name}'")
            }
            Err(SetError::Immutable) => format!(
                "CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"
            ),
            Err(SetError::Invalid(reason)) => {
                format!("CONFIG SET failed (possibly related to argument '{name}') - {reason}")
            }
        };
        return session.out.err(&message);
    }
    session.out.ok();
}

/// `CONFIG RESETSTAT`.
fn config_resetstat(session: &mut Session, _args: &[Bytes]) {
    session.shared.stats.reset();
    session.out.ok();
}

/// `CONFIG REWRITE`.
fn config_rewrite(session: &mut Session, _args: &[Bytes]) {
    session
        .out
        .err("The server is running without a config file");
}

/// `CONFIG HELP`.
fn config_help(session: &mut Session, args: &[Bytes]) {
    help(
        session,
        args,
        &[
            "GET <pattern> [<pattern> ...]",
            "    Return the settings whose names match a glob pattern, with their values.",
            "SET <parameter> <value> [<parameter> <value> ...]",
            "    Change settings. Live here: requirepass, maxclients, proto-max-bulk-len,",
            "    client-query-buffer-limit and client-output-buffer-limit (its pubsub class).",
            "RESETSTAT",
            "    Reset the statistics INFO reports.",
            "REWRITE",
            "    Fails: there is no configuration file.",
        ],
    );
}

/// Writes one command's `COMMAND INFO` entry, in Redis 7.0's shape.
fn write_command_info(out: &mut Output, command: &Command) {
    out.array(10);
    out.bulk(command.name.as_bytes());
    out.integer(command.arity);
    out.set(command.flags.len());
    for flag in command.flags {
        out.simple(flag);
    }
    out.integer(command.keys.0);
    out.integer(command.keys.1);
    out.integer(command.keys.2);
    out.set(command.acl.len());
    for category in command.acl {
        out.simple(category);
    }
    out.set(command.tips.len());
    for tip in command.tips {
        out.bulk(tip.as_bytes());
    }
    // Key specifications are not modelled; no client of this server needs
    // them (they serve cluster routing).
    out.set(0);
    if command.subcommands.is_empty() {
        out.set(0);
    } else {
        out.array(command.subcommands.len());
        for sub in command.subcommands {
            write_command_info(out, sub);
        }
    }
}

/// Writes one command's `COMMAND DOCS` entry.
fn write_command_docs(out: &mut Output, command: &Command) {
    let has_subcommands = !command.subcommands.is_empty();
    out.map(3 + usize::from(has_subcommands));
    out.bulk(b"summary");
    out.bulk(command.summary.as_bytes());
    out.bulk(b"since");
    out.bulk(command.since.as_bytes());
    out.bulk(b"group");
    out.bulk(command.group.as_bytes());
    if has_subcommands {
        out.bulk(b"subcommands");
        out.map(command.subcommands.len());
        for sub in command.subcommands {
            out.bulk(sub.name.as_bytes());
            write_command_docs(out, sub);
        }
    }
}

/// `COMMAND`: every command's info.
fn command(session: &mut Session, _args: &[Bytes]) {
    session.out.array(COMMANDS.len());
    for command in COMMANDS {
        write_command_info(&mut session.out, command);
    }
}

/// `COMMAND COUNT`.
fn command_count(session: &mut Session, _args: &[Bytes]) {
    session.out.integer(COMMANDS.len() as i64);
}

/// A command or subcommand by full name (`client|list`).
fn find_full(name: &[u8]) -> Option<&'static Command> {
    COMMANDS.iter().find_map(|c| {
        if c.name.as_bytes().eq_ignore_ascii_case(name) {
            Some(c)
        } else {
            c.subcommands
                .iter()
                .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
        }
    })
}

/// `COMMAND INFO [command ...]`.
fn command_info(session: &mut Session, args: &[Bytes]) {
    if args.len() == 2 {
        return command(session, args);
    }
    session.out.array(args.len() - 2);
    for name in &args[2..] {
        match find_full(name) {
            Some(command) => write_command_info(&mut session.out, command),
            None => session.out.null(),
        }
    }
}

/// `COMMAND DOCS [command ...]`.
fn command_docs(session: &mut Session, args: &[Bytes]) {
    let commands: Vec<&Command> = if args.len() == 2 {
        COMMANDS.iter().collect()
    } else {
        args[2..].iter().filter_map(|n| find_full(n)).collect()
    };
    session.out.map(commands.len());
    for command in commands {
        session.out.bulk(command.name.as_bytes());
        write_command_docs(&mut session.out, command);
    }
}

/// `COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]`.
fn command_list(session: &mut Session, args: &[Bytes]) {
    let all = COMMANDS
        .iter()
        .flat_map(|c| std::iter::once(c).chain(c.subcommands.iter()));
    let names: Vec<&str> = match args.len() {
        2 => COMMANDS.iter().map(|c| c.name).collect(),
        5 if is(&args[2], "filterby") => {
            let value = &args[4];
            if is(&args[3], "module") {
                Vec::new()
            } else if is(&args[3], "aclcat") {
                let category = format!("@{}", String::from_utf8_lossy(value).to_ascii_lowercase());
                all.filter(|c| c.acl.contains(&category.as_str()))
                    .map(|c| c.name)
                    .collect()
            } else if is(&args[3], "pattern") {
                let pattern = value.to_ascii_lowercase();
                all.filter(|c| glob_match(&pattern, c.name.as_bytes()))
                    .map(|c| c.name)
                    .collect()
            } else {
                return syntax_error(session);
            }
        }
        _ => return syntax_error(session),
    };
    session.out.array(names.len());
    for name in names {
        session.out.bulk(name.as_bytes());
    }
}

/// `COMMAND HELP`.
fn command_help(session: &mut Session, args: &[Bytes]) {
    help(
        session,
        args,
        &[
            "(no subcommand)",
            "    Describe every command.",
            "COUNT",
            "    Count the commands.",
            "DOCS [<command-name> ...]",
            "    Document the commands, all or those named.",
            "INFO [<command-name> ...]",
            "    Describe the commands, all or those named.",
            "LIST [FILTERBY (MODULE <name>|ACLCAT <category>|PATTERN <pattern>)]",
            "    List command names, all or those matching a filter.",
        ],
    );
}
