//! Policy over real sockets: block pages, reload on file change and on SIGHUP, a broken
//! edit that keeps the old rules, and `check`/`explain` on a UT1-layout folder.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use http::StatusCode;
use signpost::config::Config;
use signpost::proxy::Server;
use signpost::reload::Reloader;
use tokio_util::sync::CancellationToken;

fn policy_text(origin_port: u16, action: &str) -> String {
    let state = state_dir();
    format!(
        r#"
[coach]
secret_file = "{secret}"

[journal]
path = "{journal}"

[admin]
listen = "127.0.0.1:0"

[proxy]
listen = "127.0.0.1:0"
connect_ports = [443, {origin_port}]

[upstream]
hosts = {{ "www.ning.com" = "127.0.0.1", "safe.example" = "127.0.0.1" }}

[organisation]
contact = "the service desk <desk@example.org>"

[[category]]
name = "social"
title = "Social networks & <communities>"
hosts = ["ning.com"]

[[rule]]
name = "social rule"
category = "social"
action = "{action}"
message = "Ask your manager <before> using this."
"#,
        secret = state.join("coach-secret").display(),
        journal = state.join("journal.db").display(),
    )
}

async fn start(path: &Path) -> (TestProxy, Reloader) {
    let config = Config::load(path).unwrap();
    let server = Server::bind(&config).await.unwrap();
    let addr = server.local_addr().unwrap();
    let reloader = Reloader::new(path.to_path_buf(), server.policy());
    let stop = CancellationToken::new();
    reloader.clone().spawn(stop.clone(), true);
    let done = tokio::spawn(server.run(stop.clone()));
    (TestProxy { addr, stop, done }, reloader)
}

#[tokio::test]
async fn a_blocked_category_gets_a_403_page_over_http_and_connect() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signpost.toml");
    std::fs::write(&path, policy_text(origin.addr.port(), "block")).unwrap();
    let (p, _) = start(&path).await;
    let port = origin.addr.port();

    let mut c = client(p.addr).await;
    let resp = c
        .send_request(get(&format!("http://forum.www.ning.com:{port}/hello")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()["x-signpost-action"], "block");
    let page = body_text(resp).await;
    assert!(
        page.contains("Social networks &amp; &lt;communities&gt;"),
        "{page}"
    );
    assert!(
        page.contains("Ask your manager &lt;before&gt; using this."),
        "{page}"
    );
    assert!(page.contains("desk@example.org"), "{page}");
    assert!(!page.contains("<communities>") && !page.contains("<before>"));
    c.ready().await.unwrap();

    // a host outside the category passes
    let resp = c
        .send_request(get(&format!("http://safe.example:{port}/hello")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(origin.seen().len(), 1);

    let reply = raw_exchange(
        p.addr,
        format!("CONNECT www.ning.com:{port} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert_eq!(origin.seen().len(), 1, "the blocked tunnel reached nothing");
}

#[tokio::test]
async fn a_rule_edit_takes_effect_when_the_file_changes_and_a_broken_edit_keeps_the_old_rules() {
    let origin = origin().await;
    let port = origin.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signpost.toml");
    std::fs::write(&path, policy_text(port, "allow")).unwrap();
    let (p, reloader) = start(&path).await;
    let mut attempts = reloader.subscribe();
    let url = format!("http://www.ning.com:{port}/hello");

    let mut c = client(p.addr).await;
    let resp = c.send_request(get(&url)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    body_text(resp).await;

    // Save the edit the way editors do: write a new file, rename it over the old one.
    let tmp = dir.path().join("signpost.toml.new");
    std::fs::write(&tmp, policy_text(port, "block")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    tokio::time::timeout(Duration::from_secs(10), attempts.changed())
        .await
        .expect("the file change triggers a reload")
        .unwrap();
    assert_eq!(
        reloader
            .stats
            .succeeded
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // The same keep-alive connection now sees the new policy.
    c.ready().await.unwrap();
    let resp = c.send_request(get(&url)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // A broken edit is refused; the proxy keeps the previous rules and keeps serving.
    std::fs::write(
        &path,
        "[[rule]]\nname = \"x\"\ncategory = \"nope\"\naction = \"block\"\n",
    )
    .unwrap();
    tokio::time::timeout(Duration::from_secs(10), attempts.changed())
        .await
        .expect("the broken edit triggers a reload attempt")
        .unwrap();
    assert_eq!(
        reloader
            .stats
            .failed
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let mut c2 = client(p.addr).await;
    let resp = c2.send_request(get(&url)).await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "old rules still apply"
    );
}

#[test]
fn sighup_reloads_the_policy_in_the_running_binary() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = rt.block_on(origin());
    let port = origin.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signpost.toml");
    std::fs::write(&path, policy_text(port, "allow")).unwrap();
    let mut signpost = Binary::run(&path, false);
    let [addr] = signpost.listening(["signpost is listening"]);
    let url = format!("http://www.ning.com:{port}/hello");
    let status = |url: String| {
        rt.block_on(async move {
            let mut c = client(addr).await;
            c.send_request(get(&url)).await.unwrap().status()
        })
    };
    assert_eq!(status(url.clone()), StatusCode::OK);

    std::fs::write(&path, policy_text(port, "block")).unwrap();
    // --no-watch: nothing happens until the signal.
    assert_eq!(status(url.clone()), StatusCode::OK);
    signpost.signal("HUP");
    signpost.next_message("policy reloaded");
    assert_eq!(status(url), StatusCode::FORBIDDEN);

    signpost.signal("TERM");
    assert_eq!(signpost.wait().code(), Some(0));
}

fn ut1_fixture(dir: &Path) -> std::path::PathBuf {
    let list = dir.join("blacklists").join("phishing");
    std::fs::create_dir_all(&list).unwrap();
    std::fs::write(
        list.join("domains"),
        "# UT1 phishing (fixture)\n\nPhish.example\nbücher-login.example\nnot a domain\n.lead-dot.example\nbad..name\n",
    )
    .unwrap();
    std::fs::write(
        list.join("urls"),
        "bank.example/login\nexample.net/secure/verify\n",
    )
    .unwrap();
    let cfg = dir.join("signpost.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[category]]\nname = \"phishing\"\nlists = [{:?}]\n\n[[rule]]\nname = \"no phishing\"\ncategory = \"phishing\"\naction = \"block\"\n",
            list.display().to_string()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn check_reports_list_counts_and_bad_lines_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ut1_fixture(dir.path());
    let text = signpost_stdout("check", &cfg, &[]);
    assert!(
        text.contains("phishing/domains: 3 entries, 2 lines skipped"),
        "{text}"
    );
    assert!(text.contains("phishing/domains:5: skipped:"), "{text}");
    assert!(text.contains("phishing/domains:7: skipped:"), "{text}");
    assert!(
        text.contains("phishing/urls: 2 entries, 0 lines skipped"),
        "{text}"
    );
}

#[test]
fn explain_shows_category_rule_action_and_the_list_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ut1_fixture(dir.path());
    let explain = |url: &str| {
        signpost_stdout(
            "explain",
            &cfg,
            &[url, "--client", "10.1.2.3", "--at", "2026-11-22T12:00:00Z"],
        )
    };

    let text = explain("https://secure.phish.example/");
    assert!(text.contains("entry `phish.example` at "), "{text}");
    assert!(text.contains("phishing/domains:3"), "{text}");
    assert!(text.contains("1. \"no phishing\""), "{text}");
    assert!(
        text.contains("Decision: block by rule \"no phishing\", category phishing"),
        "{text}"
    );

    // IDN list entries match their punycode form.
    let text = explain("http://xn--bcher-login-thb.example/");
    assert!(text.contains("Decision: block"), "{text}");

    // URL entries need the path: visible over http, not inside an https tunnel.
    let text = explain("http://bank.example/login?x=1");
    assert!(text.contains("phishing/urls:1"), "{text}");
    assert!(text.contains("Decision: block"), "{text}");
    let text = explain("https://bank.example/login");
    assert!(text.contains("Decision: allow (no rule matched"), "{text}");

    let text = explain("http://example.org/");
    assert!(text.contains("Category: none"), "{text}");
    assert!(
        text.contains("no: the request is not in its categories (phishing)"),
        "{text}"
    );
}
