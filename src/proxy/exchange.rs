//! One request through the house: read the target, decide, act, and record what happened.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body::ProxyBody;
use super::forward::{self, Counters};
use super::target::{self, SelfAddr, Target};
use super::{local, tunnel, Shared};

/// Facts about the client connection an exchange arrived on.
#[derive(Debug, Clone)]
pub struct ClientConn {
    pub peer: SocketAddr,
    pub me: SelfAddr,
}

/// Handles one request and always produces a response; errors become pages in `respond`.
pub async fn handle(
    shared: &Shared,
    conn: &ClientConn,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let method = req.method().clone();
    let url = redact(req.uri());
    let counters = Counters::default();

    let (outcome, result) = match target::parse(req.method(), req.uri(), &conn.me) {
        Err(e) => ("error", Err(e.into())),
        Ok(Target::Local { path }) => (
            "local",
            Ok(shared
                .responder
                .local(local::page(shared, req.method(), &path))),
        ),
        Ok(Target::Http(origin)) => (
            "forwarded",
            forward::forward(shared, req, origin, &counters).await,
        ),
        Ok(Target::Connect(origin)) => (
            "tunnelled",
            tunnel::open(shared, req, origin, &counters).await,
        ),
    };
    let (outcome, response) = match result {
        Ok(resp) => (outcome, resp),
        Err(e) => {
            tracing::info!(client = %conn.peer.ip(), %method, %url, error = %e, "request refused or failed");
            ("error", shared.responder.error(&e))
        }
    };
    tracing::debug!(
        target: "signpost::access",
        client = %conn.peer.ip(),
        %method,
        %url,
        outcome,
        status = response.status().as_u16(),
        bytes_up = counters.up.load(Ordering::Relaxed),
        duration_ms = started.elapsed().as_millis() as u64,
    );
    response
}

/// The URL as it may be logged: scheme, authority and path, never the query (it can hold
/// tokens) — the journal records the same.
fn redact(uri: &http::Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(s), Some(a)) => format!("{s}://{a}{}", uri.path()),
        (None, Some(a)) => a.to_string(),
        _ => uri.path().to_string(),
    }
}
