//! A real webhook receiver for tests: an HTTP/1 server on 127.0.0.1 (a free port) that
//! records every request and answers as told (a status, a full response, a delay, no
//! answer at all, a dropped connection, a redirect). Dropping it stops it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::TcpListener as StdListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// This status and an empty body.
    Status(u16),
    /// This status, these headers and this body.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// This status and an empty body, after waiting.
    Delay(Duration, u16),
    /// Never answers; the connection stays open until the receiver stops.
    Hang,
    /// Closes the connection without answering (an RST: `SO_LINGER` 0).
    Reset,
    /// `302 Found` with this `Location`.
    Redirect(String),
}

impl Behaviour {
    pub fn ok() -> Self {
        Behaviour::Respond {
            status: 200,
            headers: vec![],
            body: "ok".into(),
        }
    }

    /// `503` with this `Retry-After` and the body `busy`.
    pub fn busy(retry_after: &str) -> Self {
        Behaviour::Respond {
            status: 503,
            headers: vec![("Retry-After".into(), retry_after.into())],
            body: "busy".into(),
        }
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The path with its query, if any (`/hook`, `/hook?a=1`).
    pub path: String,
    /// Names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, by case-insensitive name, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (lossily).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The headers as a `HeaderMap` (for verifiers such as the `standardwebhooks` crate).
    pub fn header_map(&self) -> hyper::HeaderMap {
        let mut map = hyper::HeaderMap::new();
        for (name, value) in &self.headers {
            map.append(
                hyper::header::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                value.parse().expect("a header value"),
            );
        }
        map
    }
}

struct State {
    default: Behaviour,
    script: VecDeque<Behaviour>,
    requests: Vec<Recorded>,
}

struct Shared {
    state: Mutex<State>,
    count: watch::Sender<usize>,
}

impl Shared {
    /// Records a request and picks the answer for it.
    fn record(&self, recorded: Recorded) -> Behaviour {
        let (answer, n) = {
            let mut state = self.state.lock().unwrap();
            state.requests.push(recorded);
            let answer = match state.script.pop_front() {
                Some(b) => b,
                None => state.default.clone(),
            };
            (answer, state.requests.len())
        };
        self.count.send_replace(n);
        answer
    }
}

/// A running receiver. Its URL is `http://127.0.0.1:PORT/hook`.
pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver that answers `200 ok` until told otherwise.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port on 127.0.0.1");
        let port = listener.local_addr().expect("a bound address").port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                default: Behaviour::ok(),
                script: VecDeque::new(),
                requests: Vec::new(),
            }),
            count: watch::Sender::new(0),
        });
        let server = tokio::spawn(accept_loop(listener, shared.clone()));
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            shared,
            server,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.url
            .trim_start_matches("http://127.0.0.1:")
            .trim_end_matches("/hook")
            .parse()
            .expect("a port in the URL")
    }

    /// The default answer from now on.
    pub fn always(&self, b: Behaviour) {
        self.shared.state.lock().unwrap().default = b;
    }

    /// Changes the default answer and returns how many requests had arrived, in one step:
    /// the requests before that index were answered as before, those from it on (until
    /// the next change) get `b`.
    pub fn switch(&self, b: Behaviour) -> usize {
        let mut state = self.shared.state.lock().unwrap();
        state.default = b;
        state.requests.len()
    }

    /// Answers given in order to the next requests, before the default again.
    pub fn script(&self, answers: Vec<Behaviour>) {
        self.shared.state.lock().unwrap().script = answers.into();
    }

    /// How many requests arrived so far (cheap: nothing is copied).
    pub fn count(&self) -> usize {
        *self.shared.count.borrow()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    /// Waits until at least `n` requests arrived, and returns them all; panics after
    /// `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let mut rx = self.shared.count.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|&c| c >= n)).await;
        if reached.is_err() {
            let got = self.requests();
            panic!(
                "the receiver at {} expected {n} request(s) within {timeout:?} but got {}: {:#?}",
                self.url,
                got.len(),
                got.iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect::<Vec<_>>()
            );
        }
        self.requests()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // The accept loop owns the connection tasks: aborting it aborts them all.
        self.server.abort();
    }
}

/// A URL on 127.0.0.1 where nothing listens.
pub fn refused_url() -> String {
    let listener = StdListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1");
    let port = listener.local_addr().expect("a bound address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/hook")
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve(stream, shared.clone()));
                }
            }
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    // A second handle on the socket, to set SO_LINGER 0 when the answer is a reset.
    let Ok(std_stream) = stream.into_std() else {
        return;
    };
    let control = std_stream.try_clone();
    let Ok(stream) = TcpStream::from_std(std_stream) else {
        return;
    };
    let reset = Arc::new(Notify::new());
    let service = {
        let reset = reset.clone();
        service_fn(move |req| answer(req, shared.clone(), reset.clone()))
    };
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        _ = reset.notified() => {
            if let Ok(control) = control {
                let _ = TcpSocket::from_std_stream(control).set_zero_linger();
            }
            // Both handles close here (the connection future is dropped): an RST.
        }
    }
}

async fn answer(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    reset: Arc<Notify>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        // The client went away mid-request: nothing to record or answer.
        Err(_) => std::future::pending().await,
    };
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| parts.uri.path().to_owned()),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let response = |status: u16, headers: &[(String, String)], body: String| {
        let mut builder = Response::builder().status(status);
        for (n, v) in headers {
            builder = builder.header(n.as_str(), v.as_str());
        }
        Ok(builder
            .body(Full::new(Bytes::from(body)))
            .expect("a valid test response"))
    };
    match shared.record(recorded) {
        Behaviour::Status(status) => response(status, &[], String::new()),
        Behaviour::Respond {
            status,
            headers,
            body,
        } => response(status, &headers, body),
        Behaviour::Delay(wait, status) => {
            tokio::time::sleep(wait).await;
            response(status, &[], String::new())
        }
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Reset => {
            reset.notify_one();
            std::future::pending().await
        }
        Behaviour::Redirect(location) => {
            response(302, &[("location".into(), location)], String::new())
        }
    }
}
