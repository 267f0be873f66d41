//! `tannoy-server`: a Redis-protocol pub/sub server on the tannoy engine.
//!
//! ```text
//! tannoy-server [--bind ADDR] [--port N] [--requirepass PW] [--maxclients N]
//!               [--client-output-buffer-limit-pubsub "HARD SOFT SECONDS"]
//!               [--overflow disconnect|drop-oldest] [--threads N]
//!               [--tls-port N --tls-cert-file FILE --tls-key-file FILE
//!                [--tls-ca-cert-file FILE] [--tls-auth-clients no|yes|optional]]
//! ```
//!
//! The first line on stdout is exactly `listening on HOST:PORT`: the
//! plaintext port, or the TLS port when there is no plaintext one. With
//! TLS, a line `listening on HOST:PORT (tls)` follows for the TLS port.
//! SIGINT and SIGTERM stop the server cleanly.

use std::io::Write;
use std::process::ExitCode;

use tannoy_server::{AuthClients, OutputBufferLimit, Overflow, Server, TlsConfig};

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
  --threads N          worker threads (default: one fewer than the CPUs,
                       at least 1, leaving a core to the clients)
  --tls-port N         serve TLS on this port; 0 picks a free one. Without
                       --port, TLS only; with it, plaintext on --port too
  --tls-cert-file FILE the server's certificate chain, PEM (needed for TLS)
  --tls-key-file FILE  its private key, PEM (needed for TLS)
  --tls-ca-cert-file FILE
                       CA certificates that client certificates must chain to
  --tls-auth-clients no|yes|optional
                       whether clients must present a certificate (default
                       yes with --tls-ca-cert-file, as Redis; no without)
  -h, --help           show this help
  -V, --version        show the version

The first line on stdout is exactly `listening on HOST:PORT` (the plaintext
port, or the TLS port when there is no plaintext one); with TLS, a line
`listening on HOST:PORT (tls)` follows for the TLS port.
";

/// The command line, parsed.
#[derive(Debug)]
struct Options {
    /// `--bind`.
    bind: String,
    /// `--port` (`None`: not given).
    port: Option<u16>,
    /// `--tls-port`.
    tls_port: Option<u16>,
    /// `--tls-cert-file`.
    tls_cert_file: Option<String>,
    /// `--tls-key-file`.
    tls_key_file: Option<String>,
    /// `--tls-ca-cert-file`.
    tls_ca_cert_file: Option<String>,
    /// `--tls-auth-clients`.
    tls_auth_clients: Option<AuthClients>,
    /// `--requirepass`.
    requirepass: Option<String>,
    /// `--maxclients`.
    maxclients: usize,
    /// `--client-output-buffer-limit-pubsub`.
    limit: OutputBufferLimit,
    /// `--overflow`.
    overflow: Overflow,
    /// `--threads` (`None`: not given, see [`default_threads`]).
    threads: Option<usize>,
}

/// Worker threads when `--threads` is not given: one fewer than the CPUs,
/// at least one. A pub/sub server's clients usually share its machine (a
/// test suite, a benchmark client, the services it serves), and on two
/// CPUs one worker measured ahead of two: unpipelined `PUBLISH` against
/// redis-server went from 0.90x to 1.03x, with fan-out no slower (AMD
/// EPYC family 25 model 1, `versus_redis`).
fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
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
        port: None,
        tls_port: None,
        tls_cert_file: None,
        tls_key_file: None,
        tls_ca_cert_file: None,
        tls_auth_clients: None,
        requirepass: None,
        maxclients: 10_000,
        limit: OutputBufferLimit::default(),
        overflow: Overflow::Disconnect,
        threads: None,
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
                options.port = Some(v.parse().map_err(|_| format!("invalid port '{v}'"))?);
            }
            "--tls-port" => {
                let v = value()?;
                options.tls_port = Some(v.parse().map_err(|_| format!("invalid port '{v}'"))?);
            }
            "--tls-cert-file" => options.tls_cert_file = Some(value()?),
            "--tls-key-file" => options.tls_key_file = Some(value()?),
            "--tls-ca-cert-file" => options.tls_ca_cert_file = Some(value()?),
            "--tls-auth-clients" => {
                options.tls_auth_clients =
                    Some(value()?.parse().map_err(|e| format!("{flag}: {e}"))?);
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
            "--threads" => {
                let v = value()?;
                options.threads = Some(
                    v.parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("invalid threads '{v}'"))?,
                );
            }
            _ => return Err(format!("unknown option '{flag}'")),
        }
    }
    let tls_files = options.tls_cert_file.is_some()
        || options.tls_key_file.is_some()
        || options.tls_ca_cert_file.is_some()
        || options.tls_auth_clients.is_some();
    if options.tls_port.is_none() && tls_files {
        return Err("the --tls-* options need --tls-port".to_owned());
    }
    if options.tls_port.is_some()
        && (options.tls_cert_file.is_none() || options.tls_key_file.is_none())
    {
        return Err("--tls-port needs --tls-cert-file and --tls-key-file".to_owned());
    }
    Ok(Command::Run(options))
}

/// The TLS settings the options ask for, if any.
fn tls_config(options: &Options) -> Result<Option<TlsConfig>, String> {
    let (Some(cert), Some(key)) = (&options.tls_cert_file, &options.tls_key_file) else {
        return Ok(None);
    };
    let mut config = TlsConfig::from_pem_files(cert, key).map_err(|e| e.to_string())?;
    if let Some(ca) = &options.tls_ca_cert_file {
        config = config.client_ca_pem_file(ca).map_err(|e| e.to_string())?;
    }
    if let Some(auth) = options.tls_auth_clients {
        config = config.auth_clients(auth);
    }
    Ok(Some(config))
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
    let tls = tls_config(&options)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // Redis's default port, unless only a TLS port is asked for.
    let port = match (options.port, options.tls_port) {
        (Some(port), _) => Some(port),
        (None, Some(_)) => None,
        (None, None) => Some(6379),
    };
    let mut builder = Server::builder();
    match (port, options.tls_port, tls) {
        (Some(port), Some(tls_port), Some(tls)) => {
            builder = builder
                .bind(format!("{host}:{port}"))
                .tls(tls)
                .tls_bind(format!("{host}:{tls_port}"));
        }
        (None, Some(tls_port), Some(tls)) => {
            builder = builder.bind(format!("{host}:{tls_port}")).tls(tls);
        }
        (Some(port), _, _) => builder = builder.bind(format!("{host}:{port}")),
        (None, _, _) => unreachable!("a port is chosen above whenever there is no TLS port"),
    }
    let mut builder = builder
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
        // Then each TLS listener, named as such (the first line's too,
        // when the server serves TLS only).
        if let Some(tls_addr) = server.tls_local_addr() {
            writeln!(stdout, "listening on {tls_addr} (tls)")?;
        }
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads.unwrap_or_else(default_threads))
        .enable_all()
        .build();
    let runtime = match runtime {
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

#[cfg(test)]
mod tests {
    use super::{Command, default_threads, parse};

    /// `--threads` takes a positive count; without it the server uses
    /// `default_threads`, which is never zero.
    #[test]
    fn threads_option() {
        let threads = |args: &[&str]| match parse(args.iter().map(|a| (*a).to_owned())) {
            Ok(Command::Run(options)) => Ok(options.threads),
            Ok(Command::Print(_)) => Err("printed".to_owned()),
            Err(e) => Err(e),
        };
        assert_eq!(threads(&["--threads", "3"]), Ok(Some(3)));
        assert_eq!(threads(&["--threads=1"]), Ok(Some(1)));
        assert_eq!(threads(&[]), Ok(None));
        assert_eq!(
            threads(&["--threads", "0"]),
            Err("invalid threads '0'".to_owned())
        );
        assert_eq!(
            threads(&["--threads", "x"]),
            Err("invalid threads 'x'".to_owned())
        );
        assert!(default_threads() >= 1);
    }
}
