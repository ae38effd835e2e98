//! Segments and parts of a stream's LL-HLS playlist, cut from its fMP4 fragments (one per video
//! frame). A part closes before the fragment that would make it longer than the part target (so
//! every part is at most `PART-TARGET` and, at a steady frame rate, at least 85 % of it); a
//! segment closes at the first keyframe at least `min_segment` after its start, or at a keyframe
//! after the init segment changed. Times are the fragments' decode times (the low 32 bits of
//! their 64-bit timeline, wrapping; the DASH Periods begin on the whole of it), so a part's
//! duration is what the player will play, not when it arrived.

pub use super::period::PeriodStart;
pub use super::segment::{Init, LlLimits, LlSegment, Part, PartId, TrackInit};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug)]
pub struct LlHls {
    /// Oldest first; the last one may be open.
    pub(super) segments: VecDeque<LlSegment>,
    /// Segments that left memory, oldest first (at most `limits.dvr`).
    pub(super) past: VecDeque<super::past::LlPast>,
    next_msn: u64,
    /// Discontinuities that slid out of the kept segments.
    pub(super) discontinuity_seq: u64,
    pending_discontinuity: bool,
    /// A gap in the media closed the open segment ([`LlHls::gap`]): the next fragment begins
    /// one, keyframe or not, in the same DASH period.
    after_gap: bool,
    /// Init segments by version, as long as a kept segment needs them; the last is current.
    inits: VecDeque<Init>,
    /// The init segment changed since the open segment began.
    init_changed: bool,
    last_ms: Option<u32>,
    /// What the next fragment is assumed to last, ms (see [`LlHls::fragment`]).
    frame_ms: u32,
    last_interval: u32,
    /// The frame rate measured since the clock last began (a reconnect, a step): the first
    /// fragment's time, and how many intervals have followed it.
    rate_from: Option<(u32, u64)>,
    /// The rate measured before the measure last began again (given until the new one has 25
    /// frames).
    rate_was: Option<media::FrameRate>,
    /// `EXT-X-TARGETDURATION`, seconds: fixed for the stream (RFC 8216bis §4.4.3.1: it must not
    /// change), from `min_segment`; a segment that would round above it is cut without a
    /// keyframe.
    pub(super) target_secs: u64,
    pub(super) ended: bool,
    pub(super) limits: LlLimits,
    /// Bumped by every change (what a rendered playlist is valid for).
    changes: u64,
    /// When the first segment reached the ingest, Unix ms (DASH's `availabilityStartTime`).
    pub(crate) epoch_ms: Option<u64>,
    /// Segments cut without a keyframe: they would have outgrown the target duration or
    /// `max_segment_bytes` (a publisher whose keyframes are further apart than the segment
    /// length, or none at all).
    pub cut_short: u64,
    /// Written in front of every URI a playlist or manifest names ([`LlHls::with_dir`]).
    pub(crate) dir: String,
}

/// A step between fragments longer than this (or backwards) is a discontinuity.
const MAX_STEP_MS: u32 = 10_000;

/// How long the frame rate is measured over before the measure begins again (an hour).
const RATE_SPAN_MS: u32 = 3_600_000;

pub(super) fn elapsed_ms(from: u32, to: u32) -> u32 {
    to.wrapping_sub(from)
}

impl LlHls {
    pub fn new(limits: LlLimits) -> Self {
        LlHls {
            segments: VecDeque::new(),
            past: VecDeque::new(),
            next_msn: 0,
            discontinuity_seq: 0,
            pending_discontinuity: false,
            after_gap: false,
            inits: VecDeque::new(),
            init_changed: false,
            last_ms: None,
            frame_ms: 40,
            last_interval: 0,
            rate_from: None,
            rate_was: None,
            target_secs: limits.min_segment.as_secs_f64().round().max(1.0) as u64,
            ended: false,
            limits,
            cut_short: 0,
            changes: 0,
            epoch_ms: None,
            dir: String::new(),
        }
    }

    /// A number that changes whenever the playlist may have (a rendered one is valid as long as
    /// it stays the same, for the same DVR window): not with every fragment, only when a part
    /// or a segment completes or begins, or the stream changes state.
    pub fn version(&self) -> u64 {
        self.changes
    }

    /// `EXT-X-TARGETDURATION`.
    pub fn target_duration(&self) -> Duration {
        Duration::from_secs(self.target_secs)
    }

    pub fn limits(&self) -> &LlLimits {
        &self.limits
    }

    /// A new init segment (the tracks' configuration changed): segments from the next keyframe
    /// on use it. One that no segment uses yet is replaced, so a publisher that flips its
    /// configuration without sending frames cannot grow the list.
    pub fn init(&mut self, init: Bytes) {
        self.init_tracks(init, [None, None]);
    }

    /// [`Self::init`], with each track's own init segment (video, audio) for DASH.
    pub fn init_tracks(&mut self, muxed: Bytes, tracks: [Option<TrackInit>; 2]) {
        self.changes += 1;
        if self.inits.back().is_some_and(|i| i.muxed == muxed) {
            return;
        }
        // The newest init segment no segment uses yet (one that came before any frame) is
        // replaced, under a number of its own: a number always names the same bytes (its URL
        // is served as immutable, and may have been asked for already).
        let newest_used = self
            .segments
            .back()
            .map(|s| s.init)
            .or_else(|| self.past.back().map(|p| p.init));
        let version = self.inits.back().map_or(0, |i| i.version + 1);
        if self
            .inits
            .back()
            .is_some_and(|i| newest_used != Some(i.version))
        {
            self.inits.pop_back();
        }
        self.inits.push_back(Init {
            version,
            muxed,
            tracks,
        });
        self.init_changed = true;
    }

    /// The init segment of `version`, while a kept segment needs it.
    pub fn init_segment(&self, version: u64) -> Option<&Bytes> {
        self.init_version(version).map(|i| &i.muxed)
    }

    /// Init segment `version` with its tracks', while a kept segment needs it.
    pub fn init_version(&self, version: u64) -> Option<&Init> {
        self.inits.iter().find(|i| i.version == version)
    }

    /// Adds one fragment (its `Bytes`, in order): `keyframe` when a player may start at it,
    /// `ms` its decode time, `wall_ms` when it reached the ingest (Unix ms, if known).
    pub fn fragment(&mut self, data: Vec<Bytes>, keyframe: bool, ms: u64, wall_ms: Option<u64>) {
        self.fragment_tracks(data, [Vec::new(), Vec::new()], keyframe, ms, wall_ms, None);
    }

    /// [`Self::fragment`], with the fragment as separate tracks (video, audio) for DASH, and
    /// `unit`: its sequence number in the MP4 ring (what a recording of the ring is indexed by).
    pub fn fragment_tracks(
        &mut self,
        data: Vec<Bytes>,
        tracks: [Vec<Bytes>; 2],
        keyframe: bool,
        ms: u64,
        wall_ms: Option<u64>,
        unit: Option<u64>,
    ) {
        // The playlist changes when a part completes or begins, or a segment does (or leaves
        // memory): most fragments only add to the part being written.
        let before = (self.parts_mark(), self.segments.len(), self.first_msn());
        self.add_fragment(data, tracks, keyframe, ms, wall_ms, unit);
        if (self.parts_mark(), self.segments.len(), self.first_msn()) != before {
            self.changes += 1;
        }
    }

    fn add_fragment(
        &mut self,
        data: Vec<Bytes>,
        tracks: [Vec<Bytes>; 2],
        keyframe: bool,
        time: u64,
        wall_ms: Option<u64>,
        unit: Option<u64>,
    ) {
        // The fragmenter's timeline is 64-bit; the cuts are timed on its low 32 bits (wrapping),
        // and the DASH Periods begin on the whole of it, as the fragments' `tfdt` do.
        let ms = time as u32;
        // An ended stream stays ended (its playlist has EXT-X-ENDLIST; a publisher that comes
        // back makes a new stream).
        if self.ended {
            return;
        }
        // Where the media before this fragment ends (its last frame and that frame's estimate,
        // once a frame interval was measured).
        let prev_end = self
            .last_ms
            .filter(|_| self.last_interval > 0)
            .map(|_| self.end_ms());
        if let Some(d) = self.last_ms.map(|l| elapsed_ms(l, ms)) {
            // A gap in the media: longer than a part target and than three frames (a 1 fps
            // stream's steps are not gaps), an encoder that dropped frames.
            let part_ms = u32::try_from(self.limits.part_target.as_millis()).unwrap_or(u32::MAX);
            let gap =
                self.last_interval > 0 && d > part_ms.max(self.last_interval.saturating_mul(3));
            if d > MAX_STEP_MS {
                // The clock went back, or far ahead: nothing before can be timed against it.
                self.discontinuity();
            } else if gap {
                self.gap(ms);
            } else if d > 0 {
                // What the next frame is assumed to last: the longer of the last two intervals,
                // so that an alternation such as 33/34 ms never makes a part too long.
                self.frame_ms = d.max(self.last_interval);
                self.last_interval = d;
                if let Some((_, n)) = &mut self.rate_from {
                    *n += 1;
                }
            }
        }
        self.last_ms = Some(ms);
        // The measure begins again now and then: the millisecond clock wraps after 49 days.
        match self.rate_from {
            Some((from, n)) if elapsed_ms(from, ms) >= RATE_SPAN_MS && n >= 25 => {
                self.rate_was = self.frame_rate();
                self.rate_from = Some((ms, 0));
            }
            None => self.rate_from = Some((ms, 0)),
            Some(_) => {}
        }
        let limits = self.limits;
        let bytes: usize = data.iter().map(Bytes::len).sum();
        let target_ms = self.target_secs.saturating_mul(1000);
        let (start, independent) = match self.segments.back().filter(|s| !s.complete) {
            // (After a gap, at once: nothing is left out.)
            None => (keyframe || self.after_gap, keyframe),
            Some(s) => {
                let elapsed = u64::from(elapsed_ms(s.start_ms, ms));
                // A segment that did not begin at a keyframe (after a gap, or cut short) ends at
                // the first one once it has lasted half the minimum: the segments after it
                // begin at keyframes again (never a segment of a frame or two).
                let unaligned = s.parts.first().is_some_and(|p| !p.independent);
                let least = match unaligned {
                    true => limits.min_segment.as_millis() / 2,
                    false => limits.min_segment.as_millis(),
                };
                let at_keyframe = keyframe && (self.init_changed || u128::from(elapsed) >= least);
                // Never longer than the target duration rounds to, nor than the byte limit: cut
                // without a keyframe then (the new segment's first part is not independent).
                let too_long = elapsed + u64::from(self.frame_ms) >= target_ms + 500;
                let too_big = s.bytes + bytes > limits.max_segment_bytes;
                if !at_keyframe && (too_long || too_big) {
                    self.cut_short += 1;
                }
                (at_keyframe || too_long || too_big, keyframe)
            }
        };
        if start {
            let Some(init) = self.inits.back().map(|i| i.version) else {
                return;
            };
            // A step past what the segment may last (an encoder that dropped a frame or two,
            // less than a gap): it ends with its last frame, so that its EXTINF still rounds
            // to the target duration (the next begins at its fragment, as after a gap). A part
            // may still outlast the part target by such a step: the parts of a segment add up
            // to it, with no hole between them.
            let end = match (prev_end, self.segments.back().filter(|s| !s.complete)) {
                (Some(end), Some(s))
                    if u64::from(elapsed_ms(s.start_ms, ms)) >= target_ms + 500
                        && elapsed_ms(s.start_ms, end) < elapsed_ms(s.start_ms, ms) =>
                {
                    end
                }
                _ => ms,
            };
            self.close(end);
            let discontinuity = std::mem::take(&mut self.pending_discontinuity);
            // A gap stays in its DASH period (the timeline says where each segment begins).
            let gap = std::mem::take(&mut self.after_gap);
            let period = self.period_for(time, wall_ms, discontinuity && !gap, init);
            self.segments.push_back(LlSegment {
                msn: self.next_msn,
                parts: Vec::new(),
                bytes: 0,
                track_bytes: 0,
                start_ms: ms,
                duration: Duration::ZERO,
                wall_ms,
                init,
                discontinuity,
                complete: false,
                period,
                first_unit: unit,
            });
            self.next_msn += 1;
            self.init_changed = false;
            self.trim();
        }
        let frame_ms = self.frame_ms;
        let Some(seg) = self.segments.back_mut().filter(|s| !s.complete) else {
            return;
        };
        if let Some(part) = seg.open_part() {
            let would_last = elapsed_ms(part.start_ms, ms).saturating_add(frame_ms);
            if u128::from(would_last) > limits.part_target.as_millis() {
                // It ends where this fragment begins (the parts of a segment add up to it).
                part.duration = Duration::from_millis(elapsed_ms(part.start_ms, ms).into());
                part.complete = true;
            }
        }
        if seg.open_part().is_none() {
            let independent = if seg.parts.is_empty() {
                independent
            } else {
                keyframe
            };
            seg.parts.push(Part {
                data: Vec::new(),
                tracks: [Vec::new(), Vec::new()],
                bytes: 0,
                start_ms: ms,
                duration: Duration::ZERO,
                independent,
                complete: false,
            });
        }
        seg.bytes += bytes;
        // The per-track heads only (each track's first `Bytes`): its samples are the muxed ones'.
        seg.track_bytes += tracks
            .iter()
            .filter_map(|t| t.first())
            .map(Bytes::len)
            .sum::<usize>();
        if let Some(part) = seg.open_part() {
            part.bytes += bytes;
            part.data.extend(data);
            for (kept, new) in part.tracks.iter_mut().zip(tracks) {
                kept.extend(new);
            }
        }
    }

    /// Closes the open segment and its open part; they end where the fragment at `ms` begins.
    fn close(&mut self, ms: u32) {
        let Some(seg) = self.segments.back_mut().filter(|s| !s.complete) else {
            return;
        };
        if let Some(part) = seg.open_part() {
            part.duration = Duration::from_millis(elapsed_ms(part.start_ms, ms).into());
            part.complete = true;
        }
        seg.duration = Duration::from_millis(elapsed_ms(seg.start_ms, ms).into());
        seg.complete = true;
    }

    /// Drops the segments no longer owed to players (RFC 8216 §6.2.2, [`crate::retention`]),
    /// and beyond the window and its spare whatever they are owed; then the init segments none
    /// needs.
    fn trim(&mut self) {
        let window = self.limits.window;
        // The open segment is not counted.
        let cap = window.saturating_add(self.limits.spare) + 1;
        // What the open segment adds to a playlist, at most: a target duration and the half
        // second it may round up from.
        let open = self.target_duration() + Duration::from_millis(500);
        while self.segments.len() > window + 1 {
            let complete = self.segments.iter().filter(|s| s.complete);
            if self.segments.len() <= cap
                && crate::retention::owed(complete.map(|s| s.duration), window, open)
            {
                break;
            }
            if let Some(old) = self.segments.pop_front() {
                self.retire(&old);
            }
        }
        self.drop_unused_inits();
    }

    fn drop_unused_inits(&mut self) {
        // A remembered segment's init segment is kept too (a few hundred bytes): the playlist
        // names it for the segments read from the recording.
        let oldest = match self.past.front() {
            Some(p) => Some(p.init),
            None => self.segments.front().map(|s| s.init),
        };
        while self.inits.len() > 1 && oldest.is_some_and(|o| self.inits[0].version < o) {
            self.inits.pop_front();
        }
    }

    /// Where the last fragment ends (its start plus the latest frame interval).
    fn end_ms(&self) -> u32 {
        self.last_ms.map_or(0, |l| l.wrapping_add(self.frame_ms))
    }

    /// A gap in the media (an encoder that dropped frames): what is open ends with its last
    /// frame, and the next fragment begins a segment, keyframe or not (its first part is then
    /// not `INDEPENDENT`), marked discontinuous for HLS; DASH keeps its period, its timeline
    /// showing the gap. No part or segment outlasts its target by the gap, and nothing is left
    /// out (a browser's decoder drops the video after such a gap until a keyframe by itself;
    /// the audio plays on).
    fn gap(&mut self, next: u32) {
        self.changes += 1;
        // (Never past the fragment after the gap: the estimate of the last frame's length may
        // be longer than the gap, after a step as long.)
        let end = match self.last_ms {
            Some(l) => l.wrapping_add(self.frame_ms.min(elapsed_ms(l, next))),
            None => self.end_ms(),
        };
        self.close(end);
        // (After a reconnect's discontinuity, that stays what it was: a keyframe, a period.)
        self.after_gap = !self.pending_discontinuity;
        self.pending_discontinuity = true;
    }

    /// A publisher came back: close what is open; the next segment is marked discontinuous.
    pub fn discontinuity(&mut self) {
        self.changes += 1;
        let end = self.end_ms();
        self.close(end);
        self.last_ms = None;
        (self.rate_from, self.rate_was) = (None, None);
        self.pending_discontinuity = true;
        // (Not a gap: the next segment waits for a keyframe, in a period of its own.)
        self.after_gap = false;
    }

    /// The stream ended: close what is open and end the playlist.
    pub fn end(&mut self) {
        self.changes += 1;
        let end = self.end_ms();
        self.close(end);
        self.ended = true;
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Keeps only the newest `keep` complete segments (and the open one): the server is over its
    /// memory budget. Returns the bytes they referenced.
    pub fn shrink(&mut self, keep: usize) -> usize {
        let mut freed = 0;
        let open = usize::from(self.segments.back().is_some_and(|s| !s.complete));
        if self.segments.len() > keep + open {
            // Only a change a playlist shows renders it again.
            self.changes += 1;
        }
        while self.segments.len() > keep + open {
            if let Some(old) = self.segments.pop_front() {
                self.retire(&old);
                freed += old.bytes + old.track_bytes;
            }
        }
        self.drop_unused_inits();
        freed
    }

    /// The rate its fragments come at (a stream with video: its frame rate), measured over the
    /// time since its clock began (or the measure last began again, each [`RATE_SPAN_MS`])
    /// and snapped to a common rate (29.97 and 30 fps are told apart after a few seconds);
    /// `None` before 25 frames. What a timecode that counts frames (`01:09:14:28`) is read
    /// with.
    pub fn frame_rate(&self) -> Option<media::FrameRate> {
        let (from, n) = self.rate_from?;
        let elapsed = elapsed_ms(from, self.last_ms?);
        if n < 25 || elapsed == 0 {
            return self.rate_was;
        }
        media::FrameRate::from_frame_duration(n.checked_mul(1000)?, u64::from(elapsed))
    }

    /// Bytes referenced by the kept segments (shared with the MP4 ring) and init segments.
    pub fn bytes(&self) -> usize {
        self.segments
            .iter()
            .map(|s| s.bytes + s.track_bytes)
            .sum::<usize>()
            + self
                .inits
                .iter()
                .map(|i| {
                    i.muxed.len()
                        + i.tracks
                            .iter()
                            .flatten()
                            .map(|t| t.init.len())
                            .sum::<usize>()
                })
                .sum::<usize>()
    }

    /// The kept segments, oldest first (the last may be open).
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &LlSegment> + ExactSizeIterator {
        self.segments.iter()
    }

    /// The next segment will begin a new DASH Period (the init segment changed, or a
    /// discontinuity is pending): what it will be is not known yet.
    pub fn period_change_pending(&self) -> bool {
        self.init_changed || (self.pending_discontinuity && !self.after_gap)
    }

    /// When the first segment reached the ingest, Unix ms.
    pub fn epoch_ms(&self) -> Option<u64> {
        self.epoch_ms
    }

    /// A kept segment, open or complete.
    pub fn segment(&self, msn: u64) -> Option<&LlSegment> {
        let i = self.segments.binary_search_by_key(&msn, |s| s.msn).ok()?;
        self.segments.get(i)
    }

    /// The oldest kept segment's msn.
    pub fn first_msn(&self) -> Option<u64> {
        self.segments.front().map(|s| s.msn)
    }

    /// A kept part, open or complete.
    pub fn part(&self, msn: u64, index: usize) -> Option<&Part> {
        self.segment(msn)?.parts.get(index)
    }

    /// The newest complete segment's msn.
    pub fn last_segment(&self) -> Option<u64> {
        self.segments
            .iter()
            .rev()
            .find(|s| s.complete)
            .map(|s| s.msn)
    }

    /// The msn the next segment will have (what an empty playlist begins with).
    pub(crate) fn next_msn(&self) -> u64 {
        self.next_msn
    }

    /// The msn of the newest segment in the playlist (open or not), or of the first to come.
    pub fn newest_msn(&self) -> u64 {
        self.next_msn.saturating_sub(1)
    }
}
