//! How many decisions a second the journal writer stores without dropping one.
//!
//! `cargo bench --bench journal` — offers records at fixed rates (20,000/s, the target,
//! and higher), then as fast as one producer can, and prints what was stored and dropped.
//! Plain `main`: the question is a rate, not a latency distribution.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use signpost::config::JournalConfig;
use signpost::journal::{self, Outcome, Record};

fn record(i: u64) -> Record {
    Record {
        ts: jiff::Timestamp::now(),
        client: format!("10.0.{}.{}", (i / 250) % 250, i % 250),
        user: None,
        method: "GET".into(),
        url: format!("http://www.example{}.org/path/{i}", i % 500),
        host: format!("www.example{}.org", i % 500),
        category: (i % 3 == 0).then(|| "social".to_string()),
        rule: None,
        action: Some("allow".into()),
        outcome: Outcome::Forwarded,
        status: 200,
        bytes_up: 400,
        bytes_down: 12_000,
        duration_ms: 12,
        reason: None,
    }
}

/// Offers `rate` records a second for `secs` seconds (or as fast as possible if `rate` is 0).
fn run(rate: u64, secs: u64, jsonl: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = JournalConfig {
        path: dir.path().join("journal.db"),
        jsonl: jsonl.then(|| dir.path().join("decisions.jsonl")),
        squid_log: jsonl.then(|| dir.path().join("access.log")),
        ..JournalConfig::default()
    };
    let (j, writer) = journal::start(&config, None).expect("journal");
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        if rate > 0 {
            // Pace in 1 ms steps.
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                j.record(record(sent));
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        } else {
            for _ in 0..1000 {
                j.record(record(sent));
                sent += 1;
            }
        }
    }
    let offered_for = start.elapsed();
    writer.finish(Duration::from_secs(60));
    let drained_after = start.elapsed();
    let written = j.stats.written.load(Ordering::Relaxed);
    let dropped = j.stats.dropped.load(Ordering::Relaxed);
    let label = if rate == 0 {
        "flat out".to_string()
    } else {
        format!("{rate}/s")
    };
    println!(
        "{label:>10} {:>6}: offered {sent:>9} in {:>5.2}s ({:>8.0}/s) stored {written:>9} dropped {dropped:>7} — all stored after {:>5.2}s ({:>8.0}/s)",
        if jsonl { "+files" } else { "sqlite" },
        offered_for.as_secs_f64(),
        sent as f64 / offered_for.as_secs_f64(),
        drained_after.as_secs_f64(),
        written as f64 / drained_after.as_secs_f64(),
    );
}

fn main() {
    let secs = std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    for (rate, files) in [
        (20_000, false),
        (20_000, true),
        (50_000, true),
        (100_000, true),
        (0, false),
        (0, true),
    ] {
        run(rate, secs, files);
    }
}
