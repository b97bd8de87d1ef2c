//! Proxy authentication over real sockets: the 407 challenge, logins from an htpasswd
//! file (re-read when it changes), refused and rate-limited passwords, rules on users and
//! groups, the journal's user field, and acknowledgements that follow the person.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine;
use common::*;
use http::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use signpost::config::Config;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// A cheap hash (cost 4) so that debug-build tests stay fast.
fn line(user: &str, password: &str) -> String {
    format!("{user}:{}\n", bcrypt::hash(password, 4).unwrap())
}

fn config_text(state: &Path) -> String {
    format!(
        r#"
[proxy]
listen = "127.0.0.1:0"
allow_clients = ["127.0.0.0/8"]

[upstream]
hosts = {{ "www.ning.com" = "127.0.0.1", "plain.example" = "127.0.0.1", "games.example" = "127.0.0.1" }}

[identity]
mode = "basic"
realm = "Example Council"
htpasswd = "{s}/htpasswd"
max_failures = 3

[coach]
secret_file = "{s}/coach-secret"

[journal]
path = "{s}/journal.db"
jsonl = "{s}/decisions.jsonl"

[group.library]
users = ["carol"]

[[category]]
name = "social"
hosts = ["ning.com"]

[[category]]
name = "games"
hosts = ["games.example"]

[[rule]]
name = "library may play"
category = "games"
groups = ["library"]
action = "allow"

[[rule]]
name = "no games for bob"
category = "games"
users = ["Bob"]
action = "block"

[[rule]]
name = "coach social"
category = "social"
action = "coach"
"#,
        s = state.display()
    )
}

/// Starts an origin and the proxy, whose users file holds `htpasswd`; returns them and the
/// proxy's state folder (where the htpasswd file and the journal are).
async fn start(htpasswd: &str) -> (Origin, PathBuf, TestProxy) {
    let origin = origin().await;
    let state = state_dir();
    std::fs::write(state.join("htpasswd"), htpasswd).unwrap();
    let config = Config::parse(&state.join("signpost.toml"), &config_text(&state)).unwrap();
    (origin, state, proxy(config).await)
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn with_auth(url: &str, auth: Option<(&str, &str)>, navigate: bool) -> Request<TestBody> {
    let mut b = Request::get(url);
    if let Some((u, p)) = auth {
        b = b.header("proxy-authorization", basic(u, p));
    }
    if navigate {
        b = b
            .header("accept", "text/html")
            .header("sec-fetch-mode", "navigate");
    }
    b.body(Default::default()).unwrap()
}

async fn status(proxy: std::net::SocketAddr, url: &str, auth: Option<(&str, &str)>) -> StatusCode {
    let mut c = client(proxy).await;
    let resp = c.send_request(with_auth(url, auth, false)).await.unwrap();
    let s = resp.status();
    body_text(resp).await;
    s
}

#[tokio::test]
async fn the_challenge_then_a_login_and_the_own_pages_stay_open() {
    let (origin, _, p) = start(&line("alice", "alice-pw")).await;
    let url = format!("http://plain.example:{}/hello", origin.addr.port());

    let mut c = client(p.addr).await;
    let resp = c.send_request(with_auth(&url, None, false)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    assert_eq!(
        resp.headers()["proxy-authenticate"],
        "Basic realm=\"Example Council\", charset=\"UTF-8\""
    );
    body_text(resp).await;

    assert_eq!(
        status(p.addr, &url, Some(("alice", "wrong"))).await,
        StatusCode::PROXY_AUTHENTICATION_REQUIRED
    );
    assert_eq!(
        status(p.addr, &url, Some(("alice", "alice-pw"))).await,
        StatusCode::OK
    );
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("proxy-authorization"),
        None,
        "credentials stop at the proxy"
    );

    // The proxy's own pages never ask.
    for path in ["/healthz", "/proxy.pac", "/wpad.dat"] {
        let mut c = client(p.addr).await;
        let resp = c.send_request(get(path)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }

    // CONNECT does.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"CONNECT www.ning.com:443 HTTP/1.1\r\nHost: www.ning.com:443\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 407"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("proxy-authenticate: basic"),
        "{head}"
    );
}

#[tokio::test]
async fn a_user_added_to_the_htpasswd_file_can_log_in_without_a_restart() {
    let (origin, state, p) = start(&line("alice", "alice-pw")).await;
    let file = state.join("htpasswd");
    let url = format!("http://plain.example:{}/hello", origin.addr.port());
    assert_eq!(
        status(p.addr, &url, Some(("dave", "dave-pw"))).await,
        StatusCode::PROXY_AUTHENTICATION_REQUIRED
    );

    signpost::identity::htpasswd::set_user(&file, "dave", "dave-pw").unwrap();
    assert_eq!(
        status(p.addr, &url, Some(("dave", "dave-pw"))).await,
        StatusCode::OK
    );

    signpost::identity::htpasswd::remove_user(&file, "alice").unwrap();
    assert_eq!(
        status(p.addr, &url, Some(("alice", "alice-pw-typo"))).await,
        StatusCode::PROXY_AUTHENTICATION_REQUIRED
    );
}

#[tokio::test]
async fn failed_logins_are_limited_and_journaled_without_the_password() {
    let (origin, state, p) = start(&line("alice", "alice-pw")).await;
    let url = format!("http://plain.example:{}/hello", origin.addr.port());
    for _ in 0..3 {
        assert_eq!(
            status(p.addr, &url, Some(("alice", "guess-XYZZY"))).await,
            StatusCode::PROXY_AUTHENTICATION_REQUIRED
        );
    }
    // Even the right password waits now: the name and the address are both limited.
    assert_eq!(
        status(p.addr, &url, Some(("alice", "alice-pw"))).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert!(origin.seen().is_empty());

    p.stop.cancel();
    p.done.await.unwrap();
    let jsonl = std::fs::read_to_string(state.join("decisions.jsonl")).unwrap();
    assert!(
        !jsonl.contains("XYZZY"),
        "no password in the journal: {jsonl}"
    );
    assert!(
        !jsonl.contains("alice-pw"),
        "no password in the journal: {jsonl}"
    );
    let denied: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["outcome"] == "denied")
        .collect();
    assert_eq!(denied.len(), 4, "{jsonl}");
    assert_eq!(denied[0]["user"], "alice");
    assert_eq!(denied[0]["status"], 407);
    assert_eq!(denied[3]["status"], 429);
}

#[tokio::test]
async fn rules_on_users_and_groups_and_the_journal_names_the_user() {
    let (origin, state, p) =
        start(&[line("alice", "a"), line("bob", "b"), line("carol", "c")].concat()).await;
    let games = format!("http://games.example:{}/hello", origin.addr.port());
    assert_eq!(
        status(p.addr, &games, Some(("bob", "b"))).await,
        StatusCode::FORBIDDEN,
        "users = [\"Bob\"] matches bob"
    );
    assert_eq!(
        status(p.addr, &games, Some(("alice", "a"))).await,
        StatusCode::OK
    );
    assert_eq!(
        status(p.addr, &games, Some(("carol", "c"))).await,
        StatusCode::OK,
        "library group"
    );
    p.stop.cancel();
    p.done.await.unwrap();
    let db = signpost::journal::store::connect(&state.join("journal.db")).unwrap();
    let rows = signpost::journal::store::query(&db, &Default::default(), 10, 0).unwrap();
    let users: Vec<_> = rows
        .iter()
        .rev()
        .map(|r| (r.user.clone(), r.rule.clone()))
        .collect();
    assert_eq!(
        users,
        vec![
            (Some("bob".into()), Some("no games for bob".into())),
            (Some("alice".into()), None),
            (Some("carol".into()), Some("library may play".into())),
        ]
    );
}

async fn client_from(
    source: &str,
    proxy: std::net::SocketAddr,
) -> hyper::client::conn::http1::SendRequest<TestBody> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(proxy).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

#[tokio::test]
async fn an_acknowledgement_follows_the_person_across_addresses() {
    let (origin, _, p) = start(&[line("alice", "a"), line("bob", "b")].concat()).await;
    let site = format!("http://www.ning.com:{}", origin.addr.port());
    let url = format!("{site}/hello");

    // alice at desk 1 reads the guidance and continues
    let mut desk1 = client_from("127.0.0.1", p.addr).await;
    let page = body_text(
        desk1
            .send_request(with_auth(&url, Some(("alice", "a")), true))
            .await
            .unwrap(),
    )
    .await;
    let marker = "name=\"token\" value=\"";
    let at = page.find(marker).unwrap() + marker.len();
    let token = &page[at..at + page[at..].find('"').unwrap()];
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("token", token), ("category", "social")])
        .finish();
    desk1.ready().await.unwrap();
    let ack = Request::post(format!("{site}/.well-known/signpost/acknowledge"))
        .header("proxy-authorization", basic("alice", "a"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::from(form),
        )))
        .unwrap();
    assert_eq!(
        desk1.send_request(ack).await.unwrap().status(),
        StatusCode::SEE_OTHER
    );

    // alice at desk 2 is not coached again; bob at desk 1 is
    let mut desk2 = client_from("127.0.0.2", p.addr).await;
    let resp = desk2
        .send_request(with_auth(&url, Some(("alice", "a")), true))
        .await
        .unwrap();
    assert_eq!(body_text(resp).await, "hello from origin");
    let mut desk1 = client_from("127.0.0.1", p.addr).await;
    let resp = desk1
        .send_request(with_auth(&url, Some(("bob", "b")), true))
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-signpost-action"], "coach");
}
