//! The end of [`crate::Server::run`], once no new connection is taken: the connections open
//! finish within the grace period (`shutdown_grace`), then every stream still there ends (one
//! whose publisher dropped would otherwise wait out its own grace) and the recorders finish
//! their files, within what is left of the grace period, or 5 s at least: a clean stop leaves
//! no recording unfinished (a hidden `.part` file, out of the library until the next start).

use crate::state::State;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Waits for the connections (each holds a clone of `active`), then for the recordings.
pub(crate) async fn drain(state: &Arc<State>, active: &Arc<()>) {
    let grace = state.config().shutdown_grace;
    let deadline = Instant::now() + grace;
    while Arc::strong_count(active) > 1 {
        if Instant::now() >= deadline {
            tracing::warn!(
                ?grace,
                open = Arc::strong_count(active) - 1,
                "grace period over; closing the remaining connections"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    state.live.shut_down();
    let deadline = deadline.max(Instant::now() + Duration::from_secs(5));
    while state.record.active.load(Relaxed) > 0 {
        if Instant::now() >= deadline {
            tracing::warn!(
                recording = state.record.active.load(Relaxed),
                "grace period over; recordings still being written are left for the next start"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
