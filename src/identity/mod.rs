//! Identity: who is behind a request when the organisation wants people, not addresses —
//! proxy authentication against an htpasswd file and/or a directory (LDAP), with a cache
//! of verified logins (a salted hash, never the password) and limits on failed ones.

pub mod htpasswd;
pub mod ldap;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::HeaderValue;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::time::Instant;

use crate::config::{CredentialSource, IdentityConfig};
use htpasswd::Htpasswd;
use ldap::{Ldap, LdapError};

/// A person the proxy has verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    /// Directory groups (LDAP); `[group.NAME] users` are resolved by the policy.
    pub groups: Vec<String>,
}

/// Why a request could not be tied to a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no proxy credentials were sent")]
    Missing,
    #[error("the proxy credentials are malformed")]
    Malformed,
    #[error("wrong user name or password for `{0}`")]
    Rejected(String),
    #[error("too many failed logins; try again later")]
    RateLimited,
    #[error("the directory could not be asked: {0}")]
    Unavailable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Htpasswd(#[from] htpasswd::HtpasswdError),
    #[error(transparent)]
    Ldap(#[from] LdapError),
    #[error("[identity] mode = \"basic\" needs a credential source: set `htpasswd` or `[identity.ldap]`")]
    NoSource,
    #[error("the random source failed")]
    Random,
}

struct Cached {
    /// HMAC of user and password under the per-process key.
    tag: Vec<u8>,
    groups: Vec<String>,
    until: Instant,
}

/// Verifies proxy credentials.
pub struct Authenticator {
    realm: String,
    sources: Vec<CredentialSource>,
    htpasswd: Option<Htpasswd>,
    ldap: Option<Ldap>,
    /// A per-process key: cached logins are HMACs of user and password under it.
    key: hmac::Key,
    cache_for: Duration,
    cache: Mutex<HashMap<String, Cached>>,
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Authenticator {
    pub fn new(cfg: &IdentityConfig) -> Result<Arc<Authenticator>, IdentityError> {
        let htpasswd = cfg.htpasswd.as_deref().map(Htpasswd::open).transpose()?;
        let ldap = cfg.ldap.as_ref().map(Ldap::new).transpose()?;
        if htpasswd.is_none() && ldap.is_none() {
            return Err(IdentityError::NoSource);
        }
        let mut salt = [0u8; 32];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| IdentityError::Random)?;
        Ok(Arc::new(Authenticator {
            realm: cfg.realm.clone(),
            sources: cfg.sources.clone(),
            htpasswd,
            ldap,
            key: hmac::Key::new(hmac::HMAC_SHA256, &salt),
            cache_for: cfg.cache_for.0,
            cache: Mutex::default(),
            max_failures: cfg.max_failures.get(),
            window: cfg.failure_window.0,
            failures: Mutex::default(),
        }))
    }

    /// The `Proxy-Authenticate` challenge.
    pub fn challenge(&self) -> HeaderValue {
        let realm: String = self
            .realm
            .chars()
            .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
            .collect();
        HeaderValue::from_str(&format!("Basic realm=\"{realm}\", charset=\"UTF-8\""))
            .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"Signpost\""))
    }

    /// Verifies a `Proxy-Authorization` header from `client`.
    pub async fn verify(
        &self,
        header: Option<&HeaderValue>,
        client: IpAddr,
    ) -> Result<Identity, AuthFailure> {
        let header = header.ok_or(AuthFailure::Missing)?;
        let (user, password) = parse_basic(header).ok_or(AuthFailure::Malformed)?;
        let now = Instant::now();
        let message = login_message(&user, &password);
        if let Some(groups) = self.cached(&user, &message, now) {
            return Ok(Identity { user, groups });
        }
        let by_client = format!("client:{client}");
        let by_user = format!("user:{user}");
        if self.limited(&by_client, now) || self.limited(&by_user, now) {
            tracing::warn!(client = %client, user, "login refused: too many failures");
            return Err(AuthFailure::RateLimited);
        }
        match self.check(&user, &password).await {
            Ok(groups) => {
                let tag = hmac::sign(&self.key, &message).as_ref().to_vec();
                self.remember(&user, tag, groups.clone(), now);
                Ok(Identity { user, groups })
            }
            Err(AuthFailure::Rejected(u)) => {
                self.fail(&by_client, now);
                self.fail(&by_user, now);
                tracing::info!(client = %client, user = u, "login failed");
                Err(AuthFailure::Rejected(u))
            }
            Err(other) => Err(other),
        }
    }

    fn cached(&self, user: &str, message: &[u8], now: Instant) -> Option<Vec<String>> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = cache.get(user)?;
        // hmac::verify recomputes the tag and compares in constant time.
        let same = hmac::verify(&self.key, message, &entry.tag).is_ok();
        (same && entry.until > now).then(|| entry.groups.clone())
    }

    fn remember(&self, user: &str, tag: Vec<u8>, groups: Vec<String>, now: Instant) {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() > 100_000 {
            cache.retain(|_, c| c.until > now);
        }
        cache.insert(
            user.to_string(),
            Cached {
                tag,
                groups,
                until: now + self.cache_for,
            },
        );
    }

    fn limited(&self, key: &str, now: Instant) -> bool {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(times) = failures.get_mut(key) else {
            return false;
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            times.pop_front();
        }
        times.len() >= self.max_failures
    }

    fn fail(&self, key: &str, now: Instant) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() > 100_000 {
            let window = self.window;
            failures.retain(|_, t| t.back().is_some_and(|t| now.duration_since(*t) <= window));
        }
        failures.entry(key.to_string()).or_default().push_back(now);
    }

    /// Asks each source in order; the first that knows the user decides.
    async fn check(&self, user: &str, password: &str) -> Result<Vec<String>, AuthFailure> {
        if password.is_empty() {
            return Err(AuthFailure::Rejected(user.to_string()));
        }
        let mut unavailable = None;
        for source in &self.sources {
            match source {
                CredentialSource::Htpasswd => {
                    let Some(hash) = self.htpasswd.as_ref().and_then(|h| h.hash_for(user)) else {
                        continue;
                    };
                    let password = password.to_string();
                    // bcrypt is deliberately slow: off the async workers.
                    let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
                        .await
                        .map(|r| r.unwrap_or(false))
                        .unwrap_or(false);
                    return if ok {
                        Ok(Vec::new())
                    } else {
                        Err(AuthFailure::Rejected(user.to_string()))
                    };
                }
                CredentialSource::Ldap => {
                    let Some(ldap) = &self.ldap else { continue };
                    match ldap.authenticate(user, password).await {
                        Ok(groups) => return Ok(groups),
                        Err(LdapError::BadCredentials) => {
                            return Err(AuthFailure::Rejected(user.to_string()))
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "LDAP is unavailable");
                            unavailable = Some(e.to_string());
                        }
                    }
                }
            }
        }
        match unavailable {
            Some(why) => Err(AuthFailure::Unavailable(why)),
            None => Err(AuthFailure::Rejected(user.to_string())),
        }
    }
}

/// What a verified login's cache entry is an HMAC of.
fn login_message(user: &str, password: &str) -> Vec<u8> {
    let mut msg = Vec::with_capacity(user.len() + password.len() + 1);
    msg.extend_from_slice(user.as_bytes());
    msg.push(0);
    msg.extend_from_slice(password.as_bytes());
    msg
}

/// `Basic base64(user:password)`.
fn parse_basic(header: &HeaderValue) -> Option<(String, String)> {
    let text = header.to_str().ok()?;
    let (scheme, rest) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    if user.is_empty() || user.chars().any(char::is_control) {
        return None;
    }
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_parse() {
        let h = HeaderValue::from_static("Basic YWxpY2U6cHc6d2l0aDpjb2xvbnM=");
        assert_eq!(
            parse_basic(&h),
            Some(("alice".into(), "pw:with:colons".into()))
        );
        assert_eq!(parse_basic(&HeaderValue::from_static("Bearer x")), None);
        assert_eq!(parse_basic(&HeaderValue::from_static("Basic !!!")), None);
        assert_eq!(
            parse_basic(&HeaderValue::from_static("Basic OnB3")),
            None,
            "empty user"
        );
    }
}
