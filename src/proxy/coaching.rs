//! Decide and act for coached categories: combine a classification with the
//! acknowledgement store, show the interstitial, and take acknowledgements.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ORIGIN, REFERER};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use jiff::Timestamp;

use super::body::ProxyBody;
use super::journaling::Pending;
use super::Shared;
use crate::coach::{self, Ack};
use crate::config::{AckScope, Action};
use crate::journal::Outcome;
use crate::policy::{Classification, Policy};
use crate::respond::CoachPage;

/// What to do with a classified request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward or tunnel it (allow, monitor, or coach already acknowledged).
    Pass,
    /// Show the guidance for this category first.
    Coach(u16),
    Block,
}

/// The largest acknowledgement form accepted (a token, a URL and a short reason).
const FORM_LIMIT: usize = 16 * 1024;
const REASON_LIMIT: usize = 500;

/// The key an acknowledgement is stored under.
pub fn ack_key(scope: AckScope, category: &str, host: &str) -> String {
    match scope {
        AckScope::Category => category.to_string(),
        AckScope::Host => format!("{category}@{host}"),
    }
}

/// Whether `identity` holds a current acknowledgement for `category` (by name) at `host`.
pub fn acknowledged(
    shared: &Shared,
    identity: &str,
    category: &str,
    host: &str,
    now: Timestamp,
) -> bool {
    shared.acks.is_valid(
        &shared.journal.hide(identity),
        &ack_key(shared.ack_scope, category, host),
        now,
    )
}

/// Combines the classification with the acknowledgement store.
pub fn verdict(
    shared: &Shared,
    policy: &Policy,
    c: &Classification,
    identity: &str,
    host: &str,
    now: Timestamp,
) -> Verdict {
    match c.action {
        Action::Allow | Action::Monitor => Verdict::Pass,
        Action::Block => Verdict::Block,
        Action::Coach => {
            let Some(cat) = c.category else {
                // A coach rule without a category condition and a host in no category:
                // there is no guidance to show, so it passes.
                return Verdict::Pass;
            };
            let name = policy.category(cat).map_or("", |c| c.name.as_str());
            if acknowledged(shared, identity, name, host, now) {
                Verdict::Pass
            } else {
                Verdict::Coach(cat)
            }
        }
    }
}

/// The deciding rule's message, if it has one.
pub fn rule_message(policy: &Policy, c: &Classification) -> Option<String> {
    c.rule
        .and_then(|r| policy.rules.get(r))
        .and_then(|r| r.message.clone())
}

/// The interstitial for `category`, with a fresh token.
#[allow(clippy::too_many_arguments)]
pub fn interstitial(
    shared: &Shared,
    policy: &Policy,
    category: u16,
    message: Option<String>,
    identity: &str,
    host: &str,
    url: &str,
    now: Timestamp,
    error: Option<String>,
) -> Response<ProxyBody> {
    let Some(cat) = policy.category(category) else {
        return shared.responder.refused_quietly(Action::Coach);
    };
    shared.responder.coach(CoachPage {
        url: url.to_string(),
        category_name: cat.name.clone(),
        category_title: cat.title.clone(),
        guidance_html: cat.guidance_html.clone(),
        message,
        token: shared.tokens.issue(identity, &cat.name, host, now),
        require_reason: cat.require_reason,
        error,
        remind_after: humantime::format_duration(cat.acknowledge_for).to_string(),
    })
}

/// What an acknowledgement attempt was about, for its journal record.
#[derive(Debug, Default)]
pub struct AckNote {
    pub category: Option<String>,
    pub reason: Option<String>,
}

impl AckNote {
    /// Fills the record and says what the outcome was: acknowledged (303), guidance shown
    /// again (200, a reason was missing), or refused.
    pub fn apply(self, p: &mut Pending, status: StatusCode) -> Outcome {
        p.set_category(self.category);
        p.set_reason(self.reason);
        match status {
            StatusCode::SEE_OTHER => Outcome::Acknowledged,
            StatusCode::OK => Outcome::Coached,
            _ => Outcome::Denied,
        }
    }
}

/// Handles `POST /.well-known/signpost/acknowledge` on `site` (`scheme://authority` of
/// the coached origin).
pub async fn acknowledge(
    shared: &Shared,
    policy: &Policy,
    identity: &str,
    site: &str,
    host: &str,
    req: Request<Incoming>,
    now: Timestamp,
) -> (Response<ProxyBody>, AckNote) {
    let mut note = AckNote::default();
    let refuse = |why: &str| {
        tracing::info!(client = identity, host, why, "acknowledgement refused");
        shared.responder.acknowledgement_refused(why)
    };
    let resp = take_acknowledgement(
        shared, policy, identity, site, host, req, now, &mut note, refuse,
    )
    .await;
    (resp, note)
}

#[allow(clippy::too_many_arguments)]
async fn take_acknowledgement(
    shared: &Shared,
    policy: &Policy,
    identity: &str,
    site: &str,
    host: &str,
    req: Request<Incoming>,
    now: Timestamp,
    note: &mut AckNote,
    refuse: impl Fn(&str) -> Response<ProxyBody>,
) -> Response<ProxyBody> {
    // The form must come from the coached site's own page (when the browser says).
    if let Some(origin) = req.headers().get(ORIGIN) {
        if !origin.as_bytes().eq_ignore_ascii_case(site.as_bytes()) {
            return refuse("the form was not sent from the site's own page");
        }
    }
    if let Some(referer) = req.headers().get(REFERER).and_then(|r| r.to_str().ok()) {
        if !matches!(after_site(referer, site), Some([] | [b'/', ..])) {
            return refuse("the form was not sent from the site's own page");
        }
    }
    let body: Bytes = match Limited::new(req.into_body(), FORM_LIMIT).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return refuse("the form was too large or incomplete"),
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let (Some(token), Some(category_name)) = (form.get("token"), form.get("category")) else {
        return refuse("the form was incomplete");
    };
    let Some((category_id, category)) = policy
        .categories
        .iter()
        .enumerate()
        .find(|(_, c)| &c.name == category_name)
    else {
        return refuse("the form names no known category");
    };
    note.category = Some(category.name.clone());
    if let Err(e) = shared
        .tokens
        .verify(token, identity, category_name, host, now)
    {
        return refuse(&e.to_string());
    }
    let return_url = form
        .get("url")
        .filter(|u| same_site(u, site))
        .cloned()
        .unwrap_or_else(|| format!("{site}/"));
    let reason: Option<String> = form
        .get("reason")
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .map(|r| {
            r.chars()
                .filter(|c| !c.is_control())
                .take(REASON_LIMIT)
                .collect()
        });
    note.reason = reason.clone();
    if category.require_reason && reason.is_none() {
        let Ok(category_id) = u16::try_from(category_id) else {
            return refuse("the form names no known category");
        };
        return interstitial(
            shared,
            policy,
            category_id,
            None,
            identity,
            host,
            &return_url,
            now,
            Some("Please say briefly why you need this site, then continue.".into()),
        );
    }
    let until = now
        .checked_add(
            jiff::SignedDuration::try_from(category.acknowledge_for)
                .unwrap_or(jiff::SignedDuration::ZERO),
        )
        .unwrap_or(now);
    let ack = Ack {
        identity: shared.journal.hide(identity),
        key: ack_key(shared.ack_scope, &category.name, host),
        host: host.to_string(),
        reason,
        at: now,
        until,
    };
    let store = Arc::clone(&shared.acks);
    let recorded = tokio::task::spawn_blocking(move || store.record(&ack).map(|_| ack)).await;
    match recorded {
        Ok(Ok(ack)) => {
            tracing::info!(
                client = identity,
                category = %ack.key,
                host,
                until = %ack.until,
                reason = ack.reason.as_deref().unwrap_or(""),
                "acknowledged"
            );
            shared
                .responder
                .redirect_and_close(StatusCode::SEE_OTHER, &return_url)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "could not record an acknowledgement");
            refuse("the acknowledgement could not be recorded; please try again")
        }
        Err(e) => {
            tracing::error!(error = %e, "the acknowledgement task failed");
            refuse("the acknowledgement could not be recorded; please try again")
        }
    }
}

/// Is `url` on `site` (same scheme and authority)? Keeps the redirect from leaving it.
fn same_site(url: &str, site: &str) -> bool {
    matches!(after_site(url, site), Some([b'/', ..])) && http::HeaderValue::from_str(url).is_ok()
}

/// What follows `site` at the start of `text` (compared ignoring ASCII case), if it starts
/// with it. Compares bytes, so text with a multi-byte character where `site` ends is
/// simply not on the site.
fn after_site<'a>(text: &'a str, site: &str) -> Option<&'a [u8]> {
    let (head, rest) = text.as_bytes().split_at_checked(site.len())?;
    head.eq_ignore_ascii_case(site.as_bytes()).then_some(rest)
}

/// Whether a request is for the acknowledgement endpoint.
pub fn is_acknowledgement(req: &Request<Incoming>) -> bool {
    req.method() == http::Method::POST && req.uri().path() == coach::ACKNOWLEDGE_PATH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_urls_stay_on_the_site() {
        let site = "https://www.ning.com";
        assert!(same_site("https://www.ning.com/groups?x=1", site));
        assert!(!same_site("https://www.ning.com.evil.example/", site));
        assert!(!same_site("https://evil.example/", site));
        assert!(!same_site("https://www.ning.com", site));
        assert!(!same_site("https://www.ning.com/\r\nSet-Cookie: x", site));
        // A multi-byte character across the end of `site` is not on it (and no panic).
        assert!(!same_site("https://www.ning.co\u{e9}/", site));
        assert!(!same_site("https://www.ning.c\u{20ac}/", site));
    }
}
