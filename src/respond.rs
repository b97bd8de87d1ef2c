//! The one place where decisions and errors become HTTP responses.
//!
//! Deeper code returns typed values ([`ProxyError`], [`LocalPage`]); only this module writes
//! status lines, headers and pages. Pages are rendered by minijinja with auto-escaping, so
//! nothing a client sent can become markup.

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_TYPE};
use http::{Response, StatusCode};
use minijinja::{context, Environment};
use serde::Serialize;

use crate::proxy::body::ProxyBody;
use crate::proxy::error::ProxyError;

/// A page Signpost serves about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalPage {
    /// `/proxy.pac` and `/wpad.dat`.
    Pac(Bytes),
    /// `/healthz`.
    Health,
    /// `/`: what this proxy is, how to use it and how to trust its CA.
    Index {
        pac_url: String,
        /// The CA's common name, when interception is configured.
        ca_name: Option<String>,
    },
    /// `/signpost-ca.pem`: the CA certificate to install.
    CaCert(Bytes),
    NotFound {
        path: String,
    },
    MethodNotAllowed,
}

/// What a block page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub url: String,
    pub category_title: Option<String>,
    /// The rule's own message.
    pub message: Option<String>,
}

/// What the interstitial shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoachPage {
    pub url: String,
    pub category_name: String,
    pub category_title: String,
    pub guidance_html: Option<String>,
    pub message: Option<String>,
    pub token: String,
    pub require_reason: bool,
    /// Shown when the form came back incomplete.
    pub error: Option<String>,
    /// How long the acknowledgement will last, in words.
    pub remind_after: String,
}

/// Who runs the proxy, for its pages.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Organisation {
    pub name: Option<String>,
    pub acceptable_use_url: Option<String>,
    pub contact: Option<String>,
}

/// Renders pages from the templates in `assets/pages`, built into the binary.
pub struct Responder {
    env: Environment<'static>,
    via: String,
    organisation: Organisation,
}

impl Responder {
    pub fn new(via: String, organisation: Organisation) -> Responder {
        Responder::with_overrides(via, organisation, None)
    }

    /// As `new`; templates found in `dir` replace the built-in ones of the same name.
    pub fn with_overrides(
        via: String,
        organisation: Organisation,
        dir: Option<&std::path::Path>,
    ) -> Responder {
        let mut env = Environment::new();
        for (name, builtin) in TEMPLATES {
            let source = match dir.map(|d| d.join(name)) {
                Some(path) if path.is_file() => match std::fs::read_to_string(&path) {
                    Ok(text) => {
                        tracing::info!(template = %path.display(), "using an overridden page template");
                        text
                    }
                    Err(e) => {
                        tracing::warn!(template = %path.display(), error = %e, "cannot read an overridden template; using the built-in one");
                        builtin.to_string()
                    }
                },
                _ => builtin.to_string(),
            };
            // The templates are part of the binary and covered by tests; a broken one is a
            // build defect, reported at the first page rather than by a panic.
            if let Err(e) = env.add_template_owned(name, source) {
                tracing::error!(template = name, error = %e, "page template does not compile");
            }
        }
        Responder {
            env,
            via,
            organisation,
        }
    }

    /// The interstitial for a coached navigation.
    pub fn coach(&self, page: CoachPage) -> Response<ProxyBody> {
        let html = self.render(
            "coach.html",
            context! {
                url => shorten_url(&page.url, 120),
                return_url => page.url,
                category => page.category_title,
                category_name => page.category_name,
                guidance => page.guidance_html,
                message => page.message,
                token => page.token,
                require_reason => page.require_reason,
                error => page.error,
                remind_after => page.remind_after,
                action => crate::coach::ACKNOWLEDGE_PATH,
                org => &self.organisation,
                via => &self.via,
            },
        );
        let mut r = html_response(StatusCode::OK, html);
        r.headers_mut()
            .insert("x-signpost-action", HeaderValue::from_static("coach"));
        r
    }

    /// A subresource (image, script, XHR) of a coached or blocked site: 403, no page.
    pub fn refused_quietly(&self, action: crate::config::Action) -> Response<ProxyBody> {
        let mut r = Response::new(ProxyBody::empty());
        *r.status_mut() = StatusCode::FORBIDDEN;
        r.headers_mut().insert(
            "x-signpost-action",
            HeaderValue::from_static(action.as_str()),
        );
        r.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }

    /// An acknowledgement that was refused (bad, expired or foreign token; wrong origin).
    pub fn acknowledgement_refused(&self, why: &str) -> Response<ProxyBody> {
        self.error_page(
            StatusCode::FORBIDDEN,
            context! {
                heading => "That did not work",
                explanation => "The page you continued from was not accepted. Go back and open the site again to see the guidance afresh.",
                detail => why,
            },
        )
    }

    /// Sends the browser to `location` and closes the connection, so that its next
    /// request opens a new one (a new CONNECT, tunnelled untouched once acknowledged).
    pub fn redirect_and_close(&self, status: StatusCode, location: &str) -> Response<ProxyBody> {
        let mut r = Response::new(ProxyBody::empty());
        *r.status_mut() = status;
        if let Ok(v) = HeaderValue::from_str(location) {
            r.headers_mut().insert(http::header::LOCATION, v);
        }
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        r.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }

    /// The page for a request a rule blocks (403).
    pub fn blocked(&self, page: Blocked) -> Response<ProxyBody> {
        let url = shorten_url(&page.url, 120);
        let html = self.render(
            "blocked.html",
            context! {
                url,
                category => page.category_title,
                message => page.message,
                org => &self.organisation,
                via => &self.via,
            },
        );
        let mut r = html_response(StatusCode::FORBIDDEN, html);
        r.headers_mut()
            .insert("x-signpost-action", HeaderValue::from_static("block"));
        r
    }

    /// The response for an exchange that failed.
    pub fn error(&self, err: &ProxyError) -> Response<ProxyBody> {
        let status = err.status();
        let (heading, explanation, host, detail) = describe(err);
        let mut resp = self.error_page(status, context! { heading, explanation, host, detail });
        if matches!(err, ProxyError::ClientDenied(_) | ProxyError::Overloaded) {
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if let ProxyError::AuthRequired { challenge, .. } = err {
            resp.headers_mut()
                .insert(http::header::PROXY_AUTHENTICATE, challenge.clone());
        }
        resp
    }

    /// One of the proxy's own pages.
    pub fn local(&self, page: LocalPage) -> Response<ProxyBody> {
        match page {
            LocalPage::Pac(pac) => {
                let mut r = Response::new(ProxyBody::full(pac));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(crate::pac::CONTENT_TYPE),
                );
                r.headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
                r
            }
            LocalPage::Health => {
                let mut r = Response::new(ProxyBody::full("ok\n"));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                r.headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }
            LocalPage::Index { pac_url, ca_name } => {
                let html = self.render(
                    "index.html",
                    context! { pac_url, ca_name, org => &self.organisation, via => &self.via },
                );
                html_response(StatusCode::OK, html)
            }
            LocalPage::CaCert(pem) => {
                let mut r = Response::new(ProxyBody::full(pem));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-pem-file"),
                );
                r.headers_mut().insert(
                    http::header::CONTENT_DISPOSITION,
                    HeaderValue::from_static("attachment; filename=\"signpost-ca.pem\""),
                );
                r
            }
            LocalPage::NotFound { path } => self.error_page(
                StatusCode::NOT_FOUND,
                context! {
                    heading => "Page not found",
                    explanation => "This proxy has no page at that address.",
                    detail => path,
                },
            ),
            LocalPage::MethodNotAllowed => {
                let mut r = self.error_page(
                    StatusCode::METHOD_NOT_ALLOWED,
                    context! {
                        heading => "Method not allowed",
                        explanation => "The proxy's own pages can only be read (GET or HEAD).",
                    },
                );
                r.headers_mut()
                    .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                r
            }
        }
    }

    /// `error.html` with `ctx`, the status it is sent with and the proxy's name.
    fn error_page(&self, status: StatusCode, ctx: minijinja::Value) -> Response<ProxyBody> {
        let html = self.render(
            "error.html",
            context! { status => status.as_u16(), via => &self.via, ..ctx },
        );
        html_response(status, html)
    }

    fn render<S: Serialize>(&self, name: &str, ctx: S) -> String {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .unwrap_or_else(|e| {
                tracing::error!(template = name, error = %e, "page did not render");
                "<!doctype html><title>Signpost</title><p>Signpost could not render this page.</p>"
                    .to_string()
            })
    }
}

/// Keeps long URLs readable on a page: the start and the end, with an ellipsis.
pub fn shorten_url(url: &str, max: usize) -> String {
    let count = url.chars().count();
    if count <= max {
        return url.to_string();
    }
    let head: String = url.chars().take(max * 2 / 3).collect();
    let tail: String = url.chars().skip(count - max / 3).collect();
    format!("{head}…{tail}")
}

fn html_response(status: StatusCode, html: String) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(html));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Heading, explanation, host and detail for an error page.
fn describe(err: &ProxyError) -> (&'static str, &'static str, Option<String>, Option<String>) {
    match err {
        ProxyError::BadTarget(e) => (
            "The request could not be understood",
            "The browser sent a request the proxy cannot forward.",
            None,
            Some(e.to_string()),
        ),
        ProxyError::PortNotAllowed(o) => (
            "That port is not open through the proxy",
            "Secure connections through this proxy are only allowed to the usual web ports.",
            Some(o.to_string()),
            Some(format!("port {} is not in proxy.connect_ports", o.port)),
        ),
        ProxyError::ClientDenied(ip) => (
            "This proxy is not open to your address",
            "Only devices on the organisation's network may use this proxy.",
            None,
            Some(format!("your address is {ip}")),
        ),
        ProxyError::Upstream { origin, error } => (
            if err.status() == StatusCode::GATEWAY_TIMEOUT {
                "The site took too long to answer"
            } else {
                "The site could not be reached"
            },
            "The proxy tried to reach the site for you and could not. It may be down, or \
             its name may be wrong.",
            Some(origin.host.to_string()),
            Some(error.detail.clone()),
        ),
        ProxyError::BadBody => (
            "The request could not be sent on",
            "The data your browser sent was malformed or incomplete.",
            None,
            Some(err.to_string()),
        ),
        ProxyError::UnsupportedCoding(_) => (
            "The request could not be sent on",
            "The browser used a transfer coding this proxy does not pass on.",
            None,
            Some(err.to_string()),
        ),
        ProxyError::Intercept(why) => (
            "The proxy could not show its page for this site",
            "Signpost needed a certificate for this site and could not make one.",
            None,
            Some(why.clone()),
        ),
        ProxyError::AuthRequired { why, .. } => (
            "Please sign in to use the web proxy",
            "The proxy needs your network user name and password.",
            None,
            Some(why.clone()),
        ),
        ProxyError::TooManyLogins => (
            "Too many failed sign-ins",
            "Sign-in is paused for a few minutes after repeated wrong passwords. If you have forgotten yours, contact the IT service desk.",
            None,
            None,
        ),
        ProxyError::AuthUnavailable(why) => (
            "Sign-in is unavailable",
            "The proxy cannot reach the directory that checks passwords right now. Please try again shortly.",
            None,
            Some(why.clone()),
        ),
        ProxyError::Loop => (
            "The request went round in a loop",
            "The request was addressed back to this proxy.",
            None,
            None,
        ),
        ProxyError::Overloaded => (
            "The proxy is busy",
            "Too many connections are open right now. Please try again in a moment.",
            None,
            None,
        ),
    }
}

const TEMPLATES: [(&str, &str); 5] = [
    ("coach.html", include_str!("../assets/pages/coach.html")),
    ("blocked.html", include_str!("../assets/pages/blocked.html")),
    ("layout.html", include_str!("../assets/pages/layout.html")),
    ("error.html", include_str!("../assets/pages/error.html")),
    ("index.html", include_str!("../assets/pages/index.html")),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::target::Origin;
    use crate::proxy::upstream::{UpstreamError, UpstreamErrorKind};

    async fn text(r: Response<ProxyBody>) -> String {
        use http_body_util::BodyExt;
        let b = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn error_pages_escape_what_they_show() {
        let r = Responder::new("1.1 proxy".into(), Organisation::default());
        let err = ProxyError::Upstream {
            origin: Origin {
                host: crate::net::Host::Name("example.org".into()),
                port: 80,
            },
            error: UpstreamError {
                kind: UpstreamErrorKind::Connect,
                detail: "<script>alert(1)</script>".into(),
            },
        };
        let resp = r.error(&err);
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        let html = text(resp).await;
        assert!(html.contains("example.org"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }

    #[tokio::test]
    async fn timeouts_are_504() {
        let r = Responder::new(String::new(), Organisation::default());
        let err = ProxyError::Upstream {
            origin: Origin {
                host: crate::net::Host::Name("slow.example".into()),
                port: 80,
            },
            error: UpstreamError::response_timeout(std::time::Duration::from_secs(3)),
        };
        let resp = r.error(&err);
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(text(resp).await.contains("took too long"));
    }

    #[tokio::test]
    async fn error_pages_show_the_status_they_are_sent_with() {
        let r = Responder::new("1.1 proxy".into(), Organisation::default());
        for (resp, status, words) in [
            (
                r.acknowledgement_refused("token expired"),
                403,
                "token expired",
            ),
            (
                r.local(LocalPage::NotFound {
                    path: "/nowhere".into(),
                }),
                404,
                "nowhere",
            ),
            (r.local(LocalPage::MethodNotAllowed), 405, "GET or HEAD"),
            (r.error(&ProxyError::Loop), 508, "in a loop"),
        ] {
            assert_eq!(resp.status().as_u16(), status);
            let html = text(resp).await;
            assert!(html.contains(&format!("HTTP {status}")), "{html}");
            assert!(html.contains(words), "{html}");
            assert!(html.contains("1.1 proxy"), "{html}");
        }
    }
}
