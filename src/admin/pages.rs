//! Page rendering: the dashboard's templates (built into the binary, auto-escaped because
//! their names end in `.html`) and the formatting they share.

use http::StatusCode;
use jiff::Timestamp;
use minijinja::Environment;
use serde::Serialize;

use super::body::{html, Resp};
/// Byte counts read as in `signpost review`.
pub use crate::journal::review::bytes;

const TEMPLATES: [(&str, &str); 10] = [
    ("layout.html", include_str!("templates/layout.html")),
    ("charts.html", include_str!("templates/charts.html")),
    ("login.html", include_str!("templates/login.html")),
    ("setup.html", include_str!("templates/setup.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("decisions.html", include_str!("templates/decisions.html")),
    (
        "acknowledgements.html",
        include_str!("templates/acknowledgements.html"),
    ),
    ("explain.html", include_str!("templates/explain.html")),
    ("reload.html", include_str!("templates/reload.html")),
    ("message.html", include_str!("templates/message.html")),
];

pub struct Pages {
    env: Environment<'static>,
}

impl Default for Pages {
    fn default() -> Self {
        Pages::new()
    }
}

impl Pages {
    pub fn new() -> Pages {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            // Covered by tests: a broken template is a build defect, reported when the page
            // is asked for rather than by a panic.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "dashboard template does not compile");
            }
        }
        Pages { env }
    }

    pub fn render<S: Serialize>(&self, name: &str, ctx: S) -> String {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .unwrap_or_else(|e| {
                tracing::error!(template = name, error = %e, "dashboard page did not render");
                "<!doctype html><title>Signpost</title><p>Signpost could not render this page.</p>"
                    .to_string()
            })
    }

    pub fn page<S: Serialize>(&self, status: StatusCode, name: &str, ctx: S) -> Resp {
        html(status, self.render(name, ctx))
    }

    /// A short page with a heading and a sentence or two.
    pub fn message(
        &self,
        status: StatusCode,
        csrf: Option<&str>,
        heading: &str,
        text: &str,
    ) -> Resp {
        self.page(
            status,
            "message.html",
            minijinja::context! { nav => "", csrf, heading, text, status => status.as_u16() },
        )
    }
}

/// A time as the dashboard shows it (UTC, to the second).
pub fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// Reads a time typed into a form: a span back from now (`24h`, `7d`), a date
/// (`2026-11-22`), a date and time in UTC (`2026-11-22T10:00`, as `datetime-local` inputs
/// send it), or RFC 3339 with an offset.
pub fn parse_time(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let t = text.trim();
    let refuse = || {
        format!(
            "“{t}” is not a time: write a span back from now (24h, 7d), a date (2026-11-22), \
             a date and time in UTC (2026-11-22T10:00) or RFC 3339"
        )
    };
    if t.starts_with(|c: char| c.is_ascii_digit()) && t.ends_with(|c: char| c.is_ascii_alphabetic())
    {
        if let Ok(span) = humantime::parse_duration(t) {
            let span = jiff::SignedDuration::try_from(span).map_err(|_| refuse())?;
            return now.checked_sub(span).map_err(|_| refuse());
        }
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts);
    }
    let civil = t.replacen(' ', "T", 1);
    if let Ok(dt) = civil.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|_| refuse());
    }
    if let Ok(d) = civil.parse::<jiff::civil::Date>() {
        return d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|_| refuse());
    }
    Err(refuse())
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn every_template_compiles_and_escapes() {
        let pages = Pages::new();
        for (name, _) in TEMPLATES {
            assert!(pages.env.get_template(name).is_ok(), "{name}");
        }
        let html = pages.render(
            "message.html",
            context! { heading => "<b>hi</b>", text => "a & \"b\"", csrf => "<x>", nav => "" },
        );
        assert!(html.contains("&lt;b&gt;hi&lt;"), "{html}");
        assert!(!html.contains("<b>hi"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn times_people_type() {
        let now: Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
        let p = |s| parse_time(s, now).map(|t| t.to_string());
        assert_eq!(p("24h").unwrap(), "2026-11-21T12:00:00Z");
        assert_eq!(p("7d").unwrap(), "2026-11-15T12:00:00Z");
        assert_eq!(p("2026-11-20").unwrap(), "2026-11-20T00:00:00Z");
        assert_eq!(p("2026-11-20T10:30").unwrap(), "2026-11-20T10:30:00Z");
        assert_eq!(p("2026-11-20 10:30:05").unwrap(), "2026-11-20T10:30:05Z");
        assert_eq!(
            p("2026-11-20T10:30:00+01:00").unwrap(),
            "2026-11-20T09:30:00Z"
        );
        assert!(p("yesterday").is_err());
        assert!(p("2026-13-01").is_err());
    }

    #[test]
    fn byte_counts() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
