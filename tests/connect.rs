//! CONNECT tunnels: real TLS through the proxy to a TLS origin, and the ports refused.

mod common;

use std::sync::Arc;

use common::*;
use http::StatusCode;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn connect_tunnel_carries_real_tls_to_the_origin() {
    let (origin, cert) = tls_origin().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![signpost::config::Port(origin.addr.port())];
    let p = proxy(cfg).await;

    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let target = format!("localhost:{}", origin.addr.port());
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, s).await.unwrap();

    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = send.send_request(get("/hello").map(|b| b)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_text(resp).await, "hello from origin");
    assert_eq!(
        origin.seen().len(),
        1,
        "the origin served the request over TLS"
    );
}

#[tokio::test]
async fn connect_to_a_port_outside_the_list_is_403() {
    let origin = origin().await;
    let p = proxy(config()).await; // connect_ports = [443]
    let target = origin.addr.to_string();
    let reply = raw_exchange(
        p.addr,
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(reply.contains("connect_ports"), "{reply}");
    assert!(origin.seen().is_empty());
}

#[tokio::test]
async fn connect_to_a_closed_port_is_502() {
    let port = closed_port().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![signpost::config::Port(port)];
    let p = proxy(cfg).await;
    let reply = raw_exchange(
        p.addr,
        format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 502"), "{reply}");
}
