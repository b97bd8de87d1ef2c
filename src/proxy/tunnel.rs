//! CONNECT tunnels: connect to the origin, answer 200, then copy bytes both ways untouched.

use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

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
        let mut pending = pending;
        pending.set(Outcome::Denied, 403);
        return Err(ProxyError::PortNotAllowed(origin));
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
                let (up, down) = splice(TokioIo::new(client), stream, idle).await;
                counters
                    .up
                    .fetch_add(up, std::sync::atomic::Ordering::Relaxed);
                counters
                    .down
                    .fetch_add(down, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(%origin, up, down, "tunnel closed");
            }
            Err(e) => tracing::debug!(%origin, error = %e, "client left before the tunnel opened"),
        }
    });
    Ok(Response::new(ProxyBody::empty()))
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
    tokio::pin!(copy);
    loop {
        tokio::select! {
            done = &mut copy => {
                return match done {
                    Ok(counts) => counts,
                    Err(e) => {
                        tracing::debug!(error = %e, "tunnel ended with an error");
                        (0, 0)
                    }
                };
            }
            _ = tokio::time::sleep_until(activity.quiet_deadline(idle)) => {
                if activity.quiet_deadline(idle) <= tokio::time::Instant::now() {
                    tracing::debug!(idle = ?idle, "closing a silent tunnel");
                    return (0, 0);
                }
            }
        }
    }
}
