//! `/acknowledgements`: who has read which guidance, until when, and why; each can be
//! revoked, so that the person sees the guidance again on their next visit.

use std::sync::Arc;

use http::StatusCode;
use minijinja::context;
use serde::Serialize;

use super::body::{see_other, Resp};
use super::pages::time;
use super::State;
use crate::coach::Ack;

/// Acknowledgements listed at most.
pub const LIMIT: usize = 1000;

#[derive(Serialize)]
struct Row {
    identity: String,
    key: String,
    host: String,
    reason: Option<String>,
    at: String,
    until: String,
}

fn row(a: Ack) -> Row {
    Row {
        at: time(a.at),
        until: time(a.until),
        identity: a.identity,
        key: a.key,
        host: a.host,
        reason: a.reason,
    }
}

pub async fn page(state: &State, csrf: Option<&str>, raw_query: Option<&str>) -> Resp {
    let now = state.ctx.clock.now();
    let acks = Arc::clone(&state.ctx.acks);
    let listed = tokio::task::spawn_blocking(move || acks.list(now, LIMIT)).await;
    let notice = form_urlencoded::parse(raw_query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "revoked")
        .map(|(_, v)| {
            if v == "1" {
                "The acknowledgement was revoked: the guidance will be shown again."
            } else {
                "That acknowledgement had already expired or been revoked."
            }
        });
    let (status, rows, error) = match listed {
        Ok(Ok(list)) => (
            StatusCode::OK,
            list.into_iter().map(row).collect::<Vec<_>>(),
            None,
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "dashboard: cannot list acknowledgements");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Vec::new(),
                Some(format!("The acknowledgements could not be read: {e}")),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "dashboard: acknowledgement task failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Vec::new(),
                Some("The acknowledgements could not be read.".to_string()),
            )
        }
    };
    state.pages.page(
        status,
        "acknowledgements.html",
        context! { nav => "acknowledgements", csrf, rows, error, notice, limit => LIMIT },
    )
}

/// `POST /acknowledgements/revoke` with `identity` and `key`.
pub async fn revoke(state: &State, csrf: Option<&str>, form: &[(String, String)]) -> Resp {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let (Some(identity), Some(key)) = (field("identity"), field("key")) else {
        return state.pages.message(
            StatusCode::BAD_REQUEST,
            csrf,
            "Nothing to revoke",
            "The form did not say whose acknowledgement to revoke.",
        );
    };
    let acks = Arc::clone(&state.ctx.acks);
    let (who, what) = (identity.clone(), key.clone());
    match tokio::task::spawn_blocking(move || acks.revoke(&who, &what)).await {
        Ok(Ok(changed)) => {
            tracing::info!(identity = %identity, key = %key, changed, "dashboard: acknowledgement revoked");
            see_other(if changed {
                "/acknowledgements?revoked=1"
            } else {
                "/acknowledgements?revoked=0"
            })
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "dashboard: cannot revoke an acknowledgement");
            state.pages.message(
                StatusCode::INTERNAL_SERVER_ERROR,
                csrf,
                "The acknowledgement was not revoked",
                &e.to_string(),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "dashboard: revoke task failed");
            state.pages.message(
                StatusCode::INTERNAL_SERVER_ERROR,
                csrf,
                "The acknowledgement was not revoked",
                "The store could not be reached.",
            )
        }
    }
}
