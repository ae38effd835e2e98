//! A stream's FLV/RTMP timestamps (32-bit milliseconds, per track) onto a 64-bit timeline that
//! rises per track whatever the publisher's timestamps do, sans-I/O. Timestamps wrap after 49.7
//! days, and a publisher may step them back (a repeated timestamp, jitter, an encoder that
//! restarted its clock or switched its input without reconnecting): a decode time that goes
//! back stalls players (MSE drops or overlaps the frames, flv.js and RTMP clients stop or
//! jump), where the outputs get a timeline that goes on.
//!
//! - Forward steps are kept as they are (a gap stays a gap), unwrapped across 2^32.
//! - A step back of up to [`STEP_BACK_MS`] (jitter, a repeat) is held 1 ms after the frame
//!   before until the timestamps pass it again: no drift from the other track.
//! - A longer one is a new clock: the track goes on where the other track is on that clock if
//!   it went over to it already (the tracks stay in step), else a frame interval after its own
//!   last frame.
//!
//! Used by the RTMP ingest (every output of an RTMP source is timed on it) and by the fMP4
//! fragmenter (its `tfdt`s, and a DVR viewer's own fragmenter started on the stream's timeline
//! with [`Timeline::anchored`]).

/// A step back of a track's timestamps by more than this (ms) is a new clock.
pub const STEP_BACK_MS: i64 = 1000;
/// A step forward past this (ms) is taken as a step back across the 32-bit wrap.
const MAX_STEP_FORWARD_MS: i64 = 1 << 30;
/// Assumed frame intervals (ms) until a track has shown its own.
const FIRST_VIDEO_MS: u32 = 33;
const FIRST_AUDIO_MS: u32 = 21;
/// Steps (ms) up to this are frame intervals (what a new clock goes on by); longer ones gaps.
const MAX_INTERVAL_MS: i64 = 10_000;

/// Per track (video, audio): a timestamp as the publisher gave it (ms, 32-bit) and where it is
/// on the 64-bit timeline.
pub type Anchor = [Option<(u32, u64)>; 2];

/// One track's clock: where its last frame is on the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Clock {
    /// The last frame's timestamp as the publisher gave it.
    ms: u32,
    /// That timestamp on the timeline: unwrapped, moved on by the steps back taken as a new
    /// clock.
    base: u64,
    /// The last frame's time: `base`, or 1 ms after the frame before where `base` stepped back
    /// a little.
    time: u64,
    /// The interval before the last frame (what the next frame is assumed to last).
    interval: u32,
}

impl Clock {
    /// The step from this clock's last timestamp to `ms`, and where `ms` is on its timeline.
    fn place(&self, ms: u32) -> (i64, u64) {
        let step = i64::from(ms.wrapping_sub(self.ms) as i32);
        (step, self.base.saturating_add_signed(step))
    }
}

/// Whether a track's timestamps stepping by `step` (ms) began a new clock.
fn is_new_clock(step: i64) -> bool {
    !(-STEP_BACK_MS..=MAX_STEP_FORWARD_MS).contains(&step)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    clocks: [Option<Clock>; 2],
    /// Per track: where its first frame goes; on the other track's clock without one, a
    /// timestamp as itself without either.
    anchor: Anchor,
}

impl Timeline {
    /// A timeline that places each track's timestamps where `anchor` says (what
    /// [`Timeline::anchor`] of another one says, or a publisher's first timestamp and where
    /// the stream it comes back to goes on).
    pub fn anchored(anchor: Anchor) -> Self {
        Timeline {
            clocks: [None, None],
            anchor,
        }
    }

    /// Per track (video, audio): where its last frame's timestamp is on the timeline.
    pub fn anchor(&self) -> Anchor {
        let at = |t: usize| self.clocks[t].map(|c| (c.ms, c.base)).or(self.anchor[t]);
        [at(0), at(1)]
    }

    /// Where timestamp `ms` of `video`'s track is on the timeline, without taking it as a
    /// frame (a sequence header, which the frame after it shares its timestamp with): where
    /// [`Self::place`] would put a frame there, but never held after the last frame.
    /// (A header at a new clock sits at the last frame's time: the keyframe after it may go on
    /// the other track's new clock, before where this track's own would be.)
    pub fn peek(&self, video: bool, ms: u32) -> u64 {
        let mut probe = self.clone();
        let time = probe.place(video, ms).0;
        match self.clocks[usize::from(!video)] {
            Some(last) if time == last.time.saturating_add(1) => last.time,
            Some(last) if is_new_clock(last.place(ms).0) => last.time,
            _ => time,
        }
    }

    /// A frame of `video`'s track at timestamp `ms`: its time on the timeline (after the
    /// track's last frame's), and the interval before it, what its own duration is assumed to
    /// be (for a track's first frame, a common one).
    pub fn place(&mut self, video: bool, ms: u32) -> (u64, u32) {
        let track = usize::from(!video);
        let clock = match self.clocks[track] {
            Some(last) => {
                let (step, mut base) = last.place(ms);
                let interval = match u32::try_from(step) {
                    Ok(d) if d > 0 && i64::from(d) < MAX_INTERVAL_MS => d,
                    _ => last.interval,
                };
                if is_new_clock(step) {
                    // On the other track's new clock if it went over to it already (its last
                    // timestamp near this one, and that clock ahead of this track's last frame:
                    // not a track that stopped long ago), else a frame after the last.
                    let other = self.clocks[1 - track]
                        .filter(|o| i64::from(ms.wrapping_sub(o.ms) as i32).abs() <= STEP_BACK_MS)
                        .map(|o| o.place(ms).1)
                        .filter(|&on| on > last.time);
                    base = other
                        .unwrap_or_else(|| last.time.saturating_add(u64::from(interval.max(1))));
                    // A track yet to begin goes on this new clock, not on where the old one was.
                    if self.clocks[1 - track].is_none() {
                        self.anchor[1 - track] = None;
                    }
                }
                Clock {
                    ms,
                    base,
                    time: base.max(last.time.saturating_add(1)),
                    interval,
                }
            }
            None => {
                let other = self.clocks[1 - track].map(|c| (c.ms, c.base));
                let base = match self.anchor[track].or(other) {
                    Some((at, base)) => {
                        let step = i64::from(ms.wrapping_sub(at) as i32);
                        base.saturating_add_signed(step)
                    }
                    None => u64::from(ms),
                };
                Clock {
                    ms,
                    base,
                    time: base,
                    interval: if video {
                        FIRST_VIDEO_MS
                    } else {
                        FIRST_AUDIO_MS
                    },
                }
            }
        };
        self.clocks[track] = Some(clock);
        (clock.time, clock.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A publisher's sequence header and the keyframe after it share a timestamp: the header,
    /// looked at with `peek`, is where the keyframe goes (not held 1 ms after it), also on an
    /// anchored timeline (a publisher that came back) and mid-stream.
    #[test]
    fn a_sequence_header_is_where_its_keyframe_goes() {
        let mut t = Timeline::anchored([Some((0, 7040)), Some((0, 7040))]);
        assert_eq!(t.peek(true, 0), 7040);
        assert_eq!(t.place(true, 0).0, 7040, "the keyframe, not held");
        assert_eq!(t.place(true, 40).0, 7080);
        assert_eq!(
            t.peek(true, 40),
            7080,
            "a new header at the last frame's time"
        );
        assert_eq!(t.place(true, 40).0, 7081, "a repeated frame is held");
    }

    /// The clock restarts while the audio has not begun yet (video alone for 4 s): the audio,
    /// when it comes, goes on the video's new clock, not on where the publisher began.
    #[test]
    fn a_track_that_begins_after_a_restart_goes_on_the_new_clock() {
        let mut t = Timeline::anchored([Some((0, 7040)), Some((0, 7040))]);
        for ms in (0..=4000).step_by(40) {
            assert_eq!(t.place(true, ms).0, 7040 + u64::from(ms));
        }
        let restart = t.place(true, 0).0;
        assert_eq!(restart, 11_080, "the restart: a frame after the last");
        let audio = t.place(false, 20).0;
        assert_eq!(audio, 11_100, "audio on the video's new clock");
    }

    /// The video's clock restarts near where the audio, which stopped long ago, last was: the
    /// video goes on after its own last frame, not back onto the stopped track's clock (which
    /// would hold every later frame 1 ms apart).
    #[test]
    fn a_restart_near_a_stopped_tracks_last_timestamp_does_not_follow_it() {
        let mut t = Timeline::default();
        t.place(false, 500);
        t.place(true, 500);
        for ms in (540..3_600_000).step_by(40).take(100) {
            t.place(true, ms);
        }
        let last = t.place(true, 4540).0;
        assert_eq!(t.place(true, 0).0, last + 40, "a frame after the last");
        assert_eq!(t.place(true, 40).0, last + 80);
    }

    /// A header at a restarted clock, which the keyframe after it puts on the other track's new
    /// clock: the header at the last frame's time, never after its keyframe.
    #[test]
    fn a_sequence_header_at_a_restart_is_not_after_its_keyframe() {
        let mut t = Timeline::default();
        t.place(true, 10_000);
        t.place(false, 9_990);
        let header = t.peek(true, 0);
        t.place(false, 0);
        let keyframe = t.place(true, 0).0;
        assert!(header <= keyframe, "{header} after {keyframe}");
    }

    /// Two frames at one timestamp, a step back of half a second, then the timestamps on
    /// again: held 1 ms apart, then back on the publisher's clock with no drift.
    #[test]
    fn a_short_step_back_is_held_then_the_clock_goes_on() {
        let mut t = Timeline::default();
        let times: Vec<u64> = [1000, 1040, 1040, 540, 1120]
            .into_iter()
            .map(|ms| t.place(true, ms).0)
            .collect();
        assert_eq!(times, [1000, 1040, 1041, 1042, 1120]);
    }
}
