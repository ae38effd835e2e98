//! Live HLS cut from the ring's units, sans-I/O: a segment is the list of `Bytes` already in
//! memory (PAT/PMT, then the units from one keyframe up to a later one), never a file or a copy.
//!
//! A segment is closed at the first keyframe at least `min_segment` after its own start (so the
//! target duration follows the stream's GOP), measured by PTS, or by arrival time when PTS are
//! missing. The playlist slides over the last `window` segments; a few more are kept for players
//! still fetching them. After a publisher reconnect the next segment carries
//! `EXT-X-DISCONTINUITY`; when the stream ends the playlist gets `EXT-X-ENDLIST`.

use bytes::Bytes;
use media::time::Ts90k;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct HlsLimits {
    /// A segment ends at the first keyframe at least this long after its start.
    pub min_segment: Duration,
    /// Segments listed in the playlist.
    pub window: usize,
    /// Segments kept beyond the window for players that are still fetching them.
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
            spare: 3,
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
}

#[derive(Debug)]
struct Open {
    parts: Vec<Bytes>,
    bytes: usize,
    start_pts: Option<Ts90k>,
    started: Duration,
    discontinuity: bool,
    first_unit: u64,
}

/// A DVR window: whether the recording holds a remembered segment (given its first unit and the
/// next one's), and the oldest media sequence number that may be listed.
pub type TsDvr<'a> = (&'a dyn Fn(u64, u64) -> bool, u64);

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
    ended: bool,
    limits: HlsLimits,
    /// Segments dropped because they outgrew `max_segment_bytes`.
    pub dropped: u64,
    /// Bumped by every change of what a playlist lists.
    changes: u64,
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
            ended: false,
            limits,
            dropped: 0,
            changes: 0,
        }
    }

    /// Adds a unit that continues the current segment (units before the first keyframe are not
    /// part of any segment).
    pub fn push(&mut self, data: Bytes) {
        let Some(open) = &mut self.open else { return };
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
        if let Some(open) = &self.open {
            let elapsed = match (open.start_pts, pts) {
                (Some(a), Some(b)) => {
                    Duration::from_micros((b.0 + Ts90k::WRAP - a.0) % Ts90k::WRAP * 100 / 9)
                }
                _ => now.saturating_sub(open.started),
            };
            if elapsed < self.limits.min_segment {
                self.push(data);
                return;
            }
            self.close(elapsed);
        }
        let mut parts: Vec<Bytes> = psi.to_vec();
        let bytes = parts.iter().map(Bytes::len).sum::<usize>() + data.len();
        parts.push(data);
        self.open = Some(Open {
            parts,
            bytes,
            start_pts: pts,
            started: now,
            discontinuity: std::mem::take(&mut self.pending_discontinuity),
            first_unit: unit,
        });
    }

    /// A publisher came back: close what is open and mark the next segment discontinuous.
    pub fn discontinuity(&mut self, now: Duration) {
        if let Some(open) = &self.open {
            let d = now.saturating_sub(open.started);
            self.close(d);
        }
        self.pending_discontinuity = true;
    }

    /// The stream ended: close what is open and end the playlist.
    pub fn end(&mut self, now: Duration) {
        if let Some(open) = &self.open {
            let d = now.saturating_sub(open.started);
            self.close(d);
        }
        self.ended = true;
        self.changes += 1;
    }

    fn close(&mut self, duration: Duration) {
        let Some(open) = self.open.take() else { return };
        self.changes += 1;
        self.segments.push_back(Segment {
            seq: self.next_seq,
            parts: open.parts,
            bytes: open.bytes,
            duration,
            discontinuity: open.discontinuity,
            first_unit: open.first_unit,
        });
        self.next_seq += 1;
        while self.segments.len() > self.limits.window + self.limits.spare {
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
        self.changes += 1;
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

    /// The media playlist; segment URIs are `{seq}.ts`, relative to the playlist.
    pub fn playlist(&self) -> String {
        self.render(self.listing(None))
    }

    /// The media playlist with a DVR window (when `dvr` segments are remembered): before the
    /// segments in memory, the newest run of those that left it whose bytes `recorded` says can
    /// be read (it is given a segment's first unit and the next one's), then every segment in
    /// memory; nothing before `floor`, where the last playlist given out began (a playlist's
    /// media sequence never goes back, RFC 8216 §6.2.1).
    pub fn playlist_with(&self, recorded: impl Fn(u64, u64) -> bool, floor: u64) -> String {
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
                Some(n) if p.seq >= floor && recorded(p.first_unit, n) => {
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
            (Some(s), Some(n)) => recorded(s.first_unit, n.first_unit),
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
            let _ = write!(out, "#EXTINF:{:.3},\n{seq}.ts\n", duration.as_secs_f64());
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HlsLimits {
        HlsLimits {
            min_segment: Duration::from_secs(2),
            window: 3,
            spare: 1,
            max_segment_bytes: 10_000,
            dvr: 0,
        }
    }

    fn b(n: u8) -> Bytes {
        Bytes::from(vec![n; 10])
    }

    /// Feeds a 1 fps keyframe stream (keyframe each second, 4 units per second).
    fn feed(s: &mut Segmenter, from_sec: u64, secs: u64) {
        for t in from_sec..from_sec + secs {
            let now = Duration::from_secs(t);
            s.push_keyframe(
                b(t as u8),
                &[Bytes::from_static(b"PSI")],
                Some(Ts90k(t * 90_000)),
                now,
                t * 4,
            );
            for _ in 0..3 {
                s.push(b(t as u8));
            }
        }
    }

    #[test]
    fn a_dvr_window_lists_the_segments_that_left_memory_while_their_bytes_are_recorded() {
        let mut s = Segmenter::new(HlsLimits { dvr: 5, ..limits() });
        // 20 s of 1 s keyframes: segments of 2 s; 3 listed + 1 spare in memory, 5 remembered.
        feed(&mut s, 0, 20);
        assert_eq!(s.len(), 4);
        let plain = s.playlist();
        assert_eq!(plain.matches("#EXTINF").count(), 3, "{plain}");
        // Everything recorded: the 5 remembered, then all 4 in memory, in order.
        let dvr = s.playlist_with(|_, _| true, 0);
        let seqs: Vec<&str> = dvr.lines().filter(|l| l.ends_with(".ts")).collect();
        assert_eq!(
            seqs,
            ["0.ts", "1.ts", "2.ts", "3.ts", "4.ts", "5.ts", "6.ts", "7.ts", "8.ts"]
        );
        assert!(dvr.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{dvr}");
        // Where the first unit of segment 2 (second 4) is not recorded, the window begins after.
        let partial = s.playlist_with(|first, _| first > 4 * 4, 0);
        assert!(partial.contains("#EXT-X-MEDIA-SEQUENCE:3\n"), "{partial}");
        assert_eq!(s.first_listed(Some((&|first, _| first > 4 * 4, 0))), 3);
        assert_eq!(s.first_listed(None), 6);
        // Nothing before where the last playlist began, even what the recording holds.
        let later = s.playlist_with(|_, _| true, 3);
        assert!(later.contains("#EXT-X-MEDIA-SEQUENCE:3\n"), "{later}");
        // Nothing recorded: the window in memory (its spare goes first); none before the floor.
        assert_eq!(s.playlist_with(|_, _| false, 0), s.playlist());
        assert!(s
            .playlist_with(|_, _| false, 7)
            .contains("#EXT-X-MEDIA-SEQUENCE:7\n"));
        // A remembered segment's bytes run from its first unit to the next one's.
        let (p, next) = s.past(4).unwrap();
        assert_eq!((p.seq, p.first_unit, next), (4, 8 * 4, 10 * 4));
        assert!(s.past(5).is_none() && s.get(5).is_some());
    }

    #[test]
    fn a_dvr_window_forms_while_players_reload_from_the_start() {
        let mut s = Segmenter::new(HlsLimits { dvr: 5, ..limits() });
        let mut floor = 0;
        // A player reloads after every second; the recording holds everything.
        for t in 0..20 {
            feed(&mut s, t, 1);
            floor = floor.max(s.first_listed(Some((&|_, _| true, floor))));
        }
        let p = s.playlist_with(|_, _| true, floor);
        let seqs: Vec<&str> = p.lines().filter(|l| l.ends_with(".ts")).collect();
        assert_eq!(seqs.len(), 9, "5 remembered and 4 in memory: {p}");
        assert_eq!(seqs[0], "0.ts", "{p}");
    }

    #[test]
    fn the_version_changes_with_what_the_playlist_lists_and_only_then() {
        let mut s = Segmenter::new(limits());
        feed(&mut s, 0, 3);
        let (v, p) = (s.version(), s.playlist());
        // Units and a keyframe within the open segment: the same playlist, the same version.
        s.push(b(9));
        s.push_keyframe(
            b(9),
            &[],
            Some(Ts90k(3 * 90_000)),
            Duration::from_secs(3),
            99,
        );
        assert_eq!((s.version(), s.playlist()), (v, p.clone()));
        // A segment closes, memory shrinks, the stream ends: each a new version.
        let mut seen = vec![v];
        feed(&mut s, 4, 2);
        seen.push(s.version());
        s.shrink(1);
        seen.push(s.version());
        s.end(Duration::from_secs(7));
        seen.push(s.version());
        assert!(seen.windows(2).all(|w| w[1] > w[0]), "{seen:?}");
        assert_ne!(s.playlist(), p);
    }

    #[test]
    fn segments_start_at_keyframes_with_psi_and_the_playlist_slides() {
        let mut s = Segmenter::new(limits());
        assert!(s.is_empty());
        feed(&mut s, 0, 3);
        assert_eq!(s.len(), 1, "closed at the first keyframe 2 s in");
        let seg = s.get(0).unwrap();
        assert_eq!(seg.parts[0], Bytes::from_static(b"PSI"));
        assert_eq!(seg.parts.len(), 1 + 8, "2 s of units");
        assert_eq!(seg.duration, Duration::from_secs(2));
        feed(&mut s, 3, 20);
        let p = s.playlist();
        assert!(p.contains("#EXT-X-TARGETDURATION:2\n"), "{p}");
        assert_eq!(p.matches("#EXTINF:2.000,").count(), 3, "{p}");
        let first = s.segments.front().unwrap().seq + (s.len() as u64 - 3);
        assert!(
            p.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{first}\n")),
            "{p}"
        );
        assert!(p.contains(&format!("\n{first}.ts\n")), "{p}");
        assert!(!p.contains("ENDLIST"));
        assert!(s.get(0).is_none(), "slid out and dropped");
        assert!(s.len() <= 4, "window plus spare");
        s.end(Duration::from_secs(23));
        assert!(s.playlist().ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn shrinking_keeps_the_newest_segments_and_the_media_sequence_moves_on() {
        let mut s = Segmenter::new(limits());
        feed(&mut s, 0, 9);
        assert_eq!(s.len(), 4);
        let newest = s.segments.back().unwrap().seq;
        let before = s.bytes();
        let freed = s.shrink(2);
        assert_eq!(s.len(), 2);
        assert_eq!(s.bytes(), before - freed);
        let p = s.playlist();
        assert!(
            p.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{}\n", newest - 1)),
            "{p}"
        );
        assert!(s.get(newest - 2).is_none(), "dropped");
        assert_eq!(s.shrink(2), 0, "nothing more to drop");
    }

    #[test]
    fn a_reconnect_marks_a_discontinuity_and_counts_it_when_it_slides_out() {
        let mut s = Segmenter::new(limits());
        feed(&mut s, 0, 5);
        s.discontinuity(Duration::from_secs(5));
        feed(&mut s, 100, 5);
        let p = s.playlist();
        assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{p}");
        assert!(p.contains("#EXT-X-DISCONTINUITY-SEQUENCE:0\n"));
        feed(&mut s, 105, 20);
        let p = s.playlist();
        assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 0, "{p}");
        assert!(p.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{p}");
    }

    #[test]
    fn a_stream_without_keyframes_stays_bounded() {
        let mut s = Segmenter::new(limits());
        feed(&mut s, 0, 1);
        for _ in 0..10_000 {
            s.push(b(1));
            assert!(s.bytes() <= 10_000 + 10);
        }
        assert_eq!(s.dropped, 1);
        feed(&mut s, 1, 5);
        let p = s.playlist();
        assert!(p.contains("#EXT-X-DISCONTINUITY\n"), "{p}");
    }
}
