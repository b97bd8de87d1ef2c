//! Acknowledgement tokens: HMAC-SHA256 over identity, category, host and issue time, with a
//! secret kept at mode 0600. A token proves that this proxy showed this person this
//! category's guidance on this host recently; it cannot be forged, altered, moved to
//! another person or host, or used after 30 minutes.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jiff::Timestamp;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// How long a shown page's token may be used.
pub const TOKEN_LIFETIME_SECS: i64 = 30 * 60;
/// Tolerated clock difference for tokens issued "in the future".
const SKEW_SECS: i64 = 60;
const SECRET_LEN: usize = 32;

/// Signs and checks tokens.
pub struct Tokens {
    key: hmac::Key,
    /// Kept to derive the pseudonym key (under its own label).
    secret: Vec<u8>,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the acknowledgement token is malformed")]
    Malformed,
    #[error(
        "the acknowledgement token does not match (forged, altered, or issued to someone else)"
    )]
    Invalid,
    #[error("the acknowledgement token has expired; please read the page again")]
    Expired,
}

/// The secret file could not be read or created.
#[derive(Debug, thiserror::Error)]
#[error("coach secret {path}: {why}")]
pub struct SecretError {
    pub path: String,
    pub why: String,
}

impl Tokens {
    pub fn from_secret(secret: &[u8]) -> Tokens {
        Tokens {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            secret: secret.to_vec(),
        }
    }

    /// The pseudonymiser keyed from the same secret.
    pub fn pseudonymiser(&self) -> crate::journal::Pseudonymiser {
        crate::journal::Pseudonymiser::from_secret(&self.secret)
    }

    /// Loads the secret, creating it (mode 0600) on first run.
    pub fn load_or_create(path: &Path) -> Result<Tokens, SecretError> {
        let err = |why: String| SecretError {
            path: path.display().to_string(),
            why,
        };
        match std::fs::read(path) {
            Ok(secret) if secret.len() >= SECRET_LEN => {
                if let Ok(meta) = std::fs::metadata(path) {
                    if meta.permissions().mode() & 0o077 != 0 {
                        tracing::warn!(file = %path.display(), "the coach secret is readable by others; chmod 600 it");
                    }
                }
                Ok(Tokens::from_secret(&secret))
            }
            Ok(_) => Err(err(format!(
                "holds fewer than {SECRET_LEN} bytes; delete it to have a new one made"
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = [0u8; SECRET_LEN];
                SystemRandom::new()
                    .fill(&mut secret)
                    .map_err(|_| err("the system random source failed".into()))?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| err(e.to_string()))?;
                file.write_all(&secret).map_err(|e| err(e.to_string()))?;
                file.sync_all().map_err(|e| err(e.to_string()))?;
                tracing::info!(file = %path.display(), "created the secret that signs acknowledgements");
                Ok(Tokens::from_secret(&secret))
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    fn tag(&self, identity: &str, category: &str, host: &str, issued: i64) -> hmac::Tag {
        hmac::sign(&self.key, &signed_message(identity, category, host, issued))
    }

    /// A token for a page shown now.
    pub fn issue(&self, identity: &str, category: &str, host: &str, now: Timestamp) -> String {
        let issued = now.as_second();
        let mut raw = issued.to_be_bytes().to_vec();
        raw.extend_from_slice(self.tag(identity, category, host, issued).as_ref());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a token presented by `identity` for `category` on `host`.
    pub fn verify(
        &self,
        token: &str,
        identity: &str,
        category: &str,
        host: &str,
        now: Timestamp,
    ) -> Result<(), TokenError> {
        let raw = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| TokenError::Malformed)?;
        if raw.len() != 8 + 32 {
            return Err(TokenError::Malformed);
        }
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&raw[..8]);
        let issued = i64::from_be_bytes(issued);
        // Constant-time comparison.
        hmac::verify(
            &self.key,
            &signed_message(identity, category, host, issued),
            &raw[8..],
        )
        .map_err(|_| TokenError::Invalid)?;
        let age = now.as_second() - issued;
        if !(-SKEW_SECS..=TOKEN_LIFETIME_SECS).contains(&age) {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

/// The exact bytes the tag covers (length-prefixed, so fields cannot run into each other).
fn signed_message(identity: &str, category: &str, host: &str, issued: i64) -> Vec<u8> {
    let mut m = Vec::new();
    for part in [
        b"signpost-ack-v1".as_slice(),
        identity.as_bytes(),
        category.as_bytes(),
        host.as_bytes(),
    ] {
        m.extend_from_slice(&(part.len() as u64).to_be_bytes());
        m.extend_from_slice(part);
    }
    m.extend_from_slice(&issued.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn round_trip_and_every_way_to_cheat() {
        let tokens = Tokens::from_secret(&[7u8; 32]);
        let now = t("2026-11-22T12:00:00Z");
        let tok = tokens.issue("10.0.0.5", "social", "www.ning.com", now);
        assert_eq!(
            tokens.verify(&tok, "10.0.0.5", "social", "www.ning.com", now),
            Ok(())
        );
        // another identity, category or host
        assert_eq!(
            tokens.verify(&tok, "10.0.0.6", "social", "www.ning.com", now),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            tokens.verify(&tok, "10.0.0.5", "read-later", "www.ning.com", now),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            tokens.verify(&tok, "10.0.0.5", "social", "ning.com", now),
            Err(TokenError::Invalid)
        );
        // altered issue time (to extend it) or tag
        let mut raw = URL_SAFE_NO_PAD.decode(&tok).unwrap();
        raw[7] ^= 1;
        let altered = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(
            tokens.verify(&altered, "10.0.0.5", "social", "www.ning.com", now),
            Err(TokenError::Invalid)
        );
        // forged with another key
        let forged =
            Tokens::from_secret(&[8u8; 32]).issue("10.0.0.5", "social", "www.ning.com", now);
        assert_eq!(
            tokens.verify(&forged, "10.0.0.5", "social", "www.ning.com", now),
            Err(TokenError::Invalid)
        );
        // expired
        let later = t("2026-11-22T12:30:01Z");
        assert_eq!(
            tokens.verify(&tok, "10.0.0.5", "social", "www.ning.com", later),
            Err(TokenError::Expired)
        );
        // garbage
        assert_eq!(
            tokens.verify("!!", "10.0.0.5", "social", "www.ning.com", now),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            tokens.verify("", "10.0.0.5", "social", "www.ning.com", now),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn fields_cannot_be_shifted_between_each_other() {
        let tokens = Tokens::from_secret(&[1u8; 32]);
        let now = t("2026-11-22T12:00:00Z");
        let tok = tokens.issue("a", "bc", "d", now);
        assert!(tokens.verify(&tok, "ab", "c", "d", now).is_err());
    }

    #[test]
    fn the_secret_is_created_at_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("coach-secret");
        let a = Tokens::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = Tokens::load_or_create(&path).unwrap();
        let now = t("2026-11-22T12:00:00Z");
        let tok = a.issue("x", "y", "z", now);
        assert_eq!(b.verify(&tok, "x", "y", "z", now), Ok(()));
        std::fs::write(&path, b"short").unwrap();
        assert!(Tokens::load_or_create(&path).is_err());
    }
}
