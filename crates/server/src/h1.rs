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
//! It also owns the two long-lived live requests, which hyper's request/response model does not
//! fit: `PUT|POST /live/{name}` (the body is read straight into ingest slabs, see live.rs) and
//! `GET /live/{name}.ts` (a viewer loop writing batches from the ring).
//!
//! Any request it does not handle (other routes, a request body, `Expect`, `Upgrade`, HTTP/1.0,
//! headers it cannot represent) hands the connection to hyper, replaying the bytes already read,
//! and hyper serves that request and the rest of the connection.

use crate::body::Chunks;
use crate::error::Error;
use crate::live;
use crate::State;
use ::live::RequestBody;
use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Request, Response};
use std::io::{self, IoSlice};
use std::net::SocketAddr;
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
    peer: SocketAddr,
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
            match parse_head(&buf) {
                Head::Complete(n, ours) => break (n, ours),
                Head::Partial if buf.len() < MAX_HEAD => {}
                // Too large or malformed: hyper answers it properly (431/400).
                _ => return Box::pin(hyper_takeover(stream, buf.freeze(), &state, shutdown)).await,
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
        let (req, close) = match request {
            None => return Box::pin(hyper_takeover(stream, buf.freeze(), &state, shutdown)).await,
            Some(Ours::Plain(req, close)) => (req, close),
            Some(Ours::Watch(req, http10, close)) => {
                let file = live_name(&req);
                let (name, output) = match file.strip_suffix(".flv") {
                    Some(n) => (n, live::Output::Flv),
                    None => (file.trim_end_matches(".ts"), live::Output::Ts),
                };
                let found = state.live.get(name).filter(|s| {
                    // (The read guard must be gone before `want_media` takes the write lock.)
                    let ended = s.read().state == live::State::Ended;
                    !ended && (output == live::Output::Ts || s.want_media(&state.live))
                });
                let Some(s) = found else {
                    let resp = crate::http::error_response(Error::UnknownStream(name.into()));
                    write_response(&mut stream, resp, false, close, &state, &mut head).await?;
                    if close {
                        return Ok(());
                    }
                    buf.advance(head_len);
                    continue;
                };
                drop(buf);
                drop(head);
                return Box::pin(live::watch_http(
                    &mut stream,
                    s,
                    &state.live,
                    output,
                    !http10,
                    shutdown,
                ))
                .await;
            }
            Some(Ours::Publish(req, body, expect)) => {
                buf.advance(head_len);
                return Box::pin(publish(
                    stream, peer, &state, req, body, expect, buf, shutdown,
                ))
                .await;
            }
        };
        if let Some(name) = req
            .uri()
            .path()
            .strip_prefix("/live/")
            .and_then(|p| p.strip_suffix("/index.m3u8"))
        {
            Box::pin(
                state
                    .live
                    .wait_for_segment(name, std::time::Duration::from_secs(10)),
            )
            .await;
        }
        let resp = answer(&state, &req);
        let head_only = req.method() == Method::HEAD;
        write_response(&mut stream, resp, head_only, close, &state, &mut head).await?;
        if close {
            return Ok(());
        }
        buf.advance(head_len);
    }
}

/// The outcome of `parse_head`: returned and matched at once, never kept (so its size is moot).
#[allow(clippy::large_enum_variant)]
enum Head {
    Complete(usize, Option<Ours>),
    Partial,
    Invalid,
}

/// Parses a request head. Its own function so that the 2 KiB header array lives on the stack
/// for the parse only, not in every connection's future across its awaits (idle connections
/// are mostly that future).
fn parse_head(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => Head::Complete(n, ours(&req)),
        Ok(httparse::Status::Partial) => Head::Partial,
        Err(_) => Head::Invalid,
    }
}

/// A request the fast path serves.
enum Ours {
    /// Answered by `http::handle`; `true` when the client asked to close.
    Plain(Request<()>, bool),
    /// A live `.ts`/`.flv` viewer; `true` for HTTP/1.0 (no chunked encoding); whether the client
    /// asked to close (for an error answer).
    Watch(Request<()>, bool, bool),
    /// A publisher, its body's framing, and whether it expects `100 Continue`.
    Publish(Request<()>, RequestBody, bool),
}

/// The stream name part of a `/live/...` path.
fn live_name<B>(req: &Request<B>) -> &str {
    let p = req.uri().path().trim_start_matches("/live/");
    p.split('/').next().unwrap_or(p)
}

/// Sorts a parsed request head: `GET|HEAD /videos/...` and the live HLS routes over HTTP/1.1
/// without a body, `Expect` or `Upgrade`; `GET /live/{name}.ts`; `PUT|POST /live/{name}`.
/// `None`: hyper's.
fn ours(parsed: &httparse::Request<'_, '_>) -> Option<Ours> {
    let method = match parsed.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        Some("PUT") => Method::PUT,
        Some("POST") => Method::POST,
        _ => return None,
    };
    let path = parsed.path?;
    let version = parsed.version?;
    let live = path.strip_prefix("/live/");
    let live_path = live.map(|p| p.split('?').next().unwrap_or(p));
    let watch = method == Method::GET
        && live_path
            .is_some_and(|p| !p.contains('/') && (p.ends_with(".ts") || p.ends_with(".flv")));
    let publish =
        matches!(method, Method::PUT | Method::POST) && live_path.is_some_and(|p| !p.contains('/'));
    let plain = matches!(method, Method::GET | Method::HEAD)
        && version == 1
        && (path.starts_with("/videos/") || (live.is_some() && !watch));
    if !(plain || watch || publish) {
        return None;
    }
    let mut builder = Request::builder().method(method).uri(path);
    let mut close = version == 0;
    let mut length = None;
    let mut chunked = false;
    let mut expect = false;
    for h in parsed.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            return None;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only chunked is understood (as the last coding); anything else is hyper's to refuse.
            let last = h.value.rsplit(|b| *b == b',').next().unwrap_or(b"");
            if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") || !publish {
                return None;
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
            if n != 0 && !publish {
                return None;
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("expect") {
            if !publish || !h.value.eq_ignore_ascii_case(b"100-continue") {
                return None;
            }
            expect = true;
        } else if name.eq_ignore_ascii_case("connection") {
            close |= h
                .value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        builder = builder.header(name, h.value);
    }
    let req = builder.body(()).ok()?;
    Some(if publish {
        let body = match (chunked, length) {
            (true, _) => RequestBody::chunked(),
            (false, Some(n)) => RequestBody::length(n),
            (false, None) => RequestBody::until_close(),
        };
        Ours::Publish(req, body, expect)
    } else if watch {
        Ours::Watch(req, version == 0, close)
    } else {
        Ours::Plain(req, close)
    })
}

/// A publisher: checks its key and the stream, then reads its body until it ends. Errors before
/// the body are answered without reading it (and the connection closed).
#[allow(clippy::too_many_arguments)]
async fn publish(
    mut stream: TcpStream,
    peer: SocketAddr,
    state: &Arc<State>,
    req: Request<()>,
    body: RequestBody,
    expect: bool,
    side: BytesMut,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut head = Vec::new();
    let name = live_name(&req);
    let key = live::presented_key(req.uri(), req.headers());
    let admitted = state
        .live
        .authorize(name, key.as_deref(), peer.ip())
        .and_then(|()| state.live.begin_publish(name, peer));
    let mut publish = match admitted {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(stream = name, %peer, error = %e, "publish refused");
            let resp = crate::http::error_response(e);
            return write_response(&mut stream, resp, false, true, state, &mut head).await;
        }
    };
    if expect {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let end = live::ingest(&mut stream, &mut publish, body, side, &state.live, shutdown).await;
    let s = publish.stream.clone();
    let refused = match &end {
        live::End::Refused(why) => Some(Error::BadIngest(why.clone())),
        _ => None,
    };
    let dropped = matches!(end, live::End::Dropped(_));
    publish.finish(end);
    if dropped {
        return Ok(());
    }
    let resp = match refused {
        Some(e) => crate::http::error_response(e),
        None => crate::http::json(http::StatusCode::OK, &state.live.doc(&s)),
    };
    write_response(&mut stream, resp, false, true, state, &mut head).await
}

/// Answers one request (on either path) and logs it at debug level.
fn answer<B>(state: &State, req: &Request<B>) -> Response<Chunks> {
    let resp = crate::http::handle(&state.library, &state.live, &state.config.policy, req);
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
    out.extend_from_slice(b"date: ");
    date::now(|d| out.extend_from_slice(d));
    out.extend_from_slice(b"\r\n");
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
    // A single range is two slices: they live on the stack, only multipart bodies allocate.
    let slices_iter = std::iter::once(&head[..]).chain(body.parts().map(|b| &b[..]));
    let mut on_stack = [IoSlice::new(&[]); 4];
    let mut on_heap: Vec<IoSlice<'_>>;
    let mut rest = if body.parts().count() < on_stack.len() {
        let mut n = 0;
        for (slot, s) in on_stack.iter_mut().zip(slices_iter) {
            *slot = IoSlice::new(s);
            n += 1;
        }
        &mut on_stack[..n]
    } else {
        on_heap = slices_iter.map(IoSlice::new).collect();
        &mut on_heap[..]
    };
    while !rest.is_empty() {
        let upto = rest.len().min(live::IOV_MAX);
        let n = stream.write_vectored(&rest[..upto]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// The `Date` header value, formatted once a second per thread (as nginx keeps `ngx_cached_http_time`).
pub(crate) mod date {
    use std::cell::RefCell;
    use std::io::Write as _;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
    }

    /// Calls `f` with the current HTTP date (IMF-fixdate, 29 bytes).
    pub(crate) fn now<R>(f: impl FnOnce(&[u8]) -> R) -> R {
        let t = SystemTime::now();
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHE.with_borrow_mut(|(at, text)| {
            if *at != secs {
                text.clear();
                let _ = write!(text, "{}", httpdate::HttpDate::from(t));
                *at = secs;
            }
            f(text)
        })
    }
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

#[cfg(test)]
mod tests {
    use super::date;
    use std::time::{Duration, SystemTime};

    #[test]
    fn cached_date_is_an_http_date_of_now_and_stays_put_within_the_second() {
        let text = date::now(|d| String::from_utf8(d.to_vec()).unwrap());
        assert_eq!(text.len(), 29, "{text}");
        let parsed = httpdate::parse_http_date(&text).unwrap();
        let now = SystemTime::now();
        let off = now.duration_since(parsed).unwrap_or_else(|e| e.duration());
        assert!(off <= Duration::from_secs(1), "{text} vs now");
        // Asked again at once, it is either the same text or the next second's.
        let again =
            date::now(|d| httpdate::parse_http_date(std::str::from_utf8(d).unwrap()).unwrap());
        assert!(again >= parsed && again <= parsed + Duration::from_secs(1));
    }
}
