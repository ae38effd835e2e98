//! A TCP stream for rustls's handshake that can stop its reads at TLS record boundaries
//! ("corked"), so that nothing after the handshake's last record is read into user space: what
//! the client sends next stays in the socket for the kernel once the keys go to it (tls/ktls.rs).
//! Uncorked, reads pass straight through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream whose reads stop at TLS record boundaries while `corked` (the handshake), so
/// that no byte after the handshake's last record is read into user space.
#[derive(Debug)]
pub(crate) struct Corked {
    pub(crate) inner: TcpStream,
    corked: bool,
    records: Records,
}

/// Where a stream of TLS records stands (pure): how far into a header or a body.
#[derive(Debug, Default, Clone, Copy)]
struct Records {
    /// Bytes of the current record's 5-byte header seen so far.
    header: [u8; 5],
    header_seen: usize,
    /// Bytes of the current record's body still to come.
    body_left: usize,
}

impl Corked {
    pub(crate) fn new(inner: TcpStream, corked: bool) -> Corked {
        Corked {
            inner,
            corked,
            records: Records::default(),
        }
    }

    /// Reads pass through from now on (a connection that stays in user space).
    pub(crate) fn uncork(&mut self) {
        self.corked = false;
    }
}

impl Records {
    /// How much the next read may take without crossing a record boundary.
    fn limit(&self) -> usize {
        if self.body_left > 0 {
            self.body_left
        } else {
            5 - self.header_seen
        }
    }

    /// Accounts for `got`, the bytes just read.
    fn saw(&mut self, got: &[u8]) {
        if self.body_left > 0 {
            self.body_left -= got.len();
            return;
        }
        self.header[self.header_seen..self.header_seen + got.len()].copy_from_slice(got);
        self.header_seen += got.len();
        if self.header_seen == 5 {
            self.header_seen = 0;
            self.body_left = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
        }
    }
}

impl AsyncRead for Corked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.corked {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let limit = self.records.limit().min(buf.remaining());
        let mut part = buf.take(limit);
        let r = Pin::new(&mut self.inner).poll_read(cx, &mut part);
        let n = part.filled().len();
        if let Poll::Ready(Ok(())) = r {
            let got = part.filled();
            self.records.saw(got);
            // SAFETY: `part` is a view of `buf`'s unfilled region; the read initialised and filled
            // `n` bytes of it.
            unsafe { buf.assume_init(n) };
            buf.advance(n);
        }
        r
    }
}

impl AsyncWrite for Corked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, b)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corked_reads_stop_at_record_boundaries() {
        let mut c = Records::default();
        assert_eq!(c.limit(), 5);
        c.saw(&[22, 3, 3]);
        assert_eq!(c.limit(), 2);
        c.saw(&[0, 10]);
        assert_eq!(c.limit(), 10, "the record's body");
        c.saw(&[0; 4]);
        assert_eq!(c.limit(), 6);
        c.saw(&[0; 6]);
        assert_eq!(c.limit(), 5, "the next header");
    }
}
