//! Signpost: a forward web proxy for office networks that teaches instead of blocking.
//!
//! The house, in the order a request walks through it:
//!
//! | step | module | what it does |
//! |---|---|---|
//! | config | [`config`] | TOML schema, defaults, errors with file:line:column |
//! | accept, gate | [`proxy`] (`conn`, `io`) | listener, client allow-list, connection limits, timeouts, parking idle connections |
//! | read request | [`proxy::target`] | origin, CONNECT tunnel, or the proxy's own pages |
//! | act | [`proxy`] (`forward`, `tunnel`, `splice`, `local`) | forward HTTP, tunnel CONNECT (zero-copy on Linux), serve own pages |
//! | respond | [`respond`] | the one place decisions and errors become HTTP responses |
//! | reach origins | [`proxy::upstream`] | hosts table, hosts file, DNS, pooled client |
//! | PAC | [`pac`] | the auto-configuration file browsers load |
//!
//! Shared vocabulary (host names, address ranges) is in [`net`].

#![forbid(unsafe_code)]

pub mod admin;
pub mod clock;
pub mod coach;
pub mod config;
pub mod identity;
pub mod journal;
pub mod metrics;
pub mod net;
pub mod pac;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod respond;
pub mod tls;
