//! LDAP authentication: verifies a user name and password with a simple bind against a
//! directory (OpenLDAP, Active Directory, …) and looks up the person's groups.
//!
//! Two ways to find the DN to bind as:
//! - **bind DN template** (`bind_dn = "uid={user},ou=people,dc=example,dc=org"`): the
//!   user name, DN-escaped, is put into the template and bound directly;
//! - **search then bind** (`search_base`, `search_filter`, optionally `service_dn` and
//!   `service_password_env`): the user is looked up (as the service account, or
//!   anonymously) with the user name filter-escaped, and exactly one entry must match.
//!
//! Groups are the `group_attribute` values of the entries under `group_base` that match
//! `group_filter` (`{dn}` and `{user}` replaced, escaped), searched as the service account
//! when there is one, else as the user.
//!
//! Every call opens a fresh connection and is bounded, as a whole, by `timeout`. Nothing
//! here logs or keeps the person's password.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, ResultEntry, Scope, SearchEntry, SearchOptions};

use crate::config::LdapConfig;

/// Result codes (RFC 4511) that mean "this person could not log in", not "the directory
/// is broken": noSuchObject, invalidDNSyntax, invalidCredentials.
const RC_NO_SUCH_OBJECT: u32 = 32;
const RC_INVALID_DN_SYNTAX: u32 = 34;
const RC_INVALID_CREDENTIALS: u32 = 49;
/// sizeLimitExceeded: the user search matched more than one entry.
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;

/// Why a login against the directory did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    /// Wrong user name or password (or unknown user): a failed login.
    #[error("wrong user name or password")]
    BadCredentials,
    /// The directory could not be asked (down, TLS failure, misconfigured): not the
    /// person's fault.
    #[error("the directory is unavailable: {0}")]
    Unavailable(String),
    /// The `[identity.ldap]` settings cannot work.
    #[error("[identity.ldap]: {0}")]
    Config(String),
}

/// How the DN to bind as is found.
enum Locate {
    /// `bind_dn` with `{user}`.
    Template(String),
    /// `search_base` and `search_filter` with `{user}`.
    Search { base: String, filter: String },
}

/// The service account used for searches.
struct Service {
    dn: String,
    password: String,
}

/// A configured directory. Cheap to share (`Send + Sync`); each `authenticate` opens its
/// own connection.
pub struct Ldap {
    url: String,
    starttls: bool,
    /// `None`: ldap3's default (the system's roots through rustls-native-certs).
    tls: Option<Arc<rustls::ClientConfig>>,
    locate: Locate,
    service: Option<Service>,
    groups: Option<Groups>,
    timeout: Duration,
}

struct Groups {
    base: String,
    filter: String,
    attribute: String,
}

impl fmt::Debug for Ldap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ldap")
            .field("url", &self.url)
            .field("starttls", &self.starttls)
            .field("custom_ca", &self.tls.is_some())
            .field("service_dn", &self.service.as_ref().map(|s| s.dn.as_str()))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Ldap {
    /// Validates the settings and builds the TLS client configuration.
    ///
    /// Checks: an `ldap://` or `ldaps://` URL (StartTLS only with `ldap://`); exactly one
    /// of `bind_dn` and `search_base`, with `{user}` in the template or filter; filters
    /// that parse; the service account's password variable set when `service_dn` is (and
    /// not without it); a readable `ca_cert` with at least one certificate; a timeout.
    pub fn new(cfg: &LdapConfig) -> Result<Ldap, LdapError> {
        let config = |m: String| Err(LdapError::Config(m));
        let url = cfg.url.trim().to_string();
        let lower = url.to_ascii_lowercase();
        let tls_url = if lower.starts_with("ldaps://") {
            true
        } else if lower.starts_with("ldap://") {
            false
        } else {
            return config(format!("url {url:?} must start with ldap:// or ldaps://"));
        };
        if url.len() <= if tls_url { 8 } else { 7 } {
            return config(format!("url {url:?} names no host"));
        }
        if tls_url && cfg.starttls {
            return config(
                "starttls upgrades an ldap:// connection; an ldaps:// one is already TLS".into(),
            );
        }
        if !tls_url && !cfg.starttls {
            tracing::warn!(
                url = %url,
                "[identity.ldap] uses plain ldap:// without starttls: passwords cross the network in clear"
            );
        }

        let locate = match (&cfg.bind_dn, &cfg.search_base) {
            (Some(_), Some(_)) => {
                return config("set either bind_dn or search_base, not both".into())
            }
            (None, None) => {
                return config(
                    "set bind_dn (a template with {user}) or search_base (search then bind)".into(),
                )
            }
            (Some(template), None) => {
                if !template.contains("{user}") {
                    return config(format!("bind_dn {template:?} must contain {{user}}"));
                }
                Locate::Template(template.clone())
            }
            (None, Some(base)) => {
                if !cfg.search_filter.contains("{user}") {
                    return config(format!(
                        "search_filter {:?} must contain {{user}}",
                        cfg.search_filter
                    ));
                }
                check_filter("search_filter", &cfg.search_filter)?;
                Locate::Search {
                    base: base.clone(),
                    filter: cfg.search_filter.clone(),
                }
            }
        };

        let service = match (&cfg.service_dn, &cfg.service_password_env) {
            (None, None) => None,
            (Some(_), None) => {
                return config(
                    "service_dn needs service_password_env (the variable holding its password)"
                        .into(),
                )
            }
            (None, Some(_)) => {
                return config("service_password_env is set but service_dn is not".into())
            }
            (Some(dn), Some(var)) => match std::env::var(var) {
                Ok(password) if !password.is_empty() => Some(Service {
                    dn: dn.clone(),
                    password,
                }),
                Ok(_) => {
                    return config(format!(
                        "the environment variable {var} (service_password_env) is empty"
                    ))
                }
                Err(e) => {
                    return config(format!(
                        "the environment variable {var} (service_password_env): {e}"
                    ))
                }
            },
        };

        let groups = match &cfg.group_base {
            None => None,
            Some(base) => {
                check_filter("group_filter", &cfg.group_filter)?;
                let attribute = cfg.group_attribute.trim();
                if attribute.is_empty() {
                    return config("group_attribute is empty".into());
                }
                Some(Groups {
                    base: base.clone(),
                    filter: cfg.group_filter.clone(),
                    attribute: attribute.to_string(),
                })
            }
        };

        let timeout = cfg.timeout.0;
        if timeout.is_zero() {
            return config("timeout must be more than zero".into());
        }

        let tls = match &cfg.ca_cert {
            None => None,
            Some(path) => Some(client_config(path)?),
        };

        Ok(Ldap {
            url,
            starttls: cfg.starttls,
            tls,
            locate,
            service,
            groups,
            timeout,
        })
    }

    /// Verifies `user`/`password` with a simple bind and returns the names of the user's
    /// groups (sorted, without duplicates; empty when no `group_base` is configured).
    ///
    /// Empty user names and passwords are always `BadCredentials`: in LDAP a simple bind
    /// with an empty password is an anonymous ("unauthenticated") bind, which many
    /// directories accept.
    pub async fn authenticate(&self, user: &str, password: &str) -> Result<Vec<String>, LdapError> {
        if user.is_empty() || password.is_empty() {
            return Err(LdapError::BadCredentials);
        }
        match tokio::time::timeout(self.timeout, self.exchange(user, password)).await {
            Ok(result) => result,
            Err(_) => Err(LdapError::Unavailable(format!(
                "no answer from {} within {:?}",
                self.url, self.timeout
            ))),
        }
    }

    async fn exchange(&self, user: &str, password: &str) -> Result<Vec<String>, LdapError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_starttls(self.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url)
            .await
            .map_err(|e| unavailable(&self.url, "connecting", e))?;
        ldap3::drive!(conn);
        let result = self.converse(&mut ldap, user, password).await;
        // Best effort: the connection closes anyway once `ldap` is dropped.
        let _ = ldap.unbind().await;
        result
    }

    async fn converse(
        &self,
        ldap: &mut ldap3::Ldap,
        user: &str,
        password: &str,
    ) -> Result<Vec<String>, LdapError> {
        let dn = match &self.locate {
            Locate::Template(template) => fill(template, &[("{user}", &ldap3::dn_escape(user))]),
            Locate::Search { base, filter } => {
                if let Some(service) = &self.service {
                    self.bind_service(ldap, service).await?;
                }
                let filter = fill(filter, &[("{user}", &ldap3::ldap_escape(user))]);
                self.find_user(ldap, base, &filter).await?
            }
        };
        if dn.is_empty() {
            return Err(LdapError::BadCredentials);
        }

        let bound = ldap
            .simple_bind(&dn, password)
            .await
            .map_err(|e| unavailable(&self.url, "binding as the user", e))?;
        match bound.rc {
            0 => {}
            RC_INVALID_CREDENTIALS | RC_NO_SUCH_OBJECT | RC_INVALID_DN_SYNTAX => {
                return Err(LdapError::BadCredentials)
            }
            rc => {
                return Err(LdapError::Unavailable(format!(
                    "{}: binding as the user: result code {rc} {}",
                    self.url, bound.text
                )))
            }
        }

        let Some(groups) = &self.groups else {
            return Ok(Vec::new());
        };
        // Groups are read as the service account where there is one: users often may not.
        if let Some(service) = &self.service {
            self.bind_service(ldap, service).await?;
        }
        let filter = fill(
            &groups.filter,
            &[
                ("{dn}", &ldap3::ldap_escape(dn.as_str())),
                ("{user}", &ldap3::ldap_escape(user)),
            ],
        );
        let found = ldap
            .search(
                &groups.base,
                Scope::Subtree,
                &filter,
                vec![groups.attribute.as_str()],
            )
            .await
            .map_err(|e| unavailable(&self.url, "searching for groups", e))?;
        if found.1.rc != 0 {
            return Err(LdapError::Unavailable(format!(
                "{}: searching for groups under {:?}: result code {} {}",
                self.url, groups.base, found.1.rc, found.1.text
            )));
        }
        let mut names: Vec<String> = entries(found.0)
            .flat_map(|entry| {
                entry
                    .attrs
                    .into_iter()
                    .filter(|(name, _)| name.eq_ignore_ascii_case(&groups.attribute))
                    .flat_map(|(_, values)| values)
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn bind_service(
        &self,
        ldap: &mut ldap3::Ldap,
        service: &Service,
    ) -> Result<(), LdapError> {
        let result = ldap
            .simple_bind(&service.dn, &service.password)
            .await
            .map_err(|e| unavailable(&self.url, "binding as the service account", e))?;
        if result.rc != 0 {
            return Err(LdapError::Unavailable(format!(
                "{}: binding as the service account {:?}: result code {} {}",
                self.url, service.dn, result.rc, result.text
            )));
        }
        Ok(())
    }

    /// The DN of the one entry matching `filter` under `base`; none or several is a
    /// failed login.
    async fn find_user(
        &self,
        ldap: &mut ldap3::Ldap,
        base: &str,
        filter: &str,
    ) -> Result<String, LdapError> {
        let found = ldap
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(base, Scope::Subtree, filter, vec!["1.1"])
            .await
            .map_err(|e| unavailable(&self.url, "searching for the user", e))?;
        match found.1.rc {
            0 => {}
            RC_SIZE_LIMIT_EXCEEDED => {
                tracing::warn!(
                    filter = %filter,
                    "[identity.ldap] the user search matched several entries; refusing the login"
                );
                return Err(LdapError::BadCredentials);
            }
            rc => {
                return Err(LdapError::Unavailable(format!(
                    "{}: searching for the user under {base:?}: result code {rc} {}",
                    self.url, found.1.text
                )))
            }
        }
        let mut dns = entries(found.0).map(|entry| entry.dn);
        match (dns.next(), dns.next()) {
            (Some(dn), None) => Ok(dn),
            (None, _) => Err(LdapError::BadCredentials),
            (Some(_), Some(_)) => {
                tracing::warn!(
                    filter = %filter,
                    "[identity.ldap] the user search matched several entries; refusing the login"
                );
                Err(LdapError::BadCredentials)
            }
        }
    }
}

/// The real entries of a search result (not referrals or intermediate messages).
fn entries(found: Vec<ResultEntry>) -> impl Iterator<Item = SearchEntry> {
    found
        .into_iter()
        .filter(|e| !e.is_ref() && !e.is_intermediate())
        .map(SearchEntry::construct)
}

fn unavailable(url: &str, doing: &str, e: ldap3::LdapError) -> LdapError {
    LdapError::Unavailable(format!("{url}: {doing}: {e}"))
}

/// Replaces each placeholder in one pass, so that a value containing another
/// placeholder's text is never substituted again.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    'scan: while !rest.is_empty() {
        for (key, value) in values {
            if let Some(after) = rest.strip_prefix(key) {
                out.push_str(value);
                rest = after;
                continue 'scan;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// Checks that a filter template parses once its placeholders are filled.
fn check_filter(key: &str, template: &str) -> Result<(), LdapError> {
    let sample = fill(template, &[("{user}", "user"), ("{dn}", "cn=user")]);
    ldap3::parse_filter(&sample)
        .map(|_| ())
        .map_err(|()| LdapError::Config(format!("{key} {template:?} is not a valid LDAP filter")))
}

/// A TLS client configuration trusting exactly the certificates in `path` (PEM).
fn client_config(path: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, LdapError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let pem = std::fs::read(path)
        .map_err(|e| LdapError::Config(format!("ca_cert {}: {e}", path.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert =
            cert.map_err(|e| LdapError::Config(format!("ca_cert {}: {e}", path.display())))?;
        roots
            .add(cert)
            .map_err(|e| LdapError::Config(format!("ca_cert {}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(LdapError::Config(format!(
            "ca_cert {}: no PEM certificate in it",
            path.display()
        )));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| LdapError::Config(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_one_pass() {
        assert_eq!(
            fill(
                "(&(member={dn})(uid={user}))",
                &[("{dn}", "cn={user}"), ("{user}", "a")]
            ),
            "(&(member=cn={user})(uid=a))"
        );
        assert_eq!(fill("uid={user},dc=é", &[("{user}", "b")]), "uid=b,dc=é");
    }

    #[test]
    fn filter_templates_are_checked() {
        assert!(check_filter("f", "(uid={user})").is_ok());
        assert!(check_filter("f", "(|(member={dn})(uniqueMember={dn})(memberUid={user}))").is_ok());
        assert!(check_filter("f", "(uid={user}").is_err());
    }

    #[test]
    fn ldap_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Ldap>();
    }
}
