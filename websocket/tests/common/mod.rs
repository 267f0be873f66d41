//! What the example's test files share: its server on a loopback port,
//! and the WebSocket client side (connecting, reading JSON frames,
//! closing), each wait bounded by [`PATIENCE`] so that a bug fails the
//! test instead of hanging it. The including file declares the example's
//! code as `mod websocket_example`.

#![allow(
    dead_code,
    reason = "shared by several test files, each using a subset"
)]

use std::future::IntoFuture;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Frame;

/// Bounds every await that could hang: far beyond what a loopback
/// connection or a local `redis-server` needs.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// A WebSocket client.
pub(crate) type Client = WebSocketStream<TcpStream>;

/// Awaits `future`, failing the test if it takes longer than [`PATIENCE`].
pub(crate) async fn within<F: IntoFuture>(what: &str, future: F) -> F::Output {
    timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The example's server, serving on an ephemeral loopback port.
pub(crate) struct Serving {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Starts graceful shutdown when sent to (or dropped).
    shutdown: oneshot::Sender<()>,
    /// The serving task; ends once shutdown has completed.
    task: JoinHandle<io::Result<()>>,
}

impl Serving {
    /// Serves `hub` (a broker, or a broker with its bridge) with the
    /// example's own `serve` on `127.0.0.1:0`.
    pub(crate) async fn start(
        hub: impl Into<crate::websocket_example::Hub> + Send + 'static,
    ) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::websocket_example::serve(listener, hub, async {
            // Sent or dropped: either way, shut down.
            let _ = signal.await;
        }));
        Self {
            addr,
            shutdown,
            task,
        }
    }

    /// Shuts the server down and waits until it has finished, failing the
    /// test if it panicked or returned an error.
    pub(crate) async fn stop(self) {
        let _ = self.shutdown.send(());
        within("the server to stop", self.task)
            .await
            .expect("server task panicked")
            .expect("server failed");
    }
}

/// Connects a WebSocket client to `path` on `addr`.
pub(crate) async fn connect(addr: SocketAddr, path: &str) -> Client {
    connect_with_recv_buffer(addr, path, None).await
}

/// Connects a WebSocket client to `path` on `addr`, optionally fixing its
/// TCP receive buffer (which also turns off the kernel's auto-tuning of
/// it).
pub(crate) async fn connect_with_recv_buffer(
    addr: SocketAddr,
    path: &str,
    size: Option<u32>,
) -> Client {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .expect("TCP socket");
    if let Some(size) = size {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    let stream = within("a TCP connection", socket.connect(addr))
        .await
        .expect("TCP connect");
    let url = format!("ws://{addr}{path}");
    let (client, _response) = within(
        "the WebSocket handshake",
        tokio_tungstenite::client_async(url, stream),
    )
    .await
    .expect("WebSocket handshake");
    client
}

/// Receives the next text frame, skipping pings, as JSON.
pub(crate) async fn next_json(client: &mut Client) -> Value {
    loop {
        match within("a frame", client.next()).await {
            Some(Ok(Frame::Text(text))) => {
                return serde_json::from_str(&text).expect("frames are JSON");
            }
            Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Closes a client with the close handshake.
pub(crate) async fn close(mut client: Client) {
    within("the close frame", client.close(None))
        .await
        .expect("close");
}
