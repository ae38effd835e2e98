//! Writes a list of `Bytes` slices to a socket with `writev`, resuming after partial writes:
//! the one vectored writer of the HTTP/1.1 responses (h1/write.rs) and of every live viewer
//! (live/follow.rs).

use std::io::{self, IoSlice};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// Most slices handed to one writev (the kernel's IOV_MAX).
pub(crate) const IOV_MAX: usize = 1024;

/// Writes all slices, then flushes (TLS: rustls may still hold records after a write takes
/// bytes; see transport.rs). `progress` is told how many bytes each write took (0 before the first)
/// and returns the deadline for the next one, or `None` for no deadline; a write that takes
/// nothing by its deadline fails with `TimedOut` (live viewers: see `live::Stall`).
pub(crate) async fn write_all(
    sock: &mut crate::transport::Transport,
    slices: &mut [IoSlice<'_>],
    mut progress: impl FnMut(usize) -> Option<Instant>,
) -> io::Result<()> {
    let mut rest = slices;
    let mut until = progress(0);
    while !rest.is_empty() {
        let upto = rest.len().min(IOV_MAX);
        let write = sock.write_vectored(&rest[..upto]);
        let n = match until {
            Some(at) => match tokio::time::timeout_at(at, write).await {
                Ok(r) => r?,
                Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            },
            None => write.await?,
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        until = progress(n);
        IoSlice::advance_slices(&mut rest, n);
    }
    if sock.is_user_tls() {
        let flush = sock.flush();
        match until {
            Some(at) => match tokio::time::timeout_at(at, flush).await {
                Ok(r) => r?,
                Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            },
            None => flush.await?,
        }
    }
    Ok(())
}
