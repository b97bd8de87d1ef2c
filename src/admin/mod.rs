//! The review dashboard and `/metrics`, on their own listener (never the proxy port).
//!
//! | path | method | what |
//! |---|---|---|
//! | `/metrics` | GET | Prometheus text; totals only, no login |
//! | `/login` | GET, POST | sign in with the password or the access token |
//! | `/logout` | POST | end the session |
//! | `/` | GET | the last 24 hours in charts, journal health, reloads |
//! | `/decisions` | GET | the decision log, filtered and paged |
//! | `/decisions.csv` | GET | the same rows as CSV |
//! | `/acknowledgements` | GET | acknowledgements, with reasons |
//! | `/acknowledgements/revoke` | POST | withdraw one |
//! | `/explain` | GET | what `signpost explain` says about a URL |
//! | `/reload` | POST | reload the policy now |
//!
//! Everything but `/metrics` and `/login` needs a session (cookie) or the access token
//! (`Authorization: Bearer`). Every POST from a session carries its CSRF token. Pages are
//! rendered by minijinja with auto-escaping, and need no scripts.

mod acks;
mod auth;
mod body;
mod charts;
mod decisions;
mod explain;
mod overview;
mod pages;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, ALLOW, RETRY_AFTER, SET_COOKIE, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use minijinja::context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::coach::AckStore;
use crate::config::AdminConfig;
use crate::journal::Journal;
use crate::metrics::Snapshot;
use crate::policy::Policy;
use crate::reload::Reloader;

pub use auth::AuthError;
pub use explain::explain_text;

use auth::{Auth, Identity};
use body::{secure, see_other, text, with_type, Resp};
use pages::Pages;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// Form bodies larger than this are refused.
const MAX_FORM: usize = 64 * 1024;
/// Time a client has to send a request head, and then a form body.
const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Sign-in attempts checked at once; more wait their turn.
const MAX_PASSWORD_CHECKS: usize = 4;
/// On stop, how long open requests (a long export, say) may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Everything the dashboard reads or acts on.
pub struct AdminContext {
    pub config: AdminConfig,
    pub journal_path: PathBuf,
    pub policy: Arc<ArcSwap<Policy>>,
    pub reloader: Reloader,
    /// `.stats` and `.metrics` are read for the overview and `/metrics`.
    pub journal: Journal,
    pub acks: Arc<AckStore>,
    pub clock: Clock,
}

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen for the dashboard on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// What every request handler shares.
struct State {
    ctx: AdminContext,
    auth: Auth,
    pages: Pages,
    /// Password checks running at once: argon2 is slow and memory-hungry on purpose, so
    /// a flood of sign-ins from many addresses must not take every core.
    checks: Semaphore,
}

/// A bound dashboard, ready to run.
pub struct Admin {
    listener: TcpListener,
    state: Arc<State>,
}

/// Binds the admin listener (`config.listen`) and reads the access token from the
/// environment. Errors name the address.
pub async fn bind(ctx: AdminContext) -> Result<Admin, AdminError> {
    let token = ctx
        .config
        .token_env
        .as_deref()
        .and_then(|name| match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
            Ok(_) | Err(_) => {
                tracing::warn!(
                    variable = name,
                    "admin.token_env names an environment variable that is not set or empty; \
                     no access token is accepted"
                );
                None
            }
        });
    if let Some(t) = &token {
        if t.len() < 16 {
            tracing::warn!("the dashboard's access token is short (under 16 characters); use a long random one");
        }
    }
    let auth = Auth::new(
        ctx.config.password_hash.as_deref(),
        token.as_deref(),
        ctx.config.token_env.clone(),
        ctx.config.session_lifetime.0,
    )?;
    if !auth.configured() {
        tracing::warn!(
            "the dashboard has neither admin.password_hash nor an access token (admin.token_env): \
             it stays closed and only says how to set one up; /metrics works"
        );
    }
    let addr = ctx.config.listen.0;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })?;
    Ok(Admin {
        listener,
        state: Arc::new(State {
            ctx,
            auth,
            pages: Pages::new(),
            checks: Semaphore::new(MAX_PASSWORD_CHECKS),
        }),
    })
}

impl Admin {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` is cancelled, then lets open requests finish (briefly).
    pub async fn run(self, stop: CancellationToken) {
        let Admin { listener, state } = self;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "dashboard is listening");
        }
        let tasks = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let permit = tokio::select! {
                _ = stop.cancelled() => break,
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let accepted = tokio::select! {
                _ = stop.cancelled() => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let state = Arc::clone(&state);
                    let stop = stop.clone();
                    tasks.spawn(async move {
                        serve(state, stream, peer, stop).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard: accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        drop(listener);
        tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = tasks.len(),
                "dashboard connections still open at shutdown; closing them"
            );
        }
    }
}

async fn serve(state: Arc<State>, stream: TcpStream, peer: SocketAddr, stop: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        async move {
            let mut resp = route(&state, peer.ip(), req).await;
            secure(&mut resp);
            Ok::<_, Infallible>(resp)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .max_buf_size(64 * 1024);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "dashboard connection ended");
            }
        }
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Did a browser (rather than a script) ask? Browsers are sent to the login page.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"))
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.\n");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

fn too_many() -> Resp {
    let mut r = text(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many failed sign-in attempts from this address; try again in ten minutes.\n",
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("600"));
    r
}

fn unauthorized(message: &str) -> Resp {
    let mut r = text(StatusCode::UNAUTHORIZED, format!("{message}\n"));
    r.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"signpost\""),
    );
    r
}

/// Reads a urlencoded form body (bounded in size and time).
async fn read_form(body: Incoming) -> Result<Vec<(String, String)>, Resp> {
    let collected = tokio::time::timeout(READ_TIMEOUT, Limited::new(body, MAX_FORM).collect())
        .await
        .map_err(|_| {
            text(
                StatusCode::REQUEST_TIMEOUT,
                "The form took too long to arrive.\n",
            )
        })?;
    let bytes: Bytes = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form is too large.\n",
            ))
        }
        Err(_) => {
            return Err(text(
                StatusCode::BAD_REQUEST,
                "The form did not arrive whole.\n",
            ))
        }
    };
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn route(state: &Arc<State>, ip: IpAddr, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let method = req.method().clone();
    let read = method == Method::GET || method == Method::HEAD;

    if path == "/metrics" {
        return if read {
            metrics(state)
        } else {
            method_not_allowed("GET, HEAD")
        };
    }
    if !state.auth.configured() {
        return state.pages.page(
            StatusCode::UNAUTHORIZED,
            "setup.html",
            context! { nav => "", token_env => state.auth.token_env.as_deref() },
        );
    }
    let now = state.ctx.clock.now();
    if path == "/login" {
        return match method {
            Method::GET | Method::HEAD => login_form(state, req.headers(), query.as_deref(), now),
            Method::POST => login(state, ip, req, now).await,
            _ => method_not_allowed("GET, HEAD, POST"),
        };
    }

    let session = match state.auth.identify(req.headers(), ip, now) {
        Identity::Session(s) => Some(s),
        Identity::Bearer => None,
        Identity::Anonymous => {
            return if wants_html(req.headers()) {
                let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
                let next: String = form_urlencoded::byte_serialize(target.as_bytes()).collect();
                see_other(&format!("/login?next={next}"))
            } else {
                unauthorized(
                    "Sign in at /login, or send Authorization: Bearer with the access token.",
                )
            };
        }
        Identity::BadToken => return unauthorized("The access token is wrong."),
        Identity::Limited => return too_many(),
    };
    let csrf = session.as_ref().map(|s| s.csrf.clone());
    let csrf = csrf.as_deref();

    let (parts, body) = req.into_parts();
    let form = if method == Method::POST {
        let form = match read_form(body).await {
            Ok(f) => f,
            Err(r) => return r,
        };
        // Scripts with the bearer token need no CSRF token: browsers never add that
        // header on their own, so a forged request cannot carry it.
        if let Some(s) = &session {
            let given = field(&form, "csrf").unwrap_or("");
            if !state.auth.same(given, &s.csrf) {
                tracing::warn!(client = %ip, path, "dashboard: form without a valid CSRF token refused");
                return state.pages.message(
                    StatusCode::FORBIDDEN,
                    csrf,
                    "That form has expired",
                    "The form was not sent from this dashboard, or your session has changed. \
                     Go back, reload the page and try again.",
                );
            }
        }
        form
    } else {
        Vec::new()
    };

    match (path.as_str(), read, method == Method::POST) {
        ("/", true, _) => overview::page(state, csrf).await,
        ("/decisions", true, _) => decisions::page(state, csrf, query.as_deref()).await,
        ("/decisions.csv", true, _) => decisions::csv(state, query.as_deref()).await,
        ("/acknowledgements", true, _) => acks::page(state, csrf, query.as_deref()).await,
        ("/acknowledgements/revoke", _, true) => acks::revoke(state, csrf, &form).await,
        ("/explain", true, _) => explain::page(state, csrf, query.as_deref()),
        ("/reload", _, true) => reload(state, csrf).await,
        ("/logout", _, true) => logout(state, &parts.headers),
        ("/" | "/decisions" | "/decisions.csv" | "/acknowledgements" | "/explain", false, _) => {
            method_not_allowed("GET, HEAD")
        }
        ("/acknowledgements/revoke" | "/reload" | "/logout", _, false) => {
            method_not_allowed("POST")
        }
        _ => state.pages.message(
            StatusCode::NOT_FOUND,
            csrf,
            "Page not found",
            "The dashboard has no page at that address.",
        ),
    }
}

fn login_form(
    state: &State,
    headers: &HeaderMap,
    query: Option<&str>,
    now: jiff::Timestamp,
) -> Resp {
    let next = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned());
    let next = auth::safe_next(next.as_deref());
    if auth::cookie(headers).is_some_and(|id| state.auth.session(id, now).is_some()) {
        return see_other(&next);
    }
    login_page(state, StatusCode::OK, &next, None)
}

fn login_page(state: &State, status: StatusCode, next: &str, error: Option<&str>) -> Resp {
    state.pages.page(
        status,
        "login.html",
        context! {
            nav => "",
            next,
            error,
            has_password => state.auth.has_password(),
            has_token => state.auth.has_token(),
        },
    )
}

async fn login(
    state: &Arc<State>,
    ip: IpAddr,
    req: Request<Incoming>,
    now: jiff::Timestamp,
) -> Resp {
    if !auth::same_origin(req.headers()) {
        tracing::warn!(client = %ip, "dashboard: sign-in form posted from another origin refused");
        return state.pages.message(
            StatusCode::FORBIDDEN,
            None,
            "Sign in from the dashboard itself",
            "This sign-in form was sent from another site, so it was refused.",
        );
    }
    if state.auth.limited(ip, now) {
        tracing::warn!(client = %ip, "dashboard: sign-in refused, too many recent failures");
        return too_many();
    }
    let form = match read_form(req.into_body()).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let next = auth::safe_next(field(&form, "next"));
    let secret = field(&form, "password").unwrap_or("").to_string();
    let checker = Arc::clone(state);
    let ok = match state.checks.acquire().await {
        Ok(_permit) => tokio::task::spawn_blocking(move || checker.auth.check_secret(&secret))
            .await
            .unwrap_or(false),
        Err(_) => false,
    };
    if !ok {
        let failures = state.auth.failed(ip, now);
        tracing::warn!(client = %ip, failures, "dashboard: sign-in failed");
        return login_page(
            state,
            StatusCode::UNAUTHORIZED,
            &next,
            Some("That password or token is not right."),
        );
    }
    state.auth.succeeded(ip);
    match state.auth.start_session(now) {
        Ok((id, _)) => {
            tracing::info!(client = %ip, "dashboard: signed in");
            let mut r = see_other(&next);
            if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(&id, state.auth.lifetime())) {
                r.headers_mut().insert(SET_COOKIE, v);
            }
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "dashboard: cannot start a session");
            state.pages.message(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "Could not sign in",
                &e.to_string(),
            )
        }
    }
}

fn logout(state: &State, headers: &HeaderMap) -> Resp {
    if let Some(id) = auth::cookie(headers) {
        state.auth.end_session(id);
    }
    let mut r = see_other("/login");
    if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie()) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

async fn reload(state: &State, csrf: Option<&str>) -> Resp {
    let reloader = state.ctx.reloader.clone();
    tracing::info!("dashboard: policy reload requested");
    let result = tokio::task::spawn_blocking(move || {
        reloader
            .reload_now()
            .map(|p| (p.categories.len(), p.rules.len()))
            .map_err(|errors| errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    })
    .await
    .unwrap_or_else(|e| Err(vec![format!("the reload task failed: {e}")]));
    let stats = &state.ctx.reloader.stats;
    let (succeeded, failed) = (
        stats.succeeded.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed),
    );
    let (status, ok, categories, rules, errors) = match result {
        Ok((c, r)) => (StatusCode::OK, true, c, r, Vec::new()),
        Err(errors) => (StatusCode::UNPROCESSABLE_ENTITY, false, 0, 0, errors),
    };
    state.pages.page(
        status,
        "reload.html",
        context! { nav => "overview", csrf, ok, categories, rules, errors, succeeded, failed },
    )
}

fn metrics(state: &State) -> Resp {
    let stats = &state.ctx.journal.stats;
    let reloads = &state.ctx.reloader.stats;
    let snap = Snapshot {
        journal_queue_depth: stats.depth.load(Ordering::Relaxed),
        journal_dropped: stats.dropped.load(Ordering::Relaxed),
        journal_lost: stats.lost.load(Ordering::Relaxed),
        journal_written: stats.written.load(Ordering::Relaxed),
        reloads: reloads.succeeded.load(Ordering::Relaxed),
        reloads_failed: reloads.failed.load(Ordering::Relaxed),
    };
    with_type(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        crate::metrics::render(&state.ctx.journal.metrics, &snap),
    )
}
