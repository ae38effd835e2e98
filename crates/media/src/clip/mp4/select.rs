//! Which samples of each track a clip holds: decided from the expanded sample tables alone.
//!
//! The lead track (the first video track, else the first audio track) starts at its sync sample
//! at or before `from` and ends before its first sync sample at or after `to` (the end is snapped
//! forward to a keyframe, so the clip is whole GOPs and every frame in it decodes). Every other
//! track holds the samples presented within the lead's `[start, end)`.

use crate::error::{Error, Result};
use crate::info::check_clip;
use crate::mp4::stbl::SampleTable;
use crate::time::MediaTime;
use std::ops::Range;

/// One track's samples as the clip needs them.
#[derive(Debug, Clone)]
pub(crate) struct Column<'t> {
    pub table: &'t SampleTable,
    pub timescale: u32,
    /// The media time shown at the movie's start: the edit list's first shown media time less
    /// the empty edits before it (track ticks). Presentation times are relative to it, so the
    /// tracks' times are on one timeline and a track that starts late is aligned late.
    pub media_time: i64,
    pub facts: &'t Facts,
}

/// What every cut of a track needs, found once per track (O(samples)) so that a cut costs only
/// binary searches and the samples it keeps.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    /// The first presentation time, and where the last sample ends.
    first: i64,
    end: i64,
    /// Sync samples, in decode order.
    pub(super) sync: Vec<usize>,
    /// Whether presentation times never go down in decode order (audio; video without
    /// B-frames): then samples are found by binary search.
    sorted: bool,
    /// Whether the sync samples' presentation times never go down.
    sync_sorted: bool,
    /// Where each chunk starts (a sample that does not follow the one before it in the file).
    pub(super) chunks: Vec<usize>,
    /// Whether each sample lies after the one before it in the file, not overlapping it: then
    /// a run of samples spans from its first one's offset to its last one's end.
    pub(super) in_file_order: bool,
    /// Whether no composition offset is negative: then presentation never precedes decoding.
    pub(super) cto_nonnegative: bool,
}

impl Facts {
    /// `delay`: the track's empty edits (track ticks): before it is not title time.
    pub fn of(table: &SampleTable, timescale: u32, media_time: i64, delay: i64) -> Facts {
        let mut f = Facts::default();
        let c = Column {
            table,
            timescale,
            media_time,
            facts: &f,
        };
        let n = table.len();
        let pts: Vec<i64> = (0..n).map(|i| c.pts(i)).collect();
        let end = (0..n)
            .map(|i| pts[i].saturating_add(c.duration(i)))
            .max()
            .unwrap_or(0);
        let sync: Vec<usize> = (0..n).filter(|&i| table.keyframe[i]).collect();
        // (Frames the edit list hides before the movie's start are not title time, as in the
        // title's index: `SampleTable::keyframes`.)
        f.first = pts.iter().copied().min().unwrap_or(0).max(delay.max(0));
        f.end = end;
        f.sorted = pts.windows(2).all(|w| w[0] <= w[1]);
        f.sync_sorted = sync.windows(2).all(|w| pts[w[0]] <= pts[w[1]]);
        f.sync = sync;
        let end = |i: usize| table.offset[i].saturating_add(u64::from(table.size[i]));
        f.chunks = (0..n)
            .filter(|&i| i == 0 || end(i - 1) != table.offset[i])
            .collect();
        f.in_file_order = (1..n).all(|i| end(i - 1) <= table.offset[i]);
        f.cto_nonnegative = table.cto.iter().all(|&c| c >= 0);
        f
    }
}

/// The first index in `lo..hi` at which `below` stops holding (`below` holds for a prefix).
fn partition(mut lo: usize, mut hi: usize, below: impl Fn(usize) -> bool) -> usize {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

impl Column<'_> {
    /// Presentation time of sample `i` on the movie's timeline (the track's empty edits
    /// included), in track ticks.
    pub fn pts(&self, i: usize) -> i64 {
        self.table.dts[i]
            .saturating_add(i64::from(self.table.cto[i]))
            .saturating_sub(self.media_time)
    }

    /// How long sample `i` lasts: to the next sample's decode time, or the one before's for the
    /// last sample.
    pub fn duration(&self, i: usize) -> i64 {
        let dts = &self.table.dts;
        if i + 1 < dts.len() {
            dts[i + 1].saturating_sub(dts[i]).max(0)
        } else if i > 0 {
            dts[i].saturating_sub(dts[i - 1]).max(0)
        } else {
            0
        }
    }

    /// Presentation end of the track.
    pub fn end(&self) -> i64 {
        self.facts.end
    }
}

/// The lead's span: sample indices, and its presentation start and end (track ticks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub samples: Range<usize>,
    pub start: i64,
    pub end: i64,
}

impl Column<'_> {
    /// Presentation time of the track's first frame: title times count from there.
    pub fn first(&self) -> i64 {
        self.facts.first
    }

    /// The span from sync sample `a` to sample `b` (exclusive; the next span's sync sample, or
    /// the end).
    pub fn span(&self, a: usize, b: usize) -> Span {
        let end = if b < self.table.len() {
            self.pts(b)
        } else {
            self.end()
        };
        Span {
            samples: a..b,
            start: self.pts(a),
            end,
        }
    }
}

/// The lead track's samples for `[from, to)` (title times: from its first frame); `to = None`
/// runs to the end of the title.
pub(super) fn lead(c: &Column<'_>, from: MediaTime, to: Option<MediaTime>) -> Result<Span> {
    let n = c.table.len();
    let scale = c.timescale;
    let first = c.first();
    let t = |i: usize| MediaTime::new(c.pts(i).saturating_sub(first), scale);
    let duration = MediaTime::new(c.end().saturating_sub(first), scale);
    check_clip(from, to, duration)?;
    let sync = &c.facts.sync;
    let first_sync = *sync.first().ok_or(Error::NoKeyframes)?;
    // The sync sample at or before `from` (a request before the first keyframe starts there),
    // and the first one after it at or after `to`.
    let (a, b) = if c.facts.sync_sorted {
        let at = partition(0, sync.len(), |k| t(sync[k]) <= from).saturating_sub(1);
        let b = to.map_or(n, |to| {
            let k = partition(at + 1, sync.len(), |k| t(sync[k]) < to);
            sync.get(k).copied().unwrap_or(n)
        });
        (sync[at], b)
    } else {
        let a = sync
            .iter()
            .copied()
            .rfind(|&i| t(i) <= from)
            .unwrap_or(first_sync);
        let b = to.map_or(n, |to| {
            sync.iter()
                .copied()
                .find(|&i| i > a && t(i) >= to)
                .unwrap_or(n)
        });
        (a, b)
    };
    Ok(c.span(a, b))
}

/// The lead track cut into spans of whole GOPs: each begins at a sync sample and is at least
/// `target` long where the GOPs allow (the last one may be shorter).
pub(crate) fn spans(c: &Column<'_>, target: MediaTime) -> Vec<Span> {
    let n = c.table.len();
    let target = target.rescale(c.timescale).max(1);
    let mut starts = Vec::new();
    for &i in &c.facts.sync {
        match starts.last() {
            Some(&s) if c.pts(i).saturating_sub(c.pts(s)) < target => {}
            _ => starts.push(i),
        }
    }
    let ends = starts.iter().skip(1).copied().chain(std::iter::once(n));
    starts
        .iter()
        .zip(ends)
        .map(|(&a, b)| c.span(a, b))
        .collect()
}

/// Another track's samples presented within `[start, end)` (given in `scale` ticks): a run in
/// decode order.
pub(crate) fn follower(c: &Column<'_>, start: MediaTime, end: MediaTime) -> Range<usize> {
    let n = c.table.len();
    let s = start.rescale(c.timescale);
    let e = end.rescale(c.timescale);
    if c.facts.sorted {
        let a = partition(0, n, |i| c.pts(i) < s);
        let b = partition(a, n, |i| c.pts(i) < e);
        return a..b;
    }
    let a = (0..n).find(|&i| c.pts(i) >= s).unwrap_or(n);
    let b = (a..n).find(|&i| c.pts(i) >= e).unwrap_or(n);
    a..b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 frames of 1 tick at scale 1, keyframes every 4th (0, 4, 8).
    fn table() -> SampleTable {
        SampleTable {
            offset: (0..10).map(|i| i * 100).collect(),
            size: vec![100; 10],
            dts: (0..10).collect(),
            cto: vec![0; 10],
            keyframe: (0..10).map(|i| i % 4 == 0).collect(),
        }
    }

    fn t(s: i64) -> MediaTime {
        MediaTime::new(s, 1)
    }

    /// A column over `tb` at `timescale`, with no edit list.
    fn column<'t>(tb: &'t SampleTable, f: &'t Facts, timescale: u32) -> Column<'t> {
        Column {
            table: tb,
            timescale,
            media_time: 0,
            facts: f,
        }
    }

    #[test]
    fn the_lead_starts_at_the_keyframe_before_and_ends_at_the_keyframe_after() {
        let tb = table();
        let f = Facts::of(&tb, 1, 0, 0);
        let c = column(&tb, &f, 1);
        let s = lead(&c, t(5), Some(t(6))).unwrap();
        assert_eq!((s.samples, s.start, s.end), (4..8, 4, 8));
        let s = lead(&c, t(4), Some(t(8))).unwrap();
        assert_eq!(
            s.samples,
            4..8,
            "a keyframe exactly at the end is not included"
        );
        let s = lead(&c, t(9), None).unwrap();
        assert_eq!((s.samples, s.end), (8..10, 10));
        let s = lead(&c, t(1), Some(t(10))).unwrap();
        assert_eq!(s.samples, 0..10);
    }

    #[test]
    fn the_lead_refuses_empty_reversed_and_past_the_end_spans() {
        let tb = table();
        let f = Facts::of(&tb, 1, 0, 0);
        let c = column(&tb, &f, 1);
        assert!(matches!(lead(&c, t(10), None), Err(Error::PastEnd { .. })));
        assert!(matches!(
            lead(&c, t(2), Some(t(11))),
            Err(Error::PastEnd { .. })
        ));
        assert!(matches!(
            lead(&c, t(5), Some(t(5))),
            Err(Error::Timecode(_))
        ));
        assert!(matches!(
            lead(&c, t(5), Some(t(3))),
            Err(Error::Timecode(_))
        ));
    }

    #[test]
    fn a_follower_holds_the_samples_presented_within_the_span() {
        // Audio at scale 2: samples every half second.
        let tb = SampleTable {
            offset: (0..20).collect(),
            size: vec![1; 20],
            dts: (0..20).collect(),
            cto: vec![0; 20],
            keyframe: vec![true; 20],
        };
        let f = Facts::of(&tb, 2, 0, 0);
        let c = column(&tb, &f, 2);
        assert_eq!(follower(&c, t(4), t(8)), 8..16);
        assert_eq!(follower(&c, t(9), t(10)), 18..20);
    }

    #[test]
    fn binary_searches_agree_with_linear_scans() {
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..200 {
            let n = rng.usize(1..60);
            let mut dts = 0;
            let tb = SampleTable {
                offset: (0..n as u64).collect(),
                size: vec![1; n],
                dts: (0..n)
                    .map(|_| {
                        dts += rng.i64(0..3);
                        dts
                    })
                    .collect(),
                cto: vec![0; n],
                keyframe: (0..n).map(|i| i == 0 || rng.u8(..) < 40).collect(),
            };
            let fast = Facts::of(&tb, 1, 0, 0);
            assert!(fast.sorted && fast.sync_sorted);
            let slow = Facts {
                sorted: false,
                sync_sorted: false,
                ..fast.clone()
            };
            let col = |f| Column {
                table: &tb,
                timescale: 1,
                media_time: 0,
                facts: f,
            };
            let end = fast.end.max(1);
            let from = rng.i64(0..end);
            let to = (rng.bool()).then(|| rng.i64(from + 1..=end));
            let (from_t, to_t) = (t(from), to.map(t));
            let a = lead(&col(&fast), from_t, to_t);
            let b = lead(&col(&slow), from_t, to_t);
            assert_eq!(
                a, b,
                "from {from} to {to:?} in {:?} {:?}",
                tb.dts, tb.keyframe
            );
            let (s, e) = (t(from), t(to.unwrap_or(end)));
            assert_eq!(follower(&col(&fast), s, e), follower(&col(&slow), s, e));
        }
    }
}
