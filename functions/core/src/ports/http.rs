//! The HTTP sender port: one POST to a receiver, with a time limit, no redirects, and only
//! to addresses the installation's network policy allows.

use std::time::Duration;

use async_trait::async_trait;
pub use http::HeaderName;

/// The most of a response body kept (for the delivery log).
pub const MAX_RESPONSE_BODY: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRequest {
    pub url: String,
    /// Header names and values, in order. Names are typed (lowercase, as HTTP/1.1 sends
    /// them through hyper anyway), so a fixed name costs nothing per request.
    pub headers: Vec<(HeaderName, String)>,
    pub body: Vec<u8>,
    /// The limit on the whole request, connection to last byte of the response.
    pub timeout: Duration,
    /// The most of the answer's body read ([`MAX_RESPONSE_BODY`] for a delivery; more for
    /// a token request, whose answer is the token).
    pub body_cap: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// `Retry-After`, as sent.
    pub retry_after: Option<String>,
    /// At most the request's `body_cap` bytes of the body, lossily decoded.
    pub body: String,
}

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the request took longer than the time limit")]
    Timeout,
    #[error("the host name did not resolve: {0}")]
    Dns(String),
    #[error("the target address is not allowed: {0}")]
    BlockedAddress(String),
    #[error("the connection was refused")]
    ConnectionRefused,
    #[error("the connection was reset or closed early")]
    ConnectionReset,
    #[error("the TLS handshake failed: {0}")]
    Tls(String),
    #[error("the URL cannot be requested: {0}")]
    InvalidUrl(String),
    #[error("the request failed: {0}")]
    Other(String),
}

impl SendError {
    /// A short, stable name for the delivery log.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Dns(_) => "dns",
            Self::BlockedAddress(_) => "blocked_address",
            Self::ConnectionRefused => "connection_refused",
            Self::ConnectionReset => "connection_reset",
            Self::Tls(_) => "tls",
            Self::InvalidUrl(_) => "invalid_url",
            Self::Other(_) => "other",
        }
    }
}

/// What the API tells a client about a request that got no HTTP answer: one of three
/// coarse kinds, on purpose. Finer detail ("refused" against "no route", the address a
/// name resolved to) would make the platform a port scanner for whoever owns a
/// subscription; it stays in the stored log and the function's logs, for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// No answer within the time limit.
    Timeout,
    /// The target's address is one the installation does not deliver to.
    Blocked,
    /// Anything else that kept the request from being answered: the name did not resolve,
    /// the connection was refused or reset, TLS failed.
    Connection,
}

impl Unreachable {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Blocked => "blocked",
            Self::Connection => "connection",
        }
    }

    /// A sentence for the client, with no more detail than the kind.
    pub fn sentence(self) -> &'static str {
        match self {
            Self::Timeout => "the receiver did not answer within the time limit",
            Self::Blocked => "the receiver's address is not one this installation delivers to",
            Self::Connection => "the receiver could not be reached",
        }
    }

    /// From the kind the delivery log stores ([`SendError::kind`]); `None` for kinds of
    /// failures that had an HTTP answer (`http_500`).
    pub fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "timeout" => Some(Self::Timeout),
            "blocked_address" => Some(Self::Blocked),
            "dns" | "connection_refused" | "connection_reset" | "tls" | "invalid_url" | "other" => {
                Some(Self::Connection)
            }
            _ => None,
        }
    }
}

impl SendError {
    /// The coarse kind a client is told.
    pub fn unreachable(&self) -> Unreachable {
        match self {
            Self::Timeout => Unreachable::Timeout,
            Self::BlockedAddress(_) => Unreachable::Blocked,
            Self::Dns(_)
            | Self::ConnectionRefused
            | Self::ConnectionReset
            | Self::Tls(_)
            | Self::InvalidUrl(_)
            | Self::Other(_) => Unreachable::Connection,
        }
    }
}

#[async_trait]
pub trait HttpSender: Send + Sync {
    async fn post(&self, request: &OutgoingRequest) -> Result<HttpResponse, SendError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_kind_reads_back_as_its_coarse_kind() {
        let all = [
            SendError::Timeout,
            SendError::Dns("x".into()),
            SendError::BlockedAddress("x".into()),
            SendError::ConnectionRefused,
            SendError::ConnectionReset,
            SendError::Tls("x".into()),
            SendError::InvalidUrl("x".into()),
            SendError::Other("x".into()),
        ];
        for e in all {
            assert_eq!(
                Unreachable::from_kind(e.kind()),
                Some(e.unreachable()),
                "{e:?}"
            );
        }
        assert_eq!(
            SendError::ConnectionRefused.unreachable(),
            SendError::Dns("no such host".into()).unreachable(),
            "refused and unresolved look alike to a client"
        );
        assert_eq!(Unreachable::from_kind("http_500"), None);
    }
}
