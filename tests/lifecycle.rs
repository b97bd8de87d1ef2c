//! Starting and stopping: graceful shutdown bounds, the real binary on SIGTERM, and
//! `signpost check` on good and bad files.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use http_body_util::BodyExt;
use signpost::config::Span;
use tokio::net::TcpStream;

#[tokio::test(start_paused = true)]
async fn shutdown_lets_in_flight_exchanges_finish_then_stops_listening() {
    let origin = origin().await;
    let mut cfg = config();
    cfg.proxy.shutdown_grace = Span(Duration::from_secs(30));
    let mut p = proxy(cfg).await;
    let mut c = client(p.addr).await;
    let resp = c.send_request(get(&origin.url("/gated"))).await.unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first chunk;");

    p.stop.cancel();
    // Time passes; the server keeps waiting for the exchange that is still in flight.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !p.done.is_finished(),
        "run() returned with an exchange in flight"
    );

    origin.release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(
        &rest[..],
        b"second chunk",
        "the in-flight response completed"
    );
    tokio::time::timeout(Duration::from_secs(25), &mut p.done)
        .await
        .expect("run() returns once the exchange is done")
        .unwrap();
    assert!(
        TcpStream::connect(p.addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_on_stuck_exchanges_after_the_grace_period() {
    let origin = origin().await;
    let mut cfg = config();
    cfg.proxy.shutdown_grace = Span(Duration::from_secs(10));
    let mut p = proxy(cfg).await;
    let mut c = client(p.addr).await;
    let resp = c.send_request(get(&origin.url("/gated"))).await.unwrap();
    let _held = resp.into_body(); // never released

    let stopped = tokio::time::Instant::now();
    p.stop.cancel();
    tokio::time::timeout(Duration::from_secs(60), &mut p.done)
        .await
        .expect("run() returns after the grace period")
        .unwrap();
    let took = stopped.elapsed();
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(11),
        "{took:?}"
    );
}

fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("signpost.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_binary_serves_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[proxy]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[journal]\npath = \"{}\"\n[coach]\nsecret_file = \"{}\"\n",
            dir.path().join("journal.db").display(),
            dir.path().join("coach-secret").display()
        ),
    );
    let mut signpost = Binary::run(&cfg, true);
    let [addr] = signpost.listening(["signpost is listening"]);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let health = rt.block_on(async {
        let mut c = client(addr).await;
        body_text(c.send_request(get("/healthz")).await.unwrap()).await
    });
    assert_eq!(health, "ok\n");

    signpost.signal("TERM");
    let status = signpost.wait();
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
    let rest = signpost.rest_of_log();
    assert!(
        rest.iter().any(|l| l.contains("signpost stopped")),
        "{rest:?}"
    );
}

#[test]
fn check_accepts_the_shipped_config() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/signpost.toml");
    let out = signpost_stdout("check", shipped.as_ref(), &[]);
    assert!(out.contains(": OK ("), "{out}");
}

#[test]
fn check_reports_file_line_column_key_and_value_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[proxy]\nlisten = \"127.0.0.1:3128\"\nallow_clients = [\"10.0.0.0/8\", \"10.0.0/8\"]\n",
    );
    let out = signpost_command("check", &cfg, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:3:32: `proxy.allow_clients[1]`", cfg.display());
    assert!(err.contains(&want), "{err}");
    assert!(err.contains("\"10.0.0/8\""), "{err}");
}

#[test]
fn run_refuses_a_bad_config_with_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[proxy]\nlisten = \"127.0.0.1:0\"\ncolour = \"blue\"\n",
    );
    let out = signpost_command("run", &cfg, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":3:1: `proxy.colour`: unknown field `colour`"),
        "{err}"
    );
}

#[test]
fn config_example_prints_the_commented_example() {
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let shipped =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml")).unwrap();
    assert_eq!(out.stdout, shipped);
}
