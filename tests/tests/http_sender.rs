//! The delivery client (reqwest) against real receivers on 127.0.0.1: what arrives, what
//! comes back, time limits, broken connections, connections kept between requests and the
//! network policy. Nothing here sends traffic beyond the loopback interface: refused
//! addresses are refused before connecting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::CONTENT_TYPE;
use webhooks_core::adapters::http::{ReqwestSender, StaticLookup};
use webhooks_core::model::network::{IpRange, NetworkPolicy};
use webhooks_core::ports::http::{HttpSender, MAX_RESPONSE_BODY, OutgoingRequest, SendError};
use webhooks_core::security::signing::{WEBHOOK_ID, X_ACCELO_EVENT, X_HUB_SIGNATURE};
use webhooks_tests::receiver::{Behaviour, Receiver, refused_url};

fn loopback() -> NetworkPolicy {
    NetworkPolicy::allowing(IpRange::loopback())
}

fn sender() -> ReqwestSender {
    ReqwestSender::new(loopback())
}

fn post(url: &str) -> OutgoingRequest {
    OutgoingRequest {
        url: url.to_owned(),
        headers: vec![(CONTENT_TYPE, "application/json".into())],
        body: br#"{"id":7}"#.to_vec(),
        timeout: Duration::from_secs(5),
        body_cap: MAX_RESPONSE_BODY,
    }
}

fn timed(url: &str, timeout: Duration) -> OutgoingRequest {
    OutgoingRequest {
        timeout,
        ..post(url)
    }
}

fn static_lookup(entries: &[(&str, &[&str])]) -> Arc<StaticLookup> {
    Arc::new(StaticLookup(
        entries
            .iter()
            .map(|(name, ips)| {
                let ips: Vec<IpAddr> = ips.iter().map(|s| s.parse().unwrap()).collect();
                (name.to_string(), ips)
            })
            .collect::<HashMap<_, _>>(),
    ))
}

#[tokio::test]
async fn the_exact_request_arrives_and_the_answer_comes_back() {
    let receiver = Receiver::start().await;
    receiver.always(Behaviour::Respond {
        status: 200,
        headers: vec![("x-extra".into(), "1".into())],
        body: "thanks".into(),
    });
    let body =
        b"{\"id\":\"42\",\"resource_url\":\"https://x/api/v0/tasks/42\"}\n\xe2\x9c\x93".to_vec();
    let request = OutgoingRequest {
        url: receiver.url.clone(),
        headers: vec![
            (CONTENT_TYPE, "application/json".into()),
            (X_ACCELO_EVENT, "assign_task".into()),
            (X_HUB_SIGNATURE, "sha1=0123abcd".into()),
            (WEBHOOK_ID, "msg_1".into()),
        ],
        body: body.clone(),
        timeout: Duration::from_secs(5),
        body_cap: MAX_RESPONSE_BODY,
    };
    let response = sender().post(&request).await.unwrap();
    assert_eq!(
        response,
        webhooks_core::ports::http::HttpResponse {
            status: 200,
            retry_after: None,
            body: "thanks".into()
        }
    );

    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hook");
    assert_eq!(r.body, body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-accelo-event"), Some("assign_task"));
    assert_eq!(r.header("X-Hub-Signature"), Some("sha1=0123abcd"));
    assert_eq!(r.header("webhook-id"), Some("msg_1"));
    assert_eq!(r.header("accept"), Some("*/*"));
    assert_eq!(
        r.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    // Our headers arrive in the order given (reqwest may add its own around them).
    let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
    let ours = [
        "content-type",
        "x-accelo-event",
        "x-hub-signature",
        "webhook-id",
    ];
    let positions: Vec<usize> = ours
        .iter()
        .map(|o| names.iter().position(|n| n == o).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{names:?}");
}

#[tokio::test]
async fn error_statuses_and_redirects_come_back_as_responses() {
    let receiver = Receiver::start().await;
    let target = Receiver::start().await;
    receiver.script(vec![
        Behaviour::Status(500),
        Behaviour::Respond {
            status: 410,
            headers: vec![],
            body: "gone".into(),
        },
        Behaviour::Redirect(target.url.clone()),
        Behaviour::Respond {
            status: 503,
            headers: vec![("Retry-After".into(), "120".into())],
            body: String::new(),
        },
        Behaviour::Respond {
            status: 429,
            headers: vec![("retry-after".into(), "Wed, 21 Oct 2015 07:28:00 GMT".into())],
            body: String::new(),
        },
    ]);
    let sender = sender();
    let r = sender.post(&post(&receiver.url)).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (500, ""));
    let r = sender.post(&post(&receiver.url)).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (410, "gone"));
    let r = sender.post(&post(&receiver.url)).await.unwrap();
    assert_eq!(r.status, 302);
    let r = sender.post(&post(&receiver.url)).await.unwrap();
    assert_eq!((r.status, r.retry_after.as_deref()), (503, Some("120")));
    let r = sender.post(&post(&receiver.url)).await.unwrap();
    assert_eq!(
        (r.status, r.retry_after.as_deref()),
        (429, Some("Wed, 21 Oct 2015 07:28:00 GMT"))
    );
    assert_eq!(receiver.requests().len(), 5);
    // The redirect was not followed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(target.requests().is_empty());
}

#[tokio::test]
async fn a_long_response_body_is_cut() {
    let receiver = Receiver::start().await;
    let long: String = "abcdefghij".repeat(10 * 1024); // 100 KB
    receiver.always(Behaviour::Respond {
        status: 200,
        headers: vec![],
        body: long.clone(),
    });
    let r = sender().post(&post(&receiver.url)).await.unwrap();
    assert_eq!(r.body.len(), MAX_RESPONSE_BODY);
    assert_eq!(r.body, long[..MAX_RESPONSE_BODY]);
}

#[tokio::test]
async fn a_silent_receiver_times_out() {
    let receiver = Receiver::start().await;
    receiver.always(Behaviour::Hang);
    let started = Instant::now();
    let err = sender()
        .post(&timed(&receiver.url, Duration::from_secs(1)))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err, SendError::Timeout);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn a_slow_receiver_within_the_limit_succeeds() {
    let receiver = Receiver::start().await;
    receiver.always(Behaviour::Delay(Duration::from_millis(300), 202));
    let started = Instant::now();
    let r = sender()
        .post(&timed(&receiver.url, Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_reset_connection_is_reported() {
    let receiver = Receiver::start().await;
    receiver.always(Behaviour::Reset);
    let err = sender().post(&post(&receiver.url)).await.unwrap_err();
    assert_eq!(err, SendError::ConnectionReset);
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn a_closed_port_refuses() {
    let err = sender().post(&post(&refused_url())).await.unwrap_err();
    assert_eq!(err, SendError::ConnectionRefused);
}

#[tokio::test]
async fn tls_to_a_plain_http_server_fails_as_tls() {
    let receiver = Receiver::start().await;
    let url = receiver.url.replace("http://", "https://");
    let err = sender().post(&post(&url)).await.unwrap_err();
    assert_eq!(err.kind(), "tls", "{err:?}");
}

#[tokio::test]
async fn loopback_is_blocked_by_the_default_policy() {
    let receiver = Receiver::start().await;
    let sender = ReqwestSender::new(NetworkPolicy::default());
    let err = sender.post(&post(&receiver.url)).await.unwrap_err();
    assert!(matches!(err, SendError::BlockedAddress(_)), "{err:?}");

    // Through a name too: the resolver refuses it.
    let lookup = static_lookup(&[("local.test", &["127.0.0.1"])]);
    let sender = ReqwestSender::with_lookup(NetworkPolicy::default(), lookup);
    let url = format!("http://local.test:{}/hook", receiver.port());
    let err = sender.post(&post(&url)).await.unwrap_err();
    assert_eq!(
        err,
        SendError::BlockedAddress("local.test resolves only to a loopback address".into())
    );

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn literal_refused_addresses_are_blocked_without_connecting() {
    let receiver = Receiver::start().await;
    let sender = sender();
    let mapped = format!("http://[::ffff:127.0.0.1]:{}/hook", receiver.port());
    for url in [
        mapped.as_str(),
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00::1]/",
        "https://[fd00:ec2::254]/",
        "http://[::ffff:10.0.0.1]/",
    ] {
        let started = Instant::now();
        let err = sender.post(&post(url)).await.unwrap_err();
        assert!(
            matches!(err, SendError::BlockedAddress(_)),
            "{url}: {err:?}"
        );
        // Refused up front: no connection attempt (which would hang or fail slowly).
        assert!(started.elapsed() < Duration::from_millis(500), "{url}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn a_name_with_a_refused_and_an_allowed_address_is_pinned_to_the_allowed_one() {
    let receiver = Receiver::start().await;
    let lookup = static_lookup(&[("rebind.test", &["10.0.0.7", "127.0.0.1"])]);
    let sender = ReqwestSender::with_lookup(loopback(), lookup);
    let url = format!("http://rebind.test:{}/hook", receiver.port());
    for _ in 0..3 {
        let r = sender
            .post(&timed(&url, Duration::from_secs(3)))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let got = receiver.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(
        got[0].header("host"),
        Some(&*format!("rebind.test:{}", receiver.port()))
    );
}

/// The refused address is never even connected to: here it is a listening one
/// (127.0.0.2, outside the allowed 127.0.0.1/32) that counts its connections.
#[tokio::test]
async fn the_refused_address_of_a_mixed_name_is_never_connected_to() {
    let receiver = Receiver::start().await;
    let decoy = tokio::net::TcpListener::bind(("127.0.0.2", receiver.port()))
        .await
        .unwrap();
    let touched = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = touched.clone();
    tokio::spawn(async move {
        while decoy.accept().await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let only_one = NetworkPolicy::allowing(vec!["127.0.0.1/32".parse().unwrap()]);
    let lookup = static_lookup(&[("mixed.test", &["127.0.0.2", "127.0.0.1"])]);
    let sender = ReqwestSender::with_lookup(only_one, lookup);
    let url = format!("http://mixed.test:{}/hook", receiver.port());
    for _ in 0..3 {
        assert_eq!(
            sender
                .post(&timed(&url, Duration::from_secs(3)))
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(receiver.requests().len(), 3);
    assert_eq!(
        touched.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "127.0.0.2 was refused, so never dialled"
    );
}

#[tokio::test]
async fn a_name_with_only_refused_addresses_is_blocked() {
    let lookup = static_lookup(&[("private.test", &["10.0.0.7", "192.168.1.1"])]);
    let sender = ReqwestSender::with_lookup(loopback(), lookup);
    let err = sender
        .post(&post("http://private.test/hook"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SendError::BlockedAddress("private.test resolves only to a private address".into())
    );
}

#[tokio::test]
async fn an_unknown_name_is_a_dns_failure() {
    let lookup = static_lookup(&[]);
    let sender = ReqwestSender::with_lookup(loopback(), lookup);
    let err = sender
        .post(&post("http://nowhere.test/hook"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Dns(m) if m.contains("nowhere.test")),
        "{err:?}"
    );
}

#[tokio::test]
async fn one_sender_serves_many_requests_concurrently() {
    let receiver = Receiver::start().await;
    let sender = sender();
    let requests: Vec<_> = (0..20)
        .map(|i| OutgoingRequest {
            body: format!("{{\"id\":{i}}}").into_bytes(),
            ..post(&receiver.url)
        })
        .collect();
    let results = futures_join(&sender, &requests).await;
    assert!(results.iter().all(|r| r.as_ref().unwrap().status == 200));
    let got = receiver.wait_for(20, Duration::from_secs(5)).await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
}

async fn futures_join(
    sender: &ReqwestSender,
    requests: &[OutgoingRequest],
) -> Vec<Result<webhooks_core::ports::http::HttpResponse, SendError>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, r) in requests.iter().enumerate() {
        let sender = sender.clone();
        let r = r.clone();
        set.spawn(async move { (i, sender.post(&r).await) });
    }
    let mut out: Vec<_> = set.join_all().await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

// --- connections kept between requests ---------------------------------------------------------------

/// How [`RawServer`] treats a connection after each answer.
#[derive(Clone, Copy, PartialEq)]
enum AfterAnswer {
    /// Keeps it open for the next request.
    KeepAlive,
    /// Closes it, without saying so in the answer (as a server's idle timeout does).
    Close,
    /// Says `Connection: close`, and closes it only a while later.
    SayCloseThenLinger,
}

/// A plain HTTP/1.1 server that counts the connections it accepts and the requests it
/// reads, and answers each request `200` with `body`.
struct RawServer {
    url: String,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
}

impl RawServer {
    async fn start(after: AfterAnswer, body: String) -> Self {
        use std::sync::atomic::Ordering::SeqCst;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (accepted, read) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                accepted.fetch_add(1, SeqCst);
                let (read, body) = (read.clone(), body.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        // One request: its head, then its Content-Length of body.
                        let head_end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while buf.len() < head_end + length {
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..head_end + length);
                        read.fetch_add(1, SeqCst);
                        let close = if after == AfterAnswer::SayCloseThenLinger {
                            "connection: close\r\n"
                        } else {
                            ""
                        };
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{close}\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                        match after {
                            AfterAnswer::KeepAlive => {}
                            AfterAnswer::Close => return,
                            AfterAnswer::SayCloseThenLinger => {
                                tokio::time::sleep(Duration::from_millis(500)).await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        Self {
            url,
            connections,
            requests,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn requests_one_after_another_share_one_connection() {
    let server = RawServer::start(AfterAnswer::KeepAlive, "ok".into()).await;
    let sender = sender();
    for _ in 0..5 {
        let r = sender.post(&post(&server.url)).await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    }
    assert_eq!((server.connections(), server.requests()), (1, 5));
    // Clones share the pool.
    sender.clone().post(&post(&server.url)).await.unwrap();
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn a_connection_the_server_closed_is_not_used_again() {
    let server = RawServer::start(AfterAnswer::Close, "ok".into()).await;
    let sender = sender();
    for _ in 0..5 {
        let r = sender.post(&post(&server.url)).await.unwrap();
        assert_eq!(r.status, 200);
        // The server's close reaches us before the next request is made.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Each request went out once, each on a connection of its own.
    assert_eq!((server.connections(), server.requests()), (5, 5));
}

#[tokio::test]
async fn an_answer_that_says_connection_close_ends_its_connection() {
    let server = RawServer::start(AfterAnswer::SayCloseThenLinger, "ok".into()).await;
    let sender = sender();
    for _ in 0..3 {
        // At once: the server has not closed the connection yet.
        assert_eq!(sender.post(&post(&server.url)).await.unwrap().status, 200);
    }
    assert_eq!((server.connections(), server.requests()), (3, 3));
}

#[tokio::test]
async fn a_connection_whose_answer_was_cut_is_not_used_again() {
    // Far more than the client reads ahead: the rest of the answer is still on the way
    // when the body is cut. (A short rest that hyper has already read whole leaves a
    // connection fit for the next request.)
    let long = "x".repeat(MAX_RESPONSE_BODY * 256);
    let server = RawServer::start(AfterAnswer::KeepAlive, long).await;
    let sender = sender();
    for _ in 0..3 {
        let r = sender.post(&post(&server.url)).await.unwrap();
        assert_eq!(r.body.len(), MAX_RESPONSE_BODY);
    }
    // The rest of a cut body was never read, so its connection cannot carry another
    // request.
    assert_eq!((server.connections(), server.requests()), (3, 3));
}

#[tokio::test]
async fn a_connection_that_timed_out_is_not_used_again() {
    let receiver = Receiver::start().await;
    receiver.script(vec![Behaviour::Delay(Duration::from_millis(400), 200)]);
    receiver.always(Behaviour::ok());
    let sender = sender();
    let err = sender
        .post(&timed(&receiver.url, Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert_eq!(err, SendError::Timeout);
    // The late answer to the first request is not taken for the second's.
    let r = sender.post(&post(&receiver.url)).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
}

/// A name whose first address drops connection attempts (a listener whose queue is full:
/// Linux drops the SYN) and whose second answers: the first gets its share of the time
/// limit, not all of it, and the request goes to the second.
#[tokio::test]
async fn an_address_that_never_answers_leaves_time_for_the_next_one() {
    let receiver = Receiver::start().await;
    let port = receiver.port();
    // On the receiver's port, at another loopback address; nothing ever accepts.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 3], port).into()).unwrap();
    let _silent = socket.listen(1).unwrap();
    let mut queued = Vec::new();
    for _ in 0..4 {
        let connect = tokio::net::TcpStream::connect(("127.0.0.3", port));
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(200), connect).await {
            queued.push(s);
        }
    }
    let probe = tokio::net::TcpStream::connect(("127.0.0.3", port));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), probe)
            .await
            .is_err(),
        "with its queue full, the listener should drop new connections"
    );

    let lookup = static_lookup(&[("dual.test", &["127.0.0.3", "127.0.0.1"])]);
    let sender = ReqwestSender::with_lookup(loopback(), lookup);
    let started = Instant::now();
    let r = sender
        .post(&timed(
            &format!("http://dual.test:{port}/hook"),
            Duration::from_secs(2),
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // About half the limit went to the silent address.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(receiver.requests().len(), 1);

    // With one silent address alone, the whole limit is spent and it times out.
    let lookup = static_lookup(&[("silent.test", &["127.0.0.3"])]);
    let sender = ReqwestSender::with_lookup(loopback(), lookup);
    let err = sender
        .post(&timed(
            &format!("http://silent.test:{port}/hook"),
            Duration::from_millis(300),
        ))
        .await
        .unwrap_err();
    assert_eq!(err, SendError::Timeout);
    drop(queued);
}

#[tokio::test]
async fn each_request_reads_the_answer_up_to_its_own_cap() {
    let receiver = Receiver::start().await;
    receiver.always(Behaviour::Respond {
        status: 200,
        headers: vec![],
        body: "a".repeat(70 * 1024),
    });
    let sender = sender();
    let delivery = sender.post(&post(&receiver.url)).await.unwrap();
    assert_eq!(delivery.body.len(), MAX_RESPONSE_BODY);
    let token_sized = sender
        .post(&OutgoingRequest {
            body_cap: 64 * 1024 + 1,
            ..post(&receiver.url)
        })
        .await
        .unwrap();
    assert_eq!(token_sized.body.len(), 64 * 1024 + 1);
}
