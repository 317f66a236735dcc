//! The delivery client over TLS, against a receiver on 127.0.0.1 whose certificate is
//! signed by an authority made here and trusted through `SSL_CERT_FILE`, as the system's
//! roots are read. Its own binary: the roots are read once per process.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::header::CONTENT_TYPE;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use webhooks_core::adapters::http::{ReqwestSender, StaticLookup};
use webhooks_core::model::network::{IpRange, NetworkPolicy};
use webhooks_core::ports::http::{HttpSender, OutgoingRequest};

struct Pki {
    ca_pem: String,
    leaf_der: rustls::pki_types::CertificateDer<'static>,
    leaf_key: rustls::pki_types::PrivateKeyDer<'static>,
}

/// An authority, and a certificate it signs for `names`.
fn pki(names: &[&str]) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "webhooks test authority");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        leaf_der: leaf.der().clone(),
        leaf_key: rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    }
}

/// A TLS receiver answering every request `200 secure`; counts connections and requests.
async fn tls_receiver(pki: &Pki) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![pki.leaf_der.clone()], pki.leaf_key.clone_key())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (connections, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (accepted, read) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, accepted, read) = (acceptor.clone(), accepted.clone(), read.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    // The test's requests carry a body ending in `}`.
                    if buf.ends_with(b"}") {
                        buf.clear();
                        read.fetch_add(1, Ordering::SeqCst);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecure";
                        if tls.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, connections, requests)
}

fn post(url: String) -> OutgoingRequest {
    OutgoingRequest {
        url,
        headers: vec![(CONTENT_TYPE, "application/json".into())],
        body: br#"{"id":7}"#.to_vec(),
        timeout: Duration::from_secs(5),
        body_cap: webhooks_core::ports::http::MAX_RESPONSE_BODY,
    }
}

#[test]
fn https_to_a_trusted_receiver_is_delivered_on_one_verified_connection() {
    let pki = pki(&["hooks.test"]);
    let dir = std::env::temp_dir().join(format!("webhooks-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    // SAFETY: set before any thread of this test binary's own starts, and the only test in it.
    unsafe {
        std::env::set_var("SSL_CERT_FILE", &ca_file);
        std::env::remove_var("SSL_CERT_DIR");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (port, connections, requests) = tls_receiver(&pki).await;
        let loopback: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
        let names: HashMap<String, Vec<IpAddr>> = [
            ("hooks.test".to_string(), loopback.clone()),
            ("other.test".to_string(), loopback),
        ]
        .into();
        let sender = ReqwestSender::with_lookup(
            NetworkPolicy::allowing(IpRange::loopback()),
            Arc::new(StaticLookup(names)),
        );
        for _ in 0..3 {
            let r = sender
                .post(&post(format!("https://hooks.test:{port}/hook")))
                .await
                .unwrap();
            assert_eq!((r.status, r.body.as_str()), (200, "secure"));
        }
        assert_eq!(
            connections.load(Ordering::SeqCst),
            1,
            "one TLS connection, reused"
        );
        assert_eq!(requests.load(Ordering::SeqCst), 3);

        // The same receiver under a name its certificate does not carry: refused as TLS,
        // before any request is sent.
        let err = sender
            .post(&post(format!("https://other.test:{port}/hook")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "tls", "{err:?}");
        // By address: the certificate names no address either.
        let err = sender
            .post(&post(format!("https://127.0.0.1:{port}/hook")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "tls", "{err:?}");
        assert_eq!(requests.load(Ordering::SeqCst), 3);
    });
    let _ = std::fs::remove_dir_all(&dir);
}
