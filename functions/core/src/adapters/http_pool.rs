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

/// hyper's side of a connection: the future that writes requests and reads answers.
type Connection = http1::Connection<TokioIo<Box<dyn Io>>, Full<Bytes>>;

/// One HTTP/1 connection: the request side and the connection future that runs it.
pub struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    /// `None` once it has ended (dropping it hands back a request it never took).
    connection: Option<Connection>,
    /// True once it has carried a request (a failure to send on it may be a stale close).
    pub reused: bool,
}

impl Conn {
    /// HTTP/1 over `io` (no bytes are exchanged yet).
    pub async fn handshake(io: Box<dyn Io>) -> Result<Self, hyper::Error> {
        let (sender, connection) = http1::Builder::new().handshake(TokioIo::new(io)).await?;
        Ok(Self {
            sender,
            connection: Some(connection),
            reused: false,
        })
    }

    /// Polls `work` until it is done, running the connection meanwhile. `Err` when the
    /// connection ended first (its error, if it ended with one). A connection that ends
    /// is dropped at once, and `work` polled once more: a request it had not taken yet
    /// comes back to `work` unsent (hyper answers it with the request), even when the
    /// server closed the connection cleanly.
    pub async fn drive<F: Future>(&mut self, work: F) -> Result<F::Output, Option<hyper::Error>> {
        let mut work = pin!(work);
        let slot = &mut self.connection;
        std::future::poll_fn(|cx| {
            // The connection first: it writes the request and reads the answer that
            // `work` waits for.
            let ended = match slot.as_mut().map(|c| c.poll_without_shutdown(cx)) {
                Some(Poll::Pending) => None,
                Some(Poll::Ready(result)) => Some(result.err()),
                None => Some(None),
            };
            if ended.is_some() {
                *slot = None;
            }
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
            let Some(connection) = self.connection.as_mut() else {
                return false;
            };
            if connection.poll_without_shutdown(&mut cx).is_ready() {
                self.connection = None;
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
    /// Each is checked outside the lock (the check reads from its socket).
    pub fn take(&self, origin: &Origin) -> Option<Conn> {
        let now = Instant::now();
        loop {
            let candidate = {
                let mut pools = self.lock();
                let idle = pools.by_origin.get_mut(origin)?;
                let candidate = idle.pop();
                if idle.is_empty() {
                    pools.by_origin.remove(origin);
                }
                candidate?
            };
            let Idle { mut conn, since } = candidate;
            if now.duration_since(since) < IDLE_TIMEOUT && conn.is_reusable() {
                return Some(conn);
            }
        }
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
            } else {
                expired.push(Idle { conn, since: now });
            }
        }
        // Closed outside the lock.
        drop(expired);
    }

    /// Idle connections kept for `origin`.
    pub fn idle(&self, origin: &Origin) -> usize {
        self.lock().by_origin.get(origin).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    fn request() -> http::Request<Full<Bytes>> {
        http::Request::post("/hook")
            .header("host", "receiver.test")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    }

    /// A connection over an in-memory pipe, and the pipe's server end.
    async fn pipe() -> (Conn, DuplexStream) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        (Conn::handshake(Box::new(client)).await.unwrap(), server)
    }

    /// Reads one request head and body (`{}`) from `server` and answers `answer`.
    async fn answer(server: &mut DuplexStream, answer: &str) {
        let mut got = Vec::new();
        while !got.ends_with(b"\r\n\r\n{}") {
            let mut chunk = [0u8; 1024];
            let n = server.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the request ended early");
            got.extend_from_slice(&chunk[..n]);
        }
        server.write_all(answer.as_bytes()).await.unwrap();
    }

    async fn exchange(conn: &mut Conn) -> String {
        let sending = conn.send(request());
        let response = conn.drive(sending).await.unwrap().unwrap();
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(frame) = conn.drive(body.frame()).await.unwrap() {
            text.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        String::from_utf8(text).unwrap()
    }

    use http_body_util::BodyExt;

    /// One exchange on `conn`, answered by `server` with `raw`; the body received.
    async fn answered(conn: &mut Conn, server: &mut DuplexStream, raw: &str) -> String {
        let (got, ()) = tokio::join!(exchange(conn), answer(server, raw));
        got
    }

    #[tokio::test]
    async fn a_keep_alive_connection_is_reusable_until_the_server_closes_it() {
        let (mut conn, mut server) = pipe().await;
        let got = answered(
            &mut conn,
            &mut server,
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        )
        .await;
        assert_eq!(got, "ok");
        assert!(conn.is_reusable());
        assert!(conn.is_reusable(), "checking does not use it up");
        drop(server);
        assert!(!conn.is_reusable());
    }

    #[tokio::test]
    async fn an_answer_that_says_close_leaves_the_connection_unusable() {
        let (mut conn, mut server) = pipe().await;
        let got = answered(
            &mut conn,
            &mut server,
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
        )
        .await;
        assert_eq!(got, "ok");
        assert!(!conn.is_reusable());
    }

    /// The server closed the connection cleanly after the check and before the request
    /// went out: the request comes back, so that it can go out on another connection.
    #[tokio::test]
    async fn a_request_a_closed_connection_never_took_comes_back_unsent() {
        let (mut conn, mut server) = pipe().await;
        let _ = answered(
            &mut conn,
            &mut server,
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        )
        .await;
        drop(server);
        let sending = conn.send(request());
        let mut refused = match conn.drive(sending).await {
            Ok(Err(refused)) => refused,
            Ok(Ok(_)) => panic!("answered on a closed connection"),
            Err(e) => panic!("the request was lost with the connection: {e:?}"),
        };
        let back = refused.take_message().expect("the request comes back");
        assert_eq!(back.uri().path(), "/hook");
        assert!(conn.reused);
        assert!(!conn.is_reusable());
    }

    #[tokio::test]
    async fn the_pool_hands_back_the_latest_connection_and_keeps_no_closed_one() {
        let pool = Pool::default();
        let origin = Origin {
            tls: false,
            host: "receiver.test".into(),
            port: 80,
        };
        let (first, first_server) = pipe().await;
        let (second, _second_server) = pipe().await;
        pool.give(&origin, first);
        pool.give(&origin, second);
        assert_eq!(pool.idle(&origin), 2);
        // The first one's server goes away while it is idle.
        drop(first_server);
        assert!(pool.take(&origin).is_some(), "the second, still open");
        assert!(
            pool.take(&origin).is_none(),
            "the first was closed, and dropped"
        );
        assert_eq!(pool.idle(&origin), 0);
    }
}
