//! Faults around the proxy: an origin that dies mid-body, a name that does not resolve,
//! an origin that never answers, the connection limit, the journal's disk filling up and
//! recovering, and config reloads under load. In each the proxy must keep serving, and
//! the test says what, if anything, was lost.
//!
//! The `kill -9` case (journal intact up to the last second after SIGKILL under load) is
//! `after_kill_9_the_store_opens_and_holds_all_but_the_last_second` in tests/journal.rs.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::StatusCode;
use http_body_util::BodyExt;
use signpost::config::{Bounded, Config, Span};
use signpost::journal::store::{self, Filter};
use signpost::journal::{Outcome, Record};
use signpost::proxy::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

async fn still_serves(proxy: SocketAddr, origin: &Origin) {
    let mut c = client(proxy).await;
    let resp = c.send_request(get(&origin.url("/hello"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the proxy stopped serving");
    assert_eq!(body_text(resp).await, "hello from origin");
}

fn stored(path: &Path) -> Vec<Record> {
    let db = store::connect(path).unwrap();
    store::query(&db, &Filter::default(), 100_000, 0).unwrap()
}

// ---------------------------------------------------------------------------------------
// An origin that dies mid-body

#[derive(Clone, Copy, Debug)]
enum Death {
    /// FIN after the partial body.
    Close,
    /// RST after the partial body.
    Reset,
}

/// An origin that answers every request with a head promising a large body, sends 1000
/// bytes of it, then dies.
async fn dying_origin(chunked: bool, death: Death) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let part = vec![b'x'; 1000];
                let mut out = Vec::new();
                if chunked {
                    out.extend_from_slice(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n",
                    );
                    out.extend_from_slice(&part);
                    // the next chunk is announced and never finished
                    out.extend_from_slice(b"\r\n3e8\r\nxxxx");
                } else {
                    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
                    out.extend_from_slice(&part);
                }
                let _ = s.write_all(&out).await;
                let _ = s.flush().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Death::Reset = death {
                    let _ = s.set_zero_linger();
                }
                drop(s);
            });
        }
    });
    addr
}

/// The client sees the body end early with an error — never a complete-looking body, and
/// never a hang — and the proxy keeps serving.
#[tokio::test]
async fn origin_dying_mid_body_ends_the_clients_body_early_never_hangs() {
    let origin = origin().await;
    let cfg = config();
    let journal_path = cfg.journal.path.clone();
    let p = proxy(cfg).await;
    for chunked in [false, true] {
        for death in [Death::Close, Death::Reset] {
            let dead = dying_origin(chunked, death).await;
            let what = format!(
                "{} body, origin {death:?}",
                if chunked {
                    "chunked"
                } else {
                    "Content-Length: 1000000"
                }
            );

            // A real client: the head arrives, the body fails.
            let mut c = client(p.addr).await;
            let resp = c
                .send_request(get(&format!("http://{dead}/big")))
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{what}");
            let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
                .await
                .unwrap_or_else(|_| panic!("{what}: the client's body hung"));
            assert!(body.is_err(), "{what}: a truncated body looked complete");

            // Raw bytes: the proxy closes the connection after what it got.
            let mut s = TcpStream::connect(p.addr).await.unwrap();
            s.write_all(
                format!("GET http://{dead}/big HTTP/1.1\r\nHost: {dead}\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let reply = read_until_close(&mut s).await;
            let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            assert!(reply.starts_with("HTTP/1.1 200"), "{what}: {reply}");
            let xs = body.bytes().filter(|b| *b == b'x').count();
            assert!(
                (1000..=1004).contains(&xs),
                "{what}: {xs} body bytes reached the client"
            );
            if chunked {
                assert!(
                    !body.ends_with("0\r\n\r\n"),
                    "{what}: the proxy ended the chunked body as if complete"
                );
            }
            eprintln!(
                "FAULT {what}: client got the head and {xs} of the body bytes, then the close"
            );
            still_serves(p.addr, &origin).await;
        }
    }
    p.stop.cancel();
    p.done.await.unwrap();
    // What the journal kept of the truncated exchanges.
    let records = stored(&journal_path);
    for r in records.iter().filter(|r| r.url.ends_with("/big")) {
        eprintln!(
            "FAULT journal: {} {} outcome={} status={} bytes_down={}",
            r.method,
            r.url,
            r.outcome.as_str(),
            r.status,
            r.bytes_down
        );
        assert!(r.bytes_down <= 1004, "true bytes: {r:?}");
    }
    assert_eq!(
        records.iter().filter(|r| r.url.ends_with("/big")).count(),
        8,
        "every truncated exchange is journaled"
    );
}

// ---------------------------------------------------------------------------------------
// Names, timeouts, limits

#[tokio::test]
async fn a_name_that_does_not_resolve_gets_a_page_naming_it_and_the_proxy_carries_on() {
    let origin = origin().await;
    let mut cfg = config();
    cfg.upstream.dns_timeout = Span(Duration::from_secs(3));
    let p = proxy(cfg).await;
    let mut c = client(p.addr).await;
    let resp = c
        .send_request(get("http://no-such-host.signpost-test.invalid/page"))
        .await
        .unwrap();
    let status = resp.status();
    // NXDOMAIN is 502; a resolver that cannot answer in time makes it 504.
    assert!(
        status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT,
        "{status}"
    );
    let page = body_text(resp).await;
    assert!(
        page.contains("no-such-host.signpost-test.invalid"),
        "{page}"
    );
    assert!(page.contains("DNS"), "the page says what failed: {page}");
    eprintln!("FAULT DNS failure => {status}");
    // CONNECT to it too.
    let reply = raw_exchange(
        p.addr,
        b"CONNECT no-such-host.signpost-test.invalid:443 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        reply.starts_with("HTTP/1.1 502") || reply.starts_with("HTTP/1.1 504"),
        "{reply}"
    );
    still_serves(p.addr, &origin).await;
}

#[tokio::test]
async fn an_origin_that_never_answers_gets_504_and_others_are_served_meanwhile() {
    let origin = origin().await;
    let mut cfg = config();
    cfg.upstream.response_timeout = Span(Duration::from_millis(500));
    let p = proxy(cfg).await;
    let started = std::time::Instant::now();
    let slow = {
        let url = origin.url("/hang");
        let addr = p.addr;
        tokio::spawn(async move {
            let mut c = client(addr).await;
            let resp = c.send_request(get(&url)).await.unwrap();
            let status = resp.status();
            (status, body_text(resp).await)
        })
    };
    // Served while the other waits.
    still_serves(p.addr, &origin).await;
    let (status, page) = slow.await.unwrap();
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{page}");
    assert!(page.contains("127.0.0.1"), "{page}");
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    eprintln!("FAULT upstream response timeout (500 ms) => 504 after {waited:?}");
    still_serves(p.addr, &origin).await;
}

#[tokio::test]
async fn max_connections_refusals_get_503_and_are_journaled() {
    let origin = origin().await;
    let mut cfg = config();
    cfg.proxy.max_connections = Bounded(2);
    let journal_path = cfg.journal.path.clone();
    let p = proxy(cfg).await;

    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = client(p.addr).await;
        let resp = c.send_request(get(&origin.url("/hello"))).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        body_text(resp).await;
        held.push(c);
    }
    for _ in 0..3 {
        let req = origin.raw_get("/hello", "");
        let reply = raw_exchange(p.addr, req.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    }
    // The held connections carry on.
    for c in &mut held {
        c.ready().await.unwrap();
        let resp = c.send_request(get(&origin.url("/hello"))).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        body_text(resp).await;
    }
    assert_eq!(
        origin.seen().len(),
        4,
        "the refused connections reached nothing"
    );
    drop(held);

    p.stop.cancel();
    p.done.await.unwrap();
    let records = stored(&journal_path);
    let refusals: Vec<&Record> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Denied && r.status == 503)
        .collect();
    assert_eq!(refusals.len(), 3, "{records:?}");
    assert!(refusals.iter().all(|r| r.client == "127.0.0.1"));
    eprintln!(
        "FAULT max_connections: 3 refusals answered 503, journaled as denied/503 ({:?})",
        refusals[0].reason
    );
}

// ---------------------------------------------------------------------------------------
// The journal's disk fills up, then recovers

/// A tiny tmpfs, unmounted (and its folder removed) on drop. Needs root (CI runs as root);
/// `None` when mounting is not possible here.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = state_dir().join("tmpfs");
        std::fs::create_dir_all(&dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }

    /// Writes a filler file until the filesystem is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).and_then(|_| f.flush()).is_ok() {}
        let _ = f.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_disk_loses_records_counts_them_and_recovers() {
    let Some(disk) = Tmpfs::mount("2m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    };
    let origin = origin().await;
    let mut cfg = config();
    cfg.journal.path = disk.0.join("journal.db");
    let server = Server::bind(&cfg).await.unwrap();
    let addr = server.local_addr().unwrap();
    let journal = server.journal();
    let stop = CancellationToken::new();
    let done = tokio::spawn(server.run(stop.clone()));
    let stats = journal.stats.clone();
    let mut c = client(addr).await;

    // Records for `count` requests to /PHASE-i, each with a long path so that the WAL has to
    // grow; the origin answers 404 and the proxy forwards that.
    let pad = "p".repeat(1500);
    let mut send = async |phase: &str, count: usize| {
        for i in 0..count {
            c.ready().await.unwrap();
            let resp = c
                .send_request(get(&origin.url(&format!("/{phase}-{i}-{pad}"))))
                .await
                .unwrap();
            assert_eq!(
                resp.status(),
                StatusCode::NOT_FOUND,
                "{phase} {i}: forwarded"
            );
            assert_eq!(body_text(resp).await, "not found");
        }
    };

    send("before", 20).await;
    wait_for("the first records are written", || {
        stats.written.load(Ordering::Relaxed) >= 20
    })
    .await;

    disk.fill();
    send("full", 600).await;
    wait_for("every record is written or counted as lost", || {
        stats.written.load(Ordering::Relaxed) + stats.lost.load(Ordering::Relaxed) >= 620
    })
    .await;
    let lost = stats.lost.load(Ordering::Relaxed);
    let written_while_full = stats.written.load(Ordering::Relaxed) - 20;

    disk.free();
    let written_before_recovery = stats.written.load(Ordering::Relaxed);
    send("after", 20).await;
    wait_for("records are written again", || {
        stats.written.load(Ordering::Relaxed) >= written_before_recovery + 20
    })
    .await;
    let lost_after = stats.lost.load(Ordering::Relaxed);

    stop.cancel();
    done.await.unwrap();
    let records = stored(&cfg.journal.path);
    let count = |phase: &str| {
        records
            .iter()
            .filter(|r| r.url.contains(&format!("/{phase}-")))
            .count()
    };
    eprintln!(
        "FAULT journal disk full: 600 requests while full, all forwarded; lost {lost} records \
         (stats.lost), {written_while_full} written while full; after freeing space {} of 20 \
         stored; stored overall: before {}, full {}, after {}; dropped {}",
        count("after"),
        count("before"),
        count("full"),
        count("after"),
        stats.dropped.load(Ordering::Relaxed)
    );
    assert!(
        lost > 0,
        "a full disk lost nothing? the test did not fill it"
    );
    assert_eq!(lost_after, lost, "nothing is lost once the disk recovers");
    assert_eq!(count("before"), 20);
    assert_eq!(
        count("after"),
        20,
        "records are stored again after recovery"
    );
    assert_eq!(
        count("full") as u64 + lost,
        600,
        "every record while full is either stored or counted as lost"
    );
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
    drop(disk);
}

// ---------------------------------------------------------------------------------------
// Reloads under load

fn reload_config(dir: &Path, action: &str) -> String {
    format!(
        r#"
[proxy]
listen = "127.0.0.1:0"

[upstream]
hosts = {{ "plain.example" = "127.0.0.1" }}

[coach]
secret_file = "{d}/coach-secret"

[journal]
path = "{d}/journal.db"

[[category]]
name = "plain"
hosts = ["plain.example"]

[[rule]]
name = "plain {action}"
category = "plain"
action = "{action}"
"#,
        d = dir.display()
    )
}

/// How long the reloads test may run in all. It takes a few seconds; when requests fail the
/// clients could otherwise loop for ever (once seen at 99% CPU), never reaching their quota.
const RELOAD_TEST_DEADLINE: Duration = Duration::from_secs(60);

/// What one load client saw: how many failures, and the first few of them.
#[derive(Default)]
struct ReloadFailures {
    count: u64,
    first: Vec<String>,
}

impl ReloadFailures {
    fn push(&mut self, what: String) {
        self.count += 1;
        if self.first.len() < 10 {
            self.first.push(what);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_load_fail_no_request() {
    let deadline = tokio::time::Instant::now() + RELOAD_TEST_DEADLINE;
    let origin = origin().await;
    let dir = state_dir();
    let path = dir.join("signpost.toml");
    std::fs::write(&path, reload_config(&dir, "allow")).expect("write the config");
    let cfg = Config::load(&path).expect("the first config loads");
    let server = Server::bind(&cfg).await.expect("the proxy binds");
    let addr = server.local_addr().expect("a bound address");
    let reloader = signpost::reload::Reloader::new(path.clone(), server.policy());
    let stop = CancellationToken::new();
    let done = tokio::spawn(server.run(stop.clone()));

    let reloading = Arc::new(AtomicBool::new(true));
    let served = Arc::new(AtomicU64::new(0));
    let url = format!("http://plain.example:{}/hello", origin.addr.port());
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (reloading, served, url) = (reloading.clone(), served.clone(), url.clone());
        clients.push(tokio::spawn(async move {
            let mut failures = ReloadFailures::default();
            let mut c = None;
            loop {
                // Until the reloads end, and at least a few requests each.
                if !reloading.load(Ordering::Relaxed) && served.load(Ordering::Relaxed) >= 200 {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    failures.push(format!(
                        "the test's {RELOAD_TEST_DEADLINE:?} deadline passed with {} requests served \
                         (requests hung or kept failing)",
                        served.load(Ordering::Relaxed)
                    ));
                    break;
                }
                // One attempt, bounded by the deadline; a broken connection is replaced.
                let attempt = tokio::time::timeout_at(deadline, async {
                    let mut sender = match c.take() {
                        Some(s) => s,
                        None => client(addr).await,
                    };
                    if let Err(e) = sender.ready().await {
                        return Err(format!("connection not ready: {e}"));
                    }
                    let resp = match sender.send_request(get(&url)).await {
                        Ok(resp) => resp,
                        Err(e) => return Err(e.to_string()),
                    };
                    if resp.status() != StatusCode::OK {
                        return Err(resp.status().to_string());
                    }
                    let body = match resp.into_body().collect().await {
                        Ok(b) => b.to_bytes(),
                        Err(e) => return Err(format!("body: {e}")),
                    };
                    if &body[..] != b"hello from origin" {
                        return Err(format!("body: {:?}", String::from_utf8_lossy(&body)));
                    }
                    Ok(sender)
                })
                .await;
                match attempt {
                    Ok(Ok(sender)) => {
                        served.fetch_add(1, Ordering::Relaxed);
                        c = Some(sender);
                    }
                    Ok(Err(e)) => {
                        failures.push(e);
                        // The test has failed already; enough to say how, without spinning.
                        if failures.count >= 100 {
                            break;
                        }
                    }
                    // The next turn reports the deadline.
                    Err(_) => {}
                }
            }
            failures
        }));
    }

    let r = reloader.clone();
    let dir2 = dir.clone();
    let reloads = tokio::task::spawn_blocking(move || {
        for i in 0..50 {
            let action = if i % 2 == 0 { "monitor" } else { "allow" };
            std::fs::write(&path, reload_config(&dir2, action)).expect("rewrite the config");
            r.reload_now().expect("each reload compiles");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    tokio::time::timeout_at(deadline, reloads)
        .await
        .unwrap_or_else(|_| panic!("50 reloads did not finish within {RELOAD_TEST_DEADLINE:?}"))
        .expect("the reloads did not panic");
    reloading.store(false, Ordering::Relaxed);
    let mut failed = 0;
    let mut first = Vec::new();
    for c in clients {
        // Each client stops by itself at the deadline; a little slack for its last turn.
        let f = tokio::time::timeout_at(deadline + Duration::from_secs(5), c)
            .await
            .unwrap_or_else(|_| {
                panic!("a load client ran past the {RELOAD_TEST_DEADLINE:?} deadline")
            })
            .expect("a load client panicked");
        failed += f.count;
        first.extend(f.first);
    }
    let served = served.load(Ordering::Relaxed);
    assert!(
        failed == 0,
        "{failed} requests failed ({served} served); the first: {first:?}"
    );
    assert_eq!(reloader.stats.succeeded.load(Ordering::Relaxed), 50);
    assert_eq!(reloader.stats.failed.load(Ordering::Relaxed), 0);

    stop.cancel();
    done.await.expect("the proxy task did not panic");
    let records = stored(&dir.join("journal.db"));
    let actions: std::collections::BTreeSet<_> =
        records.iter().filter_map(|r| r.action.clone()).collect();
    eprintln!(
        "FAULT 50 reloads under load: {served} requests, 0 failed; actions journaled: {actions:?}"
    );
    assert!(
        actions.contains("monitor") && actions.contains("allow"),
        "the reloaded policies took effect mid-load: {actions:?}"
    );
    assert_eq!(records.len() as u64, served, "one record per request");
}

/// The journal record of an exchange whose origin died mid-body says forwarded/200 with the
/// true byte count, but nothing says the body was cut short: a reviewer cannot tell it from
/// a complete 1000-byte answer.
#[tokio::test]
async fn a_body_cut_short_is_journaled_as_an_error() {
    let cfg = config();
    let journal_path = cfg.journal.path.clone();
    let p = proxy(cfg).await;
    let dead = dying_origin(false, Death::Reset).await;
    let mut c = client(p.addr).await;
    let resp = c
        .send_request(get(&format!("http://{dead}/big")))
        .await
        .unwrap();
    let _ = resp.into_body().collect().await;
    p.stop.cancel();
    p.done.await.unwrap();
    let records = stored(&journal_path);
    let r = records.iter().find(|r| r.url.ends_with("/big")).unwrap();
    assert!(
        r.outcome == Outcome::Error || r.reason.is_some(),
        "journaled as {r:?}"
    );
}
