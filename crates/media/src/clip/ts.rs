//! A clip of an MPEG-TS title: the title's PAT and PMT packets, then its packets from the video
//! keyframe at or before the start to the keyframe at or after the end, cut at packet boundaries.
//!
//! ```text
//! title: PAT PMT ... | kf(start) v a v v a ... | kf(end) ...
//! clip:  PAT' PMT'     kf(start) v a v v a ...            (PAT', PMT': continuity counters set
//!                                                          to run on into the clip's own copies)
//! ```
//! Only the two head packets are written; the rest is one range of the title's bytes.

use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::info::MediaInfo;
use crate::time::MediaTime;
use crate::ts::{find_sync, header, pat_pmt_pid, Header, PACKET};

/// The clip of `data` (an MPEG-TS title indexed as `info`) from the keyframe at or before `from`
/// to the keyframe at or after `to` (`None`: to the end).
pub fn clip(data: &[u8], info: &MediaInfo, from: MediaTime, to: Option<MediaTime>) -> Result<Clip> {
    clip_with(data, info, &Tables::find(data)?, from, to)
}

/// The title's PAT and PMT packets, found once for any number of clips.
#[derive(Debug, Clone, Copy)]
pub struct Tables<'a>([(Header, &'a [u8]); 2]);

impl<'a> Tables<'a> {
    pub fn find(data: &'a [u8]) -> Result<Tables<'a>> {
        tables(data).map(Tables)
    }
}

/// [`clip`] with the title's tables already found.
pub fn clip_with(
    data: &[u8],
    info: &MediaInfo,
    tables: &Tables<'_>,
    from: MediaTime,
    to: Option<MediaTime>,
) -> Result<Clip> {
    let (start, end) = info.clip_span(from, to)?;
    let lo = start.keyframe.offset.min(data.len() as u64);
    // The last whole packet after `lo` bounds an open-ended clip.
    let whole = lo + (data.len() as u64).saturating_sub(lo) / PACKET as u64 * PACKET as u64;
    let hi = end.map_or(whole, |e| e.keyframe.offset.clamp(lo, whole));
    let mut head = Vec::with_capacity(2 * PACKET);
    for &(h, packet) in &tables.0 {
        // The next packet of the same PID in the clip continues from this one's counter.
        let next = packets(&data[lo as usize..hi as usize]).find(|(n, _)| n.pid == h.pid);
        let mut p = packet.to_vec();
        if let Some((n, _)) = next {
            p[3] = (p[3] & 0xf0) | (n.cc.wrapping_sub(1) & 0x0f);
        }
        head.extend_from_slice(&p);
    }
    Ok(Clip {
        head,
        body: lo..hi,
        start: start.keyframe.time,
        end: end.map_or(info.duration, |e| e.keyframe.time),
    })
}

/// Whole packets of `data`, from its first byte.
fn packets(data: &[u8]) -> impl Iterator<Item = (Header, &[u8])> {
    data.chunks_exact(PACKET)
        .filter_map(|p| header(p).map(|h| (h, p)))
}

/// The first PAT and the first packet of the PMT it names (both whole sections in one packet, as
/// every muxer writes them).
fn tables(data: &[u8]) -> Result<[(Header, &[u8]); 2]> {
    let start = find_sync(data).unwrap_or(0);
    let mut pat = None;
    for (h, p) in packets(&data[start..]) {
        let payload = &p[h.payload_start..];
        match pat {
            None if h.pid == 0 && h.pusi => {
                if let Some(pmt) = pat_pmt_pid(payload) {
                    pat = Some((h, p, pmt));
                }
            }
            Some((ph, pp, pmt)) if h.pid == pmt && h.pusi => return Ok([(ph, pp), (h, p)]),
            _ => {}
        }
    }
    Err(Error::malformed(
        "mpegts clip",
        "no PAT and PMT to start the clip with",
    ))
}
