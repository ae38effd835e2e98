//! JWT checks (`server::auth::jwt`) over arbitrary tokens: any input is admitted or refused with
//! a reason, never a panic; an admitted token must really grant what was asked.
#![no_main]
use libfuzzer_sys::fuzz_target;
use server::auth::{Action, Keys};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let keys = Keys::new(Some(b"fuzzing-secret-of-32-bytes-long!"), &[], 30).expect("a key");
    // Taken as a set with no usable key would be too (the second fetch saying so).
    let _ = keys.set_jwks(data, data.first().is_some_and(|b| b & 1 == 1));
    for (action, stream, now) in [
        (Action::Read, "show", 1_790_000_000),
        (Action::Publish, "cams-1", u64::MAX),
    ] {
        let _ = keys.check(Some(token), action, stream, now);
    }
});
