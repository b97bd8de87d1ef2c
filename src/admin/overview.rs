//! `/`: the last 24 hours at a glance, the journal's health and the policy's reloads.

use std::sync::atomic::Ordering;

use http::StatusCode;
use jiff::Timestamp;
use minijinja::context;
use rusqlite::{params, Connection};
use serde::Serialize;

use super::body::Resp;
use super::charts::{self, ACTIONS};
use super::pages::{bytes, time};
use super::State;
use crate::journal::review::{self, AckRate};

const HOURS: i64 = 24;
const HOUR_MS: i64 = 3_600_000;

/// What the overview reads from the journal.
pub struct Data {
    pub since: Timestamp,
    pub until: Timestamp,
    /// `[hour][action]`, actions in the order of [`ACTIONS`].
    pub hourly: Vec<Vec<u64>>,
    pub report: review::Report,
}

pub fn collect(db: &Connection, now: Timestamp) -> rusqlite::Result<Data> {
    let end_ms = (now.as_millisecond().div_euclid(HOUR_MS) + 1) * HOUR_MS;
    let start_ms = end_ms - HOURS * HOUR_MS;
    let since = Timestamp::from_millisecond(start_ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let until = Timestamp::from_millisecond(end_ms).unwrap_or(now);
    let mut hourly = vec![vec![0u64; ACTIONS.len()]; HOURS as usize];
    let mut stmt = db.prepare(
        "SELECT (ts - ?1) / 3600000, COALESCE(action, 'none'), COUNT(*)
         FROM decisions WHERE ts >= ?1 AND ts < ?2 GROUP BY 1, 2",
    )?;
    let rows = stmt.query_map(params![start_ms, end_ms], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (bucket, action, n) = row?;
        let a = ACTIONS
            .iter()
            .position(|(name, _)| *name == action)
            .unwrap_or(ACTIONS.len() - 1);
        if let Some(slot) = usize::try_from(bucket)
            .ok()
            .and_then(|b| hourly.get_mut(b))
            .and_then(|h| h.get_mut(a))
        {
            *slot += n.max(0) as u64;
        }
    }
    let report = review::build(db, since, until)?;
    Ok(Data {
        since,
        until,
        hourly,
        report,
    })
}

#[derive(Serialize)]
struct Health {
    queue_depth: i64,
    queued: u64,
    written: u64,
    dropped: u64,
    lost: u64,
    reloads: u64,
    reloads_failed: u64,
    open_connections: i64,
}

#[derive(Serialize)]
struct AckRow {
    category: String,
    shown: u64,
    acknowledged: u64,
    rate: String,
}

pub async fn page(state: &State, csrf: Option<&str>) -> Resp {
    let now = state.ctx.clock.now();
    let path = state.ctx.journal_path.clone();
    let read = tokio::task::spawn_blocking(move || {
        let db = crate::journal::store::connect(&path)?;
        collect(&db, now)
    })
    .await;
    let (data, error) = match read {
        Ok(Ok(d)) => (Some(d), None),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "dashboard: cannot read the journal");
            (None, Some(format!("The journal could not be read: {e}")))
        }
        Err(e) => {
            tracing::error!(error = %e, "dashboard: journal read task failed");
            (None, Some("The journal could not be read.".to_string()))
        }
    };

    let stats = &state.ctx.journal.stats;
    let health = Health {
        queue_depth: stats.depth.load(Ordering::Relaxed),
        queued: stats.queued.load(Ordering::Relaxed),
        written: stats.written.load(Ordering::Relaxed),
        dropped: stats.dropped.load(Ordering::Relaxed),
        lost: stats.lost.load(Ordering::Relaxed),
        reloads: state.ctx.reloader.stats.succeeded.load(Ordering::Relaxed),
        reloads_failed: state.ctx.reloader.stats.failed.load(Ordering::Relaxed),
        open_connections: state
            .ctx
            .journal
            .metrics
            .open_connections
            .load(Ordering::Relaxed),
    };
    let policy = state.ctx.policy.load();

    let (timeline, requests, traffic, total, acks, since, until) = match &data {
        Some(d) => {
            let labels: Vec<String> = (0..HOURS)
                .map(|h| {
                    d.since
                        .checked_add(jiff::SignedDuration::from_hours(h))
                        .map(|t| t.strftime("%H:00").to_string())
                        .unwrap_or_default()
                })
                .collect();
            let timeline = charts::stacked(
                "timeline",
                "Decisions per hour, by action",
                &labels,
                &ACTIONS,
                &d.hourly,
                3,
            );
            let mut per_cat: Vec<(String, u64, u64)> = Vec::new();
            for row in &d.report.by_category {
                match per_cat.iter_mut().find(|(c, _, _)| *c == row.category) {
                    Some(entry) => {
                        entry.1 += row.requests;
                        entry.2 += row.bytes;
                    }
                    None => per_cat.push((row.category.clone(), row.requests, row.bytes)),
                }
            }
            let req: Vec<(String, u64)> = per_cat.iter().map(|(c, r, _)| (c.clone(), *r)).collect();
            let byt: Vec<(String, u64)> = per_cat.iter().map(|(c, _, b)| (c.clone(), *b)).collect();
            let requests =
                charts::hbars("requests", "Requests per category", &req, "#1d5c8f", |v| {
                    v.to_string()
                });
            let traffic = charts::hbars("traffic", "Traffic per category", &byt, "#5d4c8f", bytes);
            let acks: Vec<AckRow> = d.report.acknowledgement.iter().map(ack_row).collect();
            (
                Some(timeline),
                Some(requests),
                Some(traffic),
                d.report.total,
                acks,
                time(d.since),
                time(d.until),
            )
        }
        None => (
            None,
            None,
            None,
            0,
            Vec::new(),
            String::new(),
            String::new(),
        ),
    };

    state.pages.page(
        if error.is_some() {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        },
        "overview.html",
        context! {
            nav => "overview",
            csrf,
            error,
            total,
            since,
            until,
            timeline,
            requests,
            traffic,
            acks,
            health,
            categories => policy.categories.len(),
            rules => policy.rules.len(),
        },
    )
}

fn ack_row(a: &AckRate) -> AckRow {
    AckRow {
        category: a.category.clone(),
        shown: a.shown,
        acknowledged: a.acknowledged,
        rate: a
            .rate
            .map_or_else(|| "–".to_string(), |r| format!("{:.0}%", r * 100.0)),
    }
}
