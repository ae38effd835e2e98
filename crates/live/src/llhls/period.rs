//! Where each segment's DASH Period begins: a new one per publisher session (at its wall
//! clock, never overlapping the last) and per init segment (where the last ended).

use super::cut::LlHls;

/// Where a DASH Period begins: `at_ms` after the stream's epoch (when its first segment reached
/// the ingest, the MPD's `availabilityStartTime`), at media time (decode ms) `origin_ms`. A new
/// one begins at a discontinuity (a publisher came back: at its wall clock, never overlapping the
/// last) or a new init segment (where the last ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodStart {
    pub at_ms: u64,
    pub origin_ms: u64,
}

impl LlHls {
    /// The DASH Period of a segment that begins at `ms` (the fragments' 64-bit timeline; see
    /// [`PeriodStart`]).
    pub(super) fn period_for(
        &mut self,
        ms: u64,
        wall_ms: Option<u64>,
        discontinuity: bool,
        init: u64,
    ) -> PeriodStart {
        let epoch = *self.epoch_ms.get_or_insert(wall_ms.unwrap_or(0));
        let wall = wall_ms.map_or(0, |w| w.saturating_sub(epoch));
        // The segment before: kept, or (all kept ones shrunk away) remembered, which a DVR
        // window still lists.
        let prev = match (self.segments.back(), self.past.back()) {
            (Some(s), _) => Some((s.period, s.period_ms(), s.duration, s.init)),
            (None, Some(p)) => Some((p.period, p.period_ms, p.duration, p.init)),
            (None, None) => None,
        };
        match prev {
            Some((period, _, _, prev_init)) if !discontinuity && prev_init == init => period,
            Some((period, period_ms, duration, _)) => {
                let prev_end = period.at_ms
                    + (period_ms - period.origin_ms)
                    + u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
                let at_ms = if discontinuity {
                    wall.max(prev_end)
                } else {
                    prev_end
                };
                PeriodStart {
                    at_ms,
                    origin_ms: ms,
                }
            }
            None => PeriodStart {
                at_ms: wall,
                origin_ms: ms,
            },
        }
    }
}
