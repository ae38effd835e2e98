//! What the recorders did (crate::record), for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What the recorders did, for `/metrics`.
#[derive(Debug, Default)]
pub struct RecordStats {
    /// Recorders running now.
    pub active: AtomicU64,
    pub bytes: AtomicU64,
    pub files: AtomicU64,
    /// Units that left a ring before their recorder took them.
    pub lost_units: AtomicU64,
    /// Recordings ended by a failed write, open or rename.
    pub failures: AtomicU64,
    /// The most units any recorder was behind its stream when it last took some.
    pub max_lag_units: AtomicU64,
    /// Finished files put into a bucket (`[[record]] upload`), their bytes, and those that
    /// could not be (after their tries; the local file stays).
    pub uploads: AtomicU64,
    pub upload_bytes: AtomicU64,
    pub upload_failures: AtomicU64,
}

impl RecordStats {
    pub(crate) fn metrics(&self, out: &mut String) {
        for (name, kind, help, v) in [
            (
                "record_active",
                "gauge",
                "Live streams being recorded now.",
                &self.active,
            ),
            (
                "record_bytes_total",
                "counter",
                "Bytes written to recordings.",
                &self.bytes,
            ),
            (
                "record_files_total",
                "counter",
                "Recording files finished.",
                &self.files,
            ),
            (
                "record_lost_units_total",
                "counter",
                "Units that left a stream's ring before its recorder wrote them (the disk was \
                 slower than the stream).",
                &self.lost_units,
            ),
            (
                "record_failures_total",
                "counter",
                "Recordings ended by a failed open, write or rename (the live stream goes on).",
                &self.failures,
            ),
            (
                "record_uploads_total",
                "counter",
                "Finished recording files put into their rule's bucket.",
                &self.uploads,
            ),
            (
                "record_upload_bytes_total",
                "counter",
                "Bytes of the recording files put into buckets.",
                &self.upload_bytes,
            ),
            (
                "record_upload_failures_total",
                "counter",
                "Recording files that could not be put into their bucket after their tries \
                 (the local file stays).",
                &self.upload_failures,
            ),
            (
                "record_max_lag_units",
                "gauge",
                "The most units a recorder has been behind its stream's newest (its queue).",
                &self.max_lag_units,
            ),
        ] {
            crate::response::metric(out, name, kind, help, v.load(Relaxed));
        }
    }
}
