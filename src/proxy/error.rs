//! Everything that can stop an exchange, as typed values. `respond` turns them into pages.

use std::net::IpAddr;

use super::target::{Origin, TargetError};
use super::upstream::{UpstreamError, UpstreamErrorKind};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProxyError {
    /// The request target cannot be used (400).
    #[error("bad request target: {0}")]
    BadTarget(#[from] TargetError),
    /// CONNECT to a port outside `proxy.connect_ports` (403).
    #[error("CONNECT to port {} is not allowed", .0.port)]
    PortNotAllowed(Origin),
    /// A client outside `proxy.allow_clients` (403).
    #[error("client {0} is not allowed to use this proxy")]
    ClientDenied(IpAddr),
    /// The origin could not be reached or failed (502/504).
    #[error("upstream {origin}: {}", error.detail)]
    Upstream {
        origin: Origin,
        error: UpstreamError,
    },
    /// The request already passed through this proxy (508).
    #[error("forwarding loop: the request already passed through this proxy")]
    Loop,
    /// The client's request body was malformed (400).
    #[error("the request body was malformed or cut short")]
    BadBody,
    /// A transfer-coding the proxy cannot pass on (501).
    #[error("transfer-coding `{0}` is not supported")]
    UnsupportedCoding(String),
    /// A certificate for interception could not be made (500).
    #[error("interception failed: {0}")]
    Intercept(String),
    /// Proxy authentication is required or failed (407, with a challenge).
    #[error("proxy authentication required: {why}")]
    AuthRequired {
        challenge: http::HeaderValue,
        why: String,
    },
    /// Too many failed logins from this address or for this user (429).
    #[error("too many failed logins")]
    TooManyLogins,
    /// The credential source could not be asked (503).
    #[error("the login service is unavailable: {0}")]
    AuthUnavailable(String),
    /// `proxy.max_connections` reached (503).
    #[error("too many connections")]
    Overloaded,
}

impl ProxyError {
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            ProxyError::BadTarget(_) | ProxyError::BadBody => S::BAD_REQUEST,
            ProxyError::UnsupportedCoding(_) => S::NOT_IMPLEMENTED,
            ProxyError::PortNotAllowed(_) | ProxyError::ClientDenied(_) => S::FORBIDDEN,
            ProxyError::Upstream { error, .. } => match error.kind {
                UpstreamErrorKind::Timeout => S::GATEWAY_TIMEOUT,
                _ => S::BAD_GATEWAY,
            },
            ProxyError::Loop => S::LOOP_DETECTED,
            ProxyError::Intercept(_) => S::INTERNAL_SERVER_ERROR,
            ProxyError::AuthRequired { .. } => S::PROXY_AUTHENTICATION_REQUIRED,
            ProxyError::TooManyLogins => S::TOO_MANY_REQUESTS,
            ProxyError::AuthUnavailable(_) => S::SERVICE_UNAVAILABLE,
            ProxyError::Overloaded => S::SERVICE_UNAVAILABLE,
        }
    }
}
