//! One connection's task: reads requests off the socket, runs them, and
//! writes replies and pub/sub messages back, all in one loop.
//!
//! The loop never blocks on any one thing. Each turn it runs the requests
//! already buffered, moves waiting messages from the engine queue into the
//! output, applies the output-buffer limit, and then waits for whichever
//! comes first: the socket can take more output, input arrives, a message
//! arrives, a timer fires, or something outside (a kill, a stall) wakes it.
//!
//! # Backpressure
//!
//! * Messages are moved from the engine queue into the output as fast as
//!   they arrive, whether or not the client reads, so the pub/sub
//!   output-buffer limit (in bytes, as Redis's) sees everything the client
//!   has not taken: a client that stops reading is disconnected (or loses
//!   its oldest messages) once it passes the limit, and never holds up a
//!   publisher or another client.
//! * A client that sends requests without reading the replies stops being
//!   read once its unsent replies pass [`REPLY_BACKLOG_LIMIT`]; TCP then
//!   pushes back on it.
//! * A request that has started arriving but makes no progress for the
//!   server's request timeout closes the connection, so half-written
//!   requests do not hold memory forever; an idle connection with nothing
//!   half-written is kept, as Redis keeps it.
//!
//! # Transport
//!
//! The loop is generic over the stream (`AsyncRead + AsyncWrite`), so a TLS
//! stream is served by the same code as a TCP one. A TLS stream may keep
//! the last bytes written in its own buffer when the socket is full, so
//! once the output is empty the loop flushes the stream (free on TCP)
//! before it waits, or closes; and a closing connection says goodbye with
//! one non-blocking shutdown (TLS's `close_notify`, TCP's FIN).

use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tannoy::RecvError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::Sleep;

use crate::clients::ClientHandle;
use crate::cmd;
use crate::frame::{Decoder, Limits};
use crate::output::MAX_SEGMENTS;
use crate::server::Shared;
use crate::session::{Closing, Session};

/// Unsent replies (not counting pub/sub messages) past which the client's
/// further requests are left unread until it takes some output. A client
/// that pipelines without reading thus costs at most this much plus one
/// request's replies; 1 MiB is far beyond what any client sends between
/// reads in practice.
pub(crate) const REPLY_BACKLOG_LIMIT: usize = 1 << 20;

/// Free space made in the read buffer before each read. Redis reads 16 KiB
/// at a time; the buffer grows past this only for a large argument.
const READ_CHUNK: usize = 16 * 1024;

/// Most the read buffer is grown by at once while a large argument
/// arrives, so a client claiming a huge length makes the server allocate
/// only as fast as it actually sends.
const READ_CHUNK_MAX: usize = 1 << 20;

/// How long a client that has closed its sending side may take to read the
/// replies still queued for it before the connection is closed.
const FLUSH_AFTER_EOF: Duration = Duration::from_secs(10);

/// What woke the connection.
enum Event {
    /// Something outside (kill, stall) changed.
    Control,
    /// The stream flushed what it buffered, and nothing else is awaited.
    Flushed,
    /// The socket took this many bytes.
    Wrote(usize),
    /// This many bytes were read.
    Read(usize),
    /// The client closed its sending side.
    Eof,
    /// The socket failed.
    Failed,
    /// A message arrived from the engine.
    Message(tannoy::Message),
    /// The engine queue ended.
    Ended(RecvError),
    /// The timer fired.
    Timer,
}

/// Serves one connection until it closes, then deregisters it.
pub(crate) async fn serve<S>(stream: S, handle: Arc<ClientHandle>, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = handle.id;
    let mut connection = Connection {
        stream,
        rbuf: BytesMut::new(),
        decoder: Decoder::new(),
        session: Session::new(Arc::clone(&shared), Arc::clone(&handle)),
        sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        last_progress: Instant::now(),
        eof_at: None,
        unflushed: false,
    };
    connection.run().await;
    // One try, never waiting: a client that does not read cannot hold the
    // connection open.
    let _ = poll_fn(|cx| Poll::Ready(Pin::new(&mut connection.stream).poll_shutdown(cx))).await;
    // Drop the connection (and the socket) before reporting it gone.
    drop(connection);
    {
        let subscriber = &mut *handle.subscriber();
        subscriber.unsubscribe(Vec::<bytes::Bytes>::new());
        subscriber.punsubscribe(Vec::<bytes::Bytes>::new());
        subscriber.sunsubscribe(Vec::<bytes::Bytes>::new());
    }
    shared.clients.remove(id);
    handle.mark_finished();
}

/// A connection's socket side; see the module docs.
struct Connection<S> {
    /// The socket.
    stream: S,
    /// Bytes read and not yet decoded.
    rbuf: BytesMut,
    /// Splits `rbuf` into requests.
    decoder: Decoder,
    /// The protocol state and output.
    session: Session,
    /// The one timer (stall end, soft limit, request timeout).
    sleep: Pin<Box<Sleep>>,
    /// When input last arrived (for the request timeout).
    last_progress: Instant,
    /// When the client closed its sending side.
    eof_at: Option<Instant>,
    /// Written since the stream was last flushed.
    unflushed: bool,
}

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// The loop of the module docs.
    async fn run(&mut self) {
        loop {
            if self.session.handle.is_killed() {
                return;
            }
            if !self.run_requests() {
                return;
            }
            self.session.forward_messages();
            let now = Instant::now();
            let soft_check = self.session.enforce_output_limit(now);
            if self.session.closing == Closing::Now {
                return;
            }
            self.publish_state();
            if self.session.out.is_empty()
                && !self.unflushed
                && (self.session.closing == Closing::AfterReply || self.eof_at.is_some())
            {
                return;
            }
            if self
                .eof_at
                .is_some_and(|at| now.duration_since(at) > FLUSH_AFTER_EOF)
            {
                return;
            }
            if self
                .request_deadline()
                .is_some_and(|deadline| now >= deadline)
            {
                // A request started arriving and stopped: drop it and its
                // connection rather than hold its memory forever.
                return;
            }
            let stalled_until = self.session.handle.stalled_until();
            let deadline = [
                soft_check,
                stalled_until,
                self.request_deadline(),
                self.eof_deadline(),
            ]
            .into_iter()
            .flatten()
            .min();
            if let Some(deadline) = deadline {
                self.sleep
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(deadline));
            }
            let event = self.wait(stalled_until.is_some(), deadline.is_some()).await;
            match event {
                Event::Control | Event::Timer | Event::Flushed => {}
                Event::Wrote(n) => {
                    self.session.out.advance(n);
                    self.session.shared.stats.count_output(n);
                }
                Event::Read(n) => {
                    self.last_progress = Instant::now();
                    self.session.shared.stats.count_input(n);
                }
                Event::Eof => {
                    self.eof_at = Some(Instant::now());
                }
                Event::Failed => return,
                Event::Message(message) => self.session.out.message(message),
                Event::Ended(RecvError::Disconnected) => {
                    // The engine queue overflowed: the connection fell too
                    // far behind, and goes as a client over its limit does.
                    return;
                }
                Event::Ended(_) => self.session.subscriber_ended = true,
            }
        }
    }

    /// Runs every complete request buffered, unless replies are backed up
    /// or the connection is closing. Returns `false` when the connection
    /// must close at once (a request over the size limit).
    fn run_requests(&mut self) -> bool {
        while self.session.closing == Closing::No && !self.replies_backed_up() {
            self.session.forward_all();
            let limits = Limits {
                max_bulk_len: self.session.shared.config.max_bulk_len(),
                auth_required: self.session.auth_required(),
            };
            match self.decoder.decode(&mut self.rbuf, limits) {
                Ok(Some(args)) => {
                    if !args.is_empty() {
                        cmd::execute(&mut self.session, &args);
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    let mut message = b"ERR ".to_vec();
                    message.extend_from_slice(&error.message());
                    // A protocol error is reported even to a client that
                    // turned replies off, as Redis reports it.
                    self.session.out.set_muted(false);
                    self.session.out.error(&message);
                    self.session.closing = Closing::AfterReply;
                    break;
                }
            }
        }
        let held = self.rbuf.len() + self.decoder.pending_bytes();
        (held as u64) <= self.session.shared.config.query_buffer_limit()
    }

    /// Whether unsent replies are past [`REPLY_BACKLOG_LIMIT`].
    fn replies_backed_up(&self) -> bool {
        let out = &self.session.out;
        out.pending() - out.message_bytes() > REPLY_BACKLOG_LIMIT
    }

    /// When a half-received request times out, if one is pending.
    fn request_deadline(&self) -> Option<Instant> {
        let timeout = self.session.shared.request_timeout?;
        self.decoder
            .in_progress(&self.rbuf)
            .then(|| self.last_progress + timeout)
    }

    /// When to give up flushing to a client that closed its side.
    fn eof_deadline(&self) -> Option<Instant> {
        self.eof_at
            .map(|at| at + FLUSH_AFTER_EOF + Duration::from_millis(1))
    }

    /// Publishes the connection's state for `CLIENT LIST`.
    fn publish_state(&mut self) {
        self.session.query_buffer = self.rbuf.len();
        self.session.read_buffer_size = self.rbuf.capacity();
        self.session.argv_bytes = self.decoder.pending_bytes();
        self.session.publish_state();
    }

    /// Waits for the next event (see the module docs). `stalled` holds
    /// writes back; `timed` arms the timer.
    async fn wait(&mut self, stalled: bool, timed: bool) -> Event {
        let handle = Arc::clone(&self.session.handle);
        let mut woken = pin!(handle.wake.notified());
        let reading = self.eof_at.is_none()
            && self.session.closing == Closing::No
            && !self.replies_backed_up();
        if reading {
            let want = self.decoder.awaited_bulk().map_or(READ_CHUNK, |len| {
                (len + 2)
                    .saturating_sub(self.rbuf.len())
                    .clamp(READ_CHUNK, READ_CHUNK_MAX)
            });
            if self.rbuf.capacity() - self.rbuf.len() < want {
                self.rbuf.reserve(want);
            }
        }
        let receiving = !self.session.subscriber_ended && self.session.closing == Closing::No;
        let Self {
            stream,
            rbuf,
            session,
            sleep,
            unflushed,
            ..
        } = self;
        poll_fn(|cx| {
            if woken.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Control);
            }
            if !stalled && !session.out.is_empty() {
                let mut slices = [IoSlice::new(&[]); MAX_SEGMENTS];
                let count = session.out.fill_slices(&mut slices);
                match Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..count]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Event::Failed),
                    Poll::Ready(Ok(n)) => {
                        *unflushed = true;
                        return Poll::Ready(Event::Wrote(n));
                    }
                    Poll::Pending => {}
                }
            } else if !stalled && *unflushed {
                match Pin::new(&mut *stream).poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        *unflushed = false;
                        if !reading {
                            // Closing, which waited for this flush.
                            return Poll::Ready(Event::Flushed);
                        }
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(Event::Failed),
                    Poll::Pending => {}
                }
            }
            if reading {
                let read = pin!(stream.read_buf(&mut *rbuf));
                match read.poll(cx) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Event::Eof),
                    Poll::Ready(Ok(n)) => return Poll::Ready(Event::Read(n)),
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Poll::Ready(Err(_)) => return Poll::Ready(Event::Failed),
                    Poll::Pending => {}
                }
            }
            if receiving {
                let mut subscriber = session.handle.subscriber();
                let recv = pin!(subscriber.recv_async());
                match recv.poll(cx) {
                    Poll::Ready(Ok(message)) => return Poll::Ready(Event::Message(message)),
                    Poll::Ready(Err(e)) => return Poll::Ready(Event::Ended(e)),
                    Poll::Pending => {}
                }
            }
            if timed && sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Timer);
            }
            Poll::Pending
        })
        .await
    }
}
