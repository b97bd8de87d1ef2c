//! The embedded decision store: SQLite in WAL mode, written in batched transactions,
//! indexed for the questions reviews ask (time, category, action, host, client).

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{params, Connection};

use super::record::{Outcome, Record};

#[derive(Debug, thiserror::Error)]
#[error("journal store {path}: {source}")]
pub struct StoreOpenError {
    pub path: String,
    pub source: rusqlite::Error,
}

pub struct DecisionStore {
    path: PathBuf,
    db: Option<Connection>,
    retention: Option<Duration>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    client TEXT NOT NULL,
    user TEXT,
    method TEXT NOT NULL,
    url TEXT NOT NULL,
    host TEXT NOT NULL,
    category TEXT,
    rule TEXT,
    action TEXT,
    outcome TEXT NOT NULL,
    status INTEGER NOT NULL,
    bytes_up INTEGER NOT NULL,
    bytes_down INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts);
CREATE INDEX IF NOT EXISTS decisions_category ON decisions (category, ts);
CREATE INDEX IF NOT EXISTS decisions_action ON decisions (action, ts);
CREATE INDEX IF NOT EXISTS decisions_host ON decisions (host, ts);
CREATE INDEX IF NOT EXISTS decisions_client ON decisions (client, ts);
";

/// Opens a connection with the pragmas every user of the store needs.
pub fn connect(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    }
    let db = Connection::open(path)?;
    private(path);
    db.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode: a process crash loses nothing committed; power loss may lose
    // the last transactions, never the database.
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.busy_timeout(Duration::from_secs(5))?;
    db.execute_batch(SCHEMA)?;
    Ok(db)
}

/// The store records what people did: readable by the proxy's user only. SQLite gives its
/// `-wal` and `-shm` files the database file's mode, so this covers them too.
pub fn private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
                tracing::warn!(file = %path.display(), error = %e, "cannot make the journal private (chmod 600)");
            }
        }
    }
}

impl DecisionStore {
    pub fn open(path: &Path, retention: Option<Duration>) -> Result<DecisionStore, StoreOpenError> {
        let db = connect(path).map_err(|source| StoreOpenError {
            path: path.display().to_string(),
            source,
        })?;
        Ok(DecisionStore {
            path: path.to_path_buf(),
            db: Some(db),
            retention,
        })
    }

    /// Writes a batch in one transaction. On failure (a full or failing disk) the
    /// connection is dropped and reopened on the next batch, so the store recovers by
    /// itself when the disk does.
    pub fn insert(&mut self, batch: &[Record]) -> rusqlite::Result<()> {
        if self.db.is_none() {
            self.db = Some(connect(&self.path)?);
        }
        let result = match self.db.as_mut() {
            Some(db) => insert_batch(db, batch),
            None => Ok(()),
        };
        if result.is_err() {
            self.db = None;
        }
        result
    }

    /// Deletes records older than the retention period (and expired acknowledgements).
    pub fn purge(&mut self, now: Timestamp) -> rusqlite::Result<usize> {
        let (Some(retention), Some(db)) = (self.retention, self.db.as_ref()) else {
            return Ok(0);
        };
        let cutoff = now.as_millisecond() - retention.as_millis() as i64;
        let n = db.execute("DELETE FROM decisions WHERE ts < ?1", params![cutoff])?;
        let _ = db.execute(
            "DELETE FROM acknowledgements WHERE expires_at < ?1",
            params![now.as_second()],
        );
        Ok(n)
    }
}

fn insert_batch(db: &mut Connection, batch: &[Record]) -> rusqlite::Result<()> {
    let tx = db.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO decisions (ts, client, user, method, url, host, category, rule, action,
                outcome, status, bytes_up, bytes_down, duration_ms, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?;
        for r in batch {
            stmt.execute(params![
                r.ts.as_millisecond(),
                r.client,
                r.user,
                r.method,
                r.url,
                r.host,
                r.category,
                r.rule,
                r.action,
                r.outcome.as_str(),
                r.status,
                r.bytes_up as i64,
                r.bytes_down as i64,
                r.duration_ms as i64,
                r.reason,
            ])?;
        }
    }
    tx.commit()
}

/// Reads records back (for the dashboard, `review` and tests), newest first.
pub fn query(
    db: &Connection,
    filter: &Filter,
    limit: usize,
    offset: usize,
) -> rusqlite::Result<Vec<Record>> {
    let (clause, args) = filter.sql();
    let sql = format!(
        "SELECT ts, client, user, method, url, host, category, rule, action, outcome, status,
                bytes_up, bytes_down, duration_ms, reason
         FROM decisions {clause} ORDER BY ts DESC, id DESC LIMIT {limit} OFFSET {offset}"
    );
    let mut stmt = db.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), row_to_record)?;
    rows.collect()
}

/// Counts the records a filter selects.
pub fn count(db: &Connection, filter: &Filter) -> rusqlite::Result<u64> {
    let (clause, args) = filter.sql();
    let sql = format!("SELECT COUNT(*) FROM decisions {clause}");
    db.query_row(&sql, rusqlite::params_from_iter(args.iter()), |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n.max(0) as u64)
}

fn row_to_record(r: &rusqlite::Row) -> rusqlite::Result<Record> {
    let ts: i64 = r.get(0)?;
    let outcome: String = r.get(9)?;
    Ok(Record {
        ts: Timestamp::from_millisecond(ts).unwrap_or(Timestamp::UNIX_EPOCH),
        client: r.get(1)?,
        user: r.get(2)?,
        method: r.get(3)?,
        url: r.get(4)?,
        host: r.get(5)?,
        category: r.get(6)?,
        rule: r.get(7)?,
        action: r.get(8)?,
        outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Error),
        status: r.get::<_, i64>(10)?.clamp(0, u16::MAX as i64) as u16,
        bytes_up: r.get::<_, i64>(11)?.max(0) as u64,
        bytes_down: r.get::<_, i64>(12)?.max(0) as u64,
        duration_ms: r.get::<_, i64>(13)?.max(0) as u64,
        reason: r.get(14)?,
    })
}

/// Which records to read. Every field narrows the selection.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub category: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub client: Option<String>,
    pub user: Option<String>,
    /// Matches the host and its subdomains.
    pub host: Option<String>,
}

impl Filter {
    fn sql(&self) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value;
        let mut parts = Vec::new();
        let mut args = Vec::new();
        if let Some(t) = self.since {
            parts.push("ts >= ?");
            args.push(Value::Integer(t.as_millisecond()));
        }
        if let Some(t) = self.until {
            parts.push("ts < ?");
            args.push(Value::Integer(t.as_millisecond()));
        }
        for (col, v) in [
            ("category = ?", &self.category),
            ("action = ?", &self.action),
            ("outcome = ?", &self.outcome),
            ("client = ?", &self.client),
            ("user = ?", &self.user),
        ] {
            if let Some(v) = v {
                parts.push(col);
                args.push(Value::Text(v.clone()));
            }
        }
        if let Some(h) = &self.host {
            parts.push("(host = ? OR host LIKE ? ESCAPE '\\')");
            args.push(Value::Text(h.clone()));
            let escaped = h
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            args.push(Value::Text(format!("%.{escaped}")));
        }
        if parts.is_empty() {
            (String::new(), args)
        } else {
            (format!("WHERE {}", parts.join(" AND ")), args)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample(ts: &str, host: &str, category: Option<&str>, outcome: Outcome) -> Record {
        Record {
            ts: ts.parse().unwrap(),
            client: "10.0.0.5".into(),
            user: None,
            method: "GET".into(),
            url: format!("http://{host}/"),
            host: host.into(),
            category: category.map(str::to_string),
            rule: None,
            action: Some("allow".into()),
            outcome,
            status: 200,
            bytes_up: 10,
            bytes_down: 1000,
            duration_ms: 5,
            reason: None,
        }
    }

    #[test]
    fn insert_query_filter_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let mut store = DecisionStore::open(&path, Some(Duration::from_secs(86400))).unwrap();
        store
            .insert(&[
                sample(
                    "2026-11-20T10:00:00Z",
                    "old.example",
                    None,
                    Outcome::Forwarded,
                ),
                sample(
                    "2026-11-22T10:00:00Z",
                    "www.ning.com",
                    Some("social"),
                    Outcome::Coached,
                ),
                sample(
                    "2026-11-22T11:00:00Z",
                    "ning.com",
                    Some("social"),
                    Outcome::Forwarded,
                ),
                sample(
                    "2026-11-22T11:30:00Z",
                    "notning.com",
                    None,
                    Outcome::Forwarded,
                ),
            ])
            .unwrap();
        let db = connect(&path).unwrap();
        let all = query(&db, &Filter::default(), 10, 0).unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].host, "notning.com", "newest first");
        let f = Filter {
            host: Some("ning.com".into()),
            ..Filter::default()
        };
        assert_eq!(count(&db, &f).unwrap(), 2);
        let f = Filter {
            category: Some("social".into()),
            outcome: Some("coached".into()),
            ..Filter::default()
        };
        assert_eq!(query(&db, &f, 10, 0).unwrap()[0].host, "www.ning.com");
        let purged = store
            .purge("2026-11-22T12:00:00Z".parse().unwrap())
            .unwrap();
        assert_eq!(purged, 1);
        assert_eq!(count(&db, &Filter::default()).unwrap(), 3);
    }
}
