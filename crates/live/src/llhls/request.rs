//! A playlist request's LL-HLS query (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) and the decision the
//! server acts on: answer now, hold the request until the stream has more, or refuse it.

use super::cut::{LlHls, PartId};

/// What a playlist request asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Query {
    /// Hold the answer until the playlist has this segment (complete) or a later one.
    pub msn: Option<u64>,
    /// With `msn`: until it has this part of that segment, or a later part.
    pub part: Option<u64>,
    /// A delta update (`_HLS_skip=YES` or `v2`): older segments replaced by `EXT-X-SKIP`.
    pub skip: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("_HLS_part needs _HLS_msn")]
    PartWithoutMsn,
    #[error("{0} is not a number")]
    NotANumber(&'static str),
    #[error("_HLS_skip is YES or v2")]
    Skip,
}

impl Query {
    /// Reads the `_HLS_` parameters of a query string (others are left to the caller).
    pub fn parse(query: Option<&str>) -> Result<Query, QueryError> {
        let mut q = Query::default();
        for pair in query.unwrap_or("").split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "_HLS_msn" => {
                    q.msn = Some(v.parse().map_err(|_| QueryError::NotANumber("_HLS_msn"))?)
                }
                "_HLS_part" => {
                    q.part = Some(v.parse().map_err(|_| QueryError::NotANumber("_HLS_part"))?)
                }
                "_HLS_skip" => {
                    q.skip = match v {
                        "YES" | "v2" => true,
                        _ => return Err(QueryError::Skip),
                    }
                }
                _ => {}
            }
        }
        if q.part.is_some() && q.msn.is_none() {
            return Err(QueryError::PartWithoutMsn);
        }
        Ok(q)
    }

    /// Whether the answer waits for the stream (a blocking playlist reload).
    pub fn is_blocking(&self) -> bool {
        self.msn.is_some()
    }
}

/// What a held request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaited {
    /// A playlist: what its query names (a blocking reload), or else a first complete segment
    /// (a player that does not read parts needs one).
    Playlist(Query),
    /// A part: complete, or only begun when the server streams it as it is written.
    Part { msn: u64, part: usize, begun: bool },
    /// A whole segment (a DASH segment of one track): complete, or only begun when the server
    /// streams it as it is written.
    Segment { msn: u64, begun: bool },
}

/// What to do with a held request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Answer with the playlist (or the part) as it is.
    Ready,
    /// Hold it, and ask again when the stream has more.
    Wait,
    /// It asks for more than a held request may wait for: a segment more than two beyond the
    /// newest complete one, or a part further ahead than the Advance Part Limit (RFC 8216bis
    /// §6.2.5.2): 400 at once. The newest complete segment, for the message.
    TooFar { newest: u64 },
    /// A part that will never exist here: slid out, or past its complete segment's last (404).
    Gone,
}

impl LlHls {
    /// Whether a held request may be answered now.
    pub fn awaited(&self, a: &Awaited) -> Readiness {
        match *a {
            Awaited::Playlist(q) if q.is_blocking() => self.readiness(&q),
            Awaited::Playlist(_) if self.ended || self.last_segment().is_some() => Readiness::Ready,
            Awaited::Playlist(_) => Readiness::Wait,
            Awaited::Part { msn, part, begun } => {
                if self.first_msn().is_some_and(|first| msn < first) {
                    return Readiness::Gone;
                }
                match self.segment(msn) {
                    Some(s) => match s.parts.get(part) {
                        Some(p) if p.complete || begun => Readiness::Ready,
                        Some(_) => Readiness::Wait,
                        None if s.complete => Readiness::Gone,
                        None => self.too_far(msn, Some(part as u64)),
                    },
                    None if self.ended => Readiness::Gone,
                    None => self.too_far(msn, Some(part as u64)),
                }
            }
            Awaited::Segment { msn, begun } => {
                if self.first_msn().is_some_and(|first| msn < first) {
                    return Readiness::Gone;
                }
                match self.segment(msn) {
                    Some(s) if s.complete || begun => Readiness::Ready,
                    Some(_) => Readiness::Wait,
                    None if self.ended => Readiness::Gone,
                    // Only the next segment to begin is waited for: a player a little early.
                    None if msn > self.newest_msn().saturating_add(1) => Readiness::TooFar {
                        newest: self.last_segment().unwrap_or(0),
                    },
                    None => Readiness::Wait,
                }
            }
        }
    }

    /// `TooFar` for a request that a held request may not wait for, else `Wait`.
    fn too_far(&self, msn: u64, part: Option<u64>) -> Readiness {
        let newest = self.last_segment();
        let limit = newest
            .map_or(self.newest_msn(), |m| m + 1)
            .saturating_add(1);
        if msn > limit {
            return Readiness::TooFar {
                newest: newest.unwrap_or(0),
            };
        }
        // The Advance Part Limit: three seconds of parts (three parts at least).
        let parts_ahead = (3.0 / self.limits.part_target.as_secs_f64().max(0.001)).ceil() as u64;
        if let (Some(part), Some((m, p))) = (part, self.last_part()) {
            // Parts beyond the newest: within its segment, the difference; in a later segment,
            // at least the part's number and one (however many its own segment has left).
            let ahead = match msn.cmp(&m) {
                std::cmp::Ordering::Equal => part.saturating_sub(p as u64),
                std::cmp::Ordering::Greater => part.saturating_add(1),
                std::cmp::Ordering::Less => 0,
            };
            if ahead > parts_ahead.max(3) {
                return Readiness::TooFar {
                    newest: newest.unwrap_or(0),
                };
            }
        }
        Readiness::Wait
    }

    /// Whether the playlist now satisfies `q` (always, for a request that does not block or a
    /// stream that ended).
    pub fn readiness(&self, q: &Query) -> Readiness {
        let Some(msn) = q.msn else {
            return Readiness::Ready;
        };
        if self.ended {
            return Readiness::Ready;
        }
        let has = match q.part {
            // Parts count from 0; a part past a complete segment's last means the next segment's
            // first, which (msn, part) order already puts after every part of `msn`.
            Some(part) => self
                .last_part()
                .is_some_and(|(m, p)| (m, p as u64) >= (msn, part)),
            None => self.last_segment().is_some_and(|m| m >= msn),
        };
        if has {
            Readiness::Ready
        } else {
            self.too_far(msn, q.part)
        }
    }
}

/// What a held request waits for.
impl LlHls {
    /// The part being written (`EXT-X-PRELOAD-HINT`): (msn, index).
    pub fn hint(&self) -> Option<(u64, usize)> {
        let seg = self.segments.back().filter(|s| !s.complete)?;
        let i = seg.parts.iter().position(|p| !p.complete)?;
        Some((seg.msn, i))
    }

    /// The newest complete part, (msn, index).
    pub fn last_part(&self) -> Option<(u64, usize)> {
        self.segments.iter().rev().find_map(|s| {
            let i = s.parts.iter().rposition(|p| p.complete)?;
            Some((s.msn, i))
        })
    }

    /// What changes when a part completes or begins (a segment begins with its first part):
    /// what a held request waits for, so the server wakes them when this changes and not on
    /// every fragment.
    pub fn parts_mark(&self) -> (Option<PartId>, Option<PartId>) {
        (self.last_part(), self.hint())
    }
}
