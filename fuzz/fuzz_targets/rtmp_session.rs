//! The RTMP server over arbitrary bytes: handshake, chunk stream, AMF0 commands and media
//! messages, with requests accepted and refused the way the server's shell does
//! (`rtmp::drive`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rtmp::drive(data);
});
