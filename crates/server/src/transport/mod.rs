//! A connection's byte stream: plain TCP, or TLS over TCP (rustls, see tls/). The HTTP/1.1 loop,
//! the live viewers and publishers, hyper's hand-over and RTMP all run on a [`Transport`], so
//! every route works over HTTPS and RTMPS the same way.
//!
//! What differs is where the bytes are encrypted:
//! - plain TCP: `writev` and `sendfile` straight to the socket;
//! - TLS in user space: rustls copies each plaintext slice once into its record buffer and
//!   encrypts it there; `sendfile` is not possible (the kernel would send plaintext), so bodies
//!   that would go out with it are written from the same mapped `Bytes` instead.
//! - kernel TLS (tls/ktls.rs): after the handshake the kernel holds the keys; for us the socket
//!   is plain TCP again, `sendfile` included.
//!
//! A TLS write may return before rustls has handed all its records to the socket, so every
//! writer ends a message with a flush ([`crate::vectored::write_all`] does).

mod corked;

pub(crate) use corked::Corked;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A connection: plain TCP or TLS over TCP.
#[derive(Debug)]
pub(crate) enum Transport {
    Plain(TcpStream),
    /// Boxed: rustls's connection state is large, and a plain connection's future should not
    /// carry its size.
    Tls(Box<TlsStream<Corked>>),
    /// TLS done by the kernel (kTLS): plaintext for us.
    Ktls(Box<Ktls>),
}

/// A kTLS socket, and what rustls had already decrypted when the keys went to the kernel (the
/// client's first request, sent with its `Finished`): read before the socket.
#[derive(Debug)]
pub(crate) struct Ktls {
    pub(crate) sock: TcpStream,
    pub(crate) early: bytes::Bytes,
}

impl Transport {
    /// The TCP socket underneath (socket options, `SO_LINGER`).
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Ktls(k) => &k.sock,
            Transport::Tls(s) => &s.get_ref().0.inner,
        }
    }

    /// Whether the bytes are encrypted (HTTPS, RTMPS).
    pub(crate) fn is_tls(&self) -> bool {
        !matches!(self, Transport::Plain(_))
    }

    /// Whether rustls encrypts in user space (writers must flush; no `sendfile`).
    pub(crate) fn is_user_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// The socket `sendfile` may write to: plain TCP and kTLS (user-space TLS must see the bytes).
    pub(crate) fn sendfile_socket(&self) -> Option<&TcpStream> {
        match self {
            Transport::Plain(s) => Some(s),
            Transport::Ktls(k) => Some(&k.sock),
            Transport::Tls(_) => None,
        }
    }

    /// Waits until a read can make progress: the socket is readable, or (TLS) rustls already holds
    /// decrypted bytes not read yet.
    pub(crate) async fn readable(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.readable().await,
            Transport::Ktls(k) if !k.early.is_empty() => Ok(()),
            Transport::Ktls(k) => k.sock.readable().await,
            Transport::Tls(s) => {
                let (tcp, conn) = s.get_mut();
                match conn.process_new_packets() {
                    Ok(st) if st.plaintext_bytes_to_read() > 0 || st.peer_has_closed() => Ok(()),
                    Ok(_) => tcp.inner.readable().await,
                    // The read that follows reports it.
                    Err(_) => Ok(()),
                }
            }
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Ktls(k) if !k.early.is_empty() => {
                let n = k.early.len().min(buf.remaining());
                buf.put_slice(&k.early.split_to(n));
                Poll::Ready(Ok(()))
            }
            Transport::Ktls(k) => Pin::new(&mut k.sock).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Ktls(k) => Pin::new(&mut k.sock).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Transport::Ktls(k) => Pin::new(&mut k.sock).poll_write_vectored(cx, bufs),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Ktls(k) => Pin::new(&mut k.sock).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Ktls(k) => Pin::new(&mut k.sock).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
