//! Education first: the interstitial's inputs (guidance, tokens) and the acknowledgement
//! store. The proxy decides when to coach; `respond` renders the page.

pub mod guidance;
pub mod store;
pub mod token;

use http::HeaderMap;

pub use store::{Ack, AckStore};
pub use token::{TokenError, Tokens};

/// The path the interstitial's form posts to, on the coached site's own origin.
pub const ACKNOWLEDGE_PATH: &str = "/.well-known/signpost/acknowledge";

/// Is this request a top-level navigation (a page load a person will see)?
///
/// `Sec-Fetch-Mode: navigate` says so directly; without any `Sec-Fetch-*` header (older
/// browsers, plain HTTP in some browsers) an `Accept` that asks for HTML is taken as one.
pub fn is_navigation(headers: &HeaderMap) -> bool {
    if let Some(mode) = headers.get("sec-fetch-mode") {
        return mode.as_bytes().eq_ignore_ascii_case(b"navigate");
    }
    let any_fetch_metadata = headers.keys().any(|k| k.as_str().starts_with("sec-fetch-"));
    !any_fetch_metadata
        && headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn navigations_and_subresources() {
        assert!(is_navigation(&headers(&[
            ("sec-fetch-mode", "navigate"),
            ("accept", "*/*")
        ])));
        assert!(!is_navigation(&headers(&[
            ("sec-fetch-mode", "no-cors"),
            ("accept", "text/html")
        ])));
        assert!(is_navigation(&headers(&[(
            "accept",
            "text/html,application/xhtml+xml"
        )])));
        assert!(!is_navigation(&headers(&[(
            "accept",
            "image/avif,image/webp"
        )])));
        assert!(!is_navigation(&headers(&[
            ("sec-fetch-dest", "image"),
            ("accept", "text/html")
        ])));
        assert!(!is_navigation(&headers(&[])));
    }
}
