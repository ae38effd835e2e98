//! Signed-link checks (`server::auth::signed`) over arbitrary paths and queries: any input is a
//! pass or a refusal, and a refusal never comes with a carried query.
#![no_main]
use libfuzzer_sys::fuzz_target;
use server::auth::signed::Signed;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = s.split_once('?').unwrap_or((s, ""));
    let signed = Signed::new(
        b"fuzzing-secret-16b",
        vec!["/videos/".into(), "/live/".into()],
    )
    .expect("a valid config");
    let _ = signed.check(path, Some(query), 1_790_000_000);
    let _ = signed.check(path, None, u64::MAX);
});
