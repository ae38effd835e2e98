//! What a title is and where its keyframes are: the types every container's index produces
//! (`mp4`, `ts`, `webm` fill them in; [`crate::index`] picks the parser). They live apart from the
//! parsers so that the parsers and the dispatcher do not import each other.

use crate::error::{Error, Result};
use crate::time::{FrameRate, MediaTime};

/// A container, recognised from its first bytes (never from a file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Mp4,
    MpegTs,
    WebM,
    /// Matroska that is not WebM (`DocType` other than `webm`).
    Matroska,
    Unknown,
}

impl Container {
    pub fn name(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::MpegTs => "mpegts",
            Container::WebM => "webm",
            Container::Matroska => "matroska",
            Container::Unknown => "unknown",
        }
    }

    /// The media type to send in `Content-Type`.
    pub fn mime(self) -> &'static str {
        match self {
            Container::Mp4 => "video/mp4",
            Container::MpegTs => "video/mp2t",
            Container::WebM => "video/webm",
            Container::Matroska => "video/x-matroska",
            Container::Unknown => "application/octet-stream",
        }
    }
}

/// A random access point: decoding can start here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyframe {
    /// Presentation time relative to the title's first frame.
    pub time: MediaTime,
    /// Where to start reading: for MP4 the first byte of the keyframe's sample data; for MPEG-TS the
    /// start of the 188-byte packet that begins its PES; for WebM the start of its Cluster element.
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInfo {
    pub codec: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<FrameRate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    pub codec: String,
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
}

/// What a title is and where its keyframes are. Built once when a title is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    pub container: Container,
    /// Presentation duration of the video track (or of the title when it has no video).
    pub duration: MediaTime,
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
    /// Video keyframes in presentation order. A title without video is cut at its audio: an
    /// audio PES start at most every half second (MPEG-TS), the first audio sample of every fragment (fragmented MP4),
    /// every Cluster (WebM); an unfragmented MP4 without video lists none (its clips are cut
    /// from its sample tables).
    pub keyframes: Vec<Keyframe>,
}

/// The answer to "where does time T start?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeekPoint {
    /// Position of the keyframe in [`MediaInfo::keyframes`].
    pub index: usize,
    pub keyframe: Keyframe,
}

impl MediaInfo {
    pub fn frame_rate(&self) -> Option<FrameRate> {
        self.video.as_ref().and_then(|v| v.frame_rate)
    }

    /// The keyframe at or before `t` (the first keyframe when `t` precedes it). A time past the
    /// end is an error: it names nothing in the title.
    pub fn seek(&self, t: MediaTime) -> Result<SeekPoint> {
        if t > self.duration {
            return Err(Error::PastEnd {
                requested: t,
                duration: self.duration,
            });
        }
        if self.keyframes.is_empty() {
            return Err(Error::NoKeyframes);
        }
        let after = self.keyframes.partition_point(|k| k.time <= t);
        let index = after.saturating_sub(1);
        Ok(SeekPoint {
            index,
            keyframe: self.keyframes[index],
        })
    }

    /// The keyframes that bound a clip of `[from, to)`: the one at or before `from`, and the
    /// first one after it at or after `to` (`None`: the clip runs to the end of the title).
    /// Errors for a time past the end or an end not after the start.
    pub fn clip_span(
        &self,
        from: MediaTime,
        to: Option<MediaTime>,
    ) -> Result<(SeekPoint, Option<SeekPoint>)> {
        check_clip(from, to, self.duration)?;
        let start = self.seek(from)?;
        let end = to.and_then(|to| {
            let index = start.index
                + 1
                + self.keyframes[start.index + 1..].partition_point(|k| k.time < to);
            self.keyframes
                .get(index)
                .map(|&keyframe| SeekPoint { index, keyframe })
        });
        // Keyframes in order of time whose bytes are not in that order: the title's times go
        // back somewhere between (MPEG-TS files joined one after the other): no span of bytes
        // holds that stretch of time.
        let back = self.keyframes[start.index..end.map_or(self.keyframes.len(), |e| e.index + 1)]
            .windows(2)
            .find(|w| w[1].offset < w[0].offset);
        if let Some(w) = back {
            return Err(Error::malformed(
                "title",
                format!(
                    "its times go back between {} s and {} s (files joined one after the \
                     other?): no clip or segment spans that",
                    w[0].time, w[1].time
                ),
            ));
        }
        Ok((start, end))
    }
}

/// The most common value of a list of frame durations, ignoring zeros; used for frame rates.
/// A clip's times against the title's duration: the start before the end of the title, the end
/// after the start and not past the end of the title.
pub(crate) fn check_clip(
    from: MediaTime,
    to: Option<MediaTime>,
    duration: MediaTime,
) -> Result<()> {
    for t in std::iter::once(from).chain(to) {
        if t > duration || (t == duration && t == from) {
            return Err(Error::PastEnd {
                requested: t,
                duration,
            });
        }
    }
    match to {
        Some(to) if to <= from => Err(Error::Timecode(format!(
            "the clip's end ({to} s) is not after its start ({from} s)"
        ))),
        _ => Ok(()),
    }
}

pub(crate) fn most_common(deltas: impl Iterator<Item = u64>) -> Option<u64> {
    let mut counts: Vec<(u64, u64)> = Vec::new();
    for d in deltas.filter(|d| *d > 0) {
        if let Some(slot) = counts.iter_mut().find(|(v, _)| *v == d) {
            slot.1 += 1;
        } else if counts.len() < 64 {
            counts.push((d, 1));
        }
    }
    counts.into_iter().max_by_key(|(_, c)| *c).map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(times: &[i64]) -> MediaInfo {
        MediaInfo {
            container: Container::Mp4,
            duration: MediaTime::new(100, 1),
            video: None,
            audio: None,
            keyframes: times
                .iter()
                .map(|t| Keyframe {
                    time: MediaTime::new(*t, 1),
                    offset: *t as u64 * 10,
                })
                .collect(),
        }
    }

    #[test]
    fn seek_snaps_back_to_previous_keyframe() {
        let i = info(&[0, 2, 4, 6]);
        assert_eq!(i.seek(MediaTime::new(3, 1)).unwrap().keyframe.offset, 20);
        assert_eq!(i.seek(MediaTime::new(4, 1)).unwrap().keyframe.offset, 40);
        assert_eq!(i.seek(MediaTime::new(99, 1)).unwrap().index, 3);
        assert!(matches!(
            i.seek(MediaTime::new(101, 1)),
            Err(Error::PastEnd { .. })
        ));
        assert!(matches!(
            info(&[]).seek(MediaTime::ZERO),
            Err(Error::NoKeyframes)
        ));
    }

    /// An MPEG-TS title of two files joined (the second's times before the first's end): its
    /// keyframes, in order of time, are not in order of bytes; a clip across that (or up to
    /// it) is refused, one within either part is not.
    #[test]
    fn a_clip_across_times_that_go_back_is_refused() {
        let mut i = info(&[0, 2, 4, 6, 8]);
        // The second file (times 4..) lies before the first in the bytes.
        for (k, offset) in i.keyframes.iter_mut().zip([500, 520, 0, 20, 40]) {
            k.offset = offset;
        }
        let span = |a: i64, b: i64| i.clip_span(MediaTime::new(a, 1), Some(MediaTime::new(b, 1)));
        assert!(matches!(span(1, 5), Err(Error::Malformed { .. })));
        // Up to the junction: its end would be where the second file's first keyframe is.
        assert!(matches!(span(0, 3), Err(Error::Malformed { .. })));
        assert!(span(4, 7).is_ok());
        assert!(span(0, 1).is_ok());
    }

    #[test]
    fn seek_matches_linear_scan() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut times: Vec<i64> = (0..200).map(|_| rng.i64(0..100)).collect();
        times.sort();
        times.dedup();
        let i = info(&times);
        for _ in 0..1000 {
            let t = MediaTime::new(rng.i64(0..1000), 10);
            let linear = times
                .iter()
                .rposition(|k| MediaTime::new(*k, 1) <= t)
                .unwrap_or(0);
            assert_eq!(i.seek(t).unwrap().index, linear);
        }
    }
}
