//! The chunk stream reader: header types, extended timestamps, interleaving, chunk size, abort,
//! limits, zero-copy, and input split anywhere or made of garbage.

mod common;

use bytes::BytesMut;
use common::chunk0;
use rtmp::{ChunkReader, Error, Limits, Message};

/// Every message `input` holds, read in one piece.
fn read_all(input: &[u8]) -> Result<Vec<Message>, Error> {
    let mut r = ChunkReader::new(Limits::default());
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(m) = r.read(&mut buf)? {
        out.push(m);
    }
    Ok(out)
}

/// (csid, type, timestamp, payload) of each message.
fn summary(ms: &[Message]) -> Vec<(u32, u8, u32, Vec<u8>)> {
    ms.iter()
        .map(|m| (m.csid, m.type_id, m.timestamp, m.payload.to_vec()))
        .collect()
}

/// The first panic input: a 300-byte message on chunk stream 4 is interrupted after its
/// first chunk by a whole message on chunk stream 6, then continues.
fn interleaved() -> Vec<u8> {
    let mut b = chunk0(4, 0, 8, 1, 300, &[1; 128]);
    b.extend(chunk0(6, 0, 9, 1, 50, &[2; 50]));
    b.push(0xc4);
    b.extend_from_slice(&[1; 128]);
    b.push(0xc4);
    b.extend_from_slice(&[1; 44]);
    b
}

#[test]
fn chunk_streams_interleaved_mid_message_are_reassembled_each_on_its_own() {
    let ms = read_all(&interleaved()).unwrap();
    assert_eq!(
        summary(&ms),
        [(6, 9, 0, vec![2; 50]), (4, 8, 0, vec![1; 300])]
    );
}

#[test]
fn extended_timestamps_are_read_on_type_0_and_on_type_3_continuations() {
    let ts = 0x0123_4567;
    let mut b = chunk0(4, ts, 8, 1, 200, &[7; 128]);
    b.push(0xc4);
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&[7; 72]);
    let ms = read_all(&b).unwrap();
    assert_eq!(summary(&ms), [(4, 8, ts, vec![7; 200])]);
}

#[test]
fn type_1_2_and_3_headers_add_their_delta_to_the_chunk_streams_time() {
    let mut b = chunk0(4, 1000, 8, 1, 2, &[1, 1]);
    // Type 1: delta 40, new length 3, same type.
    b.extend_from_slice(&[0x44, 0, 0, 40, 0, 0, 3, 8, 2, 2, 2]);
    // Type 2: delta 20.
    b.extend_from_slice(&[0x84, 0, 0, 20, 3, 3, 3]);
    // Type 3 starting a new message: the same delta again.
    b.extend_from_slice(&[0xc4, 4, 4, 4]);
    let ms = read_all(&b).unwrap();
    let times: Vec<u32> = ms.iter().map(|m| m.timestamp).collect();
    assert_eq!(times, [1000, 1040, 1060, 1080]);
    assert_eq!(ms[3].payload.as_ref(), [4, 4, 4]);
}

#[test]
fn a_type_3_message_after_a_type_0_repeats_its_time_as_the_delta() {
    let mut b = chunk0(4, 40, 8, 1, 1, &[1]);
    b.extend_from_slice(&[0xc4, 2]);
    let times: Vec<u32> = read_all(&b).unwrap().iter().map(|m| m.timestamp).collect();
    assert_eq!(times, [40, 80], "as ffmpeg writes and reads it");
}

#[test]
fn timestamps_wrap_at_32_bits() {
    let mut b = chunk0(4, 0xffff_fff0, 8, 1, 1, &[1]);
    b.extend_from_slice(&[0x84, 0, 0, 0x20, 2]);
    let times: Vec<u32> = read_all(&b).unwrap().iter().map(|m| m.timestamp).collect();
    assert_eq!(times, [0xffff_fff0, 0x10]);
}

#[test]
fn two_and_three_byte_basic_headers_name_chunk_streams_above_63() {
    let mut b = vec![0x00, 200 - 64, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 9];
    b.extend_from_slice(&[0x01, 0x10, 0x27, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 8]);
    let ms = read_all(&b).unwrap();
    assert_eq!(
        summary(&ms),
        [
            (200, 8, 0, vec![9]),
            (64 + 0x10 + 0x27 * 256, 9, 0, vec![8])
        ]
    );
}

#[test]
fn set_chunk_size_applies_to_the_chunks_after_it() {
    let mut b = chunk0(2, 0, 1, 0, 4, &1000u32.to_be_bytes());
    b.extend(chunk0(4, 0, 8, 1, 1000, &[5; 1000]));
    let ms = read_all(&b).unwrap();
    assert_eq!(ms.len(), 2);
    assert_eq!(ms[1].payload.as_ref(), [5; 1000]);
    let mut r = ChunkReader::new(Limits::default());
    r.read(&mut BytesMut::from(&b[..16])).unwrap();
    assert_eq!(r.chunk_size(), 1000);
}

#[test]
fn a_huge_set_chunk_size_is_clamped_and_zero_is_refused() {
    let mut r = ChunkReader::new(Limits::default());
    let huge = chunk0(2, 0, 1, 0, 4, &0xffff_ffffu32.to_be_bytes());
    r.read(&mut BytesMut::from(&huge[..])).unwrap();
    assert_eq!(r.chunk_size(), rtmp::chunk::MAX_CHUNK_SIZE);
    let zero = chunk0(2, 0, 1, 0, 4, &[0; 4]);
    assert_eq!(read_all(&zero), Err(Error::BadChunkSize(0)));
    let short = chunk0(2, 0, 1, 0, 2, &[0; 2]);
    assert_eq!(read_all(&short), Err(Error::ShortControl(1)));
}

#[test]
fn abort_drops_a_partial_message_and_its_pending_bytes() {
    let mut r = ChunkReader::new(Limits::default());
    let mut buf = BytesMut::from(&chunk0(4, 0, 8, 1, 300, &[1; 128])[..]);
    assert_eq!(r.read(&mut buf).unwrap(), None);
    assert_eq!(r.pending(), 300);
    buf.extend_from_slice(&chunk0(2, 0, 2, 0, 4, &4u32.to_be_bytes()));
    assert_eq!(r.read(&mut buf).unwrap().map(|m| m.type_id), Some(2));
    assert_eq!(r.pending(), 0);
    // A new message on chunk stream 4 starts clean.
    buf.extend_from_slice(&chunk0(4, 0, 8, 1, 1, &[9]));
    assert_eq!(r.read(&mut buf).unwrap().unwrap().payload.as_ref(), [9]);
}

#[test]
fn a_header_type_without_a_previous_header_is_an_error() {
    assert_eq!(
        read_all(&[0x44, 0, 0, 0, 0, 0, 1, 8]),
        Err(Error::NoPreviousHeader { csid: 4, fmt: 1 })
    );
    assert_eq!(
        read_all(&[0xc5]),
        Err(Error::NoPreviousHeader { csid: 5, fmt: 3 })
    );
}

#[test]
fn partial_messages_beyond_the_limits_are_errors() {
    let limits = Limits {
        chunk_streams: 4,
        partial: 2,
        pending: 1000,
    };
    let read = |b: &[u8]| {
        let mut r = ChunkReader::new(limits);
        let mut buf = BytesMut::from(b);
        while r.read(&mut buf)?.is_some() {}
        Ok::<_, Error>(r.pending())
    };
    let mut b = chunk0(4, 0, 8, 1, 300, &[0; 128]);
    b.extend(chunk0(5, 0, 8, 1, 300, &[0; 128]));
    assert_eq!(read(&b), Ok(600));
    b.extend(chunk0(6, 0, 8, 1, 300, &[0; 128]));
    assert_eq!(read(&b), Err(Error::TooManyPartialMessages(2)));
    let big = chunk0(4, 0, 8, 1, 1001, &[0; 128]);
    assert_eq!(
        read(&big),
        Err(Error::PendingLimit {
            length: 1001,
            limit: 1000
        })
    );
    let streams: Vec<u8> = (2..7).flat_map(|c| chunk0(c, 0, 8, 1, 1, &[0])).collect();
    assert_eq!(read(&streams), Err(Error::TooManyChunkStreams(4)));
}

#[test]
fn a_message_in_one_chunk_comes_out_as_a_slice_of_the_input_buffer() {
    let b = chunk0(4, 0, 8, 1, 100, &[3; 100]);
    let mut buf = BytesMut::from(&b[..]);
    let start = buf.as_ptr() as usize;
    let m = ChunkReader::new(Limits::default())
        .read(&mut buf)
        .unwrap()
        .unwrap();
    assert_eq!(
        m.payload.as_ptr() as usize,
        start + 12,
        "no copy: the input's own bytes"
    );
}

#[test]
fn input_split_at_every_byte_boundary_gives_the_same_messages() {
    let mut whole = interleaved();
    whole.extend(chunk0(2, 0, 1, 0, 4, &64u32.to_be_bytes()));
    let ts = 0x0100_0000;
    whole.extend(chunk0(6, ts, 9, 1, 150, &[8; 64]));
    for n in [64, 22] {
        whole.push(0xc6);
        whole.extend_from_slice(&ts.to_be_bytes());
        whole.extend_from_slice(&vec![8; n]);
    }
    // A type 2 header (delta 40, not extended): the same length, 150 bytes in three chunks.
    whole.extend_from_slice(&[0x86, 0, 0, 40]);
    whole.extend_from_slice(&[9; 64]);
    for n in [64, 22] {
        whole.push(0xc6);
        whole.extend_from_slice(&vec![9; n]);
    }
    let expected = summary(&read_all(&whole).unwrap());
    assert_eq!(expected.len(), 5, "two, chunk size, two more: {expected:?}");
    for a in 0..whole.len() {
        for b in [a, a + 1, a + 17, whole.len()] {
            let b = b.min(whole.len());
            let mut r = ChunkReader::new(Limits::default());
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in [&whole[..a], &whole[a..b], &whole[b..]] {
                buf.extend_from_slice(piece);
                while let Some(m) = r.read(&mut buf).unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(summary(&got), expected, "split at {a} and {b}");
            assert_eq!(r.pending(), 0);
        }
    }
}

#[test]
fn random_bytes_never_panic_and_pending_memory_stays_bounded() {
    let mut rng = fastrand::Rng::with_seed(7);
    let limits = Limits::default();
    let valid = interleaved();
    for _ in 0..3_000 {
        let mut b: Vec<u8> = if rng.bool() {
            valid.clone()
        } else {
            (0..rng.usize(0..2000)).map(|_| rng.u8(..)).collect()
        };
        for _ in 0..rng.usize(0..8) {
            if !b.is_empty() {
                let i = rng.usize(..b.len());
                b[i] = rng.u8(..);
            }
        }
        let mut r = ChunkReader::new(limits);
        let mut buf = BytesMut::new();
        'feed: for piece in b.chunks(rng.usize(1..300)) {
            buf.extend_from_slice(piece);
            loop {
                match r.read(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
                assert!(r.pending() <= limits.pending);
            }
            assert!(buf.len() < 32, "only a partial header is left unread");
        }
    }
}
