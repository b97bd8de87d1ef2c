//! Headless Chromium (Debian's) for browser-facing tests, driven by `tests/browser/drive.mjs`
//! through playwright-core. The browser's only proxy setting is the PAC URL it is given,
//! so a test sees exactly what a person's browser pointed at Signpost sees.
//!
//! Everything here blocks (processes and files): call it from `spawn_blocking`, or from a
//! multi-thread runtime whose other workers serve the proxy and the origins.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

const CHROMIUM: &str = "/usr/bin/chromium";
/// The driver stops itself after 50 s; this is the backstop.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// Time the driver gets to close Chromium after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(8);

/// One browser identity: a temporary HOME holding the NSS certificate database Chromium
/// reads (`$HOME/.pki/nssdb`) and a Chromium profile. Every [`Browser::run`] starts a fresh
/// Chromium process on that profile, so runs on the same `Browser` share cookies and cache,
/// like one person's browser restarted; make a new `Browser` for a stranger.
pub struct Browser {
    home: tempfile::TempDir,
    /// Numbers the files a run or a trust writes.
    seq: AtomicUsize,
}

/// What one driver run printed, for tests that expect a step to fail.
#[derive(Debug)]
pub struct Run {
    /// One JSON object per step that ran: `{"step", "ok", "url", "error"}`, plus `"status"`
    /// (the main document's HTTP status) after a `goto` or a navigating `click`.
    pub lines: Vec<Value>,
    /// Whether the driver exited 0 (every step passed) within the time limit.
    pub ok: bool,
    /// The driver's exit, stdout and stderr, for failure messages.
    pub output: String,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn driver_dir() -> PathBuf {
    repo().join("tests/browser")
}

fn missing(what: &str) -> ! {
    panic!("{what} is missing: run scripts/test.sh, which installs what the browser tests need")
}

impl Browser {
    /// Checks prerequisites and panics with a message naming `scripts/test.sh` if Chromium,
    /// certutil (libnss3-tools), node or the driver's node modules are missing. Creates a
    /// temporary HOME with an empty NSS database.
    pub fn new() -> Browser {
        if !Path::new(CHROMIUM).exists() {
            missing(CHROMIUM);
        }
        if !driver_dir()
            .join("node_modules/playwright-core/package.json")
            .exists()
        {
            missing("tests/browser/node_modules/playwright-core");
        }
        if Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            missing("node");
        }
        let home = tempfile::Builder::new()
            .prefix("signpost-browser-")
            .tempdir()
            .unwrap();
        let nssdb = home.path().join(".pki/nssdb");
        std::fs::create_dir_all(&nssdb).unwrap();
        let mut db = String::from("sql:");
        db.push_str(nssdb.to_str().expect("temp dir paths are UTF-8"));
        certutil(&["-d", &db, "-N", "--empty-password"]);
        Browser {
            home,
            seq: AtomicUsize::new(0),
        }
    }

    /// The temporary HOME (for screenshots and other files a test wants kept with it).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    fn nssdb(&self) -> String {
        let dir = self.home.path().join(".pki/nssdb");
        format!("sql:{}", dir.to_str().expect("temp dir paths are UTF-8"))
    }

    /// Trusts a certificate (PEM or DER) as a CA for TLS servers (`certutil -t "C,,"`).
    /// A self-signed server certificate trusted this way is accepted as its own anchor.
    pub fn trust(&self, name: &str, cert_pem_or_der: &[u8]) {
        let pem = cert_pem_or_der.starts_with(b"-----BEGIN");
        let file = self.home.path().join(format!(
            "trust-{}.{}",
            self.seq.fetch_add(1, Ordering::Relaxed),
            if pem { "pem" } else { "der" }
        ));
        std::fs::write(&file, cert_pem_or_der).unwrap();
        let db = self.nssdb();
        let file = file.to_str().expect("temp dir paths are UTF-8");
        let mut args = vec!["-d", &db, "-A", "-t", "C,,", "-n", name, "-i", file];
        if pem {
            args.push("-a");
        }
        certutil(&args);
    }

    /// Runs the driver with these steps (see `tests/browser/drive.mjs`) and only this PAC
    /// URL as Chromium's proxy setting; returns the per-step JSON lines. Panics with all of
    /// the driver's output if a step fails or the run takes over 60 s.
    pub fn run(&self, pac_url: &str, steps: Value) -> Vec<Value> {
        let run = self.run_unchecked(pac_url, steps);
        if !run.ok {
            panic!("the browser run failed\n{}", run.output);
        }
        run.lines
    }

    /// As [`Browser::run`], but returns a failed run instead of panicking (the last line
    /// is then the failing step).
    pub fn run_unchecked(&self, pac_url: &str, steps: Value) -> Run {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let input = self.home.path().join(format!("run-{n}.json"));
        let profile = self.home.path().join("profile");
        let spec = serde_json::json!({
            "pacUrl": pac_url,
            "userDataDir": profile,
            "steps": steps,
        });
        std::fs::write(&input, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();

        let mut cmd = Command::new("node");
        cmd.arg(driver_dir().join("drive.mjs"))
            .arg(&input)
            .current_dir(driver_dir())
            .env("HOME", self.home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The PAC URL is the only proxy setting; keep the environment's out of it.
        for var in ["http_proxy", "https_proxy", "all_proxy", "no_proxy"] {
            cmd.env_remove(var).env_remove(var.to_ascii_uppercase());
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node for the browser driver: {e}"));
        let stdout = drain(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        let (status, timed_out) = wait_bounded(&mut child);
        let stdout = stdout.join().unwrap();
        let stderr = stderr.join().unwrap();

        let lines: Vec<Value> = stdout
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let exit = match (&status, timed_out) {
            (_, true) => format!("stopped after {} s", RUN_LIMIT.as_secs()),
            (Some(status), false) => status.to_string(),
            (None, false) => "no exit status".to_string(),
        };
        let output = format!(
            "steps: {}\ndriver: {exit}\n--- stdout\n{stdout}--- stderr\n{stderr}---",
            serde_json::to_string(&spec["steps"]).unwrap()
        );
        Run {
            lines,
            ok: !timed_out && status.is_some_and(|s| s.success()),
            output,
        }
    }
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

fn certutil(args: &[&str]) {
    let out = match Command::new("certutil").args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            missing("certutil (Debian package libnss3-tools)")
        }
        Err(e) => panic!("certutil: {e}"),
    };
    assert!(
        out.status.success(),
        "certutil {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Waits for the driver up to [`RUN_LIMIT`]; then asks it to close Chromium (SIGTERM, which
/// Playwright handles by closing the browser) and kills it after [`TERM_GRACE`].
/// Returns the exit status and whether the limit was hit.
fn wait_bounded(child: &mut Child) -> (Option<ExitStatus>, bool) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (Some(status), false);
        }
        if start.elapsed() >= RUN_LIMIT {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let term = Instant::now();
    while term.elapsed() < TERM_GRACE {
        if let Ok(Some(status)) = child.try_wait() {
            return (Some(status), true);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    (child.wait().ok(), true)
}
