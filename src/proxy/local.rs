//! The proxy's own pages: PAC/WPAD, health, and a page about the proxy. Never forwarded.

use http::Method;

use super::Shared;
use crate::respond::LocalPage;

/// Which page a request addressed to the proxy gets.
pub fn page(shared: &Shared, method: &Method, path: &str) -> LocalPage {
    if method != Method::GET && method != Method::HEAD {
        return LocalPage::MethodNotAllowed;
    }
    match path {
        "/proxy.pac" | "/wpad.dat" => LocalPage::Pac(shared.pac.clone()),
        "/healthz" => LocalPage::Health,
        "/" => LocalPage::Index {
            pac_url: shared.pac_url.clone(),
            ca_name: shared.minter.as_ref().map(|m| m.ca().common_name()),
        },
        "/signpost-ca.pem" => match &shared.minter {
            Some(m) => LocalPage::CaCert(bytes::Bytes::from(m.ca().cert_pem.clone())),
            None => LocalPage::NotFound {
                path: "/signpost-ca.pem (no interception CA is configured)".into(),
            },
        },
        other => LocalPage::NotFound {
            path: other.chars().take(200).collect(),
        },
    }
}
