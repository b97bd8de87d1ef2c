//! One decision record, with the fields DESIGN.md names (the JSONL sink writes them as is).

use jiff::Timestamp;
use serde::Serialize;

/// What happened to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Forwarded,
    Tunnelled,
    Coached,
    Acknowledged,
    Blocked,
    Denied,
    Error,
}

impl Outcome {
    /// Every outcome, in the order pages list them.
    pub const ALL: [Outcome; 7] = [
        Outcome::Forwarded,
        Outcome::Tunnelled,
        Outcome::Coached,
        Outcome::Acknowledged,
        Outcome::Blocked,
        Outcome::Denied,
        Outcome::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Tunnelled => "tunnelled",
            Outcome::Coached => "coached",
            Outcome::Acknowledged => "acknowledged",
            Outcome::Blocked => "blocked",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// When the request arrived (RFC 3339, UTC).
    pub ts: Timestamp,
    pub client: String,
    pub user: Option<String>,
    pub method: String,
    /// `scheme://host[:port]/path` (never the query); for a tunnel `scheme://host:port`.
    pub url: String,
    pub host: String,
    pub category: Option<String>,
    pub rule: Option<String>,
    /// allow, monitor, coach or block; absent for the proxy's own pages and refusals.
    pub action: Option<String>,
    pub outcome: Outcome,
    pub status: u16,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
    /// What a person wrote when acknowledging, if asked.
    pub reason: Option<String>,
}

impl Record {
    /// A record for a request just arrived: what is known at the gate. The decision, the
    /// outcome, the status and the counts are filled in as the exchange goes on; until then
    /// it stands as an error with status 0, so a record that is never completed says so.
    pub fn arrived(
        ts: Timestamp,
        client: String,
        user: Option<String>,
        method: String,
        url: String,
        host: String,
    ) -> Record {
        Record {
            ts,
            client,
            user,
            method,
            url,
            host,
            category: None,
            rule: None,
            action: None,
            outcome: Outcome::Error,
            status: 0,
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
            reason: None,
        }
    }

    /// The record of a request refused before it was classified (at the gate, or for
    /// want of a login): denied, with the status sent and why.
    pub fn denied(mut self, status: u16, reason: String) -> Record {
        self.outcome = Outcome::Denied;
        self.status = status;
        self.reason = Some(reason);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn outcome_names_agree_everywhere() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
        }
        assert_eq!(Outcome::parse("Forwarded"), None);
    }
}
