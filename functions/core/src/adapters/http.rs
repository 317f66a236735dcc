//! The HTTP sender on hyper's HTTP/1 client (rustls for TLS), with one pool of
//! connections built once and reused across requests and warm invocations; each
//! connection is driven by the request that uses it ([`super::http_pool`]).
//!
//! Redirects are never followed and no proxy is used. Every host name is resolved through
//! a [`Lookup`], and only the addresses the [`NetworkPolicy`] allows are dialled, so the
//! connection goes to an address that was checked (a name that resolves differently on a
//! second lookup cannot slip a refused address in). Literal IP hosts, which need no
//! lookup, are checked before sending. The request's time limit covers all of it: the
//! lookup, the connection, TLS, the request and the answer's body.
//!
//! Failures are classified by their kind (hyper's, and the I/O error beneath), never by
//! their text: see [`SendError`].
//!
//! TLS is rustls. The system's root certificates are read once per process, and only when
//! the first TLS connection needs them ([`native_roots`]): building the client reads
//! nothing. The AWS SDK's client takes its roots from the same read
//! ([`crate::adapters::aws::sdk_config`]).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use http::header::{ACCEPT, HOST, HeaderMap, HeaderValue, RETRY_AFTER};
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::{Host, Url};

use super::http_pool::{Conn, Io, Origin, Pool};
use crate::model::network::{AddressClass, NetworkPolicy};
use crate::observe::telemetry::error_chain as chain;
use crate::ports::http::{HttpResponse, HttpSender, MAX_RESPONSE_BODY, OutgoingRequest, SendError};

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

/// A URL already parsed and checked, in the parts a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    origin: Origin,
    /// The host as a literal address, when it is one (it was checked; no lookup).
    ip: Option<IpAddr>,
    /// The `Host` header: the host, and the port when it is not the scheme's default.
    host_header: HeaderValue,
    /// The request target: path and query.
    path: http::Uri,
}

/// URLs already parsed and checked, by their text: a subscription's URL is parsed once,
/// not on every delivery. Emptied when it reaches [`CHECKED_URLS`] entries.
type CheckedUrls = std::sync::Mutex<HashMap<String, Arc<Target>>>;
const CHECKED_URLS: usize = 4096;

/// [`HttpSender`] on hyper's HTTP/1 client, with its own connection pool
/// ([`super::http_pool`]). Clones share the pool.
#[derive(Clone)]
pub struct HyperSender {
    policy: Arc<NetworkPolicy>,
    lookup: Arc<dyn Lookup>,
    tls: TlsConnector,
    pool: Arc<Pool>,
    checked: Arc<CheckedUrls>,
}

impl fmt::Debug for HyperSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperSender")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl HyperSender {
    /// A sender resolving names with the system resolver.
    pub fn new(policy: NetworkPolicy) -> Self {
        Self::with_lookup(policy, Arc::new(SystemLookup))
    }

    /// A sender resolving names with `lookup`.
    pub fn with_lookup(policy: NetworkPolicy, lookup: Arc<dyn Lookup>) -> Self {
        Self {
            policy: Arc::new(policy),
            lookup,
            tls: TlsConnector::from(Arc::new(tls_config())),
            pool: Arc::default(),
            checked: Arc::default(),
        }
    }

    /// [`HyperSender::parse_and_check`], remembered for URLs that pass (the check depends
    /// on the URL alone).
    fn check_url(&self, raw: &str) -> Result<Arc<Target>, SendError> {
        let lock = || self.checked.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(target) = lock().get(raw) {
            return Ok(target.clone());
        }
        let target = Arc::new(self.parse_and_check(raw)?);
        let mut checked = lock();
        if checked.len() >= CHECKED_URLS {
            checked.clear();
        }
        checked.insert(raw.to_owned(), target.clone());
        Ok(target)
    }

    /// The URL parsed and its host checked when it is a literal address.
    fn parse_and_check(&self, raw: &str) -> Result<Target, SendError> {
        let url =
            Url::parse(raw).map_err(|e| SendError::InvalidUrl(format!("not a valid URL: {e}")))?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(SendError::InvalidUrl(format!(
                    "the scheme must be http or https, not `{other}`"
                )));
            }
        };
        let (host, ip) = match url.host() {
            Some(Host::Ipv4(v4)) => (v4.to_string(), Some(IpAddr::V4(v4))),
            Some(Host::Ipv6(v6)) => (v6.to_string(), Some(IpAddr::V6(v6))),
            Some(Host::Domain(d)) if !d.is_empty() => (d.to_owned(), None),
            _ => return Err(SendError::InvalidUrl("the URL has no host".into())),
        };
        if let Some(ip) = ip {
            self.policy
                .check(ip)
                .map_err(|refused| SendError::BlockedAddress(refused.to_string()))?;
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| SendError::InvalidUrl("the URL has no port".into()))?;
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let host_header = HeaderValue::from_str(&authority)
            .map_err(|_| SendError::InvalidUrl("the host is not a valid header value".into()))?;
        let path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let path = path_and_query
            .parse::<http::Uri>()
            .map_err(|e| SendError::InvalidUrl(format!("the path cannot be requested: {e}")))?;
        Ok(Target {
            origin: Origin { tls, host, port },
            ip,
            host_header,
            path,
        })
    }

    /// A new connection to `target`: its name looked up and only allowed addresses dialled,
    /// in the order the lookup gave them, until one answers; each attempt gets an equal
    /// share of the time left before `deadline`, so an address that drops packets cannot
    /// use it all. Then TLS when the scheme asks for it.
    async fn connect(&self, target: &Target, deadline: Instant) -> Result<Conn, SendError> {
        let Origin { tls, host, port } = &target.origin;
        let addresses = match target.ip {
            Some(ip) => vec![ip],
            None => {
                let found = self
                    .lookup
                    .lookup(host)
                    .await
                    .map_err(|e| SendError::Dns(format!("{host}: {e}")))?;
                allowed_addresses(host, &found, &self.policy)?
            }
        };
        let mut last_error = SendError::Timeout;
        let mut stream = None;
        for (i, ip) in addresses.iter().enumerate() {
            let share =
                deadline.saturating_duration_since(Instant::now()) / (addresses.len() - i) as u32;
            match tokio::time::timeout(share, TcpStream::connect((*ip, *port))).await {
                Ok(Ok(s)) => {
                    stream = Some(s);
                    break;
                }
                Ok(Err(e)) => last_error = connect_error(&e),
                Err(_) => last_error = SendError::Timeout,
            }
        }
        let stream = stream.ok_or(last_error)?;
        // Requests go out as written, not held back for a coalescing ACK.
        let _ = stream.set_nodelay(true);
        let io: Box<dyn Io> = if *tls {
            let name = match target.ip {
                Some(ip) => ServerName::IpAddress(ip.into()),
                None => ServerName::try_from(host.clone())
                    .map_err(|e| SendError::Tls(format!("not a TLS server name: {e}")))?,
            };
            let stream = self
                .tls
                .connect(name, stream)
                .await
                .map_err(|e| handshake_error(&e))?;
            Box::new(stream)
        } else {
            Box::new(stream)
        };
        Conn::handshake(io)
            .await
            .map_err(|e| SendError::Other(describe(&e)))
    }

    /// One exchange on `conn`: the answer's status, `Retry-After` and up to
    /// [`MAX_RESPONSE_BODY`] bytes of body, and whether the connection can be kept. An
    /// unsent request comes back in `Unsent`.
    async fn exchange(
        conn: &mut Conn,
        request: http::Request<Full<Bytes>>,
    ) -> Result<(HttpResponse, bool), Failed> {
        let sending = conn.send(request);
        let response = match conn.drive(sending).await {
            Ok(Ok(response)) => response,
            Ok(Err(mut refused)) => {
                return Err(match refused.take_message() {
                    Some(request) => Failed::Unsent(Box::new(request), refused.into_error()),
                    None => Failed::Error(map_hyper_error(&refused.into_error())),
                });
            }
            Err(ended) => return Err(Failed::Error(connection_ended(ended.as_ref()))),
        };
        let (head, mut incoming) = response.into_parts();
        let retry_after = head
            .headers
            .get(RETRY_AFTER)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let mut body = Vec::new();
        let mut complete = false;
        while body.len() < MAX_RESPONSE_BODY {
            match conn.drive(incoming.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(chunk) = frame.into_data() {
                        let room = MAX_RESPONSE_BODY - body.len();
                        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                }
                Ok(None) => {
                    complete = true;
                    break;
                }
                Ok(Some(Err(e))) => return Err(Failed::Error(map_hyper_error(&e))),
                Err(ended) => return Err(Failed::Error(connection_ended(ended.as_ref()))),
            }
        }
        // A body cut at the limit may have more to come: that connection is not kept.
        if !complete && incoming.is_end_stream() {
            complete = true;
        }
        Ok((
            HttpResponse {
                status: head.status.as_u16(),
                retry_after,
                body: String::from_utf8_lossy(&body).into_owned(),
            },
            complete,
        ))
    }

    /// The request on a pooled connection, or on a new one; once more on a new one when a
    /// pooled connection could not send it (the server had closed it).
    async fn send(
        &self,
        target: &Target,
        mut request: http::Request<Full<Bytes>>,
        deadline: Instant,
    ) -> Result<HttpResponse, SendError> {
        let mut pooled = self.pool.take(&target.origin);
        loop {
            let mut conn = match pooled.take() {
                Some(conn) => conn,
                // Boxed: a new connection is rare, and its future (TLS included) would
                // otherwise make every request's future, moved as it starts, a third larger.
                None => Box::pin(self.connect(target, deadline)).await?,
            };
            let reused = conn.reused;
            match Self::exchange(&mut conn, request).await {
                Ok((response, keep)) => {
                    if keep {
                        self.pool.give(&target.origin, conn);
                    }
                    return Ok(response);
                }
                Err(Failed::Unsent(unsent, _)) if reused => request = *unsent,
                Err(Failed::Unsent(_, error)) => return Err(map_hyper_error(&error)),
                Err(Failed::Error(error)) => return Err(error),
            }
        }
    }
}

/// An exchange that failed: before the request went out (it comes back), or after.
enum Failed {
    Unsent(Box<http::Request<Full<Bytes>>>, hyper::Error),
    Error(SendError),
}

/// The request: POST to the target's path, `Host` first, then the given headers in order.
fn build_request(
    target: &Target,
    request: &OutgoingRequest,
) -> Result<http::Request<Full<Bytes>>, SendError> {
    let mut headers = HeaderMap::with_capacity(request.headers.len() + 2);
    headers.insert(HOST, target.host_header.clone());
    for (name, value) in &request.headers {
        // The name is safe to report; the value (a signature, perhaps) is not.
        let value = HeaderValue::from_str(value)
            .map_err(|_| SendError::Other(format!("the value of header `{name}` is not valid")))?;
        headers.append(name.clone(), value);
    }
    // As reqwest sent it, unless the caller gave one.
    if !headers.contains_key(ACCEPT) {
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    }
    let mut built = http::Request::new(Full::new(Bytes::from(request.body.clone())));
    *built.method_mut() = Method::POST;
    *built.uri_mut() = target.path.clone();
    *built.headers_mut() = headers;
    Ok(built)
}

#[async_trait]
impl HttpSender for HyperSender {
    async fn post(&self, request: &OutgoingRequest) -> Result<HttpResponse, SendError> {
        let target = self.check_url(&request.url)?;
        let built = build_request(&target, request)?;
        // One limit over the whole of it: lookup, connection, TLS, request and answer.
        let deadline = Instant::now() + request.timeout;
        match tokio::time::timeout(request.timeout, self.send(&target, built, deadline)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Timeout),
        }
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

/// A TCP connection that failed.
fn connect_error(e: &io::Error) -> SendError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => SendError::ConnectionRefused,
        io::ErrorKind::TimedOut => SendError::Timeout,
        _ => SendError::Other(format!("cannot connect: {}", describe(e))),
    }
}

/// A TLS handshake that failed: the connection cut under it is a reset; everything else
/// (a bad certificate, an alert, a server that does not speak TLS) is a TLS failure.
fn handshake_error(e: &io::Error) -> SendError {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => SendError::ConnectionReset,
        _ => SendError::Tls(describe(e)),
    }
}

/// A connection that ended before its answer was complete.
fn connection_ended(error: Option<&hyper::Error>) -> SendError {
    match error {
        Some(e) => map_hyper_error(e),
        None => SendError::ConnectionReset,
    }
}

/// A failure of an exchange, by hyper's kinds and the I/O error beneath, never by its
/// text. Request headers and body never appear in it.
fn map_hyper_error(e: &hyper::Error) -> SendError {
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return SendError::ConnectionReset;
    }
    for s in chain(e) {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::BrokenPipe => return SendError::ConnectionReset,
                io::ErrorKind::ConnectionRefused => return SendError::ConnectionRefused,
                _ => {}
            }
        }
        if s.downcast_ref::<rustls::Error>().is_some() {
            return SendError::Tls(describe(e));
        }
    }
    SendError::Other(describe(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::network::IpRange;

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
        let _delivery = HyperSender::new(NetworkPolicy::default());
        let _dispatch = HyperSender::new(NetworkPolicy::default());
        assert_eq!(native_root_reads(), 0, "read by the delivery client");
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

    #[test]
    fn checked_urls_are_remembered_and_refused_ones_are_not() {
        let sender = HyperSender::new(NetworkPolicy::default());
        for _ in 0..2 {
            assert_eq!(
                sender.check_url("http://10.0.0.1/hook").unwrap_err().kind(),
                "blocked_address"
            );
        }
        let url = "https://hooks.example.com/a?b=c";
        let first = sender.check_url(url).unwrap();
        assert_eq!(sender.checked.lock().unwrap().len(), 1);
        assert_eq!(sender.check_url(url).unwrap(), first);
        assert_eq!(
            first.origin,
            Origin {
                tls: true,
                host: "hooks.example.com".into(),
                port: 443
            }
        );
        assert_eq!(
            (first.path.to_string().as_str(), first.ip),
            ("/a?b=c", None)
        );
        assert_eq!(first.host_header, "hooks.example.com");
        let literal = sender
            .check_url("http://[2606:2800:220:1::1]:8080/h")
            .unwrap();
        assert_eq!(literal.host_header, "[2606:2800:220:1::1]:8080");
        assert_eq!(literal.ip, Some("2606:2800:220:1::1".parse().unwrap()));
        for i in 0..CHECKED_URLS + 1 {
            sender
                .check_url(&format!("https://hooks.example.com/{i}"))
                .unwrap();
        }
        assert!(sender.checked.lock().unwrap().len() <= CHECKED_URLS);
    }

    #[tokio::test]
    async fn bad_and_literal_urls_are_refused_before_sending() {
        let sender = HyperSender::new(NetworkPolicy::default());
        let post = |url: &str| OutgoingRequest {
            url: url.to_owned(),
            headers: vec![],
            body: vec![],
            timeout: std::time::Duration::from_secs(1),
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
