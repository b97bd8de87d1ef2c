//! One client connection: the gate, the HTTP/1 server, and the watchdog that enforces the
//! header and idle timeouts and graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::body::{BoxError, ProxyBody};
use super::error::ProxyError;
use super::exchange::{self, ClientConn};
use super::io::{Activity, ExchangeGuard, Expiry, Slot, Timeouts, Watched};
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
        tracing::warn!(client = %client_ip, "refused a client outside proxy.allow_clients");
        let err = ProxyError::ClientDenied(client_ip);
        Some((err, "client outside proxy.allow_clients"))
    } else if permit.is_none() {
        tracing::warn!(client = %client_ip, "refused a connection: proxy.max_connections reached");
        Some((ProxyError::Overloaded, "proxy.max_connections reached"))
    } else {
        None
    };
    let refusal = refusal.map(|(err, why)| journal_refusal(&shared, client_ip, err, why));

    let conn = Arc::new(ClientConn {
        peer,
        me: SelfAddr {
            hostname: shared.hostname.clone(),
            port: local.port(),
            local_ip: local.ip(),
            listen_ip: shared.listen_ip,
        },
    });
    // The slot (permit and open-connection gauge) lives as long as the socket: in a tunnel
    // or WebSocket it outlasts this function.
    let slot = Slot::new(permit, shared.journal.metrics.clone());
    let activity = Activity::holding(Some(slot));
    let mut io = TokioIo::new(Watched::new(stream, activity.clone()));
    let refused = refusal.is_some();
    let mut service = {
        let shared = shared.clone();
        let activity = activity.clone();
        service_fn(move |req| {
            let guard = activity.begin_exchange();
            let shared = shared.clone();
            let conn = conn.clone();
            let refusal = refusal.clone();
            // Boxed so that hyper's per-connection slot for it stays one pointer wide.
            Box::pin(async move {
                let resp = match refusal {
                    Some(e) => shared.responder.error(&e),
                    None => exchange::handle(&shared, &conn, req).await,
                };
                Ok::<_, Infallible>(resp.map(|body| Tracked {
                    body,
                    _guard: guard,
                }))
            })
        })
    };

    let mut builder = http1::Builder::new();
    builder
        .max_buf_size(shared.limits.max_header_bytes)
        // max_buf_size alone is only checked while a head is incomplete.
        .max_header_size(shared.limits.max_header_bytes)
        .keep_alive(!refused)
        .header_read_timeout(None);
    let limits = &shared.limits;
    let timeouts = Timeouts {
        idle: limits.idle_timeout,
        header: limits.header_timeout,
        send: limits.send_timeout,
    };
    let parked_gauge = &shared.journal.metrics.parked_connections;
    loop {
        let mut connection = builder.serve_connection(io, service).with_upgrades();
        if !serve_until_parked(&shared, &mut connection, &activity, &timeouts, client_ip).await {
            break;
        }
        // Parked: hyper has let go of the socket, and of its buffers (16 KiB or more).
        let Some(parts) = connection.into_parts() else {
            break;
        };
        activity.set_parking(false);
        (io, service) = (parts.io, parts.service);
        io.inner_mut().replay(parts.read_buf);
        if io.inner().has_replay() {
            continue;
        }
        parked_gauge.fetch_add(1, Ordering::Relaxed);
        let woken = wait_parked(&shared, &io, &activity, &timeouts).await;
        parked_gauge.fetch_sub(1, Ordering::Relaxed);
        if !woken {
            break;
        }
    }
}

/// How long a keep-alive connection must be quiet before hyper lets go of it. Long enough
/// that a busy client's next request finds hyper still there; short enough that browsers'
/// idle connections cost a few hundred bytes each instead of hyper's buffers.
const PARK_AFTER: Duration = Duration::from_secs(1);

type Served<S> = hyper::server::conn::http1::UpgradeableConnection<TokioIo<Watched<TcpStream>>, S>;

/// Drives hyper on the connection until it ends (`false`) or, quiet for [`PARK_AFTER`], lets
/// go of the socket so that the connection can be parked (`true`). Enforces the header, idle
/// and send timeouts and starts a graceful shutdown when the proxy stops.
async fn serve_until_parked<S>(
    shared: &Shared,
    connection: &mut Served<S>,
    activity: &Activity,
    timeouts: &Timeouts,
    client_ip: std::net::IpAddr,
) -> bool
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = Tracked> + Unpin,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    let mut draining = shared.shutdown.is_cancelled();
    if draining {
        Pin::new(&mut *connection).graceful_shutdown();
    }
    let mut parking = false;
    loop {
        // Bytes that start a request head do not wake this loop, so never sleep past one
        // header timeout from now: a head that starts later is still caught in time.
        let now = Instant::now();
        let mut wake = now + timeouts.header.min(timeouts.idle);
        if let Some((at, _)) = activity.deadline(timeouts) {
            wake = wake.min(at);
        }
        if !parking && !draining {
            // Busy now: look again in a while (the end of an exchange wakes nothing here).
            wake = wake.min(activity.park_at(PARK_AFTER).unwrap_or(now + PARK_AFTER));
        }
        tokio::select! {
            result = &mut *connection => {
                if let Err(e) = result {
                    tracing::debug!(client = %client_ip, error = %e, "connection ended with an error");
                    return false;
                }
                return parking;
            }
            _ = shared.shutdown.cancelled(), if !draining => {
                draining = true;
                activity.set_parking(false);
                parking = false;
                Pin::new(&mut *connection).graceful_shutdown();
            }
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                match activity.deadline(timeouts) {
                    Some((at, why)) if at <= now => {
                        match why {
                            Expiry::SlowHead => tracing::info!(client = %client_ip, "closed a connection that sent its request head too slowly"),
                            Expiry::Stalled => tracing::info!(client = %client_ip, "closed a connection whose client stopped reading"),
                            Expiry::Idle => {}
                        }
                        return false;
                    }
                    _ => {}
                }
                if !parking && !draining && activity.park_at(PARK_AFTER).is_some_and(|at| at <= now) {
                    // hyper is idle (nothing in flight, nothing read or unflushed), so this
                    // closes it at once; its shutdown of the socket is skipped.
                    parking = true;
                    activity.set_parking(true);
                    Pin::new(&mut *connection).graceful_shutdown();
                }
            }
        }
    }
}

/// Waits, holding only the socket, for the parked client's next bytes (`true`), or closes
/// it at the idle timeout or when the proxy stops (`false`).
async fn wait_parked(
    shared: &Shared,
    io: &TokioIo<Watched<TcpStream>>,
    activity: &Activity,
    timeouts: &Timeouts,
) -> bool {
    let Some((idle_at, _)) = activity.deadline(timeouts) else {
        return true;
    };
    tokio::select! {
        ready = io.inner().get_ref().readable() => ready.is_ok(),
        _ = shared.shutdown.cancelled() => false,
        _ = tokio::time::sleep_until(idle_at) => false,
    }
}

/// A refusal at the gate is a decision too: journals it, with the status its page will
/// carry, and returns it.
fn journal_refusal(
    shared: &Shared,
    client: std::net::IpAddr,
    err: ProxyError,
    reason: &str,
) -> ProxyError {
    let r = crate::journal::Record::arrived(
        shared.clock.now(),
        client.to_string(),
        None,
        "-".into(),
        "-".into(),
        String::new(),
    );
    shared
        .journal
        .record(r.denied(err.status().as_u16(), reason.into()));
    err
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
