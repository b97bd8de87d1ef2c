//! What a CONNECT tunnel carries, byte for byte, against a raw TCP origin: bytes the client
//! sends along with its CONNECT, large transfers both ways, half-closes passed on, exact
//! counts in the journal, and a silent tunnel closed on time. On Linux these go through the
//! zero-copy path (splice(2)); the same tests hold for the copying one.

mod common;

use std::time::Duration;

use common::*;
use signpost::config::{Port, Span};
use signpost::journal::store::{self, Filter};
use signpost::journal::Outcome;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes of a recognisable pattern, so that a lost, duplicated or reordered chunk shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// A raw TCP echo origin: every connection gets its bytes back, then the close. Returns
/// its port.
async fn echo_origin() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    port
}

async fn open_tunnel(proxy: std::net::SocketAddr, port: u16, early: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(proxy)
        .await
        .expect("connect to the proxy");
    let mut hello =
        format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").into_bytes();
    hello.extend_from_slice(early);
    s.write_all(&hello).await.expect("send CONNECT");
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_carries_early_bytes_and_megabytes_both_ways_and_counts_them_exactly() {
    const UP: usize = 2 << 20;
    const DOWN: usize = 3 << 20;
    let early = b"bytes sent along with the CONNECT";
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // The origin reads everything until the client's half-close, then answers and closes.
    let origin = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut got = Vec::new();
        s.read_to_end(&mut got)
            .await
            .expect("read to the half-close");
        s.write_all(&pattern(DOWN, 7)).await.expect("answer");
        s.shutdown().await.expect("close");
        got
    });
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![Port(port)];
    let journal = cfg.journal.path.clone();
    let p = proxy(cfg).await;

    let mut s = open_tunnel(p.addr, port, early).await;
    let up = pattern(UP, 3);
    s.write_all(&up).await.expect("send up");
    s.shutdown().await.expect("half-close");
    let mut down = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut down))
        .await
        .expect("the origin's answer and close within 30 s")
        .expect("read down");

    let got = origin.await.expect("the origin task");
    let mut want = early.to_vec();
    want.extend_from_slice(&up);
    assert!(
        got == want,
        "the origin got {} bytes, not the {} sent",
        got.len(),
        want.len()
    );
    assert!(
        down == pattern(DOWN, 7),
        "the client got {} bytes, not {DOWN}",
        down.len()
    );

    // Journaled when the tunnel closes, with what it moved.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let record = loop {
        let db = store::connect(&journal).expect("the journal");
        let records = store::query(&db, &Filter::default(), 100, 0).expect("query");
        if let Some(r) = records
            .into_iter()
            .find(|r| r.outcome == Outcome::Tunnelled)
        {
            break r;
        }
        assert!(
            std::time::Instant::now() < until,
            "no tunnel record within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(record.bytes_up, (early.len() + UP) as u64);
    assert_eq!(record.bytes_down, DOWN as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_side_may_keep_talking_after_the_other_has_finished() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // The origin speaks first and half-closes, then still reads what the client sends.
    let origin = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        s.write_all(b"banner").await.expect("banner");
        s.shutdown().await.expect("half-close");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read the rest");
        got
    });
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![Port(port)];
    let p = proxy(cfg).await;

    let mut s = open_tunnel(p.addr, port, b"").await;
    let mut banner = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut banner))
        .await
        .expect("the origin's half-close reaches the client")
        .expect("read");
    assert_eq!(banner, b"banner");
    s.write_all(b"still here")
        .await
        .expect("write after the origin's half-close");
    s.shutdown().await.expect("half-close");
    let got = tokio::time::timeout(Duration::from_secs(10), origin)
        .await
        .expect("the client's half-close reaches the origin")
        .expect("the origin task");
    assert_eq!(got, b"still here");
}

#[tokio::test(start_paused = true)]
async fn a_silent_tunnel_is_closed_after_tunnel_idle_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let origin = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 16];
        // Silent; returns when the proxy closes its side.
        s.read(&mut buf).await.unwrap_or(0)
    });
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![Port(port)];
    cfg.proxy.tunnel_idle_timeout = Span(Duration::from_secs(5));
    cfg.proxy.idle_timeout = Span(Duration::from_secs(3600));
    let p = proxy(cfg).await;

    let mut s = open_tunnel(p.addr, port, b"").await;
    let opened = tokio::time::Instant::now();
    let rest = read_until_close(&mut s).await;
    let silent = opened.elapsed();
    assert!(rest.is_empty(), "{rest}");
    assert!(
        silent >= Duration::from_secs(5) && silent < Duration::from_secs(6),
        "closed after {silent:?}"
    );
    assert_eq!(
        origin.await.expect("the origin task"),
        0,
        "the origin side is closed too"
    );
}

/// Tunnels share a pool of pipes; fifty at once, each echoing its own pattern, must each get
/// back exactly their own bytes (a pipe returned with bytes in it would show here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tunnels_at_once_each_get_exactly_their_own_bytes() {
    const N: usize = 50;
    const LEN: usize = 256 * 1024;
    let port = echo_origin().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![Port(port)];
    let p = proxy(cfg).await;

    let mut set = tokio::task::JoinSet::new();
    for i in 0..N {
        let addr = p.addr;
        set.spawn(async move {
            let s = open_tunnel(addr, port, b"").await;
            let (mut r, mut w) = s.into_split();
            let mine = pattern(LEN, i as u8);
            let sent = mine.clone();
            let writer = tokio::spawn(async move {
                w.write_all(&sent).await.expect("send");
                w.shutdown().await.expect("half-close");
            });
            let mut back = Vec::with_capacity(LEN);
            tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut back))
                .await
                .expect("the echo within 30 s")
                .expect("read");
            writer.await.expect("writer");
            assert!(
                back == mine,
                "tunnel {i} got {} bytes, not its own {LEN}",
                back.len()
            );
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("a tunnel failed");
    }
}

/// An open tunnel is an open connection: it counts against `proxy.max_connections` until it
/// closes, and its place is given back when it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_tunnels_count_against_max_connections_until_they_close() {
    let port = echo_origin().await;
    let origin = origin().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![Port(port)];
    cfg.proxy.max_connections = signpost::config::Bounded(2);
    let p = proxy(cfg).await;

    let first = open_tunnel(p.addr, port, b"").await;
    let _second = open_tunnel(p.addr, port, b"").await;
    let get_hello = origin.raw_get("/hello", "Connection: close\r\n");
    let reply = raw_exchange(p.addr, get_hello.as_bytes()).await;
    assert!(
        reply.starts_with("HTTP/1.1 503"),
        "two tunnels hold both places: {reply}"
    );

    drop(first);
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = raw_exchange(p.addr, get_hello.as_bytes()).await;
        if reply.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
        assert!(
            std::time::Instant::now() < until,
            "the closed tunnel's place was not given back within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
