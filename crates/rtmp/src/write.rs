//! The one RTMP message serialiser: every message we send (control, command, and the shared audio
//! and video messages of a stream's RTMP output) is written here.
//!
//! ```text
//! fmt=0 | csid(6)   Timestamp(24) Length(24) TypeId(8) StreamId(32 LE)
//! [ExtendedTimestamp(32) when Timestamp = 0xFFFFFF]   body[0 .. chunk]
//! then per further chunk: fmt=3 | csid   [ExtendedTimestamp(32)]   body[..chunk]
//! ```
//! Every message is written with a full (type 0) header on its first chunk, so its bytes do not
//! depend on what the connection carried before it and one serialisation of a media message
//! serves every player. Video goes on chunk stream 6 (type 9), audio on chunk stream 4 (type 8).

/// Message type ids of audio and video (also their FLV tag types).
pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;

/// Chunk streams we write on: protocol control, commands, audio, video.
pub const CSID_CONTROL: u8 = 2;
pub const CSID_COMMAND: u8 = 3;
pub const CSID_AUDIO: u8 = 4;
pub const CSID_VIDEO: u8 = 6;

/// The longest message body RTMP can carry (24-bit length); longer bodies are cut there.
pub const MAX_MESSAGE: usize = 0xff_ffff;

/// Appends one message in chunks of `chunk_size` bytes (at least 1). `csid` is 2..=63.
pub fn message(
    out: &mut Vec<u8>,
    csid: u8,
    type_id: u8,
    stream_id: u32,
    ms: u32,
    body: &[u8],
    chunk_size: usize,
) {
    let csid = csid & 0x3f;
    let body = body.get(..MAX_MESSAGE).unwrap_or(body);
    let chunk_size = chunk_size.max(1);
    let extended = ms >= 0xff_ffff;
    let ts = if extended { 0xff_ffff } else { ms };
    let n = body.len();
    out.reserve(n + 16 + n / chunk_size * 5);
    out.push(csid);
    out.extend_from_slice(&ts.to_be_bytes()[1..]);
    out.extend_from_slice(&(n as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    if extended {
        out.extend_from_slice(&ms.to_be_bytes());
    }
    for (i, chunk) in body.chunks(chunk_size).enumerate() {
        if i > 0 {
            out.push(0xc0 | csid);
            if extended {
                out.extend_from_slice(&ms.to_be_bytes());
            }
        }
        out.extend_from_slice(chunk);
    }
}

/// An audio or video message on message stream `stream_id` (see the module doc).
pub fn av_message(video: bool, ms: u32, body: &[u8], chunk_size: usize, stream_id: u32) -> Vec<u8> {
    let (csid, kind) = if video {
        (CSID_VIDEO, VIDEO)
    } else {
        (CSID_AUDIO, AUDIO)
    };
    let mut m = Vec::new();
    message(&mut m, csid, kind, stream_id, ms, body, chunk_size);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_messages_are_chunked_with_full_headers() {
        let chunk = 4096;
        let body = vec![7u8; chunk * 2 + 10];
        let m = av_message(true, 1234, &body, chunk, 1);
        assert_eq!(m[0], 6, "type 0 header on chunk stream 6");
        assert_eq!(&m[1..4], &[0, 0x04, 0xd2]);
        assert_eq!(&m[4..8], &[0, 0x20, 0x0a, 9], "length and type");
        assert_eq!(&m[8..12], &[1, 0, 0, 0], "message stream 1, little-endian");
        assert_eq!(m[12 + chunk], 0xc6, "a type 3 continuation");
        assert_eq!(m.len(), 12 + body.len() + 2);
    }

    #[test]
    fn timestamps_past_24_bits_are_extended_on_every_chunk() {
        let ext = av_message(false, 0x0100_0000, &[1, 2, 3], 2, 1);
        assert_eq!(&ext[1..4], &[0xff, 0xff, 0xff]);
        assert_eq!(&ext[12..16], &[1, 0, 0, 0], "extended timestamp");
        assert_eq!(&ext[16..18], &[1, 2]);
        assert_eq!(ext[18], 0xc4, "continuation on chunk stream 4");
        assert_eq!(&ext[19..23], &[1, 0, 0, 0], "extended timestamp repeated");
        assert_eq!(&ext[23..], &[3]);
    }

    #[test]
    fn any_body_serialises_without_panicking() {
        let mut rng = fastrand::Rng::with_seed(9);
        for _ in 0..2_000 {
            let body: Vec<u8> = (0..rng.usize(0..300)).map(|_| rng.u8(..)).collect();
            let m = av_message(rng.bool(), rng.u32(..), &body, rng.usize(0..64), 1);
            assert!(m.len() >= body.len() + 12);
        }
    }
}
