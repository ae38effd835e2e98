//! A clip of a WebM/Matroska title: its EBML header, a Segment of unknown size holding its Info
//! (with the clip's Duration), its Tracks and new Cues, then whole Clusters: from the one that
//! holds the keyframe at or before the start through the one that holds the keyframe at or
//! after the end (to just before that one where the end keyframe opens it).
//!
//! ```text
//! title: EBML | Segment [SeekHead Info Tracks Cues Cluster ... Cluster(kf) ... Cluster(kf) ...]
//! clip:  EBML | Segment(unknown size) [Info' Tracks Cues'] Cluster(kf) ...      (title bytes)
//! ```
//! A Cluster may hold several keyframes (1 s GOPs in 5 s Clusters, as mkvmerge writes them), so
//! the clip can reach past the keyframes that bound it on either side: its Duration runs from
//! the first kept Cluster's timecode to the end of what is sent (the next Cluster's timecode, or
//! the title's end). Cluster and block timestamps stay the title's (as in a TS clip); the Cues
//! name each kept Cluster that holds a keyframe, at its place in the clip.

use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::info::MediaInfo;
use crate::time::MediaTime;
use crate::webm::{
    body, children, element, put, put_uint, scan_cluster, uint, El, Parts, BLOCK_GROUP, CLUSTER,
    CUES, CUE_CLUSTER_POSITION, CUE_POINT, CUE_TIME, CUE_TRACK, CUE_TRACK_POSITIONS, DURATION,
    INFO, SEGMENT, SIMPLE_BLOCK, TIMECODE, TRACKS,
};

/// A kept Cluster: where it is in the title, its timecode, and the time of its first keyframe
/// of the lead track (`None`: it holds none).
struct Kept {
    offset: usize,
    timecode: u64,
    key: Option<u64>,
}

/// See the module documentation; `info` is the title's index.
pub fn clip(data: &[u8], info: &MediaInfo, from: MediaTime, to: Option<MediaTime>) -> Result<Clip> {
    let (start, end) = info.clip_span(from, to)?;
    let (header_end, seg) = crate::webm::segment(data)?;
    let seg_end = seg.end.unwrap_or(data.len()).min(data.len());
    // The Segment's top-level elements before the first Cluster: Info and Tracks.
    let (mut info_el, mut tracks_el, mut first_cluster) = (None, None, None);
    let mut parts = Parts::default();
    let mut pos = seg.data;
    while pos < seg_end {
        let el = element(data, pos, seg_end)?;
        match el.id {
            INFO => info_el = Some(el),
            TRACKS => tracks_el = Some(el),
            CLUSTER => {
                first_cluster = Some(pos);
                break;
            }
            _ => {}
        }
        if matches!(el.id, INFO | TRACKS) {
            parts.element(data, el, el.end.unwrap_or(seg_end).min(seg_end))?;
        }
        pos = match el.end {
            Some(e) => e.min(seg_end),
            None => break,
        };
    }
    let info_el = info_el.ok_or_else(|| Error::malformed("webm clip", "no Info"))?;
    let tracks_el = tracks_el.ok_or_else(|| Error::malformed("webm clip", "no Tracks"))?;
    let lead = parts.lead_number();
    let audio = !parts.has_video();

    // The Cluster of the end keyframe, and whether an earlier keyframe of the index is in it.
    let keys = &info.keyframes;
    let stop = end.map(|e| {
        let before = e.index.checked_sub(1).and_then(|i| keys.get(i));
        let shared = before.is_some_and(|k| k.offset == e.keyframe.offset);
        (
            usize::try_from(e.keyframe.offset).unwrap_or(usize::MAX),
            shared,
        )
    });
    let lo = usize::try_from(start.keyframe.offset).unwrap_or(usize::MAX);
    let mut kept: Vec<Kept> = Vec::new();
    let (mut pos, mut hi) = (lo, lo);
    let mut reached = stop.is_none();
    while pos < seg_end && stop.is_none_or(|(s, _)| pos <= s) {
        let Ok(el) = element(data, pos, seg_end) else {
            break;
        };
        if el.id != CLUSTER {
            break;
        }
        let mut blocks = Vec::new();
        let el_end = scan_cluster(data, el, seg_end, lead, &mut blocks)?;
        let at_stop = stop.is_some_and(|(s, _)| s == pos);
        // The end keyframe opens its Cluster (no other keyframe of the index is in it, and the
        // lead track's first block there is a keyframe): the clip ends just before it.
        let opens = blocks.first().is_some_and(|b| b.2 || audio);
        if at_stop && pos != lo && opens && stop.is_some_and(|(_, shared)| !shared) {
            reached = true;
            break;
        }
        let key = blocks
            .iter()
            .find(|b| b.2 || audio)
            .map(|b| b.0.max(0) as u64);
        kept.push(Kept {
            offset: pos,
            timecode: timecode(data, el, el_end),
            key,
        });
        hi = el_end;
        if at_stop {
            reached = true;
            break;
        }
        pos = el_end;
    }
    if kept.is_empty() || !reached {
        return Err(Error::malformed(
            "webm clip",
            "its keyframes do not start clusters (clusters of unknown size)",
        ));
    }

    // Where the clip sits on the title's timeline: the first keyframe of its first Cluster, and
    // the first keyframe after its last one (or the title's end).
    let first_key = (0..=start.index)
        .rev()
        .take_while(|&i| {
            keys.get(i)
                .is_some_and(|k| k.offset == start.keyframe.offset)
        })
        .last()
        .unwrap_or(start.index);
    let start_time = keys.get(first_key).map_or(start.keyframe.time, |k| k.time);
    let end_time = end
        .and_then(|e| keys.iter().skip(e.index).find(|k| k.offset >= hi as u64))
        .map_or(info.duration, |k| k.time);

    let scale = parts.scale.max(1);
    let mut info_body = Vec::new();
    let info_end = info_el.end.unwrap_or(seg_end).min(seg_end);
    children(data, info_el.data, info_end, |c| {
        if c.id != DURATION {
            let end = c.end.unwrap_or(c.data).min(data.len());
            info_body.extend_from_slice(&data[c.start..end]);
        }
        Ok(())
    })?;
    // From the first kept Cluster's timecode to the next Cluster's, or to the title's end (its
    // duration counts from its first block of the lead track).
    let ns = |units: u64| i128::from(units) * i128::from(scale);
    let next = element(data, hi, seg_end)
        .ok()
        .filter(|el| el.id == CLUSTER && hi < seg_end)
        .map(|el| timecode(data, el, el.end.unwrap_or(seg_end).min(seg_end)));
    let end_ns = match next {
        Some(t) => ns(t),
        None => {
            let zero = first_block(data, first_cluster.unwrap_or(lo), seg_end, lead).unwrap_or(0);
            ns(zero) + i128::from(info.duration.rescale(1_000_000_000))
        }
    };
    let span_ns = end_ns.saturating_sub(ns(kept[0].timecode)).max(0);
    let duration = span_ns as f64 / scale as f64;
    put(&mut info_body, DURATION, &duration.to_be_bytes());

    let track = if lead == u64::MAX { 1 } else { lead };
    let tracks_end = tracks_el.end.unwrap_or(seg_end).min(seg_end);
    let mut head = data[..header_end].to_vec();
    // Segment ID, then "unknown size" (an 8-byte vint of all ones).
    head.extend_from_slice(&SEGMENT.to_be_bytes());
    head.extend_from_slice(&[0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    let seg_data = head.len();
    put(&mut head, INFO, &info_body);
    head.extend_from_slice(&data[tracks_el.start..tracks_end]);
    // A CuePoint for each kept Cluster with a keyframe (the first one has one in any case).
    let points: Vec<(usize, u64)> = kept
        .iter()
        .enumerate()
        .filter_map(|(i, k)| match k.key {
            Some(t) => Some((k.offset, t)),
            None => (i == 0).then_some((k.offset, k.timecode)),
        })
        .collect();
    // Cues: their size does not depend on the positions (8-byte integers), so the clusters'
    // place is known before they are written.
    let cues_len = cues(&points, track, 0, 0).len();
    let first = (head.len() + cues_len - seg_data) as u64;
    head.extend_from_slice(&cues(&points, track, lo, first));
    Ok(Clip {
        head,
        body: std::iter::once(lo as u64..hi as u64).collect(),
        start: start_time,
        end: end_time,
    })
}

/// A Cluster's Timecode (0 without one): the first of its children, before its blocks.
fn timecode(data: &[u8], cluster: El, end: usize) -> u64 {
    let mut pos = cluster.data;
    while pos < end {
        let Ok(el) = element(data, pos, end) else {
            break;
        };
        match el.id {
            TIMECODE => return uint(body(data, el)),
            SIMPLE_BLOCK | BLOCK_GROUP => break,
            _ => {}
        }
        match el.end {
            Some(e) if e > pos && e <= end => pos = e,
            _ => break,
        }
    }
    0
}

/// The time of the title's first block of the lead track (what the index counts times from):
/// the earliest in the first Cluster from `at` that holds any.
fn first_block(data: &[u8], mut at: usize, seg_end: usize, lead: u64) -> Option<u64> {
    while at < seg_end {
        let el = element(data, at, seg_end).ok()?;
        if el.id != CLUSTER {
            return None;
        }
        let mut blocks = Vec::new();
        let next = scan_cluster(data, el, seg_end, lead, &mut blocks).ok()?;
        if let Some(t) = blocks.iter().map(|b| b.0).min() {
            return Some(t.max(0) as u64);
        }
        at = next.max(el.data);
        if at == el.data {
            return None;
        }
    }
    None
}

/// The Cues element: a CuePoint per (cluster offset, time) of `points` for `track`, its
/// position counted from the Segment's data (`first` for the cluster at title offset `lo`).
fn cues(points: &[(usize, u64)], track: u64, lo: usize, first: u64) -> Vec<u8> {
    let mut out_points = Vec::new();
    for &(offset, time) in points {
        let mut positions = Vec::new();
        put_uint(&mut positions, CUE_TRACK, track);
        put_uint(
            &mut positions,
            CUE_CLUSTER_POSITION,
            first + (offset.saturating_sub(lo)) as u64,
        );
        let mut point = Vec::new();
        put_uint(&mut point, CUE_TIME, time);
        put(&mut point, CUE_TRACK_POSITIONS, &positions);
        put(&mut out_points, CUE_POINT, &point);
    }
    let mut out = Vec::new();
    put(&mut out, CUES, &out_points);
    out
}

#[cfg(test)]
#[path = "webm_tests.rs"]
mod tests;
