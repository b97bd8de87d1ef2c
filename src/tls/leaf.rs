//! Leaf certificates for intercepted hosts, minted on demand and cached per host.
//!
//! All leaves share one ECDSA P-256 key, generated when the [`Minter`] is made and never
//! written anywhere, so minting costs one CA signature and no key generation. Each leaf
//! gets a random serial number (browsers reject two certificates from one issuer with the
//! same serial), is valid from five minutes ago (clock skew) for seven days, and is
//! re-minted once its cache entry is a day old.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::PrivateKeyDer;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};
use rustls::sign::{CertifiedKey, SigningKey, SingleCertAndKey};
use rustls::ServerConfig;

use super::ca::{self, Ca};
use crate::net::Host;

/// How long a cached leaf is served before it is minted again (it stays valid 7 days).
const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// How far back a leaf's validity starts, for clients whose clocks run slow.
const BACKDATE: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);
/// How long a leaf is valid from now.
const LIFETIME: jiff::SignedDuration = jiff::SignedDuration::from_hours(7 * 24);
/// TLS sessions remembered for resumption, shared by all hosts (rustls refuses to resume a
/// session under a different server name).
const SESSIONS: usize = 1024;

/// Why a leaf certificate could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// `[tls]` cache capacity of zero.
    #[error("the leaf certificate cache capacity must be at least 1")]
    ZeroCapacity,
    /// The shared leaf key could not be generated or loaded (not expected in practice).
    #[error("could not prepare the leaf certificate key: {reason}")]
    LeafKey { reason: String },
    /// Signing the leaf for one host failed.
    #[error("could not mint a certificate for {host}: {reason}")]
    Sign { host: String, reason: String },
    /// rustls refused the configuration (not expected in practice).
    #[error("could not build the TLS configuration for {host}: {source}")]
    Rustls {
        host: String,
        #[source]
        source: rustls::Error,
    },
}

struct Entry {
    config: Arc<ServerConfig>,
    minted: Instant,
}

/// Mints leaf certificates for intercepted hosts; one leaf key (ECDSA P-256) for all
/// leaves; a bounded LRU cache of rustls `ServerConfig` per host.
pub struct Minter {
    ca: Ca,
    provider: Arc<CryptoProvider>,
    leaf_key: KeyPair,
    signing_key: Arc<dyn SigningKey>,
    sessions: Arc<dyn StoresServerSessions>,
    cache: Mutex<LruCache<Host, Entry>>,
    max_age: Duration,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("ca", &self.ca)
            .field("cached", &self.cached())
            .finish_non_exhaustive()
    }
}

impl Minter {
    /// A minter signing with `ca`, caching at most `capacity` hosts.
    pub fn new(ca: Ca, capacity: usize) -> Result<Minter, MintError> {
        let capacity = NonZeroUsize::new(capacity).ok_or(MintError::ZeroCapacity)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| {
            MintError::LeafKey {
                reason: e.to_string(),
            }
        })?;
        let key_der = PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let signing_key = provider
            .key_provider
            .load_private_key(key_der)
            .map_err(|e| MintError::LeafKey {
                reason: e.to_string(),
            })?;
        Ok(Minter {
            ca,
            provider,
            leaf_key,
            signing_key,
            sessions: ServerSessionMemoryCache::new(SESSIONS),
            cache: Mutex::new(LruCache::new(capacity)),
            max_age: MAX_AGE,
        })
    }

    /// A `ServerConfig` presenting a leaf for `host` (SAN = DNS name, or IP address for
    /// [`Host::Ip`]), chain `[leaf, CA]`, ALPN `http/1.1` only. Cached; an entry older
    /// than a day is minted again.
    pub fn server_config(&self, host: &Host) -> Result<Arc<ServerConfig>, MintError> {
        if let Some(config) = self.fresh(host) {
            return Ok(config);
        }
        // Minting happens outside the lock; two tasks may race to mint the same host, and
        // the first one stored wins so that both get the same config.
        let config = Arc::new(self.mint(host)?);
        let mut cache = self.lock();
        if let Some(entry) = cache.get(host) {
            if entry.minted.elapsed() < self.max_age {
                return Ok(Arc::clone(&entry.config));
            }
        }
        cache.put(
            host.clone(),
            Entry {
                config: Arc::clone(&config),
                minted: Instant::now(),
            },
        );
        Ok(config)
    }

    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// Hosts currently in the cache.
    pub fn cached(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<Host, Entry>> {
        // The cache holds no invariant a panicking holder could break.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fresh(&self, host: &Host) -> Option<Arc<ServerConfig>> {
        let mut cache = self.lock();
        let entry = cache.get(host)?;
        (entry.minted.elapsed() < self.max_age).then(|| Arc::clone(&entry.config))
    }

    fn mint(&self, host: &Host) -> Result<ServerConfig, MintError> {
        let failed = |reason: String| MintError::Sign {
            host: host.to_string(),
            reason,
        };
        let (common_name, san) = match host {
            Host::Name(name) => {
                let dns = rcgen::string::Ia5String::try_from(name.as_str())
                    .map_err(|e| failed(e.to_string()))?;
                (name.clone(), SanType::DnsName(dns))
            }
            Host::Ip(ip) => (ip.to_string(), SanType::IpAddress(*ip)),
        };

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![san];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(ca::random_serial().map_err(failed)?);
        let now = jiff::Timestamp::now();
        ca::set_validity(&mut params, now - BACKDATE, now + LIFETIME).map_err(failed)?;

        let leaf = params
            .signed_by(&self.leaf_key, self.ca.issuer())
            .map_err(|e| failed(e.to_string()))?;
        let chain = vec![leaf.der().clone(), self.ca.cert_der.clone()];
        let certified = CertifiedKey::new(chain, Arc::clone(&self.signing_key));

        let rustls_failed = |source| MintError::Rustls {
            host: host.to_string(),
            source,
        };
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(rustls_failed)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.session_storage = Arc::clone(&self.sessions);
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{ClientConfig, RootCertStore};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn minter(capacity: usize) -> (tempfile::TempDir, Minter) {
        let dir = tempfile::tempdir().unwrap();
        let files = ca::init(dir.path(), false).unwrap();
        let ca = Ca::load(&files.cert, &files.key).unwrap();
        (dir, Minter::new(ca, capacity).unwrap())
    }

    fn name(host: &str) -> Host {
        Host::Name(host.to_string())
    }

    struct Outcome {
        alpn: Option<Vec<u8>>,
        chain: Vec<CertificateDer<'static>>,
    }

    /// A TLS handshake over an in-memory pipe between a client that trusts only the CA
    /// and a server using the minted config; then one byte each way.
    async fn handshake(
        minter: &Minter,
        host: &Host,
        server_name: &str,
        alpn: &[&[u8]],
    ) -> Result<Outcome, String> {
        let mut roots = RootCertStore::empty();
        roots.add(minter.ca().cert_der.clone()).unwrap();
        let mut client =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let acceptor = tokio_rustls::TlsAcceptor::from(minter.server_config(host).unwrap());
        let server_name = ServerName::try_from(server_name.to_string()).unwrap();

        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let server = async move {
            let mut tls = acceptor
                .accept(server_io)
                .await
                .map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
            tls.write_all(&byte).await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        };
        let client = async move {
            let mut tls = connector
                .connect(server_name, client_io)
                .await
                .map_err(|e| e.to_string())?;
            tls.write_all(b"x").await.map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
            assert_eq!(&byte, b"x");
            let (_, conn) = tls.get_ref();
            Ok::<_, String>(Outcome {
                alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                chain: conn.peer_certificates().unwrap_or_default().to_vec(),
            })
        };
        let (server, client) = tokio::join!(server, client);
        let outcome = client?;
        server.map_err(|e| format!("server: {e}"))?;
        Ok(outcome)
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn minter_is_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Minter>();
    }

    #[test]
    fn zero_capacity_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = ca::init(dir.path(), false).unwrap();
        let ca = Ca::load(&files.cert, &files.key).unwrap();
        assert!(matches!(Minter::new(ca, 0), Err(MintError::ZeroCapacity)));
    }

    #[tokio::test]
    async fn handshake_for_a_name_trusting_only_the_ca() {
        let (_dir, minter) = minter(16);
        let host = name("www.ning.com");
        let out = handshake(&minter, &host, "www.ning.com", &[b"h2", b"http/1.1"])
            .await
            .unwrap();
        assert_eq!(out.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(out.chain.len(), 2);
        assert_eq!(out.chain[1], minter.ca().cert_der);

        // Without ALPN the handshake still works and nothing is negotiated.
        let out = handshake(&minter, &host, "www.ning.com", &[])
            .await
            .unwrap();
        assert_eq!(out.alpn, None);
    }

    #[tokio::test]
    async fn handshake_fails_for_another_name() {
        let (_dir, minter) = minter(16);
        let host = name("www.ning.com");
        let err = handshake(&minter, &host, "ning.com", &[b"http/1.1"])
            .await
            .err()
            .unwrap();
        assert!(err.contains("not valid for name"), "{err}");
        let err = handshake(&minter, &host, "www.example.com", &[b"http/1.1"])
            .await
            .err()
            .unwrap();
        assert!(err.contains("not valid for name"), "{err}");
    }

    #[tokio::test]
    async fn client_offering_only_h2_is_refused() {
        let (_dir, minter) = minter(16);
        let host = name("www.ning.com");
        assert!(handshake(&minter, &host, "www.ning.com", &[b"h2"])
            .await
            .is_err());
    }

    #[tokio::test]
    async fn handshake_for_an_ip_host() {
        let (_dir, minter) = minter(16);
        let host = Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let out = handshake(&minter, &host, "127.0.0.1", &[b"http/1.1"])
            .await
            .unwrap();
        assert_eq!(out.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert!(handshake(&minter, &host, "127.0.0.2", &[b"http/1.1"])
            .await
            .is_err());
        assert!(handshake(&minter, &host, "localhost", &[b"http/1.1"])
            .await
            .is_err());

        let v6 = Host::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST));
        handshake(&minter, &v6, "::1", &[b"http/1.1"])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn another_ca_does_not_trust_the_leaf() {
        let (_other_dir, other) = minter(1);
        let (_dir, minter) = minter(4);
        // A client trusting `other`'s CA meets a leaf from `minter`.
        let mut roots = RootCertStore::empty();
        roots.add(other.ca().cert_der.clone()).unwrap();
        let client =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let acceptor =
            tokio_rustls::TlsAcceptor::from(minter.server_config(&name("a.example")).unwrap());
        let (c, s) = tokio::io::duplex(64 * 1024);
        let sn = ServerName::try_from("a.example").unwrap();
        let (server, client) = tokio::join!(acceptor.accept(s), connector.connect(sn, c));
        assert!(client.is_err());
        assert!(server.is_err());
    }

    #[tokio::test]
    async fn leaf_fields() {
        let (_dir, minter) = minter(4);
        let host = name("www.ning.com");
        let out = handshake(&minter, &host, "www.ning.com", &[])
            .await
            .unwrap();
        let leaf: &[u8] = &out.chain[0];

        let fields = ca::der::inspect(leaf).unwrap();
        assert_eq!(fields.common_name.as_deref(), Some("www.ning.com"));
        // EKU serverAuth (1.3.6.1.5.5.7.3.1).
        assert!(contains(
            leaf,
            &[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01]
        ));
        // basicConstraints (critical) present and empty: cA FALSE.
        assert!(contains(
            leaf,
            &[0x55, 0x1d, 0x13, 0x01, 0x01, 0xff, 0x04, 0x02, 0x30, 0x00]
        ));
        // keyUsage (critical) digitalSignature only.
        assert!(contains(
            leaf,
            &[0x55, 0x1d, 0x0f, 0x01, 0x01, 0xff, 0x04, 0x04, 0x03, 0x02, 0x07, 0x80]
        ));

        let ((t1, nb), (t2, na)) = ca::der::validity(leaf).unwrap();
        let parse = |tag: u8, text: &[u8]| {
            assert_eq!(tag, 0x17, "UTCTime expected");
            let t = std::str::from_utf8(text).unwrap();
            let t = format!(
                "20{}-{}-{}T{}:{}:{}Z",
                &t[0..2],
                &t[2..4],
                &t[4..6],
                &t[6..8],
                &t[8..10],
                &t[10..12]
            );
            t.parse::<jiff::Timestamp>().unwrap().as_second()
        };
        let now = jiff::Timestamp::now().as_second();
        let before = parse(t1, nb);
        let after = parse(t2, na);
        assert!(
            (now - 300 - 10..=now - 300 + 10).contains(&before),
            "{before} vs {now}"
        );
        let week = 7 * 24 * 3600;
        assert!(
            (now + week - 10..=now + week + 10).contains(&after),
            "{after} vs {now}"
        );

        // Two leaves never share a serial number even though they share a key.
        let other = handshake(&minter, &name("other.example"), "other.example", &[])
            .await
            .unwrap();
        assert_ne!(serial(leaf), serial(&other.chain[0]));
    }

    /// The serial number's bytes (second element of TBSCertificate after the version).
    fn serial(cert: &[u8]) -> Vec<u8> {
        // 30 len(cert) 30 len(tbs) a0 03 02 01 02 02 len serial...
        let pos = cert
            .windows(5)
            .position(|w| w == [0xa0, 0x03, 0x02, 0x01, 0x02])
            .unwrap();
        let at = pos + 5;
        assert_eq!(cert[at], 0x02);
        let len = usize::from(cert[at + 1]);
        cert[at + 2..at + 2 + len].to_vec()
    }

    #[test]
    fn cache_returns_the_same_config_and_stays_bounded() {
        let (_dir, minter) = minter(3);
        let a = minter.server_config(&name("a.example")).unwrap();
        let again = minter.server_config(&name("a.example")).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        assert_eq!(minter.cached(), 1);

        for i in 0..10 {
            minter
                .server_config(&name(&format!("h{i}.example")))
                .unwrap();
            assert!(minter.cached() <= 3);
        }
        assert_eq!(minter.cached(), 3);
        // "a.example" was evicted: a new config is minted.
        let later = minter.server_config(&name("a.example")).unwrap();
        assert!(!Arc::ptr_eq(&a, &later));
        assert_eq!(minter.cached(), 3);
    }

    #[test]
    fn stale_entries_are_minted_again() {
        let (_dir, mut minter) = minter(3);
        let host = name("a.example");
        let first = minter.server_config(&host).unwrap();
        minter.max_age = Duration::ZERO;
        let second = minter.server_config(&host).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(minter.cached(), 1);
    }

    #[test]
    fn concurrent_callers_share_one_minter() {
        let (_dir, minter) = minter(64);
        let minter = Arc::new(minter);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let minter = Arc::clone(&minter);
                std::thread::spawn(move || {
                    for i in 0..8 {
                        minter
                            .server_config(&name(&format!("h{}.example", (t + i) % 10)))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(minter.cached(), 10);
    }
}
