//! Directory groups in rules, end to end: a real slapd, proxy authentication against it,
//! and a rule on a directory group deciding what each person gets.

mod common;

use base64::Engine;
use common::ldap::{Slapd, GROUPS, PEOPLE};
use common::*;
use http::{Request, StatusCode};
use signpost::config::Config;

async fn fetch(proxy: std::net::SocketAddr, url: &str, user: &str, password: &str) -> StatusCode {
    let mut c = client(proxy).await;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let req = Request::get(url)
        .header("proxy-authorization", format!("Basic {auth}"))
        .body(Default::default())
        .unwrap();
    let resp = c.send_request(req).await.unwrap();
    let status = resp.status();
    body_text(resp).await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_on_a_directory_group_follows_ldap_membership() {
    let slapd = tokio::task::spawn_blocking(Slapd::start).await.unwrap();
    let origin = origin().await;
    let state = state_dir();
    let text = format!(
        r#"
[proxy]
listen = "127.0.0.1:0"
[upstream]
hosts = {{ "games.example" = "127.0.0.1" }}
[identity]
mode = "basic"
sources = ["ldap"]
[identity.ldap]
url = "{url}"
bind_dn = "uid={{user}},{PEOPLE}"
group_base = "{GROUPS}"
[coach]
secret_file = "{s}/coach-secret"
[journal]
path = "{s}/journal.db"
[[category]]
name = "games"
hosts = ["games.example"]
[[rule]]
name = "library may play"
category = "games"
groups = ["library"]
action = "allow"
[[rule]]
name = "no games"
category = "games"
action = "block"
"#,
        url = slapd.url,
        s = state.display()
    );
    let config = Config::parse(&state.join("signpost.toml"), &text).unwrap();
    let p = proxy(config).await;
    let url = format!("http://games.example:{}/hello", origin.addr.port());

    // The fixture puts alice in `library` and `staff`, bob only in `staff`.
    assert_eq!(
        fetch(p.addr, &url, "alice", "alice-pw").await,
        StatusCode::OK
    );
    assert_eq!(
        fetch(p.addr, &url, "bob", "bob-pw").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        fetch(p.addr, &url, "alice", "wrong").await,
        StatusCode::PROXY_AUTHENTICATION_REQUIRED
    );
    assert_eq!(
        origin.seen().len(),
        1,
        "only alice's request reached the origin"
    );
    drop(slapd);
}
