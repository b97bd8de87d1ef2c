//! Property tests for the policy: host-name suffix semantics, case and trailing dots, IDN
//! entries, glob entries, rule order and positioned errors for unknown names. Everything
//! goes through the public API: config text is built here, parsed with `Config::parse`,
//! compiled with `Policy::compile` and requests are classified with `classify`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use http::Method;
use proptest::prelude::*;
use proptest::sample::select;
use signpost::config::{Action, Config};
use signpost::net::Host;
use signpost::policy::{classify, Classification, Policy, Request};

const CASES: u32 = 256;

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    }
}

/// Compiles config text as if read from `t.toml`.
fn compile(text: &str) -> Result<Policy, String> {
    let config = Config::parse(Path::new("t.toml"), text).map_err(|e| e.to_string())?;
    Policy::compile(&config).map_err(|e| e.to_string())
}

fn compile_ok(text: &str) -> Policy {
    compile(text).unwrap_or_else(|e| panic!("config did not compile: {e}\n---\n{text}"))
}

fn at() -> jiff::Timestamp {
    // A Wednesday, 10:00 UTC.
    "2024-05-15T10:00:00Z".parse().unwrap()
}

/// Classifies a GET from 10.1.2.3 for `host` (which must parse).
fn classify_host(policy: &Policy, host: &str) -> Classification {
    let host = Host::parse(host).unwrap_or_else(|e| panic!("{host:?} does not parse: {e}"));
    classify_parsed(policy, &host)
}

fn classify_parsed(policy: &Policy, host: &Host) -> Classification {
    let req = Request {
        host,
        path: None,
        method: &Method::GET,
        client: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        user: None,
        groups: &[],
    };
    classify(policy, &req, at())
}

/// A TOML basic string holding `s` (test inputs hold no quotes or backslashes).
fn q(s: &str) -> String {
    assert!(!s.contains('"') && !s.contains('\\'));
    format!("\"{s}\"")
}

/// One category `c` holding `hosts`, and one rule blocking it.
fn block_config(hosts: &[&str]) -> String {
    let list = hosts.iter().map(|h| q(h)).collect::<Vec<_>>().join(", ");
    format!(
        "[[category]]\nname = \"c\"\nhosts = [{list}]\n\n\
         [[rule]]\nname = \"r\"\ncategory = \"c\"\naction = \"block\"\n"
    )
}

fn is_blocked(c: &Classification) -> bool {
    c.action == Action::Block && c.rule == Some(0) && c.category == Some(0) && !c.matches.is_empty()
}

fn is_untouched(c: &Classification) -> bool {
    c.action == Action::Allow && c.rule.is_none() && c.category.is_none() && c.matches.is_empty()
}

// ---- strategies -----------------------------------------------------------------------

/// A DNS label: letters, digits and inner hyphens, 1–10 characters.
fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?"
}

/// A top-level label: letters only, so no generated name is an IP literal.
fn tld() -> impl Strategy<Value = String> {
    "[a-z]{2,6}"
}

/// A domain of 1–4 labels, the last alphabetic.
fn domain() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 0..4), tld()).prop_map(|(mut labels, tld)| {
        labels.push(tld);
        labels.join(".")
    })
}

/// The proper parents of a domain: `a.b.c` → `b.c`, `c`.
fn parents(d: &str) -> Vec<&str> {
    d.match_indices('.').map(|(i, _)| &d[i + 1..]).collect()
}

/// Applies an upper/lower-case mask to the ASCII letters of `s`.
fn recase(s: &str, mask: &[bool]) -> String {
    s.chars()
        .zip(mask.iter().cycle())
        .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
        .collect()
}

fn action() -> impl Strategy<Value = Action> {
    select(vec![
        Action::Allow,
        Action::Monitor,
        Action::Coach,
        Action::Block,
    ])
}

// ---- suffix semantics -----------------------------------------------------------------

proptest! {
    #![proptest_config(cfg())]

    /// A category host `d` covers `d` and every `x.d`, and neither `xd` nor any parent of `d`.
    #[test]
    fn a_name_covers_itself_and_its_subdomains_only(d in domain(), x in label(), y in label()) {
        let policy = compile_ok(&block_config(&[&d]));

        let c = classify_host(&policy, &d);
        prop_assert!(is_blocked(&c), "{d} itself: {c:?}");
        prop_assert_eq!(&c.matches[0].entry, &d);

        for sub in [format!("{x}.{d}"), format!("{y}.{x}.{d}")] {
            let c = classify_host(&policy, &sub);
            prop_assert!(is_blocked(&c), "{sub} under {d}: {c:?}");
            prop_assert_eq!(&c.matches[0].entry, &d);
        }

        let glued = format!("{x}{d}");
        let c = classify_host(&policy, &glued);
        prop_assert!(is_untouched(&c), "{glued} is not under {d}: {c:?}");

        for parent in parents(&d) {
            let c = classify_host(&policy, parent);
            prop_assert!(is_untouched(&c), "{parent} is a parent of {d}: {c:?}");
        }

        // A sibling that shares every label but the first is not covered either.
        let sibling = format!("{x}-{}", d);
        let c = classify_host(&policy, &sibling);
        prop_assert!(is_untouched(&c), "{sibling} is not under {d}: {c:?}");
    }

    /// The most specific entry comes first when a name and its parent are both listed.
    #[test]
    fn the_most_specific_entry_comes_first(d in domain(), x in label(), y in label()) {
        let inner = format!("{x}.{d}");
        let policy = compile_ok(&block_config(&[&d, &inner]));
        let c = classify_host(&policy, &format!("{y}.{inner}"));
        prop_assert!(is_blocked(&c), "{c:?}");
        let entries: Vec<&str> = c.matches.iter().map(|m| m.entry.as_str()).collect();
        prop_assert_eq!(entries, vec![inner.as_str(), d.as_str()]);
    }
}

// ---- case and trailing dots -----------------------------------------------------------

proptest! {
    #![proptest_config(cfg())]

    /// Any ASCII-case variant of a host, with or without one trailing dot, classifies as
    /// the lower-case host does; so does an entry written in any case or with a dot.
    #[test]
    fn case_and_one_trailing_dot_do_not_matter(
        d in domain(),
        x in label(),
        entry_mask in prop::collection::vec(any::<bool>(), 1..16),
        host_mask in prop::collection::vec(any::<bool>(), 1..16),
        entry_dot in any::<bool>(),
        host_dot in any::<bool>(),
    ) {
        let mut entry = recase(&d, &entry_mask);
        if entry_dot {
            entry.push('.');
        }
        let policy = compile_ok(&block_config(&[&entry]));

        let sub = format!("{x}.{d}");
        let glued = format!("{x}{d}");
        let mut checked = Vec::new();
        for (host, covered) in [(d.as_str(), true), (sub.as_str(), true), (glued.as_str(), false)] {
            let canonical = classify_host(&policy, host);
            prop_assert_eq!(is_blocked(&canonical), covered, "{} with entry {}: {:?}", host, entry, canonical);
            prop_assert_eq!(is_untouched(&canonical), !covered);

            let mut variant = recase(host, &host_mask);
            if host_dot {
                variant.push('.');
            }
            let parsed = Host::parse(&variant);
            prop_assert_eq!(parsed.as_ref().ok(), Some(&Host::Name(host.to_string())), "{}", variant);
            let c = classify_host(&policy, &variant);
            prop_assert_eq!(&c, &canonical, "{} vs {}", variant, host);
            checked.push(variant);
        }

        // Two trailing dots is not a name.
        let two_dots = format!("{d}..");
        prop_assert!(Host::parse(&two_dots).is_err(), "{}", two_dots);
    }
}

// ---- IDN ------------------------------------------------------------------------------

/// Unicode names and their punycode (checked against Python's `punycode` codec).
const IDN: &[(&str, &str)] = &[
    ("bücher.example", "xn--bcher-kva.example"),
    ("münchen.de", "xn--mnchen-3ya.de"),
    ("zürich.ch", "xn--zrich-kva.ch"),
    ("café.fr", "xn--caf-dma.fr"),
    ("ñandú.com", "xn--and-6ma2c.com"),
    ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
    ("日本語.jp", "xn--wgv71a119e.jp"),
    ("россия.рф", "xn--h1alffa9f.xn--p1ai"),
    ("παράδειγμα.δοκιμή", "xn--hxajbheg2az3al.xn--jxalpdlp"),
];

/// Upper-cases the characters picked by `mask` where that round-trips through lower case.
fn recase_unicode(s: &str, mask: &[bool]) -> String {
    s.chars()
        .zip(mask.iter().cycle())
        .map(|(c, &up)| {
            let mut upper = c.to_uppercase();
            match (up, upper.next(), upper.next()) {
                (true, Some(u), None) if u.to_lowercase().eq(std::iter::once(c)) => u,
                _ => c,
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(cfg())]

    /// A Unicode entry matches its punycode host, its subdomains, in any ASCII case; and
    /// the Unicode and punycode spellings of an entry compile to the same thing.
    #[test]
    fn unicode_entries_match_punycode_hosts(
        (unicode, ascii) in select(IDN.to_vec()),
        x in label(),
        entry_mask in prop::collection::vec(any::<bool>(), 1..8),
        host_mask in prop::collection::vec(any::<bool>(), 1..8),
    ) {
        let entry = recase_unicode(unicode, &entry_mask);
        let by_unicode = compile_ok(&block_config(&[&entry]));
        let by_ascii = compile_ok(&block_config(&[ascii]));

        let sub = format!("{x}.{ascii}");
        for host in [ascii.to_string(), sub.clone(), recase(&sub, &host_mask)] {
            let c = classify_host(&by_unicode, &host);
            prop_assert!(is_blocked(&c), "{host} under entry {entry}: {c:?}");
            prop_assert_eq!(&c.matches[0].entry, &ascii.to_string());
            prop_assert_eq!(&c, &classify_host(&by_ascii, &host));
        }
        // The bare punycode label without its `xn--` prefix is a different name.
        let stripped = ascii.strip_prefix("xn--").unwrap();
        let c = classify_host(&by_unicode, stripped);
        prop_assert!(is_untouched(&c), "{stripped}: {c:?}");
    }
}

/// List folders (squidGuard/UT1 layout) take Unicode, any case, trailing dots and
/// comments, like the config does.
#[test]
fn list_folders_normalise_entries() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("mixed");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(
        folder.join("domains"),
        "# a list\nBücher.Example\nMÜNCHEN.de.\n  Ning.COM  # social\n.leading.example\nbad entry\n",
    )
    .unwrap();
    let text = format!(
        "[[category]]\nname = \"c\"\nlists = ['{}']\n\n[[rule]]\nname = \"r\"\ncategory = \"c\"\naction = \"block\"\n",
        folder.display()
    );
    let policy = compile_ok(&text);
    assert_eq!(policy.list_reports.len(), 1);
    assert_eq!(
        policy.list_reports[0].entries, 4,
        "{:?}",
        policy.list_reports
    );
    assert_eq!(
        policy.list_reports[0].skipped, 1,
        "{:?}",
        policy.list_reports
    );
    for host in [
        "xn--bcher-kva.example",
        "www.XN--BCHER-KVA.example.",
        "xn--mnchen-3ya.de",
        "forum.ning.com",
        "a.leading.example",
    ] {
        assert!(is_blocked(&classify_host(&policy, host)), "{host}");
    }
    for host in ["bcher-kva.example", "notning.com", "example", "de"] {
        assert!(is_untouched(&classify_host(&policy, host)), "{host}");
    }
}

// ---- glob entries ---------------------------------------------------------------------

/// Replaces the byte at `i` (ASCII) of `s` with `with`.
fn splice(s: &str, i: usize, with: &str) -> String {
    format!("{}{}{}", &s[..i], with, &s[i + 1..])
}

proptest! {
    #![proptest_config(cfg())]

    /// `*.d` matches `x.d` and `x.y.d`, but not `d` itself nor `xd`.
    #[test]
    fn star_dot_matches_strict_subdomains(d in domain(), x in label(), y in label()) {
        let pattern = format!("*.{d}");
        let policy = compile_ok(&block_config(&[&pattern]));
        for host in [format!("{x}.{d}"), format!("{x}.{y}.{d}")] {
            let c = classify_host(&policy, &host);
            prop_assert!(is_blocked(&c), "{host} against {pattern}: {c:?}");
            prop_assert_eq!(&c.matches[0].entry, &pattern);
        }
        for host in [d.clone(), format!("{x}{d}")] {
            let c = classify_host(&policy, &host);
            prop_assert!(is_untouched(&c), "{host} against {pattern}: {c:?}");
        }
        for parent in parents(&d) {
            let c = classify_host(&policy, parent);
            prop_assert!(is_untouched(&c), "{parent} against {pattern}: {c:?}");
        }
    }

    /// `?` stands for exactly one character: any one, but not none and not two.
    #[test]
    fn question_mark_is_exactly_one_character(
        h in domain(),
        pick in any::<prop::sample::Index>(),
        other in "[a-z0-9]",
        extra in "[a-z0-9]",
    ) {
        // Replace one letter or digit of `h` with `?`.
        let letters: Vec<usize> = h
            .bytes()
            .enumerate()
            .filter(|(_, b)| b.is_ascii_alphanumeric())
            .map(|(i, _)| i)
            .collect();
        let i = letters[pick.index(letters.len())];
        let pattern = splice(&h, i, "?");
        let policy = compile_ok(&block_config(&[&pattern]));

        for host in [h.clone(), splice(&h, i, &other)] {
            // A digit in the last label can make the host a number, which is an IPv4
            // address (the WHATWG rule, e.g. `0x`), not a name a pattern applies to.
            if !matches!(Host::parse(&host), Ok(Host::Name(_))) {
                continue;
            }
            let c = classify_host(&policy, &host);
            prop_assert!(is_blocked(&c), "{host} against {pattern}: {c:?}");
            prop_assert_eq!(&c.matches[0].entry, &pattern);
        }
        // No `*` is implied: a subdomain does not match.
        let sub = format!("www.{h}");
        let c = classify_host(&policy, &sub);
        prop_assert!(is_untouched(&c), "{sub} against {pattern}: {c:?}");
        // Zero characters, or two, in place of `?`.
        for host in [splice(&h, i, ""), splice(&h, i, &format!("{other}{extra}"))] {
            if let Ok(parsed) = Host::parse(&host) {
                if matches!(parsed, Host::Name(_)) {
                    let c = classify_parsed(&policy, &parsed);
                    prop_assert!(is_untouched(&c), "{host} against {pattern}: {c:?}");
                }
            }
        }
    }
}

// ---- rule order -----------------------------------------------------------------------

/// A condition that holds for a GET from 10.1.2.3 to a host under `d`.
#[derive(Debug, Clone, Copy)]
enum Cond {
    Category,
    Hosts,
    Clients,
    Methods,
    Schedule,
    Nothing,
}

fn cond() -> impl Strategy<Value = Cond> {
    select(vec![
        Cond::Category,
        Cond::Hosts,
        Cond::Clients,
        Cond::Methods,
        Cond::Schedule,
        Cond::Nothing,
    ])
}

fn rule_text(name: &str, cond: Cond, category: &str, d: &str, action: Action) -> String {
    let cond = match cond {
        Cond::Category => format!("category = {}\n", q(category)),
        Cond::Hosts => format!("hosts = [{}]\n", q(d)),
        Cond::Clients => "clients = [\"office\"]\n".to_string(),
        Cond::Methods => "methods = [\"get\", \"HEAD\"]\n".to_string(),
        Cond::Schedule => "schedule = \"always\"\n".to_string(),
        Cond::Nothing => String::new(),
    };
    format!(
        "[[rule]]\nname = {}\n{cond}action = \"{}\"\n\n",
        q(name),
        action.as_str()
    )
}

fn two_rules(d: &str, first: (Cond, Action), second: (Cond, Action)) -> String {
    let mut text = format!(
        "[schedule.always]\ntimezone = \"UTC\"\n\n[group.office]\nclients = [\"10.0.0.0/8\"]\n\n\
         [[category]]\nname = \"a\"\nhosts = [{d}]\n\n[[category]]\nname = \"b\"\nhosts = [{d}]\n\n",
        d = q(d)
    );
    text += &rule_text("first", first.0, "a", d, first.1);
    text += &rule_text("second", second.0, "b", d, second.1);
    text
}

proptest! {
    #![proptest_config(cfg())]

    /// When two rules both match a request, the first decides; swapping them swaps the
    /// decision.
    #[test]
    fn the_first_matching_rule_decides(
        d in domain(),
        x in label(),
        c1 in cond(),
        c2 in cond(),
        (a1, a2) in (action(), action()).prop_filter("different actions", |(a, b)| a != b),
    ) {
        let host = format!("{x}.{d}");
        let forward = compile_ok(&two_rules(&d, (c1, a1), (c2, a2)));
        let c = classify_host(&forward, &host);
        prop_assert_eq!(c.rule, Some(0), "{:?}", c);
        prop_assert_eq!(c.action, a1);
        prop_assert_eq!(&forward.rules[0].name, "first");

        let swapped = compile_ok(&two_rules(&d, (c2, a2), (c1, a1)));
        let c = classify_host(&swapped, &host);
        prop_assert_eq!(c.rule, Some(0), "{:?}", c);
        prop_assert_eq!(c.action, a2);

        // With the first rule unable to match (another host), the second decides.
        let other = format!("{x}-{d}-other.invalid");
        let c = classify_host(&forward, &other);
        match (c1, c2) {
            (Cond::Category | Cond::Hosts, Cond::Category | Cond::Hosts) => {
                prop_assert!(is_untouched(&c), "{:?}", c)
            }
            (Cond::Category | Cond::Hosts, _) => {
                prop_assert_eq!((c.rule, c.action), (Some(1), a2))
            }
            _ => prop_assert_eq!((c.rule, c.action), (Some(0), a1)),
        }
    }
}

// ---- unknown names in rules -----------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Kind {
    Category,
    Schedule,
    Group,
}

fn ident() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,10}"
}

proptest! {
    #![proptest_config(cfg())]

    /// A rule naming a category, schedule or group that is not defined is refused with the
    /// file, line and column of the bad name, and the name itself.
    #[test]
    fn unknown_names_are_refused_with_their_position(
        kind in select(vec![Kind::Category, Kind::Schedule, Kind::Group]),
        good in ident(),
        bad in ident(),
        as_list in any::<bool>(),
        bad_first in any::<bool>(),
        blank_lines in 0usize..6,
        indent in 0usize..4,
    ) {
        prop_assume!(good != bad);
        prop_assume!(!["fine", "faulty", "allow", "block"].contains(&bad.as_str()));
        let pad = " ".repeat(indent);
        let names = match (as_list || kind_needs_list(kind), bad_first) {
            (false, _) => q(&bad),
            (true, true) => format!("[{}, {}]", q(&bad), q(&good)),
            (true, false) => format!("[ {},   {} ]", q(&good), q(&bad)),
        };
        let key = match kind {
            Kind::Category => "category",
            Kind::Schedule => "schedule",
            Kind::Group => "clients",
        };
        let text = format!(
            "# signpost\n{blanks}[schedule.{good}]\nhours = \"09:00-17:00\"\ntimezone = \"UTC\"\n\n\
             [group.{good}]\nclients = [\"10.0.0.0/8\"]\n\n\
             [[category]]\nname = {gq}\nhosts = [\"example.org\"]\n\n\
             [[rule]]\nname = \"fine\"\ncategory = {gq}\naction = \"allow\"\n\n\
             [[rule]]\nname = \"faulty\"\n{pad}{key} = {names}\naction = \"block\"\n",
            blanks = "\n".repeat(blank_lines),
            gq = q(&good),
        );
        // The bad name is quoted on the last rule's line; its value starts at the quote.
        let rule_at = text.find("name = \"faulty\"").unwrap();
        let quoted = q(&bad);
        let (line, column) = position_at(&text, rule_at + text[rule_at..].find(&quoted).unwrap());

        // The config itself parses: the problem is only found when compiling.
        let config = Config::parse(Path::new("t.toml"), &text);
        prop_assert!(config.is_ok(), "{:?}", config.err().map(|e| e.to_string()));
        let err = match compile(&text) {
            Ok(_) => return Err(TestCaseError::fail(format!("compiled with unknown {key} `{bad}`:\n{text}"))),
            Err(e) => e,
        };
        let want = format!("t.toml:{line}:{column}:");
        prop_assert!(err.contains(&want), "want {want} in {err}\n---\n{text}");
        prop_assert!(err.contains(&format!("`{bad}`")), "want `{bad}` in {err}");
        prop_assert_eq!(err.lines().count(), 1, "one error only: {}", err);
        let what = match kind {
            Kind::Category => "unknown category",
            Kind::Schedule => "unknown schedule",
            Kind::Group => "neither an address range nor a [group.NAME]",
        };
        prop_assert!(err.contains(what), "want {what:?} in {err}");

        // Defining the name makes the same text compile.
        let fixed = text.replace(&q(&bad), &q(&good));
        prop_assert!(compile(&fixed).is_ok(), "{:?}", compile(&fixed).err());
    }
}

/// `clients` is always a list.
fn kind_needs_list(kind: Kind) -> bool {
    matches!(kind, Kind::Group)
}

/// The 1-based line and column of byte `offset` in `text` (ASCII text).
fn position_at(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}
