//! The writer thread: every 50 ms takes what has queued up and stores it in batches, so a
//! crash loses well under a second. It never stops the proxy:
//! when the disk fails it counts what it lost and tries again with the next batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::record::Record;
use super::sinks::Sinks;
use super::store::DecisionStore;
use super::JournalStats;

const BATCH: usize = 4096;
/// How often the writer takes what has queued up.
const TICK: Duration = Duration::from_millis(50);
/// At most this many records per tick before the files and the purge are seen to.
const MAX_PER_TICK: usize = 16 * BATCH;
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
            let mut next = Instant::now();
            loop {
                // Paced, not woken per record: a sender never pays for waking this thread
                // (a futex call and a context switch), and batches are large.
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
                next = Instant::now() + TICK;
                let mut disconnected = false;
                let mut taken = 0;
                loop {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            disconnected = true;
                            break;
                        }
                    }
                    if batch.len() == BATCH {
                        store_batch(&mut batch, &mut store, &mut sinks, &stats, &mut failing);
                        taken += BATCH;
                        if taken >= MAX_PER_TICK {
                            // Falling behind: see to the files, then carry on at once.
                            next = Instant::now();
                            break;
                        }
                    }
                }
                store_batch(&mut batch, &mut store, &mut sinks, &stats, &mut failing);
                if reopen.swap(false, Ordering::Relaxed) {
                    sinks.reopen();
                    tracing::info!("journal files reopened");
                }
                if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
                    last_purge = Some(Instant::now());
                    match store.purge(jiff::Timestamp::now()) {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(purged = n, "purged journal records past retention")
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot purge old journal records"),
                    }
                }
                let drained = rx_is_empty(&stats);
                if disconnected || (closing.load(Ordering::Relaxed) && drained) {
                    // A record sent since the last look still gets stored.
                    batch.extend(rx.try_iter());
                    store_batch(&mut batch, &mut store, &mut sinks, &stats, &mut failing);
                    return;
                }
            }
        })
}

/// Stores `batch` (in one transaction) and writes it to the files; empties it either way.
fn store_batch(
    batch: &mut Vec<Record>,
    store: &mut DecisionStore,
    sinks: &mut Sinks,
    stats: &JournalStats,
    failing: &mut bool,
) {
    if batch.is_empty() {
        return;
    }
    let n = batch.len() as u64;
    stats.depth.fetch_sub(n as i64, Ordering::Relaxed);
    match store.insert(batch) {
        Ok(()) => {
            stats.written.fetch_add(n, Ordering::Relaxed);
            if *failing {
                *failing = false;
                tracing::warn!("the journal store is writable again");
            }
        }
        Err(e) => {
            let lost = stats.lost.fetch_add(n, Ordering::Relaxed) + n;
            if !*failing {
                *failing = true;
                tracing::error!(error = %e, lost, "cannot write the journal store; records are being lost until it recovers");
            }
        }
    }
    if let Err(e) = sinks.write(batch) {
        tracing::warn!(error = %e, "cannot write a journal file");
    }
    batch.clear();
}

fn rx_is_empty(stats: &JournalStats) -> bool {
    stats.depth.load(Ordering::Relaxed) <= 0
}
