//! A real browser (Debian's Chromium, headless) given only Signpost's PAC URL reaches sites
//! through the proxy: plain HTTP forwarded, HTTPS through a CONNECT tunnel. The site names
//! exist only in the proxy's `upstream.hosts`, so the browser cannot reach them on its own.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::browser::Browser;
use common::*;
use serde_json::json;
use signpost::config::{HostName, Port};

const SITE: &str = "www.example.test";

fn site_config() -> signpost::config::Config {
    let mut cfg = config();
    cfg.upstream
        .hosts
        .insert(HostName(SITE.to_string()), IpAddr::V4(Ipv4Addr::LOCALHOST));
    cfg
}

/// Has Chromium, given only the proxy's PAC URL (and trusting `cert`, if any), open `url`
/// and find the origin's page there in one navigation; returns what the origin saw of the
/// request for `/hello`.
async fn chromium_opens(
    p: &TestProxy,
    url: &str,
    cert: Option<rustls::pki_types::CertificateDer<'static>>,
    origin: &Origin,
) -> Seen {
    let pac = format!("http://127.0.0.1:{}/proxy.pac", p.addr.port());
    let steps = json!([{ "goto": url }, { "expectText": "hello from origin" }]);
    let lines = tokio::task::spawn_blocking(move || {
        let browser = Browser::new();
        if let Some(cert) = cert {
            browser.trust("test origin", &cert);
        }
        browser.run(&pac, steps)
    })
    .await
    .unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["status"], 200, "{lines:?}");
    assert_eq!(lines[1]["url"], url, "{lines:?}");

    let seen = origin.seen();
    seen.iter()
        .find(|s| s.target == "/hello")
        .cloned()
        .unwrap_or_else(|| panic!("the origin never saw /hello: {seen:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_reaches_a_plain_http_site_through_the_pac_file() {
    let origin = origin().await;
    let p = proxy(site_config()).await;
    let url = format!("http://{SITE}:{}/hello", origin.addr.port());

    let hello = chromium_opens(&p, &url, None, &origin).await;
    let via = hello.header("via").unwrap_or_default();
    assert!(
        via.contains("(signpost)"),
        "the request came through the proxy: via {via:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_reaches_an_https_site_through_a_connect_tunnel() {
    let (origin, cert) = tls_origin_for(&[SITE]).await;
    let mut cfg = site_config();
    cfg.proxy.connect_ports = vec![Port(origin.addr.port())];
    let p = proxy(cfg).await;
    let url = format!("https://{SITE}:{}/hello", origin.addr.port());

    let hello = chromium_opens(&p, &url, Some(cert), &origin).await;
    assert_eq!(
        hello.header("via"),
        None,
        "a tunnel carries the browser's own bytes"
    );
}
