//! The HTTP sender on reqwest (rustls): one client built once and reused, so connections
//! are pooled across requests and warm invocations.
//!
//! Redirects are never followed and no proxy is used. Every host name is resolved through
//! a [`Lookup`], and only the addresses the [`NetworkPolicy`] allows are handed to the
//! connector, so the connection goes to an address that was checked (a name that
//! resolves differently on a second lookup cannot slip a refused address in). Literal IP
//! hosts, which never reach the resolver, are checked before sending.
//!
//! TLS is rustls. The system's root certificates are read once per process, and only when
//! the first TLS connection needs them ([`native_roots`]): building the client reads
//! nothing (reqwest's own rustls set-up reads the certificate directory as the client is
//! built, which cost every function's cold start a read of it, and the API function two
//! with the AWS SDK's). The AWS SDK's client takes its roots from the same read
//! ([`crate::adapters::aws::sdk_config`]).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use url::{Host, Url};

use crate::http::{HttpResponse, HttpSender, MAX_RESPONSE_BODY, OutgoingRequest, SendError};
use crate::network::{AddressClass, NetworkPolicy};
use crate::telemetry::error_chain as chain;

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

/// Our resolver's verdict (a refused or unresolvable name), carried through reqwest's
/// error chain and recognised on the way out.
#[derive(Debug)]
struct ResolveFailure(SendError);

impl fmt::Display for ResolveFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl StdError for ResolveFailure {}

/// The resolver reqwest uses: looks the name up, then keeps only the allowed addresses.
struct GuardedResolver {
    policy: Arc<NetworkPolicy>,
    lookup: Arc<dyn Lookup>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let lookup = self.lookup.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = lookup
                .lookup(&host)
                .await
                .map_err(|e| ResolveFailure(SendError::Dns(format!("{host}: {e}"))))?;
            let allowed = allowed_addresses(&host, &addrs, &policy).map_err(ResolveFailure)?;
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
/// certificates verified against the system's roots, read when first needed.
fn tls_config() -> rustls::ClientConfig {
    let provider = crypto_provider();
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(LateRootsVerifier {
            provider,
            inner: OnceLock::new(),
        }))
        .with_no_client_auth()
}

/// URLs already parsed and checked, by their text: a subscription's URL is parsed once,
/// not on every delivery. Emptied when it reaches [`CHECKED_URLS`] entries.
type CheckedUrls = std::sync::Mutex<HashMap<String, Url>>;
const CHECKED_URLS: usize = 4096;

/// [`HttpSender`] on a shared reqwest client. Clones share the client and its pool.
#[derive(Clone)]
pub struct ReqwestSender {
    client: reqwest::Client,
    policy: Arc<NetworkPolicy>,
    checked: Arc<CheckedUrls>,
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

    /// A sender resolving names with `lookup`.
    pub fn with_lookup(policy: NetworkPolicy, lookup: Arc<dyn Lookup>) -> Self {
        let policy = Arc::new(policy);
        let resolver = GuardedResolver {
            policy: policy.clone(),
            lookup,
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // Retries are the delivery policy's alone (`core::after_attempt`). reqwest's
            // own replay of refused HTTP/2 streams is off, and with it the copy of every
            // request's headers and body it keeps to replay (about 4 % of the runner's
            // CPU per delivery).
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .no_proxy()
            .referer(false)
            .dns_resolver(resolver)
            .tls_backend_preconfigured(tls_config())
            .build()
            .expect("the HTTP client builds (TLS roots and crypto provider are available)");
        Self {
            client,
            policy,
            checked: Arc::default(),
        }
    }

    /// [`ReqwestSender::parse_and_check`], remembered for URLs that pass (the check depends
    /// on the URL alone).
    fn check_url(&self, raw: &str) -> Result<Url, SendError> {
        let lock = || self.checked.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(url) = lock().get(raw) {
            return Ok(url.clone());
        }
        let url = self.parse_and_check(raw)?;
        let mut checked = lock();
        if checked.len() >= CHECKED_URLS {
            checked.clear();
        }
        checked.insert(raw.to_owned(), url.clone());
        Ok(url)
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

fn headers(pairs: &[(String, String)]) -> Result<HeaderMap, SendError> {
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        // The name is safe to report; the value (a signature, perhaps) is not.
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| SendError::Other(format!("`{name}` is not a valid header name")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| SendError::Other(format!("the value of header `{name}` is not valid")))?;
        map.append(header, value);
    }
    Ok(map)
}

#[async_trait]
impl HttpSender for ReqwestSender {
    async fn post(&self, request: &OutgoingRequest) -> Result<HttpResponse, SendError> {
        let url = self.check_url(&request.url)?;
        let headers = headers(&request.headers)?;
        let exchange = async {
            let mut response = self
                .client
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
            let mut body = Vec::new();
            while body.len() < MAX_RESPONSE_BODY {
                match response.chunk().await? {
                    Some(chunk) => {
                        let room = MAX_RESPONSE_BODY - body.len();
                        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                    None => break,
                }
            }
            Ok::<_, reqwest::Error>(HttpResponse {
                status,
                retry_after,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        // reqwest's own timeout covers connect, headers and body; this one is a backstop
        // (a lookup that ignores cancellation, say) a little after it.
        let backstop = request.timeout + std::time::Duration::from_millis(250);
        match tokio::time::timeout(backstop, exchange).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(map_error(&e)),
            Err(_) => Err(SendError::Timeout),
        }
    }
}

/// The innermost messages of an error, without the URL reqwest adds.
fn describe(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let top: &(dyn StdError + 'static) = e;
    for s in chain(top).skip(1) {
        let text = s.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        // Only the top level: reqwest's own words, minus the URL.
        let mut plain = e.to_string();
        if let Some(i) = plain.find(" for url (") {
            plain.truncate(i);
        }
        parts.push(plain);
    }
    parts.join(": ")
}

/// A reqwest failure as a [`SendError`]. Request headers and body never appear in it.
fn map_error(e: &reqwest::Error) -> SendError {
    let top: &(dyn StdError + 'static) = e;
    for s in chain(top) {
        if let Some(ResolveFailure(err)) = s.downcast_ref::<ResolveFailure>() {
            return err.clone();
        }
    }
    if e.is_timeout() {
        return SendError::Timeout;
    }
    if e.is_builder() {
        return SendError::InvalidUrl(describe(e));
    }
    if e.is_dns() {
        // The lookup's own message, below reqwest's "error resolving DNS" wrapper.
        let inner = chain(top).last().map(|s| s.to_string()).unwrap_or_default();
        return SendError::Dns(inner);
    }
    for s in chain(top) {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return SendError::ConnectionRefused,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::BrokenPipe => return SendError::ConnectionReset,
                // tokio-rustls reports every handshake failure (bad certificate, alert,
                // garbage from a server that does not speak TLS) as InvalidData.
                io::ErrorKind::InvalidData if e.is_connect() => {
                    return SendError::Tls(describe(e));
                }
                _ => {}
            }
        }
    }
    let text = describe(e);
    let lower = text.to_ascii_lowercase();
    if lower.contains("connection closed before message completed")
        || lower.contains("incomplete message")
        || lower.contains("connection reset")
    {
        return SendError::ConnectionReset;
    }
    if e.is_connect()
        && ["certificate", "tls", "handshake", "dnsname", "server name"]
            .iter()
            .any(|w| lower.contains(w))
    {
        return SendError::Tls(text);
    }
    SendError::Other(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::IpRange;

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
        let _delivery = ReqwestSender::new(NetworkPolicy::default());
        let _dispatch = ReqwestSender::new(NetworkPolicy::default());
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
        let sender = ReqwestSender::new(NetworkPolicy::default());
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
        assert_eq!(first.as_str(), url);
        for i in 0..CHECKED_URLS + 1 {
            sender
                .check_url(&format!("https://hooks.example.com/{i}"))
                .unwrap();
        }
        assert!(sender.checked.lock().unwrap().len() <= CHECKED_URLS);
    }

    #[tokio::test]
    async fn bad_and_literal_urls_are_refused_before_sending() {
        let sender = ReqwestSender::new(NetworkPolicy::default());
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
                headers: vec![("x-signature".into(), "secret\nvalue".into())],
                ..post("http://93.184.216.34/")
            })
            .await
            .unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
