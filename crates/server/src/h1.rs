//! The HTTP/1.1 connection loop, with a fast path for `GET|HEAD /videos/{id}`.
//!
//! Why not hyper alone: hyper writes bodies from memory (`writev`), and cannot `sendfile`
//! (hyper#3026). For large ranges the kernel's copy of our bytes into socket buffers is two thirds
//! of the server's CPU (`docs/benchmarks.md`); `sendfile` from the title's sealed memfd hands the
//! pages to the socket without that copy. So this loop reads request heads itself (`httparse`),
//! answers video requests with the same [`http::handle`](crate::http::handle) as everything else
//! (one decision, one renderer), and writes:
//! - the head and a large single-part body (≥ `Policy::sendfile_min`) with `send(MSG_MORE)` then
//!   `sendfile` from the title's file;
//! - anything else in one `writev` of the head and the body's `Bytes`.
//!
//! Any request it does not handle (other routes, a request body, `Expect`, `Upgrade`, HTTP/1.0,
//! headers it cannot represent) hands the connection to hyper, replaying the bytes already read,
//! and hyper serves that request and the rest of the connection.

use crate::body::Chunks;
use crate::State;
use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Request, Response};
use std::io::{self, IoSlice, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// Largest request head accepted (nginx's default large_client_header_buffers is 4 × 8 KiB).
const MAX_HEAD: usize = 32 * 1024;
const MAX_HEADERS: usize = 64;

pub(crate) async fn connection(
    mut stream: TcpStream,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut buf = BytesMut::new();
    let mut head = Vec::new();
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        // One deadline for the whole request head, idle wait included (as hyper does).
        let deadline = Instant::now() + state.config.header_read_timeout;
        // Idle between requests: hold no buffer, only wait for the socket.
        if buf.is_empty() {
            buf = BytesMut::new();
            tokio::select! {
                ready = tokio::time::timeout_at(deadline, stream.readable()) => match ready {
                    Ok(r) => r?,
                    Err(_) => return Ok(()),
                },
                _ = shutdown.changed() => return Ok(()),
            }
        }
        // Parse the head once; turn it into a request we serve, or hand the connection to hyper.
        let (head_len, request) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => break (n, ours(&req)),
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
                // Too large or malformed: hyper answers it properly (431/400).
                _ => return hyper_takeover(stream, buf.freeze(), &state, shutdown).await,
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(4096);
            }
            let read = tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf);
            match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(0)) | Err(_) => return Ok(()), // closed, or the header-read timeout
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        };
        let Some((req, close)) = request else {
            return hyper_takeover(stream, buf.freeze(), &state, shutdown).await;
        };
        let resp = answer(&state, &req);
        let head_only = req.method() == Method::HEAD;
        write_response(&mut stream, resp, head_only, close, &state, &mut head).await?;
        if close {
            return Ok(());
        }
        buf.advance(head_len);
    }
}

/// The request, and whether the client asked to close, when it is one the fast path serves:
/// `GET|HEAD /videos/...` over HTTP/1.1 without a body, `Expect` or `Upgrade`. `None`: hyper's.
fn ours(parsed: &httparse::Request<'_, '_>) -> Option<(Request<()>, bool)> {
    let method = match parsed.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return None,
    };
    let path = parsed.path?;
    if parsed.version != Some(1) || !path.starts_with("/videos/") {
        return None;
    }
    let mut builder = Request::builder().method(method).uri(path);
    let mut close = false;
    for h in parsed.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("upgrade")
            || (name.eq_ignore_ascii_case("content-length") && h.value != b"0")
        {
            return None;
        }
        if name.eq_ignore_ascii_case("connection") {
            close |= h
                .value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        builder = builder.header(name, h.value);
    }
    builder.body(()).ok().map(|r| (r, close))
}

/// Answers one request (on either path) and logs it at debug level.
fn answer<B>(state: &State, req: &Request<B>) -> Response<Chunks> {
    let resp = crate::http::handle(&state.library, &state.config.policy, req);
    tracing::debug!(method = %req.method(), uri = %req.uri(), status = resp.status().as_u16(), "request");
    resp
}

fn render_head(resp: &Response<Chunks>, close: bool, out: &mut Vec<u8>) {
    out.clear();
    let status = resp.status();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (k, v) in resp.headers() {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // Formatted straight into the reused head buffer: no allocation per response.
    let _ = write!(
        out,
        "date: {}\r\n",
        httpdate::HttpDate::from(std::time::SystemTime::now())
    );
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

async fn write_response(
    stream: &mut TcpStream,
    resp: Response<Chunks>,
    head_only: bool,
    close: bool,
    state: &State,
    head: &mut Vec<u8>,
) -> io::Result<()> {
    render_head(&resp, close, head);
    let body = resp.into_body();
    if head_only {
        return stream.write_all(head).await;
    }
    if let Some(src) = body
        .file()
        .filter(|f| f.len >= state.config.policy.sendfile_min)
    {
        // The head goes out with MSG_MORE so the kernel sends it with the first body segment.
        let mut sent = 0;
        while sent < head.len() {
            sent += stream
                .async_io(Interest::WRITABLE, || {
                    rustix::net::send(&*stream, &head[sent..], rustix::net::SendFlags::MORE)
                        .map_err(io::Error::from)
                })
                .await?;
        }
        let mut offset = src.offset;
        let end = src.offset + src.len;
        while offset < end {
            let want = (end - offset).min(1 << 30) as usize;
            let n = stream
                .async_io(Interest::WRITABLE, || {
                    rustix::fs::sendfile(&*stream, &*src.file, Some(&mut offset), want)
                        .map_err(io::Error::from)
                })
                .await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "title file shorter than its index",
                ));
            }
        }
        return Ok(());
    }
    // One writev of the head and every body frame; partial writes resume where they stopped.
    let slices_iter = std::iter::once(&head[..]).chain(body.parts().map(|b| &b[..]));
    let mut slices: Vec<IoSlice<'_>> = slices_iter.map(IoSlice::new).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = stream.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// Serves the rest of the connection with hyper, starting with the bytes already read.
async fn hyper_takeover(
    stream: TcpStream,
    read: Bytes,
    state: &Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let io = hyper_util::rt::TokioIo::new(Rewind { read, stream });
    let st = state.clone();
    let svc = hyper::service::service_fn(move |req| {
        std::future::ready(Ok::<_, std::convert::Infallible>(answer(&st, &req)))
    });
    let conn = state.http.serve_connection(io, svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    result.map_err(io::Error::other)
}

/// A stream that first yields bytes already read from it.
struct Rewind {
    read: Bytes,
    stream: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(out.remaining());
            out.put_slice(&self.read[..n]);
            self.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, out)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
