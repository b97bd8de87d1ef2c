//! Real servers on 127.0.0.1:0 for the integration tests: plain and TLS origins, and the
//! proxy itself, started in-process. Clients are real sockets.
#![allow(dead_code)]

pub mod browser;
pub mod ldap;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use signpost::config::{Config, Listen};
use signpost::proxy::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

pub type TestBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// What the origin saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub peer: SocketAddr,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A test origin server. Routes:
/// - `/hello`: a short text body;
/// - `/echo`: streams the request body back;
/// - `/gated`: sends one chunk, then waits for `release` before the rest;
/// - `/count-upload`: reports the first upload chunk on `upload_started`, answers with the total size;
/// - `/big?N`: N bytes, streamed in 64 KiB chunks;
/// - `/ws`: a WebSocket-style upgrade that echoes bytes;
/// - `/hang`: never answers.
#[derive(Clone)]
pub struct Origin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub release: Arc<Notify>,
    pub upload_started: Arc<tokio::sync::Mutex<mpsc::Receiver<u64>>>,
}

impl Origin {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A raw GET for `path` as a client sends it to a proxy: the absolute-form request
    /// line, `Host: <this origin>`, then `headers` (each line ending in CRLF) and the blank
    /// line.
    pub fn raw_get(&self, path: &str, headers: &str) -> String {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\n{headers}\r\n",
            self.url(path),
            self.addr
        )
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

struct OriginState {
    seen: Arc<Mutex<Vec<Seen>>>,
    release: Arc<Notify>,
    upload_tx: mpsc::Sender<u64>,
}

/// Starts a plain HTTP origin.
pub async fn origin() -> Origin {
    start_origin(None).await
}

/// Starts a TLS origin with a self-signed certificate for `localhost` and 127.0.0.1;
/// returns it and the certificate (DER) a client should trust.
pub async fn tls_origin() -> (Origin, rustls::pki_types::CertificateDer<'static>) {
    tls_origin_for(&["localhost", "127.0.0.1"]).await
}

/// A TLS origin whose self-signed certificate names `names` (DNS names or IP addresses).
pub async fn tls_origin_for(
    names: &[&str],
) -> (Origin, rustls::pki_types::CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    let der = cert.der().clone();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![der.clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let origin = start_origin(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await;
    (origin, der)
}

async fn start_origin(tls: Option<tokio_rustls::TlsAcceptor>) -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (upload_tx, upload_rx) = mpsc::channel(16);
    let origin = Origin {
        addr,
        seen: Arc::default(),
        release: Arc::new(Notify::new()),
        upload_started: Arc::new(tokio::sync::Mutex::new(upload_rx)),
    };
    let state = Arc::new(OriginState {
        seen: origin.seen.clone(),
        release: origin.release.clone(),
        upload_tx,
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let state = state.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| route(state.clone(), peer, req));
                let builder = http1::Builder::new();
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(stream).await {
                            let _ = builder
                                .serve_connection(TokioIo::new(s), svc)
                                .with_upgrades()
                                .await;
                        }
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), svc)
                            .with_upgrades()
                            .await;
                    }
                }
            });
        }
    });
    origin
}

fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).boxed()
}

async fn route(
    state: Arc<OriginState>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    state.seen.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        target: req.uri().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        peer,
    });
    let path = req.uri().path().to_string();
    let resp = match path.as_str() {
        "/" | "/hello" => {
            let mut r = Response::new(full("hello from origin"));
            r.headers_mut().insert(
                "connection",
                "keep-alive, x-origin-private".parse().unwrap(),
            );
            r.headers_mut()
                .insert("x-origin-private", "secret".parse().unwrap());
            r.headers_mut()
                .insert("keep-alive", "timeout=5".parse().unwrap());
            r
        }
        "/echo" => Response::new(req.into_body().map_err(|_| unreachable_err()).boxed()),
        "/gated" => {
            let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
            let release = state.release.clone();
            tokio::spawn(async move {
                let _ = tx.send_data(Bytes::from_static(b"first chunk;")).await;
                release.notified().await;
                let _ = tx.send_data(Bytes::from_static(b"second chunk")).await;
            });
            Response::new(body.boxed())
        }
        "/count-upload" => {
            let mut body = req.into_body();
            let mut total = 0u64;
            let mut reported = false;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Some(d) = frame.data_ref() {
                    total += d.len() as u64;
                    if !reported {
                        reported = true;
                        let _ = state.upload_tx.send(total).await;
                    }
                }
            }
            Response::new(full(total.to_string()))
        }
        "/big" => {
            let n: usize = req.uri().query().and_then(|q| q.parse().ok()).unwrap_or(0);
            let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(4);
            tokio::spawn(async move {
                let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                let mut left = n;
                while left > 0 {
                    let take = left.min(chunk.len());
                    if tx.send_data(chunk.slice(..take)).await.is_err() {
                        return;
                    }
                    left -= take;
                }
            });
            let mut r = Response::new(body.boxed());
            r.headers_mut()
                .insert("content-length", n.to_string().parse().unwrap());
            r
        }
        "/ws" => {
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(up) = on_upgrade.await {
                    let mut io = TokioIo::new(up);
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            });
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut()
                .insert("upgrade", "websocket".parse().unwrap());
            r.headers_mut()
                .insert("connection", "upgrade".parse().unwrap());
            r
        }
        "/hang" => std::future::pending::<Response<TestBody>>().await,
        _ => {
            let mut r = Response::new(full("not found"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    Ok(resp)
}

fn unreachable_err() -> Infallible {
    panic!("the test origin's echo body failed")
}

/// The proxy, running in-process on 127.0.0.1:0.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub stop: CancellationToken,
    pub done: tokio::task::JoinHandle<()>,
}

/// A config that listens on an ephemeral loopback port, with its state (token secret,
/// acknowledgements) in a fresh temporary folder; tests adjust the rest.
pub fn config() -> Config {
    let mut c = Config::default();
    c.proxy.listen = Listen("127.0.0.1:0".parse().unwrap());
    let state = state_dir();
    c.coach.secret_file = state.join("coach-secret");
    c.journal.path = state.join("journal.db");
    c
}

thread_local! {
    /// The temporary folders made on this thread. libtest runs each test on a thread of
    /// its own, so they are removed when the test ends, after its runtime (and so the
    /// proxy writing into them) has been dropped.
    static STATE_DIRS: std::cell::RefCell<Vec<tempfile::TempDir>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A temporary folder that lives as long as the test that asked for it.
pub fn state_dir() -> std::path::PathBuf {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    STATE_DIRS.with(|dirs| dirs.borrow_mut().push(dir));
    path
}

pub async fn proxy(config: Config) -> TestProxy {
    let server = Server::bind(&config).await.unwrap();
    let addr = server.local_addr().unwrap();
    let stop = CancellationToken::new();
    let done = tokio::spawn(server.run(stop.clone()));
    TestProxy { addr, stop, done }
}

/// An HTTP/1.1 client connection to the proxy.
pub async fn client(proxy: SocketAddr) -> hyper::client::conn::http1::SendRequest<TestBody> {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    send
}

pub fn get(url: &str) -> Request<TestBody> {
    Request::get(url).body(full(Bytes::new())).unwrap()
}

pub async fn body_text(resp: Response<Incoming>) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Sends raw bytes and reads until the proxy closes the connection (bounded).
pub async fn raw_exchange(proxy: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(request).await.unwrap();
    read_until_close(&mut s).await
}

/// Reads everything until EOF; fails the test if the peer does not close within 10 s.
pub async fn read_until_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    match read {
        Ok(_) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => panic!(
            "the proxy did not close the connection; got so far: {}",
            String::from_utf8_lossy(&out)
        ),
    }
}

/// Reads one response head (up to the blank line) from a raw stream.
pub async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte))
            .await
            .expect("response head within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "connection closed mid-head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads one response with a `Content-Length` body; returns the head and the body.
pub async fn read_response(s: &mut TcpStream) -> (String, String) {
    let head = read_head(s).await;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no Content-Length in {head}"));
    let mut body = vec![0u8; length];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut body))
        .await
        .expect("the body within 10 s")
        .expect("the whole body");
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// A loopback port with nothing listening on it.
pub async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Runs `signpost COMMAND -c CONFIG ARGS…` to its end; returns what it did.
pub fn signpost_command(
    command: &str,
    config: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args([command, "-c"])
        .arg(config)
        .args(args)
        .output()
        .expect("the signpost binary runs")
}

/// Runs `signpost COMMAND -c CONFIG ARGS…`, which must exit 0 (the test fails showing
/// both outputs otherwise); returns its standard output.
pub fn signpost_stdout(command: &str, config: &std::path::Path, args: &[&str]) -> String {
    let out = signpost_command(command, config, args);
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    assert!(
        out.status.success(),
        "signpost {command} {args:?}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A spawned `signpost` process that is killed if the test ends early (a panic), so that
/// no proxy outlives its test.
pub struct Running(pub Option<std::process::Child>);

impl Running {
    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, |c| c.id())
    }

    /// Waits for the process to exit by itself (after a signal the test sent).
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("still running");
        child.wait().unwrap()
    }

    /// Sends `signal` (e.g. "TERM", "HUP") with kill(1).
    pub fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} {}", self.id());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The real `signpost` binary running `run` on a config file, with its JSON log on stderr
/// read line by line.
pub struct Binary {
    pub process: Running,
    log: std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
}

impl Binary {
    /// Starts `signpost --log-format json run -c CONFIG` (with `--no-watch` unless `watch`)
    /// at log level info.
    pub fn run(config: &std::path::Path, watch: bool) -> Binary {
        use std::io::BufRead;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"));
        command.args(["--log-format", "json", "run"]);
        if !watch {
            command.arg("--no-watch");
        }
        let mut child = command
            .arg("-c")
            .arg(config)
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the signpost binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        Binary {
            process: Running(Some(child)),
            log: std::io::BufReader::new(stderr).lines(),
        }
    }

    /// Reads the log until a line whose message is `message`; returns that line.
    pub fn next_message(&mut self, message: &str) -> serde_json::Value {
        loop {
            let line = self
                .log
                .next()
                .unwrap_or_else(|| panic!("the log ended before {message:?}"))
                .expect("the log is readable");
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["fields"]["message"] == message {
                return v;
            }
        }
    }

    /// Reads the log until every one of `messages` ("… is listening", in any order) has
    /// named its address; returns the addresses in the order asked.
    pub fn listening<const N: usize>(&mut self, messages: [&str; N]) -> [SocketAddr; N] {
        let mut found: [Option<SocketAddr>; N] = [None; N];
        while found.iter().any(Option::is_none) {
            let line = self
                .log
                .next()
                .expect("the proxy logs where it listens before it exits")
                .expect("the log is readable");
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if let Some(i) = messages.iter().position(|m| v["fields"]["message"] == *m) {
                let addr = v["fields"]["addr"].as_str().and_then(|a| a.parse().ok());
                found[i] = Some(addr.unwrap_or_else(|| panic!("no address in {line}")));
            }
        }
        found.map(|a| a.expect("found above"))
    }

    /// Sends `signal` (e.g. "TERM", "HUP") with kill(1).
    pub fn signal(&self, signal: &str) {
        self.process.signal(signal);
    }

    /// Waits for the process to exit by itself (after a signal).
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.process.wait()
    }

    /// The rest of the log, up to its end (the process has exited).
    pub fn rest_of_log(self) -> Vec<String> {
        self.log.map_while(Result::ok).collect()
    }

    /// Reads the rest of the log on a thread, so that a full pipe never stalls the process.
    pub fn drain_log(self) -> Running {
        let Binary { process, log } = self;
        std::thread::spawn(move || log.map_while(Result::ok).for_each(drop));
        process
    }
}
