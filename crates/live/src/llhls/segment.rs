//! What a stream's LL-HLS holds: its limits, its segments and their parts (lists of the
//! fragments' `Bytes`), and its init segments ([`super::cut`] cuts them).

use super::cut::elapsed_ms;
use super::period::PeriodStart;
use bytes::Bytes;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct LlLimits {
    /// `PART-TARGET`: no part is longer.
    pub part_target: Duration,
    /// A segment ends at the first keyframe at least this long after its start.
    pub min_segment: Duration,
    /// Complete segments listed in the playlist.
    pub window: usize,
    /// Segments that left the playlist are kept for their duration and the playlist's (RFC 8216
    /// §6.2.2), at most `spare` of them ([`crate::hls::SPARE_BEYOND_WINDOW`] more than the window by
    /// default: enough for segments of the target duration).
    pub spare: usize,
    /// A segment that grows beyond this (no keyframe for a long time) is dropped.
    pub max_segment_bytes: usize,
    /// Segments remembered (not held) after they leave memory, for a stream recorded as fMP4 to
    /// list from its recording (a DVR window, [`super::past`]); 0: none.
    pub dvr: usize,
}

impl Default for LlLimits {
    fn default() -> Self {
        LlLimits {
            part_target: Duration::from_millis(250),
            min_segment: Duration::from_secs(2),
            window: 12,
            spare: 12 + crate::hls::SPARE_BEYOND_WINDOW,
            max_segment_bytes: 32 << 20,
            dvr: 0,
        }
    }
}

/// A part by its segment's media sequence number and its index in the segment.
pub type PartId = (u64, usize);

/// A partial segment: whole fragments, in order.
#[derive(Debug, Clone)]
pub struct Part {
    pub data: Vec<Bytes>,
    /// The same fragments as separate CMAF tracks (video, audio: each fragment's per-track head
    /// and that track's sample slices), what DASH serves.
    pub tracks: [Vec<Bytes>; 2],
    pub bytes: usize,
    /// Decode time of its first fragment, ms.
    pub(super) start_ms: u32,
    /// Set when it closes.
    pub duration: Duration,
    /// It starts with a keyframe (`INDEPENDENT=YES`).
    pub independent: bool,
    pub complete: bool,
}

#[derive(Debug, Clone)]
pub struct LlSegment {
    /// Media sequence number.
    pub msn: u64,
    pub parts: Vec<Part>,
    pub bytes: usize,
    /// Bytes of its parts' per-track fragment heads (DASH; their samples are the muxed ones').
    pub track_bytes: usize,
    pub(super) start_ms: u32,
    /// Set when it closes.
    pub duration: Duration,
    /// When its first frame reached the ingest, Unix ms (`EXT-X-PROGRAM-DATE-TIME`).
    pub wall_ms: Option<u64>,
    /// The version of the init segment it plays with.
    pub init: u64,
    pub discontinuity: bool,
    pub complete: bool,
    /// The DASH Period it belongs to.
    pub period: PeriodStart,
    /// The MP4 ring's sequence number of its first fragment (where a recording of that ring
    /// holds its bytes), if known.
    pub first_unit: Option<u64>,
}

impl LlSegment {
    /// Decode time of its first fragment, ms (the stream's media clock).
    pub fn start_ms(&self) -> u32 {
        self.start_ms
    }

    /// Its start on its Period's timeline: ms of media time, from which the Period's origin is
    /// subtracted (`presentationTimeOffset`); monotonic within a Period.
    pub fn period_ms(&self) -> u64 {
        self.period.origin_ms + u64::from(elapsed_ms(self.period.origin_ms as u32, self.start_ms))
    }

    /// The part being written, if this segment is still open.
    pub(super) fn open_part(&mut self) -> Option<&mut Part> {
        self.parts.last_mut().filter(|p| !p.complete)
    }
}

/// One track's own init segment (a CMAF header) and what a DASH manifest says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInit {
    pub init: Bytes,
    /// RFC 6381 `codecs`.
    pub codecs: String,
    /// Video: width and height; audio: sample rate and channels.
    pub shape: (u32, u32),
}

/// An init segment version: the muxed one (HLS, HTTP-fMP4) and each track's own (DASH).
#[derive(Debug, Clone)]
pub struct Init {
    pub version: u64,
    pub muxed: Bytes,
    pub tracks: [Option<TrackInit>; 2],
}
