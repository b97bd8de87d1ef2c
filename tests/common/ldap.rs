//! A throw-away OpenLDAP `slapd` for the LDAP tests, configured and started by the test
//! itself: a cn=config directory made with `slapadd -n0` from
//! `tests/fixtures/ldap/config.ldif`, the entries of `tests/fixtures/ldap/base.ldif`
//! (dc=example,dc=org), a test CA and server certificate made with rcgen, and
//! `slapd -d 0` in the foreground on two free loopback ports (ldap:// and ldaps://),
//! killed when the `Slapd` is dropped.
//!
//! Debian's `slapd` and `ldap-utils` packages provide the programs; `scripts/test.sh`
//! installs them.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The fixture directory: base.ldif, config.ldif.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldap")
}

/// Suffix of the test directory.
pub const BASE: &str = "dc=example,dc=org";
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
pub const GROUPS: &str = "ou=groups,dc=example,dc=org";
pub const SERVICE_DN: &str = "cn=signpost,dc=example,dc=org";
pub const SERVICE_PASSWORD: &str = "service-pw";

/// A running slapd; killed (and its folder removed) on drop.
pub struct Slapd {
    /// `ldap://127.0.0.1:PORT` (StartTLS is offered on it).
    pub url: String,
    /// `ldaps://127.0.0.1:PORT`.
    pub ldaps_url: Option<String>,
    /// The test CA that signed the server's certificate (for 127.0.0.1 and localhost).
    pub ca_pem: PathBuf,
    /// Where its config, database, certificates and log are.
    pub dir: PathBuf,
    child: Child,
    _temp: tempfile::TempDir,
}

impl Slapd {
    /// Configures and starts a slapd; panics (naming scripts/test.sh when the programs
    /// are missing) if it cannot.
    pub fn start() -> Slapd {
        let slapd = program("slapd");
        let slapadd = program("slapadd");
        let temp = tempfile::Builder::new()
            .prefix("signpost-slapd-")
            .tempdir()
            .expect("a temporary folder for slapd");
        let dir = temp.path().to_path_buf();

        // TLS: a test CA and a server certificate it signs.
        let ca_pem = dir.join("ca.pem");
        let (ca_cert_pem, server_pem, server_key_pem) = certificates();
        std::fs::write(&ca_pem, ca_cert_pem).unwrap();
        std::fs::write(dir.join("server.pem"), server_pem).unwrap();
        std::fs::write(dir.join("server-key.pem"), server_key_pem).unwrap();

        // cn=config, then the entries.
        let config_dir = dir.join("config");
        std::fs::create_dir(&config_dir).unwrap();
        std::fs::create_dir(dir.join("data")).unwrap();
        let template = std::fs::read_to_string(fixtures().join("config.ldif"))
            .expect("tests/fixtures/ldap/config.ldif");
        let dir_str = dir.to_str().expect("a UTF-8 temporary path");
        std::fs::write(dir.join("config.ldif"), template.replace("@DIR@", dir_str)).unwrap();
        run(Command::new(&slapadd)
            .arg("-n0")
            .arg("-F")
            .arg(&config_dir)
            .arg("-l")
            .arg(dir.join("config.ldif")));
        run(Command::new(&slapadd)
            .arg("-n1")
            .arg("-F")
            .arg(&config_dir)
            .arg("-l")
            .arg(fixtures().join("base.ldif")));

        // Start on free ports; a port taken between choosing and binding means another try.
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let (port, tls_port) = (free_port(), free_port());
            if port == tls_port {
                continue;
            }
            let url = format!("ldap://127.0.0.1:{port}");
            let ldaps_url = format!("ldaps://127.0.0.1:{tls_port}");
            let log_path = dir.join("slapd.log");
            let log = std::fs::File::create(&log_path).unwrap();
            // `-d 0`: stay in the foreground (so that we own the process) and log nothing
            // but errors; `-s 0` keeps syslog quiet.
            let mut child = Command::new(&slapd)
                .arg("-d")
                .arg("0")
                .arg("-s")
                .arg("0")
                .arg("-h")
                .arg(format!("{url}/ {ldaps_url}/"))
                .arg("-F")
                .arg(&config_dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", slapd.display()));
            if wait_listening(&mut child, &[port, tls_port]) {
                return Slapd {
                    url,
                    ldaps_url: Some(ldaps_url),
                    ca_pem,
                    dir,
                    child,
                    _temp: temp,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("slapd did not start; its last log:\n{last_log}");
    }

    /// The DN of a person in ou=people.
    pub fn user_dn(uid: &str) -> String {
        format!("uid={uid},{PEOPLE}")
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PEM CA certificate that signed nothing the test slapd uses (to be wrongly trusted).
pub fn unrelated_ca_pem(dir: &Path) -> PathBuf {
    let (ca, _, _) = certificates();
    let path = dir.join("unrelated-ca.pem");
    std::fs::write(&path, ca).unwrap();
    path
}

/// A fresh CA (PEM) and a server certificate and key (PEM) it signs for 127.0.0.1 and
/// localhost.
fn certificates() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Signpost LDAP test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// The path of an OpenLDAP program (they live in /usr/sbin, often not on a user's PATH).
fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: the LDAP tests start a real OpenLDAP server. \
                 Run scripts/test.sh (it installs Debian's slapd and ldap-utils), or \
                 apt-get install slapd ldap-utils"
            )
        })
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (at most 10 s) until slapd accepts connections on every port; false if it exits
/// first or never does.
fn wait_listening(child: &mut Child, ports: &[u16]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let up = ports.iter().all(|p| {
            let addr = SocketAddr::from(([127, 0, 0, 1], *p));
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        if up {
            // A port someone else took answers too, while slapd fails to bind it and
            // exits: make sure it is still running.
            std::thread::sleep(Duration::from_millis(50));
            return matches!(child.try_wait(), Ok(None));
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The log slapd wrote so far (for failure messages).
pub fn log(slapd: &Slapd) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(slapd.dir.join("slapd.log")) {
        let _ = f.read_to_string(&mut s);
    }
    s
}
