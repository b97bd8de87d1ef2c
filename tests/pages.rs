//! The proxy's own pages, requests addressed to the proxy itself, and the PAC file as a
//! real PAC engine (pacparser) evaluates it.

mod common;

use std::process::Command;

use common::*;
use http::StatusCode;
use signpost::config::HostName;

#[tokio::test]
async fn own_pages_are_served_and_never_forwarded() {
    let origin = origin().await;
    let mut cfg = config();
    cfg.proxy.hostname = Some(HostName("signpost.test".into()));
    let p = proxy(cfg).await;
    let port = p.addr.port();
    let mut c = client(p.addr).await;

    for url in [
        "/healthz".to_string(),
        format!("http://127.0.0.1:{port}/healthz"),
        format!("http://localhost:{port}/healthz"),
        format!("http://signpost.test:{port}/healthz"),
    ] {
        let resp = c.send_request(get(&url)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{url}");
        assert_eq!(body_text(resp).await, "ok\n", "{url}");
        c.ready().await.unwrap();
    }

    for path in ["/proxy.pac", "/wpad.dat"] {
        let resp = c.send_request(get(path)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-type"],
            "application/x-ns-proxy-autoconfig"
        );
        let pac = body_text(resp).await;
        assert!(pac.contains("FindProxyForURL"));
        assert!(
            pac.contains(&format!("PROXY signpost.test:{port}")),
            "{pac}"
        );
        c.ready().await.unwrap();
    }

    let resp = c.send_request(get("/")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let index = body_text(resp).await;
    assert!(
        index.contains("proxy.pac") && index.contains("signpost.test"),
        "{index}"
    );
    c.ready().await.unwrap();

    let resp = c.send_request(get("/nothing-here")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(body_text(resp).await.contains("nothing-here"));

    // Markup in the path is refused by the parser or shown escaped, never as markup.
    let reply = raw_exchange(
        p.addr,
        b"GET /x<script>alert(1)</script> HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        reply.starts_with("HTTP/1.1 400") || reply.starts_with("HTTP/1.1 404"),
        "{reply}"
    );
    assert!(!reply.contains("<script>"), "{reply}");

    assert!(origin.seen().is_empty());
}

#[tokio::test]
async fn a_forwarding_loop_is_refused() {
    let origin = origin().await;
    let p = proxy(config()).await;
    let mut c = client(p.addr).await;
    // First pass learns this proxy's Via entry from the origin.
    c.send_request(get(&origin.url("/hello"))).await.unwrap();
    let via = origin.seen()[0].header("via").unwrap().to_string();
    c.ready().await.unwrap();
    let req = http::Request::get(origin.url("/hello"))
        .header("via", via)
        .body(Default::default())
        .unwrap();
    let resp = c.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::LOOP_DETECTED);
    assert_eq!(origin.seen().len(), 1);
}

/// Evaluates `FindProxyForURL` with Debian's pacparser, as a browser's PAC engine would.
fn pacparser(pac: &str, cases: &[(&str, &str)]) -> Vec<String> {
    let python = "/usr/bin/python3";
    let probe = Command::new(python)
        .args(["-c", "import pacparser"])
        .output();
    if !matches!(&probe, Ok(o) if o.status.success()) {
        panic!("python3-pacparser is missing: run scripts/test.sh, which installs it");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.pac");
    std::fs::write(&file, pac).unwrap();
    let mut script = String::from("import sys, pacparser\npacparser.init()\n");
    script.push_str("pacparser.parse_pac_file(sys.argv[1])\n");
    for (url, host) in cases {
        script.push_str(&format!("print(pacparser.find_proxy({url:?}, {host:?}))\n"));
    }
    let out = Command::new(python)
        .args(["-c", &script, file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pacparser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn pac_file_routes_as_configured_in_a_real_pac_engine() {
    let mut cfg = config();
    cfg.pac.direct = [
        "*.intranet.example.org",
        "corp.example",
        "10.0.0.0/8",
        "192.168.1.0/24",
        "fd00::/8",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    cfg.pac.proxies = vec![
        "p1.example.org:3128".parse().unwrap(),
        "p2.example.org:8080".parse().unwrap(),
    ];
    let p = proxy(cfg).await;
    let mut c = client(p.addr).await;
    let pac = body_text(c.send_request(get("/proxy.pac")).await.unwrap()).await;

    let proxied = "PROXY p1.example.org:3128; PROXY p2.example.org:8080";
    let cases = [
        ("http://intranet/", "intranet", "DIRECT"),
        (
            "http://wiki.intranet.example.org/",
            "wiki.intranet.example.org",
            "DIRECT",
        ),
        (
            "http://intranet.example.org/",
            "intranet.example.org",
            proxied,
        ),
        ("http://corp.example/", "corp.example", "DIRECT"),
        ("http://www.corp.example/", "www.corp.example", "DIRECT"),
        ("http://WWW.Corp.Example./", "WWW.Corp.Example.", "DIRECT"),
        ("http://notcorp.example/", "notcorp.example", proxied),
        ("http://10.1.2.3/", "10.1.2.3", "DIRECT"),
        ("http://11.1.2.3/", "11.1.2.3", proxied),
        ("http://192.168.1.77/", "192.168.1.77", "DIRECT"),
        ("http://192.168.2.1/", "192.168.2.1", proxied),
        ("http://[fd00::1]/", "fd00::1", "DIRECT"),
        ("http://[2001:db8::1]/", "2001:db8::1", proxied),
        ("https://www.ning.com/", "www.ning.com", proxied),
    ];
    let inputs: Vec<(&str, &str)> = cases.iter().map(|(u, h, _)| (*u, *h)).collect();
    let got = pacparser(&pac, &inputs);
    for ((url, _, want), got) in cases.iter().zip(&got) {
        assert_eq!(got, want, "{url}");
    }
    assert_eq!(got.len(), cases.len());
}
