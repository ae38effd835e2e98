//! The ring and viewer cursors. Time is passed in (`now`, any monotonic origin), never read.

use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;

/// A run of whole TS packets as ingested; `keyframe` when it starts with a video keyframe's PES.
#[derive(Debug, Clone)]
pub struct Unit {
    pub seq: u64,
    pub data: Bytes,
    /// What belongs to this unit after `data` and always goes out with it, in one step: an MP4
    /// fragment's samples after its head (a viewer must never get a head without its samples).
    pub more: Vec<Bytes>,
    pub keyframe: bool,
    /// For a keyframe: the PAT and PMT packets last seen before it, sent first to a viewer that
    /// starts here (so its counters continue exactly into the stream's next PAT and PMT).
    pub psi: Vec<Bytes>,
    pub arrived: Duration,
}

impl Unit {
    /// Its bytes: `data` and `more`.
    pub fn len(&self) -> usize {
        self.data.len() + self.more.iter().map(Bytes::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How much a ring keeps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A hard limit on the bytes held, the current GOP included (a stream without keyframes must
    /// not grow without bound).
    pub max_bytes: usize,
    /// Units older than this are dropped, except those of the current GOP.
    pub max_age: Duration,
}

#[derive(Debug)]
pub struct Ring {
    units: VecDeque<Unit>,
    next_seq: u64,
    bytes: usize,
    last_keyframe: Option<u64>,
    limits: Limits,
}

impl Ring {
    pub fn new(limits: Limits) -> Self {
        Ring {
            units: VecDeque::new(),
            next_seq: 0,
            bytes: 0,
            last_keyframe: None,
            limits,
        }
    }

    /// Bytes held by the units (shared with viewers, counted once).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn first_seq(&self) -> u64 {
        self.units.front().map_or(self.next_seq, |u| u.seq)
    }

    pub fn end_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn last_keyframe(&self) -> Option<u64> {
        self.last_keyframe
    }

    pub fn get(&self, seq: u64) -> Option<&Unit> {
        let i = seq.checked_sub(self.first_seq())?;
        self.units.get(usize::try_from(i).ok()?)
    }

    /// DVR: the newest keyframe unit that arrived at or before `at`; `None` when the oldest
    /// keyframe held arrived after it (the time is outside the ring's window).
    pub fn keyframe_at(&self, at: Duration) -> Option<u64> {
        self.units
            .iter()
            .rev()
            .find(|u| u.keyframe && u.arrived <= at)
            .map(|u| u.seq)
    }

    /// When the oldest keyframe held arrived: the start of what a DVR viewer can rewind to.
    pub fn oldest_keyframe(&self) -> Option<Duration> {
        self.units.iter().find(|u| u.keyframe).map(|u| u.arrived)
    }

    /// The units held, oldest first.
    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.iter()
    }

    /// Appends a unit that continues the current GOP.
    pub fn push(&mut self, data: Bytes, now: Duration) -> u64 {
        self.push_parts(data, Vec::new(), false, Vec::new(), now)
    }

    /// Appends a unit that starts with a keyframe, and the PAT/PMT to send before it.
    pub fn push_keyframe(&mut self, data: Bytes, psi: Vec<Bytes>, now: Duration) -> u64 {
        self.push_parts(data, Vec::new(), true, psi, now)
    }

    /// Drops the units before the newest keyframe (the server is over its memory budget) that
    /// arrived more than `keep` before `now`; returns the bytes dropped. Recent units stay, so
    /// viewers that read in batches or are a moment behind keep their place (a unit they have
    /// not read yet would otherwise be gone: a skip). Without a keyframe in the ring, nothing is
    /// dropped: new viewers wait for the next one anyway, and `max_bytes` bounds the ring.
    pub fn shrink_to_gop(&mut self, now: Duration, keep: Duration) -> usize {
        let Some(k) = self.last_keyframe else {
            return 0;
        };
        let mut freed = 0;
        while let Some(front) = self.units.front() {
            if front.seq >= k || now.saturating_sub(front.arrived) <= keep {
                break;
            }
            freed += front.len();
            self.units.pop_front();
        }
        self.bytes -= freed;
        freed
    }

    /// Appends a unit, `data` then the parts that always go out with it (`more`: an MP4
    /// fragment's samples after its head), with what a viewer starting at it gets first (`psi`,
    /// for a keyframe); then evicts from the front: units older than `max_age` outside the
    /// current GOP, and anything beyond `max_bytes` (the newest unit stays whatever its size).
    pub fn push_parts(
        &mut self,
        data: Bytes,
        more: Vec<Bytes>,
        keyframe: bool,
        psi: Vec<Bytes>,
        now: Duration,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let unit = Unit {
            seq,
            data,
            more,
            keyframe,
            psi,
            arrived: now,
        };
        self.bytes += unit.len();
        if keyframe {
            self.last_keyframe = Some(seq);
        }
        self.units.push_back(unit);
        while let Some(front) = self.units.front() {
            let in_current_gop = self.last_keyframe.is_some_and(|k| front.seq >= k);
            let too_old = now.saturating_sub(front.arrived) > self.limits.max_age;
            let too_big = self.bytes > self.limits.max_bytes && front.seq != seq;
            let evict = too_big || (too_old && !in_current_gop);
            if !evict {
                break;
            }
            if self.last_keyframe == Some(front.seq) {
                // A GOP larger than the whole ring: new viewers wait for the next keyframe.
                self.last_keyframe = None;
            }
            self.bytes -= front.len();
            self.units.pop_front();
        }
        seq
    }
}

/// When a lagging viewer is given up on.
#[derive(Debug, Clone, Copy)]
pub struct ViewerPolicy {
    /// More skips than this within `skip_period` disconnects the viewer.
    pub max_skips: usize,
    pub skip_period: Duration,
    /// Most bytes handed out per step (one vectored write).
    pub max_batch_bytes: usize,
    /// Most units handed out per step (a vectored write takes at most 1024 slices).
    pub max_batch_units: usize,
}

/// What a viewer should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Write these, in order, in one vectored write. `skipped` when the viewer had fallen out of
    /// the ring and jumps to the newest keyframe (PAT/PMT first).
    Send { parts: Vec<Bytes>, skipped: bool },
    /// Nothing new: wait for the next push.
    Wait,
    /// Fell behind too often: close the connection.
    Disconnect,
}

/// One viewer's position in a ring.
#[derive(Debug, Default)]
pub struct Viewer {
    next: Option<u64>,
    /// Where a DVR viewer starts instead of the newest keyframe (a keyframe unit).
    start: Option<u64>,
    skips: VecDeque<Duration>,
    pub total_skips: u64,
}

impl Viewer {
    /// A viewer that starts at the keyframe unit `seq` (found with [`Ring::keyframe_at`]) rather
    /// than at the newest keyframe, and follows on from there; if `seq` has left the ring by its
    /// first step, it starts at the newest keyframe.
    pub fn starting_at(seq: u64) -> Viewer {
        Viewer {
            start: Some(seq),
            ..Viewer::default()
        }
    }

    /// Units between this viewer and the publisher.
    pub fn lag(&self, ring: &Ring) -> u64 {
        self.next.map_or(0, |n| ring.end_seq().saturating_sub(n))
    }

    pub fn step(&mut self, ring: &Ring, now: Duration, policy: &ViewerPolicy) -> Step {
        let mut parts = Vec::new();
        let mut skipped = false;
        let next = match self.next {
            Some(n) if n >= ring.first_seq() => n,
            started => {
                let asked = self
                    .start
                    .take()
                    .filter(|&s| ring.get(s).is_some_and(|u| u.keyframe));
                let Some(k) = asked.or(ring.last_keyframe()) else {
                    return Step::Wait;
                };
                if started.is_some() {
                    skipped = true;
                    self.total_skips += 1;
                    self.skips.push_back(now);
                    while self
                        .skips
                        .front()
                        .is_some_and(|t| now.saturating_sub(*t) > policy.skip_period)
                    {
                        self.skips.pop_front();
                    }
                    if self.skips.len() > policy.max_skips {
                        return Step::Disconnect;
                    }
                }
                if let Some(u) = ring.get(k) {
                    parts.extend(u.psi.iter().cloned());
                }
                k
            }
        };
        let mut seq = next;
        let mut batch = 0;
        while let Some(u) = ring.get(seq) {
            let full = batch + u.len() > policy.max_batch_bytes
                || parts.len() + 1 + u.more.len() > policy.max_batch_units;
            if batch > 0 && full {
                break;
            }
            batch += u.len();
            parts.push(u.data.clone());
            parts.extend(u.more.iter().cloned());
            seq += 1;
        }
        self.next = Some(seq);
        if parts.is_empty() {
            Step::Wait
        } else {
            Step::Send { parts, skipped }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: ViewerPolicy = ViewerPolicy {
        max_skips: 3,
        skip_period: Duration::from_secs(30),
        max_batch_bytes: 1 << 20,
        max_batch_units: 1000,
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A unit whose bytes name it, so tests can tell units apart: [seq as u8; len].
    fn unit(seq: u64, len: usize) -> Bytes {
        Bytes::from(vec![seq as u8; len])
    }

    fn ring(max_bytes: usize) -> Ring {
        Ring::new(Limits {
            max_bytes,
            max_age: Duration::from_secs(60),
        })
    }

    /// Pushes a unit; a keyframe comes with its PAT/PMT ("PSI").
    fn put(r: &mut Ring, data: Bytes, keyframe: bool, now: Duration) {
        if keyframe {
            r.push_keyframe(data, vec![Bytes::from_static(b"PSI")], now);
        } else {
            r.push(data, now);
        }
    }

    #[test]
    fn a_unit_of_parts_goes_out_whole_in_one_step_even_past_the_batch_limit() {
        let mut r = ring(1 << 20);
        let policy = ViewerPolicy {
            max_batch_bytes: 25,
            ..POLICY
        };
        let parts = |s: u64| vec![unit(s + 100, 10), unit(s + 200, 10)];
        r.push_parts(unit(0, 10), parts(0), true, Vec::new(), ms(0));
        r.push_parts(unit(1, 10), parts(1), false, Vec::new(), ms(1));
        assert_eq!(r.bytes(), 60, "every part counts");
        let mut v = Viewer::default();
        for s in 0..2 {
            let Step::Send { parts: got, .. } = v.step(&r, ms(2), &policy) else {
                panic!("unit {s}: nothing to send");
            };
            assert_eq!(got, [unit(s, 10), unit(s + 100, 10), unit(s + 200, 10)]);
        }
    }

    #[test]
    fn a_late_joiner_starts_with_psi_then_the_latest_keyframe() {
        let mut r = ring(1 << 20);
        for s in 0..10 {
            put(&mut r, unit(s, 10), s % 4 == 0, ms(s));
        }
        let mut v = Viewer::default();
        match v.step(&r, ms(10), &POLICY) {
            Step::Send { parts, skipped } => {
                assert!(!skipped);
                assert_eq!(parts[0], Bytes::from_static(b"PSI"));
                assert_eq!(parts[1][0], 8, "keyframe unit 8 comes right after the PSI");
                assert_eq!(parts.len(), 3);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(v.step(&r, ms(10), &POLICY), Step::Wait);
        put(&mut r, unit(10, 10), false, ms(11));
        assert_eq!(
            v.step(&r, ms(11), &POLICY),
            Step::Send {
                parts: vec![unit(10, 10)],
                skipped: false
            }
        );
        // No keyframe yet: nothing to start from.
        assert_eq!(
            Viewer::default().step(&ring(100), ms(0), &POLICY),
            Step::Wait
        );
    }

    #[test]
    fn a_dvr_viewer_starts_at_the_keyframe_of_its_time_and_follows_on_to_the_live_edge() {
        let mut r = ring(1 << 20);
        // Units every 100 ms, a keyframe every 4th.
        for s in 0..12 {
            put(&mut r, unit(s, 10), s % 4 == 0, ms(s * 100));
        }
        assert_eq!(r.oldest_keyframe(), Some(ms(0)));
        assert_eq!(
            r.keyframe_at(ms(650)),
            Some(4),
            "the keyframe at or before 650 ms"
        );
        assert_eq!(r.keyframe_at(ms(800)), Some(8));
        let mut v = Viewer::starting_at(r.keyframe_at(ms(650)).unwrap());
        let Step::Send { parts, skipped } = v.step(&r, ms(1200), &POLICY) else {
            panic!("nothing to send");
        };
        assert!(!skipped);
        assert_eq!(parts[0], Bytes::from_static(b"PSI"));
        let seqs: Vec<u8> = parts[1..].iter().map(|p| p[0]).collect();
        assert_eq!(
            seqs,
            (4..12).collect::<Vec<u8>>(),
            "from unit 4 to the live edge, no gap"
        );
        // Before the oldest keyframe held: outside the window.
        let mut late = ring(1 << 20);
        put(&mut late, unit(0, 10), true, ms(500));
        assert_eq!(late.keyframe_at(ms(400)), None);
        // A start that has left the ring by the first step: the newest keyframe.
        let mut gone = Viewer::starting_at(1);
        let Step::Send { parts, .. } = gone.step(&r, ms(1200), &POLICY) else {
            panic!("nothing to send");
        };
        assert_eq!(parts[1][0], 8);
    }

    #[test]
    fn memory_is_bounded_and_the_current_gop_kept_within_the_limit() {
        let mut r = ring(10_000);
        for s in 0..1000 {
            put(&mut r, unit(s, 100), s % 50 == 0, ms(s));
            assert!(r.bytes() <= 10_000, "seq {s}: {} bytes held", r.bytes());
            assert!(
                r.first_seq() <= r.last_keyframe().unwrap(),
                "the current GOP is never evicted"
            );
        }
        // A GOP larger than the ring (a stream whose keyframes stopped): still bounded, and new
        // viewers wait for the next keyframe instead of starting mid-GOP.
        let mut r = ring(1000);
        for s in 0..100 {
            put(&mut r, unit(s, 100), s == 0, ms(s));
            assert!(r.bytes() <= 1000);
        }
        assert_eq!(r.last_keyframe(), None);
        assert_eq!(Viewer::default().step(&r, ms(100), &POLICY), Step::Wait);
        // Age limit too.
        let mut r = Ring::new(Limits {
            max_bytes: usize::MAX,
            max_age: ms(100),
        });
        for s in 0..1000 {
            put(&mut r, unit(s, 1), true, ms(s));
        }
        assert!(r.end_seq() - r.first_seq() <= 102);
    }

    #[test]
    fn a_slow_viewer_skips_to_a_keyframe_and_is_dropped_after_repeated_skips() {
        let mut r = ring(2000);
        let mut fast = Viewer::default();
        let mut slow = Viewer::default();
        put(&mut r, unit(0, 100), true, ms(0));
        assert!(matches!(fast.step(&r, ms(0), &POLICY), Step::Send { .. }));
        assert!(matches!(slow.step(&r, ms(0), &POLICY), Step::Send { .. }));
        let mut outcome = Vec::new();
        for s in 1..400u64 {
            put(&mut r, unit(s, 100), s % 10 == 0, ms(s));
            // The fast viewer reads everything, in order, never skipping.
            match fast.step(&r, ms(s), &POLICY) {
                Step::Send { parts, skipped } => {
                    assert!(!skipped);
                    assert_eq!(parts, vec![unit(s, 100)]);
                }
                other => panic!("fast viewer: {other:?}"),
            }
            // The slow viewer reads once every 60 units.
            if s % 60 == 0 {
                match slow.step(&r, ms(s), &POLICY) {
                    Step::Send { parts, skipped } => {
                        assert!(skipped, "fell out of a 20-unit ring");
                        assert_eq!(parts[0], Bytes::from_static(b"PSI"));
                        assert_eq!(parts[1][0] % 10, 0, "resumes at a keyframe");
                        outcome.push("skip");
                    }
                    Step::Disconnect => {
                        outcome.push("disconnect");
                        break;
                    }
                    Step::Wait => panic!("slow viewer waits"),
                }
            }
        }
        assert_eq!(outcome, ["skip", "skip", "skip", "disconnect"]);
        assert_eq!(slow.total_skips, 4);
    }

    #[test]
    fn shrinking_keeps_the_current_gop_and_a_viewer_behind_it_skips_to_its_keyframe() {
        let mut r = ring(1 << 20);
        let mut behind = Viewer::default();
        put(&mut r, unit(0, 100), true, ms(0));
        assert!(matches!(behind.step(&r, ms(0), &POLICY), Step::Send { .. }));
        put(&mut r, unit(1, 100), false, ms(1));
        put(&mut r, unit(2, 100), true, ms(2));
        put(&mut r, unit(3, 100), false, ms(3));
        assert_eq!(r.shrink_to_gop(ms(4), ms(0)), 200, "units 0 and 1 dropped");
        assert_eq!((r.first_seq(), r.bytes()), (2, 200));
        match behind.step(&r, ms(4), &POLICY) {
            Step::Send { parts, skipped } => {
                assert!(skipped, "the viewer's next unit is gone: a counted skip");
                assert_eq!(parts[1], unit(2, 100), "restarts at the kept keyframe");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.shrink_to_gop(ms(4), ms(0)), 0, "already one GOP");
    }

    #[test]
    fn shrinking_keeps_recent_units_so_a_viewer_a_moment_behind_keeps_its_place() {
        let mut r = ring(1 << 20);
        let mut v = Viewer::default();
        put(&mut r, unit(0, 100), true, ms(0));
        put(&mut r, unit(1, 100), false, ms(900));
        assert!(matches!(v.step(&r, ms(900), &POLICY), Step::Send { .. }));
        put(&mut r, unit(2, 100), false, ms(1950));
        put(&mut r, unit(3, 100), true, ms(2000));
        // Unit 2 came 50 ms ago and the viewer has not read it yet.
        assert_eq!(
            r.shrink_to_gop(ms(2000), ms(1000)),
            200,
            "only units 0 and 1"
        );
        match v.step(&r, ms(2000), &POLICY) {
            Step::Send { parts, skipped } => {
                assert!(!skipped);
                assert_eq!(parts, [unit(2, 100), unit(3, 100)]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shrinking_without_a_keyframe_keeps_everything() {
        let mut r = ring(1 << 20);
        put(&mut r, unit(0, 100), false, ms(0));
        assert_eq!(r.shrink_to_gop(ms(10_000), ms(0)), 0);
        assert_eq!(r.bytes(), 100);
    }

    #[test]
    fn random_viewers_see_contiguous_units_except_at_counted_skips() {
        let mut rng = fastrand::Rng::with_seed(8);
        let mut r = ring(5_000);
        let mut viewers: Vec<(Viewer, Option<u8>)> =
            (0..20).map(|_| (Viewer::default(), None)).collect();
        let policy = ViewerPolicy {
            max_skips: usize::MAX,
            ..POLICY
        };
        let mut skips = 0;
        for s in 0..3000u64 {
            // Byte 0 names the unit, byte 1 says whether it is a keyframe.
            let key = rng.u8(0..8) == 0;
            let mut data = vec![s as u8; rng.usize(2..400)];
            data[1] = u8::from(key);
            put(&mut r, Bytes::from(data), key, ms(s));
            if rng.u8(0..50) == 0 {
                // Over the memory budget now and then.
                r.shrink_to_gop(ms(s), ms(rng.u64(0..50)));
            }
            for (v, last) in viewers.iter_mut() {
                if rng.u8(0..4) != 0 {
                    continue;
                }
                if let Step::Send { parts, skipped } = v.step(&r, ms(s), &policy) {
                    let starts_over = skipped || last.is_none();
                    let units = if starts_over {
                        assert_eq!(
                            parts[0],
                            Bytes::from_static(b"PSI"),
                            "PAT/PMT before a (re)start"
                        );
                        assert_eq!(parts[1][1], 1, "a (re)start is at a keyframe");
                        &parts[1..]
                    } else {
                        assert_eq!(parts[0][0], last.unwrap().wrapping_add(1), "contiguous");
                        &parts[..]
                    };
                    skips += usize::from(skipped);
                    for w in units.windows(2) {
                        assert_eq!(
                            w[1][0],
                            w[0][0].wrapping_add(1),
                            "contiguous within a batch"
                        );
                    }
                    *last = Some(units.last().unwrap()[0]);
                }
            }
            assert!(r.bytes() <= 5_000, "bounded by the limit");
        }
        assert!(skips > 0, "some viewers lagged out of the ring and skipped");
    }
}
