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
    /// The edit list's first shown media time: presentation times are relative to it.
    pub media_time: i64,
}

impl Column<'_> {
    /// Presentation time of sample `i`, relative to the track's first shown frame.
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
        (0..self.table.len())
            .map(|i| self.pts(i).saturating_add(self.duration(i)))
            .max()
            .unwrap_or(0)
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
        (0..self.table.len())
            .map(|i| self.pts(i))
            .min()
            .unwrap_or(0)
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
    let sync: Vec<usize> = (0..n).filter(|&i| c.table.keyframe[i]).collect();
    let first_sync = *sync.first().ok_or(Error::NoKeyframes)?;
    // The sync sample at or before `from` (a request before the first keyframe starts there).
    let a = sync
        .iter()
        .copied()
        .rfind(|&i| t(i) <= from)
        .unwrap_or(first_sync);
    let b = match to {
        None => n,
        Some(to) => sync
            .iter()
            .copied()
            .find(|&i| i > a && t(i) >= to)
            .unwrap_or(n),
    };
    Ok(c.span(a, b))
}

/// The lead track cut into spans of whole GOPs: each begins at a sync sample and is at least
/// `target` long where the GOPs allow (the last one may be shorter).
pub(crate) fn spans(c: &Column<'_>, target: MediaTime) -> Vec<Span> {
    let n = c.table.len();
    let target = target.rescale(c.timescale).max(1);
    let mut starts = Vec::new();
    for i in (0..n).filter(|&i| c.table.keyframe[i]) {
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

    #[test]
    fn the_lead_starts_at_the_keyframe_before_and_ends_at_the_keyframe_after() {
        let tb = table();
        let c = Column {
            table: &tb,
            timescale: 1,
            media_time: 0,
        };
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
        let c = Column {
            table: &tb,
            timescale: 1,
            media_time: 0,
        };
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
        let c = Column {
            table: &tb,
            timescale: 2,
            media_time: 0,
        };
        assert_eq!(follower(&c, t(4), t(8)), 8..16);
        assert_eq!(follower(&c, t(9), t(10)), 18..20);
    }
}
