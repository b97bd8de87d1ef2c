//! Hop-by-hop headers (RFC 9110 §7.6.1) and the `Via` header (§7.6.3).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never the message, and so stop at a proxy.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Is this a WebSocket handshake (`Connection: upgrade` and `Upgrade: websocket`)?
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    tokens(headers, header::CONNECTION).any(|t| t.eq_ignore_ascii_case("upgrade"))
        && tokens(headers, header::UPGRADE).any(|p| p.eq_ignore_ascii_case("websocket"))
}

/// Removes hop-by-hop headers, including every header `Connection` names. When relaying a
/// WebSocket upgrade, `Upgrade` is kept and `Connection: upgrade` restated.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, relaying_upgrade: bool) {
    let named: Vec<HeaderName> = tokens(headers, header::CONNECTION)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        if !(relaying_upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        if !(relaying_upgrade && name == "upgrade") {
            headers.remove(name);
        }
    }
    if relaying_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The items of a comma-separated list header, across all its lines, trimmed; empty
/// items are skipped.
pub fn tokens(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Appends this proxy to `Via`.
pub fn add_via(headers: &mut HeaderMap, via: &HeaderValue) {
    headers.append(header::VIA, via.clone());
}

/// Has this request already passed through this proxy?
pub fn has_our_via(headers: &HeaderMap, via: &HeaderValue) -> bool {
    let Ok(ours) = via.to_str() else { return false };
    tokens(headers, header::VIA).any(|entry| entry.eq_ignore_ascii_case(ours))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn removes_listed_and_named_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic eDp5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("upgrade", "h2c"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn websocket_upgrade_is_kept_when_relaying() {
        let mut h = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert!(is_websocket_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert!(!is_websocket_upgrade(&map(&[("upgrade", "websocket")])));
    }

    #[test]
    fn via_loop_detection() {
        let ours = HeaderValue::from_static("1.1 proxy.example (signpost)");
        let mut h = map(&[("via", "1.0 fred, 1.1 other")]);
        assert!(!has_our_via(&h, &ours));
        add_via(&mut h, &ours);
        assert!(has_our_via(&h, &ours));
    }
}
