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

pub(crate) mod handover;
mod head;
mod part;
mod write;

pub(crate) use write::render_head;

pub(crate) use crate::answer::{answer, refused_playlist, wait, with_cors};
use crate::body::Chunks;
use crate::clip::Clip;
use crate::error::Error;
use crate::http::Route;
use crate::live::{self, ingest::Ended};
use crate::state::State;
use crate::transport::Transport;
use ::http::{Method, Request, Response, StatusCode};
use bytes::{Buf, BytesMut};
use head::{Head, Kind, MAX_HEAD};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::Instant;

pub(crate) async fn connection(
    mut stream: Transport,
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
        let deadline = Instant::now() + state.config().header_read_timeout;
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
        // Parsed again only when a read brought a line end (a head ends with one): a client
        // sending its head a byte at a time costs a parse per line, not one per byte.
        let mut line_ended = true;
        let (head_len, kind) = loop {
            if line_ended || buf.len() >= MAX_HEAD {
                match head::parse(&buf) {
                    Head::Complete(n, kind) => break (n, kind),
                    Head::Partial if buf.len() < MAX_HEAD => {}
                    // Too large or malformed, on a listener that redirects to HTTPS: refused here
                    // (hyper could read a head this parser does not, and serve it in the clear).
                    _ if redirect_port(&state, &stream).is_some() => {
                        break (
                            0,
                            Some(Kind::Bad("a request head this server does not take")),
                        );
                    }
                    // Too large or malformed: hyper answers it properly (431/400).
                    _ => {
                        let read = buf.freeze();
                        let takeover =
                            handover::hyper_takeover(stream, peer, read, &state, shutdown, false);
                        return Box::pin(takeover).await;
                    }
                }
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(4096);
            }
            let read = tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf);
            match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(0)) | Err(_) => return Ok(()), // closed, or the header-read timeout
                Ok(Ok(n)) => {
                    let new = buf.len().saturating_sub(n);
                    line_ended = buf.get(new..).is_some_and(|b| b.contains(&b'\n'));
                }
                Ok(Err(e)) => return Err(e),
            }
        };
        let bad = matches!(kind, Some(Kind::Bad(_)));
        // The answers written here to a HEAD carry no body (RFC 9110 §9.3.2).
        let head_only = buf.starts_with(b"HEAD ");
        if let (Some(port), false) = (redirect_port(&state, &stream), bad) {
            match head::https_location(&buf[..head_len], port) {
                head::Redirect::To(to) => {
                    return Box::pin(redirect(stream, to, head_only, state)).await
                }
                head::Redirect::NoHost => {
                    let e = Error::BadRequest("a Host header is needed to redirect to HTTPS");
                    let c = &state.config();
                    let resp = e.response();
                    write::response(&mut stream, resp, head_only, true, c, &mut head).await?;
                    return Box::pin(lingering_close(stream)).await;
                }
                head::Redirect::Serve => {}
            }
        }
        let (req, close) = match kind {
            None => {
                let read = buf.freeze();
                // On a listener that redirects to HTTPS, hyper serves the one request this
                // head is (`/healthz`) and closes: the next is read here, and redirected.
                let one = redirect_port(&state, &stream).is_some();
                let takeover = handover::hyper_takeover(stream, peer, read, &state, shutdown, one);
                return Box::pin(takeover).await;
            }
            Some(Kind::Plain { req, close }) => (req, close),
            Some(Kind::Bad(why)) => {
                let resp = Error::BadRequest(why).response();
                let c = &state.config();
                write::response(&mut stream, resp, head_only, true, c, &mut head).await?;
                return Box::pin(lingering_close(stream)).await;
            }
            Some(Kind::Watch {
                name,
                output,
                http10,
                close,
                origin,
                target,
                token,
                via,
            }) => match watched(
                &state,
                &target,
                &name,
                token.as_deref(),
                via.as_deref(),
                output,
                (peer, stream.is_tls()),
            )
            .await
            {
                Ok((s, asked_before)) => {
                    drop(buf);
                    drop(head);
                    // Boxed, with what only a viewer needs: an idle connection stays small.
                    let w = async move {
                        let c = &state.config();
                        let query = target.split_once('?').map(|(_, q)| q);
                        let protocol = if stream.is_tls() { "https" } else { "http" };
                        let hook = crate::auth::hooks::Event::Play;
                        // Boxed: the callback's HTTP(S) client future would otherwise stay in
                        // every viewer's future for its whole life (docs/benchmarks.md §10).
                        // (Asked already when the request started a pull.)
                        let asked = match asked_before {
                            true => Ok(()),
                            false => {
                                Box::pin(crate::admit::hook(
                                    &state, hook, &name, peer, protocol, query,
                                ))
                                .await
                            }
                        };
                        if let Err(e) = asked {
                            let resp = with_cors(e.response(), c, origin.as_ref());
                            let mut head = Vec::new();
                            return write::response(&mut stream, resp, false, true, c, &mut head)
                                .await;
                        }
                        // DVR (`?t=-S`): where in the ring this viewer starts.
                        let dvr = crate::auth::query_param(query, "t")
                            .map(|t| state.dvr_start(&s, output, &t))
                            .transpose();
                        let start = match dvr {
                            Ok(start) => start,
                            Err(e) => {
                                let resp = with_cors(e.response(), c, origin.as_ref());
                                let mut head = Vec::new();
                                return write::response(
                                    &mut stream,
                                    resp,
                                    false,
                                    true,
                                    c,
                                    &mut head,
                                )
                                .await;
                            }
                        };
                        let cors = c.cors.lines(origin.as_ref());
                        let live = state.live.clone();
                        // On the fan-out workers (live::fanout), with the socket.
                        let viewer = async move {
                            let how = live::follow::Watching {
                                output,
                                chunked: !http10,
                                start,
                            };
                            live::watch_http(&mut stream, s, &live, how, &cors, shutdown).await
                        };
                        // Boxed: `run` holds its argument until it spawns it, and this
                        // future would otherwise keep room for a second copy of the viewer.
                        state.live.fanout.run(Box::pin(viewer)).await
                    };
                    return Box::pin(w).await;
                }
                Err(e) => {
                    let c = &state.config();
                    let resp = with_cors(e.response(), c, origin.as_ref());
                    drop((origin, name, target, token));
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
        let resp = match crate::http::route(req.method(), req.uri().path()) {
            // Boxed: the wait, the callback and the store's reads stay out of every
            // connection's future.
            Some(r) if r.waits() || crate::http::loads_first(&state, r, &req) => {
                match Box::pin(waiting(&mut stream, &state, &req, r, peer, close)).await? {
                    Some(resp) => resp,
                    // A part streamed while it was written (part.rs).
                    None if close => return Ok(()),
                    None => {
                        buf.advance(head_len);
                        continue;
                    }
                }
            }
            _ => answer(&state, &req, stream.is_tls()),
        };
        let head_only = req.method() == Method::HEAD;
        let c = &state.config();
        write::response(&mut stream, resp, head_only, close, c, &mut head).await?;
        if close {
            return Ok(());
        }
        buf.advance(head_len);
    }
}

/// Plain HTTP redirected to HTTPS (`redirect_http`): a 308 to `to`, and the connection closed.
async fn redirect(
    mut stream: Transport,
    to: String,
    head_only: bool,
    state: Arc<State>,
) -> io::Result<()> {
    let resp = crate::response::redirect(&to);
    let mut head = Vec::new();
    write::response(
        &mut stream,
        resp,
        head_only,
        true,
        &state.config(),
        &mut head,
    )
    .await?;
    lingering_close(stream).await
}

/// A request that may wait (see [`Route::waits`]): a playlist waits for a first segment of a
/// stream that just started, an LL-HLS playlist or part as long as [`crate::http::llhls::hold`]
/// says; a playlist asks the `on_play` callback (when there is one); then it is answered.
async fn playlist(
    state: &State,
    req: &Request<()>,
    route: Route<'_>,
    peer: SocketAddr,
    secure: bool,
) -> Waited {
    let streamed = crate::http::llhls::streamable(route, req);
    let came = state.live.ntp(state.live.now());
    let asked = match wait(state, req, route, streamed.is_some(), (peer, secure)).await {
        Ok(asked) => asked,
        Err(refused) => return Waited::Answer(refused),
    };
    // A part still being written: its fragments as they arrive (part.rs).
    if let Some(mut f) = streamed.and_then(|(at, what)| state.live.follow(at.name, at.tag, what)) {
        f.count_after(came);
        return Waited::Follow(f);
    }
    // (Asked already when the request started a pull on an edge.)
    let refused = match asked {
        true => None,
        false => refused_playlist(state, req, peer, secure).await,
    };
    Waited::Answer(refused.unwrap_or_else(|| answer(state, req, secure)))
}

/// A request that may wait, or whose answer needs a title's packaging read from its store
/// ([`crate::http::loads_first`]): its answer, or `None` when it was a part written as it
/// arrived.
async fn waiting(
    stream: &mut Transport,
    state: &State,
    req: &Request<()>,
    route: Route<'_>,
    peer: SocketAddr,
    close: bool,
) -> io::Result<Option<Response<Chunks>>> {
    if !route.waits() {
        // A clip, playlist or segment of a title in object storage, read from it first.
        let (secure, resp) = (stream.is_tls(), answer(state, req, stream.is_tls()));
        return Ok(Some(
            crate::answer::after_loading(state, req, secure, resp).await,
        ));
    }
    match playlist(state, req, route, peer, stream.is_tls()).await {
        Waited::Answer(resp) => Ok(Some(resp)),
        Waited::Follow(mut f) => {
            // Nothing written yet: a part that cannot be followed is still answered (404).
            let first = match f.next().await {
                Ok(Some(first)) => first,
                Ok(None) | Err(_) => return Ok(Some(answer(state, req, stream.is_tls()))),
            };
            let headers = crate::http::streamed_headers(state, req, stream.is_tls());
            // Boxed: only a part being written needs its state.
            let written = part::write(stream, f, first, headers, close, &state.live);
            if let Err(e) = Box::pin(written).await {
                // Stalled, or not sent within the limit: what the kernel holds is dropped.
                if e.kind() == io::ErrorKind::TimedOut {
                    write::reset_on_close(stream.tcp());
                }
                return Err(e);
            }
            Ok(None)
        }
    }
}

/// What a request that waited gets.
enum Waited {
    Answer(Response<Chunks>),
    Follow(crate::live::llhls::PartFollow),
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
    mut stream: Transport,
    state: &Arc<State>,
    p: Publisher,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut head = Vec::new();
    let c = &state.config();
    let key = live::presented_key(p.req.uri(), p.req.headers());
    let token = crate::auth::token(p.req.uri(), p.req.headers());
    let presented = crate::auth::Presented {
        key: key.as_deref(),
        token: token.as_deref(),
    };
    let protocol = if stream.is_tls() { "https" } else { "http" };
    let checked = crate::admit::publisher(state, &p.name, presented, p.peer);
    let hooked = match checked {
        Ok(()) => {
            let (event, query) = (crate::auth::hooks::Event::Publish, p.req.uri().query());
            crate::admit::hook(state, event, &p.name, p.peer, protocol, query).await
        }
        Err(e) => Err(e),
    };
    let admitted = hooked.and_then(|()| state.live.begin_publish(&p.name, p.peer));
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
        let write = async {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            stream.flush().await
        };
        let sent = match tokio::time::timeout(c.send_timeout, write).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "100 Continue not taken",
            )),
        };
        if let Err(e) = sent {
            // Admitted: its session ends as any other, and `on_unpublish` is told.
            publish.finish(::live::End::Dropped(e.to_string()));
            crate::admit::unpublished(state, &p.name, p.peer, protocol);
            return Ok(());
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
    crate::admit::unpublished(state, &p.name, p.peer, protocol);
    let resp = match ended {
        // Nobody to answer.
        Ended::Dropped(_) => return Ok(()),
        Ended::Refused(e) => Error::BadIngest(e).response(),
        Ended::Clean => crate::http::json(
            StatusCode::OK,
            &live::api::doc(&state.live, &s, live::api::Addresses::Shown),
        ),
    };
    let resp = with_cors(resp, c, origin.as_ref());
    write::response(&mut stream, resp, false, true, c, &mut head).await?;
    lingering_close(stream).await
}

/// Closes a publisher's connection whose body may not have been read to its end. Closing a socket
/// with unread bytes makes the kernel answer with a reset, and the client then loses the response
/// it has not read yet (the refusal and its reason). So: end our side, then read and discard what
/// the client still sends, for at most a second and 1 MiB (nginx's "lingering close").
async fn lingering_close(mut stream: Transport) -> io::Result<()> {
    use tokio::io::AsyncReadExt;
    // TLS: the shutdown flushes rustls and sends close_notify; a client that reads nothing
    // is not waited for.
    match tokio::time::timeout(std::time::Duration::from_secs(1), stream.shutdown()).await {
        Ok(r) => r?,
        Err(_) => {
            write::reset_on_close(stream.tcp());
            return Ok(());
        }
    }
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

/// The HTTPS port plain HTTP redirects to, when it does (`redirect_http`).
fn redirect_port(state: &State, stream: &Transport) -> Option<u16> {
    let tls = state.tls.as_ref().filter(|t| t.config.redirect_http)?;
    match stream.is_tls() {
        true => None,
        false => tls.https_port,
    }
}

/// The stream a `.ts`/`.flv`/`.mp4` viewer asks for, once its link and credentials pass (pulled
/// from the origins first on an edge, after the `on_play` callback: `true` when it was asked).
async fn watched(
    state: &State,
    target: &str,
    name: &str,
    token: Option<&str>,
    via: Option<&str>,
    output: crate::live::Output,
    (peer, tls): (SocketAddr, bool),
) -> Result<(Arc<crate::live::Stream>, bool), Error> {
    watch_link(state, target).and_then(|()| crate::admit::viewer(state, name, token))?;
    let query = target.split_once('?').map(|(_, q)| q);
    let protocol = if tls { "https" } else { "http" };
    let asked = Box::pin(crate::admit::before_pull(
        state, name, peer, protocol, query,
    ))
    .await?;
    crate::admit::pulled(state, name, via).await?;
    state.live.watchable(name, output).map(|s| (s, asked))
}

/// A viewer's signed link (`auth::signed`), when its path needs one.
fn watch_link(state: &State, target: &str) -> Result<(), Error> {
    let Ok(req) = Request::get(target).body(()) else {
        return Err(Error::NoRoute);
    };
    crate::http::signed_link(&state.config(), &req).map(|_| ())
}

/// The request-head parser and route classifier over arbitrary bytes (the `http_head` fuzz
/// target's entry point, through [`crate::fuzzing`]).
pub(crate) fn fuzz_head(buf: &[u8]) {
    let _ = head::parse(buf);
}
