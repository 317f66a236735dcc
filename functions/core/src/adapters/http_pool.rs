//! HTTP/1 connections for the delivery client ([`super::http::HyperSender`]), each driven
//! by the task that sends on it, and kept idle per origin between requests.
//!
//! Guarantees:
//!
//! * **No task per connection.** A connection is a hyper `SendRequest` and its
//!   `Connection` future, held together; the caller polls the `Connection` while it waits
//!   for its answer ([`Conn::drive`]), so a request costs no hand-off between tasks (with
//!   reqwest, the connection's own task wrote each request and woke the caller with the
//!   answer: about two thirds of the client's CPU per request).
//! * **An idle connection is never polled**, so one the server closed is found out at the
//!   next checkout ([`Conn::is_reusable`], one poll that reads the pending close) and
//!   dropped, not used. A request that a reused connection could not even send (the server
//!   closed it in between) is handed back unsent by hyper and sent once more on a new
//!   connection by the caller; one that may have reached the server is never sent twice.
//! * **Bounded.** At most [`MAX_IDLE_PER_ORIGIN`] idle connections per origin, each kept at
//!   most [`IDLE_TIMEOUT`] (reqwest's default); expired ones are dropped when their origin
//!   is next used and, every [`SWEEP_EVERY`], everywhere.
//! * A connection goes back to the pool only when its answer was read to the end and hyper
//!   says it can take another request; a cut body, a timeout or an error drops it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Idle connections kept per origin (the local runner has up to 80 requests in flight to
/// one receiver).
pub const MAX_IDLE_PER_ORIGIN: usize = 128;
/// How long an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often every origin's expired connections are dropped.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// A byte stream a connection runs on: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Where a connection goes: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

/// One HTTP/1 connection: the request side and the connection future that runs it.
pub struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    connection: http1::Connection<TokioIo<Box<dyn Io>>, Full<Bytes>>,
    /// True once it has carried a request (a failure to send on it may be a stale close).
    pub reused: bool,
}

impl Conn {
    /// HTTP/1 over `io` (no bytes are exchanged yet).
    pub async fn handshake(io: Box<dyn Io>) -> Result<Self, hyper::Error> {
        let (sender, connection) = http1::Builder::new().handshake(TokioIo::new(io)).await?;
        Ok(Self {
            sender,
            connection,
            reused: false,
        })
    }

    /// Polls `work` until it is done, running the connection meanwhile. `Err` when the
    /// connection ended first (its error, if it ended with one).
    pub async fn drive<F: Future>(&mut self, work: F) -> Result<F::Output, Option<hyper::Error>> {
        let mut work = pin!(work);
        let connection = &mut self.connection;
        std::future::poll_fn(|cx| {
            // The connection first: it writes the request and reads the answer that
            // `work` waits for.
            let ended = match connection.poll_without_shutdown(cx) {
                Poll::Ready(Ok(())) => Some(None),
                Poll::Ready(Err(e)) => Some(Some(e)),
                Poll::Pending => None,
            };
            if let Poll::Ready(out) = work.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            match ended {
                Some(error) => Poll::Ready(Err(error)),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Sends `request`; its answer's head comes back through [`Conn::drive`]. hyper hands
    /// a request back, in the error, when it could not be sent at all.
    pub fn send(
        &mut self,
        request: http::Request<Full<Bytes>>,
    ) -> impl Future<
        Output = Result<
            http::Response<hyper::body::Incoming>,
            hyper::client::conn::TrySendError<http::Request<Full<Bytes>>>,
        >,
    > + use<> {
        self.reused = true;
        self.sender.try_send_request(request)
    }

    /// Whether it can take another request now, without waiting: the answer before was
    /// read to the end, the server did not close it, and hyper is ready for the next one.
    /// Polls the connection (so that it reads a pending close, or finishes with the last
    /// answer) with a waker that wakes nobody: nothing waits on an idle connection.
    pub fn is_reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..2 {
            if self.connection.poll_without_shutdown(&mut cx).is_ready() {
                return false;
            }
            match self.sender.poll_ready(&mut cx) {
                Poll::Ready(Ok(())) => return true,
                Poll::Ready(Err(_)) => return false,
                Poll::Pending => {}
            }
        }
        false
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

#[derive(Default)]
struct Pools {
    by_origin: HashMap<Origin, Vec<Idle>>,
    swept_at: Option<Instant>,
}

/// Idle connections by origin; see the module documentation.
#[derive(Default)]
pub struct Pool {
    pools: Mutex<Pools>,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pools> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used idle connection to `origin` that is still open, if any.
    pub fn take(&self, origin: &Origin) -> Option<Conn> {
        let now = Instant::now();
        let mut dropped = Vec::new();
        let found = {
            let mut pools = self.lock();
            let idle = pools.by_origin.get_mut(origin)?;
            let mut found = None;
            while let Some(mut entry) = idle.pop() {
                if now.duration_since(entry.since) < IDLE_TIMEOUT && entry.conn.is_reusable() {
                    found = Some(entry.conn);
                    break;
                }
                dropped.push(entry);
            }
            if idle.is_empty() {
                pools.by_origin.remove(origin);
            }
            found
        };
        // Closed outside the lock.
        drop(dropped);
        found
    }

    /// Keeps `conn` for the next request to `origin`, if it can take one and there is room.
    pub fn give(&self, origin: &Origin, mut conn: Conn) {
        if !conn.is_reusable() {
            return;
        }
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut pools = self.lock();
            if pools
                .swept_at
                .is_none_or(|at| now.duration_since(at) >= SWEEP_EVERY)
            {
                pools.swept_at = Some(now);
                pools.by_origin.retain(|_, idle| {
                    let (keep, old): (Vec<Idle>, Vec<Idle>) = idle
                        .drain(..)
                        .partition(|e| now.duration_since(e.since) < IDLE_TIMEOUT);
                    expired.extend(old);
                    *idle = keep;
                    !idle.is_empty()
                });
            }
            let idle = pools.by_origin.entry(origin.clone()).or_default();
            if idle.len() < MAX_IDLE_PER_ORIGIN {
                idle.push(Idle { conn, since: now });
            }
        }
        drop(expired);
    }

    /// Idle connections kept for `origin`.
    pub fn idle(&self, origin: &Origin) -> usize {
        self.lock().by_origin.get(origin).map_or(0, Vec::len)
    }
}
