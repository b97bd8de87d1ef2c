//! `/decisions`: the decision log, filtered by GET parameters and paged; and
//! `/decisions.csv`: the same rows as CSV, streamed.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};
use http::{Response, StatusCode};
use jiff::Timestamp;
use minijinja::context;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::body::{text, AdminBody, Resp};
use super::pages::{bytes, parse_time, time};
use super::State;
use crate::journal::review::csv as cell;
use crate::journal::store::{self, Filter};
use crate::journal::{Outcome, Record};

/// Rows on one page of the log.
pub const PER_PAGE: usize = 50;
/// Rows one export holds at most.
pub const MAX_EXPORT: usize = 1_000_000;
/// Rows read from the store at a time while exporting.
const EXPORT_CHUNK: usize = 5_000;

pub const ACTIONS: [&str; 4] = ["allow", "monitor", "coach", "block"];

/// The filter form, as typed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Query {
    pub since: String,
    pub until: String,
    pub category: String,
    pub action: String,
    pub outcome: String,
    pub client: String,
    pub user: String,
    pub host: String,
    pub page: usize,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let mut q = Query {
            page: 1,
            ..Query::default()
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let v = v.trim().to_string();
            match &*k {
                "since" => q.since = v,
                "until" => q.until = v,
                "category" => q.category = v,
                "action" => q.action = v,
                "outcome" => q.outcome = v,
                "client" => q.client = v,
                "user" => q.user = v,
                "host" => q.host = v.trim_end_matches('.').to_ascii_lowercase(),
                "page" => q.page = v.parse().unwrap_or(1).clamp(1, 10_000_000),
                _ => {}
            }
        }
        q
    }

    /// The store filter, or what is wrong with the form.
    pub fn filter(&self, now: Timestamp) -> Result<Filter, String> {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let time = |s: &str| -> Result<Option<Timestamp>, String> {
            if s.is_empty() {
                Ok(None)
            } else {
                parse_time(s, now).map(Some)
            }
        };
        Ok(Filter {
            since: time(&self.since)?,
            until: time(&self.until)?,
            category: some(&self.category),
            action: some(&self.action),
            outcome: some(&self.outcome),
            client: some(&self.client),
            user: some(&self.user),
            host: some(&self.host),
        })
    }

    /// The query string for these filters (without the page).
    pub fn encode(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("since", &self.since),
            ("until", &self.until),
            ("category", &self.category),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("client", &self.client),
            ("user", &self.user),
            ("host", &self.host),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        s.finish()
    }

    pub fn page_link(&self, page: usize) -> String {
        let q = self.encode();
        if q.is_empty() {
            format!("/decisions?page={page}")
        } else {
            format!("/decisions?{q}&page={page}")
        }
    }

    pub fn csv_link(&self) -> String {
        let q = self.encode();
        if q.is_empty() {
            "/decisions.csv".to_string()
        } else {
            format!("/decisions.csv?{q}")
        }
    }
}

#[derive(Serialize)]
struct Row {
    ts: String,
    client: String,
    user: Option<String>,
    method: String,
    url: String,
    full_url: String,
    host: String,
    category: Option<String>,
    rule: Option<String>,
    action: Option<String>,
    outcome: &'static str,
    status: u16,
    traffic: String,
    duration_ms: u64,
    reason: Option<String>,
}

fn row(r: Record) -> Row {
    Row {
        ts: time(r.ts),
        client: r.client,
        user: r.user,
        method: r.method,
        url: crate::respond::shorten_url(&r.url, 80),
        full_url: r.url,
        host: r.host,
        category: r.category,
        rule: r.rule,
        action: r.action,
        outcome: r.outcome.as_str(),
        status: r.status,
        traffic: bytes(r.bytes_up.saturating_add(r.bytes_down)),
        duration_ms: r.duration_ms,
        reason: r.reason,
    }
}

pub async fn page(state: &State, csrf: Option<&str>, raw_query: Option<&str>) -> Resp {
    let q = Query::parse(raw_query);
    let now = state.ctx.clock.now();
    let categories: Vec<String> = state
        .ctx
        .policy
        .load()
        .categories
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let render = |status: StatusCode,
                  error: Option<String>,
                  rows: Vec<Row>,
                  total: u64,
                  prev: Option<String>,
                  next: Option<String>| {
        let first = if rows.is_empty() {
            0
        } else {
            (q.page - 1) * PER_PAGE + 1
        };
        let last = (q.page - 1) * PER_PAGE + rows.len();
        state.pages.page(
            status,
            "decisions.html",
            context! {
                nav => "decisions",
                csrf,
                q => &q,
                error,
                rows,
                total,
                first,
                last,
                prev,
                next,
                csv => q.csv_link(),
                categories,
                actions => ACTIONS,
                outcomes => Outcome::ALL.map(Outcome::as_str),
            },
        )
    };
    let filter = match q.filter(now) {
        Ok(f) => f,
        Err(e) => return render(StatusCode::BAD_REQUEST, Some(e), Vec::new(), 0, None, None),
    };
    let path = state.ctx.journal_path.clone();
    let offset = (q.page - 1).saturating_mul(PER_PAGE);
    let read = tokio::task::spawn_blocking(move || {
        let db = store::connect(&path)?;
        let total = store::count(&db, &filter)?;
        let rows = store::query(&db, &filter, PER_PAGE, offset)?;
        Ok::<_, rusqlite::Error>((total, rows))
    })
    .await;
    match read {
        Ok(Ok((total, records))) => {
            let shown_to = offset as u64 + records.len() as u64;
            let prev = (q.page > 1).then(|| q.page_link(q.page - 1));
            let next = (shown_to < total).then(|| q.page_link(q.page + 1));
            let rows = records.into_iter().map(row).collect();
            render(StatusCode::OK, None, rows, total, prev, next)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "dashboard: cannot read the journal");
            render(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(format!("The journal could not be read: {e}")),
                Vec::new(),
                0,
                None,
                None,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "dashboard: journal read task failed");
            render(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some("The journal could not be read.".to_string()),
                Vec::new(),
                0,
                None,
                None,
            )
        }
    }
}

pub const CSV_HEADER: &str = "ts,client,user,method,url,host,category,rule,action,outcome,status,bytes_up,bytes_down,duration_ms,reason\n";

pub fn csv_line(r: &Record) -> String {
    let opt = |o: &Option<String>| o.as_deref().map(cell).unwrap_or_default();
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
        r.ts,
        cell(&r.client),
        opt(&r.user),
        cell(&r.method),
        cell(&r.url),
        cell(&r.host),
        opt(&r.category),
        opt(&r.rule),
        opt(&r.action),
        r.outcome.as_str(),
        r.status,
        r.bytes_up,
        r.bytes_down,
        r.duration_ms,
        opt(&r.reason),
    )
}

pub async fn csv(state: &State, raw_query: Option<&str>) -> Resp {
    let q = Query::parse(raw_query);
    let filter = match q.filter(state.ctx.clock.now()) {
        Ok(f) => f,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let path = state.ctx.journal_path.clone();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let (opened_tx, opened_rx) = oneshot::channel::<Result<(), String>>();
    tokio::task::spawn_blocking(move || {
        let db = match store::connect(&path) {
            Ok(db) => {
                let _ = opened_tx.send(Ok(()));
                db
            }
            Err(e) => {
                let _ = opened_tx.send(Err(e.to_string()));
                return;
            }
        };
        if tx
            .blocking_send(Ok(Bytes::from_static(CSV_HEADER.as_bytes())))
            .is_err()
        {
            return;
        }
        let mut offset = 0;
        while offset < MAX_EXPORT {
            let chunk =
                match store::query(&db, &filter, EXPORT_CHUNK.min(MAX_EXPORT - offset), offset) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(error = %e, "dashboard: CSV export failed part way");
                        let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                        return;
                    }
                };
            let n = chunk.len();
            let mut out = String::with_capacity(n * 160);
            for r in &chunk {
                out.push_str(&csv_line(r));
            }
            if !out.is_empty() && tx.blocking_send(Ok(Bytes::from(out))).is_err() {
                return; // the client went away
            }
            if n < EXPORT_CHUNK {
                break;
            }
            offset += n;
        }
        if offset >= MAX_EXPORT {
            tracing::warn!(
                rows = MAX_EXPORT,
                "dashboard: CSV export stopped at its limit; narrow the filters for the rest"
            );
        }
    });
    match opened_rx.await {
        Ok(Ok(())) => {
            let mut r = Response::new(AdminBody::Stream(rx));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            r.headers_mut().insert(
                CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"signpost-decisions.csv\""),
            );
            r
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "dashboard: cannot open the journal for export");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("The journal could not be read: {e}\n"),
            )
        }
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The journal could not be read.\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Outcome;

    #[test]
    fn query_round_trips_and_pages() {
        let q = Query::parse(Some(
            "since=24h&category=social&action=coach&host=WWW.Ning.com.&client=10.0.0.5&page=3&x=1",
        ));
        assert_eq!(q.page, 3);
        assert_eq!(q.host, "www.ning.com");
        let link = q.page_link(4);
        assert_eq!(
            link,
            "/decisions?since=24h&category=social&action=coach&client=10.0.0.5&host=www.ning.com&page=4"
        );
        let again = Query::parse(link.split_once('?').map(|(_, q)| q));
        assert_eq!(again.category, "social");
        assert_eq!(again.page, 4);
        assert_eq!(Query::parse(Some("page=0")).page, 1);
        assert_eq!(Query::parse(Some("page=-5")).page, 1);
        assert_eq!(Query::parse(None).csv_link(), "/decisions.csv");
        let now: Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
        let f = q.filter(now).unwrap();
        assert_eq!(f.since.unwrap().to_string(), "2026-11-21T12:00:00Z");
        assert!(Query::parse(Some("until=soon")).filter(now).is_err());
    }

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("=1+1"), "'=1+1");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("-1"), "'-1");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("\t=1"), "'\t=1");
        assert_eq!(
            cell("=HYPERLINK(\"x\",\"y\")"),
            "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\""
        );
        let r = Record {
            ts: "2026-11-22T10:00:00Z".parse().unwrap(),
            client: "10.0.0.5".into(),
            user: None,
            method: "GET".into(),
            url: "http://a.example/".into(),
            host: "a.example".into(),
            category: Some("social".into()),
            rule: Some("coach, social".into()),
            action: Some("coach".into()),
            outcome: Outcome::Acknowledged,
            status: 303,
            bytes_up: 1,
            bytes_down: 2,
            duration_ms: 3,
            reason: Some("=cmd|' /C calc'!A0".into()),
        };
        let line = csv_line(&r);
        assert_eq!(
            line,
            "2026-11-22T10:00:00Z,10.0.0.5,,GET,http://a.example/,a.example,social,\"coach, social\",coach,acknowledged,303,1,2,3,'=cmd|' /C calc'!A0\n"
        );
        assert_eq!(
            CSV_HEADER.matches(',').count(),
            line.matches(',').count() - 1,
            "one comma is inside a quoted field"
        );
    }
}
