//! The decision journal: one record per decision, handed to a bounded queue on the hot
//! path and written in batches by a dedicated thread (SQLite, plus optional JSONL and
//! Squid-format files). The proxy never waits on the disk: when the queue is full a
//! record is counted as dropped, and a warning and a metric say so.

pub mod pseudo;
pub mod record;
pub mod review;
pub mod sinks;
pub mod store;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use pseudo::Pseudonymiser;
pub use record::{Outcome, Record};

use crate::config::JournalConfig;

/// How many records may wait for the writer. At 20,000 decisions a second this is
/// several seconds of slack for a slow disk. Counted, not preallocated: the channel grows
/// in small blocks as records wait and gives them back as the writer takes them.
pub const QUEUE: usize = 131_072;

/// Counters for logs and `/metrics`.
#[derive(Debug, Default)]
pub struct JournalStats {
    pub queued: AtomicU64,
    pub written: AtomicU64,
    /// Refused because the queue was full (or the writer had stopped).
    pub dropped: AtomicU64,
    /// Accepted, but lost because the store could not be written.
    pub lost: AtomicU64,
    pub depth: AtomicI64,
    /// Last time (unix seconds) a drop was warned about, to keep the log readable.
    last_warning: AtomicI64,
}

/// The hot path's handle: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Journal {
    /// `None` when the journal is switched off.
    tx: Option<Sender<Record>>,
    pub stats: Arc<JournalStats>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pseudo: Option<Arc<Pseudonymiser>>,
    reopen: Arc<AtomicBool>,
}

/// The writer thread, to be drained on shutdown.
pub struct Writer {
    thread: Mutex<Option<JoinHandle<()>>>,
    closing: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Store(#[from] store::StoreOpenError),
    #[error("journal file {path}: {source}")]
    Sink {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start the journal writer: {0}")]
    Thread(std::io::Error),
}

/// Opens the store and the file sinks and starts the writer thread.
pub fn start(
    config: &JournalConfig,
    pseudo: Option<Pseudonymiser>,
) -> Result<(Journal, Writer), JournalError> {
    if !config.enabled {
        tracing::warn!("[journal] enabled = false: no decisions are being recorded");
        return Ok((
            Journal {
                tx: None,
                stats: Arc::default(),
                metrics: Arc::default(),
                pseudo: pseudo.map(Arc::new),
                reopen: Arc::default(),
            },
            Writer {
                thread: Mutex::new(None),
                closing: Arc::default(),
            },
        ));
    }
    let store = store::DecisionStore::open(&config.path, config.retention.map(|r| r.0))?;
    let sinks = sinks::Sinks::open(config.jsonl.as_deref(), config.squid_log.as_deref())?;
    let (tx, rx) = channel();
    let stats = Arc::new(JournalStats::default());
    let closing = Arc::new(AtomicBool::new(false));
    let reopen = Arc::new(AtomicBool::new(false));
    let thread = writer::spawn(
        rx,
        store,
        sinks,
        stats.clone(),
        closing.clone(),
        reopen.clone(),
    )
    .map_err(JournalError::Thread)?;
    Ok((
        Journal {
            tx: Some(tx),
            stats,
            metrics: Arc::default(),
            pseudo: pseudo.map(Arc::new),
            reopen,
        },
        Writer {
            thread: Mutex::new(Some(thread)),
            closing,
        },
    ))
}

impl Journal {
    /// Hands a record to the writer. Never blocks; a full queue drops the record and
    /// counts it.
    pub fn record(&self, mut record: Record) {
        self.metrics.count_decision(
            record.action.as_deref(),
            record.category.as_deref(),
            record.outcome.as_str(),
        );
        let Some(tx) = &self.tx else { return };
        if let Some(p) = &self.pseudo {
            record.client = p.hide(&record.client);
            record.user = record.user.map(|u| p.hide(&u));
        }
        // Reserve a place in the queue first; the writer gives places back as it takes records.
        let depth = &self.stats.depth;
        if depth.fetch_add(1, Ordering::Relaxed) >= QUEUE as i64 {
            depth.fetch_sub(1, Ordering::Relaxed);
            self.dropped();
            return;
        }
        match tx.send(record) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                depth.fetch_sub(1, Ordering::Relaxed);
                self.dropped();
            }
        }
    }

    /// Counts a record the queue could not take, warning at most every ten seconds.
    fn dropped(&self) {
        let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now = jiff::Timestamp::now().as_second();
        let last = self.stats.last_warning.load(Ordering::Relaxed);
        if now - last >= 10
            && self
                .stats
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                dropped,
                "journal queue full: decision records are being dropped"
            );
        }
    }

    /// Asks the file sinks to reopen their files (after logrotate moved them).
    pub fn reopen_files(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }

    /// The pseudonym for an identity, when pseudonymisation is on.
    pub fn hide(&self, identity: &str) -> String {
        match &self.pseudo {
            Some(p) => p.hide(identity),
            None => identity.to_string(),
        }
    }
}

impl Writer {
    /// Lets the writer store everything queued so far, then stops it. Records sent after
    /// this are counted as dropped.
    pub fn finish(&self, within: Duration) {
        self.closing.store(true, Ordering::Relaxed);
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = handle.join();
                let _ = done_tx.send(());
            });
            if done_rx.recv_timeout(within).is_err() {
                tracing::warn!(
                    "the journal writer did not finish in time; some records may be lost"
                );
            }
        }
    }
}
