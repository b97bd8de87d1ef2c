//! Time to the first byte of the interstitial over HTTPS: CONNECT, a TLS handshake with a
//! leaf minted by the Signpost CA (cached after the first), `GET /`, first response byte.
//! Also the same for a tunnelled (acknowledged-free, allowed) plain HTTP GET, as a yardstick.
//!
//! `cargo bench --bench interstitial`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use rustls::pki_types::{CertificateDer, ServerName};
use signpost::config::Config;
use signpost::proxy::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

struct Bench {
    proxy: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    _state: tempfile::TempDir,
}

async fn setup() -> Bench {
    let state = tempfile::tempdir().expect("tempdir");
    let s = state.path().display();
    let text = format!(
        r#"
[proxy]
listen = "127.0.0.1:0"
[upstream]
hosts = {{ "www.ning.com" = "127.0.0.1" }}
[tls]
ca_cert = "{s}/ca.pem"
ca_key = "{s}/ca-key.pem"
create_if_missing = true
[coach]
secret_file = "{s}/coach-secret"
[journal]
path = "{s}/journal.db"
[admin]
enabled = false
[[category]]
name = "social"
hosts = ["ning.com"]
guidance = "Think before you post."
[[rule]]
name = "coach"
category = "social"
action = "coach"
"#
    );
    let config = Config::parse(&state.path().join("signpost.toml"), &text).expect("config");
    let server = Server::bind(&config).await.expect("bind");
    let proxy = server.local_addr().expect("addr");
    tokio::spawn(server.run(CancellationToken::new()));
    let pem = std::fs::read_to_string(state.path().join("ca.pem")).expect("ca");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("pem");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(der)).expect("root");
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Bench {
        proxy,
        tls: Arc::new(tls),
        _state: state,
    }
}

/// One person opening a coached HTTPS site, up to the first byte of the page.
async fn first_interstitial_byte(b: &Bench) {
    let mut s = TcpStream::connect(b.proxy).await.expect("connect");
    s.write_all(b"CONNECT www.ning.com:443 HTTP/1.1\r\nHost: www.ning.com:443\r\n\r\n")
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.expect("head");
        head.push(byte[0]);
    }
    let name = ServerName::try_from("www.ning.com").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(b.tls.clone())
        .connect(name, s)
        .await
        .expect("handshake");
    tls.write_all(
        b"GET / HTTP/1.1\r\nHost: www.ning.com\r\nSec-Fetch-Mode: navigate\r\nAccept: text/html\r\n\r\n",
    )
    .await
    .expect("request");
    tls.read_exact(&mut byte).await.expect("first byte");
    assert_eq!(byte[0], b'H');
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let b = rt.block_on(setup());
    let mut group = c.benchmark_group("interstitial");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("https_first_byte", |bencher| {
        bencher.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    first_interstitial_byte(&b).await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
