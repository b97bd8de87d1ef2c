//! `signpost review`: what people used, what guidance they saw and acknowledged (and why),
//! what was blocked, and how much traffic each category took, over a period.

use std::fmt::Write as _;

use jiff::Timestamp;
use rusqlite::{params, Connection};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub since: Timestamp,
    pub until: Timestamp,
    pub total: u64,
    pub by_category: Vec<CategoryAction>,
    pub acknowledgement: Vec<AckRate>,
    pub top_hosts: Vec<HostCount>,
    pub reasons: Vec<Reason>,
    pub blocked: Vec<HostCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryAction {
    pub category: String,
    pub action: String,
    pub requests: u64,
    pub clients: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AckRate {
    pub category: String,
    /// Interstitials shown.
    pub shown: u64,
    pub acknowledged: u64,
    /// acknowledged / shown, when anything was shown.
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostCount {
    pub category: String,
    pub host: String,
    pub requests: u64,
    pub clients: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    pub category: String,
    pub reason: String,
    pub count: u64,
}

const TOP_HOSTS_PER_CATEGORY: usize = 5;

fn n(v: i64) -> u64 {
    v.max(0) as u64
}

pub fn build(db: &Connection, since: Timestamp, until: Timestamp) -> rusqlite::Result<Report> {
    let (a, b) = (since.as_millisecond(), until.as_millisecond());
    let total: i64 = db.query_row(
        "SELECT COUNT(*) FROM decisions WHERE ts >= ?1 AND ts < ?2",
        params![a, b],
        |r| r.get(0),
    )?;

    let mut stmt = db.prepare(
        "SELECT COALESCE(category, '(none)'), COALESCE(action, '-'), COUNT(*), COUNT(DISTINCT client),
                COALESCE(SUM(bytes_up + bytes_down), 0)
         FROM decisions WHERE ts >= ?1 AND ts < ?2
         GROUP BY 1, 2 ORDER BY 3 DESC",
    )?;
    let by_category = stmt
        .query_map(params![a, b], |r| {
            Ok(CategoryAction {
                category: r.get(0)?,
                action: r.get(1)?,
                requests: n(r.get(2)?),
                clients: n(r.get(3)?),
                bytes: n(r.get(4)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let mut stmt = db.prepare(
        "SELECT category,
                SUM(CASE WHEN outcome = 'coached' AND status = 200 THEN 1 ELSE 0 END),
                SUM(CASE WHEN outcome = 'acknowledged' AND status = 303 THEN 1 ELSE 0 END)
         FROM decisions WHERE ts >= ?1 AND ts < ?2 AND category IS NOT NULL
               AND outcome IN ('coached', 'acknowledged')
         GROUP BY 1 ORDER BY 2 DESC",
    )?;
    let acknowledgement = stmt
        .query_map(params![a, b], |r| {
            let shown = n(r.get(1)?);
            let acknowledged = n(r.get(2)?);
            Ok(AckRate {
                category: r.get(0)?,
                shown,
                acknowledged,
                rate: (shown > 0).then(|| acknowledged as f64 / shown as f64),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let mut stmt = db.prepare(
        "SELECT category, host, COUNT(*), COUNT(DISTINCT client), COALESCE(SUM(bytes_up + bytes_down), 0)
         FROM decisions WHERE ts >= ?1 AND ts < ?2 AND category IS NOT NULL
         GROUP BY 1, 2 ORDER BY 1, 3 DESC",
    )?;
    let mut top_hosts: Vec<HostCount> = Vec::new();
    for row in stmt.query_map(params![a, b], host_count)? {
        let row = row?;
        // Rows come ordered by category, so this category's hosts so far are the last ones.
        let already = top_hosts
            .iter()
            .rev()
            .take_while(|h| h.category == row.category)
            .count();
        if already < TOP_HOSTS_PER_CATEGORY {
            top_hosts.push(row);
        }
    }

    let mut stmt = db.prepare(
        "SELECT category, reason, COUNT(*) FROM decisions
         WHERE ts >= ?1 AND ts < ?2 AND outcome = 'acknowledged' AND reason IS NOT NULL AND reason != ''
         GROUP BY 1, 2 ORDER BY 3 DESC, 2 LIMIT 100",
    )?;
    let reasons = stmt
        .query_map(params![a, b], |r| {
            Ok(Reason {
                category: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                reason: r.get(1)?,
                count: n(r.get(2)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let mut stmt = db.prepare(
        "SELECT COALESCE(category, '(none)'), host, COUNT(*), COUNT(DISTINCT client), COALESCE(SUM(bytes_up + bytes_down), 0)
         FROM decisions WHERE ts >= ?1 AND ts < ?2 AND outcome = 'blocked'
         GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 20",
    )?;
    let blocked = stmt
        .query_map(params![a, b], host_count)?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    Ok(Report {
        since,
        until,
        total: n(total),
        by_category,
        acknowledgement,
        top_hosts,
        reasons,
        blocked,
    })
}

/// A row of (category, host, requests, clients, bytes).
fn host_count(r: &rusqlite::Row) -> rusqlite::Result<HostCount> {
    Ok(HostCount {
        category: r.get(0)?,
        host: r.get(1)?,
        requests: n(r.get(2)?),
        clients: n(r.get(3)?),
        bytes: n(r.get(4)?),
    })
}

/// A byte count as people read it (the dashboard shows it the same way).
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl Report {
    /// A plain-text report for people.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Signpost review: {} to {} — {} decisions\n",
            self.since, self.until, self.total
        );
        let _ = writeln!(o, "By category and action");
        let _ = writeln!(
            o,
            "  {:<28} {:<8} {:>9} {:>8} {:>11}",
            "category", "action", "requests", "clients", "traffic"
        );
        for r in &self.by_category {
            let _ = writeln!(
                o,
                "  {:<28} {:<8} {:>9} {:>8} {:>11}",
                r.category,
                r.action,
                r.requests,
                r.clients,
                bytes(r.bytes)
            );
        }
        let _ = writeln!(o, "\nGuidance shown and acknowledged");
        if self.acknowledgement.is_empty() {
            let _ = writeln!(o, "  (no guidance was shown)");
        }
        for r in &self.acknowledgement {
            let rate = r
                .rate
                .map_or("-".to_string(), |x| format!("{:.0}%", x * 100.0));
            let _ = writeln!(
                o,
                "  {:<28} shown {:>6}  acknowledged {:>6}  rate {:>5}",
                r.category, r.shown, r.acknowledged, rate
            );
        }
        let _ = writeln!(o, "\nTop sites per category");
        for h in &self.top_hosts {
            let _ = writeln!(
                o,
                "  {:<20} {:<36} {:>7} requests {:>5} clients {:>11}",
                h.category,
                h.host,
                h.requests,
                h.clients,
                bytes(h.bytes)
            );
        }
        let _ = writeln!(o, "\nReasons people gave");
        if self.reasons.is_empty() {
            let _ = writeln!(o, "  (none)");
        }
        for r in &self.reasons {
            let _ = writeln!(o, "  {:<20} {:>4} × {}", r.category, r.count, r.reason);
        }
        let _ = writeln!(o, "\nBlocked");
        if self.blocked.is_empty() {
            let _ = writeln!(o, "  (nothing)");
        }
        for h in &self.blocked {
            let _ = writeln!(
                o,
                "  {:<20} {:<36} {:>7} requests {:>5} clients",
                h.category, h.host, h.requests, h.clients
            );
        }
        o
    }

    /// One CSV table: a `section` column, then the section's own columns.
    pub fn csv(&self) -> String {
        let mut o = String::from("section,category,action_or_host,requests_or_shown,clients_or_acknowledged,bytes_or_rate,text\n");
        for r in &self.by_category {
            let _ = writeln!(
                o,
                "by_category,{},{},{},{},{},",
                csv(&r.category),
                csv(&r.action),
                r.requests,
                r.clients,
                r.bytes
            );
        }
        for r in &self.acknowledgement {
            let _ = writeln!(
                o,
                "acknowledgement,{},,{},{},{},",
                csv(&r.category),
                r.shown,
                r.acknowledged,
                r.rate.map_or(String::new(), |x| format!("{x:.4}"))
            );
        }
        host_lines(&mut o, "top_host", &self.top_hosts);
        for r in &self.reasons {
            let _ = writeln!(
                o,
                "reason,{},,{},,,{}",
                csv(&r.category),
                r.count,
                csv(&r.reason)
            );
        }
        host_lines(&mut o, "blocked", &self.blocked);
        o
    }
}

/// The CSV lines of a `HostCount` section.
fn host_lines(o: &mut String, section: &str, hosts: &[HostCount]) {
    for h in hosts {
        let _ = writeln!(
            o,
            "{section},{},{},{},{},{},",
            csv(&h.category),
            csv(&h.host),
            h.requests,
            h.clients,
            h.bytes
        );
    }
}

/// One CSV field: quoted when needed, and defused when a spreadsheet would take it for a
/// formula (`= + - @`, and a leading tab or carriage return).
pub fn csv(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}
