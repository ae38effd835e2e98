//! The HTTP/1.1 connection loop, with a fast path for video bytes and the live routes.
//!
//! Why not hyper alone: hyper writes bodies from memory (`writev`), and cannot `sendfile`
//! (hyper#3026). For large ranges the kernel's copy of our bytes into socket buffers is two thirds
//! of the server's CPU (`docs/benchmarks.md`); `sendfile` from the title's sealed memfd hands the
//! pages to the socket without that copy. So this loop reads request heads itself (head.rs),
//! answers them with the same [`http::handle`](crate::http::handle) as everything else (one
//! decision, one renderer), and writes them (write.rs).
//!
//! It also owns the two long-lived live requests, which hyper's request/response model does not
//! fit: `PUT|POST /live/{name}` (the body is read straight into ingest slabs, live/ingest.rs) and
//! `GET /live/{name}.ts|.flv` (the viewer loop writing batches from the ring, live/follow.rs).
//!
//! Any request it does not handle hands the connection to hyper (handover.rs), replaying the
//! bytes already read, and hyper serves that request and the rest of the connection.

mod handover;
mod head;
mod write;

pub(crate) use write::render_head;

use crate::body::Chunks;
use crate::clip::Clip;
use crate::error::Error;
use crate::http::Route;
use crate::live::{self, ingest::Ended};
use crate::state::State;
use ::http::{Method, Request, Response, StatusCode};
use bytes::{Buf, BytesMut};
use head::{Head, Kind, MAX_HEAD};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a playlist request waits for the first segment of a stream that just started.
const FIRST_SEGMENT_WAIT: Duration = Duration::from_secs(10);

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
        let (head_len, kind) = loop {
            match head::parse(&buf) {
                Head::Complete(n, kind) => break (n, kind),
                Head::Partial if buf.len() < MAX_HEAD => {}
                // Too large or malformed: hyper answers it properly (431/400).
                _ => {
                    let read = buf.freeze();
                    return Box::pin(handover::hyper_takeover(stream, read, &state, shutdown))
                        .await;
                }
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
        let (req, close) = match kind {
            None => {
                let read = buf.freeze();
                return Box::pin(handover::hyper_takeover(stream, read, &state, shutdown)).await;
            }
            Some(Kind::Plain { req, close }) => (req, close),
            Some(Kind::Bad(why)) => {
                let resp = Error::BadRequest(why).response();
                let c = &state.config;
                write::response(&mut stream, resp, false, true, c, &mut head).await?;
                return Box::pin(lingering_close(stream)).await;
            }
            Some(Kind::Watch {
                name,
                output,
                http10,
                close,
                origin,
                target,
            }) => match watch_link(&state, &target)
                .and_then(|()| state.live.watchable(&name, output))
            {
                Ok(s) => {
                    drop(buf);
                    drop(head);
                    // Boxed, with what only a viewer needs: an idle connection stays small.
                    let w = async move {
                        let cors = state.config.cors.lines(origin.as_ref());
                        let live = &state.live;
                        live::watch_http(&mut stream, s, live, output, !http10, &cors, shutdown)
                            .await
                    };
                    return Box::pin(w).await;
                }
                Err(e) => {
                    let c = &state.config;
                    let resp = with_cors(e.response(), c, origin.as_ref());
                    drop((origin, name, target));
                    write::response(&mut stream, resp, false, close, c, &mut head).await?;
                    if close {
                        return Ok(());
                    }
                    buf.advance(head_len);
                    continue;
                }
            },
            Some(Kind::Publish {
                req,
                name,
                body,
                expect,
            }) => {
                buf.advance(head_len);
                let p = Publisher {
                    peer,
                    req,
                    name,
                    body,
                    expect,
                    side: buf,
                };
                return Box::pin(publish(stream, &state, p, shutdown)).await;
            }
        };
        if let Some(Route::Playlist(name)) = crate::http::route(req.method(), req.uri().path()) {
            Box::pin(state.live.wait_for_segment(name, FIRST_SEGMENT_WAIT)).await;
        }
        let resp = answer(&state, &req);
        let head_only = req.method() == Method::HEAD;
        let c = &state.config;
        write::response(&mut stream, resp, head_only, close, c, &mut head).await?;
        if close {
            return Ok(());
        }
        buf.advance(head_len);
    }
}

/// A publisher's request, as the head was sorted.
struct Publisher {
    peer: SocketAddr,
    req: Request<()>,
    name: String,
    body: ::live::RequestBody,
    expect: bool,
    /// Body bytes that came with the head.
    side: BytesMut,
}

/// A publisher: checks its key and the stream, then reads its body until it ends. Errors before
/// the body are answered without reading it (and the connection closed).
async fn publish(
    mut stream: TcpStream,
    state: &Arc<State>,
    p: Publisher,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut head = Vec::new();
    let c = &state.config;
    let key = live::presented_key(p.req.uri(), p.req.headers());
    let admitted = state
        .live
        .authorize(&p.name, key.as_deref(), p.peer.ip())
        .and_then(|()| state.live.begin_publish(&p.name, p.peer));
    let origin = p.req.headers().get(::http::header::ORIGIN).cloned();
    let mut publish = match admitted {
        Ok(publish) => publish,
        Err(e) => {
            tracing::info!(stream = %Clip(&p.name), peer = %p.peer, error = %e, "publish refused");
            let resp = with_cors(e.response(), c, origin.as_ref());
            write::response(&mut stream, resp, false, true, c, &mut head).await?;
            return lingering_close(stream).await;
        }
    };
    if p.expect {
        let write = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        match tokio::time::timeout(c.send_timeout, write).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        }
    }
    let ended = live::ingest::ingest(
        &mut stream,
        &mut publish,
        p.body,
        p.side,
        &state.live,
        shutdown,
    )
    .await;
    let s = publish.stream.clone();
    publish.finish(ended.end());
    let resp = match ended {
        // Nobody to answer.
        Ended::Dropped(_) => return Ok(()),
        Ended::Refused(e) => Error::BadIngest(e).response(),
        Ended::Clean => crate::http::json(StatusCode::OK, &live::api::doc(&state.live, &s)),
    };
    let resp = with_cors(resp, c, origin.as_ref());
    write::response(&mut stream, resp, false, true, c, &mut head).await?;
    lingering_close(stream).await
}

/// Closes a publisher's connection whose body may not have been read to its end. Closing a socket
/// with unread bytes makes the kernel answer with a reset, and the client then loses the response
/// it has not read yet (the refusal and its reason). So: end our side, then read and discard what
/// the client still sends, for at most a second and 1 MiB (nginx's "lingering close").
async fn lingering_close(mut stream: TcpStream) -> io::Result<()> {
    use tokio::io::AsyncReadExt;
    stream.shutdown().await?;
    let mut sink = [0u8; 16 << 10];
    let mut left: usize = 1 << 20;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    while left > 0 {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => break,
        }
    }
    Ok(())
}

/// A viewer's signed link (`auth::signed`), when its path needs one.
fn watch_link(state: &State, target: &str) -> Result<(), Error> {
    let Ok(req) = Request::get(target).body(()) else {
        return Err(Error::NoRoute);
    };
    crate::http::signed_link(state, &req).map(|_| ())
}

/// A response answered outside `http::handle` (a refused viewer or publisher), with the CORS
/// headers for the request's origin. (A function of its own: a local borrowed in an async fn
/// stays in its future across later awaits.)
fn with_cors(
    mut resp: Response<Chunks>,
    c: &crate::config::Config,
    origin: Option<&::http::HeaderValue>,
) -> Response<Chunks> {
    c.cors.apply(origin, resp.headers_mut());
    resp
}

/// Answers one request (on either path) and logs it at debug level.
fn answer<B>(state: &State, req: &Request<B>) -> Response<Chunks> {
    let resp = crate::http::handle(state, req);
    let uri = req.uri().path_and_query().map_or("", |p| p.as_str());
    tracing::debug!(method = %Clip(req.method().as_str()), uri = %Clip(uri), status = resp.status().as_u16(), "request");
    resp
}

/// The request-head parser and route classifier over arbitrary bytes (the `http_head` fuzz
/// target's entry point, through [`crate::fuzzing`]).
pub(crate) fn fuzz_head(buf: &[u8]) {
    let _ = head::parse(buf);
}
