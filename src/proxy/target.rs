//! Reading a request's target: an origin to forward to, a CONNECT tunnel, or the proxy
//! itself (its own pages), which is never forwarded so that no request can loop.

use std::fmt;
use std::net::IpAddr;

use hyper::{Method, Uri};

use crate::net::{self, Host, HostError};

/// Where a request is going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Addressed to Signpost itself: one of its own pages.
    Local { path: String },
    /// An `http://` origin (absolute-form request).
    Http(Origin),
    /// `CONNECT host:port`.
    Connect(Origin),
}

/// A host and port on the far side of the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub host: Host,
    pub port: u16,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Why a request target was refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("Signpost forwards http:// URLs; `{0}` is not supported (HTTPS goes through CONNECT)")]
    Scheme(String),
    #[error("the URL names no host")]
    MissingHost,
    #[error("the URL carries a user name or password, which a proxy must not forward")]
    UserInfo,
    #[error("{0}")]
    Host(#[from] HostError),
    #[error("`{0}` is not a CONNECT target: expected host:port, such as example.org:443")]
    ConnectAuthority(String),
    #[error("the proxy does not open tunnels to itself")]
    SelfTunnel,
    #[error("the request has more than one Host header")]
    HostHeader,
}

/// What counts as "the proxy itself" for one connection.
#[derive(Debug, Clone)]
pub struct SelfAddr {
    /// `proxy.hostname`, lower case.
    pub hostname: Option<String>,
    /// The port the client connected to.
    pub port: u16,
    /// The address the client connected to.
    pub local_ip: IpAddr,
    /// The address the listener is bound to (may be unspecified).
    pub listen_ip: IpAddr,
}

impl SelfAddr {
    fn is_self(&self, host: &Host, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        match host {
            Host::Name(n) => n == "localhost" || self.hostname.as_deref() == Some(n.as_str()),
            Host::Ip(ip) => {
                let ip = net::canonical_ip(*ip);
                ip == net::canonical_ip(self.local_ip)
                    || ip.is_unspecified()
                    || (ip.is_loopback()
                        && (self.listen_ip.is_loopback() || self.listen_ip.is_unspecified()))
            }
        }
    }
}

/// RFC 9112 §3.2: a request with more than one Host header is answered 400 (two hosts
/// is how request smuggling starts). A missing Host is accepted: the proxy takes the
/// authority from the absolute-form target and writes Host itself.
pub fn check_host_header(
    _version: http::Version,
    headers: &http::HeaderMap,
) -> Result<(), TargetError> {
    if headers.get_all(http::header::HOST).iter().count() > 1 {
        return Err(TargetError::HostHeader);
    }
    Ok(())
}

/// Classifies a request target. Pure: no I/O.
pub fn parse(method: &Method, uri: &Uri, me: &SelfAddr) -> Result<Target, TargetError> {
    if method == Method::CONNECT {
        let origin = parse_connect(uri)?;
        if me.is_self(&origin.host, origin.port) {
            return Err(TargetError::SelfTunnel);
        }
        return Ok(Target::Connect(origin));
    }
    let Some(scheme) = uri.scheme_str() else {
        // origin-form (`GET /proxy.pac`) or asterisk-form: addressed to the proxy.
        return Ok(Target::Local {
            path: uri.path().to_string(),
        });
    };
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(TargetError::Scheme(printable(scheme)));
    }
    let authority = uri.authority().ok_or(TargetError::MissingHost)?;
    if authority.as_str().contains('@') {
        return Err(TargetError::UserInfo);
    }
    if authority.host().is_empty() {
        return Err(TargetError::MissingHost);
    }
    let host = Host::parse(authority.host())?;
    let port = authority.port_u16().unwrap_or(80);
    if port == 0 {
        return Err(TargetError::MissingHost);
    }
    if me.is_self(&host, port) {
        return Ok(Target::Local {
            path: uri.path().to_string(),
        });
    }
    Ok(Target::Http(Origin { host, port }))
}

fn parse_connect(uri: &Uri) -> Result<Origin, TargetError> {
    let bad = || TargetError::ConnectAuthority(printable(&uri.to_string()));
    if uri.scheme().is_some() || uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(bad());
    }
    let authority = uri.authority().ok_or_else(bad)?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(bad());
    }
    let port = authority.port_u16().filter(|p| *p != 0).ok_or_else(bad)?;
    let host = Host::parse(authority.host())?;
    Ok(Origin { host, port })
}

/// Keeps what a page or log shows of client-supplied text short and plain.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> SelfAddr {
        SelfAddr {
            hostname: Some("signpost.example.org".into()),
            port: 3128,
            local_ip: "10.0.0.1".parse().unwrap(),
            listen_ip: "0.0.0.0".parse().unwrap(),
        }
    }

    fn get(uri: &str) -> Result<Target, TargetError> {
        parse(&Method::GET, &uri.parse().unwrap(), &me())
    }

    fn connect(uri: &str) -> Result<Target, TargetError> {
        parse(&Method::CONNECT, &uri.parse().unwrap(), &me())
    }

    #[test]
    fn absolute_form_goes_to_the_origin() {
        assert_eq!(
            get("http://Example.ORG/a?b").unwrap(),
            Target::Http(Origin {
                host: Host::Name("example.org".into()),
                port: 80
            })
        );
        assert_eq!(
            get("http://[::1]:8080/").unwrap(),
            Target::Http(Origin {
                host: Host::Ip("::1".parse().unwrap()),
                port: 8080
            })
        );
    }

    #[test]
    fn the_proxy_itself_is_local_in_every_spelling() {
        for uri in [
            "/proxy.pac",
            "http://signpost.example.org:3128/proxy.pac",
            "http://SIGNPOST.example.org.:3128/proxy.pac",
            "http://10.0.0.1:3128/proxy.pac",
            "http://127.0.0.1:3128/proxy.pac",
            "http://localhost:3128/proxy.pac",
        ] {
            assert_eq!(
                get(uri).unwrap(),
                Target::Local {
                    path: "/proxy.pac".into()
                },
                "{uri}"
            );
        }
        // same name, other port: a different service on the same machine
        assert!(matches!(
            get("http://signpost.example.org:8080/").unwrap(),
            Target::Http(_)
        ));
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            get("ftp://example.org/"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            get("https://example.org/"),
            Err(TargetError::Scheme(_))
        ));
        assert_eq!(
            get("http://user:pw@example.org/"),
            Err(TargetError::UserInfo)
        );
        assert!(matches!(
            get("http://exa_mple..org/"),
            Err(TargetError::Host(_))
        ));
    }

    #[test]
    fn connect_authorities() {
        assert_eq!(
            connect("example.org:443").unwrap(),
            Target::Connect(Origin {
                host: Host::Name("example.org".into()),
                port: 443
            })
        );
        assert!(connect("example.org").is_err());
        assert!(connect("example.org:0").is_err());
        assert!(connect("u@example.org:443").is_err());
        assert!(connect("http://example.org:443/").is_err());
    }
}
