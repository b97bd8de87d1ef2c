//! The coach flow in a real headless Chromium, configured only with Signpost's PAC URL:
//! open a coached HTTPS site, see the interstitial, press Continue, land on the site.

mod common;

use common::browser::Browser;
use common::*;
use serde_json::json;
use signpost::config::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_sees_the_interstitial_continues_and_lands_on_the_origin() {
    let (origin, origin_cert) = tls_origin_for(&["www.ning.com"]).await;
    let state = state_dir();
    let port = origin.addr.port();
    let text = format!(
        r#"
[proxy]
listen = "127.0.0.1:0"
connect_ports = [{port}]

[upstream]
hosts = {{ "www.ning.com" = "127.0.0.1" }}

[tls]
ca_cert = "{s}/ca.pem"
ca_key = "{s}/ca-key.pem"
create_if_missing = true

[coach]
secret_file = "{s}/coach-secret"

[journal]
path = "{s}/journal.db"

[[category]]
name = "social"
title = "Social networks and online communities"
hosts = ["ning.com"]
guidance = "Think before you post."

[[rule]]
name = "coach social"
category = "social"
action = "coach"
"#,
        s = state.display()
    );
    let config = Config::parse(&state.join("signpost.toml"), &text).unwrap();
    let p = proxy(config).await;
    let pac_url = format!("http://127.0.0.1:{}/proxy.pac", p.addr.port());
    let ca = std::fs::read(state.join("ca.pem")).unwrap();
    let site = format!("https://www.ning.com:{port}/hello");

    let lines = tokio::task::spawn_blocking(move || {
        let browser = Browser::new();
        browser.trust("signpost", &ca);
        browser.trust("origin", origin_cert.as_ref());
        browser.run(
            &pac_url,
            json!([
                {"goto": site},
                {"expectText": "Before you continue"},
                {"expectText": "Think before you post."},
                {"click": "text=Continue to the site"},
                {"expectText": "hello from origin"},
            ]),
        )
    })
    .await
    .unwrap();
    assert!(lines.iter().all(|l| l["ok"] == true), "{lines:#?}");
    let last = lines.last().unwrap();
    assert_eq!(last["url"], format!("https://www.ning.com:{port}/hello"));

    let seen = origin.seen();
    let pages: Vec<_> = seen.iter().filter(|s| s.target == "/hello").collect();
    assert_eq!(
        pages.len(),
        1,
        "the page is fetched once, after Continue: {seen:?}"
    );
    assert_eq!(
        seen[0].target, "/hello",
        "nothing reached the origin before it"
    );
    assert!(
        seen.iter().all(|s| s.header("via").is_none()),
        "tunnelled untouched, never forwarded"
    );
}
