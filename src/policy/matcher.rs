//! Host and URL matchers: a domain index for names, a glob set for patterns, and
//! path-prefix entries per host for URLs.

use std::collections::HashMap;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::domains::{DomainIndex, Hit, SourceRef};
use super::lists::{HostEntry, UrlEntry};

/// A match found for a request: which category, from which source, through which entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub category: u16,
    pub source: SourceRef,
    /// The entry that matched: a name, a pattern, or `host/path`.
    pub entry: String,
}

/// Names and patterns, each tagged with a category.
#[derive(Default)]
pub struct HostMatcher {
    names: DomainIndex,
    globs: Option<GlobSet>,
    glob_tags: Vec<(String, u16, SourceRef)>,
    pending: Option<GlobSetBuilder>,
}

impl HostMatcher {
    pub fn with_capacity(n: usize) -> Self {
        HostMatcher {
            names: DomainIndex::with_capacity(n),
            ..HostMatcher::default()
        }
    }

    pub fn add(
        &mut self,
        entry: &HostEntry,
        category: u16,
        source: SourceRef,
    ) -> Result<(), String> {
        match entry {
            HostEntry::Name(name) => {
                if self.names.insert(name, category, source) {
                    Ok(())
                } else {
                    Err("the domain index is full".into())
                }
            }
            HostEntry::Glob(pattern) => {
                let glob = GlobBuilder::new(pattern)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| format!("error parsing glob '{pattern}': {e}"))?;
                self.pending
                    .get_or_insert_with(GlobSetBuilder::new)
                    .add(glob);
                self.glob_tags.push((pattern.clone(), category, source));
                Ok(())
            }
        }
    }

    pub fn finish(&mut self) -> Result<(), String> {
        if let Some(builder) = self.pending.take() {
            self.globs = Some(builder.build().map_err(|e| e.to_string())?);
        }
        Ok(())
    }

    /// Every match for `host`: names most specific first, then patterns.
    pub fn find(&self, host: &str, is_ip: bool, out: &mut Vec<Found>) {
        self.names.lookup(host, is_ip, |name, hit: &Hit| {
            out.push(Found {
                category: hit.category,
                source: hit.source,
                entry: name.to_string(),
            })
        });
        if let Some(globs) = &self.globs {
            for i in globs.matches(host) {
                let (pattern, category, source) = &self.glob_tags[i];
                out.push(Found {
                    category: *category,
                    source: *source,
                    entry: pattern.clone(),
                });
            }
        }
    }

    /// Does anything match `host` (any category)?
    pub fn matches(&self, host: &str, is_ip: bool) -> bool {
        let mut any = false;
        self.names.lookup(host, is_ip, |_, _| any = true);
        any || self.globs.as_ref().is_some_and(|g| g.is_match(host))
    }

    pub fn len(&self) -> usize {
        self.names.len() + self.glob_tags.len()
    }

    pub fn reserve(&mut self, names: usize) {
        self.names.reserve(names);
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn heap_bytes(&self) -> usize {
        self.names.heap_bytes()
    }
}

/// URL prefixes per host; a host entry covers its subdomains, a path prefix matches at a
/// segment boundary (`/news` matches `/news`, `/news/x`, `/news?x`, not `/newsletter`).
#[derive(Default)]
pub struct UrlMatcher {
    by_host: HashMap<String, Vec<(String, u16, SourceRef)>>,
}

impl UrlMatcher {
    pub fn add(&mut self, entry: UrlEntry, category: u16, source: SourceRef) {
        self.by_host
            .entry(entry.host)
            .or_default()
            .push((entry.path, category, source));
    }

    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_host.values().map(Vec::len).sum()
    }

    pub fn find(&self, host: &str, path: &str, out: &mut Vec<Found>) {
        if self.by_host.is_empty() {
            return;
        }
        let mut rest = host;
        loop {
            if let Some(entries) = self.by_host.get(rest) {
                for (prefix, category, source) in entries {
                    if path_has_prefix(path, prefix) {
                        out.push(Found {
                            category: *category,
                            source: *source,
                            entry: format!("{rest}{prefix}"),
                        });
                    }
                }
            }
            match rest.find('.') {
                Some(dot) => rest = &rest[dot + 1..],
                None => return,
            }
        }
    }
}

fn path_has_prefix(path: &str, prefix: &str) -> bool {
    let (p, x) = (path.as_bytes(), prefix.as_bytes());
    if p.len() < x.len() || !p[..x.len()].eq_ignore_ascii_case(x) {
        return false;
    }
    x.ends_with(b"/") || p.len() == x.len() || matches!(p[x.len()], b'/' | b'?' | b'#' | b';')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_at_segment_boundaries() {
        assert!(path_has_prefix("/news", "/news"));
        assert!(path_has_prefix("/News/today", "/news"));
        assert!(path_has_prefix("/news?x=1", "/news"));
        assert!(!path_has_prefix("/newsletter", "/news"));
        assert!(path_has_prefix("/anything", "/"));
    }

    #[test]
    fn globs_are_case_insensitive_and_cross_dots() {
        let mut m = HostMatcher::default();
        let src = SourceRef { file: 0, line: 1 };
        m.add(&HostEntry::Glob("*.ning.com".into()), 3, src)
            .unwrap();
        m.add(&HostEntry::Glob("ads?.example".into()), 4, src)
            .unwrap();
        m.finish().unwrap();
        let mut out = Vec::new();
        m.find("a.b.ning.com", false, &mut out);
        assert_eq!(out.len(), 1);
        assert!(!m.matches("ning.com", false), "*.x does not match x itself");
        assert!(m.matches("ads1.example", false));
        assert!(!m.matches("ads12.example", false));
    }
}
