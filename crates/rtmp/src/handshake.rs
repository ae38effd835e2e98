//! The server side of the plain RTMP handshake.
//!
//! ```text
//! client: C0 (version 3) C1 (1536: time(4) zero(4) random(1528))            C2 (1536, ignored)
//! server:                S0 (3) S1 (time(4) zero(4) bytes(1528)) S2 (= C1)
//! ```
//! S1's version bytes are zero, which tells ffmpeg and librtmp (OBS) clients that this server does
//! not do the digest ("FP9") handshake, so they skip validating one. S1's 1528 bytes only need to
//! differ from connection to connection in principle; they are derived from C1 (no randomness,
//! no clock: the caller passes the time field).

use crate::Error;
use bytes::{Buf, BytesMut};

/// The size of C1, C2, S1 and S2.
pub const SIZE: usize = 1536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for C0 and C1.
    C0C1,
    /// S0 S1 S2 sent; waiting for C2.
    C2,
    Done,
}

/// A server handshake in progress.
#[derive(Debug)]
pub struct Handshake {
    stage: Stage,
    /// S1's time field (milliseconds since some epoch of the caller's choosing; 0 is fine).
    time: u32,
}

impl Handshake {
    pub fn new(time: u32) -> Self {
        Handshake {
            stage: Stage::C0C1,
            time,
        }
    }

    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Consumes handshake bytes from the front of `input` and appends the answer to `out`.
    /// Returns true once the handshake is complete; the bytes after it stay in `input` (the
    /// start of the chunk stream).
    pub fn input(&mut self, input: &mut BytesMut, out: &mut Vec<u8>) -> Result<bool, Error> {
        if self.stage == Stage::C0C1 {
            let Some(c1) = input.get(1..1 + SIZE) else {
                // C0 can be judged as soon as it is here.
                if let Some(&v) = input.first() {
                    check_version(v)?;
                }
                return Ok(false);
            };
            check_version(input.first().copied().unwrap_or(0))?;
            out.reserve(1 + 2 * SIZE);
            out.push(3);
            out.extend_from_slice(&self.time.to_be_bytes());
            out.extend_from_slice(&[0; 4]);
            // Bytes that look random enough to a client and cost nothing: C1's, scrambled.
            let mut x: u32 = 0x9e37_79b9 ^ self.time;
            for &b in c1.get(8..).unwrap_or_default() {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223) ^ u32::from(b);
                out.push((x >> 24) as u8);
            }
            out.extend_from_slice(c1);
            input.advance(1 + SIZE);
            self.stage = Stage::C2;
        }
        if self.stage == Stage::C2 {
            if input.len() < SIZE {
                return Ok(false);
            }
            input.advance(SIZE);
            self.stage = Stage::Done;
        }
        Ok(true)
    }
}

fn check_version(v: u8) -> Result<(), Error> {
    if v == 3 {
        Ok(())
    } else {
        Err(Error::HandshakeVersion(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c0c1() -> Vec<u8> {
        let mut c = vec![3u8, 0, 0, 1, 0, 9, 0, 124, 2];
        c.extend((0..SIZE - 8).map(|i| (i * 13) as u8));
        c
    }

    #[test]
    fn s0_s1_s2_then_the_bytes_after_c2_are_left_for_the_chunk_stream() {
        let mut hs = Handshake::new(77);
        let mut input = BytesMut::from(&c0c1()[..]);
        let mut out = Vec::new();
        assert!(!hs.input(&mut input, &mut out).unwrap());
        assert_eq!(out.len(), 1 + 2 * SIZE);
        assert_eq!(out[0], 3);
        assert_eq!(&out[1..9], &[0, 0, 0, 77, 0, 0, 0, 0], "time, zero version");
        assert_eq!(&out[1 + SIZE..], &c0c1()[1..], "S2 echoes C1");
        input.extend_from_slice(&[5u8; SIZE]);
        input.extend_from_slice(b"rest");
        let mut more = Vec::new();
        assert!(hs.input(&mut input, &mut more).unwrap());
        assert!(more.is_empty());
        assert_eq!(&input[..], b"rest");
    }

    #[test]
    fn the_handshake_split_at_every_byte_gives_the_same_answer() {
        let mut all = c0c1();
        all.extend_from_slice(&[1u8; SIZE]);
        let mut whole = Vec::new();
        Handshake::new(0)
            .input(&mut BytesMut::from(&all[..]), &mut whole)
            .unwrap();
        for cut in 0..all.len() {
            let mut hs = Handshake::new(0);
            let mut out = Vec::new();
            let mut input = BytesMut::from(&all[..cut]);
            let early = hs.input(&mut input, &mut out).unwrap();
            input.extend_from_slice(&all[cut..]);
            assert!(
                early || hs.input(&mut input, &mut out).unwrap(),
                "cut {cut}"
            );
            assert_eq!(out, whole, "cut {cut}");
            assert!(input.is_empty());
        }
    }

    #[test]
    fn a_version_other_than_3_is_refused_at_once() {
        let mut out = Vec::new();
        let r = Handshake::new(0).input(&mut BytesMut::from(&b"G"[..]), &mut out);
        assert_eq!(r, Err(Error::HandshakeVersion(b'G')));
    }
}
