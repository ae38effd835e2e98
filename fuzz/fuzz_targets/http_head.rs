//! The HTTP/1.1 fast path's request-head parser and route classifier over arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    server::fuzzing::http_head(data);
});
