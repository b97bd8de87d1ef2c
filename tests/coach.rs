//! The coach flow over real sockets: the interstitial over HTTP and inside intercepted
//! HTTPS, acknowledging, tokens that must be refused, expiry, persistence, block pages,
//! and the CA the proxy serves.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use signpost::config::Config;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

type Sender = hyper::client::conn::http1::SendRequest<TestBody>;

struct Setup {
    proxy: TestProxy,
    origin: Origin,
    tls_origin: Origin,
    origin_cert: CertificateDer<'static>,
    state: PathBuf,
}

impl Setup {
    fn ca_cert(&self) -> CertificateDer<'static> {
        let pem = std::fs::read(self.state.join("ca.pem")).unwrap();
        rustls_pemfile_der(&pem)
    }
    /// The coached site over plain HTTP, as an origin (no path).
    fn http_site(&self) -> String {
        format!("http://www.ning.com:{}", self.origin.addr.port())
    }
    fn http_url(&self, path: &str) -> String {
        format!("{}{path}", self.http_site())
    }
    fn https_port(&self) -> u16 {
        self.tls_origin.addr.port()
    }
}

fn rustls_pemfile_der(pem: &[u8]) -> CertificateDer<'static> {
    let text = String::from_utf8_lossy(pem);
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    CertificateDer::from(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
}

fn config_text(state: &Path, tls_port: u16, extra: &str, with_tls: bool) -> String {
    let tls = if with_tls {
        format!(
            "[tls]\nca_cert = \"{0}/ca.pem\"\nca_key = \"{0}/ca-key.pem\"\ncreate_if_missing = true\n",
            state.display()
        )
    } else {
        String::new()
    };
    format!(
        r#"
[proxy]
listen = "127.0.0.1:0"
connect_ports = [443, {tls_port}]

[upstream]
hosts = {{ "www.ning.com" = "127.0.0.1", "bad.example" = "127.0.0.1" }}

{tls}
[coach]
secret_file = "{state}/coach-secret"

[journal]
path = "{state}/journal.db"

[organisation]
name = "Example Council"
acceptable_use_url = "https://intranet.example.org/aup"

[[category]]
name = "social"
title = "Social networks"
hosts = ["ning.com"]
guidance = "**Think** before you post."
{extra}

[[category]]
name = "malware"
hosts = ["bad.example"]

[[rule]]
name = "malware"
category = "malware"
action = "block"

[[rule]]
name = "coach social"
category = "social"
action = "coach"
"#,
        state = state.display()
    )
}

async fn setup_with(extra: &str, with_tls: bool, state: Option<PathBuf>) -> Setup {
    let origin = origin().await;
    let (tls_origin, origin_cert) = tls_origin_for(&["www.ning.com", "bad.example"]).await;
    let state = state.unwrap_or_else(state_dir);
    let text = config_text(&state, tls_origin.addr.port(), extra, with_tls);
    let config = Config::parse(&state.join("signpost.toml"), &text).unwrap();
    let proxy = proxy(config).await;
    Setup {
        proxy,
        origin,
        tls_origin,
        origin_cert,
        state,
    }
}

async fn setup() -> Setup {
    setup_with("", true, None).await
}

fn navigate(url: &str) -> Request<TestBody> {
    Request::get(url)
        .header("accept", "text/html,application/xhtml+xml")
        .header("sec-fetch-mode", "navigate")
        .body(Default::default())
        .unwrap()
}

/// Pulls a hidden field's value out of the interstitial (and undoes HTML escaping).
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end]
        .replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn ack_request(
    site: &str,
    fields: &[(&str, &str)],
    origin_header: Option<&str>,
) -> Request<TestBody> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut b = Request::post(format!("{site}/.well-known/signpost/acknowledge"))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(o) = origin_header {
        b = b.header("origin", o);
    }
    b.body(http_body_util::Full::new(bytes::Bytes::from(body)).boxed())
        .unwrap()
}

async fn text(resp: http::Response<hyper::body::Incoming>) -> String {
    body_text(resp).await
}

/// CONNECT through the proxy, then TLS trusting only `trust`. Err if the handshake fails.
async fn https(
    proxy: std::net::SocketAddr,
    port: u16,
    host: &str,
    trust: CertificateDer<'static>,
) -> Result<Sender, String> {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(
        format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let head = read_head(&mut s).await;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head);
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust).unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(ServerName::try_from(host.to_string()).unwrap(), s)
        .await
        .map_err(|e| e.to_string())?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    Ok(send)
}

#[tokio::test]
async fn http_flow_interstitial_then_acknowledge_then_the_site() {
    let s = setup().await;
    let mut c = client(s.proxy.addr).await;
    let url = s.http_url("/hello?from=search");

    let resp = c.send_request(navigate(&url)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-signpost-action"], "coach");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let page = text(resp).await;
    assert!(
        page.contains("<strong>Think</strong> before you post."),
        "{page}"
    );
    assert!(page.contains("Example Council"), "{page}");
    assert!(
        page.contains("https:&#x2f;&#x2f;intranet.example.org&#x2f;aup"),
        "{page}"
    );
    assert!(
        page.contains(
            "<form method=\"post\" action=\"&#x2f;.well-known&#x2f;signpost&#x2f;acknowledge\">"
        ),
        "{page}"
    );
    assert!(
        !page.contains("<label for=\"reason\">"),
        "no reason asked for this category"
    );
    assert!(
        s.origin.seen().is_empty(),
        "nothing reaches the origin before acknowledging"
    );

    // Subresources get an empty 403.
    c.ready().await.unwrap();
    let img = Request::get(s.http_url("/logo.png"))
        .header("accept", "image/avif,image/webp,*/*")
        .header("sec-fetch-mode", "no-cors")
        .header("sec-fetch-dest", "image")
        .body(Default::default())
        .unwrap();
    let resp = c.send_request(img).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()["x-signpost-action"], "coach");
    assert_eq!(text(resp).await, "");

    // Continue.
    c.ready().await.unwrap();
    let site = s.http_site();
    let token = field(&page, "token");
    let back = field(&page, "url");
    assert_eq!(back, url);
    let resp = c
        .send_request(ack_request(
            &site,
            &[("token", &token), ("category", "social"), ("url", &back)],
            Some(&site),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], url.as_str());
    assert_eq!(resp.headers()["connection"], "close");

    let mut c = client(s.proxy.addr).await;
    let resp = c.send_request(navigate(&url)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(text(resp).await, "hello from origin");
    assert_eq!(s.origin.seen().len(), 1);
}

#[tokio::test]
async fn https_flow_intercepts_only_until_acknowledged() {
    let s = setup().await;
    let port = s.https_port();
    let site = format!("https://www.ning.com:{port}");

    // Before: the certificate is Signpost's, and the page is the interstitial.
    let mut inside = https(s.proxy.addr, port, "www.ning.com", s.ca_cert())
        .await
        .unwrap();
    let resp = inside
        .send_request(navigate(&format!("{site}/hello")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let page = text(resp).await;
    assert!(page.contains("Before you continue"), "{page}");
    inside.ready().await.unwrap();
    let script = Request::get(format!("{site}/app.js"))
        .header("sec-fetch-mode", "no-cors")
        .body(Default::default())
        .unwrap();
    let resp = inside.send_request(script).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(text(resp).await, "");
    assert!(
        s.tls_origin.seen().is_empty(),
        "nothing inside interception is forwarded"
    );

    // Continue: 303 back and the connection closes.
    inside.ready().await.unwrap();
    let token = field(&page, "token");
    let resp = inside
        .send_request(ack_request(
            &site,
            &[
                ("token", &token),
                ("category", "social"),
                ("url", &format!("{site}/hello")),
            ],
            Some(&site),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], format!("{site}/hello").as_str());
    assert_eq!(resp.headers()["connection"], "close");

    // After: the new CONNECT is a plain tunnel, so only the origin's own certificate works.
    let err = https(s.proxy.addr, port, "www.ning.com", s.ca_cert())
        .await
        .err();
    assert!(
        err.is_some(),
        "a client trusting only Signpost's CA must now fail"
    );
    let mut direct = https(s.proxy.addr, port, "www.ning.com", s.origin_cert.clone())
        .await
        .unwrap();
    let resp = direct.send_request(navigate("/hello")).await.unwrap();
    assert_eq!(text(resp).await, "hello from origin");
}

#[tokio::test]
async fn an_intercepted_connection_left_open_is_redirected_after_acknowledging() {
    let s = setup().await;
    let port = s.https_port();
    let site = format!("https://www.ning.com:{port}");
    let mut first = https(s.proxy.addr, port, "www.ning.com", s.ca_cert())
        .await
        .unwrap();
    let page = text(
        first
            .send_request(navigate(&format!("{site}/")))
            .await
            .unwrap(),
    )
    .await;

    // Acknowledge on a second connection (another tab).
    let mut second = https(s.proxy.addr, port, "www.ning.com", s.ca_cert())
        .await
        .unwrap();
    let token = field(&page, "token");
    let resp = second
        .send_request(ack_request(
            &site,
            &[
                ("token", &token),
                ("category", "social"),
                ("url", &format!("{site}/")),
            ],
            None,
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    first.ready().await.unwrap();
    let resp = first
        .send_request(navigate(&format!("{site}/later")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(resp.headers()["location"], format!("{site}/later").as_str());
    assert_eq!(resp.headers()["connection"], "close");
}

/// What a browser navigating to the coached `/hello` over plain HTTP is shown, on a new
/// connection: the interstitial, until it is acknowledged.
async fn http_interstitial(s: &Setup) -> String {
    let mut c = client(s.proxy.addr).await;
    text(
        c.send_request(navigate(&s.http_url("/hello")))
            .await
            .unwrap(),
    )
    .await
}

async fn still_coached(s: &Setup) -> bool {
    let mut c = client(s.proxy.addr).await;
    let resp = c
        .send_request(navigate(&s.http_url("/hello")))
        .await
        .unwrap();
    resp.headers()
        .get("x-signpost-action")
        .is_some_and(|v| v == "coach")
}

#[tokio::test]
async fn forged_altered_foreign_and_cross_origin_acknowledgements_are_refused() {
    let s = setup().await;
    let site = s.http_site();
    let page = http_interstitial(&s).await;
    let token = field(&page, "token");

    let mut altered = token.clone().into_bytes();
    altered[3] = if altered[3] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for (what, tok, category, origin) in [
        ("forged", forged, "social", Some(site.as_str())),
        ("altered", altered.as_str(), "social", Some(site.as_str())),
        (
            "other category",
            token.as_str(),
            "malware",
            Some(site.as_str()),
        ),
        (
            "cross-origin",
            token.as_str(),
            "social",
            Some("http://evil.example"),
        ),
        ("empty", "", "social", None),
    ] {
        let mut c = client(s.proxy.addr).await;
        let resp = c
            .send_request(ack_request(
                &site,
                &[
                    ("token", tok),
                    ("category", category),
                    ("url", &s.http_url("/")),
                ],
                origin,
            ))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{what}");
        let body = text(resp).await;
        assert!(body.contains("That did not work"), "{what}: {body}");
    }

    // The same token from another client address (identity) is refused too.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(s.proxy.addr).await.unwrap();
    let (mut other, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = other
        .send_request(ack_request(
            &site,
            &[
                ("token", &token),
                ("category", "social"),
                ("url", &s.http_url("/")),
            ],
            Some(&site),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "another identity");

    assert!(
        still_coached(&s).await,
        "no refused attempt acknowledged anything"
    );
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let s = setup().await;
    let site = s.http_site();
    let page = http_interstitial(&s).await;
    let token = field(&page, "token");

    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(31 * 60)).await;
    let mut c = client(s.proxy.addr).await;
    let resp = c
        .send_request(ack_request(
            &site,
            &[("token", &token), ("category", "social")],
            Some(&site),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(text(resp).await.contains("expired"));
}

async fn acknowledge_over_http(
    s: &Setup,
    reason: Option<&str>,
) -> http::Response<hyper::body::Incoming> {
    let site = s.http_site();
    let page = http_interstitial(s).await;
    let token = field(&page, "token");
    let mut fields = vec![("token", token.as_str()), ("category", "social")];
    if let Some(r) = reason {
        fields.push(("reason", r));
    }
    let mut c = client(s.proxy.addr).await;
    c.send_request(ack_request(&site, &fields, Some(&site)))
        .await
        .unwrap()
}

#[tokio::test]
async fn acknowledgements_expire_on_time() {
    let s = setup().await;
    assert_eq!(
        acknowledge_over_http(&s, None).await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(!still_coached(&s).await);

    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(8 * 3600 - 60)).await;
    assert!(!still_coached(&s).await, "still valid just before 8h");
    tokio::time::advance(Duration::from_secs(120)).await;
    assert!(
        still_coached(&s).await,
        "coached again after coach.acknowledge_for"
    );
}

#[tokio::test]
async fn acknowledgements_survive_a_restart() {
    let state = state_dir();
    let s = setup_with("", true, Some(state.clone())).await;
    assert_eq!(
        acknowledge_over_http(&s, None).await.status(),
        StatusCode::SEE_OTHER
    );
    s.proxy.stop.cancel();
    s.proxy.done.await.unwrap();

    let again = setup_with("", true, Some(state)).await;
    assert!(!still_coached(&again).await, "the acknowledgement was kept");
}

#[tokio::test]
async fn a_reason_can_be_required_and_is_stored() {
    let s = setup_with(
        "require_reason = true\nacknowledge_for = \"1h\"",
        true,
        None,
    )
    .await;
    let page = http_interstitial(&s).await;
    assert!(page.contains("<label for=\"reason\">"), "{page}");
    assert!(
        page.contains("1h"),
        "the page says when the reminder returns: {page}"
    );

    let resp = acknowledge_over_http(&s, Some("   ")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let again = text(resp).await;
    assert!(again.contains("role=\"alert\""), "{again}");
    assert!(again.contains("Please say briefly why"), "{again}");
    assert!(still_coached(&s).await);

    let resp = acknowledge_over_http(&s, Some("Checking the <council> page")).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(!still_coached(&s).await);
    let db = rusqlite::Connection::open(s.state.join("journal.db")).unwrap();
    let reason: String = db
        .query_row("SELECT reason FROM acknowledgements", [], |r| r.get(0))
        .unwrap();
    assert_eq!(reason, "Checking the <council> page");
}

#[tokio::test]
async fn the_url_on_the_page_is_escaped() {
    let s = setup().await;
    let page = raw_exchange(
        s.proxy.addr,
        format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
            s.http_url("/a\"onmouseover='alert(1)'?q='x'")
        )
        .as_bytes(),
    )
    .await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(!page.contains("\"onmouseover="), "{page}");
    assert!(
        page.contains("&quot;onmouseover=&#x27;alert(1)&#x27;"),
        "{page}"
    );

    // `<` never even reaches the page: the request is refused as malformed.
    let reply = raw_exchange(
        s.proxy.addr,
        format!(
            "GET http://www.ning.com:{}/<script>alert(1)</script> HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
            s.origin.addr.port()
        )
        .as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(!reply.contains("<script>alert"), "{reply}");
}

#[tokio::test]
async fn block_pages_over_http_and_intercepted_https() {
    let s = setup().await;
    let mut c = client(s.proxy.addr).await;
    let resp = c
        .send_request(navigate(&format!(
            "http://bad.example:{}/",
            s.origin.addr.port()
        )))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(text(resp).await.contains("not available here"));

    let port = s.https_port();
    let mut inside = https(s.proxy.addr, port, "bad.example", s.ca_cert())
        .await
        .unwrap();
    let resp = inside
        .send_request(navigate(&format!("https://bad.example:{port}/login")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()["x-signpost-action"], "block");
    let page = text(resp).await;
    assert!(page.contains("not available here"), "{page}");
    assert!(page.contains("bad.example"), "{page}");
    assert!(s.tls_origin.seen().is_empty());
}

#[tokio::test]
async fn without_a_ca_a_coached_connect_is_refused() {
    let s = setup_with("", false, None).await;
    let port = s.https_port();
    let err = https(s.proxy.addr, port, "www.ning.com", s.origin_cert.clone())
        .await
        .err()
        .unwrap();
    assert!(err.starts_with("HTTP/1.1 403"), "{err}");
    assert!(
        err.to_ascii_lowercase()
            .contains("x-signpost-action: coach"),
        "{err}"
    );
}

#[tokio::test]
async fn the_proxy_serves_its_ca_and_how_to_trust_it() {
    let s = setup().await;
    let mut c = client(s.proxy.addr).await;
    let resp = c.send_request(get("/signpost-ca.pem")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let pem = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        &pem[..],
        &std::fs::read(s.state.join("ca.pem")).unwrap()[..]
    );
    c.ready().await.unwrap();
    let page = text(c.send_request(get("/")).await.unwrap()).await;
    for needle in [
        "Group Policy",
        "macOS",
        "security.enterprise_roots.enabled",
        "certutil",
    ] {
        assert!(page.contains(needle), "{needle}: {page}");
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(s.state.join("ca-key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the CA key is private");
}
