//! Hand-over to hyper: a request the fast path does not serve, and the rest of its connection,
//! go to hyper's HTTP/1.1 server, replaying the bytes already read.
//!
//! hyper has no write timeout, so the stream we give it keeps one: a write that stays pending
//! for `Config::send_timeout` fails with `TimedOut` (hyper then drops the connection) and the
//! socket is set to reset on close, as on the fast path (write.rs). So does a write still going
//! at the current response's [`SendBy`](crate::response::SendBy) (a live segment): the service
//! sets it as it answers, and hyper writes one response at a time.

use crate::state::State;
use crate::transport::Transport;
use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// Serves the rest of the connection with hyper, starting with the bytes already read; `one`:
/// only the request they begin, then the connection is closed.
pub(super) async fn hyper_takeover(
    stream: Transport,
    peer: std::net::SocketAddr,
    read: Bytes,
    state: &Arc<State>,
    mut shutdown: watch::Receiver<bool>,
    one: bool,
) -> io::Result<()> {
    let secure = stream.is_tls();
    let current = Arc::new(std::sync::Mutex::new(Current::default()));
    let mut rewind = Rewind::new(stream, read, state.config().send_timeout);
    rewind.current = Some(current.clone());
    let io = hyper_util::rt::TokioIo::new(rewind);
    let (st, stop) = (state.clone(), shutdown.clone());
    let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let (st, stop, current) = (st.clone(), stop.clone(), current.clone());
        async move {
            let how = crate::hyper_paths::How {
                http2: false,
                secure,
            };
            let resp = crate::hyper_paths::answer(&st, req, peer, stop, how).await;
            // What this response is written under (the last one's is done with).
            let by = crate::response::SendBy::of(&resp);
            *current.lock().unwrap_or_else(|p| p.into_inner()) = Current { by };
            // Until hyper is done with its body: what hyper writes after it on its own (an
            // answer to a malformed next request, the close) is not held to it.
            let resp = match by {
                Some(_) => resp.map(|body| Limited { body, current }.boxed_unsync()),
                None => resp,
            };
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    // hyper's HTTP/1.1 settings, from the settings in force (a reload changes the timeout).
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(state.config().header_read_timeout)
        .keep_alive(!one)
        // The fast path's limits on a request head (a head over them is handed over, and
        // answered here: 431).
        .max_header_size(super::head::MAX_HEAD)
        .max_headers(super::head::MAX_HEADERS)
        // Queue body `Bytes` and hand them to writev: no flattening copy (see body.rs).
        .writev(true);
    let conn = http.serve_connection(io, svc);
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

/// A body with a `SendBy`: clears it when hyper is done with the body (its last bytes may still
/// be in hyper's write queue, a few hundred KiB at most, then held to `send_timeout` only).
struct Limited {
    body: crate::hyper_paths::Body,
    current: Arc<std::sync::Mutex<Current>>,
}

impl Drop for Limited {
    fn drop(&mut self) {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).by = None;
    }
}

impl http_body::Body for Limited {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// What a response handed to hyper is written under: its `SendBy`.
#[derive(Debug, Clone, Copy, Default)]
struct Current {
    by: Option<Instant>,
}

/// A stream that first yields bytes already read from it, and fails a write that takes nothing
/// for `send_timeout` (also HTTP/2's stream, h2.rs, with nothing to replay), or that is still
/// going at `by`.
pub(crate) struct Rewind {
    read: Bytes,
    stream: Transport,
    send_timeout: Duration,
    /// What the response being written is written under (HTTP/1.1: one at a time).
    current: Option<Arc<std::sync::Mutex<Current>>>,
    /// The stall timer, made the first time a write has to wait and reset after that.
    stall: Option<Pin<Box<Sleep>>>,
    /// Whether the timer runs: a write is waiting and nothing has been taken since it started.
    armed: bool,
}

impl Rewind {
    pub(crate) fn new(stream: Transport, read: Bytes, send_timeout: Duration) -> Rewind {
        Rewind {
            read,
            stream,
            send_timeout,
            current: None,
            stall: None,
            armed: false,
        }
    }

    /// What the current response is written under.
    fn current(&self) -> Current {
        self.current
            .as_ref()
            .map(|c| *c.lock().unwrap_or_else(|p| p.into_inner()))
            .unwrap_or_default()
    }

    /// Why the current response may not be written further, if it may not: past its `SendBy`
    /// (the connection is then reset). Asked before writes only: a flush with nothing to write
    /// (hyper flushes while it waits for the next answer) is not the response's.
    fn refused(&self) -> Option<io::Error> {
        if self.current().by.is_none_or(|by| by > Instant::now()) {
            return None;
        }
        tracing::debug!("a live segment not sent within its limit; connection reset");
        super::write::reset_on_close(self.stream.tcp());
        Some(io::ErrorKind::TimedOut.into())
    }

    /// Applies the send timeout to the result of a write, a flush or a shutdown (TLS: rustls
    /// may hold records that wait on the socket in all three).
    fn timed<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>>
    where
        T: Progress,
    {
        let by = self.current().by;
        match r {
            Poll::Pending => {
                let stalled = Instant::now() + self.send_timeout;
                let at = by.map_or(stalled, |by| by.min(stalled));
                let stall = match &mut self.stall {
                    // Armed: it runs on, unless the limit comes first.
                    Some(s) if self.armed => {
                        if at < s.deadline() && by.is_some() {
                            s.as_mut().reset(at);
                        }
                        s
                    }
                    Some(s) => {
                        s.as_mut().reset(at);
                        s
                    }
                    None => self.stall.insert(Box::pin(tokio::time::sleep_until(at))),
                };
                self.armed = true;
                if stall.as_mut().poll(cx).is_ready() {
                    super::write::reset_on_close(self.stream.tcp());
                    tracing::debug!(timeout = ?self.send_timeout, "the client took nothing; connection reset");
                    return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
                }
                Poll::Pending
            }
            r => {
                if matches!(&r, Poll::Ready(Ok(n)) if n.progressed()) {
                    self.armed = false;
                }
                r
            }
        }
    }
}

/// Whether a finished I/O call moved bytes (a write of 0 bytes did not; a flush did).
trait Progress {
    fn progressed(&self) -> bool;
}

impl Progress for usize {
    fn progressed(&self) -> bool {
        *self > 0
    }
}

impl Progress for () {
    fn progressed(&self) -> bool {
        true
    }
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
        if let Some(e) = self.refused() {
            return Poll::Ready(Err(e));
        }
        let r = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.timed(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.refused() {
            return Poll::Ready(Err(e));
        }
        let r = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.timed(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.stream).poll_flush(cx);
        self.timed(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.timed(cx, r)
    }
}
