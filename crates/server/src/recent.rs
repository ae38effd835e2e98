//! The clips of a title made most recently, kept with the title: a player plays a clip with many
//! range requests for the same URL, and each would otherwise write the clip's head (an MP4's
//! `moov`, 2 ms for ten minutes of a 720p title) again.
//!
//! Requests that name other times for the same clip (`?start=10.001`, `?start=10.002`: both
//! snap to one keyframe) share one head; and all titles together keep at most
//! [`MAX_KEPT_TOTAL`] of heads (past it a clip is made, served and not kept), so a client
//! walking the library with odd times cannot hold memory that nothing counts.

use bytes::Bytes;
use media::MediaTime;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// A clip as served: its written head and the ranges of the title's bytes after it.
#[derive(Debug)]
pub struct CutClip {
    pub head: Bytes,
    pub body: Vec<Range<u64>>,
    pub start: MediaTime,
    pub end: MediaTime,
}

/// The times a clip was asked for.
pub type ClipKey = (MediaTime, Option<MediaTime>);

/// The last few clips made, newest first.
#[derive(Debug, Default)]
pub struct RecentClips {
    slots: Mutex<VecDeque<(ClipKey, Arc<CutClip>)>>,
}

/// How many clips a title keeps.
const KEEP: usize = 8;

/// The largest head kept (bytes).
const MAX_KEPT_HEAD: usize = 4 << 20;

/// The heads kept by all titles together, at most.
pub const MAX_KEPT_TOTAL: usize = 256 << 20;

/// The bytes of heads kept now, all titles together.
static KEPT: AtomicUsize = AtomicUsize::new(0);

impl CutClip {
    /// The same clip: the same keyframes and bytes (whatever times were asked for).
    fn same(&self, other: &CutClip) -> bool {
        (self.start, self.end, &self.body) == (other.start, other.end, &other.body)
    }
}

impl Drop for RecentClips {
    fn drop(&mut self) {
        let slots = self.slots.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut counted: Vec<&Arc<CutClip>> = Vec::new();
        for (_, c) in slots.iter() {
            if !counted.iter().any(|k| Arc::ptr_eq(k, c)) {
                counted.push(c);
                KEPT.fetch_sub(c.head.len(), Relaxed);
            }
        }
    }
}

impl RecentClips {
    /// The clip for `key`: a kept one, or `make`'s (then kept, the oldest dropped).
    pub fn get_or_make<E>(
        &self,
        key: ClipKey,
        make: impl FnOnce() -> Result<CutClip, E>,
    ) -> Result<Arc<CutClip>, E> {
        let found = self
            .slots
            .lock()
            .ok()
            .and_then(|s| s.iter().find(|(k, _)| *k == key).map(|(_, c)| c.clone()));
        if let Some(c) = found {
            return Ok(c);
        }
        let clip = Arc::new(make()?);
        if clip.head.len() > MAX_KEPT_HEAD {
            // A very long MP4 clip's moov: made again rather than held for the title's life.
            return Ok(clip);
        }
        let Ok(mut slots) = self.slots.lock() else {
            return Ok(clip);
        };
        // The same clip asked for with other times: its head is kept once.
        let kept = match slots.iter().find(|(_, c)| c.same(&clip)) {
            Some((_, c)) => c.clone(),
            None => {
                let len = clip.head.len();
                let room = KEPT
                    .fetch_update(Relaxed, Relaxed, |k| {
                        (k.saturating_add(len) <= MAX_KEPT_TOTAL).then_some(k + len)
                    })
                    .is_ok();
                if !room {
                    return Ok(clip);
                }
                clip
            }
        };
        slots.push_front((key, kept.clone()));
        while slots.len() > KEEP {
            if let Some((_, gone)) = slots.pop_back() {
                if !slots.iter().any(|(_, c)| Arc::ptr_eq(c, &gone)) {
                    KEPT.fetch_sub(gone.head.len(), Relaxed);
                }
            }
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(n: i64) -> Result<CutClip, ()> {
        Ok(CutClip {
            head: Bytes::new(),
            body: std::iter::once(0..1).collect(),
            start: MediaTime::new(n, 1),
            end: MediaTime::new(n + 1, 1),
        })
    }

    #[test]
    fn a_clip_is_made_once_while_it_is_among_the_last_few() {
        let r = RecentClips::default();
        let key = |n| (MediaTime::new(n, 1), None);
        let first = r.get_or_make(key(0), || clip(0)).unwrap();
        let again = r.get_or_make(key(0), || -> Result<CutClip, ()> { panic!("made twice") });
        assert!(Arc::ptr_eq(&first, &again.unwrap()));
        for n in 1..=KEEP as i64 {
            r.get_or_make(key(n), || clip(n)).unwrap();
        }
        // The oldest was dropped: made again.
        let remade = r.get_or_make(key(0), || clip(0)).unwrap();
        assert!(!Arc::ptr_eq(&first, &remade));
    }

    #[test]
    fn other_times_for_the_same_clip_share_its_head() {
        let r = RecentClips::default();
        let same = |_: i64| clip(5);
        let a = r
            .get_or_make((MediaTime::new(5001, 1000), None), || same(1))
            .unwrap();
        let b = r
            .get_or_make((MediaTime::new(5002, 1000), None), || same(2))
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one head for both");
    }
}
