//! MPEG-TS (ISO/IEC 13818-1): the seek index.
//!
//! ```text
//! packet (188 bytes): 0x47 | TEI PUSI prio PID(13) | scrambling AFC(2) CC(4) | [adaptation] [payload]
//! adaptation field:  length | disc RAI prio PCR OPCR splice private ext | ...
//! PES header:        00 00 01 stream_id len(16) | flags | flags(PTS DTS ..) | hdr_len | PTS [DTS]
//! ```
//! A random access point is a video PES start whose packet carries the adaptation field's
//! random_access_indicator, or (when a muxer does not set it) whose payload holds an H.264 IDR or an
//! H.265 IRAP picture. Its offset is the start of that packet. PTS are 33-bit and wrap about every
//! 26.5 h; they are unwrapped in order ([`Unwrapper`]), and times are made relative to the first
//! frame, so a stream that starts at PTS 95,000 s still starts at 0.

use crate::nal::Codec;
use crate::time::Ts90k;

pub const PACKET: usize = 188;
pub const SYNC: u8 = 0x47;
/// How much of a PES payload to look through for an IDR/IRAP NAL unit (SEI can be long).
const SCAN_LIMIT: usize = 4096;

/// The least time between two cut points of a program without video, live (`Splitter`) or
/// indexed (`index`): 0.5 s, in 90 kHz ticks.
pub const AUDIO_CUT: u64 = 45_000;

/// The first offset where three packets in a row (or all there are) start with the sync byte.
pub fn find_sync(data: &[u8]) -> Option<usize> {
    let limit = data.len().min(PACKET * 8);
    (0..limit.min(PACKET)).find(|&start| {
        let packets = (data.len() - start) / PACKET;
        packets >= 1 && (0..packets.min(3)).all(|i| data[start + i * PACKET] == SYNC)
    })
}

/// A parsed packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub pid: u16,
    pub pusi: bool,
    pub cc: u8,
    pub has_payload: bool,
    pub random_access: bool,
    /// Offset of the payload within the packet.
    pub payload_start: usize,
}

/// Parses a 188-byte packet's header; `None` when it is not a valid packet.
pub fn header(p: &[u8]) -> Option<Header> {
    if p.len() < PACKET || p[0] != SYNC {
        return None;
    }
    let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
    let afc = (p[3] >> 4) & 0x3;
    let mut payload_start = 4;
    let mut random_access = false;
    if afc & 0x2 != 0 {
        let len = usize::from(p[4]);
        if 5 + len > PACKET {
            return None;
        }
        if len > 0 {
            random_access = p[5] & 0x40 != 0;
        }
        payload_start = 5 + len;
    }
    Some(Header {
        pid,
        pusi: p[1] & 0x40 != 0,
        cc: p[3] & 0x0f,
        has_payload: afc & 0x1 != 0 && payload_start < PACKET,
        random_access,
        payload_start,
    })
}

/// Reads a 33-bit timestamp from its 5-byte PES encoding.
pub(crate) fn timestamp(b: &[u8]) -> Ts90k {
    let v = (u64::from(b[0] >> 1) & 0x07) << 30
        | u64::from(b[1]) << 22
        | (u64::from(b[2]) >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4]) >> 1;
    Ts90k(v)
}

/// PTS and DTS from the start of a PES packet, and where its payload begins.
pub fn pes_header(p: &[u8]) -> Option<(Option<Ts90k>, Option<Ts90k>, usize)> {
    if p.len() < 9 || p[..3] != [0, 0, 1] {
        return None;
    }
    let flags = p[7];
    let hdr_end = 9 + usize::from(p[8]);
    let pts = (flags & 0x80 != 0 && p.len() >= 14).then(|| timestamp(&p[9..14]));
    let dts = (flags & 0x40 != 0 && p.len() >= 19).then(|| timestamp(&p[14..19]));
    Some((pts, dts, hdr_end.min(p.len())))
}

/// The section that begins a PSI packet's payload (after the pointer field), bounded by its
/// section_length and the payload: what tests read of a one-packet table. Live input is read
/// with [`psi::Sections`], which gathers sections over packets and checks their CRC.
#[cfg(test)]
pub(crate) fn first_section(payload: &[u8]) -> Option<&[u8]> {
    let pointer = usize::from(*payload.first()?);
    let s = payload.get(1 + pointer..)?;
    if s.len() < 3 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([s[1] & 0x0f, s[2]]));
    s.get(..(3 + len).min(s.len()))
}

/// A table in force now (current_next_indicator), not the next one announced.
fn current(s: &[u8]) -> bool {
    s.get(5).is_some_and(|b| b & 1 == 1)
}

/// The program map PID from a whole PAT section (its first program's).
pub fn pat_pmt_pid(s: &[u8]) -> Option<u16> {
    if *s.first()? != 0x00 || !current(s) {
        return None;
    }
    // 8 bytes of header, 4 of CRC at the end, 4 per program.
    let programs = s.get(8..s.len().checked_sub(4)?)?;
    programs
        .chunks_exact(4)
        .find(|e| u16::from_be_bytes([e[0], e[1]]) != 0)
        .map(|e| u16::from_be_bytes([e[2] & 0x1f, e[3]]))
}

/// An elementary stream declared in the PMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream {
    pub pid: u16,
    pub stream_type: u8,
    /// The format_identifier of a registration descriptor (`Opus`, `HEVC`, `AC-3`...).
    pub registration: Option<[u8; 4]>,
}

/// Elementary streams from a whole PMT section (`None`: not a PMT in force).
pub fn pmt_streams(s: &[u8]) -> Option<Vec<Stream>> {
    let mut out = Vec::new();
    if s.len() < 16 || s[0] != 0x02 || !current(s) {
        return None;
    }
    let info_len = usize::from(u16::from_be_bytes([s[10] & 0x0f, s[11]]));
    let end = s.len() - 4;
    let mut i = 12 + info_len;
    while i + 5 <= end {
        let stream_type = s[i];
        let pid = u16::from_be_bytes([s[i + 1] & 0x1f, s[i + 2]]);
        let es_len = usize::from(u16::from_be_bytes([s[i + 3] & 0x0f, s[i + 4]]));
        let desc = s.get(i + 5..(i + 5 + es_len).min(end)).unwrap_or_default();
        let mut registration = None;
        let mut d = 0;
        while d + 2 <= desc.len() {
            let (tag, len) = (desc[d], usize::from(desc[d + 1]));
            if tag == 0x05 && len >= 4 && d + 6 <= desc.len() {
                registration = Some([desc[d + 2], desc[d + 3], desc[d + 4], desc[d + 5]]);
            }
            d += 2 + len;
        }
        out.push(Stream {
            pid,
            stream_type,
            registration,
        });
        i += 5 + es_len;
    }
    Some(out)
}

/// Codec name of a video stream type, and the NAL syntax to scan it with.
pub fn video_codec(s: &Stream) -> Option<(&'static str, Option<Codec>)> {
    match (s.stream_type, s.registration.as_ref()) {
        (0x1b, _) => Some(("h264", Some(Codec::H264))),
        (0x24, _) | (0x06, Some(b"HEVC")) => Some(("hevc", Some(Codec::H265))),
        (0x01 | 0x02, _) => Some(("mpeg2video", None)),
        (0x10, _) => Some(("mpeg4", None)),
        _ => None,
    }
}

pub fn audio_codec(s: &Stream) -> Option<&'static str> {
    match (s.stream_type, s.registration.as_ref()) {
        (0x0f | 0x11, _) => Some("aac"),
        (0x03 | 0x04, _) => Some("mp3"),
        (0x81, _) | (0x06, Some(b"AC-3")) => Some("ac3"),
        (0x87, _) | (0x06, Some(b"EAC3")) => Some("eac3"),
        (0x06, Some(b"Opus")) => Some("opus"),
        _ => None,
    }
}

mod index;
pub mod mux;
pub mod opus;
pub mod psi;
mod restamp;
mod splitter;

pub use index::{index, Indexer};
pub use restamp::Restamp;
pub use splitter::{Cut, Splitter};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_decode() {
        // PTS 0x1_2345_6789 encoded with marker bits.
        let v: u64 = 0x1_2345_6789;
        let b = [
            0x21 | (((v >> 30) as u8 & 0x7) << 1),
            (v >> 22) as u8,
            (((v >> 15) as u8) << 1) | 1,
            (v >> 7) as u8,
            ((v as u8) << 1) | 1,
        ];
        assert_eq!(timestamp(&b), Ts90k(v));
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = fastrand::Rng::with_seed(9);
        for _ in 0..2000 {
            let n = rng.usize(0..PACKET * 6);
            let mut d: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
            for i in (0..d.len()).step_by(PACKET) {
                if rng.bool() {
                    d[i] = SYNC;
                }
            }
            let _ = index(&d);
        }
    }
}
