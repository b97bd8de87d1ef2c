//! The decision journal over real sockets: one record per decision with true bytes, the
//! JSONL and Squid-format files, retention, pseudonymisation, restarts, a kill -9, the
//! review report, and SIGUSR1 for logrotate.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use signpost::config::Config;
use signpost::journal::store::{self, Filter};
use signpost::journal::{Outcome, Record};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

fn config_text(state: &Path, extra_journal: &str, tls_port: u16) -> String {
    format!(
        r#"
[admin]
listen = "127.0.0.1:0"

[proxy]
listen = "127.0.0.1:0"
allow_clients = ["127.0.0.1/32"]
connect_ports = [{tls_port}]

[upstream]
hosts = {{ "www.ning.com" = "127.0.0.1", "bad.example" = "127.0.0.1", "plain.example" = "127.0.0.1" }}

[coach]
secret_file = "{s}/coach-secret"

[journal]
path = "{s}/journal.db"
jsonl = "{s}/decisions.jsonl"
squid_log = "{s}/access.log"
{extra_journal}

[[category]]
name = "social"
hosts = ["ning.com"]
require_reason = true

[[category]]
name = "malware"
hosts = ["bad.example"]

[[rule]]
name = "block malware"
category = "malware"
action = "block"

[[rule]]
name = "coach social"
category = "social"
action = "coach"
"#,
        s = state.display()
    )
}

async fn start(state: &Path, extra: &str, tls_port: u16) -> TestProxy {
    let text = config_text(state, extra, tls_port);
    let config = Config::parse(&state.join("signpost.toml"), &text).unwrap();
    proxy(config).await
}

/// Stops the proxy and waits: shutdown drains the journal, so everything is stored.
async fn stop(p: TestProxy) {
    p.stop.cancel();
    p.done.await.unwrap();
}

fn records(state: &Path) -> Vec<Record> {
    let db = store::connect(&state.join("journal.db")).unwrap();
    let mut r = store::query(&db, &Filter::default(), 10_000, 0).unwrap();
    r.reverse();
    r
}

fn navigate(url: &str) -> Request<TestBody> {
    Request::get(url)
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
        .body(Default::default())
        .unwrap()
}

#[tokio::test]
async fn every_outcome_is_journaled_with_true_bytes() {
    let origin = origin().await;
    let (tls, cert) = tls_origin_for(&["plain.example"]).await;
    let state = state_dir();
    let p = start(&state, "", tls.addr.port()).await;
    let port = origin.addr.port();

    // forwarded: 3 MiB down, 1 MiB up
    let mut c = client(p.addr).await;
    let resp = c
        .send_request(get(&format!("http://plain.example:{port}/big?3145728")))
        .await
        .unwrap();
    assert_eq!(
        resp.into_body().collect().await.unwrap().to_bytes().len(),
        3 << 20
    );
    c.ready().await.unwrap();
    let up = bytes::Bytes::from(vec![1u8; 1 << 20]);
    let req = Request::post(format!("http://plain.example:{port}/echo"))
        .body(http_body_util::Full::new(up).boxed())
        .unwrap();
    let resp = c.send_request(req).await.unwrap();
    assert_eq!(
        resp.into_body().collect().await.unwrap().to_bytes().len(),
        1 << 20
    );

    // tunnelled: real TLS through CONNECT
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let target = format!("plain.example:{}", tls.addr.port());
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 200"));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(
            rustls::pki_types::ServerName::try_from("plain.example").unwrap(),
            s,
        )
        .await
        .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let body = body_text(send.send_request(get("/big?100000")).await.unwrap()).await;
    assert_eq!(body.len(), 100_000);
    drop(send);
    let _ = conn.await;

    // coached, then acknowledged with a reason, over plain HTTP
    let mut c = client(p.addr).await;
    let page = body_text(
        c.send_request(navigate(&format!("http://www.ning.com:{port}/")))
            .await
            .unwrap(),
    )
    .await;
    let marker = "name=\"token\" value=\"";
    let start_at = page.find(marker).unwrap() + marker.len();
    let token = &page[start_at..start_at + page[start_at..].find('"').unwrap()];
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("token", token),
            ("category", "social"),
            ("reason", "booking a venue"),
        ])
        .finish();
    c.ready().await.unwrap();
    let resp = c
        .send_request(
            Request::post(format!(
                "http://www.ning.com:{port}/.well-known/signpost/acknowledge"
            ))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(bytes::Bytes::from(form)).boxed())
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    // blocked
    let mut c = client(p.addr).await;
    let resp = c
        .send_request(navigate(&format!("http://bad.example:{port}/")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    body_text(resp).await;

    // error: origin down
    c.ready().await.unwrap();
    let dead = closed_port().await;
    let resp = c
        .send_request(get(&format!("http://plain.example:{dead}/")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    body_text(resp).await;

    // denied at the gate: a client outside allow_clients
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut outsider = socket.connect(p.addr).await.unwrap();
    outsider
        .write_all(b"GET http://plain.example/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_until_close(&mut outsider)
        .await
        .starts_with("HTTP/1.1 403"));

    stop(p).await;
    let all = records(&state);
    let find = |outcome: Outcome| -> Vec<&Record> {
        all.iter().filter(|r| r.outcome == outcome).collect()
    };

    let fwd = find(Outcome::Forwarded);
    assert_eq!(fwd.len(), 2, "{all:#?}");
    assert_eq!(fwd[0].bytes_down, 3 << 20);
    assert_eq!(
        fwd[0].url,
        format!("http://plain.example:{port}/big"),
        "no query in the journal"
    );
    assert_eq!(fwd[0].status, 200);
    assert_eq!(fwd[1].method, "POST");
    assert_eq!(fwd[1].bytes_up, 1 << 20);
    assert_eq!(fwd[1].bytes_down, 1 << 20);

    let tun = find(Outcome::Tunnelled);
    assert_eq!(tun.len(), 1);
    assert_eq!(
        tun[0].url,
        format!("https://plain.example:{}", tls.addr.port())
    );
    assert!(
        tun[0].bytes_down > 100_000,
        "TLS bytes counted: {}",
        tun[0].bytes_down
    );
    assert!(tun[0].bytes_up > 200);

    let coached = find(Outcome::Coached);
    assert_eq!(coached.len(), 1);
    assert_eq!(coached[0].category.as_deref(), Some("social"));
    assert_eq!(coached[0].action.as_deref(), Some("coach"));
    assert_eq!(coached[0].rule.as_deref(), Some("coach social"));

    let acked = find(Outcome::Acknowledged);
    assert_eq!(acked.len(), 1);
    assert_eq!(acked[0].reason.as_deref(), Some("booking a venue"));
    assert_eq!(acked[0].status, 303);

    let blocked = find(Outcome::Blocked);
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].category.as_deref(), Some("malware"));
    assert_eq!(blocked[0].status, 403);

    let errors = find(Outcome::Error);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].status, 502);

    let denied = find(Outcome::Denied);
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].client, "127.0.0.2");

    // What people did is private: the store 0600 (and so its -wal), the files 0640.
    let mode = |f: &str| {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(state.join(f)).unwrap().permissions(),
        ) & 0o777
    };
    assert_eq!(mode("journal.db"), 0o600);
    assert_eq!(mode("decisions.jsonl"), 0o640);
    assert_eq!(mode("access.log"), 0o640);

    // The JSONL sink holds the same records, with DESIGN.md's field names.
    let jsonl = std::fs::read_to_string(state.join("decisions.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), all.len());
    for field in [
        "ts",
        "client",
        "user",
        "method",
        "url",
        "host",
        "category",
        "rule",
        "action",
        "outcome",
        "status",
        "bytes_up",
        "bytes_down",
        "duration_ms",
        "reason",
    ] {
        assert!(
            lines[0].get(field).is_some(),
            "{field} missing in {}",
            lines[0]
        );
    }
    assert!(
        lines[0]["ts"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 UTC"
    );

    // The Squid-format file has one native line per record.
    let squid = std::fs::read_to_string(state.join("access.log")).unwrap();
    assert_eq!(squid.lines().count(), all.len());
    assert!(squid.contains(&format!(" 127.0.0.1 TCP_MISS/200 3145728 GET http://plain.example:{port}/big - HIER_DIRECT/plain.example -")), "{squid}");
    assert!(squid.contains(" TCP_TUNNEL/200 "), "{squid}");
    assert!(
        squid.contains(&format!("CONNECT plain.example:{} ", tls.addr.port())),
        "{squid}"
    );
    assert!(squid.contains(" TCP_DENIED/403 "), "{squid}");
    for line in squid.lines() {
        assert_eq!(
            line.split(' ').filter(|f| !f.is_empty()).count(),
            10,
            "{line}"
        );
    }
}

#[tokio::test]
async fn records_survive_restarts_and_old_ones_are_purged() {
    let origin = origin().await;
    let state = state_dir();
    // A record from long ago, before the proxy starts.
    {
        let mut s = store::DecisionStore::open(&state.join("journal.db"), None).unwrap();
        let mut old = sample_record();
        old.ts = "2020-01-01T00:00:00Z".parse().unwrap();
        s.insert(&[old]).unwrap();
    }
    let p = start(&state, "retention = \"30d\"", 443).await;
    let mut c = client(p.addr).await;
    let url = format!("http://plain.example:{}/hello", origin.addr.port());
    body_text(c.send_request(get(&url)).await.unwrap()).await;
    stop(p).await;
    let first = records(&state);
    assert_eq!(first.len(), 1, "the 2020 record was purged: {first:#?}");

    let p = start(&state, "retention = \"30d\"", 443).await;
    let mut c = client(p.addr).await;
    body_text(c.send_request(get(&url)).await.unwrap()).await;
    stop(p).await;
    assert_eq!(
        records(&state).len(),
        2,
        "the first run's record is still there"
    );
}

fn sample_record() -> Record {
    Record {
        ts: "2026-11-22T10:00:00Z".parse().unwrap(),
        client: "10.0.0.5".into(),
        user: None,
        method: "GET".into(),
        url: "http://example.org/".into(),
        host: "example.org".into(),
        category: None,
        rule: None,
        action: Some("allow".into()),
        outcome: Outcome::Forwarded,
        status: 200,
        bytes_up: 0,
        bytes_down: 10,
        duration_ms: 1,
        reason: None,
    }
}

#[tokio::test]
async fn pseudonymisation_hides_clients_everywhere_they_are_stored() {
    let origin = origin().await;
    let state = state_dir();
    let p = start(&state, "pseudonymise = true", 443).await;
    let port = origin.addr.port();
    let mut c = client(p.addr).await;
    body_text(
        c.send_request(get(&format!("http://plain.example:{port}/hello")))
            .await
            .unwrap(),
    )
    .await;
    c.ready().await.unwrap();
    body_text(
        c.send_request(navigate(&format!("http://www.ning.com:{port}/")))
            .await
            .unwrap(),
    )
    .await;
    stop(p).await;

    let all = records(&state);
    assert_eq!(all.len(), 2);
    assert!(all
        .iter()
        .all(|r| r.client.starts_with("p-") && r.client != "127.0.0.1"));
    assert_eq!(
        all[0].client, all[1].client,
        "the same person, the same pseudonym"
    );
    for file in ["decisions.jsonl", "access.log"] {
        let text = std::fs::read_to_string(state.join(file)).unwrap();
        assert!(!text.contains("127.0.0.1 "), "{file}: {text}");
        assert!(!text.contains("\"127.0.0.1\""), "{file}: {text}");
    }
}

#[test]
fn review_reports_categories_acknowledgements_reasons_and_blocks() {
    let state = state_dir();
    let mut s = store::DecisionStore::open(&state.join("journal.db"), None).unwrap();
    let now = jiff::Timestamp::now();
    let mut batch = Vec::new();
    let rec = |client: &str,
               host: &str,
               category: Option<&str>,
               action: &str,
               outcome: Outcome,
               status: u16,
               reason: Option<&str>| Record {
        ts: now
            .checked_sub(jiff::SignedDuration::from_mins(30))
            .unwrap(),
        client: client.into(),
        user: None,
        method: "GET".into(),
        url: format!("https://{host}/"),
        host: host.into(),
        category: category.map(str::to_string),
        rule: None,
        action: Some(action.into()),
        outcome,
        status,
        bytes_up: 100,
        bytes_down: 1000,
        duration_ms: 3,
        reason: reason.map(str::to_string),
    };
    for i in 0..4 {
        batch.push(rec(
            &format!("10.0.0.{i}"),
            "www.ning.com",
            Some("social"),
            "coach",
            Outcome::Coached,
            200,
            None,
        ));
    }
    batch.push(rec(
        "10.0.0.1",
        "www.ning.com",
        Some("social"),
        "coach",
        Outcome::Acknowledged,
        303,
        Some("community forum for work"),
    ));
    batch.push(rec(
        "10.0.0.2",
        "www.ning.com",
        Some("social"),
        "coach",
        Outcome::Acknowledged,
        303,
        Some("=HYPERLINK(\"x\")"),
    ));
    batch.push(rec(
        "10.0.0.3",
        "evil.example",
        Some("malware"),
        "block",
        Outcome::Blocked,
        403,
        None,
    ));
    batch.push(rec(
        "10.0.0.3",
        "example.org",
        None,
        "allow",
        Outcome::Forwarded,
        200,
        None,
    ));
    s.insert(&batch).unwrap();
    let cfg = state.join("signpost.toml");
    std::fs::write(
        &cfg,
        format!(
            "[journal]\npath = \"{}\"\n",
            state.join("journal.db").display()
        ),
    )
    .unwrap();

    let run =
        |format: &str| signpost_stdout("review", &cfg, &["--since", "24h", "--format", format]);
    let table = run("table");
    assert!(table.contains("8 decisions"), "{table}");
    assert!(
        table.contains("shown      4  acknowledged      2  rate   50%"),
        "{table}"
    );
    assert!(table.contains("community forum for work"), "{table}");
    assert!(table.contains("evil.example"), "{table}");

    let json: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    assert_eq!(json["total"], 8);
    assert_eq!(json["acknowledgement"][0]["rate"], 0.5);
    assert_eq!(json["blocked"][0]["host"], "evil.example");
    let social = json["by_category"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["category"] == "social" && r["action"] == "coach")
        .unwrap();
    assert_eq!(social["requests"], 6);
    assert_eq!(social["clients"], 4);

    let csv = run("csv");
    assert!(csv.starts_with("section,"), "{csv}");
    assert!(
        csv.contains("reason,social,,1,,,\"'=HYPERLINK(\"\"x\"\")\""),
        "formulas are defused: {csv}"
    );
}

/// Starts the real binary with a journal and returns it with its proxy address.
fn spawn_binary(state: &Path, origin_port: u16) -> (Binary, std::net::SocketAddr) {
    let cfg = state.join("signpost.toml");
    std::fs::write(&cfg, config_text(state, "", origin_port)).unwrap();
    let mut signpost = Binary::run(&cfg, false);
    let [addr] = signpost.listening(["signpost is listening"]);
    (signpost, addr)
}

#[test]
fn after_kill_9_the_store_opens_and_holds_all_but_the_last_second() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let origin = rt.block_on(origin());
    let state = state_dir();
    let (mut signpost, addr) = spawn_binary(&state, 443);
    let url = format!("http://plain.example:{}/hello", origin.addr.port());

    // Load for ~2 s, remembering when each answer arrived.
    let done: Vec<std::time::Instant> = rt.block_on(async {
        let mut done = Vec::new();
        let mut c = client(addr).await;
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < until {
            let resp = c.send_request(get(&url)).await.unwrap();
            body_text(resp).await;
            done.push(std::time::Instant::now());
            c.ready().await.unwrap();
        }
        done
    });
    let killed_at = std::time::Instant::now();
    signpost.signal("KILL");
    signpost.wait();

    let db = rusqlite::Connection::open(state.join("journal.db")).unwrap();
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let stored: i64 = db
        .query_row("SELECT COUNT(*) FROM decisions", [], |r| r.get(0))
        .unwrap();
    let older_than_a_second = done
        .iter()
        .filter(|t| killed_at.duration_since(**t) > Duration::from_secs(1))
        .count();
    assert!(
        older_than_a_second > 100,
        "the load ran: {older_than_a_second}"
    );
    assert!(
        stored as usize >= older_than_a_second,
        "stored {stored}, but {older_than_a_second} answers were over a second old at the kill"
    );
}

#[test]
fn sigusr1_reopens_the_journal_files_for_logrotate() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = rt.block_on(origin());
    let state = state_dir();
    let (mut signpost, addr) = spawn_binary(&state, 443);
    let url = format!("http://plain.example:{}/hello", origin.addr.port());
    let hit = |url: String| {
        rt.block_on(async move {
            let mut c = client(addr).await;
            body_text(c.send_request(get(&url)).await.unwrap()).await
        })
    };
    hit(url.clone());
    let jsonl = state.join("decisions.jsonl");
    // logrotate moves the file aside, then signals.
    let rotated = state.join("decisions.jsonl.1");
    // Wait until the first record has been written (the writer commits within 200 ms).
    let written = (0..100).any(|_| {
        if std::fs::metadata(&jsonl)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
        false
    });
    assert!(written, "the first record reached the file");
    std::fs::rename(&jsonl, &rotated).unwrap();
    signpost.signal("USR1");
    signpost.next_message("journal files reopened");
    hit(url);
    signpost.signal("TERM");
    assert_eq!(signpost.wait().code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap().lines().count(),
        1
    );
    assert_eq!(
        std::fs::read_to_string(&jsonl).unwrap().lines().count(),
        1,
        "the new file got the new record"
    );
}
