//! RTMP and RTMPS connections: the tokio shell around our sans-I/O RTMP core (the `rtmp` crate),
//! beside h1/ and h2.rs (it admits publishers and players with the same rules and callbacks,
//! `admit.rs`). The socket is read
//! into a `BytesMut` that goes to the handshake, then to the session; what they answer is
//! written back; their events are decided here with the same rules as HTTP ingest. What a
//! publisher sends goes to [`Publish::tag`] (serialised once per output there); a player is
//! handed to the viewer loop (follow.rs) once its `play` is accepted.
//!
//! Zero-copy: each read lands in the free tail of the read buffer; a media message that came in
//! one chunk reaches `Publish::tag` as a slice of that buffer, a longer one after the chunk
//! reader's one reassembly copy (invariant 7). Commands may be pipelined (ffmpeg sends
//! `releaseStream`, `FCPublish` and `createStream` without waiting): the session raises one event
//! at a time and each is answered before the next message is read.
//!
//! Stream names and keys: `rtmp://host/live/NAME?key=SECRET` (what OBS users type as the stream
//! key `NAME?key=SECRET`); the same keys, one-publisher rule and reconnect grace as HTTP ingest.

use crate::error::{ConnError, Error, IngestError};
use crate::live::{follow, query_key, Live, Output, Publish, Stream};
use crate::transport::Transport;
use bytes::BytesMut;
use live::outputs::{RTMP_CHUNK_SIZE, RTMP_PLAY_STREAM_ID};
use live::{End, RateLimit};
use rtmp::{Event, Handshake, Request};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// A connection must finish the handshake and ask to publish or play within this time.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Each read asks for at least this much free space in the read buffer.
const READ_SIZE: usize = 64 << 10;

/// Serves one RTMP connection until it ends.
pub(crate) async fn connection(
    mut sock: Transport,
    peer: SocketAddr,
    server: Arc<crate::state::State>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnError> {
    let live = server.live.clone();
    let protocol = if sock.is_tls() { "rtmps" } else { "rtmp" };
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    tokio::time::timeout(SETUP_TIMEOUT, handshake(&mut sock, &mut buf, &live))
        .await
        .map_err(|_| ConnError::Timeout("no complete RTMP handshake within 10 s"))??;
    let config = rtmp::Config {
        chunk_size: RTMP_CHUNK_SIZE,
        ..rtmp::Config::default()
    };
    let mut state = Session {
        rtmp: rtmp::Session::new(config),
        peer,
        live,
        server,
        protocol,
        publish: None,
        refused: None,
        play: None,
        finished: false,
        pending: None,
        published: None,
        again: false,
    };
    let setup_deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
    // Once publishing: the control API's kicks, the ingest rate limit and what it counts.
    let mut kicks: Option<watch::Receiver<u64>> = None;
    let mut rate: Option<RateLimit> = None;
    let mut published: u64 = 0;
    let play = loop {
        // A publish or play whose credentials passed, waiting on its callback.
        if let Some(p) = state.pending.take() {
            state.resolve(p).await;
        }
        // The bytes that came after the handshake, then each read.
        let events = state.input(&mut buf);
        let out = state.rtmp.take_output();
        if !out.is_empty() {
            // A peer that does not read its answers is not waited for: during setup, past the
            // setup deadline; publishing, past the viewers' stall timeout.
            let limit = match &state.publish {
                Some(_) => state.live.config.stall_timeout,
                None => setup_deadline.saturating_duration_since(tokio::time::Instant::now()),
            };
            let write = async {
                sock.write_all(&out).await?;
                sock.flush().await?;
                sock.flush().await
            };
            match tokio::time::timeout(limit, write).await {
                Ok(written) => written?,
                Err(_) => {
                    state.drop_publisher("took none of its answers");
                    return Err(ConnError::Timeout("the peer took none of its answers"));
                }
            }
        }
        if let Err(e) = events {
            // Bad input from a publisher ends its stream now (no grace: it would send the same).
            if let Some(p) = state.publish.take() {
                p.finish(End::Refused(e.to_string()));
            }
            return Err(e);
        }
        if let Some(why) = state.refused.take() {
            return Err(ConnError::Refused(why));
        }
        if let Some(stream) = state.play.take() {
            break stream;
        }
        if state.finished {
            // The publisher unpublished (deleteStream, its last message): a clean end, not a
            // setup timeout once the setup deadline has passed.
            return Ok(());
        }
        if state.pending.is_some() {
            // Answered at the top, before more input is read.
            continue;
        }
        if std::mem::take(&mut state.again) {
            // More messages already read: the other tasks on this worker first.
            tokio::task::yield_now().await;
            continue;
        }
        if kicks.is_none() {
            kicks = state.publish.as_ref().map(|p| p.stream.kicks());
        }
        // Publishing: held to the ingest bitrate by not reading (TCP pushes back), as over HTTP
        // (a wait the control API's kick or the server's shutdown ends, below).
        let mut wait = None;
        if state.publish.is_some() {
            let cfg = &state.live.config;
            let rate = rate.get_or_insert_with(|| {
                RateLimit::new(
                    cfg.max_ingest_bitrate,
                    Duration::from_secs(2),
                    state.live.now(),
                )
            });
            let made = state.publish.as_ref().map_or(0, Publish::made);
            wait = rate.wait_made(published, made, state.live.now());
        }
        let limit = match &state.publish {
            Some(_) => state.live.config.publisher_timeout,
            None => setup_deadline.saturating_duration_since(tokio::time::Instant::now()),
        };
        buf.reserve(READ_SIZE);
        let read = tokio::select! {
            r = async {
                if let Some(wait) = wait {
                    tokio::time::sleep(wait).await;
                }
                tokio::time::timeout(limit, sock.read_buf(&mut buf)).await
            } => r,
            _ = shutdown.changed() => {
                if let Some(p) = state.publish.take() {
                    p.finish(End::Clean);
                }
                return Ok(());
            }
            _ = kicked(&mut kicks) => {
                let why = IngestError::Kicked;
                tracing::info!(peer = %state.peer, "{why}");
                if let Some(p) = state.publish.take() {
                    p.finish(End::Refused(why.to_string()));
                }
                return Ok(());
            }
        };
        match read {
            Err(_) if state.publish.is_none() => {
                return Err(ConnError::Timeout("did not publish or play within 10 s"))
            }
            Err(_) => {
                state.drop_publisher("no data");
                return Err(ConnError::Timeout("the publisher sent nothing"));
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                state.drop_publisher("connection closed");
                return Ok(());
            }
            Ok(Ok(n)) => {
                if let Some(p) = &state.publish {
                    p.received(n, state.rtmp.pending());
                    published += n as u64;
                } else {
                    quick_ack(sock.tcp());
                }
            }
        }
    };
    // A player: from here on it gets the stream's shared RTMP messages. What the session needed
    // (read buffer, chunk state) is dropped first: a player costs its cursor and its socket.
    let live = state.live.clone();
    drop((buf, state));
    // On the fan-out workers (live::fanout), with the socket.
    let viewer = {
        let live = live.clone();
        async move { follow::follow(&mut sock, play, &live, Output::Rtmp, false, shutdown, None).await }
    };
    // Boxed: the caller's future would otherwise keep room for a second copy of the viewer.
    live.fanout
        .run(Box::pin(viewer))
        .await
        .map_err(ConnError::Io)
}

/// During setup, acknowledges what the peer sent at once instead of after the kernel's delayed-ACK
/// timer: a client with Nagle's algorithm on (ffmpeg's default, rml_rtmp's) holds its next small
/// message (`connect` after C2, `play` after `createStream`) until its last one is acknowledged,
/// and a message that gets no answer (C2, a control message) would cost it 40 ms.
fn quick_ack(sock: &TcpStream) {
    let _ = rustix::net::sockopt::set_tcp_quickack(sock, true);
}

/// Resolves when the publisher is kicked (never before a publish, or once the stream is gone).
async fn kicked(kicks: &mut Option<watch::Receiver<u64>>) {
    if let Some(rx) = kicks {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// The server side of the handshake; the bytes that came after it stay in `buf`.
async fn handshake(sock: &mut Transport, buf: &mut BytesMut, live: &Live) -> Result<(), ConnError> {
    let mut hs = Handshake::new(live.now().as_millis() as u32);
    let mut out = Vec::new();
    loop {
        buf.reserve(READ_SIZE);
        if sock.read_buf(buf).await? == 0 {
            return Err(ConnError::Closed("during the RTMP handshake"));
        }
        quick_ack(sock.tcp());
        let done = hs
            .input(buf, &mut out)
            .map_err(|e| ConnError::Handshake(e.to_string()))?;
        if !out.is_empty() {
            sock.write_all(&out).await?;
            sock.flush().await?;
            out.clear();
        }
        if done {
            return Ok(());
        }
    }
}

/// What a connection has been accepted for, and what it asked.
struct Session {
    rtmp: rtmp::Session,
    peer: SocketAddr,
    live: Arc<Live>,
    publish: Option<Publish>,
    /// Why the connection is to be closed once the pending answers are sent.
    refused: Option<Error>,
    /// A stream this connection was accepted to play.
    play: Option<Arc<Stream>>,
    /// The publisher unpublished; the connection ends.
    finished: bool,
    /// The server's settings (auth rules, callbacks).
    server: Arc<crate::state::State>,
    /// `rtmp` or `rtmps`, for the callbacks.
    protocol: &'static str,
    /// A publish or play that passed its credentials and waits for its callback.
    pending: Option<Pending>,
    /// The stream this connection published, for `on_unpublish` when it ends.
    published: Option<String>,
    /// `input` stopped after [`MESSAGES_PER_TURN`] media messages with more already read.
    again: bool,
}

/// Most media messages one turn of a publisher's connection takes from what it read: a read of
/// 64 KiB can hold ten thousand tiny ones, each muxed, which must not hold the worker that
/// long (the tasks of other connections on it wait).
const MESSAGES_PER_TURN: usize = 256;

/// A request waiting for its callback's answer.
struct Pending {
    request: Request,
    name: String,
    query: Option<String>,
    play: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(name) = self.published.take() {
            crate::admit::unpublished(&self.server, &name, self.peer, self.protocol);
        }
    }
}

impl Session {
    fn drop_publisher(&mut self, why: &str) {
        if let Some(p) = self.publish.take() {
            p.finish(End::Dropped(why.into()));
        }
    }

    /// Feeds what `buf` holds to the session, handling its events, until it needs more bytes,
    /// a request was refused or a play accepted (the answers are in the session's output).
    fn input(&mut self, buf: &mut BytesMut) -> Result<(), ConnError> {
        let mut media = 0;
        while let Some(e) = self
            .rtmp
            .poll(buf)
            .map_err(|e| ConnError::Rtmp(e.to_string()))?
        {
            media += usize::from(matches!(e, rtmp::Event::Media { .. }));
            self.event(e)?;
            if media >= MESSAGES_PER_TURN {
                self.again = true;
                break;
            }
            if self.refused.is_some() || self.play.is_some() || self.finished {
                break;
            }
            if self.pending.is_some() {
                break;
            }
        }
        Ok(())
    }

    /// Refuses a request with the error's RTMP code; the connection closes after the answer.
    fn refuse(&mut self, request: Request, e: Error, play: bool) {
        self.rtmp.refuse(request, e.rtmp_code(play), &e.to_string());
        self.refused = Some(e);
    }

    /// Asks the callback about a pending publish or play, then answers it.
    async fn resolve(&mut self, p: Pending) {
        use crate::auth::hooks::Event as Hook;
        let event = if p.play { Hook::Play } else { Hook::Publish };
        let (server, peer, q) = (&self.server, self.peer, p.query.as_deref());
        // Boxed: the callback's HTTP(S) client future (4.6 KiB) would otherwise stay in every
        // RTMP player's connection future while it plays.
        let asked = Box::pin(crate::admit::hook(
            server,
            event,
            &p.name,
            peer,
            self.protocol,
            q,
        ))
        .await;
        let asked = match asked {
            Ok(()) if p.play => {
                let server = self.server.clone();
                crate::admit::pulled(&server, &p.name, None).await
            }
            other => other,
        };
        match asked {
            Ok(()) if p.play => self.play(p.request, &p.name),
            Ok(()) => self.publish(p.request, &p.name),
            Err(e) => self.refuse(p.request, e, p.play),
        }
    }

    /// Takes the stream for an admitted publisher and accepts its `publish`.
    fn publish(&mut self, request: Request, name: &str) {
        match self.live.begin_publish(name, self.peer) {
            Ok(p) => {
                self.publish = Some(p);
                self.published = Some(name.to_string());
                self.rtmp.accept(request);
            }
            Err(e) => {
                tracing::info!(stream = %crate::clip::Clip(name), peer = %self.peer, error = %e, "RTMP publish refused");
                self.refuse(request, e, false);
            }
        }
    }

    /// Accepts an admitted player's `play` (the stream must be live).
    fn play(&mut self, request: Request, name: &str) {
        let found = self.live.watchable(name, Output::Rtmp).and_then(|s| {
            if request.stream_id() == RTMP_PLAY_STREAM_ID {
                Ok(s)
            } else {
                Err(Error::PlayStreamId(request.stream_id()))
            }
        });
        match found {
            Ok(s) => {
                self.play = Some(s);
                self.rtmp.accept(request);
            }
            Err(e) => self.refuse(request, e, true),
        }
    }

    /// A publish or play whose credentials passed: answered now, or after its callback.
    fn admitted(&mut self, request: Request, name: &str, query: Option<&str>, play: bool) {
        let config = self.server.config();
        let hooks = config.hooks.as_ref();
        let hooked = hooks.is_some_and(|h| {
            if play {
                h.on_play.is_some()
            } else {
                h.on_publish.is_some()
            }
        });
        // On an edge, a stream that is not here is pulled first (the wait is the pending one's).
        let pull = play && self.server.edge.as_ref().is_some_and(|e| !e.here(name));
        // A play of a stream that is not here (nor pulled) is refused without asking the
        // callback: junk names get their answer without a call to the service, as over HTTP.
        // Refused here, not looked up again: a publisher that began in between must not let a
        // player in that the callback was never asked about.
        if hooked && play && !pull && self.server.live.get(name).is_none() {
            self.refuse(request, Error::UnknownStream(name.into()), true);
            return;
        }
        if hooked || pull {
            self.pending = Some(Pending {
                request,
                name: name.to_string(),
                query: query.map(str::to_string),
                play,
            });
        } else if play {
            self.play(request, name);
        } else {
            self.publish(request, name);
        }
    }

    /// Handles one session event.
    fn event(&mut self, e: Event) -> Result<(), ConnError> {
        match e {
            Event::Connect { request, app } => {
                if app.trim_matches('/') != "live" {
                    self.refuse(request, Error::UnknownApp(app), false);
                } else {
                    self.rtmp.accept(request);
                }
            }
            Event::Publish { request, name } => {
                let (name, query) = split_query(&name);
                let key = query_key(query);
                let token = crate::auth::query_param(query, "jwt");
                let presented = crate::auth::Presented {
                    key: key.as_deref(),
                    token: token.as_deref(),
                };
                match crate::admit::publisher(&self.server, name, presented, self.peer) {
                    Ok(()) => self.admitted(request, name, query, false),
                    Err(e) => {
                        tracing::info!(stream = %crate::clip::Clip(name), peer = %self.peer, error = %e, "RTMP publish refused");
                        self.refuse(request, e, false);
                    }
                }
            }
            Event::Media {
                video,
                timestamp,
                payload,
            } => return self.media(video, &payload, timestamp),
            Event::PublishFinished { .. } => {
                if let Some(p) = self.publish.take() {
                    p.finish(End::Clean);
                    self.finished = true;
                }
            }
            Event::Play { request, name } => {
                let (name, query) = split_query(&name);
                let token = crate::auth::query_param(query, "jwt");
                let admitted = crate::admit::signed_play(&self.server, name, query)
                    .and_then(|()| crate::admit::viewer(&self.server, name, token.as_deref()));
                match admitted {
                    Ok(()) => self.admitted(request, name, query, true),
                    Err(e) => self.refuse(request, e, true),
                }
            }
        }
        Ok(())
    }

    /// One audio or video message of a publisher.
    fn media(&mut self, video: bool, data: &[u8], ms: u32) -> Result<(), ConnError> {
        let Some(publish) = self.publish.as_mut() else {
            return Ok(());
        };
        if let Err(e) = publish.tag(video, data, ms) {
            if let Some(p) = self.publish.take() {
                p.finish(End::Refused(e.to_string()));
            }
            return Err(e.into());
        }
        Ok(())
    }
}

/// `NAME?key=SECRET&jwt=TOKEN` → (`NAME`, its query).
fn split_query(stream_key: &str) -> (&str, Option<&str>) {
    match stream_key.split_once('?') {
        None => (stream_key, None),
        Some((name, query)) => (name, Some(query)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_split_like_obs_users_type_them() {
        assert_eq!(split_query("show"), ("show", None));
        assert_eq!(split_query("show?key=a%20b"), ("show", Some("key=a%20b")));
        let (_, q) = split_query("show?x=1&key=k");
        assert_eq!(query_key(q).as_deref(), Some("k"));
    }
}
