//! Low-latency MPEG-DASH (ISO/IEC 23009-1, DASH-IF low-latency modes) from the same segments and
//! parts as LL-HLS, sans-I/O. Each fragment is kept twice: muxed (HLS, HTTP-fMP4) and as separate
//! CMAF tracks (a per-track `moof` head and the same sample slices: DASH players take one track
//! per representation). A DASH segment of a track is its fragments of every part of an LL-HLS
//! segment, so DASH segment `$Number$` is the LL-HLS media sequence number.
//!
//! ```text
//!  LlHls segment msn ── parts ── fragments ──┬─ muxed    ─> ll.m3u8, {msn}.m4s, {msn}.{p}.m4s
//!                                            └─ per track ─> manifest.mpd, dash/v{msn}.m4s, dash/a{msn}.m4s
//! ```
//! [`mpd`] renders the dynamic manifest: a Period per run of segments with one init segment and
//! no discontinuity, `SegmentTemplate` with `$Number$` and a `SegmentTimeline` (segments are cut
//! at keyframes, so their durations vary), the segment being written listed with its expected
//! duration and `availabilityTimeOffset` making it available when it begins, so that a player
//! requests it at once and the server streams it as it is written (chunked).

pub mod mpd;

#[cfg(test)]
mod tests;

pub use mpd::{clock, mpd, mpd_with, shared_with, with_query, Manifest};
