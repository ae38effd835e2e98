//! Live HLS cut from the ring's units, sans-I/O: a segment is the list of `Bytes` already in
//! memory (PAT/PMT, then the units from one keyframe up to a later one), never a file or a copy.
//!
//! A segment is closed at the first keyframe at least `min_segment` after its own start (so the
//! target duration follows the stream's GOP), measured by PTS, or by arrival time when PTS are
//! missing. The playlist slides over the last `window` segments; a segment that left it is kept
//! for its duration and the playlist's (RFC 8216 §6.2.2), for players still fetching it. After a publisher reconnect the next segment carries
//! `EXT-X-DISCONTINUITY`; when the stream ends the playlist gets `EXT-X-ENDLIST`.

use bytes::Bytes;
use media::time::Ts90k;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::Duration;

/// How many more segments than the window are kept after they leave the playlist, by default:
/// a segment that left stays for its duration and the playlist's (RFC 8216 §6.2.2), about the
/// window and two segments, and two more for segments cut shorter.
pub const SPARE_BEYOND_WINDOW: usize = 4;

#[derive(Debug, Clone, Copy)]
pub struct HlsLimits {
    /// A segment ends at the first keyframe at least this long after its start.
    pub min_segment: Duration,
    /// Segments listed in the playlist.
    pub window: usize,
    /// Segments that left the playlist are kept for their duration and the playlist's (RFC 8216
    /// §6.2.2), at most `spare` of them ([`SPARE_BEYOND_WINDOW`] more than the window by
    /// default: enough for segments of the target duration).
    pub spare: usize,
    /// A segment that grows beyond this (no keyframe for a long time) is dropped.
    pub max_segment_bytes: usize,
    /// Segments remembered (not held) after they leave memory, for a recorded stream's
    /// playlist to list from its recording (a DVR window); 0: none.
    pub dvr: usize,
}

impl Default for HlsLimits {
    fn default() -> Self {
        HlsLimits {
            min_segment: Duration::from_secs(2),
            window: 6,
            spare: 6 + SPARE_BEYOND_WINDOW,
            max_segment_bytes: 32 << 20,
            dvr: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Segment {
    /// Media sequence number.
    pub seq: u64,
    /// PAT/PMT, then the units, in order.
    pub parts: Vec<Bytes>,
    pub bytes: usize,
    pub duration: Duration,
    pub discontinuity: bool,
    /// The ring sequence number of its first unit (a keyframe).
    pub first_unit: u64,
}

/// A segment that left memory: what a playlist lists of it, and where its bytes begin in the
/// stream (its first unit), so they can be read from a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Past {
    pub seq: u64,
    pub duration: Duration,
    pub discontinuity: bool,
    pub first_unit: u64,
    /// Its length (PAT and PMT included): what its bytes read back from a recording must come
    /// to, or they are not the bytes it was served as.
    pub bytes: u64,
}

#[derive(Debug)]
struct Open {
    parts: Vec<Bytes>,
    bytes: usize,
    start_pts: Option<Ts90k>,
    started: Duration,
    /// When its latest unit arrived: where a segment that a publisher's leaving closes ends.
    last: Duration,
    discontinuity: bool,
    first_unit: u64,
}

/// A DVR window: whether the recording holds a remembered segment (given its first unit, the
/// next one's, and its length), and the oldest media sequence number that may be listed.
pub type TsDvr<'a> = (&'a dyn Fn(u64, u64, u64) -> bool, u64);

#[derive(Debug)]
pub struct Segmenter {
    segments: VecDeque<Segment>,
    /// Segments that left memory, oldest first (at most `limits.dvr`).
    past: VecDeque<Past>,
    open: Option<Open>,
    next_seq: u64,
    /// Discontinuities that slid out of the list (EXT-X-DISCONTINUITY-SEQUENCE).
    discontinuity_seq: u64,
    pending_discontinuity: bool,
    /// The next keyframe closes the open segment whatever its length ([`Segmenter::tracks_change`]).
    cut_next: bool,
    ended: bool,
    limits: HlsLimits,
    /// Segments dropped because they outgrew `max_segment_bytes`.
    pub dropped: u64,
    /// Bumped by every change of what a playlist lists.
    changes: u64,
    /// The longest segment the stream has had, whole seconds rounded up: the target duration
    /// never goes back down as segments slide out (players and validators keep the first value
    /// they read; HLS has it not change).
    longest: u64,
    /// Written in front of every segment URI: the directory of the stream instance
    /// ([`Segmenter::with_dir`]).
    dir: String,
}

impl Segmenter {
    pub fn new(limits: HlsLimits) -> Self {
        Segmenter {
            segments: VecDeque::new(),
            past: VecDeque::new(),
            open: None,
            next_seq: 0,
            discontinuity_seq: 0,
            pending_discontinuity: false,
            cut_next: false,
            ended: false,
            longest: 0,
            limits,
            dropped: 0,
            changes: 0,
            dir: String::new(),
        }
    }

    /// Segment URIs become `{dir}{seq}.ts`: a directory that names the stream instance, so that
    /// a stream published again under the same name lists new URIs (its segments are immutable
    /// in every cache that holds the last one's). `dir` ends with `/`, or is empty.
    pub fn with_dir(mut self, dir: String) -> Self {
        self.dir = dir;
        self
    }

    /// Adds a unit that continues the current segment (units before the first keyframe are not
    /// part of any segment); `now`: when it arrived.
    pub fn push(&mut self, data: Bytes, now: Duration) {
        let Some(open) = &mut self.open else { return };
        open.last = now;
        open.bytes += data.len();
        open.parts.push(data);
        if open.bytes > self.limits.max_segment_bytes {
            self.open = None;
            self.dropped += 1;
            self.pending_discontinuity = true;
        }
    }

    /// Adds a unit that starts with a keyframe, with the PAT/PMT to begin a segment with;
    /// `unit`: its sequence number in the ring.
    pub fn push_keyframe(
        &mut self,
        data: Bytes,
        psi: &[Bytes],
        pts: Option<Ts90k>,
        now: Duration,
        unit: u64,
    ) {
        let step = |a: Ts90k, b: Ts90k| (b.0 + Ts90k::WRAP - a.0) % Ts90k::WRAP;
        let went_back = match (self.open.as_ref().and_then(|o| o.start_pts), pts) {
            (Some(a), Some(b)) => step(a, b) > Ts90k::WRAP / 2,
            _ => false,
        };
        if went_back {
            // A keyframe earlier than the segment's start (a publisher's clock that stepped
            // back, by less than the restamping takes for a new session): the segment lasts
            // until its latest unit, and the next is discontinuous (never the rest of the
            // 33-bit period, nor a target duration of a day).
            self.close_left();
            self.pending_discontinuity = true;
        }
        if let Some(open) = &self.open {
            let elapsed = match (open.start_pts, pts) {
                (Some(a), Some(b)) => Duration::from_micros(step(a, b) * 100 / 9),
                _ => now.saturating_sub(open.started),
            };
            if elapsed < self.limits.min_segment && !self.cut_next {
                self.push(data, now);
                return;
            }
            self.close(elapsed);
        }
        self.cut_next = false;
        let mut parts: Vec<Bytes> = psi.to_vec();
        let bytes = parts.iter().map(Bytes::len).sum::<usize>() + data.len();
        parts.push(data);
        self.open = Some(Open {
            parts,
            bytes,
            start_pts: pts,
            started: now,
            last: now,
            discontinuity: std::mem::take(&mut self.pending_discontinuity),
            first_unit: unit,
        });
    }

    /// A publisher came back: close what is open and mark the next segment discontinuous.
    pub fn discontinuity(&mut self) {
        self.close_left();
        self.pending_discontinuity = true;
    }

    /// The stream's tracks change at its next keyframe (video joins a stream that began as
    /// audio alone, or another video codec): the open segment closes there whatever its length,
    /// timed by the timestamps as any other (the media runs on: unlike a reconnect, no wait to
    /// leave out), and the next is marked discontinuous.
    pub fn tracks_change(&mut self) {
        self.cut_next = true;
        self.pending_discontinuity = true;
    }

    /// The stream ended: close what is open and end the playlist.
    pub fn end(&mut self) {
        self.close_left();
        self.ended = true;
        self.changes += 1;
    }

    /// Closes the segment a publisher left open: it lasts until its latest unit arrived, not
    /// until the publisher came back or the stream ended (the wait between holds no media).
    fn close_left(&mut self) {
        if let Some(open) = &self.open {
            let d = open.last.saturating_sub(open.started);
            self.close(d);
        }
    }

    fn close(&mut self, duration: Duration) {
        let Some(open) = self.open.take() else { return };
        self.changes += 1;
        self.longest = self.longest.max(duration.as_secs_f64().ceil() as u64);
        self.segments.push_back(Segment {
            seq: self.next_seq,
            parts: open.parts,
            bytes: open.bytes,
            duration,
            discontinuity: open.discontinuity,
            first_unit: open.first_unit,
        });
        self.next_seq += 1;
        // Those no longer owed to players (RFC 8216 §6.2.2, [`crate::retention`]) go, and those
        // beyond the window and its spare whatever they are owed.
        let window = self.limits.window;
        let cap = window.saturating_add(self.limits.spare);
        while self.segments.len() > window {
            let durations = self.segments.iter().map(|s| s.duration);
            if self.segments.len() <= cap
                && crate::retention::owed(durations, window, Duration::ZERO)
            {
                break;
            }
            if let Some(old) = self.segments.pop_front() {
                self.retire(&old);
            }
        }
    }

    /// A segment leaves memory: remembered for the DVR window, or gone.
    fn retire(&mut self, old: &Segment) {
        if self.limits.dvr == 0 {
            self.discontinuity_seq += u64::from(old.discontinuity);
            return;
        }
        self.past.push_back(Past {
            seq: old.seq,
            duration: old.duration,
            discontinuity: old.discontinuity,
            first_unit: old.first_unit,
            bytes: old.bytes as u64,
        });
        // A playlist lists at most `dvr` of them; the `spare` before those are remembered too,
        // for players still fetching them.
        while self.past.len() > self.limits.dvr + self.limits.spare {
            if let Some(gone) = self.past.pop_front() {
                self.discontinuity_seq += u64::from(gone.discontinuity);
            }
        }
    }

    /// A segment that left memory, and the ring sequence number where the next one begins
    /// (its bytes run up to there).
    pub fn past(&self, seq: u64) -> Option<(Past, u64)> {
        let first = self.past.front()?.seq;
        let i = usize::try_from(seq.checked_sub(first)?).ok()?;
        let p = *self.past.get(i)?;
        let next = match self.past.get(i + 1) {
            Some(n) => n.first_unit,
            None => self.segments.front()?.first_unit,
        };
        Some((p, next))
    }

    /// Keeps only the newest `keep` closed segments (the server is over its memory budget);
    /// returns the bytes they referenced. Players that still fetch a dropped one get a 404 and
    /// reload the playlist.
    pub fn shrink(&mut self, keep: usize) -> usize {
        if self.segments.len() > keep {
            // Only a change a playlist shows renders it again.
            self.changes += 1;
        }
        let mut freed = 0;
        while self.segments.len() > keep {
            if let Some(old) = self.segments.pop_front() {
                self.retire(&old);
                freed += old.bytes;
            }
        }
        freed
    }

    pub fn get(&self, seq: u64) -> Option<&Segment> {
        let first = self.segments.front()?.seq;
        self.segments
            .get(usize::try_from(seq.checked_sub(first)?).ok()?)
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Segments that can be listed (none yet: the first keyframe interval is still open).
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Bytes referenced by the kept segments and the open one (shared with the ring: most of them
    /// are the same allocations).
    pub fn bytes(&self) -> usize {
        self.segments.iter().map(|s| s.bytes).sum::<usize>()
            + self.open.as_ref().map_or(0, |o| o.bytes)
    }

    /// A number that changes whenever what a playlist lists may have (a rendered one is valid,
    /// for the same recording and floor, as long as it stays the same).
    pub fn version(&self) -> u64 {
        self.changes
    }

    /// The media playlist; segment URIs are `{dir}{seq}.ts`, relative to the playlist.
    pub fn playlist(&self) -> String {
        self.render(self.listing(None))
    }

    /// The media playlist with a DVR window (when `dvr` segments are remembered): before the
    /// segments in memory, the newest run of those that left it whose bytes `recorded` says can
    /// be read (it is given a segment's first unit, the next one's and its length), then every segment in
    /// memory; nothing before `floor`, where the last playlist given out began (a playlist's
    /// media sequence never goes back, RFC 8216 §6.2.1).
    pub fn playlist_with(&self, recorded: impl Fn(u64, u64, u64) -> bool, floor: u64) -> String {
        self.render(self.listing(Some((&recorded, floor))))
    }

    /// The media sequence number [`Segmenter::playlist_with`] begins with, given what the
    /// recording holds and the floor (or [`Segmenter::playlist`], given `None`).
    pub fn first_listed(&self, dvr: Option<TsDvr<'_>>) -> u64 {
        let (from_past, skip) = self.listing(dvr);
        match self.past.get(from_past) {
            Some(p) => p.seq,
            None => self.segments.get(skip).map_or(self.next_seq, |s| s.seq),
        }
    }

    /// From which remembered segment a playlist lists (`past.len()`: none), and how many kept
    /// ones it leaves out.
    fn listing(&self, dvr: Option<TsDvr<'_>>) -> (usize, usize) {
        let window = self.segments.len().saturating_sub(self.limits.window);
        let Some((recorded, floor)) = dvr.filter(|_| self.limits.dvr > 0) else {
            return (self.past.len(), window);
        };
        // The past segments that can be read, newest first, as far back as it goes unbroken.
        let mut back = 0;
        let mut next = self.segments.front().map(|s| s.first_unit);
        for p in self.past.iter().rev().take(self.limits.dvr) {
            match next {
                Some(n) if p.seq >= floor && recorded(p.first_unit, n, p.bytes) => {
                    back += 1;
                    next = Some(p.first_unit);
                }
                _ => break,
            }
        }
        // Every kept one, so that the oldest listed goes on being listed from the recording
        // when it leaves memory; but while the recording does not hold the oldest kept one (it
        // lags, or has not begun), the window (the spare beyond it go first).
        let below = self.segments.iter().take_while(|s| s.seq < floor).count();
        let front_recorded = match (self.segments.front(), self.segments.get(1)) {
            (Some(s), Some(n)) => recorded(s.first_unit, n.first_unit, s.bytes as u64),
            _ => false,
        };
        let skip = match back > 0 || front_recorded {
            true => below,
            false => below.max(window),
        };
        (self.past.len() - back, skip)
    }

    fn render(&self, (from_past, skip): (usize, usize)) -> String {
        let listed: Vec<(u64, Duration, bool)> = self
            .past
            .iter()
            .skip(from_past)
            .map(|p| (p.seq, p.duration, p.discontinuity))
            .chain(
                self.segments
                    .iter()
                    .skip(skip)
                    .map(|s| (s.seq, s.duration, s.discontinuity)),
            )
            .collect();
        // Discontinuities in what is remembered or kept but not listed count as slid out too.
        let disc_seq = self.discontinuity_seq
            + self
                .past
                .iter()
                .take(from_past)
                .map(|p| u64::from(p.discontinuity))
                .sum::<u64>()
            + self
                .segments
                .iter()
                .take(skip)
                .map(|s| u64::from(s.discontinuity))
                .sum::<u64>();
        let target = listed
            .iter()
            .map(|s| s.1.as_secs_f64().ceil() as u64)
            .max()
            .unwrap_or(1)
            .max(self.longest)
            .max(1);
        let first = listed.first().map_or(self.next_seq, |s| s.0);
        let mut out = String::with_capacity(256 + 40 * self.limits.window);
        let _ = write!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n\
             #EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-DISCONTINUITY-SEQUENCE:{disc_seq}\n"
        );
        for (seq, duration, discontinuity) in listed {
            if discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            let _ = write!(
                out,
                "#EXTINF:{:.3},\n{}{seq}.ts\n",
                duration.as_secs_f64(),
                self.dir
            );
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

#[cfg(test)]
mod tests;
