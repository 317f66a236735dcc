//! The HTTP sender on reqwest's HTTP/1.1 client, with rustls for TLS. A sender builds its
//! client at its first request (one per time limit, and a deliverer has one limit) and
//! reuses it across requests and warm invocations, keeping idle connections per host;
//! clones share it. HTTP/1.1 is the only protocol spoken, and the only one offered by ALPN.
//!
//! Redirects are never followed and no proxy is used (reqwest would take one from
//! `HTTP_PROXY` and the like, and a proxy resolves names itself, around the check below).
//! Every host name is resolved through reqwest's resolver hook (`GuardedResolver`): the
//! name is looked up with a [`Lookup`] and only the addresses the [`NetworkPolicy`] allows
//! are handed on, so the connection goes to an address that was checked (a name that
//! resolves differently on a second lookup cannot slip a refused address in). Literal IP
//! hosts, which never reach the resolver, are checked before sending. The request's time
//! limit covers all of it: the lookup, the connection, TLS, the request and the answer's
//! body, of which at most the request's `body_cap` bytes are read. Connecting alone has the
//! same limit, shared equally among a name's allowed addresses, so one that drops packets
//! leaves time for the next.
//!
//! Failures are classified by their kind (reqwest's timeout, the resolver's refusal,
//! hyper's kinds, the I/O error beneath and rustls's), never by their text: see
//! [`SendError`].
//!
//! TLS is rustls. The system's root certificates are read once per process, and only when
//! the first TLS connection needs them ([`native_roots`]): building the client reads
//! nothing. The AWS SDK's client takes its roots from the same read
//! ([`crate::adapters::aws::sdk_config`]).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderName;
use http::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use url::{Host, Url};

use crate::model::network::{AddressClass, NetworkPolicy};
use crate::observe::telemetry::error_chain as chain;
use crate::ports::http::{HttpResponse, HttpSender, OutgoingRequest, SendError};

/// Resolves a host name to its addresses.
#[async_trait]
pub trait Lookup: Send + Sync {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>>;
}

/// The system resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

#[async_trait]
impl Lookup for SystemLookup {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        let addrs = tokio::net::lookup_host((host, 0)).await?;
        Ok(addrs.map(|a| a.ip()).collect())
    }
}

/// Fixed answers, for tests: a name not in the map does not resolve.
#[derive(Debug, Clone, Default)]
pub struct StaticLookup(pub HashMap<String, Vec<IpAddr>>);

#[async_trait]
impl Lookup for StaticLookup {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        let key = host.trim_end_matches('.').to_ascii_lowercase();
        self.0
            .get(&key)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not a known name"))
    }
}

/// The addresses of `host` a request may go to: those the policy allows. None at all is a
/// DNS failure; only refused ones is [`SendError::BlockedAddress`].
pub fn allowed_addresses(
    host: &str,
    addrs: &[IpAddr],
    policy: &NetworkPolicy,
) -> Result<Vec<IpAddr>, SendError> {
    if addrs.is_empty() {
        return Err(SendError::Dns(format!("{host} has no addresses")));
    }
    let mut allowed = Vec::new();
    let mut refused: Vec<AddressClass> = Vec::new();
    for &ip in addrs {
        match policy.check(ip) {
            Ok(()) if !allowed.contains(&ip) => allowed.push(ip),
            Ok(()) => {}
            Err(r) if !refused.contains(&r.class) => refused.push(r.class),
            Err(_) => {}
        }
    }
    if allowed.is_empty() {
        let classes: Vec<&str> = refused.iter().map(|c| c.describe()).collect();
        return Err(SendError::BlockedAddress(format!(
            "{host} resolves only to {}",
            classes.join(" and ")
        )));
    }
    Ok(allowed)
}

/// The guarded resolver's refusal of a name: [`SendError::Dns`] when it has no address,
/// [`SendError::BlockedAddress`] when it has only refused ones. It travels through
/// reqwest's error chain and is found there by its type (`classify`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ResolveRefusal(SendError);

/// The resolver reqwest uses: looks the name up, then hands on only the allowed addresses.
struct GuardedResolver {
    policy: Arc<NetworkPolicy>,
    lookup: Arc<dyn Lookup>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let (policy, lookup) = (self.policy.clone(), self.lookup.clone());
        Box::pin(async move {
            let host = name.as_str();
            let found = lookup
                .lookup(host)
                .await
                .map_err(|e| ResolveRefusal(SendError::Dns(format!("{host}: {e}"))))?;
            let allowed = allowed_addresses(host, &found, &policy).map_err(ResolveRefusal)?;
            let addrs: Addrs = Box::new(allowed.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The system's root certificates, as read once for the whole process.
pub struct NativeRoots {
    /// Every certificate found (the AWS SDK's client parses them itself).
    pub certificates: Vec<CertificateDer<'static>>,
    /// Those rustls could parse, as trust anchors.
    pub store: Arc<RootCertStore>,
}

static NATIVE_ROOTS: OnceLock<NativeRoots> = OnceLock::new();
static NATIVE_ROOT_READS: AtomicUsize = AtomicUsize::new(0);

/// The system's root certificates (`SSL_CERT_FILE`, `SSL_CERT_DIR` or the usual places),
/// read the first time anything asks, and never again in this process.
pub fn native_roots() -> &'static NativeRoots {
    NATIVE_ROOTS.get_or_init(|| {
        NATIVE_ROOT_READS.fetch_add(1, Ordering::Relaxed);
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(error = %error, "a system root certificate could not be read");
        }
        let mut store = RootCertStore::empty();
        let (_, ignored) = store.add_parsable_certificates(found.certs.iter().cloned());
        if ignored > 0 {
            tracing::warn!(
                ignored,
                "system root certificates rustls cannot use were ignored"
            );
        }
        NativeRoots {
            certificates: found.certs,
            store: Arc::new(store),
        }
    })
}

/// How many times this process has read the system's root certificates (0 or 1).
pub fn native_root_reads() -> usize {
    NATIVE_ROOT_READS.load(Ordering::Relaxed)
}

/// The crypto provider of every TLS connection here: aws-lc-rs, as reqwest's default.
fn crypto_provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// WebPKI verification against [`native_roots`], built at the first certificate it
/// checks. Signatures are checked with the provider's algorithms, which need no roots.
#[derive(Debug)]
struct LateRootsVerifier {
    provider: Arc<CryptoProvider>,
    inner: OnceLock<Result<Arc<WebPkiServerVerifier>, rustls::Error>>,
}

impl LateRootsVerifier {
    fn inner(&self) -> Result<&Arc<WebPkiServerVerifier>, rustls::Error> {
        self.inner
            .get_or_init(|| {
                WebPkiServerVerifier::builder_with_provider(
                    native_roots().store.clone(),
                    self.provider.clone(),
                )
                .build()
                .map_err(|e| rustls::Error::General(format!("no usable root certificates: {e}")))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LateRootsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls configuration of the delivery client: safe default protocol versions,
/// certificates verified against the system's roots, read when first needed, and HTTP/1.1
/// offered by ALPN (the only protocol it speaks).
fn tls_config() -> rustls::ClientConfig {
    let provider = crypto_provider();
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(LateRootsVerifier {
            provider,
            inner: OnceLock::new(),
        }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Idle connections kept per host (the local runner has up to 80 requests in flight to one
/// receiver); each is kept 90 s, reqwest's default.
const MAX_IDLE_PER_HOST: usize = 128;

/// [`HttpSender`] on reqwest. Clones share its clients, and their connections.
#[derive(Clone)]
pub struct ReqwestSender {
    policy: Arc<NetworkPolicy>,
    resolver: Arc<GuardedResolver>,
    /// A client per time limit, each built at the first request with that limit (the
    /// limit is also its connect timeout, which reqwest sets per client). A deliverer's
    /// limit is fixed, so in practice there is one.
    clients: Arc<Mutex<Vec<(Duration, reqwest::Client)>>>,
}

impl fmt::Debug for ReqwestSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestSender")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ReqwestSender {
    /// A sender resolving names with the system resolver.
    pub fn new(policy: NetworkPolicy) -> Self {
        Self::with_lookup(policy, Arc::new(SystemLookup))
    }

    /// A sender resolving names with `lookup`. Builds no client yet.
    pub fn with_lookup(policy: NetworkPolicy, lookup: Arc<dyn Lookup>) -> Self {
        let policy = Arc::new(policy);
        Self {
            resolver: Arc::new(GuardedResolver {
                policy: policy.clone(),
                lookup,
            }),
            policy,
            clients: Arc::default(),
        }
    }

    /// The client for requests limited to `limit`, built the first time it is asked for.
    fn client(&self, limit: Duration) -> Result<reqwest::Client, SendError> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, client)) = clients.iter().find(|(l, _)| *l == limit) {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .http1_only()
            // reqwest 0.13's name for `use_preconfigured_tls`.
            .tls_backend_preconfigured(tls_config())
            .dns_resolver(self.resolver.clone())
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            // Retries are the delivery policy's alone (`core::after_attempt`); reqwest's
            // own replay would also keep a copy of every request to replay.
            .retry(reqwest::retry::never())
            .referer(false)
            // hyper-util gives each of a name's addresses an equal share of it.
            .connect_timeout(limit)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .build()
            .map_err(|e| SendError::Other(format!("the HTTP client cannot be built: {e}")))?;
        clients.push((limit, client.clone()));
        Ok(client)
    }

    /// The URL parsed and its host checked when it is a literal address.
    fn parse_and_check(&self, raw: &str) -> Result<Url, SendError> {
        let url =
            Url::parse(raw).map_err(|e| SendError::InvalidUrl(format!("not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SendError::InvalidUrl(format!(
                "the scheme must be http or https, not `{}`",
                url.scheme()
            )));
        }
        let ip = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(Host::Domain(d)) if !d.is_empty() => return Ok(url),
            _ => return Err(SendError::InvalidUrl("the URL has no host".into())),
        };
        self.policy
            .check(ip)
            .map_err(|refused| SendError::BlockedAddress(refused.to_string()))?;
        Ok(url)
    }
}

/// The request's headers, in order.
fn headers(pairs: &[(HeaderName, String)]) -> Result<HeaderMap, SendError> {
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        // The name is safe to report; the value (a signature, perhaps) is not.
        let value = HeaderValue::from_str(value)
            .map_err(|_| SendError::Other(format!("the value of header `{name}` is not valid")))?;
        map.append(name.clone(), value);
    }
    Ok(map)
}

#[async_trait]
impl HttpSender for ReqwestSender {
    async fn post(&self, request: &OutgoingRequest) -> Result<HttpResponse, SendError> {
        let url = self.parse_and_check(&request.url)?;
        let headers = headers(&request.headers)?;
        let client = self.client(request.timeout)?;
        let exchange = async {
            // `Accept: */*` and `Host` are reqwest's; the rest as given.
            let mut response = client
                .post(url)
                .headers(headers)
                .body(request.body.clone())
                .timeout(request.timeout)
                .send()
                .await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            // Up to the cap, then the rest is left unread: the connection is closed, not
            // pooled, as the response is dropped.
            let mut body = Vec::new();
            while body.len() < request.body_cap {
                let Some(chunk) = response.chunk().await? else {
                    break;
                };
                let room = request.body_cap - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok::<_, reqwest::Error>(HttpResponse {
                status,
                retry_after,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        exchange.await.map_err(classify)
    }
}

/// The messages of an error and its sources, each once.
fn describe(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for s in chain(e) {
        let text = s.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// A reqwest failure as a [`SendError`], by kind, never by text: reqwest's timeout first
/// (a connect timeout is one too), then the first error down the source chain whose type
/// says what happened: the resolver's refusal, hyper's closed or incomplete connection, an
/// I/O error's kind, a rustls error. The message leaves out the URL, and request headers
/// and body never appear in it.
fn classify(e: reqwest::Error) -> SendError {
    if e.is_timeout() {
        return SendError::Timeout;
    }
    let e = e.without_url();
    let connecting = e.is_connect();
    let top: &(dyn StdError + 'static) = &e;
    for s in chain(top) {
        if let Some(ResolveRefusal(refusal)) = s.downcast_ref::<ResolveRefusal>() {
            return refusal.clone();
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
        {
            return SendError::ConnectionReset;
        }
        if let Some(io) = s.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return SendError::ConnectionRefused,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe => return SendError::ConnectionReset,
                // While connecting, only the TLS handshake reads: the server hung up on it.
                io::ErrorKind::UnexpectedEof if connecting => {
                    return SendError::Tls(describe(top));
                }
                io::ErrorKind::UnexpectedEof => return SendError::ConnectionReset,
                _ => {}
            }
        }
        if s.is::<rustls::Error>() {
            return SendError::Tls(describe(top));
        }
    }
    SendError::Other(describe(top))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::network::IpRange;
    use crate::ports::http::MAX_RESPONSE_BODY;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn public_addresses_pass_as_they_are() {
        let got = allowed_addresses(
            "example.com",
            &ips(&["93.184.216.34", "2606:2800:220:1::1"]),
            &NetworkPolicy::default(),
        )
        .unwrap();
        assert_eq!(got, ips(&["93.184.216.34", "2606:2800:220:1::1"]));
    }

    #[test]
    fn a_mixed_answer_is_pinned_to_the_allowed_addresses() {
        let got = allowed_addresses(
            "rebind.example",
            &ips(&[
                "10.0.0.7",
                "93.184.216.34",
                "169.254.169.254",
                "93.184.216.34",
            ]),
            &NetworkPolicy::default(),
        )
        .unwrap();
        assert_eq!(got, ips(&["93.184.216.34"]));

        let loopback = NetworkPolicy::allowing(IpRange::loopback());
        let got =
            allowed_addresses("rebind.test", &ips(&["10.0.0.7", "127.0.0.1"]), &loopback).unwrap();
        assert_eq!(got, ips(&["127.0.0.1"]));
    }

    #[test]
    fn only_refused_addresses_block_with_their_classes() {
        let err = allowed_addresses(
            "private.test",
            &ips(&["10.0.0.7", "192.168.1.1"]),
            &NetworkPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            SendError::BlockedAddress("private.test resolves only to a private address".into())
        );

        let err = allowed_addresses(
            "meta.test",
            &ips(&["169.254.169.254", "::ffff:127.0.0.1", "fd00::1"]),
            &NetworkPolicy::allowing(IpRange::loopback()),
        )
        .unwrap_err();
        assert_eq!(
            err,
            SendError::BlockedAddress(
                "meta.test resolves only to a cloud metadata address and a loopback address \
                 and a unique-local address"
                    .into()
            )
        );
        assert_eq!(err.kind(), "blocked_address");
    }

    #[test]
    fn loopback_is_refused_unless_allowed() {
        let err = allowed_addresses(
            "localhost",
            &ips(&["127.0.0.1", "::1"]),
            &NetworkPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), "blocked_address");
        let ok = allowed_addresses(
            "localhost",
            &ips(&["127.0.0.1", "::1"]),
            &NetworkPolicy::allowing(IpRange::loopback()),
        )
        .unwrap();
        assert_eq!(ok, ips(&["127.0.0.1", "::1"]));
    }

    #[test]
    fn no_addresses_is_a_dns_failure() {
        let err = allowed_addresses("empty.test", &[], &NetworkPolicy::default()).unwrap_err();
        assert_eq!(err.kind(), "dns");
    }

    #[tokio::test]
    async fn static_lookup_answers_known_names_only() {
        let lookup = StaticLookup(HashMap::from([(
            "known.test".to_owned(),
            ips(&["93.184.216.34"]),
        )]));
        assert_eq!(
            lookup.lookup("Known.Test.").await.unwrap(),
            ips(&["93.184.216.34"])
        );
        assert_eq!(
            lookup.lookup("unknown.test").await.unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    /// Building the delivery client and the AWS SDK's clients reads no certificate; the
    /// first TLS need reads them once for both. (The only test here that reads them.)
    #[tokio::test]
    async fn root_certificates_are_read_once_and_only_when_needed() {
        let delivery = ReqwestSender::new(NetworkPolicy::allowing(IpRange::loopback()));
        let _dispatch = ReqwestSender::new(NetworkPolicy::default());
        assert_eq!(native_root_reads(), 0, "read by the delivery client");
        delivery.client(std::time::Duration::from_secs(1)).unwrap();
        assert_eq!(
            native_root_reads(),
            0,
            "read as the delivery client was built"
        );
        // Nor does a plain HTTP request (to a port where nothing listens).
        let plain = OutgoingRequest {
            url: "http://127.0.0.1:9/hook".into(),
            headers: vec![],
            body: vec![],
            timeout: std::time::Duration::from_secs(1),
            body_cap: MAX_RESPONSE_BODY,
        };
        assert!(
            delivery.post(&plain).await.is_err(),
            "nothing listens there"
        );
        assert_eq!(native_root_reads(), 0, "read for a plain HTTP delivery");
        // As on Lambda: the region and credentials come from the environment (here, given),
        // so loading the configuration sends nothing.
        let sdk = crate::adapters::aws::with_late_tls(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                    "test", "test", None, None, "test",
                ))
                .endpoint_url("http://127.0.0.1:9")
                .retry_config(aws_config::retry::RetryConfig::disabled()),
        )
        .load()
        .await;
        assert_eq!(native_root_reads(), 0, "read by the SDK's configuration");
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let _dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        assert_eq!(native_root_reads(), 0, "read as the clients were built");
        // A request to an `http://` endpoint (an emulator) needs no certificate either.
        assert!(
            sqs.list_queues().send().await.is_err(),
            "nothing listens there"
        );
        assert_eq!(native_root_reads(), 0, "read for a plain HTTP request");
        let first = native_roots().certificates.len();
        let again = native_roots().certificates.len();
        assert_eq!(first, again);
        assert_eq!(native_root_reads(), 1);
        // The verifier built on them answers without reading them again.
        let verifier = LateRootsVerifier {
            provider: crypto_provider(),
            inner: OnceLock::new(),
        };
        assert!(!verifier.supported_verify_schemes().is_empty());
        if !native_roots().store.is_empty() {
            assert!(verifier.inner().is_ok());
        }
        assert_eq!(native_root_reads(), 1);
    }

    #[tokio::test]
    async fn bad_and_literal_urls_are_refused_before_sending() {
        let sender = ReqwestSender::new(NetworkPolicy::default());
        let post = |url: &str| OutgoingRequest {
            url: url.to_owned(),
            headers: vec![],
            body: vec![],
            timeout: std::time::Duration::from_secs(1),
            body_cap: MAX_RESPONSE_BODY,
        };
        for url in ["not a url", "ftp://example.com/", "http://"] {
            let err = sender.post(&post(url)).await.unwrap_err();
            assert!(
                matches!(err, SendError::InvalidUrl(_) | SendError::BlockedAddress(_)),
                "{url}: {err:?}"
            );
        }
        assert_eq!(
            sender
                .post(&post("ftp://example.com/"))
                .await
                .unwrap_err()
                .kind(),
            "invalid_url"
        );
        for url in [
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00::1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://0x7f.1/",
            "http://2130706433/",
        ] {
            let err = sender.post(&post(url)).await.unwrap_err();
            assert_eq!(err.kind(), "blocked_address", "{url}: {err:?}");
        }
        let err = sender
            .post(&OutgoingRequest {
                headers: vec![(
                    crate::security::signing::X_HUB_SIGNATURE,
                    "secret\nvalue".into(),
                )],
                ..post("http://93.184.216.34/")
            })
            .await
            .unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
