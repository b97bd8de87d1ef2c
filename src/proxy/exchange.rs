//! One request through the house: read the target, classify, decide (with the
//! acknowledgement store), act, and record what happened.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use jiff::Timestamp;
use tokio::time::Instant;

use super::body::ProxyBody;
use super::coaching::{self, Verdict};
use super::error::ProxyError;
use super::forward::{self, Counters};
use super::intercept::{self, Mode};
use super::journaling::Pending;
use super::target::{self, Origin, SelfAddr, Target};
use super::{local, tunnel, Shared};
use crate::coach;
use crate::config::Action;
use crate::journal::{Outcome, Record};
use crate::policy::{self, Classification, Policy};
use crate::respond::Blocked;

/// Facts about the client connection an exchange arrived on.
#[derive(Debug, Clone)]
pub struct ClientConn {
    pub peer: SocketAddr,
    pub me: SelfAddr,
}

/// Who is behind a request: the client address, and the user when proxy authentication
/// is on.
#[derive(Debug, Clone)]
pub struct Who {
    /// The client address, as rules compare it.
    pub ip: std::net::IpAddr,
    /// The same, as records and acknowledgements write it.
    pub client: String,
    pub user: Option<String>,
    pub groups: Vec<String>,
}

impl Who {
    /// Acknowledgements and their tokens follow the person when known, else the address.
    pub fn ack_identity(&self) -> &str {
        self.user.as_deref().unwrap_or(&self.client)
    }
}

/// Answers a request whose proxy login failed, and journals it (never the password).
fn refuse_login(
    shared: &Shared,
    auth: &crate::identity::Authenticator,
    who: &Who,
    failure: crate::identity::AuthFailure,
    method: &http::Method,
    url: &str,
    now: Timestamp,
) -> Response<ProxyBody> {
    use crate::identity::AuthFailure;
    let attempted = match &failure {
        AuthFailure::Rejected(user) => Some(user.clone()),
        _ => None,
    };
    let err = match &failure {
        AuthFailure::RateLimited => ProxyError::TooManyLogins,
        AuthFailure::Unavailable(why) => ProxyError::AuthUnavailable(why.clone()),
        other => ProxyError::AuthRequired {
            challenge: auth.challenge(),
            why: other.to_string(),
        },
    };
    let response = shared.responder.error(&err);
    // A browser's first request carries no credentials by design: only failures that
    // name a user (or are refused outright) are worth a record.
    if !matches!(failure, AuthFailure::Missing) {
        let r = Record::arrived(
            now,
            who.client.clone(),
            attempted,
            method.to_string(),
            url.to_string(),
            String::new(),
        );
        shared
            .journal
            .record(r.denied(response.status().as_u16(), failure.to_string()));
    }
    response
}

/// Handles one request and always produces a response; errors become pages in `respond`.
pub async fn handle(
    shared: &Arc<Shared>,
    conn: &ClientConn,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let method = req.method().clone();
    let url = redact(req.uri());
    tracing::Span::current().record("target", url.as_str());
    let counters = Counters::default();
    let policy = shared.policy.load_full();
    let now = shared.clock.now();
    let target = target::check_host_header(req.version(), req.headers())
        .and_then(|()| target::parse(req.method(), req.uri(), &conn.me));
    let ip = crate::net::canonical_ip(conn.peer.ip());
    let mut who = Who {
        ip,
        client: ip.to_string(),
        user: None,
        groups: Vec::new(),
    };
    // Proxy authentication, for requests that leave the proxy (never its own pages).
    if let (Ok(Target::Http(_) | Target::Connect(_)), Some(auth)) = (&target, &shared.auth) {
        let header = req.headers().get(http::header::PROXY_AUTHORIZATION);
        match auth.verify(header, who.ip).await {
            Ok(id) => {
                who.user = Some(id.user);
                who.groups = id.groups;
            }
            Err(failure) => return refuse_login(shared, auth, &who, failure, &method, &url, now),
        }
    }
    let identity = who.ack_identity();
    let record = |host: String, url: String| {
        Record::arrived(
            now,
            who.client.clone(),
            who.user.clone(),
            method.to_string(),
            url,
            host,
        )
    };
    let pending = |r: Record| Pending::new(shared.journal.clone(), r, counters.clone(), started);

    // Each branch says how its record ends: `Some(outcome)` to journal it now with the
    // response's status, `None` when it has been handed on (streamed, tunnelled) or there
    // is nothing to journal (the proxy's own pages).
    let (finish, result): (Finish, Result<Response<ProxyBody>, ProxyError>) = match target {
        Err(e) => {
            let p = pending(record(String::new(), url.clone()));
            (Some((Outcome::Error, p)), Err(e.into()))
        }
        Ok(Target::Local { path }) => (
            None,
            Ok(shared
                .responder
                .local(local::page(shared, req.method(), &path))),
        ),
        Ok(Target::Http(origin)) if coaching::is_acknowledgement(&req) => {
            let site = intercept::site("http", &origin);
            let host = origin.host.to_string();
            let mut p = pending(record(host.clone(), url.clone()));
            let (resp, note) =
                coaching::acknowledge(shared, &policy, identity, &site, &host, req, now).await;
            let outcome = note.apply(&mut p, resp.status());
            (Some((outcome, p)), Ok(resp))
        }
        Ok(Target::Http(origin)) => {
            let c = classify(&policy, &origin, Some(req.uri().path()), &req, &who, now);
            let host = origin.host.to_string();
            let mut r = record(host.clone(), url.clone());
            describe(&mut r, &policy, &c);
            let p = pending(r);
            let verdict = coaching::verdict(shared, &policy, &c, identity, &host, now);
            match verdict {
                Verdict::Pass => (
                    None,
                    forward::forward(shared, req, origin, &counters, p).await,
                ),
                Verdict::Block => (
                    Some((Outcome::Blocked, p)),
                    Ok(shared.responder.blocked(blocked_page(&policy, &c, &url))),
                ),
                Verdict::Coach(cat) if coach::is_navigation(req.headers()) => {
                    let full_url = req.uri().to_string();
                    let message = coaching::rule_message(&policy, &c);
                    (
                        Some((Outcome::Coached, p)),
                        Ok(coaching::interstitial(
                            shared, &policy, cat, message, identity, &host, &full_url, now, None,
                        )),
                    )
                }
                Verdict::Coach(_) => (
                    Some((Outcome::Coached, p)),
                    Ok(shared.responder.refused_quietly(Action::Coach)),
                ),
            }
        }
        Ok(Target::Connect(origin)) => {
            let c = classify(&policy, &origin, None, &req, &who, now);
            let host = origin.host.to_string();
            let mut r = record(host.clone(), format!("https://{origin}"));
            describe(&mut r, &policy, &c);
            let p = pending(r);
            let verdict = coaching::verdict(shared, &policy, &c, identity, &host, now);
            let intercepting = shared.minter.is_some();
            match verdict {
                Verdict::Pass => (None, tunnel::open(shared, req, origin, &counters, p).await),
                // Intercepted: the requests inside are journaled one by one.
                Verdict::Block if intercepting => {
                    p.cancel();
                    let mode = Mode::Block(blocked_page(&policy, &c, &url));
                    (
                        None,
                        intercept::open(shared, req, origin, who.clone(), mode),
                    )
                }
                // Without a CA the page cannot be shown inside the tunnel; the 403
                // still carries it for clients that display CONNECT errors.
                Verdict::Block => (
                    Some((Outcome::Blocked, p)),
                    Ok(shared.responder.blocked(blocked_page(&policy, &c, &url))),
                ),
                Verdict::Coach(cat) if intercepting => {
                    p.cancel();
                    let category = policy
                        .category(cat)
                        .map(|c| c.name.clone())
                        .unwrap_or_default();
                    let mode = Mode::Coach {
                        category,
                        message: coaching::rule_message(&policy, &c),
                    };
                    (
                        None,
                        intercept::open(shared, req, origin, who.clone(), mode),
                    )
                }
                Verdict::Coach(_) => (
                    Some((Outcome::Coached, p)),
                    Ok(shared.responder.refused_quietly(Action::Coach)),
                ),
            }
        }
    };
    let response = match result {
        Ok(resp) => resp,
        Err(e) => {
            tracing::info!(client = %conn.peer.ip(), %method, %url, error = %e, "request refused or failed");
            shared.responder.error(&e)
        }
    };
    if let Some((outcome, mut p)) = finish {
        p.set(outcome, response.status().as_u16());
    }
    tracing::debug!(
        target: "signpost::access",
        client = %conn.peer.ip(),
        %method,
        %url,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_millis() as u64,
    );
    response
}

/// How a branch's record ends: journaled now with this outcome, or handed on.
type Finish = Option<(Outcome, Pending)>;

/// Copies the classification into a record.
pub fn describe(r: &mut Record, policy: &Policy, c: &Classification) {
    r.category = c
        .category
        .and_then(|id| policy.category(id))
        .map(|c| c.name.clone());
    r.rule = c
        .rule
        .and_then(|i| policy.rules.get(i))
        .map(|r| r.name.clone());
    r.action = Some(c.action.as_str().to_string());
}

fn classify(
    policy: &Policy,
    origin: &Origin,
    path: Option<&str>,
    req: &Request<Incoming>,
    who: &Who,
    now: Timestamp,
) -> Classification {
    let request = policy::Request {
        host: &origin.host,
        path,
        method: req.method(),
        client: who.ip,
        user: who.user.as_deref(),
        groups: &who.groups,
    };
    policy::classify(policy, &request, now)
}

fn blocked_page(policy: &Policy, c: &Classification, url: &str) -> Blocked {
    Blocked {
        url: url.to_string(),
        category_title: c
            .category
            .and_then(|id| policy.category(id))
            .map(|c| c.title.clone()),
        message: coaching::rule_message(policy, c),
    }
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
