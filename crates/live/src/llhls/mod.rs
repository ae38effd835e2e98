//! Low-latency HLS (RFC 8216bis, "LL-HLS") cut from the fragmented-MP4 output's fragments,
//! sans-I/O. The fragments are the MP4 ring's units (a `prft` + `moof` + `mdat` head and the
//! sample slices of the FLV tags): a part is the list of those `Bytes`, a segment the list of its
//! parts, the init segment the one the fragmenter made. Nothing is copied or serialised again.
//!
//! ```text
//!  fragment per video frame ──> part (≤ part target, INDEPENDENT=YES when it starts at a keyframe)
//!                               ──> segment (closed at the first keyframe ≥ min_segment)
//!  playlist: EXT-X-MAP, PROGRAM-DATE-TIME (ingest wall clock), EXTINF + EXT-X-PART for the last
//!            three target durations, EXT-X-PRELOAD-HINT for the part being written
//! ```
//! [`cut`] keeps the segments and parts ([`segment`] is what they are) ([`past`] remembers those that left memory, for a DVR
//! window from a recording), [`playlist`] renders the media playlist (full or as a
//! delta update), [`request`] reads a playlist request's `_HLS_` query and decides whether it is
//! answered now, held, or refused. The server holds a request by waiting for the stream's next
//! frame and asking again.

pub mod cut;
pub mod past;
mod period;
pub mod playlist;
pub mod request;
mod segment;
pub mod wallclock;

#[cfg(test)]
mod gap_tests;
#[cfg(test)]
mod tests;

pub use cut::{Init, LlHls, LlLimits, LlSegment, Part, PeriodStart, TrackInit};
pub use past::{Dvr, LlPast};
pub use request::{Awaited, Query, QueryError, Readiness};
