//! The TOML configuration: its schema, its defaults, and loading with errors that name the
//! file, line, column, key and value.
//!
//! Every value validates itself while it is read (see [`values`]), so the only errors
//! left for later stages are those that relate one part of the file to another.

mod error;
pub mod values;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use error::{ConfigError, ConfigErrors, Position};
pub use values::{Bounded, DirectEntry, HostName, Listen, Names, Port, ProxyEndpoint, Span};

use crate::net::Cidr;

/// The path `run` and `check` use when no `-c` is given.
pub const DEFAULT_PATH: &str = "config/signpost.toml";

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub proxy: ProxyConfig,
    pub upstream: UpstreamConfig,
    pub pac: PacConfig,
    pub tls: Option<TlsConfig>,
    pub coach: CoachConfig,
    pub journal: JournalConfig,
    pub pages: PagesConfig,
    pub admin: AdminConfig,
    pub identity: IdentityConfig,
    pub organisation: OrganisationConfig,
    #[serde(rename = "schedule")]
    pub schedules: BTreeMap<String, ScheduleConfig>,
    #[serde(rename = "group")]
    pub groups: BTreeMap<String, GroupConfig>,
    #[serde(rename = "category")]
    pub categories: Vec<CategoryConfig>,
    #[serde(rename = "rule")]
    pub rules: Vec<RuleConfig>,
    /// The file this was read from and its text, for positioned errors in later stages.
    #[serde(skip)]
    pub source: Source,
}

/// Where a config came from.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// `[tls]`: the interception CA. Without this section Signpost never decrypts anything.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// Create the CA on first start when the files are missing.
    #[serde(default)]
    pub create_if_missing: bool,
    /// How many hosts' leaf certificates are kept ready.
    #[serde(default = "default_leaf_cache")]
    pub leaf_cache: Bounded<1, 1_000_000>,
}

fn default_leaf_cache() -> Bounded<1, 1_000_000> {
    Bounded(1000)
}

/// What one acknowledgement covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckScope {
    /// The whole category, on every host in it.
    #[default]
    Category,
    /// The category on that host only.
    Host,
}

/// `[coach]`: the interstitial and acknowledgements.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoachConfig {
    /// How long an acknowledgement lasts (a category may override it).
    pub acknowledge_for: Span,
    pub scope: AckScope,
    /// The key that signs acknowledgement tokens; created (mode 0600) on first run.
    pub secret_file: PathBuf,
}

impl Default for CoachConfig {
    fn default() -> Self {
        CoachConfig {
            acknowledge_for: Span(Duration::from_secs(8 * 3600)),
            scope: AckScope::Category,
            secret_file: PathBuf::from("var/coach-secret"),
        }
    }
}

/// `[journal]`: where decisions are recorded (acknowledgements live in the same store).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// The embedded SQLite store.
    pub path: PathBuf,
    /// Also write one JSON object per line here, for log shippers.
    pub jsonl: Option<PathBuf>,
    /// Also write Squid's native access.log format here, for SARG, Calamaris, squidanalyzer.
    pub squid_log: Option<PathBuf>,
    /// Records older than this are purged; none means kept forever.
    pub retention: Option<Span>,
    /// Store and show a keyed hash instead of client addresses and user names.
    pub pseudonymise: bool,
    /// Set to false to record no decisions (for measuring its cost; not for production).
    pub enabled: bool,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            path: PathBuf::from("var/journal.db"),
            jsonl: None,
            squid_log: None,
            retention: Some(Span(Duration::from_secs(90 * 86400))),
            pseudonymise: false,
            enabled: true,
        }
    }
}

/// `[admin]`: the review dashboard and `/metrics`, on their own listener (never the proxy
/// port: nothing about people is served there).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: Listen,
    /// An argon2 hash (PHC string) of the dashboard password.
    pub password_hash: Option<String>,
    /// The name of an environment variable holding an access token (for scripts).
    pub token_env: Option<String>,
    /// How long a dashboard login lasts.
    pub session_lifetime: Span,
    /// Set to false to run without the admin listener.
    pub enabled: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: Listen(([127, 0, 0, 1], 3129).into()),
            password_hash: None,
            token_env: None,
            session_lifetime: Span(Duration::from_secs(8 * 3600)),
            enabled: true,
        }
    }
}

/// How people are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    /// By client address (no login).
    #[default]
    Ip,
    /// Proxy authentication (`Proxy-Authorization: Basic`).
    Basic,
}

/// A source of user names and passwords, tried in the order listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialSource {
    Htpasswd,
    Ldap,
}

/// `[identity]`: who is behind a request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    pub mode: IdentityMode,
    /// Shown by browsers in the login prompt.
    pub realm: String,
    pub sources: Vec<CredentialSource>,
    /// An htpasswd file with bcrypt hashes (`signpost user add -f FILE NAME`).
    pub htpasswd: Option<PathBuf>,
    pub ldap: Option<LdapConfig>,
    /// How long a verified login is remembered (as a salted hash, never the password).
    pub cache_for: Span,
    /// Failed logins allowed per client address, and per user name, in `failure_window`.
    pub max_failures: Bounded<1, 1_000_000>,
    pub failure_window: Span,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            mode: IdentityMode::Ip,
            realm: "Signpost web proxy".into(),
            sources: vec![CredentialSource::Htpasswd],
            htpasswd: None,
            ldap: None,
            cache_for: Span(Duration::from_secs(600)),
            max_failures: Bounded(10),
            failure_window: Span(Duration::from_secs(600)),
        }
    }
}

/// `[identity.ldap]`: a directory such as Active Directory or OpenLDAP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// A PEM file of CA certificates to trust for ldaps/StartTLS (default: the system's).
    pub ca_cert: Option<PathBuf>,
    /// Bind directly as this DN, `{user}` replaced by the (escaped) user name.
    pub bind_dn: Option<String>,
    /// Or search for the user under this base with `search_filter`, as the service account.
    pub search_base: Option<String>,
    #[serde(default = "default_search_filter")]
    pub search_filter: String,
    pub service_dn: Option<String>,
    /// The environment variable holding the service account's password.
    pub service_password_env: Option<String>,
    /// Where groups are; `group_filter` may use `{dn}` and `{user}`.
    pub group_base: Option<String>,
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    #[serde(default = "default_group_attribute")]
    pub group_attribute: String,
    #[serde(default = "default_ldap_timeout")]
    pub timeout: Span,
}

fn default_search_filter() -> String {
    "(uid={user})".into()
}
fn default_group_filter() -> String {
    "(|(member={dn})(uniqueMember={dn})(memberUid={user}))".into()
}
fn default_group_attribute() -> String {
    "cn".into()
}
fn default_ldap_timeout() -> Span {
    Span(Duration::from_secs(5))
}

/// `[pages]`: where page templates may be overridden.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagesConfig {
    /// A folder whose files replace the built-in templates of the same name.
    pub dir: Option<PathBuf>,
}

/// `[organisation]`: who runs this proxy, shown on its pages.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrganisationConfig {
    pub name: Option<String>,
    /// Link to the acceptable-use policy.
    pub acceptable_use_url: Option<String>,
    /// Who to ask about a blocked site (an address, a phone number, a desk).
    pub contact: Option<String>,
}

/// `[schedule.NAME]`: when a rule applies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// `mon` … `sun`; all week when absent.
    #[serde(default)]
    pub days: Names,
    /// `"12:00-14:00"`, or a list; ranges may cross midnight. All day when absent.
    #[serde(default)]
    pub hours: Names,
    /// An IANA time zone such as `Europe/London`; this machine's zone when absent.
    pub timezone: Option<String>,
}

/// `[group.NAME]`: clients named together so that rules can refer to them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupConfig {
    pub clients: Vec<Cidr>,
    /// User names (with proxy authentication).
    pub users: Vec<String>,
}

/// `[[category]]`: a kind of site, and where its members are listed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryConfig {
    pub name: String,
    pub title: Option<String>,
    /// A Markdown file, or the guidance text itself.
    pub guidance: Option<String>,
    /// Host names (each covers its subdomains) or `*`/`?` patterns.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `host/path` prefixes, as in squidGuard `urls` files.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Folders in the squidGuard/UT1 layout, holding `domains` and/or `urls` files.
    #[serde(default)]
    pub lists: Vec<PathBuf>,
    /// Ask for a reason before continuing.
    #[serde(default)]
    pub require_reason: bool,
    /// Overrides `coach.acknowledge_for` for this category.
    pub acknowledge_for: Option<Span>,
}

/// What a rule does with a request it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Pass; journaled.
    Allow,
    /// Pass; flagged for review.
    Monitor,
    /// Show the category's guidance until the person acknowledges it.
    Coach,
    /// Refuse, with a page.
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Monitor => "monitor",
            Action::Coach => "coach",
            Action::Block => "block",
        }
    }
}

/// `[[rule]]`: tried in order; the first whose conditions all hold decides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    pub category: Option<Names>,
    pub hosts: Option<Vec<String>>,
    /// CIDRs, addresses, or names of `[group.NAME]`.
    pub clients: Option<Vec<String>>,
    /// User names (proxy authentication); any of them.
    pub users: Option<Vec<String>>,
    /// `[group.NAME]` with `users`, or directory (LDAP) group names; any of them.
    pub groups: Option<Vec<String>>,
    /// One schedule or a list; any of them may hold.
    pub schedule: Option<Names>,
    pub methods: Option<Names>,
    pub action: Action,
    /// Shown on the page for this rule's block or coach.
    pub message: Option<String>,
}

/// `[proxy]`: how clients reach Signpost and what it lets them do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    pub listen: Listen,
    /// Who may use the proxy. Never empty by default: an open proxy is abused within hours.
    pub allow_clients: Vec<Cidr>,
    /// CONNECT is a raw TCP pipe; limiting ports keeps it from reaching mail or SSH servers.
    pub connect_ports: Vec<Port>,
    /// The name clients use for the proxy (PAC file, pages, loop detection).
    pub hostname: Option<HostName>,
    pub max_connections: Bounded<1, 1_000_000>,
    /// hyper's read buffer cannot be smaller than 8 KiB.
    pub max_header_bytes: Bounded<8192, 1_048_576>,
    /// Time allowed for a whole request head once its first byte has arrived (slowloris).
    pub header_timeout: Span,
    /// Time a keep-alive connection may sit between requests before it is closed.
    pub idle_timeout: Span,
    /// Time a client may take no response bytes while some are waiting (a stalled reader).
    pub send_timeout: Span,
    /// Time a CONNECT tunnel or WebSocket may move no bytes before it is closed.
    pub tunnel_idle_timeout: Span,
    /// On SIGTERM/SIGINT, how long in-flight exchanges and tunnels may take to finish.
    pub shutdown_grace: Span,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        let ranges = [
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
        ];
        ProxyConfig {
            listen: Listen(([127, 0, 0, 1], 3128).into()),
            allow_clients: ranges.iter().filter_map(|r| r.parse().ok()).collect(),
            connect_ports: vec![Port(443)],
            hostname: None,
            max_connections: Bounded(10_000),
            max_header_bytes: Bounded(64 * 1024),
            header_timeout: Span(Duration::from_secs(30)),
            idle_timeout: Span(Duration::from_secs(60)),
            send_timeout: Span(Duration::from_secs(60)),
            tunnel_idle_timeout: Span(Duration::from_secs(15 * 60)),
            shutdown_grace: Span(Duration::from_secs(10)),
        }
    }
}

/// `[upstream]`: how Signpost finds and talks to origin servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Like a hosts file; consulted before `hosts_file` and DNS.
    pub hosts: BTreeMap<HostName, IpAddr>,
    /// A file in /etc/hosts format, as Squid's `hosts_file`.
    pub hosts_file: Option<PathBuf>,
    pub dns_timeout: Span,
    pub connect_timeout: Span,
    /// Time the origin may take to start its response.
    pub response_timeout: Span,
    /// How long an idle pooled connection to an origin is kept.
    pub pool_idle_timeout: Span,
    pub pool_max_idle_per_host: Bounded<0, 100_000>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            hosts: BTreeMap::new(),
            hosts_file: None,
            dns_timeout: Span(Duration::from_secs(5)),
            connect_timeout: Span(Duration::from_secs(10)),
            response_timeout: Span(Duration::from_secs(60)),
            pool_idle_timeout: Span(Duration::from_secs(90)),
            pool_max_idle_per_host: Bounded(64),
        }
    }
}

/// `[pac]`: the proxy auto-configuration file served at `/proxy.pac` and `/wpad.dat`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacConfig {
    pub direct: Vec<DirectEntry>,
    /// Proxies in failover order; empty means `proxy.hostname` (or the listen address)
    /// and the listen port.
    pub proxies: Vec<ProxyEndpoint>,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(path, &e))?;
        Config::parse(path, &text)
    }

    /// Validates config text; `path` is only used to name the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        let de = toml::Deserializer::new(text);
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let exact = span_of_path(text, e.path());
            let inner = e.into_inner();
            let span = narrowest(inner.span(), exact);
            let key = if key == "." { String::new() } else { key };
            ConfigError::at_span(path, text, span, key, inner.message().to_string())
        })?;
        config.check_relations(path, text)?;
        config.source = Source {
            path: path.to_path_buf(),
            text: text.to_string(),
        };
        Ok(config)
    }

    /// Checks that only make sense across several values.
    fn check_relations(&self, path: &Path, text: &str) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        if self.proxy.allow_clients.is_empty() {
            errors.push(ConfigError::at_span(
                path,
                text,
                find_key(text, "allow_clients"),
                "proxy.allow_clients",
                "must name at least one client range: Signpost is never an open proxy, and \
                 with no range nobody could use it",
            ));
        }
        if self.proxy.connect_ports.is_empty() {
            errors.push(ConfigError::at_span(
                path,
                text,
                find_key(text, "connect_ports"),
                "proxy.connect_ports",
                "is empty, so no HTTPS site could be reached; the usual value is [443]",
            ));
        }
        if let Some(url) = &self.organisation.acceptable_use_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                errors.push(ConfigError::at_span(
                    path,
                    text,
                    find_key(text, "acceptable_use_url"),
                    "organisation.acceptable_use_url",
                    "must be an http:// or https:// address",
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Where the hosts file and other relative paths are resolved: the working directory,
    /// as for every path in the file.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        p.to_path_buf()
    }
}

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Finds where values are written in a config file, for errors found after parsing.
pub struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
    doc: Option<toml_edit::ImDocument<&'a str>>,
}

impl<'a> Locator<'a> {
    pub fn new(source: &'a Source) -> Self {
        Locator {
            path: &source.path,
            text: &source.text,
            doc: toml_edit::ImDocument::parse(source.text.as_str()).ok(),
        }
    }

    /// The span of the value at `segs`, if it is in the file.
    pub fn span(&self, segs: &[Seg]) -> Option<std::ops::Range<usize>> {
        let mut item: &toml_edit::Item = self.doc.as_ref()?.as_item();
        for seg in segs {
            item = match seg {
                Seg::Key(k) => item.get(*k)?,
                Seg::Index(i) => item.get(*i)?,
            };
        }
        item.span()
    }

    /// The line (1-based) where the value at `segs` starts; 0 when unknown.
    pub fn line(&self, segs: &[Seg]) -> u32 {
        self.span(segs)
            .map(|s| Position::at(self.text, s.start).line as u32)
            .unwrap_or(0)
    }

    /// An error about the value at `segs`.
    pub fn error(&self, segs: &[Seg], message: impl Into<String>) -> ConfigError {
        let key = segs
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Seg::Key(k) if i == 0 => k.to_string(),
                Seg::Key(k) => format!(".{k}"),
                Seg::Index(n) => format!("[{n}]"),
            })
            .collect::<String>();
        ConfigError::at_span(self.path, self.text, self.span(segs), key, message)
    }
}

/// The span of the value at a serde path, found by walking the parsed document.
fn span_of_path(text: &str, path: &serde_path_to_error::Path) -> Option<std::ops::Range<usize>> {
    use serde_path_to_error::Segment;
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut item: &toml_edit::Item = doc.as_item();
    for segment in path.iter() {
        item = match segment {
            Segment::Seq { index } => item.get(*index)?,
            Segment::Map { key } => item.get(key.as_str())?,
            Segment::Enum { .. } | Segment::Unknown => return None,
        };
    }
    item.span()
}

/// toml places some errors on a whole array or table; prefer the element inside it.
fn narrowest(
    reported: Option<std::ops::Range<usize>>,
    from_path: Option<std::ops::Range<usize>>,
) -> Option<std::ops::Range<usize>> {
    match (reported, from_path) {
        (Some(r), Some(p)) if r.start <= p.start && p.end <= r.end => Some(p),
        (Some(r), _) => Some(r),
        (None, p) => p,
    }
}

/// Finds where `key = ` is written, for errors about a key's value as a whole.
fn find_key(text: &str, key: &str) -> Option<std::ops::Range<usize>> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                let start = offset + (line.len() - trimmed.len());
                return Some(start..start + line.trim_end().len() - (line.len() - trimmed.len()));
            }
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("t.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_file_gives_safe_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.proxy.listen.0.to_string(), "127.0.0.1:3128");
        assert_eq!(c.proxy.connect_ports, vec![Port(443)]);
        assert!(c
            .proxy
            .allow_clients
            .iter()
            .any(|n| n.contains("192.168.1.1".parse().unwrap())));
        assert!(!c
            .proxy
            .allow_clients
            .iter()
            .any(|n| n.contains("8.8.8.8".parse().unwrap())));
    }

    #[test]
    fn unknown_key_names_file_line_column_and_key() {
        let e = parse("[proxy]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert!(e.starts_with("t.toml:3:1: "), "{e}");
        assert!(e.contains("unknown field `lisen`"), "{e}");
    }

    #[test]
    fn bad_cidr_names_the_key_path_and_value() {
        let e = parse("[proxy]\nallow_clients = [\n  \"10.0.0.0/8\",\n  \"10.0.0/8\",\n]\n")
            .unwrap_err();
        assert!(e.starts_with("t.toml:4:3: `proxy.allow_clients[1]`"), "{e}");
        assert!(e.contains("\"10.0.0/8\""), "{e}");
    }

    #[test]
    fn bad_duration_and_port_and_limit() {
        let e = parse("[proxy]\nidle_timeout = \"soon\"\n").unwrap_err();
        assert!(e.contains("t.toml:2:16: `proxy.idle_timeout`"), "{e}");
        let e = parse("[proxy]\nconnect_ports = [443, 70000]\n").unwrap_err();
        assert!(e.contains("`proxy.connect_ports[1]`"), "{e}");
        assert!(e.contains("70000 is not a TCP port"), "{e}");
        let e = parse("[proxy]\nmax_header_bytes = 100\n").unwrap_err();
        assert!(e.contains("between 8192 and"), "{e}");
    }

    #[test]
    fn upstream_hosts_map_values_are_ips() {
        let c = parse("[upstream]\nhosts = { \"WWW.Ning.com\" = \"127.0.0.1\" }\n").unwrap();
        assert_eq!(
            c.upstream.hosts.get(&HostName("www.ning.com".into())),
            Some(&"127.0.0.1".parse().unwrap())
        );
        let e = parse("[upstream]\nhosts = { \"a.example\" = \"not-an-ip\" }\n").unwrap_err();
        assert!(e.contains("`upstream.hosts.a.example`"), "{e}");
    }

    #[test]
    fn empty_allow_clients_is_refused_with_position() {
        let e = parse("[proxy]\nallow_clients = []\n").unwrap_err();
        assert!(e.starts_with("t.toml:2:1: `proxy.allow_clients`"), "{e}");
    }

    #[test]
    fn pac_direct_entries_are_classified() {
        let c = parse(
            "[pac]\ndirect = [\"*.intranet.example.org\", \"10.0.0.0/8\", \"Example.COM\"]\n",
        )
        .unwrap();
        assert_eq!(
            c.pac.direct,
            vec![
                DirectEntry::Pattern("*.intranet.example.org".into()),
                DirectEntry::Range("10.0.0.0/8".parse().unwrap()),
                DirectEntry::Domain("example.com".into()),
            ]
        );
        assert!(parse("[pac]\ndirect = [\"a\\\"b*\"]\n").is_err());
    }
}
