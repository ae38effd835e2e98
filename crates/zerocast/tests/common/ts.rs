//! MPEG-TS and HTTP body checks shared by the live and RTMP tests: continuity counters, what a
//! viewer must get first, keyframe positions, and chunked-body decoding.

use media::ts::{Cut, Splitter};

pub const PACKET: usize = media::ts::PACKET;

/// One continuity-counter gap: a packet of `pid` (at packet index `packet`) whose counter is not
/// the one after the previous packet's of the same PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub pid: u16,
    pub packet: usize,
    pub prev: u8,
    pub got: u8,
}

/// Continuity-counter gaps per PID over whole packets (the first packet of each PID excepted;
/// packets without payload, null packets and packets flagged discontinuous do not count, as in
/// ISO 13818-1).
pub fn cc_gaps(ts: &[u8]) -> Vec<Gap> {
    let mut last: std::collections::HashMap<u16, u8> = Default::default();
    let mut gaps = Vec::new();
    for (i, p) in ts.chunks_exact(PACKET).enumerate() {
        let h = media::ts::header(p).expect("every packet has the sync byte");
        if !h.has_payload || h.pid == 0x1fff {
            continue;
        }
        let disc = p[3] & 0x20 != 0 && p[4] > 0 && p[5] & 0x80 != 0;
        if let Some(prev) = last.insert(h.pid, h.cc) {
            if !disc && h.cc != (prev + 1) & 0x0f {
                gaps.push(Gap {
                    pid: h.pid,
                    packet: i,
                    prev,
                    got: h.cc,
                });
            }
        }
    }
    gaps
}

/// Every PID's continuity counters run without a gap.
#[track_caller]
pub fn assert_continuous(ts: &[u8], what: &str) {
    let gaps = cc_gaps(ts);
    assert!(
        gaps.is_empty(),
        "{what}: {} continuity gaps in {} packets, first ones {:?}",
        gaps.len(),
        ts.len() / PACKET,
        &gaps[..gaps.len().min(5)]
    );
}

/// What the splitter finds in the whole packets of `ts`.
pub fn cuts(ts: &[u8]) -> Vec<Cut> {
    let mut cuts = Vec::new();
    let whole = ts.len() / PACKET * PACKET;
    Splitter::default().feed(&ts[..whole], &mut cuts).unwrap();
    cuts
}

/// Byte offsets of the video keyframes' first packets in `ts`.
pub fn keyframes(ts: &[u8]) -> Vec<usize> {
    cuts(ts)
        .into_iter()
        .filter_map(|c| match c {
            Cut::Keyframe { at, .. } => Some(at),
            _ => None,
        })
        .collect()
}

/// The first three things a viewer gets must be PAT, a whole PMT, then a keyframe's first
/// packet.
#[track_caller]
pub fn assert_starts_with_psi_and_keyframe(ts: &[u8]) {
    assert!(ts.len() >= 3 * PACKET, "only {} bytes", ts.len());
    let cuts = cuts(ts);
    assert!(
        matches!(
            cuts[..],
            [
                Cut::Pat(0),
                Cut::Pmt(188),
                Cut::PmtWhole(188),
                Cut::Keyframe { at: 376, .. },
                ..
            ]
        ),
        "first cuts: {:?}",
        &cuts[..cuts.len().min(5)]
    );
}

/// Decodes a chunked body; stops at an incomplete chunk. Returns the data and whether the last
/// chunk (the clean end) was seen.
pub fn dechunk(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let n =
            usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return (out, true);
        }
        if raw.len() < eol + 2 + n + 2 {
            return (out, false);
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + n]);
        raw = &raw[eol + 2 + n + 2..];
    }
}

/// One FLV tag: (type, first body byte, second body byte, timestamp in ms).
pub type FlvTag = (u8, u8, u8, u32);

/// The whole tags of an FLV byte stream (after its 13-byte header), as far as it is whole.
pub fn flv_tags(flv: &[u8]) -> Vec<FlvTag> {
    let mut at = 13;
    let mut out = Vec::new();
    while at + 11 <= flv.len() {
        let size = u32::from_be_bytes([0, flv[at + 1], flv[at + 2], flv[at + 3]]) as usize;
        if at + 11 + size + 4 > flv.len() || size < 2 {
            break;
        }
        let ts = u32::from_be_bytes([flv[at + 7], flv[at + 4], flv[at + 5], flv[at + 6]]);
        out.push((flv[at], flv[at + 11], flv[at + 12], ts));
        at += 11 + size + 4;
    }
    out
}

/// Timestamps of the coded video frames (AVC NALU packets, not sequence headers) of an FLV byte
/// stream.
pub fn flv_video_times(flv: &[u8]) -> Vec<u32> {
    flv_tags(flv)
        .into_iter()
        .filter(|t| t.0 == 9 && t.2 == 1)
        .map(|t| t.3)
        .collect()
}

/// The PTS (seconds) of every keyframe in `ts`, in stream order.
pub fn keyframe_pts(ts: &[u8]) -> Vec<f64> {
    cuts(ts)
        .into_iter()
        .filter_map(|c| match c {
            Cut::Keyframe { pts: Some(p), .. } => Some(p.0 as f64 / 90_000.0),
            _ => None,
        })
        .collect()
}
