//! Typed config values that validate themselves while being read, so that a bad value is
//! reported at its own line and column.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, Error as _};

use crate::net::{self, Cidr, Host};

/// Reads a string and parses it with `FromStr`, turning the parse error into a serde error
/// (which toml places at the value's span).
fn parse_str<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(D::Error::custom)
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d)
    }
}

/// A length of time written like `30s`, `5m`, `8h` or `90d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s)
            .map(Span)
            .map_err(|e| format!("`{s}` is not a duration like 30s, 5m, 8h or 90d ({e})"))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

/// A listening address such as `127.0.0.1:3128` or `[::]:3128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub SocketAddr);

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Listen).map_err(|_| {
            format!("`{s}` is not an address and port like 127.0.0.1:3128 or [::]:3128")
        })
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d)
    }
}

/// A DNS host name (lower-cased, no trailing dot).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostName(pub String);

impl FromStr for HostName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        net::normalise_name(s)
            .map(HostName)
            .map_err(|e| e.to_string())
    }
}

impl<'de> Deserialize<'de> for HostName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d)
    }
}

/// A `host:port` a browser can reach the proxy at, as listed in the PAC file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyEndpoint {
    pub host: Host,
    pub port: u16,
}

impl FromStr for ProxyEndpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a proxy address like signpost.example.org:3128");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = Host::parse(host).map_err(|e| e.to_string())?;
        if port == 0 {
            return Err(bad());
        }
        Ok(ProxyEndpoint { host, port })
    }
}

impl<'de> Deserialize<'de> for ProxyEndpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d)
    }
}

impl fmt::Display for ProxyEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// One `pac.direct` entry: which destinations browsers reach without the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectEntry {
    /// `intranet.example.org`: the name and all its subdomains.
    Domain(String),
    /// `*.intranet.example.org` or `host?.lan`: a shell pattern, as PAC's `shExpMatch`.
    Pattern(String),
    /// `10.0.0.0/8`: IP literals inside the range (names are never resolved).
    Range(Cidr),
}

impl FromStr for DirectEntry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains('/') || s.parse::<IpAddr>().is_ok() {
            return s.parse().map(DirectEntry::Range);
        }
        if s.contains('*') || s.contains('?') {
            let ok = !s.is_empty()
                && s.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*' | b'?')
                });
            return if ok {
                Ok(DirectEntry::Pattern(s.to_ascii_lowercase()))
            } else {
                Err(format!(
                    "`{s}` is not a host pattern: use letters, digits, '.', '-', '*' and '?'"
                ))
            };
        }
        net::normalise_name(s)
            .map(DirectEntry::Domain)
            .map_err(|e| e.to_string())
    }
}

impl<'de> Deserialize<'de> for DirectEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d)
    }
}

/// A TCP port for CONNECT (1–65535).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u16::try_from(n) {
            Ok(p) if p > 0 => Ok(Port(p)),
            _ => Err(D::Error::custom(format!(
                "{n} is not a TCP port (1 to 65535)"
            ))),
        }
    }
}

/// A whole number with a floor (and a ceiling), for limits that must stay sane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded<const MIN: u64, const MAX: u64>(pub u64);

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u64::try_from(n) {
            Ok(v) if (MIN..=MAX).contains(&v) => Ok(Bounded(v)),
            _ => Err(D::Error::custom(format!(
                "{n} is out of range: it must be between {MIN} and {MAX}"
            ))),
        }
    }
}

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    pub fn get(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// One name or a list of names: `category = "social"` or `category = ["social", "news"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names(pub Vec<String>);

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Names;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name or a list of names")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Names, E> {
                Ok(Names(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Names, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Names(out))
            }
        }
        d.deserialize_any(V)
    }
}
