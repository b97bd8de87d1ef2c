//! Connection activity: an IO wrapper that notes when bytes move, so that idle keep-alive
//! connections, slow request heads and silent tunnels can be closed on time.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// What a connection has been doing, shared by its IO, its service and its watchdog.
#[derive(Debug)]
pub struct Activity {
    base: Instant,
    /// Nanoseconds after `base` (+1, so 0 means "never") of the last byte moved.
    last_io: AtomicU64,
    /// When the connection last became idle (no exchange in flight).
    idle_since: AtomicU64,
    /// First byte of a request head read while idle; 0 if none yet.
    head_started: AtomicU64,
    in_flight: AtomicU32,
}

/// Why a watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No request arrived within the idle timeout.
    Idle,
    /// A request head started but was not finished within the header timeout.
    SlowHead,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        let a = Activity {
            base: Instant::now(),
            last_io: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
        };
        a.idle_since.store(a.stamp(), Ordering::Relaxed);
        Arc::new(a)
    }

    fn stamp(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn instant(&self, stamp: u64) -> Instant {
        self.base + Duration::from_nanos(stamp.saturating_sub(1))
    }

    fn on_read(&self) {
        let now = self.stamp();
        self.last_io.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ =
                self.head_started
                    .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.last_io.store(self.stamp(), Ordering::Relaxed);
    }

    /// A request head is complete and its exchange begins.
    pub fn begin_exchange(self: &Arc<Self>) -> ExchangeGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
        ExchangeGuard(self.clone())
    }

    /// When the connection should be closed if nothing changes, and why. `None` while an
    /// exchange is in flight (its own timeouts apply).
    pub fn deadline(&self, idle: Duration, header: Duration) -> Option<(Instant, Expiry)> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        match self.head_started.load(Ordering::Relaxed) {
            0 => Some((
                self.instant(self.idle_since.load(Ordering::Relaxed)) + idle,
                Expiry::Idle,
            )),
            started => Some((self.instant(started) + header, Expiry::SlowHead)),
        }
    }

    /// When a tunnel that moves no bytes should be closed.
    pub fn quiet_deadline(&self, quiet: Duration) -> Instant {
        let last = self.last_io.load(Ordering::Relaxed).max(1);
        self.instant(last) + quiet
    }
}

/// Marks an exchange as finished when dropped (hyper drops a response body once sent).
#[derive(Debug)]
pub struct ExchangeGuard(Arc<Activity>);

impl Drop for ExchangeGuard {
    fn drop(&mut self) {
        let a = &self.0;
        a.head_started.store(0, Ordering::Relaxed);
        if a.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            a.idle_since.store(a.stamp(), Ordering::Relaxed);
        }
    }
}

pin_project_lite::pin_project! {
    /// An IO stream that reports reads and writes to an [`Activity`].
    pub struct Watched<T> {
        #[pin]
        inner: T,
        activity: Arc<Activity>,
    }
}

impl<T> Watched<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<T: AsyncRead> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.on_read();
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_then_slow_head_then_in_flight() {
        let idle = Duration::from_secs(60);
        let header = Duration::from_secs(10);
        let a = Activity::new();
        let start = Instant::now();
        assert_eq!(a.deadline(idle, header), Some((start + idle, Expiry::Idle)));

        tokio::time::advance(Duration::from_secs(5)).await;
        a.on_read();
        let read_at = Instant::now();
        assert_eq!(
            a.deadline(idle, header),
            Some((read_at + header, Expiry::SlowHead))
        );

        let guard = a.begin_exchange();
        assert_eq!(a.deadline(idle, header), None);
        tokio::time::advance(Duration::from_secs(100)).await;
        drop(guard);
        let done = Instant::now();
        assert_eq!(a.deadline(idle, header), Some((done + idle, Expiry::Idle)));
    }
}
