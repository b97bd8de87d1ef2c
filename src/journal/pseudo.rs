//! Pseudonymisation: a keyed hash in place of client addresses and user names, so that
//! reviews show patterns, not people. The same person always gets the same pseudonym
//! (for a given key); without the key it cannot be reversed by guessing addresses.

use ring::hmac;

pub struct Pseudonymiser {
    key: hmac::Key,
}

impl Pseudonymiser {
    /// Derives the pseudonym key from a secret (the coach secret), under its own label.
    pub fn from_secret(secret: &[u8]) -> Pseudonymiser {
        let master = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derived = hmac::sign(&master, b"signpost-pseudonym-v1");
        Pseudonymiser {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    /// `p-` and 16 hex digits.
    pub fn hide(&self, identity: &str) -> String {
        if identity.starts_with("p-") && identity.len() == 18 {
            return identity.to_string();
        }
        let tag = hmac::sign(&self.key, identity.as_bytes());
        let mut out = String::from("p-");
        for b in &tag.as_ref()[..8] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_keyed_and_not_the_input() {
        let a = Pseudonymiser::from_secret(&[1; 32]);
        let b = Pseudonymiser::from_secret(&[2; 32]);
        let p = a.hide("10.0.0.5");
        assert_eq!(p, a.hide("10.0.0.5"));
        assert_ne!(p, a.hide("10.0.0.6"));
        assert_ne!(p, b.hide("10.0.0.5"));
        assert!(p.starts_with("p-") && p.len() == 18 && !p.contains("10.0.0.5"));
        assert_eq!(a.hide(&p), p, "hiding twice changes nothing");
    }
}
