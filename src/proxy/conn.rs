//! One client connection: the gate, the HTTP/1 server, and the watchdog that enforces the
//! header and idle timeouts and graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::body::{BoxError, ProxyBody};
use super::error::ProxyError;
use super::exchange::{self, ClientConn};
use super::io::{Activity, ExchangeGuard, Expiry, Watched};
use super::target::SelfAddr;
use super::Shared;
use crate::net;

/// Serves one accepted connection until it closes, times out or the proxy shuts down.
/// `permit` is `None` when `proxy.max_connections` was already reached.
pub async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
) {
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(error = %e, "connection closed before it could be served");
            return;
        }
    };
    let client_ip = net::canonical_ip(peer.ip());
    // The gate: refuse before reading anything we would act on.
    let refusal = if !shared.allows(client_ip) {
        journal_refusal(&shared, client_ip, 403);
        tracing::warn!(client = %client_ip, "refused a client outside proxy.allow_clients");
        Some(ProxyError::ClientDenied(client_ip))
    } else if permit.is_none() {
        journal_refusal(&shared, client_ip, 503);
        tracing::warn!(client = %client_ip, "refused a connection: proxy.max_connections reached");
        Some(ProxyError::Overloaded)
    } else {
        None
    };

    let conn = Arc::new(ClientConn {
        peer,
        me: SelfAddr {
            hostname: shared.hostname.clone(),
            port: local.port(),
            local_ip: local.ip(),
            listen_ip: shared.listen_ip,
        },
    });
    let activity = Activity::new();
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
    shared.journal.metrics.connection_opened();
    let refused = refusal.is_some();
    let service = {
        let shared = shared.clone();
        let activity = activity.clone();
        service_fn(move |req| {
            let guard = activity.begin_exchange();
            let shared = shared.clone();
            let conn = conn.clone();
            let refusal = refusal.clone();
            async move {
                let resp = match refusal {
                    Some(e) => shared.responder.error(&e),
                    None => exchange::handle(&shared, &conn, req).await,
                };
                Ok::<_, Infallible>(resp.map(|body| Tracked {
                    body,
                    _guard: guard,
                }))
            }
        })
    };

    let mut builder = http1::Builder::new();
    builder
        .max_buf_size(shared.limits.max_header_bytes)
        // max_buf_size alone is only checked while a head is incomplete.
        .max_header_size(shared.limits.max_header_bytes)
        .keep_alive(!refused)
        .header_read_timeout(None);
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);

    let limits = &shared.limits;
    let mut draining = false;
    loop {
        // Bytes that start a request head do not wake this loop, so never sleep past one
        // header timeout from now: a head that starts later is still caught in time.
        let soonest = tokio::time::Instant::now() + limits.header_timeout.min(limits.idle_timeout);
        let wake = match activity.deadline(limits.idle_timeout, limits.header_timeout) {
            Some((at, _)) => at.min(soonest),
            None => soonest,
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(client = %client_ip, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = shared.shutdown.cancelled(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(wake) => {
                match activity.deadline(limits.idle_timeout, limits.header_timeout) {
                    Some((at, why)) if at <= tokio::time::Instant::now() => {
                        if why == Expiry::SlowHead {
                            tracing::info!(client = %client_ip, "closed a connection that sent its request head too slowly");
                        }
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
    shared.journal.metrics.connection_closed();
    drop(permit);
}

/// A refusal at the gate is a decision too.
fn journal_refusal(shared: &Shared, client: std::net::IpAddr, status: u16) {
    let mut r = crate::journal::Record::arrived(
        shared.clock.now(),
        client.to_string(),
        None,
        "-".into(),
        "-".into(),
        String::new(),
    );
    r.outcome = crate::journal::Outcome::Denied;
    r.status = status;
    r.reason = Some(if status == 403 {
        "client outside proxy.allow_clients".into()
    } else {
        "proxy.max_connections reached".into()
    });
    shared.journal.record(r);
}

/// A response body that marks its exchange finished when hyper drops it.
struct Tracked {
    body: ProxyBody,
    _guard: ExchangeGuard,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

// `Response<Tracked>` must be what hyper sends; this keeps the type in one place.
#[allow(dead_code)]
type ClientResponse = Response<Tracked>;
