//! The interception CA: creating its two files and loading them back.
//!
//! `ca.pem` is the certificate that browsers import (mode 0644); `ca-key.pem` is its
//! PKCS#8 private key (mode 0600, created with that mode so it is never readable by others,
//! not even for a moment).

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// File name of the CA certificate inside the directory given to [`init`].
pub const CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside the directory given to [`init`].
pub const KEY_FILE: &str = "ca-key.pem";

const CERT_MODE: u32 = 0o644;
const KEY_MODE: u32 = 0o600;

/// Where a CA's certificate and key were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the CA could not be created or loaded. Every message names the file and says what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// `ca init` (or `create_if_missing`) would overwrite existing files.
    #[error(
        "{} already exist{}; refusing to overwrite a CA that browsers may already trust \
         (use --force to replace them)",
        list(paths),
        if paths.len() == 1 { "s" } else { "" }
    )]
    Exists { paths: Vec<PathBuf> },
    /// Reading, writing or creating a file or directory failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Key generation or signing failed (not expected in practice).
    #[error("could not generate the interception CA: {reason}")]
    Generate { reason: String },
    /// The certificate file is not a usable PEM certificate.
    #[error(
        "could not read the CA certificate {}: {reason}; expected a PEM file with a \
         `BEGIN CERTIFICATE` block, such as `signpost ca init` writes",
        path.display()
    )]
    ParseCert { path: PathBuf, reason: String },
    /// The key file is not a usable PEM private key.
    #[error(
        "could not read the CA private key {}: {reason}; expected an unencrypted PKCS#8 \
         PEM key (`BEGIN PRIVATE KEY`: ECDSA P-256/P-384 or Ed25519), such as \
         `signpost ca init` writes",
        path.display()
    )]
    ParseKey { path: PathBuf, reason: String },
    /// The key does not belong to the certificate.
    #[error(
        "the CA private key {} does not belong to the certificate {}; point `[tls] ca_key` \
         at the key the certificate was made with, or create a new pair with \
         `signpost ca init --force`",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// One or both CA files do not exist.
    #[error(
        "the interception CA is missing ({} not found); run `signpost ca init` to create \
         it, or set `[tls] create_if_missing = true`",
        list(paths)
    )]
    Missing { paths: Vec<PathBuf> },
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CaError + 'a {
    move |source| CaError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates a new CA in `dir` as `ca.pem` (mode 0644) and `ca-key.pem` (mode 0600).
///
/// Creates `dir` if it is missing. Refuses if either file exists, unless `force`.
pub fn init(dir: &Path, force: bool) -> Result<CaFiles, CaError> {
    fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
    create(&dir.join(CERT_FILE), &dir.join(KEY_FILE), force)
}

/// Creates a new CA at explicit paths (for `[tls] ca_cert` / `ca_key` with
/// `create_if_missing`). Parent directories are created if missing. Refuses if either
/// file exists, unless `force`.
pub fn create(cert: &Path, key: &Path, force: bool) -> Result<CaFiles, CaError> {
    if !force {
        let mut existing = Vec::new();
        for path in [cert, key] {
            if exists(path)? {
                existing.push(path.to_path_buf());
            }
        }
        if !existing.is_empty() {
            return Err(CaError::Exists { paths: existing });
        }
    }

    // Everything that can fail for reasons other than the file system happens first.
    let (cert_pem, key_pem) = generate()?;

    for path in [cert, key] {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io_error("create directory", parent))?;
        }
        if force {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("remove", path)(e)),
            }
        }
    }

    // The key first: a certificate without its key is useless, and a key left behind by a
    // failed certificate write is removed again below.
    write_new(key, key_pem.as_bytes(), KEY_MODE)?;
    if let Err(e) = write_new(cert, cert_pem.as_bytes(), CERT_MODE) {
        let _ = fs::remove_file(key);
        return Err(e);
    }
    Ok(CaFiles {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    })
}

fn exists(path: &Path) -> Result<bool, CaError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("inspect", path)(e)),
    }
}

/// Writes a file that must not exist yet, created with `mode` (the umask may only narrow
/// it; the certificate is widened back to exactly 0644 afterwards).
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), CaError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                CaError::Exists {
                    paths: vec![path.to_path_buf()],
                }
            } else {
                io_error("create", path)(source)
            }
        })?;
    file.write_all(contents).map_err(io_error("write", path))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_error("set permissions on", path))?;
    file.sync_all().map_err(io_error("write", path))?;
    Ok(())
}

/// A fresh self-signed CA: (certificate PEM, PKCS#8 key PEM).
fn generate() -> Result<(String, String), CaError> {
    let failed = |reason: String| CaError::Generate { reason };
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| failed(format!("key generation: {e}")))?;

    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, default_common_name());
    dn.push(DnType::OrganizationName, "Signpost");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial().map_err(failed)?);
    let start = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24);
    let end = start
        .to_zoned(jiff::tz::TimeZone::UTC)
        .checked_add(jiff::Span::new().years(10))
        .map_err(|e| failed(format!("validity period: {e}")))?
        .timestamp();
    set_validity(&mut params, start, end).map_err(failed)?;

    let cert = params
        .self_signed(&key)
        .map_err(|e| failed(format!("self-signing: {e}")))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// "Signpost interception CA (<hostname>)".
fn default_common_name() -> String {
    let host = gethostname::gethostname();
    let host = host.to_string_lossy();
    let host = host.trim();
    if host.is_empty() {
        "Signpost interception CA".to_string()
    } else {
        format!("Signpost interception CA ({host})")
    }
}

/// Sets `not_before`/`not_after` from timestamps (rcgen's own time type is not nameable
/// from here, so this counts seconds from its epoch value).
pub(super) fn set_validity(
    params: &mut CertificateParams,
    from: jiff::Timestamp,
    until: jiff::Timestamp,
) -> Result<(), String> {
    let since_epoch = |t: jiff::Timestamp| {
        u64::try_from(t.as_second())
            .map(Duration::from_secs)
            .map_err(|_| format!("the clock reads {t}, before 1970"))
    };
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + since_epoch(from)?;
    params.not_after = epoch + since_epoch(until)?;
    Ok(())
}

/// A random positive 16-byte serial number. Leaves share one key, so rcgen's default
/// (a hash of the public key) would give every leaf the same serial, which browsers reject.
pub(super) fn random_serial() -> Result<SerialNumber, String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system random number generator failed".to_string())?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // non-zero leading byte: always 16 bytes, always positive
    Ok(SerialNumber::from_slice(&bytes))
}

/// Why a PEM file gave no `label` item, in words.
fn pem_reason(e: rustls::pki_types::pem::Error, label: &str) -> String {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!("no `BEGIN {label}` block found"),
        e => e.to_string(),
    }
}

/// A loaded interception CA, able to sign leaf certificates.
pub struct Ca {
    /// The certificate alone, re-encoded as PEM (what the trust page offers for download).
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    common_name: String,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("common_name", &self.common_name)
            .field("key", &"[elided]")
            .finish()
    }
}

impl Ca {
    /// Loads the certificate and its private key. `Missing` if either file is absent.
    /// Warns if the key file is readable by group or others.
    pub fn load(cert: &Path, key: &Path) -> Result<Ca, CaError> {
        let missing: Vec<PathBuf> = [cert, key]
            .into_iter()
            .filter(|p| matches!(fs::metadata(p), Err(e) if e.kind() == io::ErrorKind::NotFound))
            .map(Path::to_path_buf)
            .collect();
        if !missing.is_empty() {
            return Err(CaError::Missing { paths: missing });
        }

        let cert_text = fs::read(cert).map_err(io_error("read", cert))?;
        let key_text = fs::read(key).map_err(io_error("read", key))?;
        if let Ok(meta) = fs::metadata(key) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %key.display(),
                    mode = format_args!("{:o}", mode & 0o777),
                    "the CA private key is readable by other users; run `chmod 600` on it"
                );
            }
        }

        let parse_cert = |reason: String| CaError::ParseCert {
            path: cert.to_path_buf(),
            reason,
        };
        let cert_der = CertificateDer::from_pem_slice(&cert_text)
            .map_err(|e| parse_cert(pem_reason(e, "CERTIFICATE")))?;
        let fields = der::inspect(&cert_der)
            .ok_or_else(|| parse_cert("the certificate is not valid DER X.509".to_string()))?;

        let parse_key = |reason: String| CaError::ParseKey {
            path: key.to_path_buf(),
            reason,
        };
        let key_der = PrivateKeyDer::from_pem_slice(&key_text)
            .map_err(|e| parse_key(pem_reason(e, "PRIVATE KEY")))?;
        let key_pair = KeyPair::try_from(&key_der).map_err(|e| parse_key(e.to_string()))?;
        if key_pair.subject_public_key_info() != fields.spki {
            return Err(CaError::KeyMismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            });
        }
        let common_name = fields
            .common_name
            .unwrap_or_else(|| "unnamed interception CA".to_string());
        let issuer =
            Issuer::from_ca_cert_der(&cert_der, key_pair).map_err(|e| parse_cert(e.to_string()))?;

        Ok(Ca {
            cert_pem: to_pem(&cert_der),
            cert_der,
            issuer,
            common_name,
        })
    }

    /// The subject common name, for logs and the trust page.
    pub fn common_name(&self) -> String {
        self.common_name.clone()
    }

    pub(super) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

fn to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Just enough DER to read a certificate's subject common name and public key.
pub(super) mod der {
    pub(in crate::tls) struct Fields<'a> {
        pub(in crate::tls) common_name: Option<String>,
        /// The whole SubjectPublicKeyInfo encoding.
        pub(in crate::tls) spki: &'a [u8],
    }

    /// One DER element.
    struct Tlv<'a> {
        tag: u8,
        contents: &'a [u8],
        /// Header and contents together.
        whole: &'a [u8],
        /// What follows the element.
        rest: &'a [u8],
    }

    /// Reads one element from the front of `input`.
    fn tlv(input: &[u8]) -> Option<Tlv<'_>> {
        let (&tag, after_tag) = input.split_first()?;
        let (&first, mut rest) = after_tag.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (bytes, after) = rest.split_at(n);
            rest = after;
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        if rest.len() < len {
            return None;
        }
        let header = input.len() - rest.len();
        let (contents, rest) = rest.split_at(len);
        Some(Tlv {
            tag,
            contents,
            whole: &input[..header + len],
            rest,
        })
    }

    /// Reads one element that must carry `tag`.
    fn expect(input: &[u8], tag: u8) -> Option<Tlv<'_>> {
        tlv(input).filter(|t| t.tag == tag)
    }

    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const INTEGER: u8 = 0x02;
    const VERSION: u8 = 0xa0;
    const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];

    /// The TBSCertificate fields from `validity` on.
    fn from_validity(cert: &[u8]) -> Option<&[u8]> {
        let cert = expect(cert, SEQUENCE)?.contents;
        let mut tbs = expect(cert, SEQUENCE)?.contents;
        if let Some(version) = expect(tbs, VERSION) {
            tbs = version.rest;
        }
        let tbs = expect(tbs, INTEGER)?.rest; // serial
        let tbs = expect(tbs, SEQUENCE)?.rest; // signature algorithm
        let tbs = expect(tbs, SEQUENCE)?.rest; // issuer
        Some(tbs)
    }

    pub(in crate::tls) fn inspect(cert: &[u8]) -> Option<Fields<'_>> {
        let tbs = expect(from_validity(cert)?, SEQUENCE)?.rest;
        let subject = expect(tbs, SEQUENCE)?;
        let spki = expect(subject.rest, SEQUENCE)?.whole;
        Some(Fields {
            common_name: common_name(subject.contents),
            spki,
        })
    }

    /// A raw certificate time: (tag, text).
    #[cfg(test)]
    pub(in crate::tls) type Time<'a> = (u8, &'a [u8]);

    /// (notBefore, notAfter) as raw time strings.
    #[cfg(test)]
    pub(in crate::tls) fn validity(cert: &[u8]) -> Option<(Time<'_>, Time<'_>)> {
        let validity = expect(from_validity(cert)?, SEQUENCE)?.contents;
        let before = tlv(validity)?;
        let after = tlv(before.rest)?;
        Some(((before.tag, before.contents), (after.tag, after.contents)))
    }

    fn common_name(mut subject: &[u8]) -> Option<String> {
        while !subject.is_empty() {
            let set = expect(subject, SET)?;
            subject = set.rest;
            let mut rdn = set.contents;
            while !rdn.is_empty() {
                let attr = expect(rdn, SEQUENCE)?;
                rdn = attr.rest;
                let oid = expect(attr.contents, OID)?;
                if oid.contents == COMMON_NAME {
                    let value = tlv(oid.rest)?;
                    return decode_string(value.tag, value.contents);
                }
            }
        }
        None
    }

    fn decode_string(tag: u8, bytes: &[u8]) -> Option<String> {
        match tag {
            // UTF8String, PrintableString, TeletexString, IA5String
            0x0c | 0x13 | 0x14 | 0x16 => Some(String::from_utf8_lossy(bytes).into_owned()),
            // BMPString (UTF-16BE)
            0x1e => {
                let units: Vec<u16> = bytes
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                Some(String::from_utf16_lossy(&units))
            }
            // UniversalString (UTF-32BE)
            0x1c => Some(
                bytes
                    .chunks_exact(4)
                    .map(|c| {
                        char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                            .unwrap_or(char::REPLACEMENT_CHARACTER)
                    })
                    .collect(),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_writes_cert_0644_and_key_0600() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("nested").join("ca");
        let files = init(&ca_dir, false).unwrap();
        assert_eq!(files.cert, ca_dir.join("ca.pem"));
        assert_eq!(files.key, ca_dir.join("ca-key.pem"));
        assert_eq!(mode(&files.cert), 0o644);
        assert_eq!(mode(&files.key), 0o600);
        let cert = fs::read_to_string(&files.cert).unwrap();
        let key = fs::read_to_string(&files.key).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn second_init_refuses_without_force() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), false).unwrap();
        let err = init(dir.path(), false).unwrap_err();
        assert!(matches!(err, CaError::Exists { ref paths } if paths.len() == 2));
        assert!(
            err.to_string().contains("use --force to replace them"),
            "{err}"
        );
    }

    #[test]
    fn refuses_when_only_the_key_exists() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), "old").unwrap();
        let err = init(dir.path(), false).unwrap_err();
        assert!(
            err.to_string().contains("ca-key.pem already exists"),
            "{err}"
        );
        assert!(!dir.path().join(CERT_FILE).exists());
    }

    #[test]
    fn force_replaces_with_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let files = init(dir.path(), false).unwrap();
        let old_key = fs::read_to_string(&files.key).unwrap();
        let old_cert = fs::read_to_string(&files.cert).unwrap();
        // A world-readable leftover must not keep its mode.
        fs::set_permissions(&files.key, fs::Permissions::from_mode(0o644)).unwrap();
        let files = init(dir.path(), true).unwrap();
        assert_ne!(fs::read_to_string(&files.key).unwrap(), old_key);
        assert_ne!(fs::read_to_string(&files.cert).unwrap(), old_cert);
        assert_eq!(mode(&files.key), 0o600);
        assert_eq!(mode(&files.cert), 0o644);
        Ca::load(&files.cert, &files.key).unwrap();
    }

    #[test]
    fn create_at_explicit_paths() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("certs").join("interception.crt");
        let key = dir.path().join("private").join("interception.key");
        let files = create(&cert, &key, false).unwrap();
        assert_eq!(
            files,
            CaFiles {
                cert: cert.clone(),
                key: key.clone()
            }
        );
        assert_eq!(mode(&key), 0o600);
        Ca::load(&cert, &key).unwrap();
    }

    #[test]
    fn load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let files = init(dir.path(), false).unwrap();
        let ca = Ca::load(&files.cert, &files.key).unwrap();
        let name = ca.common_name();
        assert!(name.contains("Signpost"), "{name}");
        assert!(name.starts_with("Signpost interception CA"), "{name}");
        assert_eq!(
            ca.cert_pem,
            fs::read_to_string(&files.cert)
                .unwrap()
                .replace("\r\n", "\n")
        );
        let reparsed = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
        assert_eq!(reparsed, ca.cert_der);
        assert!(!format!("{ca:?}").contains("PRIVATE"));
    }

    /// Parses a DER UTCTime or GeneralizedTime as rcgen writes them (UTC, seconds).
    fn der_time(tag: u8, text: &[u8]) -> i64 {
        let text = std::str::from_utf8(text).unwrap().trim_end_matches('Z');
        let full = match tag {
            0x17 => format!(
                "{}{text}",
                if text[..2].parse::<u8>().unwrap() < 50 {
                    "20"
                } else {
                    "19"
                }
            ),
            0x18 => text.to_string(),
            _ => panic!("unexpected time tag {tag:#x}"),
        };
        let t = format!(
            "{}-{}-{}T{}:{}:{}Z",
            &full[0..4],
            &full[4..6],
            &full[6..8],
            &full[8..10],
            &full[10..12],
            &full[12..14]
        );
        t.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    #[test]
    fn ca_is_a_constrained_ecdsa_ca_valid_ten_years() {
        let dir = tempfile::tempdir().unwrap();
        let files = init(dir.path(), false).unwrap();
        let ca = Ca::load(&files.cert, &files.key).unwrap();
        let der: &[u8] = &ca.cert_der;
        // basicConstraints: cA TRUE, pathLenConstraint 0.
        let bc = [0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x00];
        assert!(der.windows(bc.len()).any(|w| w == bc));
        // O=Signpost
        let org = [
            0x55, 0x04, 0x0a, 0x0c, 0x08, b'S', b'i', b'g', b'n', b'p', b'o', b's', b't',
        ];
        assert!(der.windows(org.len()).any(|w| w == org));
        assert_eq!(
            ca.issuer().key().algorithm(),
            &rcgen::PKCS_ECDSA_P256_SHA256
        );

        let ((t1, nb), (t2, na)) = der::validity(der).unwrap();
        let (before, after) = (der_time(t1, nb), der_time(t2, na));
        let now = jiff::Timestamp::now().as_second();
        assert!(
            (now - 86_400 - 60..=now - 86_400 + 60).contains(&before),
            "{before} {now}"
        );
        let years = (after - before) as f64 / (365.2425 * 86_400.0);
        assert!((9.99..10.01).contains(&years), "{years}");
    }

    #[test]
    fn load_missing_files_says_how_to_create_them() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("ca.pem");
        let key = dir.path().join("ca-key.pem");
        let err = Ca::load(&cert, &key).unwrap_err();
        assert!(matches!(err, CaError::Missing { ref paths } if paths.len() == 2));
        let msg = err.to_string();
        assert!(msg.contains("signpost ca init"), "{msg}");
        assert!(msg.contains("create_if_missing = true"), "{msg}");
        assert!(msg.contains(&cert.display().to_string()), "{msg}");

        // Only the key missing.
        init(dir.path(), false).unwrap();
        fs::remove_file(&key).unwrap();
        let err = Ca::load(&cert, &key).unwrap_err();
        assert!(matches!(err, CaError::Missing { ref paths } if paths == &vec![key.clone()]));
    }

    #[test]
    fn garbage_cert_is_a_parse_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let files = init(dir.path(), false).unwrap();
        fs::write(&files.cert, "this is not a certificate\n").unwrap();
        let err = Ca::load(&files.cert, &files.key).unwrap_err();
        assert!(matches!(err, CaError::ParseCert { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&files.cert.display().to_string()),
            "{err}"
        );

        fs::write(
            &files.cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = Ca::load(&files.cert, &files.key).unwrap_err();
        assert!(matches!(err, CaError::ParseCert { .. }), "{err:?}");
    }

    #[test]
    fn garbage_key_is_a_parse_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let files = init(dir.path(), false).unwrap();
        fs::write(
            &files.key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = Ca::load(&files.cert, &files.key).unwrap_err();
        assert!(matches!(err, CaError::ParseKey { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&files.key.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn key_from_another_ca_is_refused() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let a = init(one.path(), false).unwrap();
        let b = init(two.path(), false).unwrap();
        let err = Ca::load(&a.cert, &b.key).unwrap_err();
        assert!(matches!(err, CaError::KeyMismatch { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&b.key.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn serials_are_random_and_positive() {
        let a = random_serial().unwrap().to_bytes();
        let b = random_serial().unwrap().to_bytes();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(a[0] & 0x80 == 0 && a[0] != 0);
    }
}
