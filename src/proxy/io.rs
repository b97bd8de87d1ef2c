//! Connection activity: an IO wrapper that notes when bytes move, so that idle keep-alive
//! connections, slow request heads, clients that stop reading and silent tunnels can be
//! closed on time, and so that an idle connection can be parked (see `conn.rs`).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
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
    /// Since when a write has been waiting for the client to read; 0 if none is.
    write_blocked: AtomicU64,
    /// Bytes were written since the last completed flush (HTTP's buffer may hold more).
    unflushed: AtomicBool,
    /// The HTTP server is being taken off this connection: shutting the socket down is
    /// then left to us (the client keeps its connection).
    parking: AtomicBool,
    in_flight: AtomicU32,
    /// A client connection's place under `proxy.max_connections`; it goes with the socket
    /// into a tunnel or WebSocket and is given back when the last holder lets go.
    _slot: Option<Slot>,
}

/// A client connection counted as open (and holding its permit) for as long as it lives.
#[derive(Debug)]
pub struct Slot {
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Slot {
    pub fn new(
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Slot {
        metrics.connection_opened();
        Slot {
            _permit: permit,
            metrics,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

/// Why a watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No request arrived within the idle timeout.
    Idle,
    /// A request head started but was not finished within the header timeout.
    SlowHead,
    /// The client stopped reading what it is sent.
    Stalled,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Self::holding(None)
    }

    /// The activity of a client connection, which holds its [`Slot`].
    pub fn holding(slot: Option<Slot>) -> Arc<Activity> {
        let a = Activity {
            base: Instant::now(),
            last_io: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            write_blocked: AtomicU64::new(0),
            unflushed: AtomicBool::new(false),
            parking: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            _slot: slot,
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

    /// Bytes moved outside a [`Watched`] stream (a zero-copy tunnel).
    pub fn moved(&self) {
        self.last_io.store(self.stamp(), Ordering::Relaxed);
    }

    fn on_write(&self) {
        self.moved();
        self.write_blocked.store(0, Ordering::Relaxed);
        self.unflushed.store(true, Ordering::Relaxed);
    }

    fn on_write_blocked(&self) {
        let now = self.stamp();
        let _ = self
            .write_blocked
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn on_flushed(&self) {
        self.unflushed.store(false, Ordering::Relaxed);
    }

    /// While set, shutting the IO down is a no-op: the HTTP server lets go of the socket.
    pub fn set_parking(&self, parking: bool) {
        self.parking.store(parking, Ordering::Relaxed);
    }

    /// A request head is complete and its exchange begins.
    pub fn begin_exchange(self: &Arc<Self>) -> ExchangeGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
        ExchangeGuard(self.clone())
    }

    /// When the connection should be closed if nothing changes, and why. A write the client
    /// does not take counts against `send`, always; otherwise `None` while an exchange is in
    /// flight (its own timeouts apply).
    pub fn deadline(&self, t: &Timeouts) -> Option<(Instant, Expiry)> {
        let stalled = match self.write_blocked.load(Ordering::Relaxed) {
            0 => None,
            since => Some((self.instant(since) + t.send, Expiry::Stalled)),
        };
        let between = if self.in_flight.load(Ordering::Relaxed) > 0 {
            None
        } else {
            match self.head_started.load(Ordering::Relaxed) {
                0 => Some((
                    self.instant(self.idle_since.load(Ordering::Relaxed)) + t.idle,
                    Expiry::Idle,
                )),
                started => Some((self.instant(started) + t.header, Expiry::SlowHead)),
            }
        };
        match (stalled, between) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// When the connection may be parked: nothing in flight, no request bytes read since
    /// the last exchange, everything written flushed, and quiet for `after`.
    pub fn park_at(&self, after: Duration) -> Option<Instant> {
        let quiet = self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
            && self.write_blocked.load(Ordering::Relaxed) == 0
            && !self.unflushed.load(Ordering::Relaxed);
        quiet.then(|| {
            let last = self
                .idle_since
                .load(Ordering::Relaxed)
                .max(self.last_io.load(Ordering::Relaxed));
            self.instant(last) + after
        })
    }

    /// When a tunnel that moves no bytes should be closed.
    pub fn quiet_deadline(&self, quiet: Duration) -> Instant {
        let last = self.last_io.load(Ordering::Relaxed).max(1);
        self.instant(last) + quiet
    }
}

/// The limits a connection's watchdog applies.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub idle: Duration,
    pub header: Duration,
    pub send: Duration,
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
        // Bytes read earlier by a server that has since let go; returned before `inner`'s.
        replay: Bytes,
    }
}

impl<T> Watched<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Watched {
            inner,
            activity,
            replay: Bytes::new(),
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The stream, any bytes read earlier that were not handed out yet, and the activity
    /// (which may hold the connection's [`Slot`]: keep it while the stream is used).
    pub fn into_parts(self) -> (T, Bytes, Arc<Activity>) {
        (self.inner, self.replay, self.activity)
    }

    /// Bytes to hand out before reading from the stream again; they came before any
    /// still waiting to be handed out.
    pub fn replay(&mut self, bytes: Bytes) {
        if self.replay.is_empty() {
            self.replay = bytes;
        } else if !bytes.is_empty() {
            let mut joined = BytesMut::with_capacity(bytes.len() + self.replay.len());
            joined.extend_from_slice(&bytes);
            joined.extend_from_slice(&self.replay);
            self.replay = joined.freeze();
        }
    }

    /// Whether bytes read earlier are still waiting to be handed out.
    pub fn has_replay(&self) -> bool {
        !self.replay.is_empty()
    }
}

impl<T: AsyncRead> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if !this.replay.is_empty() && buf.remaining() > 0 {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay[..n]);
            this.replay.advance(n);
            this.activity.on_read();
            return Poll::Ready(Ok(()));
        }
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
        note_write(this.activity, &polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write_vectored(cx, bufs);
        note_write(this.activity, &polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let polled = this.inner.poll_flush(cx);
        if matches!(polled, Poll::Ready(Ok(()))) {
            this.activity.on_flushed();
        }
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.activity.parking.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_shutdown(cx)
    }
}

fn note_write(activity: &Activity, polled: &Poll<io::Result<usize>>) {
    match polled {
        Poll::Ready(Ok(n)) if *n > 0 => activity.on_write(),
        Poll::Pending => activity.on_write_blocked(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_then_slow_head_then_in_flight() {
        let idle = Duration::from_secs(60);
        let header = Duration::from_secs(10);
        let t = Timeouts {
            idle,
            header,
            send: Duration::from_secs(30),
        };
        let a = Activity::new();
        let start = Instant::now();
        assert_eq!(a.deadline(&t), Some((start + idle, Expiry::Idle)));

        tokio::time::advance(Duration::from_secs(5)).await;
        a.on_read();
        let read_at = Instant::now();
        assert_eq!(a.deadline(&t), Some((read_at + header, Expiry::SlowHead)));

        let guard = a.begin_exchange();
        assert_eq!(a.deadline(&t), None);
        tokio::time::advance(Duration::from_secs(100)).await;
        drop(guard);
        let done = Instant::now();
        assert_eq!(a.deadline(&t), Some((done + idle, Expiry::Idle)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocked_write_counts_in_flight_and_holds_off_parking() {
        let send = Duration::from_secs(30);
        let t = Timeouts {
            idle: Duration::from_secs(60),
            header: Duration::from_secs(10),
            send,
        };
        let after = Duration::from_secs(1);
        let a = Activity::new();
        assert_eq!(a.park_at(after), Some(Instant::now() + after));

        let guard = a.begin_exchange();
        assert_eq!(a.park_at(after), None, "an exchange is in flight");
        tokio::time::advance(Duration::from_secs(2)).await;
        a.on_write_blocked();
        let blocked = Instant::now();
        assert_eq!(a.deadline(&t), Some((blocked + send, Expiry::Stalled)));
        tokio::time::advance(Duration::from_secs(5)).await;
        a.on_write_blocked();
        assert_eq!(
            a.deadline(&t),
            Some((blocked + send, Expiry::Stalled)),
            "still blocked since the first time"
        );
        a.on_write();
        assert_eq!(a.deadline(&t), None, "the client read again");

        drop(guard);
        assert_eq!(a.park_at(after), None, "written but not flushed");
        a.on_flushed();
        assert_eq!(a.park_at(after), Some(Instant::now() + after));
        a.on_read();
        assert_eq!(a.park_at(after), None, "the next request has started");
    }

    #[tokio::test]
    async fn replayed_bytes_come_first_and_in_order() {
        use tokio::io::AsyncReadExt;
        let (mut far, near) = tokio::io::duplex(64);
        let mut w = Watched::new(near, Activity::new());
        w.replay(Bytes::from_static(b"later "));
        w.replay(Bytes::from_static(b"earlier "));
        assert!(w.has_replay());
        tokio::io::AsyncWriteExt::write_all(&mut far, b"then the stream")
            .await
            .expect("write");
        drop(far);
        let mut got = String::new();
        w.read_to_string(&mut got).await.expect("read");
        assert_eq!(got, "earlier later then the stream");
        assert!(!w.has_replay());
    }
}
