//! Interception, only to show a page: for a coached or blocked CONNECT, answer 200,
//! terminate TLS with a leaf minted for the host, and answer the requests inside with the
//! interstitial or the block page. Nothing inside is ever forwarded: once the person
//! acknowledges, the connection is closed and the browser's next CONNECT is tunnelled.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_rustls::TlsAcceptor;

use super::body::ProxyBody;
use super::coaching;
use super::error::ProxyError;
use super::exchange::Who;
use super::forward::Counters;
use super::journaling::Pending;
use super::target::Origin;
use super::Shared;
use crate::coach;
use crate::config::Action;
use crate::journal::{Outcome, Record};
use crate::respond::Blocked;

/// Which page the intercepted connection shows.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The interstitial for this category (by name: the policy may be reloaded meanwhile),
    /// with the deciding rule's message.
    Coach {
        category: String,
        message: Option<String>,
    },
    Block(Blocked),
}

/// `scheme://host[:port]`, as a browser writes it in `Origin` (no default port).
pub fn site(scheme: &str, origin: &Origin) -> String {
    let default = if scheme == "https" { 443 } else { 80 };
    if origin.port == default {
        format!("{scheme}://{}", origin.host)
    } else {
        format!("{scheme}://{}:{}", origin.host, origin.port)
    }
}

/// Answers the CONNECT with 200 and serves the page inside TLS.
pub fn open(
    shared: &Arc<Shared>,
    mut req: Request<Incoming>,
    origin: Origin,
    who: Who,
    mode: Mode,
) -> Result<Response<ProxyBody>, ProxyError> {
    let Some(minter) = shared.minter.as_ref() else {
        return Err(ProxyError::Intercept(
            "no interception CA is configured".into(),
        ));
    };
    let tls = minter
        .server_config(&origin.host)
        .map_err(|e| ProxyError::Intercept(e.to_string()))?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let shared2 = Arc::clone(shared);
    shared.tasks.spawn(async move {
        let shared = shared2;
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "client left before interception began");
                return;
            }
        };
        let handshake = TlsAcceptor::from(tls).accept(TokioIo::new(upgraded));
        let stream = match tokio::time::timeout(shared.limits.header_timeout, handshake).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                // Usually a browser that does not trust the Signpost CA yet: worth an
                // administrator's attention, so it is journaled.
                tracing::info!(host = %origin.host, error = %e, "TLS handshake with the client failed during interception (is the Signpost CA trusted?)");
                let mut r = record(&who, &origin, &mode, "CONNECT", format!("https://{origin}"), shared.clock.now());
                r.reason = Some(format!("TLS handshake failed (is the Signpost CA trusted?): {e}"));
                shared.journal.record(r);
                return;
            }
            Err(_) => return,
        };
        let ctx = Arc::new(Intercepted {
            shared: Arc::clone(&shared),
            site: site("https", &origin),
            host: origin.host.to_string(),
            origin,
            who,
            mode,
        });
        let service = service_fn(move |req| {
            let ctx = Arc::clone(&ctx);
            async move { Ok::<_, Infallible>(inside(&ctx, req).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(shared.limits.idle_timeout)
            .max_buf_size(shared.limits.max_header_bytes)
            .serve_connection(TokioIo::new(stream), service);
        tokio::select! {
            _ = conn => {}
            _ = shared.shutdown.cancelled() => {}
        }
    });
    Ok(Response::new(ProxyBody::empty()))
}

/// What the requests inside one intercepted connection share, made once per connection.
struct Intercepted {
    shared: Arc<Shared>,
    origin: Origin,
    who: Who,
    mode: Mode,
    /// `https://host[:port]`, see [`site`].
    site: String,
    host: String,
}

/// One request inside an intercepted connection.
async fn inside(ctx: &Intercepted, req: Request<Incoming>) -> Response<ProxyBody> {
    let Intercepted {
        shared,
        origin,
        who,
        mode,
        site,
        host,
    } = ctx;
    let identity = who.ack_identity();
    let policy = shared.policy.load_full();
    let now = shared.clock.now();
    let started = tokio::time::Instant::now();
    let logged_url = format!("{site}{}", req.uri().path());
    let mut pending = Pending::new(
        shared.journal.clone(),
        record(who, origin, mode, req.method().as_str(), logged_url, now),
        Counters::default(),
        started,
    );
    if coaching::is_acknowledgement(&req) {
        let (resp, note) =
            coaching::acknowledge(shared, &policy, identity, site, host, req, now).await;
        let outcome = note.apply(&mut pending, resp.status());
        pending.set(outcome, resp.status().as_u16());
        return resp;
    }
    let url = format!(
        "{site}{}",
        req.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let resp = answer(shared, &policy, identity, host, mode, &url, now, &req);
    let outcome = match (mode, resp.status()) {
        (_, StatusCode::TEMPORARY_REDIRECT) => Outcome::Acknowledged,
        (Mode::Block(_), _) => Outcome::Blocked,
        (Mode::Coach { .. }, _) => Outcome::Coached,
    };
    pending.set(outcome, resp.status().as_u16());
    resp
}

/// The record for a request inside an intercepted connection, arrived at `now`.
fn record(
    who: &Who,
    origin: &Origin,
    mode: &Mode,
    method: &str,
    url: String,
    now: jiff::Timestamp,
) -> Record {
    let (category, action) = match mode {
        Mode::Coach { category, .. } => (Some(category.clone()), "coach"),
        Mode::Block(_) => (None, "block"),
    };
    let mut r = Record::arrived(
        now,
        who.client.clone(),
        who.user.clone(),
        method.to_string(),
        url,
        origin.host.to_string(),
    );
    r.category = category;
    r.action = Some(action.to_string());
    r
}

#[allow(clippy::too_many_arguments)]
fn answer(
    shared: &Shared,
    policy: &crate::policy::Policy,
    identity: &str,
    host: &str,
    mode: &Mode,
    url: &str,
    now: jiff::Timestamp,
    req: &Request<Incoming>,
) -> Response<ProxyBody> {
    match mode {
        Mode::Block(page) => {
            let mut page = page.clone();
            page.url = url.to_string();
            shared.responder.blocked(page)
        }
        Mode::Coach { category, message } => {
            let position = policy.categories.iter().position(|c| &c.name == category);
            let acked = coaching::acknowledged(shared, identity, category, host, now);
            match position.and_then(|p| u16::try_from(p).ok()) {
                // Acknowledged (perhaps in another tab), or the category is gone after a
                // reload: reconnect, so the new CONNECT is decided afresh.
                None => shared
                    .responder
                    .redirect_and_close(StatusCode::TEMPORARY_REDIRECT, url),
                Some(_) if acked => shared
                    .responder
                    .redirect_and_close(StatusCode::TEMPORARY_REDIRECT, url),
                Some(id) if coach::is_navigation(req.headers()) => coaching::interstitial(
                    shared,
                    policy,
                    id,
                    message.clone(),
                    identity,
                    host,
                    url,
                    now,
                    None,
                ),
                Some(_) => shared.responder.refused_quietly(Action::Coach),
            }
        }
    }
}
