//! One request through the house: read the target, decide, act, and record what happened.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body::ProxyBody;
use super::forward::{self, Counters};
use super::target::{self, Origin, SelfAddr, Target};
use super::{local, tunnel, Shared};
use crate::config::Action;
use crate::policy::{self, Classification};
use crate::respond::Blocked;

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
    tracing::Span::current().record("target", url.as_str());
    let counters = Counters::default();

    let policy = shared.policy.load_full();
    let mut decision: Option<Classification> = None;
    let (outcome, result) = match target::parse(req.method(), req.uri(), &conn.me) {
        Err(e) => ("error", Err(e.into())),
        Ok(Target::Local { path }) => (
            "local",
            Ok(shared
                .responder
                .local(local::page(shared, req.method(), &path))),
        ),
        Ok(Target::Http(origin)) => {
            let (c, blocked) = decide(&policy, &origin, Some(req.uri().path()), &req, conn, &url);
            decision = Some(c);
            match blocked {
                Some(page) => ("blocked", Ok(shared.responder.blocked(page))),
                None => (
                    "forwarded",
                    forward::forward(shared, req, origin, &counters).await,
                ),
            }
        }
        Ok(Target::Connect(origin)) => {
            // Without interception a page cannot be shown inside the tunnel; the 403
            // still carries it for clients that display CONNECT errors.
            let (c, blocked) = decide(&policy, &origin, None, &req, conn, &url);
            decision = Some(c);
            match blocked {
                Some(page) => ("blocked", Ok(shared.responder.blocked(page))),
                None => (
                    "tunnelled",
                    tunnel::open(shared, req, origin, &counters).await,
                ),
            }
        }
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
        category = decision.as_ref().and_then(|d| d.category).and_then(|c| policy.category(c)).map(|c| c.name.as_str()),
        rule = decision.as_ref().and_then(|d| d.rule).map(|r| policy.rules[r].name.as_str()),
        action = decision.as_ref().map(|d| d.action.as_str()),
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

/// Classifies the request and says whether it is blocked (and with what page).
fn decide(
    policy: &policy::Policy,
    origin: &Origin,
    path: Option<&str>,
    req: &Request<Incoming>,
    conn: &ClientConn,
    url: &str,
) -> (Classification, Option<Blocked>) {
    let request = policy::Request {
        host: &origin.host,
        path,
        method: req.method(),
        client: crate::net::canonical_ip(conn.peer.ip()),
        user: None,
    };
    let c = policy::classify(policy, &request, jiff::Timestamp::now());
    if c.action != Action::Block {
        return (c, None);
    }
    let category = c.category.and_then(|id| policy.category(id));
    let rule = c.rule.map(|r| &policy.rules[r]);
    let page = Blocked {
        url: url.to_string(),
        category_title: category.map(|c| c.title.clone()),
        message: rule.and_then(|r| r.message.clone()),
    };
    (c, Some(page))
}
