//! Writes a response on the fast path: the head rendered into a reused buffer, then the body as
//! `sendfile` from the entity's file (large single-part bodies: the kernel hands the pages to the
//! socket without a copy) or in one `writev` with the head (everything else).
//!
//! Every write must take some bytes within `Config::send_timeout`: a client that stops reading
//! is reset (`SO_LINGER` 0, so the kernel drops what it still holds for it at once) instead of
//! holding its descriptor and socket buffers for as long as it likes.

use crate::body::Chunks;
use crate::config::Config;
use crate::date;
use crate::transport::Transport;
use crate::vectored;
use bytes::Bytes;
use http::Response;
use std::future::Future;
use std::io::{self, IoSlice};
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long writes may take: each must take some bytes within `each` (`send_timeout`), and
/// none may end after `by` (a live segment's [`SendBy`](crate::response::SendBy)).
#[derive(Debug, Clone, Copy)]
struct Limit {
    each: Duration,
    by: Option<Instant>,
}

impl Limit {
    /// When the next write must have taken some bytes.
    fn next(&self) -> Instant {
        let at = Instant::now() + self.each;
        self.by.map_or(at, |by| at.min(by))
    }
}

/// Renders a response head (status line, headers, `Date`, `Connection: close` when closing).
pub(crate) fn render_head(resp: &Response<Chunks>, close: bool, out: &mut Vec<u8>) {
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

/// Writes a response. `head` is the connection's reused head buffer; bodies of at least
/// `sendfile_min` that live in a file go out with `sendfile`. A write that takes nothing within
/// `send_timeout` fails with `TimedOut`, as does one still going at the response's
/// [`SendBy`](crate::response::SendBy) (a live segment); the connection is then reset when it
/// is dropped.
pub(super) async fn response(
    stream: &mut Transport,
    resp: Response<Chunks>,
    head_only: bool,
    close: bool,
    config: &Config,
    head: &mut Vec<u8>,
) -> io::Result<()> {
    let r = respond(stream, resp, head_only, close, config, head).await;
    if matches!(&r, Err(e) if e.kind() == io::ErrorKind::TimedOut) {
        tracing::debug!(
            timeout = ?config.send_timeout,
            "the client took nothing, or too little for a live segment's limit; connection reset"
        );
        reset_on_close(stream.tcp());
    }
    r
}

/// Makes the socket's close a reset (`SO_LINGER` 0): what the kernel still holds for a client that
/// stopped reading is dropped at once rather than kept until the client reads or TCP gives up.
pub(crate) fn reset_on_close(stream: &TcpStream) {
    let _ = rustix::net::sockopt::set_socket_linger(stream, Some(Duration::ZERO));
}

/// The head and what precedes the file's part of the body (a clip's or segment's written head),
/// each with `MSG_MORE` so the kernel sends them with the first body segment, then the rest of
/// the body with `sendfile` from the entity's file; each call must take some bytes by
/// `limit`.
async fn sendfile(
    stream: &TcpStream,
    pieces: &[&[u8]],
    src: &crate::body::FileSource,
    mapped: Option<&crate::truncated::Mapped>,
    limit: Limit,
) -> io::Result<()> {
    // (What `sendfile` sends is read from the file, never from the mapping.)
    let mapped = mapped.filter(|m| pieces.iter().any(|p| m.locate(p).is_some()));
    for piece in pieces {
        match mapped.and_then(|m| m.locate(piece)) {
            // A range of the mapped title before the last (a clip of tracks not interleaved):
            // read in off the worker too, a stretch at a time.
            Some((file, at)) => {
                let stretch = crate::pagein::STRETCH as usize;
                for (n, part) in piece.chunks(stretch).enumerate() {
                    let from = at + (n * stretch) as u64;
                    crate::pagein::ensure(file, from, part.len() as u64).await;
                    send(stream, part, rustix::net::SendFlags::MORE, limit).await?;
                }
            }
            None => send(stream, piece, rustix::net::SendFlags::MORE, limit).await?,
        }
    }
    let mut offset = src.offset;
    let end = src.offset + src.len;
    // Pieces sent from the mapping: its last byte only once they are known not to have been
    // zeros of a page cut off (truncated.rs).
    let held = end - u64::from(mapped.is_some() && src.len > 0);
    sendfile_to(stream, src, &mut offset, held, limit).await?;
    if mapped.is_some_and(|m| m.cut()) {
        return Err(cut_short());
    }
    sendfile_to(stream, src, &mut offset, end, limit).await
}

/// `src.file` from `offset` to `end`, with `sendfile`.
async fn sendfile_to(
    stream: &TcpStream,
    src: &crate::body::FileSource,
    offset: &mut u64,
    end: u64,
    limit: Limit,
) -> io::Result<()> {
    while *offset < end {
        let mut want = (end - *offset).min(1 << 30);
        if src.on_disk {
            // Its pages read in off the worker first, a stretch at a time (`pagein`).
            want = want.min(crate::pagein::STRETCH);
            crate::pagein::ensure(&src.file, *offset, want).await;
        }
        let want = want as usize;
        let write = stream.async_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(&*stream, &*src.file, Some(&mut *offset), want)
                .map_err(io::Error::from)
        });
        let n = within(limit, write).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "title file shorter than its index",
            ));
        }
    }
    Ok(())
}

/// All of `piece`, with `flags` (`MSG_MORE`: more follows at once); each call must take some
/// bytes by `limit`.
async fn send(
    stream: &TcpStream,
    piece: &[u8],
    flags: rustix::net::SendFlags,
    limit: Limit,
) -> io::Result<()> {
    let mut sent = 0;
    while sent < piece.len() {
        let write = stream.async_io(Interest::WRITABLE, || {
            rustix::net::send(stream, &piece[sent..], flags).map_err(io::Error::from)
        });
        sent += within(limit, write).await?;
    }
    Ok(())
}

/// A response with a body in object storage: its first block is fetched before the head, so
/// that a store that cannot be read gives an error status (502/504) rather than a cut body.
async fn stored(
    stream: &mut Transport,
    mut resp: Response<Chunks>,
    close: bool,
    config: &Config,
    head: &mut Vec<u8>,
) -> io::Result<()> {
    let arena = resp.body().arena();
    if let Err(e) = resp.body_mut().prime().await {
        let mut refused = crate::error::Error::Store(e).response();
        // The CORS answer the title's response had (a browser player reads why it failed).
        for (k, v) in resp.headers() {
            if k.as_str().starts_with("access-control-") || k == http::header::VARY {
                refused.headers_mut().append(k.clone(), v.clone());
            }
        }
        return Box::pin(respond(stream, refused, false, close, config, head)).await;
    }
    render_head(&resp, close, head);
    let to = Sink {
        limit: Limit {
            each: config.send_timeout,
            by: None,
        },
        arena,
        sendfile_min: config.policy.sendfile_min,
    };
    remote(stream, head, resp.into_body(), &to).await
}

/// How a stored body is written: blocks (or their slices) in the cache's arena of at least
/// `sendfile_min` (as for local titles: 1 MiB unless configured; a whole block of the default
/// size, not the partial blocks at a range's ends, which `writev` sends as cheaply) go
/// out with `sendfile` where the transport allows it, the rest with `writev`.
struct Sink {
    limit: Limit,
    arena: Option<std::sync::Arc<crate::store::Arena>>,
    sendfile_min: u64,
}

impl Sink {
    /// Where `b` is in the arena's file, when it is to be sent from there.
    fn located(&self, b: &[u8]) -> Option<crate::body::FileSource> {
        let a = self
            .arena
            .as_ref()
            .filter(|_| b.len() as u64 >= self.sendfile_min)?;
        Some(crate::body::FileSource {
            file: a.file().clone(),
            offset: a.locate(b)?,
            len: b.len() as u64,
            on_disk: false,
        })
    }

    /// `head` (if still to send) and `frames`: each block in the arena with `sendfile`, what
    /// comes between with `MSG_MORE` before it, what is left after the last at the end.
    async fn blocks(
        &self,
        sock: &TcpStream,
        head: Option<&[u8]>,
        frames: &[Bytes],
    ) -> io::Result<()> {
        let mut pieces: Vec<&[u8]> = head.into_iter().collect();
        for b in frames {
            match self.located(b) {
                Some(src) => {
                    sendfile(sock, &pieces, &src, None, self.limit).await?;
                    pieces.clear();
                    if let Some(a) = &self.arena {
                        a.sent
                            .fetch_add(src.len, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                None => pieces.push(b),
            }
        }
        for (i, piece) in pieces.iter().enumerate() {
            let more = if i + 1 < pieces.len() {
                rustix::net::SendFlags::MORE
            } else {
                rustix::net::SendFlags::empty()
            };
            send(sock, piece, more, self.limit).await?;
        }
        Ok(())
    }
}

/// A body with parts in object storage: the head with what is ready, then the rest as blocks
/// come (slices of the cached blocks); blocks already held go out together, in one `writev`.
/// A fetch that fails ends the connection mid-body.
async fn remote(
    stream: &mut Transport,
    head: &[u8],
    mut body: Chunks,
    to: &Sink,
) -> io::Result<()> {
    use http_body_util::BodyExt;
    let deadline = |_| Some(to.limit.next());
    let mut head = Some(head);
    let mut ready: Vec<Bytes> = Vec::with_capacity(READY_FRAMES);
    loop {
        // What is ready now (held blocks, part headers); else wait for the next block.
        while ready.len() < READY_FRAMES {
            match ready_frame(&mut body) {
                Some(Some(frame)) => ready.extend(frame?.into_data().ok()),
                Some(None) | None => break,
            }
        }
        if ready.is_empty() {
            match body.frame().await {
                Some(frame) => ready.extend(frame?.into_data().ok()),
                None => break,
            }
        }
        if ready.iter().any(|b| to.located(b).is_some()) {
            if let Some(sock) = stream.sendfile_socket() {
                to.blocks(sock, head.take(), &ready).await?;
                ready.clear();
                continue;
            }
        }
        let mut slices: Vec<IoSlice<'_>> = head.take().map(IoSlice::new).into_iter().collect();
        slices.extend(ready.iter().map(|b| IoSlice::new(b)));
        vectored::write_all(stream, &mut slices, deadline).await?;
        ready.clear();
    }
    if let Some(h) = head {
        vectored::write_all(stream, &mut [IoSlice::new(h)], deadline).await?;
    }
    Ok(())
}

/// Most body frames gathered into one `writev` of a stored title's blocks.
const READY_FRAMES: usize = 16;

/// The body's next frame if it is ready without waiting (`Some(None)`: the end; `None`: not
/// yet, a block is being fetched: the fetch is started and the next await picks it up).
fn ready_frame(body: &mut Chunks) -> Option<Option<io::Result<http_body::Frame<Bytes>>>> {
    use http_body::Body;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::Pin::new(body).poll_frame(&mut cx) {
        std::task::Poll::Ready(f) => Some(f),
        std::task::Poll::Pending => None,
    }
}

/// One write (or a `write_all` of a small head) that must take some bytes by `limit`.
async fn within<T>(limit: Limit, write: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match tokio::time::timeout_at(limit.next(), write).await {
        Ok(r) => r,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

async fn respond(
    stream: &mut Transport,
    mut resp: Response<Chunks>,
    head_only: bool,
    close: bool,
    config: &Config,
    head: &mut Vec<u8>,
) -> io::Result<()> {
    let limit = Limit {
        each: config.send_timeout,
        by: crate::response::SendBy::of(&resp),
    };
    if !head_only && resp.body().is_remote() {
        // Boxed: it would otherwise grow every connection's future (see lib.rs).
        return Box::pin(stored(stream, resp, close, config, head)).await;
    }
    render_head(&resp, close, head);
    // Read from a mapping of a title's file: checked before its last byte (truncated.rs).
    // (Boxed: it lives across the awaits below, in every connection's future.)
    let mapped = resp
        .extensions_mut()
        .remove::<crate::truncated::Mapped>()
        .map(Box::new);
    let body = resp.into_body();
    // (Not for what holds none of the title's bytes: a playlist, an init segment.)
    let mapped = mapped.filter(|m| body.parts().any(|p| m.locate(p).is_some()));
    if head_only {
        let mut only = [IoSlice::new(head)];
        let deadline = |_| Some(limit.next());
        return Box::pin(vectored::write_all(stream, &mut only, deadline)).await;
    }
    let sendfile_min = config.policy.sendfile_min;
    if let Some(src) = body.file().filter(|f| f.len >= sendfile_min) {
        if let Some(sock) = stream.sendfile_socket() {
            // What comes before the file's part of the body (a clip's or segment's written head)
            // goes out after the response head, from where it is: container structure.
            let mut pieces: Vec<&[u8]> = vec![&head[..]];
            let mut before = body.len() - src.len;
            for part in body.parts() {
                if before == 0 {
                    break;
                }
                let n = (part.len() as u64).min(before) as usize;
                pieces.push(&part[..n]);
                before -= n as u64;
            }
            // Boxed: its timed waits would otherwise grow every connection's future (see lib.rs).
            let r = Box::pin(sendfile(sock, &pieces, src, mapped.as_deref(), limit)).await;
            return r;
        }
    }
    if let Some(mapped) = mapped.as_deref().filter(|_| !body.is_empty()) {
        // From a title mapped from disk (TLS, or under `sendfile_min`): written a stretch at a
        // time, each read in off the worker first (`pagein`), its last byte held back until
        // the file is known not to have been cut short under the copy.
        return Box::pin(paged(stream, head, &body, mapped, limit)).await;
    }
    // One writev of the head and every body frame; partial writes resume where they stopped.
    // A single range is two slices: they live on the stack, only multipart bodies allocate.
    let slices_iter = std::iter::once(&head[..]).chain(body.parts().map(|b| &b[..]));
    let mut on_stack = [IoSlice::new(&[]); 4];
    let mut on_heap: Vec<IoSlice<'_>>;
    let rest = if body.parts().count() < on_stack.len() {
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
    vectored::write_all(stream, rest, |_| Some(limit.next())).await
}

/// `head` and `body` (not empty), some of it read from a mapping of a title's file (all of it,
/// or what follows a clip's or segment's head; one range or several): written in windows a
/// [`crate::pagein::STRETCH`] long, the pages of each that lie in the mapping read in off the
/// worker before it is written. Its last byte goes out
/// once the rest was copied from a file that was not cut short meanwhile: where the copy is
/// ours (TLS) or the kernel's from a page already replaced by zeros (truncated.rs), a response
/// that would carry them is cut short instead.
async fn paged(
    stream: &mut Transport,
    head: &[u8],
    body: &Chunks,
    mapped: &crate::truncated::Mapped,
    limit: Limit,
) -> io::Result<()> {
    let total = body.len();
    let held = total - 1;
    let mut from = 0;
    let mut first = true;
    while first || from < held {
        let to = (from + crate::pagein::STRETCH).min(held);
        let window = |to: u64| {
            let mut at = 0;
            body.parts().filter_map(move |part| {
                let (start, end) = (at, at + part.len() as u64);
                at = end;
                if end <= from || start >= to {
                    return None;
                }
                let lo = (from.max(start) - start) as usize;
                let hi = (to.min(end) - start) as usize;
                Some(&part[lo..hi])
            })
        };
        // The last window's pages with its held byte.
        for piece in window(if to == held { total } else { to }) {
            if let Some((file, at)) = mapped.locate(piece) {
                crate::pagein::ensure(file, at, piece.len() as u64).await;
            }
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::new();
        if first {
            slices.push(IoSlice::new(head));
        }
        slices.extend(window(to).map(IoSlice::new));
        vectored::write_all(stream, &mut slices, |_| Some(limit.next())).await?;
        first = false;
        from = to;
    }
    // Read before the check (a byte read after it could be a zero the check did not see).
    let last = body.parts().filter(|p| !p.is_empty()).last();
    let last = [last.and_then(|p| p.last().copied()).unwrap_or(0)];
    if mapped.cut() {
        return Err(cut_short());
    }
    vectored::write_all(stream, &mut [IoSlice::new(&last)], |_| Some(limit.next())).await
}

fn cut_short() -> io::Error {
    io::Error::other("the title's file was cut short while it was sent")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn a_head_has_the_status_line_headers_date_and_close_when_closing() {
        let mut resp = Response::new(Chunks::empty());
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        resp.headers_mut()
            .insert(http::header::CONTENT_LENGTH, 5.into());
        let mut out = Vec::new();
        render_head(&resp, true, &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "HTTP/1.1 206 Partial Content");
        assert_eq!(lines[1], "content-length: 5");
        assert!(
            lines[2].starts_with("date: ") && lines[2].len() == 6 + 29,
            "{text}"
        );
        assert_eq!(&lines[3..], ["connection: close", "", ""]);
    }
}
