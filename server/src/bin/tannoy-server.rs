//! `tannoy-server`: a Redis-protocol pub/sub server on the tannoy engine.
//!
//! ```text
//! tannoy-server [--bind ADDR] [--port N] [--requirepass PW] [--maxclients N]
//!               [--client-output-buffer-limit-pubsub "HARD SOFT SECONDS"]
//!               [--overflow disconnect|drop-oldest]
//! ```
//!
//! The first line on stdout is `listening on HOST:PORT`. SIGINT and
//! SIGTERM stop the server cleanly.

use std::io::Write;
use std::process::ExitCode;

use tannoy_server::{OutputBufferLimit, Overflow, Server};

/// The usage text.
const USAGE: &str = "\
usage: tannoy-server [options]

A Redis-protocol pub/sub server on the tannoy engine.

options (defaults as Redis):
  --bind ADDR          address to listen on (default 127.0.0.1)
  --port N             port to listen on; 0 picks a free one (default 6379)
  --requirepass PW     require this password (AUTH / HELLO AUTH)
  --maxclients N       most clients at once (default 10000)
  --client-output-buffer-limit-pubsub \"HARD SOFT SECONDS\"
                       output limit of subscribed clients (default \"32mb 8mb 60\")
  --overflow disconnect|drop-oldest
                       what a subscribed client over its limit suffers
                       (default disconnect, as Redis)
  -h, --help           show this help
  -V, --version        show the version

The first line on stdout is `listening on HOST:PORT`.
";

/// The command line, parsed.
#[derive(Debug)]
struct Options {
    /// `--bind`.
    bind: String,
    /// `--port`.
    port: u16,
    /// `--requirepass`.
    requirepass: Option<String>,
    /// `--maxclients`.
    maxclients: usize,
    /// `--client-output-buffer-limit-pubsub`.
    limit: OutputBufferLimit,
    /// `--overflow`.
    overflow: Overflow,
}

/// What the command line asks for.
enum Command {
    /// Run the server.
    Run(Options),
    /// Print this and exit successfully.
    Print(String),
}

/// Parses the arguments (without the program name).
fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut options = Options {
        bind: "127.0.0.1".to_owned(),
        port: 6379,
        requirepass: None,
        maxclients: 10_000,
        limit: OutputBufferLimit::default(),
        overflow: Overflow::Disconnect,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Print(USAGE.to_owned())),
            "-V" | "--version" => {
                return Ok(Command::Print(format!(
                    "tannoy-server {}\n",
                    env!("CARGO_PKG_VERSION")
                )));
            }
            _ => {}
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--bind" => options.bind = value()?,
            "--port" => {
                let v = value()?;
                options.port = v.parse().map_err(|_| format!("invalid port '{v}'"))?;
            }
            "--requirepass" => options.requirepass = Some(value()?),
            "--maxclients" => {
                let v = value()?;
                options.maxclients = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("invalid maxclients '{v}'"))?;
            }
            "--client-output-buffer-limit-pubsub" => {
                options.limit = value()?.parse().map_err(|e| format!("{flag}: {e}"))?;
            }
            "--overflow" => {
                options.overflow = value()?.parse().map_err(|e| format!("{flag}: {e}"))?;
            }
            _ => return Err(format!("unknown option '{flag}'")),
        }
    }
    Ok(Command::Run(options))
}

/// Waits for SIGINT or SIGTERM (Ctrl-C elsewhere).
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the server until a signal stops it.
async fn run(options: Options) -> std::io::Result<()> {
    let host = if options.bind.contains(':') && !options.bind.starts_with('[') {
        format!("[{}]", options.bind)
    } else {
        options.bind.clone()
    };
    let mut builder = Server::builder()
        .bind(format!("{host}:{}", options.port))
        .maxclients(options.maxclients)
        .client_output_buffer_limit_pubsub(options.limit)
        .overflow(options.overflow);
    if let Some(password) = &options.requirepass {
        builder = builder.requirepass(password);
    }
    let server = builder.start().await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", server.local_addr())?;
        stdout.flush()?;
    }
    terminated().await;
    server.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("tannoy-server: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tannoy-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tannoy-server: {e}");
            ExitCode::FAILURE
        }
    }
}
