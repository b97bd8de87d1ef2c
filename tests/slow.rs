//! Slow and many clients over real sockets: a client that stops reading a large body, a
//! crowd of slowloris connections trickling their request heads, and a thousand idle
//! keep-alive connections. In each, the proxy must cut off what it should, on time, and keep
//! serving everyone else promptly.
//!
//! The timeouts are configured small (a second or two) and measured in real time: the point
//! is that the proxy keeps serving others *while* the slow ones hang on, which paused time
//! cannot show. The gauge of open connections (`Metrics::open_connections`) is the signal
//! that the proxy closed something.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use signpost::config::{Config, Span};
use signpost::metrics::Metrics;
use signpost::proxy::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The proxy in-process, with a handle on its metrics.
struct Proxy {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(cfg: Config) -> Proxy {
        let server = Server::bind(&cfg)
            .await
            .expect("the proxy binds 127.0.0.1:0");
        let addr = server
            .local_addr()
            .expect("a bound listener has an address");
        let metrics = server.journal().metrics.clone();
        let stop = CancellationToken::new();
        let done = tokio::spawn(server.run(stop.clone()));
        Proxy {
            addr,
            metrics,
            stop,
            done,
        }
    }

    fn open(&self) -> i64 {
        self.metrics.open_connections.load(Ordering::Relaxed)
    }

    fn parked(&self) -> i64 {
        self.metrics.parked_connections.load(Ordering::Relaxed)
    }

    /// Waits until exactly `n` connections are parked; `Err` with the count seen last if
    /// that does not happen within `within`.
    async fn wait_parked(&self, n: i64, within: Duration) -> Result<(), i64> {
        wait_gauge(|| self.parked(), |parked| parked == n, within).await
    }

    /// Waits until the proxy holds at most `n` open connections; `Err` with the count seen
    /// last if that does not happen within `within`.
    async fn wait_open_at_most(&self, n: i64, within: Duration) -> Result<(), i64> {
        wait_gauge(|| self.open(), |open| open <= n, within).await
    }

    async fn shut(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.done)
            .await
            .expect("the proxy stops within its shutdown grace")
            .expect("the proxy task did not panic");
    }
}

/// Polls `gauge` until `done` holds; `Err` with the value seen last after `within`.
async fn wait_gauge(
    gauge: impl Fn() -> i64,
    done: impl Fn(i64) -> bool,
    within: Duration,
) -> Result<(), i64> {
    let until = Instant::now() + within;
    loop {
        let value = gauge();
        if done(value) {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(value);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` requests for `/hello`, each on a new connection, all at once; returns how long the
/// slowest took. Fails the test if any is not a whole 200.
async fn served_meanwhile(proxy: SocketAddr, origin: &Origin, n: usize) -> Duration {
    let mut set = JoinSet::new();
    for i in 0..n {
        let url = origin.url("/hello");
        set.spawn(async move {
            let started = Instant::now();
            let mut c = client(proxy).await;
            let resp = c
                .send_request(get(&url))
                .await
                .unwrap_or_else(|e| panic!("request {i} of the others failed: {e}"));
            assert_eq!(resp.status(), StatusCode::OK, "request {i} of the others");
            assert_eq!(body_text(resp).await, "hello from origin");
            started.elapsed()
        });
    }
    let mut slowest = Duration::ZERO;
    while let Some(took) = set.join_next().await {
        slowest = slowest.max(took.expect("a request of the others panicked"));
    }
    slowest
}

// ---------------------------------------------------------------------------------------
// A slow reader

const BIG: usize = 64 * 1024 * 1024;

/// A client asks for 64 MiB and stops reading after the response head. While it is stalled
/// others are served promptly; and a connection whose response makes no progress for
/// `proxy.send_timeout` is closed, so the stalled one does not hold its socket, its upstream
/// connection and its buffers for ever. The other timeouts are long: only the send timeout
/// can close it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_and_others_are_served_meanwhile() {
    let origin = origin().await;
    let mut cfg = config();
    let send = Duration::from_secs(1);
    cfg.proxy.send_timeout = Span(send);
    cfg.proxy.idle_timeout = Span(Duration::from_secs(3600));
    cfg.proxy.header_timeout = Span(Duration::from_secs(3600));
    let p = Proxy::start(cfg).await;

    // A small receive window so that the stall reaches the proxy quickly.
    let socket = TcpSocket::new_v4().expect("a client socket");
    socket
        .set_recv_buffer_size(16 * 1024)
        .expect("a small receive buffer");
    let mut stalled = socket.connect(p.addr).await.expect("connect to the proxy");
    stalled
        .write_all(origin.raw_get(&format!("/big?{BIG}"), "").as_bytes())
        .await
        .expect("send the request");
    let head = read_head(&mut stalled).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-length: {BIG}")), "{head}");
    let stalled_at = Instant::now();

    // Others, while it hangs on: twenty at once, each within a second.
    let slowest = served_meanwhile(p.addr, &origin, 20).await;
    assert!(
        slowest < Duration::from_secs(1),
        "with a stalled reader, the slowest of 20 others took {slowest:?}"
    );
    eprintln!("SLOW reader: 20 others served meanwhile, slowest in {slowest:?}");

    // The others have gone; the stalled one must follow within the send timeout (plus
    // time for the socket buffers to fill and the watchdog to notice).
    let bound = send * 3 + Duration::from_secs(2);
    if let Err(open) = p.wait_open_at_most(0, bound).await {
        panic!(
            "the stalled reader's connection is still open {:?} after it stopped reading \
             ({open} open; proxy.send_timeout is {send:?})",
            stalled_at.elapsed()
        );
    }
    let cut_after = stalled_at.elapsed();

    // What reached the client: whatever was already in flight, then the close — never the
    // whole body.
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the client's connection never ended");
    assert!(
        got < BIG,
        "the whole body ({got} bytes) arrived: the connection was not cut off"
    );
    eprintln!(
        "SLOW reader: cut off {cut_after:?} after it stopped reading; {got} of {BIG} body \
         bytes had reached it"
    );

    // And the proxy still serves.
    served_meanwhile(p.addr, &origin, 1).await;
    p.shut().await;
}

// ---------------------------------------------------------------------------------------
// Slowloris, many at once

/// How one slowloris connection ended.
struct Slowloris {
    /// From its first byte to the proxy's close.
    closed_after: Duration,
    /// What the proxy sent before closing.
    reply: Vec<u8>,
}

/// Sends the start of a request head, then one more byte of it every 200 ms, until the
/// proxy closes the connection (a read returns EOF or an error) or `give_up` passes.
async fn slowloris(proxy: SocketAddr, target: String, give_up: Duration) -> Option<Slowloris> {
    let mut s = TcpStream::connect(proxy)
        .await
        .expect("connect to the proxy");
    let started = Instant::now();
    s.write_all(format!("GET {target} HTTP/1.1\r\nHost: ").as_bytes())
        .await
        .expect("the first bytes of the head");
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.tick().await;
    loop {
        if started.elapsed() > give_up {
            return None;
        }
        tokio::select! {
            read = s.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            },
            _ = tick.tick() => {
                // A write into a closed connection fails, or resets it: the next read ends.
                let _ = s.write_all(b"a").await;
            }
        }
    }
    Some(Slowloris {
        closed_after: started.elapsed(),
        reply,
    })
}

/// 200 connections trickle their request heads a byte at a time. A normal client is served
/// promptly throughout, and every slowloris connection is closed `header_timeout` after its
/// first byte, however it keeps trickling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_slowloris_connections_are_cut_off_and_do_not_starve_others() {
    const SLOW: usize = 200;
    let origin = origin().await;
    let mut cfg = config();
    let header = Duration::from_secs(2);
    cfg.proxy.header_timeout = Span(header);
    cfg.proxy.idle_timeout = Span(Duration::from_secs(600));
    let p = Proxy::start(cfg).await;

    let started = Instant::now();
    let mut slow = JoinSet::new();
    for _ in 0..SLOW {
        slow.spawn(slowloris(
            p.addr,
            origin.url("/hello"),
            header + Duration::from_secs(15),
        ));
    }
    // All of them are in before the normal client goes.
    let until = Instant::now() + Duration::from_secs(10);
    while p.open() < SLOW as i64 {
        assert!(
            Instant::now() < until,
            "only {} of {SLOW} slowloris connections were accepted",
            p.open()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A normal client, on new connections and on one kept alive, while they trickle.
    let mut took = Vec::new();
    let mut kept = client(p.addr).await;
    for _ in 0..10 {
        let t = Instant::now();
        served_meanwhile(p.addr, &origin, 1).await;
        kept.ready()
            .await
            .expect("the kept-alive connection is usable");
        let resp = kept
            .send_request(get(&origin.url("/hello")))
            .await
            .expect("a request on the kept-alive connection");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(body_text(resp).await, "hello from origin");
        took.push(t.elapsed());
    }
    let normal_done = started.elapsed();
    let slowest = took.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_millis(500),
        "with {SLOW} slowloris connections open, a normal exchange took {slowest:?}: {took:?}"
    );
    assert!(
        normal_done < header,
        "the normal client finished only after {normal_done:?}, when the slowloris \
         connections may already have been closed: the test proves nothing"
    );
    assert!(
        p.open() >= SLOW as i64,
        "the slowloris connections were closed before header_timeout ({} open)",
        p.open()
    );

    let mut ends = Vec::new();
    while let Some(end) = slow.join_next().await {
        let end = end
            .expect("a slowloris task panicked")
            .expect("a slowloris connection was still open 15 s after its header timeout");
        ends.push(end);
    }
    for end in &ends {
        let reply = String::from_utf8_lossy(&end.reply);
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 408"),
            "a slowloris connection got: {reply}"
        );
    }
    let first = ends
        .iter()
        .map(|e| e.closed_after)
        .min()
        .unwrap_or_default();
    let last = ends
        .iter()
        .map(|e| e.closed_after)
        .max()
        .unwrap_or_default();
    assert!(
        first >= header,
        "a slowloris connection was closed after {first:?}, before header_timeout ({header:?})"
    );
    assert!(
        last < header + Duration::from_millis(1500),
        "a slowloris connection was closed only after {last:?} (header_timeout {header:?}): \
         trickling bytes kept it alive"
    );
    // Keep-alive connections that are between requests are not slow heads.
    assert!(
        p.open() >= 1,
        "the normal kept-alive connection was closed with the slowloris ones"
    );
    kept.ready()
        .await
        .expect("the kept-alive connection outlives the slowloris ones");
    drop(kept);
    eprintln!(
        "SLOW loris: {SLOW} connections trickling a byte every 200 ms; normal exchanges \
         meanwhile took at most {slowest:?}; all {SLOW} closed between {first:?} and {last:?} \
         after their first byte (header_timeout {header:?})"
    );
    p.shut().await;
}

// ---------------------------------------------------------------------------------------
// Many idle keep-alive connections

/// A thousand keep-alive connections, each after one exchange, sit idle. New clients are
/// served promptly, and afterwards a second request on every idle connection succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_keep_alive_connections_are_held_and_others_are_served() {
    const IDLE: usize = 1000;
    let origin = origin().await;
    let mut cfg = config();
    cfg.proxy.idle_timeout = Span(Duration::from_secs(600));
    let p = Proxy::start(cfg).await;
    let url = origin.url("/hello");

    // One exchange on each, a hundred at a time.
    let opened = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for batch in 0..IDLE / 100 {
        let mut set = JoinSet::new();
        for i in 0..100 {
            let (url, addr) = (url.clone(), p.addr);
            set.spawn(async move {
                let mut c = client(addr).await;
                let resp = c
                    .send_request(get(&url))
                    .await
                    .unwrap_or_else(|e| panic!("first request on connection {batch}/{i}: {e}"));
                assert_eq!(resp.status(), StatusCode::OK);
                assert_eq!(body_text(resp).await, "hello from origin");
                c
            });
        }
        while let Some(c) = set.join_next().await {
            idle.push(c.expect("a first request panicked"));
        }
    }
    let opening = opened.elapsed();
    assert_eq!(
        p.open(),
        IDLE as i64,
        "the proxy holds every idle connection"
    );

    // New clients, while the thousand sit there.
    let slowest = served_meanwhile(p.addr, &origin, 20).await;
    assert!(
        slowest < Duration::from_secs(1),
        "with {IDLE} idle connections, the slowest of 20 new requests took {slowest:?}"
    );
    p.wait_open_at_most(IDLE as i64, Duration::from_secs(5))
        .await
        .expect("the 20 new connections close");
    // Quiet for a second, each is parked: hyper lets go of it and its buffers.
    if let Err(parked) = p.wait_parked(IDLE as i64, Duration::from_secs(10)).await {
        panic!("{parked} of {IDLE} idle connections parked after 10 s");
    }

    // The idle ones still work.
    let second = Instant::now();
    let mut set = JoinSet::new();
    for (i, mut c) in idle.into_iter().enumerate() {
        let url = url.clone();
        set.spawn(async move {
            c.ready()
                .await
                .unwrap_or_else(|e| panic!("idle connection {i} was closed: {e}"));
            let resp = c
                .send_request(get(&url))
                .await
                .unwrap_or_else(|e| panic!("second request on idle connection {i}: {e}"));
            assert_eq!(resp.status(), StatusCode::OK, "idle connection {i}");
            assert_eq!(body_text(resp).await, "hello from origin");
        });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        r.expect("a second request panicked");
        ok += 1;
    }
    assert_eq!(ok, IDLE);
    assert!(
        p.parked() < IDLE as i64,
        "a connection that is serving again is no longer counted as parked"
    );
    eprintln!(
        "SLOW idle: {IDLE} keep-alive connections opened in {opening:?}; 20 new requests \
         meanwhile, slowest {slowest:?}; second request on all {IDLE} in {:?}",
        second.elapsed()
    );
    p.shut().await;
}

/// A quiet keep-alive connection is parked; parked, it serves its next requests (two
/// pipelined in one write: neither is lost or reordered), parks again, and is closed
/// promptly when the proxy stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_serves_pipelined_requests_and_closes_on_shutdown() {
    let origin = origin().await;
    let mut cfg = config();
    cfg.proxy.idle_timeout = Span(Duration::from_secs(600));
    let p = Proxy::start(cfg).await;
    let get_hello = origin.raw_get("/hello", "");

    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    s.write_all(get_hello.as_bytes()).await.expect("send");
    let (head, body) = read_response(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "hello from origin");
    p.wait_parked(1, Duration::from_secs(10))
        .await
        .expect("the quiet connection is parked");

    let pipelined = format!("{get_hello}{}", origin.raw_get("/big?7", ""));
    s.write_all(pipelined.as_bytes()).await.expect("send two");
    let (head, body) = read_response(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "hello from origin", "the first pipelined answer");
    let (head, body) = read_response(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "xxxxxxx", "the second pipelined answer");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "parking never closes a keep-alive connection: {head}"
    );
    p.wait_parked(1, Duration::from_secs(10))
        .await
        .expect("quiet again, the connection parks again");

    let stopping = Instant::now();
    let stop = p.stop.clone();
    stop.cancel();
    let rest = read_until_close(&mut s).await;
    assert!(rest.is_empty(), "nothing more is sent: {rest}");
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "a parked connection is closed at once on shutdown, not after {:?}",
        stopping.elapsed()
    );
    p.shut().await;
}
