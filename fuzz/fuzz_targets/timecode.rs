//! Timecodes as users type them (`01:09:14:28`, `;` drop-frame, seconds, `-00:05`), at the frame
//! rates titles have.
#![no_main]
use libfuzzer_sys::fuzz_target;
use media::timecode;
use media::FrameRate;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for rate in [
        None,
        FrameRate::new(30000, 1001),
        FrameRate::new(25, 1),
        FrameRate::new(60, 1),
    ] {
        if let Ok(t) = timecode::parse(s, rate) {
            if let Some(r) = rate {
                let _ = timecode::format(t, r);
                let _ = r.frame_at(t);
            }
        }
    }
});
