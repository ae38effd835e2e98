//! Real clients against our session: a recorded ffmpeg publish replayed, and rml_rtmp's client
//! (handshake and publishing session) at several chunk sizes with large, interleaved messages
//! and extended timestamps.

mod common;

use bytes::{Bytes, BytesMut};
use rml_rtmp::handshake::{Handshake as ClientHandshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use rtmp::{Config, Event, Handshake, Session};

/// What a server session raised, in order.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    commands: Vec<String>,
    video: Vec<(u32, usize)>,
    audio: Vec<(u32, usize)>,
}

/// A server as the shell drives it: handshake, then session; every request accepted.
struct Peer {
    hs: Handshake,
    session: Session,
    input: BytesMut,
    seen: Seen,
}

impl Peer {
    fn new() -> Self {
        Peer {
            hs: Handshake::new(0),
            session: Session::new(Config::default()),
            input: BytesMut::new(),
            seen: Seen::default(),
        }
    }

    /// Feeds one read; returns what the server answers.
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.input.extend_from_slice(bytes);
        let mut answer = Vec::new();
        if !self
            .hs
            .input(&mut self.input, &mut answer)
            .expect("handshake")
        {
            return answer;
        }
        while let Some(e) = self
            .session
            .poll(&mut self.input)
            .expect("valid chunk stream")
        {
            match e {
                Event::Connect { request, app } => {
                    self.seen.commands.push(format!("connect {app}"));
                    self.session.accept(request);
                }
                Event::Publish { request, name } => {
                    self.seen.commands.push(format!("publish {name}"));
                    self.session.accept(request);
                }
                Event::Play { request, .. } => self.session.accept(request),
                Event::PublishFinished { .. } => self.seen.commands.push("unpublish".into()),
                Event::Media {
                    video: true,
                    timestamp,
                    payload,
                } => self.seen.video.push((timestamp, payload.len())),
                Event::Media {
                    timestamp, payload, ..
                } => self.seen.audio.push((timestamp, payload.len())),
            }
        }
        answer.extend(self.session.take_output());
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
    let mut rec: &[u8] = include_bytes!("fixtures/ffmpeg-publish.rtmp");
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
        ["connect live", "publish fixture", "unpublish"]
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

/// A publisher (rml_rtmp's client) at a given chunk size, talking to a `Peer`: large video
/// messages, interleaved audio, timestamps past the 24-bit limit (extended timestamps).
/// Returns its reads and what it sent.
#[allow(clippy::type_complexity)]
fn publisher_reads(chunk_size: u32) -> (Vec<Vec<u8>>, Vec<(u32, usize)>, Vec<(u32, usize)>) {
    let mut peer = Peer::new();
    let mut reads: Vec<Vec<u8>> = Vec::new();
    let mut client_hs = ClientHandshake::new(PeerType::Client);
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
    let mut next = c2;
    next.extend(bytes(initial));
    next.extend(bytes(vec![client
        .request_connection("live".into())
        .unwrap()]));
    let mut publishing = false;
    for _ in 0..10 {
        let answer = peer.feed(&next);
        reads.push(std::mem::take(&mut next));
        for r in client.handle_input(&answer).unwrap() {
            match r {
                ClientSessionResult::RaisedEvent(ClientSessionEvent::ConnectionRequestAccepted) => {
                    let r = client
                        .request_publishing("big".into(), PublishRequestType::Live)
                        .unwrap();
                    next.extend(bytes(vec![r]));
                }
                ClientSessionResult::RaisedEvent(ClientSessionEvent::PublishRequestAccepted) => {
                    publishing = true
                }
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
fn an_rml_rtmp_publisher_at_any_chunk_size_and_read_size_gives_the_same_media() {
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
