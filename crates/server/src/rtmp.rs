//! RTMP ingest: the tokio shell around `rml_rtmp`'s sans-I/O handshake and server session, and
//! `media::flv::ToTs`, which turns the FLV tags into MPEG-TS for the same ring, viewers and HLS as
//! HTTP ingest.
//!
//! Why `rml_rtmp`: it is the proven Rust implementation of the handshake (plain and the digest
//! form), the chunk stream (all header types, extended timestamps, set chunk size, window
//! acknowledgements, abort) and the AMF0 command flow (`connect`, `releaseStream`, `FCPublish`,
//! `createStream`, `publish`, `deleteStream`, `FCUnpublish`, `@setDataFrame`); it takes bytes and
//! returns bytes and events, so it fits our sans-I/O shape. Its chunk reassembly copies each
//! payload once; the FLV → TS remux copies once more (one serialisation per stream, independent of
//! the number of viewers).
//!
//! Stream names and keys: `rtmp://host/live/NAME?key=SECRET` (what OBS users type as the stream
//! key `NAME?key=SECRET`); the same keys, one-publisher rule and reconnect grace as HTTP ingest.
//!
//! Outputs of an RTMP source, each serialised once per stream into its own ring and shared by
//! every viewer of that output: MPEG-TS (for `.ts` and HLS), FLV tags (`GET /live/NAME.flv`), and
//! RTMP messages for players (`rtmp://host/live/NAME`). An RTMP message is written with a full
//! (type 0) chunk header and the session's chunk size, so its bytes do not depend on what a
//! viewer's connection sent before and can be shared.

use crate::live::{End, Live, Output, Publish, State};
use bytes::{Bytes, BytesMut};
use live::Ring;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// A connection must finish the handshake and ask to publish or play within this time.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// The chunk size announced to every peer (and used for the shared RTMP messages).
const CHUNK_SIZE: usize = 4096;
/// The message stream id the shared RTMP messages are written for (the first `createStream`).
const PLAY_STREAM_ID: u32 = 1;

/// Serves one RTMP connection until it ends.
pub(crate) async fn connection(
    mut sock: TcpStream,
    peer: SocketAddr,
    live: Arc<Live>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut buf = vec![0u8; 64 << 10];
    // Handshake.
    let mut hs = Handshake::new(PeerType::Server);
    let rest = tokio::time::timeout(SETUP_TIMEOUT, async {
        loop {
            let n = sock.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed during the handshake".to_string());
            }
            match hs
                .process_bytes(&buf[..n])
                .map_err(|e| format!("handshake: {e:?}"))?
            {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    sock.write_all(&response_bytes)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    sock.write_all(&response_bytes)
                        .await
                        .map_err(|e| e.to_string())?;
                    return Ok(remaining_bytes);
                }
            }
        }
    })
    .await
    .map_err(|_| "no complete handshake within 10 s".to_string())??;

    let mut config = ServerSessionConfig::new();
    config.chunk_size = CHUNK_SIZE as u32;
    let (mut session, initial) = ServerSession::new(config).map_err(|e| format!("{e:?}"))?;
    let mut state = Session {
        peer,
        live,
        publish: None,
        ts: media::flv::ToTs::default(),
        out: Vec::new(),
        app: None,
        refused: None,
        play: None,
        last_wake: None,
        last_media_wake: None,
        clock_offset: None,
    };
    state.send(&mut sock, initial).await?;
    let mut input = rest;
    let setup_deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
    let play = loop {
        if !input.is_empty() {
            if let Some(p) = &state.publish {
                p.stream
                    .stats
                    .bytes_in
                    .fetch_add(input.len() as u64, Relaxed);
            }
            // Until the connection is accepted for publishing or playing, the session is fed
            // one byte at a time: it parses every message in its input before we can accept a
            // `connect`, and would drop a `createStream`/`publish` that a client sent without
            // waiting for the answer. That is a few hundred bytes per connection.
            let setup = state.publish.is_none() && state.play.is_none();
            let step = if setup { 1 } else { input.len() };
            let mut responses = Vec::new();
            for piece in input.chunks(step) {
                let results = session
                    .handle_input(piece)
                    .map_err(|e| format!("rtmp: {e:?}"))?;
                for r in results {
                    match r {
                        ServerSessionResult::OutboundResponse(p) => responses.push(p.bytes),
                        ServerSessionResult::RaisedEvent(e) => {
                            let more = state.event(&mut session, e)?;
                            responses.extend(more);
                        }
                        ServerSessionResult::UnhandleableMessageReceived(_) => {}
                    }
                }
                if state.refused.is_some() || state.play.is_some() {
                    break;
                }
            }
            for r in responses {
                sock.write_all(&r).await.map_err(|e| e.to_string())?;
            }
            if let Some(why) = state.refused.take() {
                return Err(why);
            }
            if let Some(stream) = state.play.take() {
                break stream;
            }
        }
        let limit = match &state.publish {
            Some(_) => live_timeout(&state.live),
            None => setup_deadline.saturating_duration_since(tokio::time::Instant::now()),
        };
        let read = tokio::select! {
            r = tokio::time::timeout(limit, sock.read(&mut buf)) => r,
            _ = shutdown.changed() => {
                if let Some(p) = state.publish.take() {
                    p.finish(End::Clean);
                }
                return Ok(());
            }
        };
        match read {
            Err(_) if state.publish.is_none() => return Err("did not publish within 10 s".into()),
            Err(_) => {
                drop_publisher(&mut state, "no data");
                return Err("publisher sent nothing".into());
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                drop_publisher(&mut state, "connection closed");
                return Ok(());
            }
            Ok(Ok(n)) => input = buf[..n].to_vec(),
        }
    };
    // A player: from here on it gets the stream's shared RTMP messages. What the session needed
    // (read buffer, chunk state) is dropped first: a player costs its cursor and its socket.
    let live = state.live.clone();
    drop((buf, input, session, state));
    crate::live::follow(&mut sock, play, &live, Output::Rtmp, false, shutdown)
        .await
        .map_err(|e| e.to_string())
}

fn live_timeout(live: &Live) -> Duration {
    live.config.publisher_timeout
}

fn drop_publisher(state: &mut Session, why: &str) {
    if let Some(p) = state.publish.take() {
        p.finish(End::Dropped(why.into()));
    }
}

struct Session {
    peer: SocketAddr,
    live: Arc<Live>,
    publish: Option<Publish>,
    ts: media::flv::ToTs,
    out: Vec<u8>,
    app: Option<String>,
    /// Why the connection is to be closed once the pending responses are sent.
    refused: Option<String>,
    /// Added to this publisher's timestamps so they continue the stream's clock (set at its
    /// first media message; 0 for a new stream).
    clock_offset: Option<u32>,
    /// A stream this connection was accepted to play.
    play: Option<std::sync::Arc<crate::live::Stream>>,
    /// When `.ts` viewers, and FLV/RTMP viewers, were last woken for this publisher's media.
    last_wake: Option<std::time::Instant>,
    last_media_wake: Option<std::time::Instant>,
}

impl Session {
    async fn send(
        &mut self,
        sock: &mut TcpStream,
        results: Vec<ServerSessionResult>,
    ) -> Result<(), String> {
        for r in results {
            if let ServerSessionResult::OutboundResponse(p) = r {
                sock.write_all(&p.bytes).await.map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// Handles one session event; returns bytes to send.
    fn event(
        &mut self,
        session: &mut ServerSession,
        e: ServerSessionEvent,
    ) -> Result<Vec<Vec<u8>>, String> {
        let packets = |r: Vec<ServerSessionResult>| -> Vec<Vec<u8>> {
            r.into_iter()
                .filter_map(|x| match x {
                    ServerSessionResult::OutboundResponse(p) => Some(p.bytes),
                    _ => None,
                })
                .collect()
        };
        match e {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_name.trim_matches('/') != "live" {
                    let r = session
                        .reject_request(
                            request_id,
                            "NetConnection.Connect.Rejected",
                            "the application is 'live': rtmp://host/live/NAME",
                        )
                        .map_err(|e| format!("{e:?}"))?;
                    self.refused = Some(format!("unknown application '{app_name}'"));
                    return Ok(packets(r));
                }
                self.app = Some(app_name);
                Ok(packets(
                    session
                        .accept_request(request_id)
                        .map_err(|e| format!("{e:?}"))?,
                ))
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => {
                let (name, key) = split_key(&stream_key);
                let admitted = self
                    .live
                    .authorize(name, key.as_deref(), self.peer.ip())
                    .and_then(|()| self.live.begin_publish(name, self.peer));
                match admitted {
                    Ok(p) => {
                        self.publish = Some(p);
                        Ok(packets(
                            session
                                .accept_request(request_id)
                                .map_err(|e| format!("{e:?}"))?,
                        ))
                    }
                    Err(e) => {
                        tracing::info!(stream = name, peer = %self.peer, error = %e, "RTMP publish refused");
                        let code = match e.status().as_u16() {
                            409 => "NetStream.Publish.BadName",
                            _ => "NetStream.Publish.Unauthorized",
                        };
                        let r = session
                            .reject_request(request_id, code, &e.to_string())
                            .map_err(|e| format!("{e:?}"))?;
                        self.refused = Some(e.to_string());
                        Ok(packets(r))
                    }
                }
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                self.media(true, &data, timestamp.value)?;
                Ok(Vec::new())
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                self.media(false, &data, timestamp.value)?;
                Ok(Vec::new())
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                if let Some(p) = self.publish.take() {
                    p.finish(End::Clean);
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::PlayStreamRequested {
                request_id,
                stream_key,
                stream_id,
                ..
            } => {
                let (name, _) = split_key(&stream_key);
                let found = self.live.get(name).filter(|s| {
                    // (The read guard must be gone before `want_media` takes the write lock.)
                    let ended = s.read().state == State::Ended;
                    !ended && s.want_media(&self.live)
                });
                let why = match (&found, stream_id) {
                    (None, _) => Some(format!("no live stream '{name}' (with H.264/AAC)")),
                    (Some(_), id) if id != PLAY_STREAM_ID => Some(format!(
                        "play on message stream {id}; only {PLAY_STREAM_ID} is served"
                    )),
                    _ => None,
                };
                if let Some(why) = why {
                    let r = session
                        .reject_request(request_id, "NetStream.Play.StreamNotFound", &why)
                        .map_err(|e| format!("{e:?}"))?;
                    self.refused = Some(why);
                    return Ok(packets(r));
                }
                self.play = found;
                Ok(packets(
                    session
                        .accept_request(request_id)
                        .map_err(|e| format!("{e:?}"))?,
                ))
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Remuxes one FLV tag to TS and publishes the packets; serialises it once as an FLV tag and
    /// as an RTMP message for the FLV and RTMP outputs.
    fn media(&mut self, video: bool, data: &[u8], ms: u32) -> Result<(), String> {
        let Some(publish) = self.publish.as_mut() else {
            return Ok(());
        };
        // A publisher that came back within the grace period starts its clock over: continue
        // the stream's clock 40 ms after where it was, for every output.
        let offset = *self.clock_offset.get_or_insert_with(|| {
            let last = publish.stream.read().rtmp_clock;
            last.map_or(0, |l| l.wrapping_add(40).wrapping_sub(ms))
        });
        let ms = ms.wrapping_add(offset);
        let (sequence, keyframe) = classify(video, data);
        // Viewers are woken once per video frame (audio waits for the next one), or every 20 ms
        // when there is no video: one wake-up per viewer per frame instead of per message.
        let wake = video
            || self
                .last_wake
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(20));
        if wake {
            self.last_wake = Some(std::time::Instant::now());
        }
        let limits = self.live.config.ring;
        let now = self.live.now();
        publish.stream.update(|inner| {
            inner.rtmp_clock = Some(ms);
            push_media(inner, limits, now, video, data, ms, sequence, keyframe);
        });
        self.out.clear();
        let r = if video {
            self.ts.video(data, ms, &mut self.out)
        } else {
            self.ts.audio(data, ms, &mut self.out)
        };
        if let Err(e) = r {
            let why = format!("bad {} tag: {e}", if video { "video" } else { "audio" });
            if let Some(p) = self.publish.take() {
                p.finish(End::Refused(why.clone()));
            }
            return Err(why);
        }
        let batch = self.live.config.media_batch;
        if keyframe || self.last_media_wake.is_none_or(|t| t.elapsed() >= batch) {
            self.last_media_wake = Some(std::time::Instant::now());
            publish.stream.wake_media();
        }
        if self.out.is_empty() {
            if wake {
                publish.stream.wake_ts();
            }
        } else {
            let packets = BytesMut::from(bytes::Bytes::from(std::mem::take(&mut self.out)));
            if let Err(why) = publish.publish_packets(packets, &self.live, wake) {
                if let Some(p) = self.publish.take() {
                    p.finish(End::Refused(why.clone()));
                }
                return Err(why);
            }
        }
        Ok(())
    }
}

/// Serialises one FLV tag body once as an FLV tag and once as an RTMP message, and pushes them to
/// the stream's FLV and RTMP rings (created if needed); sequence headers are kept aside and sent
/// before every keyframe a viewer starts at.
#[allow(clippy::too_many_arguments)]
pub(crate) fn push_media(
    inner: &mut crate::live::Inner,
    limits: live::Limits,
    now: Duration,
    video: bool,
    body: &[u8],
    ms: u32,
    sequence: bool,
    keyframe: bool,
) {
    let tag = flv_tag(if video { 9 } else { 8 }, ms, body);
    let msg = rtmp_message(video, ms, body);
    if sequence {
        inner.media_seq[usize::from(video)] = Some((tag, msg));
        return;
    }
    let seq = &inner.media_seq;
    let flv = inner.flv.get_or_insert_with(|| Ring::new(limits));
    if keyframe {
        let psi = seq.iter().rev().flatten().map(|(t, _)| t.clone()).collect();
        flv.push_keyframe(tag, psi, now);
    } else {
        flv.push(tag, now);
    }
    let rtmp = inner.rtmp.get_or_insert_with(|| Ring::new(limits));
    if keyframe {
        let psi = seq.iter().rev().flatten().map(|(_, m)| m.clone()).collect();
        rtmp.push_keyframe(msg, psi, now);
    } else {
        rtmp.push(msg, now);
    }
}

/// Whether a tag is a sequence header, and whether it is a video keyframe.
fn classify(video: bool, data: &[u8]) -> (bool, bool) {
    let (Some(&b0), Some(&b1)) = (data.first(), data.get(1)) else {
        return (false, false);
    };
    if !video {
        return (b0 >> 4 == 10 && b1 == 0, false);
    }
    if b0 & 0x80 != 0 {
        // Enhanced RTMP: packet type 0 is the sequence start.
        (b0 & 0x0f == 0, (b0 >> 4) & 0x07 == 1 && b0 & 0x0f != 0)
    } else {
        (b1 == 0, b0 >> 4 == 1 && b1 == 1)
    }
}

/// An FLV tag (header, body, PreviousTagSize).
fn flv_tag(kind: u8, ms: u32, body: &[u8]) -> Bytes {
    let n = body.len();
    let mut t = Vec::with_capacity(11 + n + 4);
    t.extend_from_slice(&[kind, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
    t.extend_from_slice(&[
        (ms >> 16) as u8,
        (ms >> 8) as u8,
        ms as u8,
        (ms >> 24) as u8,
    ]);
    t.extend_from_slice(&[0, 0, 0]);
    t.extend_from_slice(body);
    t.extend_from_slice(&((11 + n) as u32).to_be_bytes());
    Bytes::from(t)
}

/// An RTMP audio (type 8, chunk stream 4) or video (type 9, chunk stream 6) message on message
/// stream 1, with a type 0 header and type 3 continuations of `CHUNK_SIZE` bytes, so that it can
/// be written to any player whatever came before it on that connection.
fn rtmp_message(video: bool, ms: u32, body: &[u8]) -> Bytes {
    let (csid, kind) = if video { (6u8, 9u8) } else { (4, 8) };
    let extended = ms >= 0xff_ffff;
    let ts = if extended { 0xff_ffff } else { ms };
    let n = body.len();
    let mut m = Vec::with_capacity(n + 16 + n / CHUNK_SIZE * 5);
    m.push(csid);
    m.extend_from_slice(&[(ts >> 16) as u8, (ts >> 8) as u8, ts as u8]);
    m.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8, kind]);
    m.extend_from_slice(&PLAY_STREAM_ID.to_le_bytes());
    if extended {
        m.extend_from_slice(&ms.to_be_bytes());
    }
    for (i, chunk) in body.chunks(CHUNK_SIZE).enumerate() {
        if i > 0 {
            m.push(0xc0 | csid);
            if extended {
                m.extend_from_slice(&ms.to_be_bytes());
            }
        }
        m.extend_from_slice(chunk);
    }
    Bytes::from(m)
}

/// `NAME?key=SECRET` → (`NAME`, `SECRET`).
fn split_key(stream_key: &str) -> (&str, Option<String>) {
    match stream_key.split_once('?') {
        None => (stream_key, None),
        Some((name, query)) => {
            let key = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("key="))
                .map(|v| {
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned()
                });
            (name, key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::sessions::{
        ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
        PublishRequestType,
    };
    use rml_rtmp::time::RtmpTimestamp;

    /// What a server session raised, in order: (kind, detail).
    #[derive(Debug, Default, PartialEq)]
    struct Seen {
        commands: Vec<String>,
        video: Vec<(u32, usize)>,
        audio: Vec<(u32, usize)>,
    }

    /// A server side as the shell drives it: handshake, then session; every request accepted.
    struct Peer {
        hs: Handshake,
        session: Option<ServerSession>,
        seen: Seen,
    }

    impl Peer {
        fn new() -> Self {
            Peer {
                hs: Handshake::new(PeerType::Server),
                session: None,
                seen: Seen::default(),
            }
        }

        /// Feeds one read; returns what the server answers.
        fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
            let mut answer = Vec::new();
            let Some(s) = &mut self.session else {
                match self.hs.process_bytes(bytes).expect("handshake") {
                    HandshakeProcessResult::InProgress { response_bytes } => return response_bytes,
                    HandshakeProcessResult::Completed {
                        response_bytes,
                        remaining_bytes,
                    } => {
                        answer.extend(response_bytes);
                        let (s, initial) = ServerSession::new(ServerSessionConfig::new()).unwrap();
                        for r in initial {
                            if let ServerSessionResult::OutboundResponse(p) = r {
                                answer.extend_from_slice(&p.bytes);
                            }
                        }
                        self.session = Some(s);
                        answer.extend(self.feed(&remaining_bytes));
                        return answer;
                    }
                }
            };
            let mut pending = s.handle_input(bytes).expect("valid chunk stream");
            while !pending.is_empty() {
                match pending.remove(0) {
                    ServerSessionResult::OutboundResponse(p) => answer.extend_from_slice(&p.bytes),
                    ServerSessionResult::RaisedEvent(e) => match e {
                        ServerSessionEvent::ConnectionRequested {
                            request_id,
                            app_name,
                        } => {
                            self.seen.commands.push(format!("connect {app_name}"));
                            pending.extend(s.accept_request(request_id).unwrap());
                        }
                        ServerSessionEvent::PublishStreamRequested {
                            request_id,
                            stream_key,
                            ..
                        } => {
                            self.seen.commands.push(format!("publish {stream_key}"));
                            pending.extend(s.accept_request(request_id).unwrap());
                        }
                        ServerSessionEvent::StreamMetadataChanged { .. } => {
                            self.seen.commands.push("metadata".into())
                        }
                        ServerSessionEvent::PublishStreamFinished { .. } => {
                            self.seen.commands.push("unpublish".into())
                        }
                        ServerSessionEvent::VideoDataReceived {
                            data, timestamp, ..
                        } => self.seen.video.push((timestamp.value, data.len())),
                        ServerSessionEvent::AudioDataReceived {
                            data, timestamp, ..
                        } => self.seen.audio.push((timestamp.value, data.len())),
                        _ => {}
                    },
                    ServerSessionResult::UnhandleableMessageReceived(_) => {}
                }
            }
            answer
        }
    }

    /// Feeds the client's reads, each split further into reads of at most `split` bytes.
    fn serve(reads: &[Vec<u8>], split: usize) -> Seen {
        let mut peer = Peer::new();
        for read in reads {
            for piece in read.chunks(split) {
                peer.feed(piece);
            }
        }
        peer.seen
    }

    /// The reads ffmpeg sent when it published 1 s of 25 fps H.264 + AAC (recorded with
    /// scripts/record-rtmp-publish.py; the command is in that script): 4-byte length, bytes.
    fn ffmpeg_publish() -> Vec<Vec<u8>> {
        let mut rec: &[u8] = include_bytes!("../tests/fixtures/ffmpeg-publish.rtmp");
        let mut reads = Vec::new();
        while rec.len() >= 4 {
            let n = u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]) as usize;
            reads.push(rec[4..4 + n].to_vec());
            rec = &rec[4 + n..];
        }
        reads
    }

    #[test]
    fn a_recorded_ffmpeg_publish_replays_to_the_same_events_whatever_the_read_sizes() {
        let reads = ffmpeg_publish();
        let whole = serve(&reads, usize::MAX);
        assert_eq!(
            whole.commands,
            ["connect live", "publish fixture", "metadata", "unpublish"]
        );
        assert_eq!(
            whole.video.len(),
            27,
            "the AVC sequence header, 25 frames, the end of sequence"
        );
        assert!(
            whole.audio.len() > 40,
            "{} audio messages",
            whole.audio.len()
        );
        assert!(
            whole.video.windows(2).all(|w| w[1].0 >= w[0].0),
            "timestamps rise"
        );
        // The same events however each read is split further (a message across many reads).
        for split in [1, 2, 7, 100, 188, 1537, 4096] {
            assert_eq!(serve(&reads, split), whole, "reads of {split} bytes");
        }
    }

    /// A publisher (rml_rtmp's client session) at a given chunk size, talking to a `Peer`: large
    /// video messages, interleaved audio, timestamps past the 24-bit limit (extended timestamps).
    /// Returns its reads and what it sent.
    #[allow(clippy::type_complexity)]
    fn publisher_reads(chunk_size: u32) -> (Vec<Vec<u8>>, Vec<(u32, usize)>, Vec<(u32, usize)>) {
        let mut peer = Peer::new();
        let mut reads: Vec<Vec<u8>> = Vec::new();
        let mut client_hs = Handshake::new(PeerType::Client);
        let c0c1 = client_hs.generate_outbound_p0_and_p1().unwrap();
        let s012 = peer.feed(&c0c1);
        reads.push(c0c1);
        let c2 = match client_hs.process_bytes(&s012).unwrap() {
            HandshakeProcessResult::InProgress { response_bytes }
            | HandshakeProcessResult::Completed { response_bytes, .. } => response_bytes,
        };
        let mut config = ClientSessionConfig::new();
        config.chunk_size = chunk_size;
        let (mut client, initial) = ClientSession::new(config).unwrap();
        let bytes = |rs: Vec<ClientSessionResult>| -> Vec<u8> {
            rs.into_iter()
                .filter_map(|r| match r {
                    ClientSessionResult::OutboundResponse(p) => Some(p.bytes),
                    _ => None,
                })
                .flatten()
                .collect()
        };
        let mut first = c2;
        first.extend(bytes(initial));
        first.extend(bytes(vec![client
            .request_connection("live".into())
            .unwrap()]));
        let mut next = first;
        let mut publishing = false;
        for _ in 0..10 {
            let answer = peer.feed(&next);
            reads.push(std::mem::take(&mut next));
            for r in client.handle_input(&answer).unwrap() {
                match r {
                    ClientSessionResult::RaisedEvent(
                        ClientSessionEvent::ConnectionRequestAccepted,
                    ) => {
                        let r = client
                            .request_publishing("big".into(), PublishRequestType::Live)
                            .unwrap();
                        next.extend(bytes(vec![r]));
                    }
                    ClientSessionResult::RaisedEvent(
                        ClientSessionEvent::PublishRequestAccepted,
                    ) => publishing = true,
                    other => next.extend(bytes(vec![other])),
                }
            }
            if publishing {
                break;
            }
        }
        assert!(publishing, "publishing was accepted");
        let mut rng = fastrand::Rng::with_seed(u64::from(chunk_size));
        let (mut video, mut audio) = (Vec::new(), Vec::new());
        let mut media = std::mem::take(&mut next);
        for i in 0..30u32 {
            let ts = 0x00ff_fff0 + i * 40; // crosses 0xFFFFFF: extended timestamps
            let v: Vec<u8> = (0..rng.usize(1..150_000)).map(|_| rng.u8(..)).collect();
            video.push((ts, v.len()));
            let r = client.publish_video_data(Bytes::from(v), RtmpTimestamp::new(ts), false);
            media.extend(bytes(vec![r.unwrap()]));
            let a: Vec<u8> = (0..rng.usize(1..600)).map(|_| rng.u8(..)).collect();
            audio.push((ts + 5, a.len()));
            let r = client.publish_audio_data(Bytes::from(a), RtmpTimestamp::new(ts + 5), false);
            media.extend(bytes(vec![r.unwrap()]));
        }
        reads.push(media);
        (reads, video, audio)
    }

    #[test]
    fn chunk_sizes_interleaving_extended_timestamps_and_split_reads() {
        for chunk_size in [128, 4096, 65536] {
            let (reads, video, audio) = publisher_reads(chunk_size);
            for split in [1000, 3, 65_536, usize::MAX] {
                let seen = serve(&reads, split);
                assert_eq!(
                    seen.commands,
                    ["connect live", "publish big"],
                    "chunk size {chunk_size}"
                );
                assert_eq!(
                    seen.video, video,
                    "chunk size {chunk_size}, reads of {split}"
                );
                assert_eq!(
                    seen.audio, audio,
                    "chunk size {chunk_size}, reads of {split}"
                );
            }
        }
    }

    #[test]
    fn shared_rtmp_messages_are_chunked_with_full_headers() {
        let body = vec![7u8; CHUNK_SIZE * 2 + 10];
        let m = rtmp_message(true, 1234, &body);
        assert_eq!(m[0], 6, "type 0 header on chunk stream 6");
        assert_eq!(&m[1..4], &[0, 0x04, 0xd2]);
        assert_eq!(&m[4..8], &[0, 0x20, 0x0a, 9], "length and type");
        assert_eq!(&m[8..12], &[1, 0, 0, 0], "message stream 1, little-endian");
        assert_eq!(m[12 + CHUNK_SIZE], 0xc6, "a type 3 continuation");
        assert_eq!(m.len(), 12 + body.len() + 2);
        let ext = rtmp_message(false, 0x0100_0000, &[1, 2]);
        assert_eq!(&ext[1..4], &[0xff, 0xff, 0xff]);
        assert_eq!(&ext[12..16], &[1, 0, 0, 0], "extended timestamp");
        let tag = flv_tag(9, 0x0102_0304, &[1, 2, 3]);
        assert_eq!(&tag[..11], &[9, 0, 0, 3, 2, 3, 4, 1, 0, 0, 0]);
        assert_eq!(&tag[14..], &14u32.to_be_bytes());
    }

    #[test]
    fn stream_keys_split_like_obs_users_type_them() {
        assert_eq!(split_key("show"), ("show", None));
        assert_eq!(split_key("show?key=a%20b"), ("show", Some("a b".into())));
        assert_eq!(split_key("show?x=1&key=k"), ("show", Some("k".into())));
    }
}
