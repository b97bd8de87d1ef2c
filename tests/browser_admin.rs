//! The review dashboard in a real headless Chromium: sign in, see the overview, filter the
//! decision log — against the real binary, with decisions made through its proxy.

mod common;

use argon2::password_hash::PasswordHasher;
use common::browser::Browser;
use common::*;
use serde_json::json;

#[test]
fn chromium_signs_in_sees_the_overview_and_filters_the_decision_log() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = rt.block_on(origin());
    let state = state_dir();
    // Cheap argon2 costs keep the debug build quick; the format is the real one.
    let params = argon2::Params::new(256, 1, 1, None).unwrap();
    let hash = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_with_salt(b"correct horse", b"signpost-browser-salt")
        .unwrap()
        .to_string();
    let cfg = state.join("signpost.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[proxy]
listen = "127.0.0.1:0"
[upstream]
hosts = {{ "news.example" = "127.0.0.1", "evil.example" = "127.0.0.1" }}
[admin]
listen = "127.0.0.1:0"
password_hash = "{hash}"
[coach]
secret_file = "{s}/coach-secret"
[journal]
path = "{s}/journal.db"
[[category]]
name = "malware"
hosts = ["evil.example"]
[[rule]]
name = "malware"
category = "malware"
action = "block"
"#,
            s = state.display()
        ),
    )
    .unwrap();
    let mut signpost = Binary::run(&cfg, false);
    let [proxy, admin] = signpost.listening(["signpost is listening", "dashboard is listening"]);

    // Some decisions: two forwarded, one blocked.
    let port = origin.addr.port();
    rt.block_on(async {
        let mut c = client(proxy).await;
        for url in [
            format!("http://news.example:{port}/hello"),
            format!("http://news.example:{port}/hello"),
            format!("http://evil.example:{port}/x"),
        ] {
            body_text(c.send_request(get(&url)).await.unwrap()).await;
            c.ready().await.unwrap();
        }
    });

    let pac = format!("http://{proxy}/proxy.pac");
    let base = format!("http://{admin}");
    let steps = json!([
        {"goto": format!("{base}/")},
        {"expectText": "Sign in to the Signpost dashboard"},
        {"fill": ["#password", "correct horse"]},
        {"click": "button:has-text(\"Sign in\")"},
        {"expectText": "Decisions"},
        {"screenshot": state.join("overview.png").display().to_string()},
        {"goto": format!("{base}/decisions")},
        {"fill": ["#f-host", "evil.example"]},
        {"click": "button:has-text(\"Show\")"},
        {"expectText": "evil.example"},
    ]);
    let result = Browser::new().run(&pac, steps);
    assert!(result.iter().all(|l| l["ok"] == true), "{result:#?}");
    let last_url = result.last().unwrap()["url"].as_str().unwrap().to_string();
    assert!(last_url.contains("host=evil.example"), "{last_url}");

    let overview = std::fs::metadata(state.join("overview.png")).unwrap();
    assert!(overview.len() > 1000, "the overview rendered");

    signpost.signal("TERM");
    assert_eq!(signpost.wait().code(), Some(0));
}
