//! Reading host and URL entries: from the config and from squidGuard/UT1 list folders
//! (`domains` and `urls` files, `#` comments, any case, IDN names). A bad line is skipped
//! and counted, never fatal: real blacklists always hold a few.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::net;

/// A host entry after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEntry {
    /// A name (covers subdomains) or an IP literal (exact).
    Name(String),
    /// A `*`/`?` pattern, matched against the whole host.
    Glob(String),
}

/// Normalises one host entry: lower case, no trailing dot, IDN to punycode. A leading `.`
/// (as some lists write "and subdomains") is dropped, since names cover subdomains anyway.
pub fn host_entry(raw: &str) -> Result<HostEntry, String> {
    let text = raw.trim();
    if text.contains('*') || text.contains('?') {
        // A trailing dot means the same name, as for plain entries.
        let text = text.strip_suffix('.').unwrap_or(text);
        if text.ends_with('.') || text.contains("..") {
            return Err(format!(
                "`{text}` is not a host pattern: it has an empty label"
            ));
        }
        let ok = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*' | b'?'));
        return if ok {
            Ok(HostEntry::Glob(text.to_ascii_lowercase()))
        } else {
            Err(format!("`{text}` is not a host pattern"))
        };
    }
    let text = text.strip_prefix('.').unwrap_or(text);
    if let Ok(ip) = text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(HostEntry::Name(ip.to_string()));
    }
    if text.is_ascii() {
        return net::normalise_name(text)
            .map(HostEntry::Name)
            .map_err(|e| e.to_string());
    }
    let ascii =
        idna::domain_to_ascii(text).map_err(|_| format!("`{text}` is not a valid IDN name"))?;
    net::normalise_name(&ascii)
        .map(HostEntry::Name)
        .map_err(|e| e.to_string())
}

/// A `host/path` entry, as in squidGuard `urls` files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlEntry {
    pub host: String,
    /// Starts with `/`; lower case.
    pub path: String,
}

pub fn url_entry(raw: &str) -> Result<UrlEntry, String> {
    let text = raw.trim();
    let text = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .unwrap_or(text);
    let (host, path) = match text.find('/') {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, "/"),
    };
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    match host_entry(host)? {
        HostEntry::Name(host) => Ok(UrlEntry {
            host,
            path: path.to_ascii_lowercase(),
        }),
        HostEntry::Glob(_) => Err(format!("`{text}`: URL entries cannot use patterns")),
    }
}

/// One bad line, reported by `signpost check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub file: PathBuf,
    pub line: u32,
    pub why: String,
}

/// What one list file held.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    pub file: PathBuf,
    pub entries: usize,
    pub skipped: usize,
    /// The first few bad lines.
    pub first_bad: Vec<BadLine>,
}

const BAD_LINES_KEPT: usize = 5;

/// Reads a list file line by line, calling `each` with (line number, text) for each entry
/// line; `each` returns an error for a line it cannot use.
pub fn read_list(
    file: &Path,
    mut each: impl FnMut(u32, &str) -> Result<(), String>,
) -> std::io::Result<FileReport> {
    let bytes = std::fs::read(file)?;
    let mut report = FileReport {
        file: file.to_path_buf(),
        ..FileReport::default()
    };
    for (n, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = u32::try_from(n + 1).unwrap_or(u32::MAX);
        let result = match std::str::from_utf8(raw) {
            Err(_) => Err("not valid UTF-8".to_string()),
            Ok(text) => {
                let text = text.split('#').next().unwrap_or("").trim();
                if text.is_empty() {
                    continue;
                }
                each(line, text)
            }
        };
        match result {
            Ok(()) => report.entries += 1,
            Err(why) => {
                report.skipped += 1;
                if report.first_bad.len() < BAD_LINES_KEPT {
                    report.first_bad.push(BadLine {
                        file: file.to_path_buf(),
                        line,
                        why,
                    });
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_entries_normalise() {
        assert_eq!(
            host_entry("Ning.COM.").unwrap(),
            HostEntry::Name("ning.com".into())
        );
        assert_eq!(
            host_entry(".ning.com").unwrap(),
            HostEntry::Name("ning.com".into())
        );
        assert_eq!(
            host_entry("bücher.example").unwrap(),
            HostEntry::Name("xn--bcher-kva.example".into())
        );
        assert_eq!(
            host_entry("*.Ning.com").unwrap(),
            HostEntry::Glob("*.ning.com".into())
        );
        assert_eq!(
            host_entry("10.0.0.1").unwrap(),
            HostEntry::Name("10.0.0.1".into())
        );
        assert!(host_entry("not a host").is_err());
        assert!(host_entry("a..b").is_err());
    }

    #[test]
    fn url_entries_split_host_and_path() {
        assert_eq!(
            url_entry("Example.com/Path/To").unwrap(),
            UrlEntry {
                host: "example.com".into(),
                path: "/path/to".into()
            }
        );
        assert_eq!(url_entry("example.com:8080/x").unwrap().host, "example.com");
        assert_eq!(url_entry("http://example.com").unwrap().path, "/");
    }

    #[test]
    fn list_files_skip_and_count_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("domains");
        std::fs::write(
            &f,
            b"# header\n\nGood.example\nbad entry\n\xff\xfe\nok.example # note\n",
        )
        .unwrap();
        let mut seen = Vec::new();
        let report = read_list(&f, |line, text| {
            let e = host_entry(text)?;
            seen.push((line, e));
            Ok(())
        })
        .unwrap();
        assert_eq!(report.entries, 2);
        assert_eq!(report.skipped, 2);
        assert_eq!(report.first_bad[0].line, 4);
        assert_eq!(report.first_bad[1].line, 5);
        assert_eq!(seen[0], (3, HostEntry::Name("good.example".into())));
    }
}
