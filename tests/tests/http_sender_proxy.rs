//! The delivery client uses no proxy, even when the environment names one: a proxy would
//! resolve the receiver's name itself, around the network policy's check. Here
//! `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` name a listener on 127.0.0.1 that counts
//! the connections it gets, and every request still goes straight to the receiver. Its own
//! binary: the environment is the whole process's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use webhooks_core::adapters::http::{ReqwestSender, StaticLookup};
use webhooks_core::model::network::{IpRange, NetworkPolicy};
use webhooks_core::ports::http::{HttpSender, OutgoingRequest};
use webhooks_tests::receiver::{Behaviour, Receiver};

#[test]
fn a_proxy_in_the_environment_is_not_used() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The proxy: answers whatever it is sent with `200 proxied`, and counts its connections.
    let (proxy_port, proxied) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                // The request (small: one read), then the answer.
                let _ = stream.read(&mut [0u8; 4096]).await;
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nproxied";
                let _ = stream.write_all(answer).await;
            }
        });
        (port, count)
    });
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    // SAFETY: the runtime's threads read no environment, and this is the binary's only test.
    unsafe {
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            std::env::set_var(name, &proxy);
            std::env::remove_var(name.to_ascii_lowercase());
        }
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
    runtime.block_on(async {
        let receiver = Receiver::start().await;
        receiver.always(Behaviour::ok());
        let names: HashMap<String, Vec<IpAddr>> =
            [("hooks.test".to_string(), vec!["127.0.0.1".parse().unwrap()])].into();
        let sender = ReqwestSender::with_lookup(
            NetworkPolicy::allowing(IpRange::loopback()),
            Arc::new(StaticLookup(names)),
        );
        let port = receiver.port();
        for url in [
            format!("http://hooks.test:{port}/hook"),
            format!("http://127.0.0.1:{port}/hook"),
        ] {
            let r = sender
                .post(&OutgoingRequest {
                    url: url.clone(),
                    headers: vec![],
                    body: b"{}".to_vec(),
                    timeout: Duration::from_secs(5),
                    body_cap: webhooks_core::ports::http::MAX_RESPONSE_BODY,
                })
                .await
                .unwrap();
            assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{url}");
        }
        assert_eq!(receiver.wait_for(2, Duration::from_secs(5)).await.len(), 2);
        assert_eq!(proxied.load(Ordering::SeqCst), 0, "the proxy was used");
    });
}
