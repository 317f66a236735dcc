//! The HTTP sender port: one POST to a receiver, with a time limit, no redirects, and only
//! to addresses the installation's network policy allows.

use std::time::Duration;

use async_trait::async_trait;

/// The most of a response body kept (for the delivery log).
pub const MAX_RESPONSE_BODY: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRequest {
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The limit on the whole request, connection to last byte of the response.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// `Retry-After`, as sent.
    pub retry_after: Option<String>,
    /// At most [`MAX_RESPONSE_BODY`] bytes of the body, lossily decoded.
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

#[async_trait]
pub trait HttpSender: Send + Sync {
    async fn post(&self, request: &OutgoingRequest) -> Result<HttpResponse, SendError>;
}
