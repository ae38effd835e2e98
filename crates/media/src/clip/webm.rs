//! A clip of a WebM/Matroska title: its EBML header, a Segment of unknown size holding its Info
//! (with the clip's Duration), its Tracks and new Cues, then its whole Clusters from the one that
//! holds the keyframe at or before the start to the one that holds the keyframe at or after the
//! end.
//!
//! ```text
//! title: EBML | Segment [SeekHead Info Tracks Cues Cluster ... Cluster(kf) ... Cluster(kf) ...]
//! clip:  EBML | Segment(unknown size) [Info' Tracks Cues'] Cluster(kf) ...      (title bytes)
//! ```
//! Cluster and block timestamps stay the title's (as in a TS clip); the Cues name each kept
//! cluster at its place in the clip.

use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::info::MediaInfo;
use crate::time::MediaTime;
use crate::webm::{
    body, children, element, put, put_uint, uint, El, CLUSTER, CUES, CUE_CLUSTER_POSITION,
    CUE_POINT, CUE_TIME, CUE_TRACK, CUE_TRACK_POSITIONS, DURATION, INFO, SEGMENT, TIMECODE,
    TIMECODE_SCALE, TRACKS, TRACK_ENTRY, TRACK_NUMBER, TRACK_TYPE,
};

/// See the module documentation; `info` is the title's index.
pub fn clip(data: &[u8], info: &MediaInfo, from: MediaTime, to: Option<MediaTime>) -> Result<Clip> {
    let (start, end) = info.clip_span(from, to)?;
    let (header_end, seg) = crate::webm::segment(data)?;
    let seg_end = seg.end.unwrap_or(data.len()).min(data.len());
    // The Segment's top-level elements before the first Cluster: Info and Tracks.
    let (mut info_el, mut tracks_el) = (None, None);
    let mut pos = seg.data;
    while pos < seg_end {
        let el = element(data, pos, seg_end)?;
        match el.id {
            INFO => info_el = Some(el),
            TRACKS => tracks_el = Some(el),
            CLUSTER => break,
            _ => {}
        }
        pos = match el.end {
            Some(e) => e.min(seg_end),
            None => break,
        };
    }
    let info_el = info_el.ok_or_else(|| Error::malformed("webm clip", "no Info"))?;
    let tracks_el = tracks_el.ok_or_else(|| Error::malformed("webm clip", "no Tracks"))?;

    // The clusters kept: from the start keyframe's to the end keyframe's (exclusive), or to the
    // last cluster before anything else (Cues, Tags) or the end.
    let lo = usize::try_from(start.keyframe.offset).unwrap_or(usize::MAX);
    let stop = end.map(|e| usize::try_from(e.keyframe.offset).unwrap_or(usize::MAX));
    let mut clusters: Vec<(usize, u64)> = Vec::new(); // (offset, timecode)
    let mut pos = lo;
    let mut hi = lo;
    while pos < seg_end && Some(pos) != stop {
        let Ok(el) = element(data, pos, seg_end) else {
            break;
        };
        if el.id != CLUSTER {
            break;
        }
        let el_end = el.end.unwrap_or(seg_end).min(seg_end);
        let mut time = 0;
        let _ = children(data, el.data, el_end, |c| {
            if c.id == TIMECODE {
                time = uint(body(data, c));
            }
            Ok(())
        });
        clusters.push((pos, time));
        hi = el_end;
        if el.end.is_none() {
            break;
        }
        pos = el_end;
    }
    if clusters.is_empty() || stop.is_some_and(|s| s != hi) {
        return Err(Error::malformed(
            "webm clip",
            "its keyframes do not start clusters (clusters of unknown size)",
        ));
    }

    let mut scale = 1_000_000u64;
    let mut info_body = Vec::new();
    let info_end = info_el.end.unwrap_or(seg_end).min(seg_end);
    children(data, info_el.data, info_end, |c| {
        if c.id == TIMECODE_SCALE {
            scale = uint(body(data, c)).max(1);
        }
        if c.id != DURATION {
            let end = c.end.unwrap_or(c.data).min(data.len());
            info_body.extend_from_slice(&data[c.start..end]);
        }
        Ok(())
    })?;
    let end_time = end.map_or(info.duration, |e| e.keyframe.time);
    let span_ns = end_time
        .rescale(1_000_000_000)
        .saturating_sub(start.keyframe.time.rescale(1_000_000_000));
    let duration = span_ns as f64 / scale as f64;
    put(&mut info_body, DURATION, &duration.to_be_bytes());

    let video = video_track(data, tracks_el, seg_end)?;
    let tracks_end = tracks_el.end.unwrap_or(seg_end).min(seg_end);
    let mut head = data[..header_end].to_vec();
    // Segment ID, then "unknown size" (an 8-byte vint of all ones).
    head.extend_from_slice(&SEGMENT.to_be_bytes());
    head.extend_from_slice(&[0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    let seg_data = head.len();
    put(&mut head, INFO, &info_body);
    head.extend_from_slice(&data[tracks_el.start..tracks_end]);
    // Cues: their size does not depend on the positions (8-byte integers), so the clusters'
    // place is known before they are written.
    let cues_len = cues(&clusters, video, 0, 0).len();
    let first_cluster = (head.len() + cues_len - seg_data) as u64;
    head.extend_from_slice(&cues(&clusters, video, lo, first_cluster));
    Ok(Clip {
        head,
        body: lo as u64..hi as u64,
        start: start.keyframe.time,
        end: end_time,
    })
}

/// The Cues element: a CuePoint per kept cluster, for the video track, its position counted
/// from the Segment's data (`first` for the cluster at title offset `lo`).
fn cues(clusters: &[(usize, u64)], video: u64, lo: usize, first: u64) -> Vec<u8> {
    let mut points = Vec::new();
    for &(offset, time) in clusters {
        let mut positions = Vec::new();
        put_uint(&mut positions, CUE_TRACK, video);
        put_uint(
            &mut positions,
            CUE_CLUSTER_POSITION,
            first + (offset.saturating_sub(lo)) as u64,
        );
        let mut point = Vec::new();
        put_uint(&mut point, CUE_TIME, time);
        put(&mut point, CUE_TRACK_POSITIONS, &positions);
        put(&mut points, CUE_POINT, &point);
    }
    let mut out = Vec::new();
    put(&mut out, CUES, &points);
    out
}

/// The number of the first video track (type 1), or 1.
fn video_track(data: &[u8], tracks: El, limit: usize) -> Result<u64> {
    let mut video = None;
    let end = tracks.end.unwrap_or(limit).min(limit);
    children(data, tracks.data, end, |t| {
        if t.id != TRACK_ENTRY || video.is_some() {
            return Ok(());
        }
        let (mut number, mut kind) = (None, None);
        children(data, t.data, t.end.unwrap_or(t.data), |c| {
            match c.id {
                TRACK_NUMBER => number = Some(uint(body(data, c))),
                TRACK_TYPE => kind = Some(uint(body(data, c))),
                _ => {}
            }
            Ok(())
        })?;
        if kind == Some(1) {
            video = number;
        }
        Ok(())
    })?;
    Ok(video.unwrap_or(1))
}
