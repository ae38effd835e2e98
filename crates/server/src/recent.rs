//! The clips of a title made most recently, kept with the title: a player plays a clip with many
//! range requests for the same URL, and each would otherwise write the clip's head (an MP4's
//! `moov`, 2 ms for ten minutes of a 720p title) again.

use bytes::Bytes;
use media::MediaTime;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// A clip as served: its written head and the range of the title's bytes after it.
#[derive(Debug)]
pub struct CutClip {
    pub head: Bytes,
    pub body: Range<u64>,
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
        if let Ok(mut slots) = self.slots.lock() {
            slots.push_front((key, clip.clone()));
            slots.truncate(KEEP);
        }
        Ok(clip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(n: i64) -> Result<CutClip, ()> {
        Ok(CutClip {
            head: Bytes::new(),
            body: 0..1,
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
}
