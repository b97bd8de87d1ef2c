//! Zero-copy CONNECT tunnels on Linux: bytes go socket → pipe → socket with splice(2) and
//! never through user space, so a tunnel costs no buffers of ours and far fewer copies.
//! Elsewhere (and for anything not a plain TCP socket) `tunnel::splice` copies instead.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{OFlag, SpliceFFlags};
use nix::sys::socket::Shutdown;
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::io::Activity;

/// Bytes handed to the pipe per call: a pipe holds 64 KiB by default.
const CHUNK: usize = 64 * 1024;

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
    let (pipe_out, pipe_in) = pipe()?;
    loop {
        let n = loop {
            from.readable().await?;
            match from.try_io(Interest::READABLE, || splice(from, &pipe_in, CHUNK)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => break other?,
            }
        };
        if n == 0 {
            // The sender is done: tell the receiver, and keep the other direction going.
            return match nix::sys::socket::shutdown(to.as_raw_fd(), Shutdown::Write) {
                Ok(()) | Err(nix::errno::Errno::ENOTCONN) => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        activity.moved();
        let mut left = n;
        while left > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || splice(&pipe_out, to, left)) {
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
    }
}

/// A non-blocking pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?)
}

fn splice(from: impl AsFd, to: impl AsFd, len: usize) -> io::Result<usize> {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    Ok(nix::fcntl::splice(from, None, to, None, len, flags)?)
}
