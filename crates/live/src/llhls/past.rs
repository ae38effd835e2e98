//! Segments that left memory, remembered for a DVR window: what the playlist lists of each, and
//! where its bytes begin in the MP4 ring's numbering, so that a stream recorded as fMP4 (the
//! recorder writes that ring's units as they are) can list them and serve them from its
//! recording. Nothing of their bytes is held.

use super::cut::{LlHls, LlSegment, PeriodStart};
use std::time::Duration;

/// A segment that left memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlPast {
    pub msn: u64,
    pub duration: Duration,
    pub discontinuity: bool,
    /// The version of the init segment it plays with (kept while it is remembered).
    pub init: u64,
    /// When its first frame reached the ingest, Unix ms.
    pub wall_ms: Option<u64>,
    /// The MP4 ring's sequence number of its first fragment, if known.
    pub first_unit: Option<u64>,
    /// Its length: what its bytes read back from a recording must come to.
    pub bytes: u64,
    /// Each track's own fragments' length (DASH: video, audio).
    pub track_bytes: [u64; 2],
    /// Its DASH Period, and its start on that Period's timeline ([`LlSegment::period_ms`]).
    pub period: PeriodStart,
    pub period_ms: u64,
}

/// A DVR window: which remembered segments a recording holds, and where a playlist may begin.
#[derive(Clone, Copy)]
pub struct Dvr<'a> {
    /// Given a remembered segment's first unit, the next one's, and its length: whether the
    /// recording holds its bytes.
    pub recorded: &'a dyn Fn(u64, u64, u64) -> bool,
    /// The oldest media sequence number that may be listed: where the last playlist given out
    /// began ([`LlHls::first_listed`]). A playlist's media sequence never goes back (RFC 8216bis
    /// §6.2.1), even when the recording is found to hold an older segment than it did.
    pub floor: u64,
}

impl std::fmt::Debug for Dvr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dvr").field("floor", &self.floor).finish()
    }
}

impl LlHls {
    /// A segment leaves memory: remembered for the DVR window, or gone.
    pub(super) fn retire(&mut self, old: &LlSegment) {
        if self.limits.dvr == 0 {
            self.discontinuity_seq += u64::from(old.discontinuity);
            return;
        }
        self.past.push_back(LlPast {
            msn: old.msn,
            duration: old.duration,
            discontinuity: old.discontinuity,
            init: old.init,
            wall_ms: old.wall_ms,
            first_unit: old.first_unit,
            bytes: old.bytes as u64,
            track_bytes: [0, 1].map(|t| {
                old.parts
                    .iter()
                    .flat_map(|p| &p.tracks[t])
                    .map(|b| b.len() as u64)
                    .sum()
            }),
            period: old.period,
            period_ms: old.period_ms(),
        });
        // A playlist lists at most `dvr` of them; the `spare` before those are remembered too,
        // for players still fetching them.
        while self.past.len() > self.limits.dvr + self.limits.spare {
            if let Some(gone) = self.past.pop_front() {
                self.discontinuity_seq += u64::from(gone.discontinuity);
            }
        }
    }

    /// A segment that left memory, and the MP4 ring sequence number where the next one begins
    /// (its bytes run from its `first_unit` up to there); `None` when either is not known.
    pub fn past(&self, msn: u64) -> Option<(LlPast, u64)> {
        let first = self.past.front()?.msn;
        let i = usize::try_from(msn.checked_sub(first)?).ok()?;
        let p = *self.past.get(i)?;
        p.first_unit?;
        let next = match self.past.get(i + 1) {
            Some(n) => n.first_unit?,
            None => self.segments.front()?.first_unit?,
        };
        Some((p, next))
    }

    /// What a playlist lists: from which remembered segment (`past.len()`: none), and how many
    /// kept complete segments it leaves out. Without a DVR window: the newest `window` complete
    /// ones and the open one. With one: the newest unbroken run (at most `dvr`) of remembered
    /// segments the recording holds, then every kept one, so that the oldest listed goes on
    /// being listed from the recording when it leaves memory; but while the recording does not
    /// hold the oldest kept one (it lags, or has not begun), the window (the spare beyond it
    /// go first, and the recording could not serve them then); never anything before `floor`.
    pub(crate) fn listing(&self, dvr: Option<&Dvr<'_>>) -> (usize, usize) {
        let Some(d) = dvr else {
            let complete = self.segments.iter().filter(|s| s.complete).count();
            return (self.past.len(), complete.saturating_sub(self.limits.window));
        };
        let mut back = 0;
        let mut next = self.segments.front().and_then(|s| s.first_unit);
        for p in self.past.iter().rev().take(self.limits.dvr) {
            match (p.first_unit, next) {
                (Some(a), Some(b)) if p.msn >= d.floor && (d.recorded)(a, b, p.bytes) => {
                    back += 1;
                    next = Some(a);
                }
                _ => break,
            }
        }
        let below = self
            .segments
            .iter()
            .take_while(|s| s.complete && s.msn < d.floor)
            .count();
        // The oldest kept segment's bytes are in the recording: what leaves memory next can be
        // listed on.
        let front_recorded = match (self.segments.front(), self.segments.get(1)) {
            (Some(s), Some(n)) if s.complete => match (s.first_unit, n.first_unit) {
                (Some(a), Some(b)) => (d.recorded)(a, b, s.bytes as u64),
                _ => false,
            },
            _ => false,
        };
        let unlisted = match back > 0 || front_recorded {
            true => below,
            false => {
                let complete = self.segments.iter().filter(|s| s.complete).count();
                below.max(complete.saturating_sub(self.limits.window))
            }
        };
        (self.past.len() - back, unlisted)
    }

    /// The media sequence number a playlist rendered with `dvr` begins with.
    pub fn first_listed(&self, dvr: Option<&Dvr<'_>>) -> u64 {
        let (from_past, unlisted) = self.listing(dvr);
        match self.past.get(from_past) {
            Some(p) => p.msn,
            None => self
                .segments
                .get(unlisted)
                .map_or(self.next_msn(), |s| s.msn),
        }
    }

    /// The remembered segments, oldest first.
    pub fn past_segments(&self) -> impl DoubleEndedIterator<Item = &LlPast> + ExactSizeIterator {
        self.past.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llhls::LlLimits;
    use bytes::Bytes;

    /// Segments of 2 s (25 fps, a keyframe every 50 frames), 4 listed and 1 spare in memory,
    /// `dvr` remembered.
    fn stream(dvr: usize) -> LlHls {
        let mut l = LlHls::new(LlLimits {
            part_target: Duration::from_millis(333),
            min_segment: Duration::from_secs(2),
            window: 4,
            spare: 1,
            max_segment_bytes: 1 << 20,
            dvr,
        });
        l.init(Bytes::from_static(b"init0"));
        l
    }

    /// Frames `from..to`, each one MP4 ring unit numbered as the frame, of 100 bytes.
    fn feed(l: &mut LlHls, from: u32, to: u32) {
        for n in from..to {
            let data = vec![Bytes::from(vec![n as u8; 100])];
            let split = [Vec::new(), Vec::new()];
            let wall = Some(1_000_000_000 + u64::from(n) * 40);
            l.fragment_tracks(
                data,
                split,
                n % 50 == 0,
                u64::from(n * 40),
                wall,
                Some(n.into()),
            );
        }
    }

    /// The media sequence numbers of the segments a playlist lists.
    fn listed(p: &str) -> Vec<u64> {
        p.lines()
            .filter_map(|l| l.strip_suffix(".m4s")?.parse().ok())
            .collect()
    }

    /// The playlist with a DVR window of what `recorded` holds (by first unit), from `floor`.
    fn with(l: &LlHls, floor: u64, recorded: impl Fn(u64) -> bool) -> String {
        let r = |a: u64, _: u64, _: u64| recorded(a);
        l.playlist_with(
            false,
            None,
            Some(&Dvr {
                recorded: &r,
                floor,
            }),
        )
    }

    #[test]
    fn remembered_segments_whose_bytes_are_recorded_are_listed_before_those_in_memory() {
        let mut l = stream(10);
        // Segments 0 to 19 complete, 20 open: 15 to 20 in memory, 4 to 14 remembered (10 listed
        // at most, and a spare).
        feed(&mut l, 0, 50 * 20 + 10);
        let all = with(&l, 0, |_| true);
        assert_eq!(listed(&all), (5..20).collect::<Vec<_>>(), "{all}");
        assert!(all.contains("#EXT-X-MEDIA-SEQUENCE:5\n"), "{all}");
        assert_eq!(
            l.first_listed(Some(&Dvr {
                recorded: &|_, _, _| true,
                floor: 0
            })),
            5
        );
        // Each remembered segment with its time and wall clock, under the init segment it needs.
        assert!(all.contains(
            "#EXT-X-MAP:URI=\"init0.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:1970-01-12T13:46:50.000Z\n\
             #EXTINF:2.000,\n5.m4s\n#EXT-X-PROGRAM-DATE-TIME:1970-01-12T13:46:52.000Z\n"
        ));
        // Only the newest unbroken run that the recording holds.
        let some = with(&l, 0, |a| a >= 9 * 50 && a != 7 * 50);
        assert_eq!(listed(&some), (9..20).collect::<Vec<_>>(), "{some}");
        let gap = with(&l, 0, |a| a != 12 * 50);
        assert_eq!(listed(&gap), (13..20).collect::<Vec<_>>(), "{gap}");
        // Nothing recorded: the window in memory (its spare goes first), as without a DVR
        // window.
        assert_eq!(with(&l, 0, |_| false), l.playlist(false, None));
        let none = l.playlist(false, None);
        assert_eq!(listed(&none), (16..20).collect::<Vec<_>>(), "{none}");
        assert_eq!(none, stream_without_dvr().playlist(false, None));
    }

    fn stream_without_dvr() -> LlHls {
        let mut l = stream(0);
        feed(&mut l, 0, 50 * 20 + 10);
        l
    }

    #[test]
    fn the_media_sequence_never_goes_back_whatever_the_recording_is_found_to_hold() {
        // A model of the server: each playlist begins no earlier than the last one given out.
        let mut l = stream(10);
        let mut floor = 0;
        let mut last = 0;
        for step in 0..40u32 {
            feed(&mut l, step * 25, (step + 1) * 25);
            // What the recording holds flips: none, all, all but the oldest.
            let holds = |a: u64| match step % 3 {
                0 => false,
                1 => true,
                _ => a > u64::from(step) * 10,
            };
            let r = |a: u64, _: u64, _: u64| holds(a);
            let dvr = Dvr {
                recorded: &r,
                floor,
            };
            let p = l.playlist_with(false, None, Some(&dvr));
            let first = l.first_listed(Some(&dvr));
            let seq: u64 = p
                .lines()
                .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(seq, first, "{p}");
            assert!(seq >= last, "step {step}: {seq} after {last}\n{p}");
            last = seq;
            floor = floor.max(first);
        }
        assert!(last > 5, "{last}");
    }

    #[test]
    fn a_window_forms_while_players_reload_from_the_start() {
        // A player reloads after every frame from the first on; the recording holds everything.
        let mut l = stream(10);
        let mut floor = 0;
        for n in 0..50 * 20 + 10 {
            feed(&mut l, n, n + 1);
            let r = |_: u64, _: u64, _: u64| true;
            let dvr = Dvr {
                recorded: &r,
                floor,
            };
            floor = floor.max(l.first_listed(Some(&dvr)));
        }
        // 10 remembered, then the 5 kept complete ones and the open one.
        let p = with(&l, floor, |_| true);
        assert_eq!(listed(&p), (5..20).collect::<Vec<_>>(), "{p}");
        // While the recording lags (holds nothing), a reloading player gets the window, and
        // the window forms again from where the recording holds the oldest kept one.
        let mut lagging = stream(10);
        let mut floor = 0;
        for n in 0..50 * 20 + 10 {
            feed(&mut lagging, n, n + 1);
            let r = |a: u64, _: u64, _: u64| n > 50 * 10 && a >= 50 * 9;
            let dvr = Dvr {
                recorded: &r,
                floor,
            };
            floor = floor.max(lagging.first_listed(Some(&dvr)));
        }
        let p = with(&lagging, floor, |a| a >= 50 * 9);
        assert_eq!(listed(&p)[0], 9, "{p}");
    }

    #[test]
    fn a_remembered_segment_runs_from_its_first_unit_to_the_next_ones() {
        let mut l = stream(10);
        feed(&mut l, 0, 50 * 20 + 10);
        let (p, next) = l.past(7).unwrap();
        assert_eq!((p.msn, p.first_unit, next), (7, Some(350), 400));
        assert_eq!((p.bytes, p.duration), (50 * 100, Duration::from_secs(2)));
        // The newest remembered one runs up to the oldest in memory.
        assert_eq!(l.past(14).unwrap().1, 750);
        assert_eq!(l.segment(15).unwrap().first_unit, Some(750));
        // The spare before the listed ones is still served; older ones are forgotten.
        assert!(l.past(4).is_some() && l.past(3).is_none() && l.past(15).is_none());
        assert_eq!(l.past_segments().len(), 11);
        // A segment whose first unit is not known cannot be read, nor the one before it.
        let mut u = stream(10);
        feed(&mut u, 0, 50 * 8);
        u.fragment(vec![Bytes::from_static(b"x")], true, 50 * 8 * 40, None);
        feed(&mut u, 50 * 8 + 1, 50 * 20 + 10);
        assert!(u.past(8).is_none() && u.past(7).is_none() && u.past(6).is_some());
        let p = with(&u, 0, |_| true);
        assert_eq!(listed(&p), (9..20).collect::<Vec<_>>(), "{p}");
    }

    #[test]
    fn a_remembered_segments_init_segment_is_kept_while_it_is_remembered() {
        let mut l = stream(30);
        feed(&mut l, 0, 50 * 10);
        l.init(Bytes::from_static(b"init1"));
        feed(&mut l, 50 * 10, 50 * 30 + 10);
        assert_eq!(l.init_segment(0).map(|b| &b[..]), Some(&b"init0"[..]));
        let p = with(&l, 0, |_| true);
        let maps: Vec<&str> = p.lines().filter(|l| l.starts_with("#EXT-X-MAP")).collect();
        assert_eq!(
            maps,
            [
                "#EXT-X-MAP:URI=\"init0.mp4\"",
                "#EXT-X-MAP:URI=\"init1.mp4\""
            ]
        );
        // Without a DVR window it goes with its last segment.
        let mut n = stream(0);
        feed(&mut n, 0, 50 * 10);
        n.init(Bytes::from_static(b"init1"));
        feed(&mut n, 50 * 10, 50 * 30 + 10);
        assert!(n.init_segment(0).is_none());
    }

    #[test]
    fn discontinuities_before_the_listed_run_count_in_the_discontinuity_sequence() {
        let mut l = stream(30);
        feed(&mut l, 0, 50 * 5);
        l.discontinuity();
        feed(&mut l, 50 * 5, 50 * 20 + 10);
        let all = with(&l, 0, |_| true);
        assert!(all.contains("#EXT-X-DISCONTINUITY-SEQUENCE:0\n"), "{all}");
        assert_eq!(all.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{all}");
        // Recorded only from after the break, or listed from after it: counted as slid out.
        for p in [with(&l, 0, |a| a >= 50 * 6), with(&l, 6, |_| true)] {
            assert_eq!(listed(&p)[0], 6, "{p}");
            assert!(p.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{p}");
            assert!(!p.contains("#EXT-X-DISCONTINUITY\n"), "{p}");
        }
        // And once it is forgotten too.
        feed(&mut l, 50 * 20 + 10, 50 * 60);
        let later = with(&l, 0, |_| true);
        assert!(
            later.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"),
            "{later}"
        );
    }
}
