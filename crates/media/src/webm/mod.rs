//! Matroska and WebM (EBML): the seek index.
//!
//! ```text
//! EBML header (DocType) | Segment ---------------------------------------------------------------
//!                         SeekHead  Info(TimecodeScale, Duration)  Tracks(TrackEntry*)  Cues  Cluster*
//! Cluster: Timecode | SimpleBlock* | BlockGroup(Block, ReferenceBlock?)*
//! SimpleBlock: track(vint) | timecode(i16, relative to the cluster) | flags (0x80 = keyframe) | data
//! ```
//! Element sizes are EBML variable-length integers; "unknown size" (all ones, as live muxers write)
//! is supported for Segment and Cluster: such a cluster ends where the next top-level element begins.
//! Keyframes come from `Cues` when they index the video track; otherwise from one scan of the
//! clusters. A title without video is cut at its Clusters: the first audio track's Cues, else
//! the first audio block of each Cluster. Offsets are the start of the Cluster element holding
//! the keyframe: a player can start parsing there.

use crate::error::{Error, Result};
use crate::info::{Container, MediaInfo};

pub mod dash;
mod parts;
pub mod ranged;

pub(crate) use parts::Parts;

pub(crate) const EBML: u32 = 0x1A45_DFA3;
const DOC_TYPE: u32 = 0x4282;
pub(crate) const SEGMENT: u32 = 0x1853_8067;
pub(crate) const INFO: u32 = 0x1549_A966;
pub(crate) const TIMECODE_SCALE: u32 = 0x2A_D7B1;
pub(crate) const DURATION: u32 = 0x4489;
pub(crate) const TRACKS: u32 = 0x1654_AE6B;
pub(crate) const TRACK_ENTRY: u32 = 0xAE;
pub(crate) const TRACK_NUMBER: u32 = 0xD7;
pub(crate) const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const DEFAULT_DURATION: u32 = 0x23_E383;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;
pub(crate) const CUES: u32 = 0x1C53_BB6B;
pub(crate) const CUE_POINT: u32 = 0xBB;
pub(crate) const CUE_TIME: u32 = 0xB3;
pub(crate) const CUE_TRACK_POSITIONS: u32 = 0xB7;
pub(crate) const CUE_TRACK: u32 = 0xF7;
pub(crate) const CUE_CLUSTER_POSITION: u32 = 0xF1;
pub(crate) const CLUSTER: u32 = 0x1F43_B675;
pub(crate) const TIMECODE: u32 = 0xE7;
pub(crate) const SIMPLE_BLOCK: u32 = 0xA3;
pub(crate) const BLOCK_GROUP: u32 = 0xA0;
pub(crate) const BLOCK: u32 = 0xA1;
const REFERENCE_BLOCK: u32 = 0xFB;
/// Elements that live directly in a Segment: one of these ends an unknown-size Cluster.
pub(crate) const SEGMENT_LEVEL: [u32; 8] = [
    CLUSTER,
    CUES,
    INFO,
    TRACKS,
    0x114D_9B74,
    0x1254_C367,
    0x1043_A770,
    0x1941_A469,
];

/// An element header: its ID, where it starts, where its data starts and ends (`None` = unknown).
#[derive(Debug, Clone, Copy)]
pub(crate) struct El {
    pub id: u32,
    pub start: usize,
    pub data: usize,
    pub end: Option<usize>,
}

fn truncated(what: &'static str, at: usize, needed: usize, limit: usize) -> Error {
    Error::Truncated {
        what,
        offset: at as u64,
        needed: needed as u64,
        available: limit.saturating_sub(at) as u64,
    }
}

/// Reads an EBML variable-length integer at `pos`; returns (value, length, all-ones).
fn vint(data: &[u8], pos: usize, limit: usize, keep_marker: bool) -> Result<(u64, usize, bool)> {
    let first = *data
        .get(pos)
        .filter(|_| pos < limit)
        .ok_or_else(|| truncated("ebml vint", pos, 1, limit))?;
    if first == 0 {
        return Err(Error::malformed(
            "ebml",
            format!("invalid variable-length integer at {pos}"),
        ));
    }
    let len = first.leading_zeros() as usize + 1;
    if pos + len > limit.min(data.len()) {
        return Err(truncated("ebml vint", pos, len, limit));
    }
    let mask = if keep_marker {
        0xff
    } else {
        (0xffu16 >> len) as u8
    };
    let mut v = u64::from(first & mask);
    let mut ones = !keep_marker && first & mask == mask;
    for &b in &data[pos + 1..pos + len] {
        v = (v << 8) | u64::from(b);
        ones &= b == 0xff;
    }
    Ok((v, len, ones))
}

pub(crate) fn element(data: &[u8], pos: usize, limit: usize) -> Result<El> {
    let (id, id_len, _) = vint(data, pos, limit, true)?;
    if id_len > 4 {
        return Err(Error::malformed(
            "ebml",
            format!("element ID longer than 4 bytes at {pos}"),
        ));
    }
    let (size, size_len, unknown) = vint(data, pos + id_len, limit, false)?;
    let body = pos + id_len + size_len;
    let end = if unknown {
        None
    } else {
        Some(
            usize::try_from(size)
                .ok()
                .and_then(|s| body.checked_add(s))
                .ok_or_else(|| {
                    Error::malformed("ebml", format!("element size overflows at {pos}"))
                })?,
        )
    };
    Ok(El {
        id: id as u32,
        start: pos,
        data: body,
        end,
    })
}

/// Calls `f` for each child in `[start, end)`; an element that overruns its parent is an error.
pub(crate) fn children(
    data: &[u8],
    start: usize,
    end: usize,
    mut f: impl FnMut(El) -> Result<()>,
) -> Result<()> {
    let mut pos = start;
    while pos < end {
        let el = element(data, pos, end)?;
        let el_end = el.end.unwrap_or(end);
        if el_end > end {
            return Err(truncated("ebml element", el.start, el_end - el.start, end));
        }
        f(El {
            end: Some(el_end),
            ..el
        })?;
        pos = el_end;
    }
    Ok(())
}

/// Writes an element: its ID, an 8-byte size, its body.
pub(crate) fn put(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_head(out, id, body.len() as u64);
    out.extend_from_slice(body);
}

/// Writes an element's ID and an 8-byte size (`len` bytes of body to follow).
pub(crate) fn put_head(out: &mut Vec<u8>, id: u32, len: u64) {
    let id_bytes = id.to_be_bytes();
    let skip = id_bytes.iter().position(|&b| b != 0).unwrap_or(3);
    out.extend_from_slice(&id_bytes[skip..]);
    out.push(0x01);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
}

pub(crate) fn put_uint(out: &mut Vec<u8>, id: u32, v: u64) {
    put(out, id, &v.to_be_bytes());
}

pub(crate) fn body(data: &[u8], el: El) -> &[u8] {
    &data[el.data..el.end.unwrap_or(el.data).min(data.len())]
}

pub(crate) fn uint(b: &[u8]) -> u64 {
    b.iter().take(8).fold(0, |v, &x| (v << 8) | u64::from(x))
}

fn float(b: &[u8]) -> Option<f64> {
    match b.len() {
        4 => Some(f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
        8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Some(f64::from_be_bytes(a))
        }
        _ => None,
    }
}

/// True when the EBML header says `DocType` is `webm`.
pub fn is_webm(data: &[u8]) -> bool {
    doc_type(data).is_some_and(|d| d == b"webm")
}

fn doc_type(data: &[u8]) -> Option<&[u8]> {
    let head = element(data, 0, data.len()).ok()?;
    if head.id != EBML {
        return None;
    }
    let mut out = None;
    let end = head.end?.min(data.len());
    children(data, head.data, end, |c| {
        if c.id == DOC_TYPE {
            out = Some(body(data, c));
        }
        Ok(())
    })
    .ok()?;
    out
}

#[derive(Debug, Default, Clone)]
struct Track {
    number: u64,
    kind: u64,
    codec: String,
    default_duration: Option<u64>,
    width: Option<u32>,
    height: Option<u32>,
    sample_rate: Option<u32>,
    channels: Option<u16>,
}

fn parse_track(data: &[u8], e: El) -> Result<Track> {
    let mut t = Track::default();
    children(data, e.data, e.end.unwrap_or(e.data), |c| {
        let b = body(data, c);
        match c.id {
            TRACK_NUMBER => t.number = uint(b),
            TRACK_TYPE => t.kind = uint(b),
            CODEC_ID => t.codec = String::from_utf8_lossy(b).into_owned(),
            DEFAULT_DURATION => t.default_duration = Some(uint(b)),
            VIDEO => children(data, c.data, c.end.unwrap_or(c.data), |v| {
                match v.id {
                    PIXEL_WIDTH => t.width = u32::try_from(uint(body(data, v))).ok(),
                    PIXEL_HEIGHT => t.height = u32::try_from(uint(body(data, v))).ok(),
                    _ => {}
                }
                Ok(())
            })?,
            AUDIO => children(data, c.data, c.end.unwrap_or(c.data), |a| {
                match a.id {
                    SAMPLING_FREQUENCY => t.sample_rate = float(body(data, a)).map(|f| f as u32),
                    CHANNELS => t.channels = u16::try_from(uint(body(data, a))).ok(),
                    _ => {}
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(t)
}

fn codec_name(id: &str) -> String {
    match id {
        "V_VP9" => "vp9",
        "V_VP8" => "vp8",
        "V_AV1" => "av1",
        "V_MPEG4/ISO/AVC" => "h264",
        "V_MPEGH/ISO/HEVC" => "hevc",
        "A_OPUS" => "opus",
        "A_VORBIS" => "vorbis",
        "A_AAC" => "aac",
        other => return other.to_ascii_lowercase(),
    }
    .into()
}

/// A video block seen in a cluster scan: (time in timecode-scale units, cluster offset, keyframe).
pub(crate) type Block = (i64, u64, bool);

/// Scans one cluster's blocks; returns where the cluster ends (for unknown-size clusters: at the
/// next segment-level element).
pub(crate) fn scan_cluster(
    data: &[u8],
    c: El,
    limit: usize,
    video: u64,
    out: &mut Vec<Block>,
) -> Result<usize> {
    let end = c.end.unwrap_or(limit).min(limit);
    let mut tc: i64 = 0;
    let mut pos = c.data;
    while pos < end {
        let el = element(data, pos, end)?;
        if c.end.is_none() && SEGMENT_LEVEL.contains(&el.id) {
            return Ok(pos);
        }
        let el_end = el.end.unwrap_or(end);
        if el_end > end {
            // A truncated last cluster: stop at the last whole element.
            return Ok(end);
        }
        match el.id {
            TIMECODE => tc = uint(body(data, el)).min(i64::MAX as u64) as i64,
            SIMPLE_BLOCK => block(data, el.data, el_end, tc, c.start, None, video, out)?,
            BLOCK_GROUP => {
                if let Some((s, e, key)) = block_group(data, el.data, el_end)? {
                    block(data, s, e, tc, c.start, Some(key), video, out)?;
                }
            }
            _ => {}
        }
        pos = el_end;
    }
    Ok(end)
}

/// A BlockGroup's Block (where its data lies) and whether it is a keyframe (no ReferenceBlock).
pub(crate) fn block_group(
    data: &[u8],
    start: usize,
    end: usize,
) -> Result<Option<(usize, usize, bool)>> {
    let (mut b, mut referenced) = (None, false);
    children(data, start, end, |g| {
        match g.id {
            BLOCK => b = Some((g.data, g.end.unwrap_or(g.data))),
            REFERENCE_BLOCK => referenced = true,
            _ => {}
        }
        Ok(())
    })?;
    Ok(b.map(|(s, e)| (s, e, !referenced)))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn block(
    data: &[u8],
    start: usize,
    end: usize,
    cluster_tc: i64,
    cluster: usize,
    key: Option<bool>,
    video: u64,
    out: &mut Vec<Block>,
) -> Result<()> {
    let (track, n, _) = vint(data, start, end, false)?;
    if track != video {
        return Ok(());
    }
    let h = start + n;
    if h + 3 > end {
        return Err(truncated("webm block", h, 3, end));
    }
    let rel = i64::from(i16::from_be_bytes([data[h], data[h + 1]]));
    let key = key.unwrap_or(data[h + 2] & 0x80 != 0);
    out.push((cluster_tc.saturating_add(rel), cluster as u64, key));
    Ok(())
}

/// Indexes a WebM/Matroska file held in memory.
/// Where the EBML header ends, and the Segment element.
pub(crate) fn segment(data: &[u8]) -> Result<(usize, El)> {
    let head = element(data, 0, data.len())?;
    let header_end = head
        .end
        .filter(|&e| e <= data.len())
        .ok_or_else(|| Error::malformed("ebml", "EBML header of unknown size"))?;
    let mut pos = header_end;
    loop {
        let el = element(data, pos, data.len())?;
        if el.id == SEGMENT {
            return Ok((header_end, el));
        }
        pos = el
            .end
            .ok_or_else(|| Error::malformed("ebml", "element of unknown size before Segment"))?;
    }
}

pub fn index(data: &[u8], container: Container) -> Result<MediaInfo> {
    let (_, seg) = segment(data)?;
    let seg_end = seg.end.unwrap_or(data.len()).min(data.len());
    let mut parts = Parts::default();
    let mut pos = seg.data;
    while pos < seg_end {
        let el = match element(data, pos, seg_end) {
            Ok(el) => el,
            Err(Error::Truncated { .. }) => break,
            Err(e) => return Err(e),
        };
        let declared_end = el.end.unwrap_or(seg_end);
        let end = declared_end.min(seg_end);
        if el.id == CLUSTER {
            let next = scan_cluster(data, el, seg_end, parts.lead_number(), &mut parts.blocks)?;
            pos = next.max(el.data);
            if pos == el.data {
                break;
            }
            continue;
        }
        parts.element(data, el, end)?;
        if el.end.is_none() {
            break;
        }
        pos = end;
    }
    Ok(parts.info(container, seg.data as u64, data.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vints() {
        assert_eq!(vint(&[0x81], 0, 1, false).unwrap(), (1, 1, false));
        assert_eq!(vint(&[0x40, 0x02], 0, 2, false).unwrap(), (2, 2, false));
        assert!(
            vint(&[0xff], 0, 1, false).unwrap().2,
            "all ones is unknown size"
        );
        assert!(
            vint(&[0x01, 0, 0], 0, 3, false).is_err(),
            "truncated 8-byte vint"
        );
        assert!(vint(&[0x00], 0, 1, false).is_err());
        assert_eq!(
            vint(&[0x1a, 0x45, 0xdf, 0xa3], 0, 4, true).unwrap().0,
            u64::from(EBML)
        );
    }

    #[test]
    fn garbage_never_panics() {
        let base: Vec<u8> = vec![
            0x1a, 0x45, 0xdf, 0xa3, 0x84, 0x42, 0x82, 0x81, b'w', 0x18, 0x53, 0x80, 0x67, 0xff,
            0x1f, 0x43, 0xb6, 0x75, 0xff, 0xe7, 0x81, 0x00, 0xa3, 0x85, 0x81, 0, 0, 0x80, 0,
        ];
        crate::mutations(&base, 5, 20_000, |d| {
            let _ = index(d, Container::WebM);
        });
    }
}
