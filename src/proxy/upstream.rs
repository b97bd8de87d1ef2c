//! Reaching origins: name resolution (config hosts, hosts file, then DNS), connecting with
//! timeouts, the pooled HTTP client, and what went wrong when it failed.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpStream;
use tower_service::Service;

use super::body::Metered;
use crate::config::UpstreamConfig;
use crate::net;

/// The HTTP client every forwarded request goes through; it pools origin connections.
pub type HttpClient = Client<HttpConnector<Resolver>, Metered<hyper::body::Incoming>>;

/// How Signpost reaches origins; cheap to clone.
#[derive(Clone)]
pub struct Upstream {
    pub client: HttpClient,
    connector: HttpConnector<Resolver>,
    pub response_timeout: Duration,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig) -> Result<Upstream, HostsFileError> {
        let mut table = HashMap::new();
        if let Some(path) = &config.hosts_file {
            table = read_hosts_file(path)?;
        }
        for (name, ip) in &config.hosts {
            table.insert(name.0.clone(), vec![*ip]);
        }
        let resolver = Resolver {
            inner: Arc::new(ResolverInner {
                table,
                timeout: config.dns_timeout.0,
            }),
        };
        let mut connector = HttpConnector::new_with_resolver(resolver);
        connector.set_connect_timeout(Some(config.connect_timeout.0));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout.0)
            .pool_max_idle_per_host(config.pool_max_idle_per_host.get())
            .set_host(false)
            // hyper would grow each connection's read buffer to 400 KiB on large bodies: 50
            // busy connections would hold 20 MiB. 128 KiB keeps large bodies fast.
            .http1_max_buf_size(128 * 1024)
            .build(connector.clone());
        Ok(Upstream {
            client,
            connector,
            response_timeout: config.response_timeout.0,
        })
    }

    /// Opens a raw TCP connection for a CONNECT tunnel, with the same resolution and
    /// timeouts as forwarded requests.
    pub async fn connect(&self, host: &net::Host, port: u16) -> Result<TcpStream, UpstreamError> {
        let uri: Uri = format!("http://{host}:{port}/")
            .parse()
            .map_err(|_| UpstreamError {
                kind: UpstreamErrorKind::Connect,
                detail: "the address cannot be written as a URI".into(),
            })?;
        let mut connector = self.connector.clone();
        match connector.call(uri).await {
            Ok(io) => Ok(io.into_inner()),
            Err(e) => Err(UpstreamError::classify(&e)),
        }
    }
}

/// Resolves names from the config's `hosts` table and hosts file first, then DNS.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<ResolverInner>,
}

struct ResolverInner {
    table: HashMap<String, Vec<IpAddr>>,
    timeout: Duration,
}

/// Why a name did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("DNS lookup for {0} timed out after {1:?}")]
    Timeout(String, Duration),
    #[error("{0} has no address in DNS ({1})")]
    NotFound(String, io::Error),
}

impl Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
            if let Some(ips) = inner.table.get(&host) {
                let addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
                return Ok(addrs.into_iter());
            }
            let lookup = tokio::net::lookup_host((host.clone(), 0));
            match tokio::time::timeout(inner.timeout, lookup).await {
                Err(_) => Err(ResolveError::Timeout(host, inner.timeout)),
                Ok(Err(e)) => Err(ResolveError::NotFound(host, e)),
                Ok(Ok(addrs)) => Ok(addrs.collect::<Vec<_>>().into_iter()),
            }
        })
    }
}

/// A hosts file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read hosts file {}: {source}", path.display())]
pub struct HostsFileError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// Reads a file in /etc/hosts format. Lines that do not parse are skipped and reported,
/// as a hosts file is often shared with other tools that tolerate them.
pub fn read_hosts_file(path: &Path) -> Result<HashMap<String, Vec<IpAddr>>, HostsFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| HostsFileError {
        path: path.to_path_buf(),
        source,
    })?;
    let (table, skipped) = parse_hosts(&text);
    for (line, why) in skipped.iter().take(5) {
        tracing::warn!(file = %path.display(), line, why, "skipped a hosts-file line");
    }
    if skipped.len() > 5 {
        tracing::warn!(file = %path.display(), count = skipped.len(), "skipped hosts-file lines");
    }
    Ok(table)
}

type Skipped = Vec<(usize, String)>;

fn parse_hosts(text: &str) -> (HashMap<String, Vec<IpAddr>>, Skipped) {
    let mut table: HashMap<String, Vec<IpAddr>> = HashMap::new();
    let mut skipped = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let Some(ip) = fields.next().and_then(|f| f.parse::<IpAddr>().ok()) else {
            skipped.push((n + 1, format!("no IP address at the start of {raw:?}")));
            continue;
        };
        for name in fields {
            match net::normalise_name(name) {
                Ok(name) => {
                    let ips = table.entry(name).or_default();
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                Err(e) => skipped.push((n + 1, e.to_string())),
            }
        }
    }
    (table, skipped)
}

/// What went wrong reaching an origin, in the terms a person needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// The name did not resolve (502).
    Resolve,
    /// The TCP connection failed (502).
    Connect,
    /// DNS, connect or the response took too long (504).
    Timeout,
    /// The origin broke the exchange (502).
    Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    pub kind: UpstreamErrorKind,
    /// One sentence for the error page and the log.
    pub detail: String,
}

impl UpstreamError {
    /// Walks an error's causes to find the one that explains it.
    pub fn classify(err: &(dyn std::error::Error + 'static)) -> UpstreamError {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
        let mut last = err.to_string();
        while let Some(e) = cause {
            if let Some(r) = e.downcast_ref::<ResolveError>() {
                let kind = match r {
                    ResolveError::Timeout(..) => UpstreamErrorKind::Timeout,
                    ResolveError::NotFound(..) => UpstreamErrorKind::Resolve,
                };
                return UpstreamError {
                    kind,
                    detail: r.to_string(),
                };
            }
            if let Some(io) = e.downcast_ref::<io::Error>() {
                let kind = if io.kind() == io::ErrorKind::TimedOut {
                    UpstreamErrorKind::Timeout
                } else {
                    UpstreamErrorKind::Connect
                };
                return UpstreamError {
                    kind,
                    detail: describe_io(io),
                };
            }
            last = e.to_string();
            cause = e.source();
        }
        UpstreamError {
            kind: UpstreamErrorKind::Protocol,
            detail: last,
        }
    }

    pub fn response_timeout(after: Duration) -> UpstreamError {
        UpstreamError {
            kind: UpstreamErrorKind::Timeout,
            detail: format!(
                "the site did not start its response within {}",
                humantime::format_duration(after)
            ),
        }
    }
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "the connection was refused".into(),
        io::ErrorKind::TimedOut => "the connection attempt timed out".into(),
        io::ErrorKind::ConnectionReset => "the connection was reset".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_lines_and_aliases() {
        let (t, skipped) = parse_hosts(
            "127.0.0.1 localhost\n# c\n\n10.0.0.5  Intranet.Example.org intranet # main\nbogus line\n::1 ip6-localhost\n",
        );
        assert_eq!(
            t["intranet.example.org"],
            vec!["10.0.0.5".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(t["intranet"], vec!["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(t["ip6-localhost"], vec!["::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].0, 5);
    }

    #[tokio::test]
    async fn table_wins_over_dns() {
        let mut r = Resolver {
            inner: Arc::new(ResolverInner {
                table: HashMap::from([(
                    "www.ning.com".to_string(),
                    vec!["127.0.0.9".parse().unwrap()],
                )]),
                timeout: Duration::from_secs(1),
            }),
        };
        let addrs: Vec<_> = r
            .call("WWW.NING.COM.".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(addrs, vec!["127.0.0.9:0".parse::<SocketAddr>().unwrap()]);
    }
}
