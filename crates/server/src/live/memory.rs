//! The live wing's memory accounting: what each stream holds (its TS ring or HLS segments,
//! whichever reaches further back, since they share their bytes; its FLV and RTMP rings; and a
//! receive buffer while a publisher is connected, or what its RTMP connection holds of partial
//! messages when that is more, and what its ingest keeps back of an undecided PES), summed across streams and held against
//! `live::Budget`, which decides what the sum allows. Each stream re-counts itself under its
//! write lock after every change it makes, and gives its count back when it is dropped (when
//! the last viewer or request holding it is gone, which is when its bytes are freed).

use super::Inner;
use crate::error::Error;
use live::Budget;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// HLS segments kept by a stream shrunk for the budget: the newest two, so a player that is
/// fetching the one before the newest still finds it.
const SHRUNK_HLS_SEGMENTS: usize = 2;
/// Units this recent are kept when a ring shrinks: viewers woken in batches (FLV/RTMP, 100 ms)
/// or a little behind keep their place instead of skipping.
const SHRUNK_KEEP: Duration = Duration::from_secs(1);

/// Server-wide live memory, shared by every stream.
#[derive(Debug)]
pub struct Memory {
    budget: Budget,
    /// What a stream holds besides its outputs while a publisher is connected (its receive
    /// slab), and what a new stream must fit to start.
    start: usize,
    held: AtomicUsize,
    /// New publishers refused for the budget.
    pub refused: AtomicU64,
    /// Times a stream shrank its windows to its current GOP.
    pub shrinks: AtomicU64,
}

impl Memory {
    pub fn new(budget: Budget, start: usize) -> Self {
        Memory {
            budget,
            start,
            held: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            shrinks: AtomicU64::new(0),
        }
    }

    /// Bytes held across streams.
    pub fn held(&self) -> usize {
        self.held.load(Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.budget.limit
    }

    /// May a new stream start?
    pub(super) fn admit(&self) -> Result<(), Error> {
        self.budget.admit(self.held(), self.start).map_err(|e| {
            self.refused.fetch_add(1, Relaxed);
            Error::MemoryBudget(e)
        })
    }

    /// Re-counts a stream after a change (under its write lock; `mine` is its last count;
    /// `receiving`: what its publisher's connection holds of messages still arriving;
    /// `held_back`: what its ingest keeps back of a PES not yet decided).
    /// Over the budget, the stream first shrinks its windows to its current GOP.
    pub(super) fn update(
        &self,
        mine: &AtomicUsize,
        inner: &mut Inner,
        now: Duration,
        receiving: usize,
        held_back: usize,
    ) {
        let receiving = (receiving, held_back);
        let mut held = self.count(inner, receiving);
        let before = mine.load(Relaxed);
        if self
            .budget
            .over(self.held().saturating_sub(before).saturating_add(held))
        {
            let keep = SHRUNK_KEEP;
            let mut freed = inner.ring.shrink_to_gop(now, keep);
            freed += inner.hls.shrink(SHRUNK_HLS_SEGMENTS);
            freed += inner
                .media
                .as_mut()
                .map_or(0, |m| m.shrink_to_gop(now, keep, SHRUNK_HLS_SEGMENTS));
            if freed > 0 {
                self.shrinks.fetch_add(1, Relaxed);
                held = self.count(inner, receiving);
            }
        }
        self.set(mine, held);
    }

    /// Gives back what a stream counted (it is being dropped).
    pub(super) fn release(&self, mine: &AtomicUsize) {
        self.set(mine, 0);
    }

    fn set(&self, mine: &AtomicUsize, now: usize) {
        let before = mine.swap(now, Relaxed);
        if now >= before {
            self.held.fetch_add(now - before, Relaxed);
        } else {
            self.held.fetch_sub(before - now, Relaxed);
        }
    }

    fn count(&self, inner: &Inner, (receiving, held_back): (usize, usize)) -> usize {
        let publisher = if inner.publisher.is_some() {
            self.start.max(receiving).saturating_add(held_back)
        } else {
            0
        };
        inner.ring.bytes().max(inner.hls.bytes())
            + inner.media.as_ref().map_or(0, |m| m.bytes())
            + publisher
    }
}

/// The machine's memory, or the cgroup's limit if lower (what the budget's default is a
/// quarter of); 4 GiB when neither can be read.
pub fn total_memory() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb.saturating_mul(1024))
    });
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    match (meminfo, cgroup) {
        (Some(m), Some(c)) => m.min(c),
        (Some(m), None) => m,
        (None, Some(c)) => c,
        (None, None) => 4 << 30,
    }
}
