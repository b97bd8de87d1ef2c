//! Host names and address ranges: the small vocabulary that config, PAC and the proxy share.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// A host as the proxy compares it: a lower-case DNS name without a trailing dot, or an
/// IP literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// Parses a host as it appears in a URL authority (IPv6 in brackets) or in config.
    pub fn parse(text: &str) -> Result<Host, HostError> {
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Host::Ip(canonical_ip(ip)));
        }
        if bare.len() != text.len() {
            return Err(HostError::new(
                text,
                "brackets may only hold an IPv6 address",
            ));
        }
        if let Some(v4) = ipv4_like(text)? {
            return Ok(Host::Ip(IpAddr::V4(v4)));
        }
        normalise_name(text).map(Host::Name)
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Name(_) => None,
        }
    }
}

impl fmt::Display for Host {
    /// Writes the host as it goes into a URL authority (IPv6 in brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
        }
    }
}

/// Why a text is not a host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a valid host name: {why}")]
pub struct HostError {
    pub text: String,
    pub why: &'static str,
}

impl HostError {
    fn new(text: &str, why: &'static str) -> Self {
        HostError {
            text: text.chars().take(100).collect(),
            why,
        }
    }
}

/// Reads the other ways an IPv4 address can be written, as browsers and `inet_aton` do
/// (the WHATWG URL rule: a host whose last label is a number is an IPv4 address):
/// `127.1`, `2130706433`, `0x7f.0.0.1`, `0177.0.0.1`, `127.0.0.1.`. Without this, such a
/// spelling would dodge an IP entry in a category, or reach the proxy itself.
/// `Ok(None)` when the text is a name; an error when it looks like a number but is not a
/// valid address.
pub fn ipv4_like(text: &str) -> Result<Option<std::net::Ipv4Addr>, HostError> {
    let t = text.strip_suffix('.').unwrap_or(text);
    let parts: Vec<&str> = t.split('.').collect();
    let Some(last) = parts.last() else {
        return Ok(None);
    };
    let numeric = |p: &str| {
        let p = p.to_ascii_lowercase();
        !p.is_empty()
            && (p.bytes().all(|b| b.is_ascii_digit())
                || p.strip_prefix("0x")
                    .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit())))
    };
    if !numeric(last) {
        return Ok(None);
    }
    let bad = || HostError::new(text, "it ends in a number but is not a valid IPv4 address");
    if parts.len() > 4 {
        return Err(bad());
    }
    let mut values = Vec::with_capacity(parts.len());
    for p in &parts {
        let lower = p.to_ascii_lowercase();
        let value = if let Some(hex) = lower.strip_prefix("0x") {
            if hex.is_empty() {
                Ok(0)
            } else {
                u64::from_str_radix(hex, 16)
            }
        } else if lower.len() > 1 && lower.starts_with('0') {
            u64::from_str_radix(&lower[1..], 8)
        } else {
            lower.parse::<u64>()
        };
        values.push(value.map_err(|_| bad())?);
    }
    let (head, tail) = values.split_at(values.len() - 1);
    if head.iter().any(|v| *v > 255) {
        return Err(bad());
    }
    let room = 8 * (5 - values.len() as u32);
    if tail[0] >= (1u64 << room) {
        return Err(bad());
    }
    let mut n: u64 = tail[0];
    for (i, v) in head.iter().enumerate() {
        n += v << (8 * (3 - i as u32));
    }
    Ok(Some(std::net::Ipv4Addr::from(n as u32)))
}

/// Lower-cases a DNS name, drops one trailing dot and checks label syntax.
///
/// Underscores are accepted because real internal names use them; anything else outside
/// letters, digits, `-` and `.` is refused so that a host can be written into a page, a
/// log line or a PAC file without surprises.
pub fn normalise_name(text: &str) -> Result<String, HostError> {
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() {
        return Err(HostError::new(text, "it is empty"));
    }
    if name.len() > 253 {
        return Err(HostError::new(text, "it is longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostError::new(text, "it has an empty label"));
        }
        if label.len() > 63 {
            return Err(HostError::new(text, "a label is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(HostError::new(
                text,
                "only letters, digits, '-', '_' and '.' are allowed (write IDN names in punycode)",
            ));
        }
    }
    Ok(name.to_ascii_lowercase())
}

/// A client address range, written as `10.0.0.0/8` or as a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical_ip(ip))
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Cidr(IpNet::from(ip)));
        }
        Err(format!(
            "`{s}` is not an address range; write it like 10.0.0.0/8, 2001:db8::/32 or 192.0.2.7"
        ))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// IPv4 clients on a dual-stack socket arrive as `::ffff:a.b.c.d`; compare them as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased_and_lose_one_trailing_dot() {
        assert_eq!(
            Host::parse("WWW.Ning.com.").unwrap(),
            Host::Name("www.ning.com".into())
        );
        assert!(Host::parse("a..b").is_err());
        assert!(Host::parse("").is_err());
        assert!(Host::parse("exa mple.com").is_err());
        assert!(Host::parse("<script>").is_err());
    }

    #[test]
    fn ip_literals_with_and_without_brackets() {
        assert_eq!(
            Host::parse("[::1]").unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(Host::parse("[::1]").unwrap().to_string(), "[::1]");
        assert_eq!(
            Host::parse("10.1.2.3").unwrap(),
            Host::Ip("10.1.2.3".parse().unwrap())
        );
        assert!(Host::parse("[example.com]").is_err());
    }

    #[test]
    fn other_spellings_of_ipv4_are_addresses() {
        let lo = Host::Ip("127.0.0.1".parse().unwrap());
        for s in [
            "127.0.0.1.",
            "127.1",
            "2130706433",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "0x7F000001",
            "127.0.1",
        ] {
            assert_eq!(Host::parse(s).unwrap(), lo, "{s}");
        }
        assert_eq!(
            Host::parse("10.0.4.0.").unwrap(),
            Host::Ip("10.0.4.0".parse().unwrap())
        );
        assert!(Host::parse("256.0.0.1").is_err());
        assert!(Host::parse("1.2.3.4.5").is_err());
        assert!(Host::parse("4294967296").is_err());
        assert!(Host::parse("08.1.1.1").is_err(), "08 is not octal");
        assert_eq!(
            Host::parse("example.com").unwrap(),
            Host::Name("example.com".into())
        );
        assert_eq!(
            Host::parse("1a.example").unwrap(),
            Host::Name("1a.example".into())
        );
        assert_eq!(
            Host::parse("[::ffff:127.0.0.1]").unwrap(),
            lo,
            "IPv4-mapped is IPv4"
        );
    }

    #[test]
    fn cidrs_accept_ranges_and_single_addresses() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.200.0.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        // host bits are tolerated and dropped
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!("10.0.0/8".parse::<Cidr>().is_err());
    }

    #[test]
    fn mapped_ipv4_clients_match_ipv4_ranges() {
        let net: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(net.contains("::ffff:127.0.0.1".parse().unwrap()));
    }
}
