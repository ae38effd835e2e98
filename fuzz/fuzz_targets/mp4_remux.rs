//! MP4 → MPEG-TS remuxing (HLS of MP4 titles, `zerocast` TS output of MP4 files).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ts) = media::ts::mux::from_mp4(data) {
        assert_eq!(ts.len() % 188, 0, "whole TS packets only");
    }
});
