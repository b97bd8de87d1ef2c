//! The review dashboard over real sockets: login, sessions, CSRF, the pages and their
//! filters, CSV export, the access token, /metrics and reload.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, Version};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use jiff::{SignedDuration, Timestamp};
use signpost::admin::{self, AdminContext};
use signpost::clock::Clock;
use signpost::coach::{Ack, AckStore};
use signpost::config::{AdminConfig, Config, JournalConfig, Listen};
use signpost::journal::store::DecisionStore;
use signpost::journal::{Journal, Outcome, Record, Writer};
use signpost::policy::Policy;
use signpost::reload::Reloader;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "correct horse battery staple";
const HTML: &str = "text/html,application/xhtml+xml";

const POLICY: &str = r#"
[[category]]
name = "social"
title = "Social networks"
hosts = ["ning.com"]

[[category]]
name = "read-later"
hosts = ["getpocket.com"]

[[category]]
name = "malware"
hosts = ["malware.test"]

[[rule]]
name = "block malware"
category = "malware"
action = "block"

[[rule]]
name = "coach social"
category = ["social", "read-later"]
action = "coach"
"#;

/// A password hash with small argon2 costs, so that debug-build tests stay quick (the
/// costs travel inside the PHC string; production hashes use the defaults).
fn hash(password: &str) -> String {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(1024, 1, 1, None).unwrap(),
    )
    .hash_password_with_salt(password.as_bytes(), b"signpost-test-salt")
    .unwrap()
    .to_string()
}

#[allow(clippy::too_many_arguments)]
fn rec(
    ts: Timestamp,
    client: &str,
    host: &str,
    category: Option<&str>,
    action: Option<&str>,
    outcome: Outcome,
    status: u16,
    reason: Option<&str>,
) -> Record {
    Record {
        ts,
        client: client.into(),
        user: None,
        method: "GET".into(),
        url: format!("http://{host}/"),
        host: host.into(),
        category: category.map(str::to_string),
        rule: None,
        action: action.map(str::to_string),
        outcome,
        status,
        bytes_up: 100,
        bytes_down: 5000,
        duration_ms: 7,
        reason: reason.map(str::to_string),
    }
}

const FORMULA: &str = "=HYPERLINK(\"http://evil.example\",\"click\")";
const TOTAL: usize = 109;

/// 109 decisions over the last few hours.
fn seed() -> Vec<Record> {
    let now = Timestamp::now();
    let ago = |m: i64| now.checked_sub(SignedDuration::from_mins(m)).unwrap();
    let mut v = Vec::new();
    for i in 0..60 {
        v.push(rec(
            ago(i),
            "10.0.0.5",
            "www.ning.com",
            Some("social"),
            Some("coach"),
            Outcome::Coached,
            200,
            None,
        ));
    }
    for i in 0..30 {
        v.push(rec(
            ago(i * 3),
            "10.0.0.6",
            "getpocket.com",
            Some("read-later"),
            Some("monitor"),
            Outcome::Forwarded,
            200,
            None,
        ));
    }
    for i in 0..12 {
        v.push(rec(
            ago(i * 7),
            "10.0.0.7",
            "malware.test",
            Some("malware"),
            Some("block"),
            Outcome::Blocked,
            403,
            None,
        ));
    }
    for i in 0..5 {
        v.push(rec(
            ago(i * 11),
            "10.0.0.8",
            "example.org",
            None,
            Some("allow"),
            Outcome::Forwarded,
            200,
            None,
        ));
    }
    v.push(rec(
        ago(2),
        "10.0.0.5",
        "ning.com",
        Some("social"),
        Some("coach"),
        Outcome::Acknowledged,
        303,
        Some(FORMULA),
    ));
    v.push(rec(
        ago(3),
        "10.0.0.5",
        "ning.com",
        Some("social"),
        Some("coach"),
        Outcome::Acknowledged,
        303,
        Some("<script>alert(1)</script>"),
    ));
    assert_eq!(v.len(), TOTAL);
    v
}

struct Dash {
    addr: std::net::SocketAddr,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
    config_path: PathBuf,
    acks: Arc<AckStore>,
    reloader: Reloader,
    journal: Journal,
    _writer: Writer,
}

impl Drop for Dash {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

static TOKENS: AtomicUsize = AtomicUsize::new(0);

/// Starts a dashboard with the given secrets over a seeded journal.
async fn dashboard(password: Option<&str>, token: Option<&str>) -> Dash {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("signpost.toml");
    std::fs::write(&config_path, POLICY).unwrap();
    let config = Config::parse(&config_path, POLICY).unwrap();
    let policy = Arc::new(ArcSwap::from_pointee(Policy::compile(&config).unwrap()));
    let reloader = Reloader::new(config_path.clone(), policy.clone());
    let journal_path = dir.path().join("journal.db");
    DecisionStore::open(&journal_path, None)
        .unwrap()
        .insert(&seed())
        .unwrap();
    let (journal, writer) = signpost::journal::start(
        &JournalConfig {
            path: journal_path.clone(),
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let clock = Clock::new();
    let acks = Arc::new(AckStore::open(&journal_path, clock.now()).unwrap());
    let token_env = token.map(|t| {
        let name = format!(
            "SIGNPOST_ADMIN_TEST_TOKEN_{}_{}",
            std::process::id(),
            TOKENS.fetch_add(1, Ordering::Relaxed)
        );
        std::env::set_var(&name, t);
        name
    });
    let ctx = AdminContext {
        config: AdminConfig {
            listen: Listen("127.0.0.1:0".parse().unwrap()),
            password_hash: password.map(hash),
            token_env,
            ..AdminConfig::default()
        },
        journal_path,
        policy,
        reloader: reloader.clone(),
        journal: journal.clone(),
        acks: acks.clone(),
        clock,
    };
    let admin = admin::bind(ctx).await.unwrap();
    let addr = admin.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(admin.run(stop.clone()));
    Dash {
        addr,
        stop,
        _dir: dir,
        config_path,
        acks,
        reloader,
        journal,
        _writer: writer,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// How many decision rows the log page shows.
    fn rows(&self) -> usize {
        self.body.matches("<tr class=\"decision\">").count()
    }

    fn csrf(&self) -> String {
        let start = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field")
            + "name=\"csrf\" value=\"".len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_string()
    }
}

impl Dash {
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
        let resp = send.send_request(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, path, headers, "").await
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], form: &[(&str, &str)]) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.send(Method::POST, path, headers, &body).await
    }

    /// Signs in with the password; returns the `Cookie` header value.
    async fn login(&self) -> String {
        let r = self.post("/login", &[], &[("password", PASSWORD)]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let set = r.header("set-cookie");
        set.split(';').next().unwrap().to_string()
    }

    /// A page as the signed-in browser sees it.
    async fn page(&self, cookie: &str, path: &str) -> Reply {
        self.get(path, &[("cookie", cookie), ("accept", HTML)])
            .await
    }
}

fn assert_secure_headers(r: &Reply) {
    assert_eq!(r.header("cache-control"), "no-store");
    assert_eq!(r.header("x-frame-options"), "DENY");
    let csp = r.header("content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script"), "no scripts allowed: {csp}");
}

#[tokio::test]
async fn anonymous_requests_get_nothing() {
    let d = dashboard(Some(PASSWORD), Some("a-long-test-token-0123456789")).await;
    let paths = [
        "/",
        "/decisions",
        "/decisions?category=social",
        "/decisions.csv",
        "/acknowledgements",
        "/explain?url=http%3A%2F%2Fwww.ning.com%2F",
        "/no-such-page",
    ];
    for path in paths {
        let browser = d.get(path, &[("accept", HTML)]).await;
        assert_eq!(browser.status, StatusCode::SEE_OTHER, "{path}");
        let location = browser.header("location");
        assert!(location.starts_with("/login?next="), "{path}: {location}");
        assert!(!browser.body.contains("ning"), "{path}");

        let script = d.get(path, &[]).await;
        assert_eq!(script.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(!script.body.contains("ning"), "{path}: {}", script.body);
        assert!(!script.body.contains("10.0.0."), "{path}");

        let forged = d
            .get(path, &[("cookie", "signpost_admin=made-up-session-id")])
            .await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_secure_headers(&forged);
    }
    let r = d.get("/", &[("accept", HTML)]).await;
    assert_eq!(r.header("location"), "/login?next=%2F");
    let r = d.post("/reload", &[], &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(d.reloader.stats.succeeded.load(Ordering::Relaxed), 0);

    // The login page itself is open, and says nothing about people.
    let login = d.get("/login?next=%2Fdecisions", &[("accept", HTML)]).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(
        login.body.contains("<label for=\"password\">"),
        "{}",
        login.body
    );
    assert!(
        login.body.contains("value=\"&#x2f;decisions\""),
        "{}",
        login.body
    );
    assert_secure_headers(&login);
}

#[tokio::test]
async fn without_password_or_token_the_dashboard_stays_closed() {
    let d = dashboard(None, None).await;
    for path in ["/", "/login", "/decisions.csv"] {
        let r = d.get(path, &[("accept", HTML)]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(r.body.contains("password_hash"), "{}", r.body);
        assert!(r.body.contains("token_env"));
        assert!(!r.body.contains("ning"));
    }
    let r = d.post("/login", &[], &[("password", "")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header("set-cookie").is_empty());
    let r = d.get("/metrics", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_passwords_are_refused_then_limited() {
    let d = dashboard(Some(PASSWORD), None).await;
    for i in 0..10 {
        let r = d.post("/login", &[], &[("password", "guess")]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        assert!(r.header("set-cookie").is_empty());
        assert!(r.body.contains("not right"), "{}", r.body);
    }
    // The 11th attempt within ten minutes is refused without being checked, even with
    // the right password.
    let r = d.post("/login", &[], &[("password", PASSWORD)]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("set-cookie").is_empty());
    assert_eq!(r.header("retry-after"), "600");
}

#[tokio::test]
async fn login_sets_a_strict_cookie_and_the_overview_draws_charts() {
    let d = dashboard(Some(PASSWORD), None).await;
    // A form posted from another site is refused.
    let origin_elsewhere = d
        .post(
            "/login",
            &[("origin", "http://evil.example")],
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(origin_elsewhere.status, StatusCode::FORBIDDEN);
    assert!(origin_elsewhere.header("set-cookie").is_empty());

    let origin = format!("http://{}", d.addr);
    let r = d
        .post(
            "/login",
            &[("origin", &origin)],
            &[("password", PASSWORD), ("next", "/decisions?action=block")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.header("location"), "/decisions?action=block");
    let set = r.header("set-cookie");
    assert!(set.starts_with("signpost_admin="), "{set}");
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Path=/"), "{set}");
    let id = set
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("signpost_admin=");
    assert!(id.len() >= 43, "32 random bytes: {id}");

    // Somewhere else is never a destination.
    let r = d
        .post(
            "/login",
            &[],
            &[("password", PASSWORD), ("next", "//evil.example/")],
        )
        .await;
    assert_eq!(r.header("location"), "/");

    let cookie = d.login().await;
    let o = d.page(&cookie, "/").await;
    assert_eq!(o.status, StatusCode::OK, "{}", o.body);
    assert_secure_headers(&o);
    assert!(o.body.contains("<svg"), "{}", o.body);
    assert!(o.body.contains("<rect"), "bars are drawn");
    assert!(o.body.contains("Decisions per hour"));
    assert!(o.body.contains("Requests per category"));
    assert!(o.body.contains("read-later"));
    assert!(
        o.body.contains(&format!("<strong>{TOTAL}</strong>")),
        "{}",
        o.body
    );
    assert!(o.body.contains("Journal health"));
    assert!(o.body.contains("Dropped"));
    assert!(!o.body.contains("<script"), "no scripts");
    // A signed-in browser going to /login is sent on.
    let r = d.page(&cookie, "/login").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_decision_log_filters_and_pages() {
    let d = dashboard(Some(PASSWORD), None).await;
    let cookie = d.login().await;

    let all = d.page(&cookie, "/decisions").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(all.rows(), 50);
    assert!(all.body.contains(&format!("of {TOTAL}")), "{}", all.body);
    assert!(
        all.body.contains("href=\"&#x2f;decisions?page=2\""),
        "{}",
        all.body
    );
    assert!(!all.body.contains("rel=\"prev\""));
    assert!(all.body.contains("<th scope=\"col\">"));
    assert!(all.body.contains("<label for=\"f-host\">"));
    let page2 = d.page(&cookie, "/decisions?page=2").await;
    assert_eq!(page2.rows(), 50);
    assert!(page2.body.contains("rel=\"prev\""));
    let page3 = d.page(&cookie, "/decisions?page=3").await;
    assert_eq!(page3.rows(), TOTAL - 100);
    assert!(!page3.body.contains("rel=\"next\""));

    let count = |path: &'static str| {
        let d = &d;
        let cookie = &cookie;
        async move {
            let r = d.page(cookie, path).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
            r
        }
    };
    let r = count("/decisions?category=read-later").await;
    assert_eq!(r.rows(), 30);
    assert!(!r.body.contains("ning.com/"));
    let r = count("/decisions?action=block").await;
    assert_eq!(r.rows(), 12);
    assert!(r.body.contains("malware.test"));
    assert!(
        r.body.contains("<option value=\"block\" selected>"),
        "the form keeps its values"
    );
    let r = count("/decisions?client=10.0.0.8").await;
    assert_eq!(r.rows(), 5);
    assert!(r.body.contains("value=\"10.0.0.8\""));
    let r = count("/decisions?host=ning.com").await;
    assert!(
        r.body.contains("of 62"),
        "a host covers its subdomains: {}",
        r.body
    );
    let r = count("/decisions?outcome=acknowledged").await;
    assert_eq!(r.rows(), 2);
    let r = count("/decisions?since=24h&until=2000-01-01").await;
    assert_eq!(r.rows(), 0);
    assert!(r.body.contains("No decisions match"));

    // Paging keeps the filters.
    let r = count("/decisions?category=social&action=coach").await;
    assert_eq!(r.rows(), 50);
    assert!(
        r.body
            .contains("href=\"&#x2f;decisions?category=social&amp;action=coach&amp;page=2\""),
        "{}",
        r.body
    );
    let r = count("/decisions?category=social&action=coach&page=2").await;
    assert_eq!(r.rows(), 12);
    assert!(r
        .body
        .contains("category=social&amp;action=coach&amp;page=1"));
    assert!(r
        .body
        .contains("decisions.csv?category=social&amp;action=coach"));

    // What people wrote is shown as text, never as markup.
    let r = count("/decisions?outcome=acknowledged").await;
    assert!(
        r.body
            .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<script>alert"));

    // A time that is not one is explained, not guessed.
    let r = d.page(&cookie, "/decisions?since=last%20tuesday").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("is not a time"));
    assert_eq!(r.rows(), 0);
}

fn csv_rows(body: &str) -> Vec<&str> {
    body.lines().skip(1).collect()
}

#[tokio::test]
async fn csv_export_has_the_filtered_rows_with_formulas_defused() {
    let d = dashboard(Some(PASSWORD), None).await;
    let cookie = d.login().await;
    let r = d.page(&cookie, "/decisions.csv?action=block").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.header("content-type").starts_with("text/csv"));
    assert!(r.header("content-disposition").contains("attachment"));
    assert_eq!(
        r.body.lines().next().unwrap(),
        "ts,client,user,method,url,host,category,rule,action,outcome,status,bytes_up,bytes_down,duration_ms,reason"
    );
    let rows = csv_rows(&r.body);
    assert_eq!(rows.len(), 12);
    assert!(
        rows.iter()
            .all(|l| l.contains(",malware.test,malware,,block,blocked,403,")),
        "{rows:?}"
    );

    let r = d.page(&cookie, "/decisions.csv?category=social").await;
    let rows = csv_rows(&r.body);
    assert_eq!(rows.len(), 62);
    let formula = rows
        .iter()
        .find(|l| l.contains("HYPERLINK"))
        .expect("the acknowledgement with a reason");
    assert!(
        formula.ends_with(",\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\""),
        "{formula}"
    );
    assert!(!r.body.contains(",=HYPERLINK"));
    assert!(!r.body.contains(",\"=HYPERLINK"));

    let r = d.page(&cookie, "/decisions.csv").await;
    assert_eq!(csv_rows(&r.body).len(), TOTAL);
    let r = d.page(&cookie, "/decisions.csv?since=nope").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_access_token_works_for_scripts_and_on_the_form() {
    let token = "a-long-test-token-0123456789";
    let d = dashboard(Some(PASSWORD), Some(token)).await;
    let auth = format!("Bearer {token}");
    let r = d
        .get(
            "/decisions.csv?host=malware.test",
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(csv_rows(&r.body).len(), 12);

    let r = d
        .get(
            "/decisions.csv",
            &[("authorization", "Bearer a-long-test-token-012345678")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!r.body.contains("malware"));
    assert!(r.header("www-authenticate").starts_with("Bearer"));

    // Scripts need no CSRF token: a browser cannot be made to send the header.
    let r = d
        .send(Method::POST, "/reload", &[("authorization", &auth)], "")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(d.reloader.stats.succeeded.load(Ordering::Relaxed), 1);

    let r = d.post("/login", &[], &[("password", token)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.header("set-cookie").contains("HttpOnly"));
}

#[tokio::test]
async fn posts_need_the_session_csrf_token() {
    let d = dashboard(Some(PASSWORD), None).await;
    let now = Timestamp::now();
    let identity = "10.0.0.42";
    d.acks
        .record(&Ack {
            identity: identity.into(),
            key: "social".into(),
            host: "www.ning.com".into(),
            reason: Some("supplier's page is only on Ning".into()),
            at: now,
            until: now.checked_add(SignedDuration::from_hours(8)).unwrap(),
        })
        .unwrap();
    assert!(d.acks.is_valid(identity, "social", now));

    let cookie = d.login().await;
    let page = d.page(&cookie, "/acknowledgements").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(identity));
    assert!(
        page.body.contains("supplier&#x27;s page is only on Ning"),
        "{}",
        page.body
    );
    assert!(page.body.contains(">Revoke</button>"));
    let csrf = page.csrf();
    assert!(csrf.len() >= 43);

    let target = [("identity", identity), ("key", "social")];
    let r = d
        .post("/acknowledgements/revoke", &[("cookie", &cookie)], &target)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no token");
    let r = d
        .post(
            "/acknowledgements/revoke",
            &[("cookie", &cookie)],
            &[
                ("identity", identity),
                ("key", "social"),
                ("csrf", "forged"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "wrong token");
    assert!(d.acks.is_valid(identity, "social", Timestamp::now()));

    // Another session's token does not fit this session.
    let other = d.login().await;
    let other_csrf = d.page(&other, "/acknowledgements").await.csrf();
    assert_ne!(other_csrf, csrf);
    let r = d
        .post(
            "/acknowledgements/revoke",
            &[("cookie", &cookie)],
            &[
                ("identity", identity),
                ("key", "social"),
                ("csrf", &other_csrf),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = d
        .post(
            "/acknowledgements/revoke",
            &[("cookie", &cookie)],
            &[("identity", identity), ("key", "social"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.header("location"), "/acknowledgements?revoked=1");
    assert!(!d.acks.is_valid(identity, "social", Timestamp::now()));
    let after = d.page(&cookie, "/acknowledgements?revoked=1").await;
    assert!(after.body.contains("was revoked"));
    assert!(!after.body.contains(identity));

    // The reload button is a POST too.
    let r = d.post("/reload", &[("cookie", &cookie)], &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(d.reloader.stats.succeeded.load(Ordering::Relaxed), 0);

    // Signing out ends the session on the server, not only in the browser.
    let r = d
        .post("/logout", &[("cookie", &cookie)], &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.header("set-cookie").contains("Max-Age=0"));
    let r = d.get("/", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn reload_shows_success_and_positioned_errors() {
    let d = dashboard(Some(PASSWORD), None).await;
    let cookie = d.login().await;
    let csrf = d.page(&cookie, "/").await.csrf();
    let r = d
        .post("/reload", &[("cookie", &cookie)], &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("3 categories and 2 rules"), "{}", r.body);
    assert_eq!(d.reloader.stats.succeeded.load(Ordering::Relaxed), 1);

    std::fs::write(
        &d.config_path,
        format!("{POLICY}\n[[rule]]\nname = \"x\"\naction = \"shout\"\n"),
    )
    .unwrap();
    let r = d
        .post("/reload", &[("cookie", &cookie)], &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body.contains("previous policy stays live"));
    let file = d.config_path.file_name().unwrap().to_str().unwrap();
    let at = r.body.find(file).expect("the error names the file");
    let after: String = r.body[at + file.len()..].chars().take(8).collect();
    let mut parts = after.split(':');
    assert_eq!(parts.next(), Some(""));
    assert!(
        parts.next().unwrap().parse::<u32>().is_ok(),
        "line: {after}"
    );
    assert!(
        parts.next().unwrap().parse::<u32>().is_ok(),
        "column: {after}"
    );
    assert_eq!(d.reloader.stats.failed.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn metrics_need_no_login_and_name_nobody() {
    let d = dashboard(Some(PASSWORD), None).await;
    d.journal.record(rec(
        Timestamp::now(),
        "10.0.0.99",
        "www.ning.com",
        Some("social"),
        Some("coach"),
        Outcome::Coached,
        200,
        Some("private reason"),
    ));
    let r = d.get("/metrics", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.header("content-type")
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        r.header("content-type")
    );
    assert!(
        r.body.contains("signpost_journal_dropped_total"),
        "{}",
        r.body
    );
    assert!(r.body.contains("signpost_reloads_failed_total 0"));
    assert!(r.body.contains(
        "signpost_decisions_total{action=\"coach\",category=\"social\",outcome=\"coached\"} 1"
    ));
    assert!(!r.body.contains("10.0.0."), "no people in metrics");
    assert!(!r.body.contains("private reason"));
    assert!(!r.body.contains("ning"));
    let r = d.send(Method::POST, "/metrics", &[], "").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn explain_shows_what_the_command_prints() {
    let d = dashboard(Some(PASSWORD), None).await;
    let cookie = d.login().await;
    let form = d.page(&cookie, "/explain").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("<label for=\"e-url\">URL</label>"));
    assert!(!form.body.contains("<pre>"));

    let r = d
        .page(
            &cookie,
            "/explain?url=http%3A%2F%2Fwww.ning.com%2Fgroups&client=10.0.0.5&at=2026-11-22T10%3A00",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("<pre>"));
    assert!(r.body.contains("Decision: coach"), "{}", r.body);
    assert!(r.body.contains("coach social"));
    assert!(r.body.contains("2026-11-22T10:00:00Z"));

    let r = d
        .page(&cookie, "/explain?url=https%3A%2F%2Fmalware.test%2F")
        .await;
    assert!(r.body.contains("Decision: block"), "{}", r.body);
    assert!(r.body.contains("CONNECT tunnel"));

    let r = d
        .page(
            &cookie,
            "/explain?url=http%3A%2F%2Fexample.org%2F%3Cscript%3E",
        )
        .await;
    assert!(!r.body.contains("<script>"), "{}", r.body);
    let r = d.page(&cookie, "/explain?url=nonsense&client=nobody").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("is not an IP address"), "{}", r.body);
}

#[tokio::test]
async fn bind_errors_name_the_address_and_the_bad_hash() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = dir.path();
    let config = Config::parse(&path.join("c.toml"), POLICY).unwrap();
    let policy = Arc::new(ArcSwap::from_pointee(Policy::compile(&config).unwrap()));
    let (journal, _writer) = signpost::journal::start(
        &JournalConfig {
            path: path.join("j.db"),
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let acks = Arc::new(AckStore::open(&path.join("j.db"), Timestamp::now()).unwrap());
    let ctx = |listen, password_hash| AdminContext {
        config: AdminConfig {
            listen: Listen(listen),
            password_hash,
            ..AdminConfig::default()
        },
        journal_path: path.join("j.db"),
        reloader: Reloader::new(path.join("c.toml"), policy.clone()),
        policy: policy.clone(),
        journal: journal.clone(),
        acks: acks.clone(),
        clock: Clock::new(),
    };
    let err = admin::bind(ctx(addr, Some(hash(PASSWORD))))
        .await
        .err()
        .expect("the address is taken");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    let err = admin::bind(ctx("127.0.0.1:0".parse().unwrap(), Some("hunter2".into())))
        .await
        .err()
        .expect("not a PHC string");
    assert!(err.to_string().contains("password_hash"), "{err}");
}
