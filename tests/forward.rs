//! Plain HTTP through the proxy: headers, streaming both ways, keep-alive and pooling,
//! WebSocket upgrades, and the upstream errors a person sees.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use signpost::config::{HostName, Span};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn get_drops_hop_by_hop_headers_and_adds_via() {
    let origin = origin().await;
    let p = proxy(config()).await;
    let mut c = client(p.addr).await;

    let req = Request::get(origin.url("/hello"))
        .header("host", "wrong.example")
        .header("connection", "keep-alive, x-client-private")
        .header("x-client-private", "1")
        .header("proxy-authorization", "Basic dXNlcjpwdw==")
        .header("proxy-connection", "keep-alive")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("trailer", "x-t")
        .header("upgrade", "h2c")
        .header("x-end-to-end", "kept")
        .body(Default::default())
        .unwrap();
    let resp = c.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // the origin's own hop-by-hop headers stop at the proxy too
    assert!(resp.headers().get("x-origin-private").is_none());
    assert!(resp.headers().get("keep-alive").is_none());
    assert!(resp.headers()["via"]
        .to_str()
        .unwrap()
        .contains("(signpost)"));
    assert_eq!(body_text(resp).await, "hello from origin");

    let seen = &origin.seen()[0];
    assert_eq!(seen.target, "/hello", "origin-form upstream");
    assert_eq!(seen.header("host"), Some(origin.addr.to_string().as_str()));
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
    for gone in [
        "x-client-private",
        "proxy-authorization",
        "proxy-connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert_eq!(seen.header(gone), None, "{gone} must not reach the origin");
    }
    assert!(seen.header("via").unwrap().contains("(signpost)"));
}

#[tokio::test]
async fn download_is_streamed_not_buffered() {
    let origin = origin().await;
    let p = proxy(config()).await;
    let mut c = client(p.addr).await;
    let resp = c.send_request(get(&origin.url("/gated"))).await.unwrap();
    let mut body = resp.into_body();
    // The origin holds back its second chunk until released: the first must arrive alone.
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the first chunk must arrive before the origin finishes: the proxy buffers")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(first, Bytes::from_static(b"first chunk;"));
    origin.release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, Bytes::from_static(b"second chunk"));
}

#[tokio::test]
async fn upload_is_streamed_not_buffered() {
    let origin = origin().await;
    let p = proxy(config()).await;
    let mut c = client(p.addr).await;
    let (mut tx, body) =
        http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(4);
    let req = Request::post(origin.url("/count-upload"))
        .body(body.boxed())
        .unwrap();
    let sending = tokio::spawn(async move { c.send_request(req).await });

    let chunk = Bytes::from(vec![7u8; 1 << 20]);
    tx.send_data(chunk.clone()).await.unwrap();
    // The origin reports its first bytes while the client still holds the rest back.
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        origin.upload_started.lock().await.recv().await
    })
    .await
    .expect("the origin must see the upload start before it ends: the proxy buffers")
    .unwrap();
    assert!(first > 0);
    for _ in 0..31 {
        tx.send_data(chunk.clone()).await.unwrap();
    }
    drop(tx);
    let resp = sending.await.unwrap().unwrap();
    assert_eq!(body_text(resp).await, (32u64 << 20).to_string());
}

#[tokio::test]
async fn large_bodies_arrive_whole_both_ways() {
    let origin = origin().await;
    let p = proxy(config()).await;
    let mut c = client(p.addr).await;

    let size = 64 << 20;
    let resp = c
        .send_request(get(&origin.url(&format!("/big?{size}"))))
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-length"], size.to_string().as_str());
    let got = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(got.len(), size);

    let payload = Bytes::from((0..(8 << 20)).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let req = Request::post(origin.url("/echo"))
        .body(http_body_util::Full::new(payload.clone()).boxed())
        .unwrap();
    let resp = c.send_request(req).await.unwrap();
    let echoed = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(echoed == payload, "echoed body differs");
}

#[tokio::test]
async fn keep_alive_on_both_sides_with_pooled_upstream() {
    let origin = origin().await;
    let p = proxy(config()).await;
    let mut c = client(p.addr).await;
    for _ in 0..3 {
        let resp = c.send_request(get(&origin.url("/hello"))).await.unwrap();
        assert_eq!(body_text(resp).await, "hello from origin");
        c.ready().await.unwrap();
    }
    let peers: Vec<_> = origin.seen().iter().map(|s| s.peer).collect();
    assert_eq!(peers.len(), 3);
    assert!(
        peers.iter().all(|p| *p == peers[0]),
        "the upstream connection is reused: {peers:?}"
    );
}

#[tokio::test]
async fn websocket_upgrade_is_relayed() {
    let origin = origin().await;
    let p = proxy(config()).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let req = origin.raw_get(
        "/ws",
        "Connection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    s.write_all(b"ping through the proxy").await.unwrap();
    let mut buf = vec![0u8; 22];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping through the proxy");
    let seen = &origin.seen()[0];
    assert_eq!(seen.header("upgrade"), Some("websocket"));
}

#[tokio::test]
async fn upstream_hosts_table_is_consulted_before_dns() {
    let origin = origin().await;
    let mut cfg = config();
    cfg.upstream.hosts = BTreeMap::from([(
        HostName("www.ning.com".into()),
        "127.0.0.1".parse().unwrap(),
    )]);
    let p = proxy(cfg).await;
    let mut c = client(p.addr).await;
    let url = format!("http://www.ning.com:{}/hello", origin.addr.port());
    let resp = c.send_request(get(&url)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        origin.seen()[0].header("host"),
        Some(format!("www.ning.com:{}", origin.addr.port()).as_str())
    );
}

#[tokio::test]
async fn hosts_file_is_consulted_before_dns() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts");
    std::fs::write(
        &file,
        "# test\n127.0.0.1   intranet.example.org intranet\nnot an entry\n",
    )
    .unwrap();
    let mut cfg = config();
    cfg.upstream.hosts_file = Some(file);
    let p = proxy(cfg).await;
    let mut c = client(p.addr).await;
    let url = format!("http://intranet.example.org:{}/hello", origin.addr.port());
    let resp = c.send_request(get(&url)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn origin_down_gives_502_page_naming_host_and_reason() {
    let port = closed_port().await;
    let p = proxy(config()).await;
    let mut c = client(p.addr).await;
    let resp = c
        .send_request(get(&format!("http://127.0.0.1:{port}/")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = body_text(resp).await;
    assert!(page.contains("127.0.0.1"), "{page}");
    assert!(page.contains("refused"), "{page}");
}

#[tokio::test]
async fn slow_origin_gives_504() {
    let origin = origin().await;
    let mut cfg = config();
    cfg.upstream.response_timeout = Span(Duration::from_millis(300));
    let p = proxy(cfg).await;
    let mut c = client(p.addr).await;
    let resp = c.send_request(get(&origin.url("/hang"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    let page = body_text(resp).await;
    assert!(page.contains("127.0.0.1"), "{page}");
    assert!(page.contains("did not start its response"), "{page}");
}
