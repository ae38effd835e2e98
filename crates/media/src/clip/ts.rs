//! A clip of an MPEG-TS title: the title's PAT and PMT packets, then its packets from the video
//! keyframe at or before the start to the keyframe at or after the end, cut at packet boundaries.
//!
//! ```text
//! title: PAT PMT ... | kf(start) v a v v a ... | kf(end) ...
//! clip:  PAT' PMT'     kf(start) v a v v a ...            (PAT', PMT': continuity counters set
//!                                                          to run on into the clip's own copies)
//! ```
//! Only the head's packets (the PAT's and the PMT's, one each with most muxers) are written; the
//! rest is one range of the title's bytes.

use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::info::MediaInfo;
use crate::time::MediaTime;
use crate::ts::psi::{Sections, SECTION_PACKETS};
use crate::ts::{find_sync, header, pat_pmt_pid, pmt_streams, Header, PACKET};

/// The clip of `data` (an MPEG-TS title indexed as `info`) from the keyframe at or before `from`
/// to the keyframe at or after `to` (`None`: to the end).
pub fn clip(data: &[u8], info: &MediaInfo, from: MediaTime, to: Option<MediaTime>) -> Result<Clip> {
    clip_with(data, info, &Tables::find(data)?, from, to)
}

/// The title's PAT and PMT packets (every packet of each section), found once for any number
/// of clips.
#[derive(Debug, Clone)]
pub struct Tables<'a>(Vec<(Header, &'a [u8])>);

impl<'a> Tables<'a> {
    pub fn find(data: &'a [u8]) -> Result<Tables<'a>> {
        tables(data)
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
    let mut head = Vec::with_capacity(tables.0.len() * PACKET);
    for (i, &(h, packet)) in tables.0.iter().enumerate() {
        // The next packet of the same PID in the clip continues from the counter of this PID's
        // last packet in the head; those before it count up to it.
        let next = packets(&data[lo as usize..hi as usize]).find(|(n, _)| n.pid == h.pid);
        let after = tables.0[i + 1..].iter().filter(|(t, _)| t.pid == h.pid);
        let mut p = packet.to_vec();
        if let Some((n, _)) = next {
            let cc = n.cc.wrapping_sub(1).wrapping_sub(after.count() as u8);
            p[3] = (p[3] & 0xf0) | (cc & 0x0f);
        }
        head.extend_from_slice(&p);
    }
    Ok(Clip {
        head,
        body: std::iter::once(lo..hi).collect(),
        start: start.keyframe.time,
        end: end.map_or(info.duration, |e| e.keyframe.time),
    })
}

/// Whole packets of `data`, from its first byte.
fn packets(data: &[u8]) -> impl Iterator<Item = (Header, &[u8])> {
    data.chunks_exact(PACKET)
        .filter_map(|p| header(p).map(|h| (h, p)))
}

/// The packets of the first whole PAT and of the first whole PMT of the program it names (most
/// muxers write each in one packet; a long PMT runs on in the PID's next packets).
fn tables(data: &[u8]) -> Result<Tables<'_>> {
    let start = find_sync(data).unwrap_or(0);
    let (mut pat, mut pmt) = (Sections::default(), Sections::default());
    let mut pat_packets: Vec<(Header, &[u8])> = Vec::new();
    let mut pmt_packets: Vec<(Header, &[u8])> = Vec::new();
    let mut program = None;
    for (h, p) in packets(&data[start..]).filter(|(h, _)| h.has_payload) {
        let payload = &p[h.payload_start..];
        match program {
            None if h.pid == 0 => {
                if h.pusi {
                    pat_packets.clear();
                }
                pat_packets.push((h, p));
                let mut found = None;
                pat.push(h.pusi, payload, |s| found = pat_pmt_pid(s).or(found));
                program = found;
            }
            Some(pid) if h.pid == pid && (h.pusi || !pmt_packets.is_empty()) => {
                // A section begins at the start of a PUSI packet's payload unless its pointer
                // says the one before ends there first (then that one's packets stay).
                let pointer = payload.first().copied().unwrap_or(0);
                if h.pusi && (pointer == 0 || pmt_packets.len() >= SECTION_PACKETS) {
                    pmt_packets.clear();
                }
                pmt_packets.push((h, p));
                let mut whole = false;
                pmt.push(h.pusi, payload, |s| whole |= pmt_streams(s).is_some());
                if whole {
                    pat_packets.extend(pmt_packets);
                    return Ok(Tables(pat_packets));
                }
            }
            _ => {}
        }
    }
    Err(Error::malformed(
        "mpegts clip",
        "no PAT and PMT to start the clip with",
    ))
}
