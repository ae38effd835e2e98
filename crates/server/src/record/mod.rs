//! Recording live streams into the library (`[[record]]`): the async shell around
//! `live::record`. A stream that starts and matches a rule gets a recorder task
//! ([`writer::record`]) that follows the stream's MPEG-TS ring like a viewer that never skips on
//! purpose, and writes every unit, as the ring holds it (no remux), to files that rotate at
//! keyframes. The file being written is a dotfile (`.20261126T135500.250Z.ts.part`, which library
//! scans leave out) and a growing title in the library under its final name; when it is finished
//! it is renamed and the library rescanned, so it becomes an ordinary title. [`files`] holds what
//! touches the directory: recovery of a file a crash left, retention.
//!
//! The ring is the bounded queue between ingest and the disk: ingest never waits for a write,
//! and a recorder that falls out of the ring loses units (counted, logged, and the next file
//! starts at the next keyframe).

pub mod files;
mod upload;
mod writer;

pub use crate::config::RecordRule as Rule;
pub use crate::record_metrics::RecordStats;
use crate::state::State;
pub use live::record::{retention::Keep, Format, Rotation};
use std::sync::Arc;
pub(crate) use upload::reconcile as reconcile_uploads;

/// Starts recording `stream` if a rule of the settings now matches its name (the first that
/// does). Called once per stream, when it is created (a publisher back within the grace
/// continues the same stream, and so the same recording).
pub(crate) fn start(state: &Arc<State>, stream: &Arc<crate::live::Stream>) {
    let config = state.config();
    let Some(rule) = config
        .record
        .iter()
        .find(|r| crate::auth::jwt::matches(&r.streams, &stream.name))
    else {
        return;
    };
    let (dir, prefix) = rule.of_stream(&stream.name);
    let (rule, state, stream) = (rule.clone(), state.clone(), stream.clone());
    // In the recorder's task: the caller holds the registry's lock, and an upload's source
    // reads its CA bundle.
    tokio::spawn(async move {
        // Uploads need no block cache: a source of their own with an empty one.
        let upload = rule.upload.as_ref().and_then(|s| {
            let blocks = crate::store::Blocks::new(0, 1 << 20, 0);
            match crate::store::Source::new(s, &config.store, blocks) {
                Ok(src) => Some(Arc::new(src)),
                Err(e) => {
                    tracing::error!(stream = %stream.name, error = %e, "recordings of this stream will not be uploaded");
                    None
                }
            }
        });
        let job = writer::Job {
            state,
            stream,
            rule,
            dir,
            prefix,
            upload,
        };
        writer::record(job).await;
    });
}
