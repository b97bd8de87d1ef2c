//! The gate and the limits: who may use the proxy, malformed requests, header size,
//! connection count, and the header and idle timeouts.

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use signpost::config::{Bounded, Span};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

#[tokio::test]
async fn a_client_outside_allow_clients_gets_403_and_nothing_is_forwarded() {
    let origin = origin().await;
    let mut cfg = config();
    cfg.proxy.allow_clients = vec!["127.0.0.1/32".parse().unwrap()];
    let p = proxy(cfg).await;

    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut outsider = socket.connect(p.addr).await.unwrap();
    let req = origin.raw_get("/hello", "");
    outsider.write_all(req.as_bytes()).await.unwrap();
    let reply = read_until_close(&mut outsider).await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(
        reply.contains("127.0.0.2"),
        "the page says which address was refused"
    );
    assert!(origin.seen().is_empty(), "nothing was forwarded");

    // an allowed client on the same proxy is served
    let mut c = client(p.addr).await;
    let resp = c.send_request(get(&origin.url("/hello"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn garbage_request_line_is_400() {
    let p = proxy(config()).await;
    let reply = raw_exchange(p.addr, b"THIS IS NOT HTTP\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
}

#[tokio::test]
async fn unknown_scheme_is_400_with_a_reason() {
    let p = proxy(config()).await;
    let reply = raw_exchange(
        p.addr,
        b"GET ftp://example.org/file HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("ftp"), "{reply}");
}

#[tokio::test]
async fn user_info_in_the_target_is_400() {
    let p = proxy(config()).await;
    let reply = raw_exchange(
        p.addr,
        b"GET http://user:secret@example.org/ HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(
        !reply.contains("secret"),
        "the page never repeats a password"
    );
}

#[tokio::test]
async fn oversized_headers_are_431() {
    let origin = origin().await;
    let mut cfg = config();
    cfg.proxy.max_header_bytes = Bounded(16 * 1024);
    let p = proxy(cfg).await;
    let big = "a".repeat(40 * 1024);
    let req = origin.raw_get("/hello", &format!("X-Big: {big}\r\n"));
    let reply = raw_exchange(p.addr, req.as_bytes()).await;
    assert!(
        reply.starts_with("HTTP/1.1 431"),
        "{}",
        &reply[..reply.len().min(200)]
    );
    assert!(origin.seen().is_empty());

    // just under the limit still passes
    let ok = "a".repeat(8 * 1024);
    let req = origin.raw_get("/hello", &format!("X-Big: {ok}\r\nConnection: close\r\n"));
    let reply = raw_exchange(p.addr, req.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[tokio::test]
async fn connections_beyond_max_connections_get_503_and_existing_ones_carry_on() {
    let origin = origin().await;
    let mut cfg = config();
    cfg.proxy.max_connections = Bounded(1);
    let p = proxy(cfg).await;

    let mut first = client(p.addr).await;
    let resp = first
        .send_request(get(&origin.url("/hello")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    body_text(resp).await;

    let req = origin.raw_get("/hello", "");
    let reply = raw_exchange(p.addr, req.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");

    first.ready().await.unwrap();
    let resp = first
        .send_request(get(&origin.url("/hello")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        origin.seen().len(),
        2,
        "the refused connection reached nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_request_head_is_cut_off_without_starving_others() {
    let origin = origin().await;
    let mut cfg = config();
    cfg.proxy.header_timeout = Span(Duration::from_secs(2));
    cfg.proxy.idle_timeout = Span(Duration::from_secs(3600));
    let p = proxy(cfg).await;

    let started = tokio::time::Instant::now();
    let mut slow = TcpStream::connect(p.addr).await.unwrap();
    slow.write_all(b"GET http://example.org/ HTTP/1.1\r\nHost: exa")
        .await
        .unwrap();

    // Another client is served while the slow one dawdles.
    let mut c = client(p.addr).await;
    let resp = c.send_request(get(&origin.url("/hello"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let reply = read_until_close(&mut slow).await;
    let waited = started.elapsed();
    assert!(reply.is_empty(), "{reply}");
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let origin = origin().await;
    let mut cfg = config();
    cfg.proxy.header_timeout = Span(Duration::from_secs(3600));
    cfg.proxy.idle_timeout = Span(Duration::from_secs(5));
    let p = proxy(cfg).await;

    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let req = origin.raw_get("/hello", "");
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let answered = tokio::time::Instant::now();
    let rest = read_until_close(&mut s).await;
    assert_eq!(rest, "hello from origin", "the body, then the close");
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_secs(5) && idle < Duration::from_secs(6),
        "closed after {idle:?}"
    );
}
