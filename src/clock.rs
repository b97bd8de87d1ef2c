//! The proxy's clock: wall time anchored to tokio's monotonic clock, so that classification
//! and acknowledgement expiry follow `tokio::time::pause` in tests and never jump backwards
//! with the wall clock in production.

use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: Timestamp,
    mono: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            wall: Timestamp::now(),
            mono: Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        let elapsed = SignedDuration::try_from(self.mono.elapsed()).unwrap_or(SignedDuration::MAX);
        self.wall.saturating_add(elapsed).unwrap_or(self.wall)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
