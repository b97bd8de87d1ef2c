//! File sinks for the log ecosystem: JSON lines (Loki, Elastic, Splunk shippers) and
//! Squid's native access.log format (SARG, Calamaris, squidanalyzer). Both are appended to
//! and reopened on request, for logrotate.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::record::{Outcome, Record};
use super::JournalError;

struct Sink {
    path: PathBuf,
    file: BufWriter<File>,
}

impl Sink {
    fn open(path: &Path) -> std::io::Result<Sink> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        // Readable by a log shipper's group, never by everyone: it records what people did.
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)?;
        Ok(Sink {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(64 * 1024, file),
        })
    }
}

/// The configured file sinks.
#[derive(Default)]
pub struct Sinks {
    jsonl: Option<Sink>,
    squid: Option<Sink>,
}

impl Sinks {
    pub fn open(jsonl: Option<&Path>, squid: Option<&Path>) -> Result<Sinks, JournalError> {
        let open = |p: &Path| {
            Sink::open(p).map_err(|source| JournalError::Sink {
                path: p.display().to_string(),
                source,
            })
        };
        Ok(Sinks {
            jsonl: jsonl.map(open).transpose()?,
            squid: squid.map(open).transpose()?,
        })
    }

    /// Appends a batch and flushes it.
    pub fn write(&mut self, batch: &[Record]) -> std::io::Result<()> {
        if let Some(s) = self.jsonl.as_mut() {
            for r in batch {
                serde_json::to_writer(&mut s.file, r)?;
                s.file.write_all(b"\n")?;
            }
            s.file.flush()?;
        }
        if let Some(s) = self.squid.as_mut() {
            for r in batch {
                s.file.write_all(squid_line(r).as_bytes())?;
            }
            s.file.flush()?;
        }
        Ok(())
    }

    /// Reopens every file by name (after logrotate moved the old one aside).
    pub fn reopen(&mut self) {
        for slot in [&mut self.jsonl, &mut self.squid] {
            if let Some(s) = slot.as_mut() {
                let _ = s.file.flush();
                match Sink::open(&s.path) {
                    Ok(new) => *s = new,
                    Err(e) => {
                        tracing::warn!(file = %s.path.display(), error = %e, "cannot reopen a journal file")
                    }
                }
            }
        }
    }
}

/// One line in Squid's native format:
/// `time elapsed client code/status bytes method url user hierarchy/peer type`.
pub fn squid_line(r: &Record) -> String {
    let ms = r.ts.as_millisecond();
    let code = match r.outcome {
        Outcome::Forwarded | Outcome::Error => "TCP_MISS",
        Outcome::Tunnelled => "TCP_TUNNEL",
        Outcome::Coached | Outcome::Blocked | Outcome::Denied => "TCP_DENIED",
        Outcome::Acknowledged => "NONE_NONE",
    };
    let hierarchy = match r.outcome {
        Outcome::Forwarded | Outcome::Tunnelled => format!("HIER_DIRECT/{}", r.host),
        _ => "HIER_NONE/-".to_string(),
    };
    // Squid logs CONNECT targets as host:port.
    let url = if r.method == "CONNECT" {
        r.url
            .split_once("://")
            .map_or(r.url.as_str(), |(_, rest)| rest)
    } else {
        r.url.as_str()
    };
    let user = r.user.as_deref().filter(|u| !u.is_empty()).unwrap_or("-");
    format!(
        "{}.{:03} {:>6} {} {}/{:03} {} {} {} {} {} -\n",
        ms.div_euclid(1000),
        ms.rem_euclid(1000),
        r.duration_ms,
        r.client,
        code,
        r.status,
        r.bytes_down,
        r.method,
        no_spaces(url),
        no_spaces(user),
        hierarchy,
    )
}

/// Squid's format is space-separated; a field must never contain a space or newline.
fn no_spaces(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_whitespace() { '+' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squid_lines_look_like_squids() {
        let r = Record {
            ts: "2026-11-22T12:00:00.123Z".parse().unwrap(),
            client: "10.0.0.5".into(),
            user: None,
            method: "GET".into(),
            url: "http://example.org/index.html".into(),
            host: "example.org".into(),
            category: None,
            rule: None,
            action: Some("allow".into()),
            outcome: Outcome::Forwarded,
            status: 200,
            bytes_up: 300,
            bytes_down: 4321,
            duration_ms: 57,
            reason: None,
        };
        assert_eq!(
            squid_line(&r),
            "1795348800.123     57 10.0.0.5 TCP_MISS/200 4321 GET http://example.org/index.html - HIER_DIRECT/example.org -\n"
        );
        let t = Record {
            method: "CONNECT".into(),
            url: "https://www.ning.com:443".into(),
            outcome: Outcome::Tunnelled,
            ..r
        };
        assert!(
            squid_line(&t).contains(" TCP_TUNNEL/200 4321 CONNECT www.ning.com:443 - HIER_DIRECT/")
        );
    }
}
