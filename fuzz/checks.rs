//! What each fuzz target feeds and asserts. Shared, word for word, by the cargo-fuzz
//! targets (`fuzz/fuzz_targets/*.rs`) and by `tests/fuzz_regressions.rs`, which replays
//! every saved crashing input through the same function: a regression input is checked
//! exactly as the fuzzer checked it.
//!
//! Each function must never panic on any input; a panic is either a bug in Signpost or a
//! broken invariant asserted here (the message says which).

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::Path;

use http::{Method, Uri};
use signpost::config::{Config, DirectEntry, ProxyEndpoint};
use signpost::net::Host;
use signpost::policy::domains::{DomainIndex, SourceRef};
use signpost::policy::lists::{host_entry, HostEntry};
use signpost::policy::Policy;
use signpost::proxy::target::{self, Origin, SelfAddr, Target};

/// With `FUZZ_SKIP_OPEN` set, the assertions that the open findings
/// (`tests/fuzz-regressions/*/open-*`) break are skipped, so that a run can look past them.
fn skip_open() -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("FUZZ_SKIP_OPEN").is_some())
}

/// The proxy as the target parsers see it: a name, a port and both kinds of address.
fn me() -> SelfAddr {
    SelfAddr {
        hostname: Some("signpost.example.org".into()),
        port: 3128,
        local_ip: "10.0.0.1".parse().unwrap(),
        listen_ip: "0.0.0.0".parse().unwrap(),
    }
}

/// What a parsed origin must satisfy wherever the proxy goes on to use it.
fn check_origin(o: &Origin) {
    assert_ne!(o.port, 0, "port 0 accepted: {o:?}");
    // Pages, logs and the journal print the host; reading it back gives the same host.
    let shown = o.host.to_string();
    let open_ipv4_finding = matches!(o.host, Host::Name(_)) && shown.parse::<IpAddr>().is_ok();
    if skip_open() && open_ipv4_finding {
        return;
    }
    assert_eq!(
        Host::parse(&shown).as_ref(),
        Ok(&o.host),
        "the host does not survive printing and parsing: {shown:?}"
    );
    if let Host::Name(n) = &o.host {
        assert!(
            !n.is_empty()
                && n.len() <= 253
                && n.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'-' | b'_' | b'.')),
            "a host name with characters a page or PAC file must not carry: {n:?}"
        );
    }
    // A host whose last label is a number is an IPv4 address to resolvers (inet_aton takes
    // `127.1`, `2130706433`, `0x7f.1`) and to browsers (the WHATWG URL "ends in a number"
    // rule): taken as a name, it escapes the proxy's own-address check and IP entries.
    if let Host::Name(n) = &o.host {
        let last = n.rsplit('.').next().unwrap_or_default();
        let hex = last
            .strip_prefix("0x")
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        let numeric = hex || (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()));
        if skip_open() && numeric {
            return;
        }
        assert!(
            !numeric,
            "an IPv4 address in another spelling was taken as a host name: {n:?}"
        );
    }
    // `upstream::connect` writes the origin into a URI for the connector.
    let uri = format!("http://{}:{}/", o.host, o.port);
    assert!(
        uri.parse::<Uri>().is_ok(),
        "the origin cannot be written as a URI: {uri:?}"
    );
}

fn check_error(e: &target::TargetError) {
    let text = e.to_string();
    assert!(
        !text.chars().any(char::is_control),
        "an error page would carry control characters: {text:?}"
    );
}

/// Request targets of ordinary methods: `http::Uri` from the fuzz bytes (as hyper builds
/// it from the request line), then `target::parse`.
pub fn target(data: &[u8]) {
    let Ok(uri) = Uri::try_from(data) else {
        return;
    };
    for method in [Method::GET, Method::POST, Method::OPTIONS] {
        match target::parse(&method, &uri, &me()) {
            Ok(Target::Http(o)) => {
                check_origin(&o);
                let scheme = uri.scheme_str().expect("absolute-form has a scheme");
                assert!(
                    scheme.eq_ignore_ascii_case("http"),
                    "scheme {scheme:?} forwarded"
                );
                let authority = uri.authority().expect("absolute-form has an authority");
                assert!(
                    !authority.as_str().contains('@'),
                    "user-info forwarded: {uri}"
                );
                assert_eq!(
                    o.port,
                    authority.port_u16().unwrap_or(80),
                    "the port changed: {uri}"
                );
            }
            Ok(Target::Local { path }) => assert_eq!(path, uri.path(), "{uri}"),
            Ok(Target::Connect(o)) => panic!("{method} {uri} became a tunnel to {o}"),
            Err(e) => check_error(&e),
        }
    }
}

/// CONNECT authorities: the bytes as the request target of a CONNECT.
pub fn connect(data: &[u8]) {
    let Ok(uri) = Uri::try_from(data) else {
        return;
    };
    match target::parse(&Method::CONNECT, &uri, &me()) {
        Ok(Target::Connect(o)) => {
            check_origin(&o);
            assert!(uri.scheme().is_none(), "CONNECT with a scheme: {uri}");
            let authority = uri.authority().expect("a tunnel has an authority");
            assert!(
                !authority.as_str().contains('@'),
                "CONNECT with user-info: {uri}"
            );
            assert_eq!(
                Some(o.port),
                authority.port_u16(),
                "the port changed: {uri}"
            );
        }
        Ok(other) => panic!("CONNECT {uri} became {other:?}"),
        Err(e) => check_error(&e),
    }
}

/// Config parsing, then (when the config reads no files) compiling the policy and
/// classifying a few requests with it.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/nonexistent/fuzz/signpost.toml");
    let config = match Config::parse(path, text) {
        Ok(c) => c,
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a failed parse reported no error");
            let lines = text.split('\n').count();
            for e in &errors.0 {
                let _ = e.to_string();
                if let Some(p) = e.position {
                    assert!(
                        p.line >= 1 && p.line <= lines && p.column >= 1,
                        "error position {p:?} outside the {lines}-line text: {e}"
                    );
                }
            }
            return;
        }
    };
    // List folders and guidance files would be read from disk: not the parser's business.
    let reads_files = config.categories.iter().any(|c| {
        !c.lists.is_empty()
            || c.guidance
                .as_deref()
                .is_some_and(signpost::coach::guidance::is_file_reference)
    });
    if reads_files {
        return;
    }
    let Ok(policy) = Policy::compile(&config) else {
        return;
    };
    let at: jiff::Timestamp = "2026-11-23T12:30:00Z".parse().unwrap();
    for host in ["www.ning.com", "example.org", "10.1.2.3", "a.b.c.d.e"] {
        let host = Host::parse(host).unwrap();
        for path in [None, Some("/forum/x")] {
            let req = signpost::policy::Request {
                host: &host,
                path,
                method: &Method::GET,
                client: "10.0.0.5".parse().unwrap(),
                user: None,
                groups: &[],
            };
            let c = signpost::policy::classify(&policy, &req, at);
            if let Some(rule) = c.rule {
                assert!(rule < policy.rules.len(), "rule index out of range");
            }
            if let Some(cat) = c.category {
                assert!(policy.category(cat).is_some(), "category id out of range");
            }
        }
    }
}

/// The domain index against a plain model. Lines starting with `?` are queries; other
/// lines are entries, normalised by `lists::host_entry` (and, when it refuses them, inserted
/// raw: the index must hold any string without panicking). Line `i` goes to category
/// `i % 3`.
pub fn domains(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut index = DomainIndex::default();
    // (name, category, first line), in insertion order: what the index must answer.
    let mut model: Vec<(String, u16, u32)> = Vec::new();
    let mut queries: Vec<String> = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let i = i as u32;
        if let Some(q) = line.strip_prefix('?') {
            queries.push(q.to_string());
            if let Ok(h) = Host::parse(q.trim()) {
                queries.push(match h {
                    Host::Name(n) => n,
                    Host::Ip(ip) => ip.to_string(),
                });
            }
            continue;
        }
        let cat = (i % 3) as u16;
        let name = match host_entry(line) {
            Ok(HostEntry::Name(n)) => {
                assert_eq!(
                    host_entry(&n),
                    Ok(HostEntry::Name(n.clone())),
                    "host_entry is not idempotent on {line:?}"
                );
                assert!(
                    n.len() <= 253 || n.parse::<IpAddr>().is_ok(),
                    "an over-long name passed: {n:?}"
                );
                n
            }
            Ok(HostEntry::Glob(g)) => {
                if skip_open() && g.ends_with('.') {
                    continue;
                }
                assert_eq!(
                    host_entry(&g),
                    Ok(HostEntry::Glob(g.clone())),
                    "host_entry is not idempotent on the pattern {line:?}"
                );
                continue;
            }
            Err(_) => line.to_string(),
        };
        let inserted = index.insert(&name, cat, SourceRef { file: 0, line: i });
        assert_eq!(
            inserted,
            name.len() <= 255,
            "insert({name:?}) answered {inserted}"
        );
        if inserted && !model.iter().any(|(n, c, _)| *n == name && *c == cat) {
            model.push((name.clone(), cat, i));
        }
        queries.push(name.clone());
        queries.push(format!("sub.{name}"));
    }
    for q in &queries {
        for exact in [false, true] {
            let mut got = Vec::new();
            index.lookup(q, exact, |name, hit| {
                got.push((name.to_string(), hit.category, hit.source.line))
            });
            let mut want = Vec::new();
            let mut rest = q.as_str();
            loop {
                want.extend(model.iter().filter(|(n, _, _)| n == rest).cloned());
                if exact {
                    break;
                }
                match rest.find('.') {
                    Some(dot) => rest = &rest[dot + 1..],
                    None => break,
                }
            }
            assert_eq!(got, want, "lookup({q:?}, exact = {exact})");
        }
    }
}

/// The PAC generator: `pac.direct` entries from lines, and proxies from lines starting with
/// `>`, each parsed as the config parses them. The generated file's data lines must be
/// valid JavaScript literals holding exactly what went in, and nothing else in the file may
/// change.
pub fn pac(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut direct = Vec::new();
    let mut proxies = Vec::new();
    for line in text.split('\n') {
        if let Some(p) = line.strip_prefix('>') {
            if let Ok(e) = p.parse::<ProxyEndpoint>() {
                proxies.push(e);
            }
        } else if let Ok(e) = line.parse::<DirectEntry>() {
            direct.push(e);
        }
    }
    let out = signpost::pac::generate(&direct, &proxies);
    assert!(
        out.is_ascii(),
        "the PAC file carries non-ASCII text (U+2028 ends a JS string)"
    );
    check_js_strings(&out);

    let data_line = |name: &str| -> serde_json::Value {
        let prefix = format!("var {name} = ");
        let line = out
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{out}"));
        let literal = line[prefix.len()..]
            .strip_suffix(';')
            .unwrap_or_else(|| panic!("`{line}` does not end with `;`"));
        serde_json::from_str(literal).unwrap_or_else(|e| panic!("`{line}` is not a literal: {e}"))
    };
    let strings = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("an array")
            .iter()
            .map(|s| s.as_str().expect("a string").to_string())
            .collect()
    };
    let domains: Vec<String> = direct
        .iter()
        .filter_map(|d| match d {
            DirectEntry::Domain(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    let patterns: Vec<String> = direct
        .iter()
        .filter_map(|d| match d {
            DirectEntry::Pattern(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    let (v4, v6): (Vec<_>, Vec<_>) = direct
        .iter()
        .filter_map(|d| match d {
            DirectEntry::Range(r) => Some(r.0.network()),
            _ => None,
        })
        .partition(IpAddr::is_ipv4);
    assert_eq!(strings(data_line("signpostDirectDomains")), domains);
    assert_eq!(strings(data_line("signpostDirectPatterns")), patterns);
    let v4_lit = data_line("signpostDirectV4");
    assert_eq!(v4_lit.as_array().unwrap().len(), v4.len(), "{v4_lit}");
    let v6_lit = data_line("signpostDirectV6");
    assert_eq!(v6_lit.as_array().unwrap().len(), v6.len(), "{v6_lit}");
    let route = proxies
        .iter()
        .map(|p| format!("PROXY {p}"))
        .collect::<Vec<_>>()
        .join("; ");
    assert_eq!(
        data_line("signpostProxies").as_str(),
        Some(route.as_str()),
        "the proxy route"
    );
    for p in &proxies {
        let shown = p.to_string();
        assert!(
            !shown.contains(';') && !shown.contains(char::is_whitespace),
            "a proxy that breaks the PAC route syntax: {shown:?}"
        );
    }

    // Everything but the five data lines is the template, untouched.
    let empty = signpost::pac::generate(&[], &[]);
    let code = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| {
                !l.starts_with("var signpostDirect") && !l.starts_with("var signpostProxies")
            })
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        code(&out),
        code(&empty),
        "text outside the data lines changed"
    );
}

/// A tiny JavaScript lexer, enough for the generated file: every string literal closes
/// on its own line, and comments and regular expressions are skipped.
fn check_js_strings(js: &str) {
    for (n, line) in js.lines().enumerate() {
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'/' if bytes.get(i + 1) == Some(&b'/') => break,
                // A regular expression literal in the template: skip to its closing slash.
                b'/' if line[..i].trim_end().ends_with(['=', '(', ',']) => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'/' {
                        if bytes[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                    assert!(i < bytes.len(), "line {}: unclosed regex: {line}", n + 1);
                }
                q @ (b'"' | b'\'') => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != q {
                        if bytes[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                    assert!(
                        i < bytes.len(),
                        "line {}: a string literal does not close: {line}",
                        n + 1
                    );
                }
                _ => {}
            }
            i += 1;
        }
    }
}
