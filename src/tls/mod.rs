//! TLS interception, used only to show a guidance page for an HTTPS site.
//!
//! Signpost never decrypts traffic it forwards. When policy decides that an HTTPS site
//! gets a page (block, coach, warn), the proxy answers the CONNECT itself, finishes the
//! TLS handshake with a certificate minted on the spot for the requested host, and serves
//! the page over HTTP/1.1. For that the browsers must trust a local interception CA.
//!
//! | piece | module | what it does |
//! |---|---|---|
//! | the CA | [`ca`] | `signpost ca init` writes `ca.pem` / `ca-key.pem`; [`Ca::load`] reads them back |
//! | leaves | [`leaf`] | [`Minter`] signs a short-lived leaf per host and caches its rustls `ServerConfig` |
//!
//! The CA is ECDSA P-256, valid for ten years and limited to path length 0, so it can sign
//! leaves but no intermediate CAs. Every leaf shares one ECDSA P-256 key generated at
//! start-up (never written to disk), lives seven days and is re-minted after one day in the
//! cache.

pub mod ca;
pub mod leaf;

pub use ca::{Ca, CaError, CaFiles};
pub use leaf::{MintError, Minter};
