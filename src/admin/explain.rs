//! `/explain`: the same account of a decision that `signpost explain` prints.

use std::net::IpAddr;

use http::StatusCode;
use jiff::Timestamp;
use minijinja::context;
use serde::Serialize;

use super::body::Resp;
use super::pages::parse_time;
use super::State;
use crate::net::Host;
use crate::policy::{self, Policy};

/// Explains how `policy` would decide a request for `url`, as `signpost explain` does:
/// an `https://` URL is judged as a CONNECT tunnel (host only); others by method and path.
pub fn explain_text(
    policy: &Policy,
    url: &str,
    client: IpAddr,
    user: Option<&str>,
    at: Timestamp,
    method: &str,
) -> Result<String, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let host = uri
        .host()
        .and_then(|h| Host::parse(h).ok())
        .ok_or_else(|| {
            format!("`{url}` has no valid host; write it like https://www.example.org/")
        })?;
    let tunnel = uri.scheme_str() == Some("https");
    let method = if tunnel {
        http::Method::CONNECT
    } else {
        http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("`{method}` is not an HTTP method"))?
    };
    let request = policy::Request {
        host: &host,
        path: (!tunnel).then(|| uri.path()),
        method: &method,
        client,
        user,
        // As `signpost explain`: directory groups are not looked up.
        groups: &[],
    };
    let explanation = policy::explain(policy, &request, at);
    let mut out = explanation.render(policy, &request, url);
    if tunnel {
        out.push_str(
            "(https: judged by host only, as a CONNECT tunnel; the path is not visible)\n",
        );
    }
    Ok(out)
}

#[derive(Debug, Default, Serialize)]
struct Form {
    url: String,
    client: String,
    user: String,
    at: String,
    method: String,
}

pub fn page(state: &State, csrf: Option<&str>, raw_query: Option<&str>) -> Resp {
    let mut f = Form {
        client: "127.0.0.1".into(),
        method: "GET".into(),
        ..Form::default()
    };
    for (k, v) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
        let v = v.trim().to_string();
        match &*k {
            "url" => f.url = v,
            "client" if !v.is_empty() => f.client = v,
            "user" => f.user = v,
            "at" => f.at = v,
            "method" if !v.is_empty() => f.method = v,
            _ => {}
        }
    }
    let mut status = StatusCode::OK;
    let mut error = None;
    let mut output = None;
    if !f.url.is_empty() {
        let now = state.ctx.clock.now();
        let result = (|| {
            let client: IpAddr = f
                .client
                .parse()
                .map_err(|_| format!("“{}” is not an IP address", f.client))?;
            let at = if f.at.is_empty() {
                now
            } else {
                parse_time(&f.at, now)?
            };
            let user = (!f.user.is_empty()).then_some(f.user.as_str());
            let policy = state.ctx.policy.load();
            explain_text(&policy, &f.url, client, user, at, &f.method)
        })();
        match result {
            Ok(text) => output = Some(text),
            Err(e) => {
                status = StatusCode::BAD_REQUEST;
                error = Some(e);
            }
        }
    }
    state.pages.page(
        status,
        "explain.html",
        context! { nav => "explain", csrf, f, error, output },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn explains_like_the_command() {
        let text = r#"
[[category]]
name = "social"
hosts = ["ning.com"]

[[rule]]
name = "coach social"
category = "social"
action = "coach"
"#;
        let config = Config::parse(std::path::Path::new("t.toml"), text).unwrap();
        let policy = Policy::compile(&config).unwrap();
        let at: Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        let out = explain_text(&policy, "https://www.ning.com/x", ip, None, at, "GET").unwrap();
        assert!(out.contains("Decision: coach"), "{out}");
        assert!(out.contains("CONNECT tunnel"));
        let out =
            explain_text(&policy, "http://example.org/", ip, Some("ann"), at, "post").unwrap();
        assert!(out.contains("Decision: allow"), "{out}");
        assert!(explain_text(&policy, "not a url", ip, None, at, "GET").is_err());
        assert!(explain_text(&policy, "http://x.org/", ip, None, at, "B@D").is_err());
    }
}
