//! RTMP: the tokio shell around `rml_rtmp`'s sans-I/O handshake and server session. What a
//! publisher sends goes to [`Publish::tag`] (serialised once per output there); a player is
//! handed to the viewer loop (follow.rs) once its `play` is accepted.
//!
//! Why `rml_rtmp`: it is the proven Rust implementation of the handshake (plain and the digest
//! form), the chunk stream (all header types, extended timestamps, set chunk size, window
//! acknowledgements, abort) and the AMF0 command flow (`connect`, `releaseStream`, `FCPublish`,
//! `createStream`, `publish`, `deleteStream`, `FCUnpublish`, `@setDataFrame`); it takes bytes and
//! returns bytes and events, so it fits our sans-I/O shape. Each socket read is handed to it
//! straight from the read buffer; its chunk reassembly copies each payload once (the one copy
//! RTMP needs, independent of the number of viewers: invariant 7).
//!
//! Stream names and keys: `rtmp://host/live/NAME?key=SECRET` (what OBS users type as the stream
//! key `NAME?key=SECRET`); the same keys, one-publisher rule and reconnect grace as HTTP ingest.

use super::registry::query_key;
use super::{follow, Live, Output, Publish, Stream};
use crate::error::{ConnError, Error};
use live::outputs::{RTMP_CHUNK_SIZE, RTMP_PLAY_STREAM_ID};
use live::End;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// A connection must finish the handshake and ask to publish or play within this time.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

fn rtmp_err(e: impl std::fmt::Debug) -> ConnError {
    ConnError::Rtmp(format!("{e:?}"))
}

/// Serves one RTMP connection until it ends.
pub(crate) async fn connection(
    mut sock: TcpStream,
    peer: SocketAddr,
    live: Arc<Live>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnError> {
    let mut buf = vec![0u8; 64 << 10];
    let rest = tokio::time::timeout(SETUP_TIMEOUT, handshake(&mut sock, &mut buf))
        .await
        .map_err(|_| ConnError::Timeout("no complete RTMP handshake within 10 s"))??;
    let mut config = ServerSessionConfig::new();
    config.chunk_size = RTMP_CHUNK_SIZE as u32;
    let (mut session, initial) = ServerSession::new(config).map_err(rtmp_err)?;
    send(&mut sock, outbound(initial)).await?;
    let mut state = Session {
        peer,
        live,
        publish: None,
        refused: None,
        play: None,
    };
    let setup_deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
    let mut n = 0;
    let mut first = Some(rest);
    let play = loop {
        // The bytes that came after the handshake, then each read, straight from its buffer.
        let input: &[u8] = match &first {
            Some(rest) => rest,
            None => &buf[..n],
        };
        if !input.is_empty() {
            if let Some(p) = &state.publish {
                p.received(input.len());
            }
            let responses = state.input(&mut session, input)?;
            send(&mut sock, responses).await?;
            if let Some(why) = state.refused.take() {
                return Err(ConnError::Refused(why));
            }
            if let Some(stream) = state.play.take() {
                break stream;
            }
        }
        first = None;
        let limit = match &state.publish {
            Some(_) => state.live.config.publisher_timeout,
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
            Ok(Ok(k)) => n = k,
        }
    };
    // A player: from here on it gets the stream's shared RTMP messages. What the session needed
    // (read buffer, chunk state) is dropped first: a player costs its cursor and its socket.
    let live = state.live.clone();
    drop((buf, first, session, state));
    follow::follow(&mut sock, play, &live, Output::Rtmp, false, shutdown)
        .await
        .map_err(ConnError::Io)
}

/// The server side of the handshake; returns the bytes that came after it.
async fn handshake(sock: &mut TcpStream, buf: &mut [u8]) -> Result<Vec<u8>, ConnError> {
    let mut hs = Handshake::new(PeerType::Server);
    loop {
        let n = sock.read(buf).await?;
        if n == 0 {
            return Err(ConnError::Closed("during the RTMP handshake"));
        }
        match hs
            .process_bytes(&buf[..n])
            .map_err(|e| ConnError::Handshake(format!("{e:?}")))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                sock.write_all(&response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}

async fn send(sock: &mut TcpStream, packets: Vec<Vec<u8>>) -> Result<(), ConnError> {
    for p in packets {
        sock.write_all(&p).await?;
    }
    Ok(())
}

/// The bytes to send among a session's results.
fn outbound(results: Vec<ServerSessionResult>) -> Vec<Vec<u8>> {
    results
        .into_iter()
        .filter_map(|r| match r {
            ServerSessionResult::OutboundResponse(p) => Some(p.bytes),
            _ => None,
        })
        .collect()
}

/// What a connection has been accepted for, and what it asked.
struct Session {
    peer: SocketAddr,
    live: Arc<Live>,
    publish: Option<Publish>,
    /// Why the connection is to be closed once the pending responses are sent.
    refused: Option<Error>,
    /// A stream this connection was accepted to play.
    play: Option<Arc<Stream>>,
}

impl Session {
    fn drop_publisher(&mut self, why: &str) {
        if let Some(p) = self.publish.take() {
            p.finish(End::Dropped(why.into()));
        }
    }

    /// Feeds one read to the session; returns the bytes to answer.
    fn input(
        &mut self,
        session: &mut ServerSession,
        input: &[u8],
    ) -> Result<Vec<Vec<u8>>, ConnError> {
        // Until the connection is accepted for publishing or playing, the session is fed one
        // byte at a time: it parses every message in its input before we can accept a
        // `connect`, and would drop a `createStream`/`publish` that a client sent without
        // waiting for the answer. That is a few hundred bytes per connection.
        let setup = self.publish.is_none() && self.play.is_none();
        let step = if setup { 1 } else { input.len() };
        let mut responses = Vec::new();
        for piece in input.chunks(step) {
            for r in session.handle_input(piece).map_err(rtmp_err)? {
                match r {
                    ServerSessionResult::OutboundResponse(p) => responses.push(p.bytes),
                    ServerSessionResult::RaisedEvent(e) => {
                        responses.extend(self.event(session, e)?);
                    }
                    ServerSessionResult::UnhandleableMessageReceived(_) => {}
                }
            }
            if self.refused.is_some() || self.play.is_some() {
                break;
            }
        }
        Ok(responses)
    }

    /// Refuses a request with the error's RTMP code; the connection closes after the answer.
    fn refuse(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        e: Error,
    ) -> Result<Vec<Vec<u8>>, ConnError> {
        let r = session
            .reject_request(request_id, e.rtmp_code(), &e.to_string())
            .map_err(rtmp_err)?;
        self.refused = Some(e);
        Ok(outbound(r))
    }

    fn accept(session: &mut ServerSession, request_id: u32) -> Result<Vec<Vec<u8>>, ConnError> {
        Ok(outbound(
            session.accept_request(request_id).map_err(rtmp_err)?,
        ))
    }

    /// Handles one session event; returns bytes to send.
    fn event(
        &mut self,
        session: &mut ServerSession,
        e: ServerSessionEvent,
    ) -> Result<Vec<Vec<u8>>, ConnError> {
        match e {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_name.trim_matches('/') != "live" {
                    return self.refuse(session, request_id, Error::UnknownApp(app_name));
                }
                Self::accept(session, request_id)
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
                        Self::accept(session, request_id)
                    }
                    Err(e) => {
                        tracing::info!(stream = name, peer = %self.peer, error = %e, "RTMP publish refused");
                        self.refuse(session, request_id, e)
                    }
                }
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => self.media(true, &data, timestamp.value),
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => self.media(false, &data, timestamp.value),
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
                let found = self.live.watchable(name, Output::Rtmp).and_then(|s| {
                    if stream_id == RTMP_PLAY_STREAM_ID {
                        Ok(s)
                    } else {
                        Err(Error::PlayStreamId(stream_id))
                    }
                });
                match found {
                    Ok(s) => {
                        self.play = Some(s);
                        Self::accept(session, request_id)
                    }
                    Err(e) => self.refuse(session, request_id, e),
                }
            }
            _ => Ok(Vec::new()),
        }
    }

    /// One audio or video message of a publisher.
    fn media(&mut self, video: bool, data: &[u8], ms: u32) -> Result<Vec<Vec<u8>>, ConnError> {
        let Some(publish) = self.publish.as_mut() else {
            return Ok(Vec::new());
        };
        if let Err(e) = publish.tag(video, data, ms) {
            if let Some(p) = self.publish.take() {
                p.finish(End::Refused(e.to_string()));
            }
            return Err(e.into());
        }
        Ok(Vec::new())
    }
}

/// `NAME?key=SECRET` → (`NAME`, `SECRET`).
fn split_key(stream_key: &str) -> (&str, Option<String>) {
    match stream_key.split_once('?') {
        None => (stream_key, None),
        Some((name, query)) => (name, query_key(Some(query))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
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
        let mut rec: &[u8] = include_bytes!("../../tests/fixtures/ffmpeg-publish.rtmp");
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
    fn stream_keys_split_like_obs_users_type_them() {
        assert_eq!(split_key("show"), ("show", None));
        assert_eq!(split_key("show?key=a%20b"), ("show", Some("a b".into())));
        assert_eq!(split_key("show?x=1&key=k"), ("show", Some("k".into())));
    }
}
