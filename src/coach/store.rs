//! Acknowledgements: who has read which category's guidance, until when. Kept in the
//! embedded SQLite store so they survive restarts; read from memory on the hot path.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, RwLock};

use jiff::Timestamp;
use rusqlite::{params, Connection};

/// One acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub identity: String,
    /// The category name, with `@host` when `coach.scope = "host"`.
    pub key: String,
    pub host: String,
    pub reason: Option<String>,
    pub at: Timestamp,
    pub until: Timestamp,
}

#[derive(Debug, thiserror::Error)]
#[error("acknowledgement store {path}: {source}")]
pub struct StoreError {
    pub path: String,
    pub source: rusqlite::Error,
}

/// Acknowledgements in SQLite, mirrored in memory.
pub struct AckStore {
    /// (identity, key) → expiry, in seconds since the epoch.
    live: RwLock<HashMap<(String, String), i64>>,
    db: Mutex<Connection>,
    path: String,
}

impl AckStore {
    /// Opens (creating if needed) the store and loads acknowledgements that have not expired.
    pub fn open(path: &Path, now: Timestamp) -> Result<AckStore, StoreError> {
        let name = path.display().to_string();
        let err = |source| StoreError {
            path: name.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Err(e) = std::fs::create_dir_all(dir) {
                return Err(err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))));
            }
        }
        let db = Connection::open(path).map_err(err)?;
        crate::journal::store::private(path);
        db.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        db.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        db.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS acknowledgements (
                identity TEXT NOT NULL,
                key TEXT NOT NULL,
                host TEXT NOT NULL,
                reason TEXT,
                acknowledged_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                PRIMARY KEY (identity, key)
            );
            CREATE INDEX IF NOT EXISTS acknowledgements_expiry ON acknowledgements (expires_at);",
        )
        .map_err(err)?;
        let mut live = HashMap::new();
        {
            let mut stmt = db
                .prepare(
                    "SELECT identity, key, expires_at FROM acknowledgements WHERE expires_at > ?1",
                )
                .map_err(err)?;
            let rows = stmt
                .query_map(params![now.as_second()], |r| {
                    Ok((
                        (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(err)?;
            for row in rows {
                let (k, v) = row.map_err(err)?;
                live.insert(k, v);
            }
        }
        Ok(AckStore {
            live: RwLock::new(live),
            db: Mutex::new(db),
            path: name,
        })
    }

    /// Has `identity` acknowledged `key` and is it still valid at `now`?
    pub fn is_valid(&self, identity: &str, key: &str, now: Timestamp) -> bool {
        let live = self
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        live.get(&(identity.to_string(), key.to_string()))
            .is_some_and(|&until| until > now.as_second())
    }

    /// Records an acknowledgement (blocking: call from a blocking task).
    pub fn record(&self, ack: &Ack) -> Result<(), StoreError> {
        {
            let db = self
                .db
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            db.execute(
                "INSERT INTO acknowledgements (identity, key, host, reason, acknowledged_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (identity, key) DO UPDATE SET host = ?3, reason = ?4,
                     acknowledged_at = ?5, expires_at = ?6",
                params![
                    ack.identity,
                    ack.key,
                    ack.host,
                    ack.reason,
                    ack.at.as_second(),
                    ack.until.as_second()
                ],
            )
            .map_err(|source| StoreError {
                path: self.path.clone(),
                source,
            })?;
        }
        let mut live = self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        live.insert(
            (ack.identity.clone(), ack.key.clone()),
            ack.until.as_second(),
        );
        Ok(())
    }
}

impl AckStore {
    /// Acknowledgements still valid at `now`, newest first (for the dashboard).
    pub fn list(&self, now: Timestamp, limit: usize) -> Result<Vec<Ack>, StoreError> {
        let db = self
            .db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let err = |source| StoreError {
            path: self.path.clone(),
            source,
        };
        let mut stmt = db
            .prepare(
                "SELECT identity, key, host, reason, acknowledged_at, expires_at FROM acknowledgements
                 WHERE expires_at > ?1 ORDER BY acknowledged_at DESC LIMIT ?2",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![now.as_second(), limit as i64], |r| {
                let at: i64 = r.get(4)?;
                let until: i64 = r.get(5)?;
                Ok(Ack {
                    identity: r.get(0)?,
                    key: r.get(1)?,
                    host: r.get(2)?,
                    reason: r.get(3)?,
                    at: Timestamp::from_second(at).unwrap_or(Timestamp::UNIX_EPOCH),
                    until: Timestamp::from_second(until).unwrap_or(Timestamp::UNIX_EPOCH),
                })
            })
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    /// Withdraws an acknowledgement: the person sees the guidance again next time.
    pub fn revoke(&self, identity: &str, key: &str) -> Result<bool, StoreError> {
        let changed = {
            let db = self
                .db
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            db.execute(
                "DELETE FROM acknowledgements WHERE identity = ?1 AND key = ?2",
                params![identity, key],
            )
            .map_err(|source| StoreError {
                path: self.path.clone(),
                source,
            })?
        };
        let mut live = self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        live.remove(&(identity.to_string(), key.to_string()));
        Ok(changed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_expire_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("journal.db");
        let now: Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
        let store = AckStore::open(&path, now).unwrap();
        assert!(!store.is_valid("10.0.0.5", "social", now));
        store
            .record(&Ack {
                identity: "10.0.0.5".into(),
                key: "social".into(),
                host: "www.ning.com".into(),
                reason: Some("research".into()),
                at: now,
                until: "2026-11-22T20:00:00Z".parse().unwrap(),
            })
            .unwrap();
        assert!(store.is_valid("10.0.0.5", "social", now));
        assert!(!store.is_valid("10.0.0.6", "social", now));
        assert!(!store.is_valid(
            "10.0.0.5",
            "social",
            "2026-11-22T20:00:00Z".parse().unwrap()
        ));
        drop(store);
        let again = AckStore::open(&path, now).unwrap();
        assert!(again.is_valid("10.0.0.5", "social", now));
        let listed = again.list(now, 10).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].reason.as_deref(), Some("research"));
        assert!(again.revoke("10.0.0.5", "social").unwrap());
        assert!(!again.is_valid("10.0.0.5", "social", now));
        let later = AckStore::open(&path, "2026-11-23T00:00:00Z".parse().unwrap()).unwrap();
        assert!(!later.is_valid(
            "10.0.0.5",
            "social",
            "2026-11-23T00:00:00Z".parse().unwrap()
        ));
    }
}
