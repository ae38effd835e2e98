//! The counters of one stream, read by the API and `/metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize};

/// Counters of one stream (read by the API and /metrics).
#[derive(Debug, Default)]
pub struct Stats {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Connected viewers per [`Output`].
    pub viewers: [AtomicI64; 4],
    pub viewers_total: AtomicU64,
    pub skips: AtomicU64,
    pub slow_disconnects: AtomicU64,
    pub stalled_disconnects: AtomicU64,
    pub playlist_requests: AtomicU64,
    pub segment_requests: AtomicU64,
    /// Largest lag (units behind the publisher) seen by a viewer when it was woken.
    pub max_lag_units: AtomicU64,
    /// DVR viewers converting the TS to their own format now (`live::rewind`), and those whose
    /// conversion ended in their own output's ring.
    pub dvr_converting: AtomicI64,
    pub dvr_joins: AtomicU64,
    /// What the publisher's connection holds of messages still arriving (an RTMP publisher's
    /// partial messages, up to 16 MiB): counted, when more than the receive slab, at the next
    /// change the stream accounts for.
    pub(super) receiving: AtomicUsize,
    /// What the ingest keeps back of a PES not yet known as a keyframe or not (at most 256 KiB:
    /// `live::Ingest::holding`), counted besides the receive slab.
    pub(super) held_back: AtomicUsize,
    /// Milliseconds on the live clock when a skip was last logged.
    pub(super) last_skip_log: AtomicU64,
}
