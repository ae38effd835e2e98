//! Container detection, indexing and seeking (MP4, fragmented MP4, MPEG-TS, WebM/Matroska) over
//! arbitrary bytes: what the library does with every file it loads.
#![no_main]
use libfuzzer_sys::fuzz_target;
use media::MediaTime;

fuzz_target!(|data: &[u8]| {
    let _ = media::detect(data);
    if let Ok(info) = media::index(data) {
        let _ = info.frame_rate();
        for ms in [0i64, 1, 999, 1_000_000, i64::MAX / 4, -1] {
            let _ = info.seek(MediaTime::new(ms, 1000));
        }
    }
});
