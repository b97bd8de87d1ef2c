//! Who may use the dashboard: a password (checked against an argon2 hash) or an access
//! token from the environment, sessions held in memory, CSRF tokens, and a per-address
//! limit on failed attempts.
//!
//! Secrets are never compared with `==`: both sides go through an HMAC with a key made
//! at start-up, and the tags are compared in constant time by `ring`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::HeaderMap;
use jiff::{SignedDuration, Timestamp};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};

/// The session cookie's name.
pub const COOKIE: &str = "signpost_admin";
/// Failed attempts an address may make within [`FAILURE_WINDOW`] before it is refused.
pub const MAX_FAILURES: usize = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(600);
/// Sessions kept at most; the oldest go first beyond this.
const MAX_SESSIONS: usize = 10_000;
/// Addresses whose failures are remembered at most.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("admin.password_hash is not an argon2 PHC string such as \"$argon2id$v=19$m=19456,t=2,p=1$…\": {0}")]
    PasswordHash(String),
    #[error("cannot get random bytes from the operating system")]
    Random,
}

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// Must come back in every form this session posts.
    pub csrf: String,
    pub expires: Timestamp,
}

/// How a request proved who it is, if it did.
#[derive(Debug, Clone)]
pub enum Identity {
    Session(Session),
    /// `Authorization: Bearer` with the configured token (scripts; no CSRF applies, as
    /// browsers never add that header by themselves).
    Bearer,
    Anonymous,
    /// A bearer token was sent and it was wrong.
    BadToken,
    /// Too many failures from this address lately.
    Limited,
}

pub struct Auth {
    /// The password's PHC string, checked to parse at start-up.
    password: Option<String>,
    /// HMAC of the access token under `key`.
    token_tag: Option<Vec<u8>>,
    /// The variable named by `admin.token_env`, for the set-up page when it is empty.
    pub token_env: Option<String>,
    key: hmac::Key,
    rng: SystemRandom,
    lifetime: Duration,
    /// SHA-256 of the session id → session. Hashing the id keeps lookups from leaking
    /// anything about live ids through timing.
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<HashMap<IpAddr, Vec<Timestamp>>>,
}

impl Auth {
    /// `token` is the value of the variable `token_env` names, when set and not empty.
    pub fn new(
        password_hash: Option<&str>,
        token: Option<&str>,
        token_env: Option<String>,
        lifetime: Duration,
    ) -> Result<Auth, AuthError> {
        let password = match password_hash.map(str::trim).filter(|h| !h.is_empty()) {
            Some(h) => {
                PasswordHash::new(h).map_err(|e| AuthError::PasswordHash(e.to_string()))?;
                Some(h.to_string())
            }
            None => None,
        };
        let rng = SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).map_err(|_| AuthError::Random)?;
        let token_tag = token
            .filter(|t| !t.is_empty())
            .map(|t| hmac::sign(&key, t.as_bytes()).as_ref().to_vec());
        Ok(Auth {
            password,
            token_tag,
            token_env,
            key,
            rng,
            lifetime,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Is there any way to sign in? Without one the dashboard stays shut.
    pub fn configured(&self) -> bool {
        self.password.is_some() || self.token_tag.is_some()
    }

    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    pub fn has_token(&self) -> bool {
        self.token_tag.is_some()
    }

    /// Compares two secrets in constant time.
    pub fn same(&self, given: &str, expected: &str) -> bool {
        let tag = hmac::sign(&self.key, expected.as_bytes());
        hmac::verify(&self.key, given.as_bytes(), tag.as_ref()).is_ok()
    }

    /// Is `given` the access token?
    pub fn is_token(&self, given: &str) -> bool {
        match &self.token_tag {
            Some(tag) => hmac::verify(&self.key, given.as_bytes(), tag).is_ok(),
            None => false,
        }
    }

    /// Is `given` the password or the access token? Blocking (argon2 takes tens of
    /// milliseconds on purpose): call from a blocking task.
    pub fn check_secret(&self, given: &str) -> bool {
        if given.is_empty() {
            return false;
        }
        if self.is_token(given) {
            return true;
        }
        match self.password.as_deref().map(PasswordHash::new) {
            Some(Ok(hash)) => Argon2::default()
                .verify_password(given.as_bytes(), &hash)
                .is_ok(),
            _ => false,
        }
    }

    /// Works out who sent a request: bearer token first, then the session cookie.
    pub fn identify(&self, headers: &HeaderMap, ip: IpAddr, now: Timestamp) -> Identity {
        if let Some(token) = bearer(headers) {
            if self.limited(ip, now) {
                return Identity::Limited;
            }
            if self.is_token(token) {
                return Identity::Bearer;
            }
            let failures = self.failed(ip, now);
            tracing::warn!(client = %ip, failures, "dashboard request with a wrong access token");
            return Identity::BadToken;
        }
        match cookie(headers).and_then(|id| self.session(id, now)) {
            Some(s) => Identity::Session(s),
            None => Identity::Anonymous,
        }
    }

    fn random(&self) -> Result<String, AuthError> {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).map_err(|_| AuthError::Random)?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Starts a session; returns its id (for the cookie) and the session.
    pub fn start_session(&self, now: Timestamp) -> Result<(String, Session), AuthError> {
        let id = self.random()?;
        let session = Session {
            csrf: self.random()?,
            expires: later(now, self.lifetime),
        };
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| s.expires > now);
        }
        while sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => sessions.remove(&k),
                None => break,
            };
        }
        sessions.insert(hash_id(&id), session.clone());
        Ok((id, session))
    }

    /// The live session with this id, if any. Expired sessions are forgotten here.
    pub fn session(&self, id: &str, now: Timestamp) -> Option<Session> {
        let key = hash_id(id);
        let mut sessions = lock(&self.sessions);
        match sessions.get(&key) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn end_session(&self, id: &str) {
        lock(&self.sessions).remove(&hash_id(id));
    }

    /// Has this address failed too often lately?
    pub fn limited(&self, ip: IpAddr, now: Timestamp) -> bool {
        let cutoff = earlier(now, FAILURE_WINDOW);
        lock(&self.failures)
            .get(&bucket(ip))
            .is_some_and(|f| f.iter().filter(|t| **t > cutoff).count() >= MAX_FAILURES)
    }

    /// Counts a failure; returns how many this address has in the window.
    pub fn failed(&self, ip: IpAddr, now: Timestamp) -> usize {
        let cutoff = earlier(now, FAILURE_WINDOW);
        let mut failures = lock(&self.failures);
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, f| f.iter().any(|t| *t > cutoff));
        }
        if failures.len() >= MAX_TRACKED {
            // Still full of recent failures: forget the oldest address rather than grow.
            let oldest = failures
                .iter()
                .min_by_key(|(_, f)| f.last().copied())
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                failures.remove(&k);
            }
        }
        let list = failures.entry(bucket(ip)).or_default();
        list.retain(|t| *t > cutoff);
        list.push(now);
        list.len()
    }

    /// A success clears the address's failures.
    pub fn succeeded(&self, ip: IpAddr) {
        lock(&self.failures).remove(&bucket(ip));
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn hash_id(id: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, id.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn later(now: Timestamp, d: Duration) -> Timestamp {
    let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    now.saturating_add(d).unwrap_or(now)
}

fn earlier(now: Timestamp, d: Duration) -> Timestamp {
    let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    now.saturating_sub(d).unwrap_or(now)
}

/// Failures are counted per IPv4 address and per IPv6 /64 (one host usually owns a /64).
fn bucket(ip: IpAddr) -> IpAddr {
    match crate::net::canonical_ip(ip) {
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(seg.into())
        }
        v4 => v4,
    }
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The session id from the `Cookie` headers.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value for a new session.
pub fn set_cookie(id: &str, lifetime: Duration) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        lifetime.as_secs()
    )
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// A login form may only be posted from the dashboard's own pages: when the browser says
/// where the form came from (`Origin`), it must be this host.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(host)) = (
        origin.to_str(),
        headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok()),
    ) else {
        return false;
    };
    let origin = origin.trim().to_ascii_lowercase();
    let host = host.trim().to_ascii_lowercase();
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o == host)
}

/// Where to go after signing in: only a path on this dashboard, never another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control)
                && n != "/login"
                && !n.starts_with("/login?") =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;
    use argon2::{Algorithm, Params, Version};

    fn now() -> Timestamp {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    fn cheap_hash(password: &str) -> String {
        let argon = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        );
        argon
            .hash_password_with_salt(password.as_bytes(), b"0123456789abcdef")
            .unwrap()
            .to_string()
    }

    #[test]
    fn passwords_and_tokens() {
        let hash = cheap_hash("correct horse");
        let auth = Auth::new(Some(&hash), Some("tok-123"), None, Duration::from_secs(60)).unwrap();
        assert!(auth.configured());
        assert!(auth.check_secret("correct horse"));
        assert!(auth.check_secret("tok-123"));
        assert!(!auth.check_secret("wrong"));
        assert!(!auth.check_secret(""));
        assert!(auth.is_token("tok-123"));
        assert!(!auth.is_token("tok-12"));
        assert!(!auth.is_token("tok-1234"));
        assert!(Auth::new(Some("not a hash"), None, None, Duration::from_secs(1)).is_err());
        let nothing = Auth::new(None, Some(""), None, Duration::from_secs(1)).unwrap();
        assert!(!nothing.configured());
        assert!(!nothing.check_secret(""));
    }

    #[test]
    fn sessions_expire() {
        let auth = Auth::new(None, Some("t"), None, Duration::from_secs(60)).unwrap();
        let (id, s) = auth.start_session(now()).unwrap();
        assert_eq!(id.len(), 43, "32 bytes, base64url");
        assert_ne!(id, s.csrf);
        assert!(auth.session(&id, now()).is_some());
        assert!(auth.session("other", now()).is_none());
        let later = now().checked_add(SignedDuration::from_secs(61)).unwrap();
        assert!(auth.session(&id, later).is_none());
        assert!(auth.session(&id, now()).is_none(), "forgotten once expired");
        let (id2, _) = auth.start_session(now()).unwrap();
        auth.end_session(&id2);
        assert!(auth.session(&id2, now()).is_none());
    }

    #[test]
    fn failures_are_limited_per_address_and_window() {
        let auth = Auth::new(None, Some("t"), None, Duration::from_secs(60)).unwrap();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        for i in 1..=MAX_FAILURES {
            assert!(!auth.limited(ip, now()));
            assert_eq!(auth.failed(ip, now()), i);
        }
        assert!(auth.limited(ip, now()));
        assert!(!auth.limited("10.0.0.10".parse().unwrap(), now()));
        let later = now().checked_add(SignedDuration::from_secs(601)).unwrap();
        assert!(!auth.limited(ip, later));
        // An IPv6 /64 counts as one address.
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            auth.failed(a, now());
        }
        assert!(auth.limited(b, now()));
        auth.succeeded(b);
        assert!(!auth.limited(a, now()));
    }

    #[test]
    fn headers_cookies_and_origins() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer  abc ".parse().unwrap());
        h.insert("cookie", "a=b; signpost_admin=xyz; c=d".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        assert_eq!(cookie(&h), Some("xyz"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        let c = set_cookie("xyz", Duration::from_secs(3600));
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/"));

        let mut h = HeaderMap::new();
        assert!(same_origin(&h), "no Origin: nothing to check");
        h.insert("host", "127.0.0.1:3129".parse().unwrap());
        h.insert("origin", "http://127.0.0.1:3129".parse().unwrap());
        assert!(same_origin(&h));
        h.insert("origin", "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert("origin", "null".parse().unwrap());
        assert!(!same_origin(&h));
    }

    #[test]
    fn next_stays_on_the_dashboard() {
        assert_eq!(safe_next(Some("/decisions?page=2")), "/decisions?page=2");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("/login")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn constant_time_comparison_is_still_a_comparison() {
        let auth = Auth::new(None, Some("t"), None, Duration::from_secs(60)).unwrap();
        assert!(auth.same("abc", "abc"));
        assert!(!auth.same("abc", "abd"));
        assert!(!auth.same("", "abc"));
    }
}
