//! Zero-copy CONNECT tunnels on Linux: bytes go socket → pipe → socket with splice(2) and
//! never through user space, so a tunnel costs no buffers of ours and far fewer copies.
//! Elsewhere (and for anything not a plain TCP socket) `tunnel::splice` copies instead.
//!
//! Pipes come from a shared pool and are held only while bytes move, so a thousand open
//! but quiet tunnels (browsers keep many) hold no pipes: file descriptors and the kernel's
//! per-user pipe budget (`fs.pipe-user-pages-soft`) go to tunnels that are busy.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use nix::fcntl::{OFlag, SpliceFFlags};
use nix::sys::socket::Shutdown;
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::io::Activity;

/// Bytes moved per call: what a pipe holds by default.
const CHUNK: usize = 64 * 1024;

/// Empty pipes kept for the next burst; more than this are closed when given back.
const SPARE_PIPES: usize = 64;

static SPARE: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());

/// Moves bytes both ways until both sides have closed; each side's end is passed on as a
/// half-close. `up` and `down` count client → origin and origin → client as bytes land,
/// so that a tunnel cut short still reports what it moved.
pub async fn both_ways(
    client: &TcpStream,
    origin: &TcpStream,
    activity: &Activity,
    up: &AtomicU64,
    down: &AtomicU64,
) -> io::Result<()> {
    tokio::try_join!(
        one_way(client, origin, activity, up),
        one_way(origin, client, activity, down)
    )?;
    Ok(())
}

async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    activity: &Activity,
    moved: &AtomicU64,
) -> io::Result<()> {
    loop {
        from.readable().await?;
        let pipe = match Pipe::take() {
            Ok(p) => p,
            Err(e) => {
                // Out of descriptors or pipe budget: this chunk goes by copying.
                tracing::debug!(error = %e, "no pipe for a tunnel; copying a chunk");
                if copy_chunk(from, to, activity, moved).await? {
                    continue;
                }
                return half_close(to);
            }
        };
        let n = match from.try_io(Interest::READABLE, || splice(from, &pipe.into, CHUNK)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                pipe.give_back();
                continue;
            }
            // On an error the pipe is dropped: it may hold bytes.
            other => other?,
        };
        if n == 0 {
            pipe.give_back();
            return half_close(to);
        }
        activity.moved();
        let mut left = n;
        while left > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || splice(&pipe.out, to, left)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => {
                    left -= m;
                    moved.fetch_add(m as u64, Ordering::Relaxed);
                    activity.moved();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        pipe.give_back();
    }
}

/// The sender is done: tell the receiver; the other direction goes on.
fn half_close(to: &TcpStream) -> io::Result<()> {
    match nix::sys::socket::shutdown(to.as_raw_fd(), Shutdown::Write) {
        Ok(()) | Err(nix::errno::Errno::ENOTCONN) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Copies what `from` has ready through a small buffer; `false` at the end of its stream.
async fn copy_chunk(
    from: &TcpStream,
    to: &TcpStream,
    activity: &Activity,
    moved: &AtomicU64,
) -> io::Result<bool> {
    let mut buf = vec![0u8; 16 * 1024];
    let n = match from.try_read(&mut buf) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
        Err(e) => return Err(e),
    };
    if n == 0 {
        return Ok(false);
    }
    send(to, &buf[..n], activity, moved).await?;
    Ok(true)
}

/// Writes all of `bytes` to `to`, counting them as they land.
pub async fn send(
    to: &TcpStream,
    bytes: &[u8],
    activity: &Activity,
    moved: &AtomicU64,
) -> io::Result<()> {
    let mut sent = 0;
    while sent < bytes.len() {
        to.writable().await?;
        match to.try_write(&bytes[sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(m) => {
                sent += m;
                moved.fetch_add(m as u64, Ordering::Relaxed);
                activity.moved();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A non-blocking pipe, empty whenever it is in the pool.
struct Pipe {
    out: OwnedFd,
    into: OwnedFd,
}

impl Pipe {
    fn take() -> io::Result<Pipe> {
        if let Some(p) = SPARE.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Ok(p);
        }
        let (out, into) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        Ok(Pipe { out, into })
    }

    /// Only ever called with the pipe drained.
    fn give_back(self) {
        let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < SPARE_PIPES {
            spare.push(self);
        }
    }
}

fn splice(from: impl AsFd, to: impl AsFd, len: usize) -> io::Result<usize> {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    Ok(nix::fcntl::splice(from, None, to, None, len, flags)?)
}
