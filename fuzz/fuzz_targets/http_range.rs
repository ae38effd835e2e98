//! The `Range` header and the RFC 9110 preconditions (`If-Match`, `If-None-Match`,
//! `If-Modified-Since`, `If-Unmodified-Since`, `If-Range`) over arbitrary header values.
#![no_main]
use http::header::{
    HeaderMap, HeaderValue, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE,
    IF_UNMODIFIED_SINCE,
};
use libfuzzer_sys::fuzz_target;
use server::precondition::{evaluate, Validators};
use server::range;
use std::time::{Duration, SystemTime};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else {
        return;
    };
    let len = u64::from(sel) * 977 + 1;
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(specs) = range::parse(s) {
            if let range::Resolution::Partial(parts) = range::resolve(&specs, len, 16) {
                for r in parts {
                    assert!(r.len() >= 1 && r.len() <= len);
                    let _ = r.content_range(len);
                }
            }
        }
    }
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let name = [
        IF_MATCH,
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_UNMODIFIED_SINCE,
        IF_RANGE,
    ][usize::from(sel % 5)]
    .clone();
    let mut h = HeaderMap::new();
    h.insert(name, value);
    let v = Validators {
        etag: "\"1f2e-1a\"",
        last_modified: (sel & 0x80 == 0)
            .then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
    };
    let _ = evaluate(&h, v, sel & 0x40 != 0);
});
