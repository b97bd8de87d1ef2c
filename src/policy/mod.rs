//! The compiled policy: categories, their host/URL/list entries, schedules, groups and
//! rules, turned from config into one immutable value. Classification ([`classify()`]) is
//! a pure function of this value, the request, the client and an instant.
//!
//! A policy is compiled off the hot path and swapped whole on reload, so a request sees
//! one policy, never half of two.

pub mod classify;
pub mod domains;
pub mod lists;
pub mod matcher;
pub mod schedule;

use std::collections::HashMap;
use std::path::PathBuf;

use http::Method;

use crate::config::{Action, Config, ConfigError, ConfigErrors, Locator, Seg};
use crate::net::Cidr;
use domains::SourceRef;
use lists::{FileReport, HostEntry};
use matcher::{HostMatcher, UrlMatcher};
use schedule::Schedule;

pub use classify::{classify, explain, Classification, Explanation, Request};

/// A category of sites, as compiled.
#[derive(Debug, Clone)]
pub struct Category {
    pub name: String,
    pub title: String,
    /// The guidance, rendered to HTML (raw HTML in it escaped).
    pub guidance_html: Option<String>,
    /// Ask for a reason before continuing.
    pub require_reason: bool,
    /// How long an acknowledgement for this category lasts.
    pub acknowledge_for: std::time::Duration,
}

/// A rule, as compiled: conditions that must all hold, and an action.
pub struct Rule {
    pub name: String,
    /// Line in the config where the rule starts (for `explain`).
    pub line: u32,
    pub categories: Option<Vec<u16>>,
    pub hosts: Option<HostMatcher>,
    pub clients: Option<Vec<Cidr>>,
    /// Lower-cased user names.
    pub users: Option<Vec<String>>,
    /// Groups by name: members listed in config, or directory groups of that name.
    pub groups: Option<Vec<GroupRef>>,
    pub schedules: Option<Vec<usize>>,
    pub methods: Option<Vec<Method>>,
    pub action: Action,
    pub message: Option<String>,
}

/// A group a rule names.
#[derive(Debug, Clone)]
pub struct GroupRef {
    /// Lower-cased, to compare with directory groups.
    pub name: String,
    /// Lower-cased members from `[group.NAME] users`.
    pub users: Vec<String>,
}

/// Everything a classification needs, compiled once.
pub struct Policy {
    pub categories: Vec<Category>,
    hosts: HostMatcher,
    urls: UrlMatcher,
    pub schedules: Vec<Schedule>,
    pub rules: Vec<Rule>,
    /// Files entries came from; `SourceRef::file` indexes this. 0 is the config file.
    pub sources: Vec<PathBuf>,
    /// What each list file held, for `check`.
    pub list_reports: Vec<FileReport>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (hosts, urls) = self.entry_counts();
        f.debug_struct("Policy")
            .field("categories", &self.categories.len())
            .field("rules", &self.rules.len())
            .field("host_entries", &hosts)
            .field("url_entries", &urls)
            .finish()
    }
}

impl Policy {
    /// An empty policy: everything is allowed.
    pub fn empty() -> Policy {
        Policy {
            categories: Vec::new(),
            hosts: HostMatcher::default(),
            urls: UrlMatcher::default(),
            schedules: Vec::new(),
            rules: Vec::new(),
            sources: vec![PathBuf::new()],
            list_reports: Vec::new(),
        }
    }

    pub fn category(&self, id: u16) -> Option<&Category> {
        self.categories.get(id as usize)
    }

    /// Entries indexed: names and patterns, and URL prefixes.
    pub fn entry_counts(&self) -> (usize, usize) {
        (self.hosts.len(), self.urls.len())
    }

    pub fn heap_bytes(&self) -> usize {
        self.hosts.heap_bytes()
    }

    /// Compiles the policy sections of a config, reading list files. Every problem is
    /// reported with the file, line and column of the value at fault.
    pub fn compile(config: &Config) -> Result<Policy, ConfigErrors> {
        let loc = Locator::new(&config.source);
        let mut errors = Vec::new();
        let mut policy = Policy::empty();
        policy.sources[0] = config.source.path.clone();

        // Schedules, by name.
        let mut schedule_ids = HashMap::new();
        for (name, cfg) in &config.schedules {
            match Schedule::compile(name, cfg, &loc) {
                Ok(s) => {
                    schedule_ids.insert(name.as_str(), policy.schedules.len());
                    policy.schedules.push(s);
                }
                Err(e) => errors.push(e),
            }
        }

        // Categories and their entries.
        let mut category_ids: HashMap<&str, u16> = HashMap::new();
        for (ci, cat) in config.categories.iter().enumerate() {
            let at = |rest: &[Seg<'static>]| {
                let mut v = vec![Seg::Key("category"), Seg::Index(ci)];
                v.extend_from_slice(rest);
                v
            };
            let Ok(id) = u16::try_from(policy.categories.len()) else {
                errors.push(loc.error(&at(&[]), "more than 65535 categories"));
                break;
            };
            if cat.name.is_empty() {
                errors.push(loc.error(&at(&[Seg::Key("name")]), "a category needs a name"));
                continue;
            }
            if category_ids.insert(cat.name.as_str(), id).is_some() {
                errors.push(loc.error(
                    &at(&[Seg::Key("name")]),
                    format!("category `{}` is defined twice", cat.name),
                ));
                continue;
            }
            let guidance_html = match &cat.guidance {
                None => None,
                Some(g) if crate::coach::guidance::is_file_reference(g) => {
                    match std::fs::read_to_string(g) {
                        Ok(text) => {
                            policy.sources.push(PathBuf::from(g));
                            Some(crate::coach::guidance::render(&text))
                        }
                        Err(e) => {
                            errors.push(loc.error(
                                &at(&[Seg::Key("guidance")]),
                                format!("cannot read guidance file `{g}`: {e}"),
                            ));
                            None
                        }
                    }
                }
                Some(text) => Some(crate::coach::guidance::render(text)),
            };
            policy.categories.push(Category {
                name: cat.name.clone(),
                title: cat.title.clone().unwrap_or_else(|| cat.name.clone()),
                guidance_html,
                require_reason: cat.require_reason,
                acknowledge_for: cat
                    .acknowledge_for
                    .map_or(config.coach.acknowledge_for.0, |s| s.0),
            });
            for (hi, raw) in cat.hosts.iter().enumerate() {
                let segs = at(&[Seg::Key("hosts"), Seg::Index(hi)]);
                let source = SourceRef {
                    file: 0,
                    line: loc.line(&segs),
                };
                let added = lists::host_entry(raw).and_then(|e| policy.hosts.add(&e, id, source));
                if let Err(why) = added {
                    errors.push(loc.error(&segs, why));
                }
            }
            for (ui, raw) in cat.urls.iter().enumerate() {
                let segs = at(&[Seg::Key("urls"), Seg::Index(ui)]);
                let source = SourceRef {
                    file: 0,
                    line: loc.line(&segs),
                };
                match lists::url_entry(raw) {
                    Ok(e) => policy.urls.add(e, id, source),
                    Err(why) => errors.push(loc.error(&segs, why)),
                }
            }
            for (li, folder) in cat.lists.iter().enumerate() {
                let segs = at(&[Seg::Key("lists"), Seg::Index(li)]);
                if let Err(e) = policy.load_list_folder(folder, id) {
                    errors.push(loc.error(&segs, e));
                }
            }
        }
        if let Err(e) = policy.hosts.finish() {
            errors.push(ConfigError::at_span(
                &config.source.path,
                &config.source.text,
                None,
                "category",
                e,
            ));
        }

        // Rules, in order.
        for (ri, rule) in config.rules.iter().enumerate() {
            match compile_rule(ri, rule, config, &loc, &category_ids, &schedule_ids) {
                Ok(r) => policy.rules.push(r),
                Err(mut e) => errors.append(&mut e),
            }
        }

        if errors.is_empty() {
            Ok(policy)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Loads a squidGuard/UT1 folder: `domains` and/or `urls`.
    fn load_list_folder(&mut self, folder: &std::path::Path, category: u16) -> Result<(), String> {
        let domains = folder.join("domains");
        let urls = folder.join("urls");
        if !folder.is_dir() {
            return Err(format!(
                "`{}` is not a folder (expected a squidGuard/UT1 list folder holding `domains` and/or `urls`)",
                folder.display()
            ));
        }
        if !domains.is_file() && !urls.is_file() {
            return Err(format!(
                "`{}` holds neither a `domains` nor a `urls` file",
                folder.display()
            ));
        }
        for (path, is_domains) in [(domains, true), (urls, false)] {
            if !path.is_file() {
                continue;
            }
            let Ok(file) = u32::try_from(self.sources.len()) else {
                return Err("too many list files".into());
            };
            self.sources.push(path.clone());
            if is_domains {
                // About 16 bytes a line in real lists; sizing up front saves rehashing.
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                self.hosts.reserve(usize::try_from(bytes / 16).unwrap_or(0));
            }
            let hosts = &mut self.hosts;
            let url_index = &mut self.urls;
            let report = lists::read_list(&path, |line, text| {
                let source = SourceRef { file, line };
                if is_domains {
                    match lists::host_entry(text)? {
                        HostEntry::Name(n) => hosts.add(&HostEntry::Name(n), category, source),
                        HostEntry::Glob(_) => Err("patterns are not allowed in list files".into()),
                    }
                } else {
                    url_index.add(lists::url_entry(text)?, category, source);
                    Ok(())
                }
            })
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            self.list_reports.push(report);
        }
        Ok(())
    }

    /// Resolves an entry's source to "file:line".
    pub fn describe_source(&self, source: SourceRef) -> String {
        let file = self
            .sources
            .get(source.file as usize)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        format!("{file}:{}", source.line)
    }
}

fn compile_rule(
    ri: usize,
    rule: &crate::config::RuleConfig,
    config: &Config,
    loc: &Locator,
    category_ids: &HashMap<&str, u16>,
    schedule_ids: &HashMap<&str, usize>,
) -> Result<Rule, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let at = |key: &'static str, i: Option<usize>, many: bool| {
        let mut v = vec![Seg::Key("rule"), Seg::Index(ri), Seg::Key(key)];
        if let (Some(i), true) = (i, many) {
            v.push(Seg::Index(i));
        }
        v
    };
    let is_list = |key: &'static str| loc.span(&at(key, Some(0), true)).is_some();

    let categories = rule.category.as_ref().map(|names| {
        let many = is_list("category");
        names
            .0
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match category_ids.get(n.as_str()) {
                Some(id) => Some(*id),
                None => {
                    let known: Vec<&str> =
                        config.categories.iter().map(|c| c.name.as_str()).collect();
                    errors.push(loc.error(
                        &at("category", Some(i), many),
                        format!(
                            "rule `{}` names unknown category `{n}` (categories: {})",
                            rule.name,
                            if known.is_empty() {
                                "none defined".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                    None
                }
            })
            .collect::<Vec<u16>>()
    });

    let hosts = rule.hosts.as_ref().map(|entries| {
        let mut m = HostMatcher::default();
        for (i, raw) in entries.iter().enumerate() {
            let segs = at("hosts", Some(i), true);
            let source = SourceRef {
                file: 0,
                line: loc.line(&segs),
            };
            if let Err(why) = lists::host_entry(raw).and_then(|e| m.add(&e, 0, source)) {
                errors.push(loc.error(&segs, why));
            }
        }
        if let Err(e) = m.finish() {
            errors.push(loc.error(&at("hosts", None, false), e));
        }
        m
    });

    let clients = rule.clients.as_ref().map(|entries| {
        let mut nets = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            if let Some(group) = config.groups.get(entry) {
                nets.extend(group.clients.iter().copied());
            } else if let Ok(net) = entry.parse::<Cidr>() {
                nets.push(net);
            } else {
                errors.push(loc.error(
                    &at("clients", Some(i), true),
                    format!(
                        "`{entry}` is neither an address range nor a [group.NAME] (groups: {})",
                        if config.groups.is_empty() {
                            "none defined".to_string()
                        } else {
                            config.groups.keys().cloned().collect::<Vec<_>>().join(", ")
                        }
                    ),
                ));
            }
        }
        nets
    });

    let users = rule
        .users
        .as_ref()
        .map(|u| u.iter().map(|n| n.to_lowercase()).collect::<Vec<_>>());
    let groups = rule.groups.as_ref().map(|names| {
        names
            .iter()
            .map(|n| GroupRef {
                name: n.to_lowercase(),
                users: config
                    .groups
                    .get(n)
                    .map(|g| g.users.iter().map(|u| u.to_lowercase()).collect())
                    .unwrap_or_default(),
            })
            .collect::<Vec<_>>()
    });

    let schedules = rule.schedule.as_ref().map(|names| {
        let many = is_list("schedule");
        names
            .0
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match schedule_ids.get(n.as_str()) {
                Some(id) => Some(*id),
                None => {
                    errors.push(loc.error(
                        &at("schedule", Some(i), many),
                        format!("rule `{}` names unknown schedule `{n}`", rule.name),
                    ));
                    None
                }
            })
            .collect::<Vec<usize>>()
    });

    let methods = rule.methods.as_ref().map(|names| {
        let many = is_list("methods");
        names
            .0
            .iter()
            .enumerate()
            .filter_map(
                |(i, m)| match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                    Ok(m) => Some(m),
                    Err(_) => {
                        errors.push(loc.error(
                            &at("methods", Some(i), many),
                            format!("`{m}` is not an HTTP method"),
                        ));
                        None
                    }
                },
            )
            .collect::<Vec<Method>>()
    });

    if errors.is_empty() {
        Ok(Rule {
            name: rule.name.clone(),
            line: loc.line(&[Seg::Key("rule"), Seg::Index(ri)]),
            categories,
            hosts,
            clients,
            users,
            groups,
            schedules,
            methods,
            action: rule.action,
            message: rule.message.clone(),
        })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Host;
    use std::path::Path;

    fn policy(text: &str) -> Result<Policy, String> {
        let config = Config::parse(Path::new("t.toml"), text).map_err(|e| e.to_string())?;
        Policy::compile(&config).map_err(|e| e.to_string())
    }

    fn decide(
        p: &Policy,
        host: &str,
        client: &str,
        method: &str,
        at: &str,
    ) -> (Action, Option<String>) {
        let host = Host::parse(host).unwrap();
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let req = Request {
            host: &host,
            path: Some("/"),
            method: &method,
            client: client.parse().unwrap(),
            user: None,
            groups: &[],
        };
        let c = classify(p, &req, at.parse().unwrap());
        (c.action, c.rule.map(|r| p.rules[r].name.clone()))
    }

    const RULES: &str = r#"
[schedule.lunch]
days = "weekdays"
hours = "12:00-14:00"
timezone = "Europe/London"

[schedule.evenings]
hours = "18:00-08:00"
timezone = "Europe/London"

[group.library]
clients = ["10.20.0.0/16", "192.0.2.7"]

[[category]]
name = "social"
hosts = ["ning.com"]

[[rule]]
name = "library relaxed"
category = "social"
clients = ["library"]
action = "allow"

[[rule]]
name = "relaxed out of hours"
category = "social"
schedule = ["lunch", "evenings"]
action = "monitor"

[[rule]]
name = "no posting"
category = "social"
methods = ["post"]
action = "block"

[[rule]]
name = "coach"
category = "social"
action = "coach"
"#;

    #[test]
    fn groups_schedules_and_methods_in_order() {
        let p = policy(RULES).unwrap();
        let wed_10 = "2026-11-18T10:00:00Z";
        let wed_lunch = "2026-11-18T12:30:00Z";
        let wed_late = "2026-11-18T23:00:00Z";
        let sat_lunch = "2026-11-21T12:30:00Z";
        let r = |h, c, m, t| decide(&p, h, c, m, t).1.unwrap_or_default();
        assert_eq!(
            r("www.ning.com", "10.20.3.4", "GET", wed_10),
            "library relaxed"
        );
        assert_eq!(
            r("www.ning.com", "192.0.2.7", "GET", wed_10),
            "library relaxed"
        );
        assert_eq!(
            r("www.ning.com", "10.1.1.1", "GET", wed_lunch),
            "relaxed out of hours"
        );
        assert_eq!(
            r("www.ning.com", "10.1.1.1", "GET", wed_late),
            "relaxed out of hours"
        );
        assert_eq!(r("www.ning.com", "10.1.1.1", "GET", sat_lunch), "coach");
        assert_eq!(r("www.ning.com", "10.1.1.1", "POST", wed_10), "no posting");
        assert_eq!(r("www.ning.com", "10.1.1.1", "GET", wed_10), "coach");
        assert_eq!(
            decide(&p, "example.org", "10.1.1.1", "GET", wed_10),
            (Action::Allow, None)
        );
    }

    #[test]
    fn unknown_names_in_rules_are_errors_at_their_position() {
        let e = policy("[[category]]\nname = \"a\"\n\n[[rule]]\nname = \"r\"\ncategory = [\"a\", \"b\"]\naction = \"block\"\n")
            .unwrap_err();
        assert!(e.contains("t.toml:6:18: `rule[0].category[1]`"), "{e}");
        assert!(e.contains("unknown category `b`"), "{e}");
        let e = policy("[[rule]]\nname = \"r\"\nschedule = \"lunch\"\naction = \"allow\"\n")
            .unwrap_err();
        assert!(e.contains("t.toml:3:12: `rule[0].schedule`"), "{e}");
        let e = policy("[[rule]]\nname = \"r\"\nclients = [\"staff\"]\naction = \"allow\"\n")
            .unwrap_err();
        assert!(e.contains("t.toml:3:12: `rule[0].clients[0]`"), "{e}");
        assert!(e.contains("[group.NAME]"), "{e}");
        let e = policy("[schedule.x]\ntimezone = \"Mars/Olympus\"\n").unwrap_err();
        assert!(e.contains("t.toml:2:12: `schedule.x.timezone`"), "{e}");
        let e = policy("[[rule]]\nname = \"r\"\naction = \"blok\"\n").unwrap_err();
        assert!(e.contains("t.toml:3:10: `rule[0].action`"), "{e}");
    }

    #[test]
    fn a_list_folder_that_is_missing_is_an_error_at_its_entry() {
        let e =
            policy("[[category]]\nname = \"m\"\nlists = [\"/nonexistent/list\"]\n").unwrap_err();
        assert!(e.contains("t.toml:3:10: `category[0].lists[0]`"), "{e}");
        assert!(e.contains("not a folder"), "{e}");
    }
}
