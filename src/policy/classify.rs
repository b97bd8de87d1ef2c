//! Classification: (policy, request, client, user, instant) → category, rule and action,
//! with the trail of why. Pure: no I/O, no clock of its own.
//!
//! [`classify`] and [`explain`] run the same code; `explain` also keeps the trail.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::Method;
use jiff::Timestamp;

use super::matcher::Found;
use super::{Policy, Rule};
use crate::config::Action;
use crate::net::{self, Host};

/// What is being classified.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub host: &'a Host,
    /// The path, where it is visible (plain HTTP, intercepted HTTPS); `None` for a tunnel.
    pub path: Option<&'a str>,
    pub method: &'a Method,
    pub client: IpAddr,
    pub user: Option<&'a str>,
    /// The user's directory groups (LDAP), if any.
    pub groups: &'a [String],
}

/// The outcome of classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// The category the decision is about: the deciding rule's, else the most specific.
    pub category: Option<u16>,
    /// Index of the deciding rule; `None` when no rule matched (the default, allow).
    pub rule: Option<usize>,
    pub action: Action,
    /// Every category entry that matched, most specific first.
    pub matches: Vec<Found>,
}

/// Why a rule did not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    Method,
    Category,
    Client,
    User,
    Group,
    Host,
    Schedule,
}

/// A classification with the rules tried before it.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub classification: Classification,
    /// For each rule tried, in order: matched (`None`) or why not.
    pub tried: Vec<(usize, Option<Miss>)>,
    pub at: Timestamp,
}

pub fn classify(policy: &Policy, req: &Request, at: Timestamp) -> Classification {
    run(policy, req, at, None)
}

pub fn explain(policy: &Policy, req: &Request, at: Timestamp) -> Explanation {
    let mut tried = Vec::new();
    let classification = run(policy, req, at, Some(&mut tried));
    Explanation {
        classification,
        tried,
        at,
    }
}

fn run(
    policy: &Policy,
    req: &Request,
    at: Timestamp,
    mut trail: Option<&mut Vec<(usize, Option<Miss>)>>,
) -> Classification {
    let ip_text;
    let (host, is_ip) = match req.host {
        Host::Name(n) => (n.as_str(), false),
        Host::Ip(ip) => {
            ip_text = net::canonical_ip(*ip).to_string();
            (ip_text.as_str(), true)
        }
    };
    let mut matches = Vec::new();
    if let Some(path) = req.path {
        policy.urls.find(host, path, &mut matches);
    }
    policy.hosts.find(host, is_ip, &mut matches);

    for (i, rule) in policy.rules.iter().enumerate() {
        let miss = check(policy, rule, req, host, is_ip, &matches, at);
        if let Some(t) = trail.as_deref_mut() {
            t.push((i, miss));
        }
        if miss.is_none() {
            let category = match &rule.categories {
                Some(cats) => matches
                    .iter()
                    .find(|m| cats.contains(&m.category))
                    .map(|m| m.category),
                None => matches.first().map(|m| m.category),
            };
            return Classification {
                category,
                rule: Some(i),
                action: rule.action,
                matches,
            };
        }
    }
    Classification {
        category: matches.first().map(|m| m.category),
        rule: None,
        action: Action::Allow,
        matches,
    }
}

/// Checks a rule's conditions, cheapest first; returns the first that fails.
fn check(
    policy: &Policy,
    rule: &Rule,
    req: &Request,
    host: &str,
    is_ip: bool,
    matches: &[Found],
    at: Timestamp,
) -> Option<Miss> {
    if let Some(methods) = &rule.methods {
        if !methods.contains(req.method) {
            return Some(Miss::Method);
        }
    }
    if let Some(cats) = &rule.categories {
        if !matches.iter().any(|m| cats.contains(&m.category)) {
            return Some(Miss::Category);
        }
    }
    if let Some(clients) = &rule.clients {
        if !clients.iter().any(|c| c.contains(req.client)) {
            return Some(Miss::Client);
        }
    }
    if let Some(users) = &rule.users {
        let Some(user) = req.user else {
            return Some(Miss::User);
        };
        if !users.iter().any(|u| u.eq_ignore_ascii_case(user)) {
            return Some(Miss::User);
        }
    }
    if let Some(groups) = &rule.groups {
        let in_group = req.user.is_some_and(|user| {
            groups.iter().any(|g| {
                g.users.iter().any(|u| u.eq_ignore_ascii_case(user))
                    || req.groups.iter().any(|d| d.eq_ignore_ascii_case(&g.name))
            })
        });
        if !in_group {
            return Some(Miss::Group);
        }
    }
    if let Some(hosts) = &rule.hosts {
        if !hosts.matches(host, is_ip) {
            return Some(Miss::Host);
        }
    }
    if let Some(schedules) = &rule.schedules {
        if !schedules.iter().any(|&s| policy.schedules[s].contains(at)) {
            return Some(Miss::Schedule);
        }
    }
    None
}

impl Explanation {
    /// The explanation as an administrator reads it.
    pub fn render(&self, policy: &Policy, req: &Request, url: &str) -> String {
        let mut out = String::new();
        let c = &self.classification;
        let cat_name = |id: u16| {
            policy
                .category(id)
                .map_or_else(|| format!("#{id}"), |c| c.name.clone())
        };
        let _ = writeln!(out, "URL:      {url}");
        let _ = writeln!(
            out,
            "Client:   {}{}",
            req.client,
            req.user.map(|u| format!(" (user {u})")).unwrap_or_default()
        );
        let _ = writeln!(out, "At:       {}", self.at);
        if c.matches.is_empty() {
            let _ = writeln!(out, "Category: none (the host is in no category)");
        } else {
            let _ = writeln!(out, "Matched:");
            for m in &c.matches {
                let title = policy
                    .category(m.category)
                    .map(|c| c.title.as_str())
                    .unwrap_or("");
                let _ = writeln!(
                    out,
                    "  - {} ({title}): entry `{}` at {}",
                    cat_name(m.category),
                    m.entry,
                    policy.describe_source(m.source)
                );
            }
        }
        if policy.rules.is_empty() {
            let _ = writeln!(out, "Rules:    none configured");
        } else {
            let _ = writeln!(out, "Rules (first match wins):");
        }
        let config = policy
            .sources
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        for (i, miss) in &self.tried {
            let rule = &policy.rules[*i];
            let verdict = match miss {
                None => format!("MATCHES → {}", rule.action.as_str()),
                Some(m) => format!("no: {}", describe_miss(policy, rule, *m, req, self.at)),
            };
            let _ = writeln!(
                out,
                "  {}. \"{}\" ({config}:{}): {verdict}",
                i + 1,
                rule.name,
                rule.line
            );
        }
        let _ = write!(out, "Decision: {}", c.action.as_str());
        match c.rule {
            Some(r) => {
                let _ = write!(out, " by rule \"{}\"", policy.rules[r].name);
            }
            None => {
                let _ = write!(out, " (no rule matched; the default is allow)");
            }
        }
        if let Some(cat) = c.category {
            let _ = write!(out, ", category {}", cat_name(cat));
        }
        if let Some(msg) = c.rule.and_then(|r| policy.rules[r].message.as_ref()) {
            let _ = write!(out, "\nMessage:  {msg}");
        }
        out.push('\n');
        out
    }
}

fn describe_miss(policy: &Policy, rule: &Rule, miss: Miss, req: &Request, at: Timestamp) -> String {
    let names = |ids: &[u16]| {
        ids.iter()
            .filter_map(|id| policy.category(*id).map(|c| c.name.clone()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match miss {
        Miss::Method => format!(
            "method {} is not one of {}",
            req.method,
            rule.methods
                .as_ref()
                .map(|m| m.iter().map(Method::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        ),
        Miss::Category => format!(
            "the request is not in its categories ({})",
            rule.categories.as_deref().map(names).unwrap_or_default()
        ),
        Miss::Client => format!("client {} is not in its clients", req.client),
        Miss::User => match req.user {
            Some(u) => format!("user {u} is not in its users"),
            None => "it names users and the request has none (no proxy login)".into(),
        },
        Miss::Group => match req.user {
            Some(u) => format!(
                "user {u} is in none of its groups ({})",
                rule.groups
                    .as_ref()
                    .map(|g| g
                        .iter()
                        .map(|g| g.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            ),
            None => "it names groups and the request has no user (no proxy login)".into(),
        },
        Miss::Host => format!("host {} is not in its hosts", req.host),
        Miss::Schedule => {
            let list = rule
                .schedules
                .as_ref()
                .map(|s| {
                    s.iter()
                        .map(|&i| {
                            let s = &policy.schedules[i];
                            format!("{} in {}", s.name, s.tz_name)
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            format!("none of its schedules holds at {at} ({list})")
        }
    }
}
