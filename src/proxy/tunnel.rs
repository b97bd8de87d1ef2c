//! CONNECT tunnels: connect to the origin, answer 200, then relay bytes both ways untouched
//! (zero-copy on Linux, see `splice.rs`).

use std::future::Future;
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[cfg(target_os = "linux")]
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::body::ProxyBody;
use super::error::ProxyError;
use super::forward::Counters;
use super::io::{Activity, Watched};
use super::journaling::Pending;
use super::target::Origin;
use super::Shared;
use crate::journal::Outcome;

/// Opens a tunnel to `origin`. The origin is connected before the 200 goes out, so that a
/// client is told when the site cannot be reached.
pub async fn open(
    shared: &Shared,
    mut req: Request<Incoming>,
    origin: Origin,
    counters: &Counters,
    mut pending: Pending,
) -> Result<Response<ProxyBody>, ProxyError> {
    if !shared.connect_ports.contains(&origin.port) {
        let err = ProxyError::PortNotAllowed(origin);
        pending.set(Outcome::Denied, err.status().as_u16());
        return Err(err);
    }
    let stream = match shared.upstream.connect(&origin.host, origin.port).await {
        Ok(s) => s,
        Err(error) => {
            let err = ProxyError::Upstream {
                origin: origin.clone(),
                error,
            };
            return Err(super::forward::failed(pending, err));
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let idle = shared.limits.tunnel_idle_timeout;
    let counters = counters.clone();
    pending.set(Outcome::Tunnelled, 200);
    shared.tasks.spawn(async move {
        // Journaled when the tunnel closes, with its bytes and duration.
        let _pending = pending;
        match on_upgrade.await {
            Ok(client) => {
                let (up, down) = relay(client, stream, idle).await;
                counters
                    .up
                    .bytes
                    .fetch_add(up, std::sync::atomic::Ordering::Relaxed);
                counters
                    .down
                    .bytes
                    .fetch_add(down, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(%origin, up, down, "tunnel closed");
            }
            Err(e) => tracing::debug!(%origin, error = %e, "client left before the tunnel opened"),
        }
    });
    Ok(Response::new(ProxyBody::empty()))
}

/// Relays an upgraded client connection and an origin socket: zero-copy when the client is
/// a plain TCP socket (Linux), by copying otherwise.
async fn relay(client: Upgraded, origin: TcpStream, idle: Duration) -> (u64, u64) {
    #[cfg(target_os = "linux")]
    {
        match client.downcast::<TokioIo<Watched<TcpStream>>>() {
            Ok(parts) => {
                // `_slot` keeps the client connection counted until the tunnel closes.
                let (client, unread, _slot) = parts.io.into_inner().into_parts();
                splice_tcp(client, [parts.read_buf, unread], origin, idle).await
            }
            Err(client) => splice(TokioIo::new(client), origin, idle).await,
        }
    }
    #[cfg(not(target_os = "linux"))]
    splice(TokioIo::new(client), origin, idle).await
}

/// [`splice`] for two TCP sockets, without copying through user space. `early` holds bytes
/// the client sent before the tunnel opened (read along with its CONNECT), in order: what
/// hyper had read, then what it had not yet taken; they go first.
#[cfg(target_os = "linux")]
async fn splice_tcp(
    client: TcpStream,
    early: [Bytes; 2],
    origin: TcpStream,
    idle: Duration,
) -> (u64, u64) {
    let activity = Activity::new();
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let work = async {
        for bytes in &early {
            super::splice::send(&origin, bytes, &activity, &up).await?;
        }
        super::splice::both_ways(&client, &origin, &activity, &up, &down).await
    };
    match until_quiet(&activity, idle, work).await {
        Some(Ok(())) => {}
        Some(Err(e)) => tracing::debug!(error = %e, "tunnel ended with an error"),
        None => tracing::debug!(idle = ?idle, "closing a silent tunnel"),
    }
    (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed))
}

/// Copies bytes both ways until both sides close, or until nothing has moved for `idle`.
/// Returns the bytes sent client → origin and origin → client.
pub async fn splice<A, B>(client: A, origin: B, idle: Duration) -> (u64, u64)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let mut client = Watched::new(client, activity.clone());
    let mut origin = Watched::new(origin, activity.clone());
    let copy = tokio::io::copy_bidirectional(&mut client, &mut origin);
    match until_quiet(&activity, idle, copy).await {
        Some(Ok(counts)) => counts,
        Some(Err(e)) => {
            tracing::debug!(error = %e, "tunnel ended with an error");
            (0, 0)
        }
        None => {
            tracing::debug!(idle = ?idle, "closing a silent tunnel");
            (0, 0)
        }
    }
}

/// Runs `work` until it finishes, or `None` once nothing has moved for `idle`.
async fn until_quiet<T>(
    activity: &Activity,
    idle: Duration,
    work: impl Future<Output = std::io::Result<T>>,
) -> Option<std::io::Result<T>> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return Some(done),
            _ = tokio::time::sleep_until(activity.quiet_deadline(idle)) => {
                if activity.quiet_deadline(idle) <= tokio::time::Instant::now() {
                    return None;
                }
            }
        }
    }
}
