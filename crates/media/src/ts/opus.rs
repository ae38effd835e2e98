//! Opus in MPEG-TS, as the draft ETSI specification published by the Opus project (v0.1.3)
//! defines it and ffmpeg writes it: a PES holds Opus packets, each after a control header:
//! `0x7FE0 | flags` (11-bit prefix, start trim, end trim, control
//! extension), the packet's size in bytes of 255 (until one below), the optional trims and
//! extension, then the packet. Sans-I/O, total: every length is bounded by the bytes present.

/// One Opus packet of a PES.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Its start within the PES, µs from the PES's time (from the TOCs before it).
    pub at_us: u64,
    pub data: &'a [u8],
    /// Samples (at 48 kHz) to drop from its start: the encoder's pre-skip, on a stream's first
    /// packet.
    pub start_trim: Option<u16>,
}

/// The Opus packets of a PES payload, in order. Stops at the first malformed control header.
pub fn packets(mut data: &[u8]) -> Vec<Packet<'_>> {
    let mut out = Vec::new();
    let mut at_us = 0u64;
    while data.len() >= 2 && data[0] == 0x7f && data[1] & 0xe0 == 0xe0 {
        let flags = data[1];
        let mut i = 2;
        let mut size = 0usize;
        loop {
            let Some(&b) = data.get(i) else { return out };
            i += 1;
            size += usize::from(b);
            if b != 0xff {
                break;
            }
        }
        // Start trim, end trim: 16 bits each; a control extension: its length, then its bytes.
        let mut start_trim = None;
        if flags & 0x10 != 0 {
            let Some(t) = data.get(i..i + 2) else {
                return out;
            };
            start_trim = Some(u16::from_be_bytes([t[0], t[1]]));
            i += 2;
        }
        i += 2 * usize::from(flags & 0x08 != 0);
        if flags & 0x04 != 0 {
            let Some(&n) = data.get(i) else { return out };
            i += 1 + usize::from(n);
        }
        let Some(packet) = i.checked_add(size).and_then(|end| data.get(i..end)) else {
            return out;
        };
        if !packet.is_empty() {
            out.push(Packet {
                at_us,
                data: packet,
                start_trim,
            });
            at_us += duration_us(packet);
        }
        data = &data[i + size..];
    }
    out
}

/// How long an Opus packet plays, µs (RFC 6716 §3.1: the TOC byte's configuration gives the
/// frame length, its code the number of frames).
pub fn duration_us(packet: &[u8]) -> u64 {
    let Some(&toc) = packet.first() else { return 0 };
    let config = toc >> 3;
    let frame_us: u64 = match config {
        0..=11 => [10_000, 20_000, 40_000, 60_000][usize::from(config % 4)],
        12..=15 => [10_000, 20_000][usize::from(config % 2)],
        _ => [2_500, 5_000, 10_000, 20_000][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => packet.get(1).map_or(0, |b| u64::from(b & 0x3f)),
    };
    frame_us * frames
}

/// Channels an Opus packet codes: its TOC byte's stereo flag.
pub fn channels(packet: &[u8]) -> u8 {
    match packet.first() {
        Some(toc) if toc & 0x04 != 0 => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_headers_frame_packets_and_tocs_time_them() {
        // A 20 ms CELT stereo packet (config 31, code 0) of 3 bytes, then one of 300 bytes
        // (size 255 + 45) with a start trim, then a truncated one.
        let mut pes = vec![0x7f, 0xe0, 3, 0xfc, 1, 2];
        pes.extend_from_slice(&[0x7f, 0xf0, 0xff, 45, 0, 0x38]);
        let mut big = vec![0x7c];
        big.resize(300, 9);
        pes.extend_from_slice(&big);
        pes.extend_from_slice(&[0x7f, 0xe0, 50, 0xfc]);
        let p = packets(&pes);
        assert_eq!(p.len(), 2, "the truncated packet is left out");
        assert_eq!((p[0].at_us, p[0].data), (0, &[0xfc, 1, 2][..]));
        assert_eq!(p[0].start_trim, None);
        assert_eq!(p[1].at_us, 20_000);
        assert_eq!(p[1].data.len(), 300);
        assert_eq!(p[1].start_trim, Some(0x38), "a start trim of 56 samples");
        assert_eq!(channels(p[0].data), 2);
        assert_eq!(channels(&[0x78]), 1);
    }

    #[test]
    fn durations_follow_the_toc() {
        assert_eq!(duration_us(&[0xfc]), 20_000, "CELT 20 ms, one frame");
        assert_eq!(duration_us(&[0xfd]), 40_000, "two frames");
        assert_eq!(duration_us(&[0xff, 0x03]), 60_000, "code 3: three frames");
        assert_eq!(duration_us(&[0x18]), 60_000, "SILK 60 ms");
        assert_eq!(duration_us(&[]), 0);
        assert_eq!(duration_us(&[0xff]), 0, "code 3 without its count");
    }

    #[test]
    fn no_input_panics() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..10_000 {
            let mut d: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
            if d.len() >= 2 {
                d[0] = 0x7f;
                d[1] |= 0xe0;
            }
            for p in packets(&d) {
                let _ = duration_us(p.data);
            }
        }
    }
}
