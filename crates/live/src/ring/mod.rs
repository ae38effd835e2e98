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

/// What a unit costs in memory beyond its bytes, counted with them against `max_bytes` and the
/// memory budget: its place in the ring, and the allocation behind its `Bytes` (header and
/// rounding). Without it, a publisher sending tiny messages (a 2-byte audio frame) would fill
/// a ring's byte limit with a hundred times as much memory as it counts.
pub const UNIT_OVERHEAD: usize = std::mem::size_of::<Unit>() + 64;

impl Unit {
    /// Its bytes: `data` and `more`.
    pub fn len(&self) -> usize {
        self.data.len() + self.more.iter().map(Bytes::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What it costs in memory, as counted against `max_bytes` and the budget: its bytes,
    /// [`UNIT_OVERHEAD`], and the vectors of `more` and `psi` (a PMT of 20 packets before every
    /// keyframe of a publisher that marks every packet one would otherwise be uncounted).
    pub fn cost(&self) -> usize {
        let handles = self.more.capacity() + self.psi.capacity();
        self.len() + UNIT_OVERHEAD + handles * std::mem::size_of::<Bytes>()
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
    /// The units' bytes and their overhead ([`UNIT_OVERHEAD`]): what `max_bytes` bounds.
    bytes: usize,
    /// The units' bytes alone.
    data: usize,
    last_keyframe: Option<u64>,
    limits: Limits,
}

impl Ring {
    pub fn new(limits: Limits) -> Self {
        Ring {
            units: VecDeque::new(),
            next_seq: 0,
            bytes: 0,
            data: 0,
            last_keyframe: None,
            limits,
        }
    }

    /// The units' bytes (what was published and is held now).
    pub fn data_bytes(&self) -> usize {
        self.data
    }

    /// Memory held by the units (their bytes, shared with viewers and counted once, and each
    /// one's [`UNIT_OVERHEAD`]): what `max_bytes` and the memory budget count.
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
    /// not read yet would otherwise be gone: a skip). Without a keyframe in the ring (none yet,
    /// or a GOP longer than the ring), every unit older than `keep` goes: no viewer can start
    /// before the next keyframe anyway, and the stream must not hold its `max_bytes` against
    /// the budget for as long as its GOP lasts.
    pub fn shrink_to_gop(&mut self, now: Duration, keep: Duration) -> usize {
        let k = self
            .last_keyframe
            .filter(|&k| self.units.front().is_some_and(|f| f.seq <= k))
            .unwrap_or(u64::MAX);
        let mut freed = 0;
        while let Some(front) = self.units.front() {
            if front.seq >= k || now.saturating_sub(front.arrived) <= keep {
                break;
            }
            freed += front.cost();
            self.data -= front.len();
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
        self.bytes += unit.cost();
        self.data += unit.len();
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
            self.bytes -= front.cost();
            self.data -= front.len();
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
    /// The viewer already has the PAT and PMT of `start` (it was sent the stream up to it).
    continuing: bool,
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

    /// A viewer that was already sent the stream up to the keyframe unit `seq` (from a
    /// recording) and goes on from it: like [`Viewer::starting_at`], but without the keyframe's
    /// PAT and PMT, which it has (sent again, their continuity counters would repeat). If `seq`
    /// has left the ring, it starts at the newest keyframe, PAT and PMT first.
    pub fn continuing_at(seq: u64) -> Viewer {
        Viewer {
            start: Some(seq),
            continuing: true,
            ..Viewer::default()
        }
    }

    /// A viewer that was already sent the stream up to the unit before `seq`, exactly as the
    /// ring holds it (an FLV DVR viewer converted it from a recording): it goes on at `seq`, which
    /// need not be a keyframe. If `seq` has left the ring by its first step, it skips to the
    /// newest keyframe, as a lagging viewer does.
    pub fn after(seq: u64) -> Viewer {
        Viewer {
            next: Some(seq),
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
                let continuing = asked.is_some() && self.continuing;
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
                if let Some(u) = ring.get(k).filter(|_| !continuing) {
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
mod tests;
