//! Forwarding plain HTTP: one request to the origin through the pooled client, bodies
//! streamed both ways, hop-by-hop headers dropped, WebSocket upgrades relayed.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::header::{HeaderValue, HOST};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::body::{Flow, Metered, ProxyBody};
use super::error::ProxyError;
use super::headers;
use super::journaling::Pending;
use super::target::Origin;
use super::tunnel;
use super::upstream::UpstreamError;
use super::Shared;
use crate::journal::Outcome;

/// Byte counters for one exchange, read when it ends, and whether either body broke.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Client → origin; `failed`: the client's request body was malformed or cut short.
    pub up: Arc<Flow>,
    /// Origin → client; `failed`: the origin's response body was cut short.
    pub down: Arc<Flow>,
}

/// Sends `req` to `origin` and returns the origin's response, streaming.
pub async fn forward(
    shared: &Shared,
    mut req: Request<Incoming>,
    origin: Origin,
    counters: &Counters,
    mut pending: Pending,
) -> Result<Response<ProxyBody>, ProxyError> {
    if headers::has_our_via(req.headers(), &shared.via) {
        return Err(failed(pending, ProxyError::Loop));
    }
    // A transfer-coding other than chunked would be lost with the hop-by-hop header:
    // refuse it rather than hand the origin bytes it cannot read (RFC 9112 §6.1).
    if let Some(coding) = unsupported_coding(req.headers()) {
        return Err(failed(pending, ProxyError::UnsupportedCoding(coding)));
    }
    let websocket = headers::is_websocket_upgrade(req.headers());
    let client_side = websocket.then(|| hyper::upgrade::on(&mut req));

    let (mut parts, body) = req.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, websocket);
    // RFC 9112 §3.2.2: a proxy replaces the Host it received with the target's authority.
    if let Some(host) = parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        parts.headers.insert(HOST, host);
    }
    headers::add_via(&mut parts.headers, &shared.via);
    parts.version = Version::HTTP_11;
    let req = Request::from_parts(parts, Metered::new(body, counters.up.clone()));

    let timeout = shared.upstream.response_timeout;
    let mut resp = match tokio::time::timeout(timeout, shared.upstream.client.request(req)).await {
        Err(_) => {
            let error = UpstreamError::response_timeout(timeout);
            return Err(failed(pending, ProxyError::Upstream { origin, error }));
        }
        Ok(Err(e)) => {
            // The client's own body broke: its fault, not the origin's.
            if counters.up.failed.load(Ordering::Relaxed) {
                return Err(failed(pending, ProxyError::BadBody));
            }
            let error = UpstreamError::classify(&e);
            return Err(failed(pending, ProxyError::Upstream { origin, error }));
        }
        Ok(Ok(resp)) => resp,
    };

    let upgraded = websocket && resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    pending.set(Outcome::Forwarded, resp.status().as_u16());
    let mut until_done: crate::proxy::body::UntilDone = Some(Box::new(pending));
    if let (true, Some(client_side)) = (upgraded, client_side) {
        // The record is journaled when the relay ends, with its bytes.
        let pending = until_done.take();
        let origin_side = hyper::upgrade::on(&mut resp);
        let idle = shared.limits.tunnel_idle_timeout;
        let counters = counters.clone();
        shared.tasks.spawn(async move {
            match tokio::try_join!(client_side, origin_side) {
                Ok((client, origin)) => {
                    let (up, down) =
                        tunnel::splice(TokioIo::new(client), TokioIo::new(origin), idle).await;
                    counters.up.bytes.fetch_add(up, Ordering::Relaxed);
                    counters.down.bytes.fetch_add(down, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(error = %e, "websocket upgrade did not complete"),
            }
            drop(pending);
        });
    }

    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, upgraded);
    headers::add_via(&mut parts.headers, &shared.via);
    Ok(Response::from_parts(
        parts,
        ProxyBody::Upstream(Metered::new(body, counters.down.clone()), until_done),
    ))
}

/// Journals a failed exchange as an error with the status its page will carry.
pub fn failed(mut pending: Pending, err: ProxyError) -> ProxyError {
    pending.set(Outcome::Error, err.status().as_u16());
    err
}

/// The first transfer-coding other than `chunked`, if the request names one.
fn unsupported_coding(h: &http::HeaderMap) -> Option<String> {
    headers::tokens(h, http::header::TRANSFER_ENCODING)
        .find(|c| !c.eq_ignore_ascii_case("chunked"))
        .map(str::to_ascii_lowercase)
}
