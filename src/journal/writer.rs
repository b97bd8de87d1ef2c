//! The writer thread: takes records off the queue in batches and stores them, committing
//! at least every 200 ms, so a crash loses well under a second. It never stops the proxy:
//! when the disk fails it counts what it lost and tries again with the next batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::record::Record;
use super::sinks::Sinks;
use super::store::DecisionStore;
use super::JournalStats;

const BATCH: usize = 4096;
const TICK: Duration = Duration::from_millis(200);
const PURGE_EVERY: Duration = Duration::from_secs(3600);

pub fn spawn(
    rx: Receiver<Record>,
    mut store: DecisionStore,
    mut sinks: Sinks,
    stats: Arc<JournalStats>,
    closing: Arc<AtomicBool>,
    reopen: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("journal-writer".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let mut last_purge: Option<Instant> = None;
            let mut failing = false;
            loop {
                let disconnected = match rx.recv_timeout(TICK) {
                    Ok(r) => {
                        batch.push(r);
                        false
                    }
                    Err(RecvTimeoutError::Timeout) => false,
                    Err(RecvTimeoutError::Disconnected) => true,
                };
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                if !batch.is_empty() {
                    let n = batch.len() as u64;
                    stats.depth.fetch_sub(n as i64, Ordering::Relaxed);
                    match store.insert(&batch) {
                        Ok(()) => {
                            stats.written.fetch_add(n, Ordering::Relaxed);
                            if failing {
                                failing = false;
                                tracing::warn!("the journal store is writable again");
                            }
                        }
                        Err(e) => {
                            let lost = stats.lost.fetch_add(n, Ordering::Relaxed) + n;
                            if !failing {
                                failing = true;
                                tracing::error!(error = %e, lost, "cannot write the journal store; records are being lost until it recovers");
                            }
                        }
                    }
                    if let Err(e) = sinks.write(&batch) {
                        tracing::warn!(error = %e, "cannot write a journal file");
                    }
                    batch.clear();
                }
                if reopen.swap(false, Ordering::Relaxed) {
                    sinks.reopen();
                    tracing::info!("journal files reopened");
                }
                if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
                    last_purge = Some(Instant::now());
                    match store.purge(jiff::Timestamp::now()) {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(purged = n, "purged journal records past retention"),
                        Err(e) => tracing::warn!(error = %e, "cannot purge old journal records"),
                    }
                }
                let drained = rx_is_empty(&stats);
                if disconnected || (closing.load(Ordering::Relaxed) && drained) {
                    return;
                }
            }
        })
}

fn rx_is_empty(stats: &JournalStats) -> bool {
    stats.depth.load(Ordering::Relaxed) <= 0
}
