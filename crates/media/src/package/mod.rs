//! VOD packaging: a library title as HLS and DASH, sans-I/O. The segments are cut at keyframes
//! near a target duration ([`by_keyframes`] for MPEG-TS and fragmented MP4 titles, whose segments
//! are clips of the title; [`crate::clip::mp4::plan`] for MP4 titles, whose segments are CMAF
//! fragments written over the title's own sample bytes); [`hls`] and [`dash`] render the playlist
//! and the manifest from the segments' times.

pub mod dash;
pub mod hls;

use crate::info::MediaInfo;
use crate::time::MediaTime;

/// One segment's place on the title's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seg {
    pub start: MediaTime,
    pub duration: MediaTime,
}

/// Segments of whole GOPs from a title's keyframes: each begins at a keyframe and lasts at least
/// `target` where the keyframes allow; as (first keyframe index, the next segment's, or `None`
/// for the last) and its times.
pub fn by_keyframes(info: &MediaInfo, target: MediaTime) -> Vec<(usize, Option<usize>, Seg)> {
    let keys = &info.keyframes;
    let mut starts: Vec<usize> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        match starts.last() {
            Some(&s) if diff(k.time, keys[s].time) < target => {}
            _ => starts.push(i),
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (n, &a) in starts.iter().enumerate() {
        let b = starts.get(n + 1).copied();
        let end = b.map_or(info.duration, |b| keys[b].time);
        out.push((
            a,
            b,
            Seg {
                start: keys[a].time,
                duration: diff(end, keys[a].time),
            },
        ));
    }
    out
}

/// `a - b`, exact, at the finer of the two timescales.
fn diff(a: MediaTime, b: MediaTime) -> MediaTime {
    let scale = a.scale.max(b.scale);
    MediaTime::new(a.rescale(scale).saturating_sub(b.rescale(scale)), scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::{Container, Keyframe};

    #[test]
    fn keyframes_group_into_segments_of_at_least_the_target() {
        let info = MediaInfo {
            container: Container::MpegTs,
            duration: MediaTime::new(11, 1),
            video: None,
            audio: None,
            keyframes: [0, 2, 4, 6, 7, 10]
                .iter()
                .map(|&t| Keyframe {
                    time: MediaTime::new(t, 1),
                    offset: t as u64,
                })
                .collect(),
        };
        let segs = by_keyframes(&info, MediaTime::new(4, 1));
        let got: Vec<(usize, Option<usize>, i64, i64)> = segs
            .iter()
            .map(|(a, b, s)| (*a, *b, s.start.ticks, s.duration.ticks))
            .collect();
        assert_eq!(
            got,
            [(0, Some(2), 0, 4), (2, Some(5), 4, 6), (5, None, 10, 1)]
        );
    }
}
