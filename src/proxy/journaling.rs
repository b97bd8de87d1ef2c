//! A decision record in the making: it is journaled when dropped, which is when the
//! exchange truly ends — after the last byte of a streamed body, or when a tunnel closes —
//! so bytes and duration are true.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::forward::Counters;
use crate::journal::{Journal, Outcome, Record};

pub struct Pending {
    record: Option<Record>,
    started: Instant,
    counters: Counters,
    journal: Journal,
}

impl Pending {
    pub fn new(journal: Journal, record: Record, counters: Counters, started: Instant) -> Pending {
        Pending {
            record: Some(record),
            started,
            counters,
            journal,
        }
    }

    pub fn set(&mut self, outcome: Outcome, status: u16) {
        if let Some(r) = self.record.as_mut() {
            r.outcome = outcome;
            r.status = status;
        }
    }

    /// Drops the record without journaling it (the decision is journaled elsewhere).
    pub fn cancel(mut self) {
        self.record = None;
    }

    pub fn set_category(&mut self, category: Option<String>) {
        if let Some(r) = self.record.as_mut() {
            r.category = category;
            r.action = Some("coach".into());
        }
    }

    pub fn set_reason(&mut self, reason: Option<String>) {
        if let Some(r) = self.record.as_mut() {
            r.reason = reason;
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut r) = self.record.take() {
            if self.counters.down.failed.load(Ordering::Relaxed) {
                r.outcome = Outcome::Error;
                r.reason = Some("the origin's response ended early".into());
            }
            r.bytes_up = self.counters.up.bytes.load(Ordering::Relaxed);
            r.bytes_down = self.counters.down.bytes.load(Ordering::Relaxed);
            r.duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.journal.record(r);
        }
    }
}
