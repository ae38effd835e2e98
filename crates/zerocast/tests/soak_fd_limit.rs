//! The soak scenario (see soak.rs) with the server's descriptor limit just above the load: it
//! stays reachable, and the clients it admitted are served as in the unlimited run.

mod common;

use common::crowd::Mix;
use common::soak::soak;
use std::time::Duration;

#[test]
fn with_descriptors_just_above_the_load_the_server_stays_reachable() {
    let mix = Mix {
        fast: 500,
        uploading: 50,
        never_reading: 50,
        dropping: 50,
        vod: 2,
    };
    // 652 client connections and the publisher's; the server's own descriptors (listeners,
    // the demo titles' memfds, the runtime) take a few dozen more.
    soak(Some(760), mix, Duration::from_secs(25)).assert_undisturbed();
}
