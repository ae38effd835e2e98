//! Times as users type them: timecodes (`01:09:14:28`, `;` drop-frame, seconds, `-00:05`) at the
//! frame rates titles have, wall-clock times (`2026-11-26T14:15:00Z`, DVR and recording seeks)
//! and recording file names (`20261126T135500.250Z.ts`), which must read back what they write.
#![no_main]
use libfuzzer_sys::fuzz_target;
use live::llhls::wallclock::{parse_rfc3339_ms, rfc3339_ms};
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
        // The fastest a title can state (`from_frame_duration` refuses faster), and a rate made
        // directly at the limit of the type.
        FrameRate::new(10_000, 1),
        FrameRate::new(u64::from(u32::MAX), 1),
    ] {
        if let Ok(t) = timecode::parse(s, rate) {
            if let Some(r) = rate {
                let _ = timecode::format(t, r);
                let _ = r.frame_at(t);
            }
        }
    }
    if let Some(ms) = parse_rfc3339_ms(s) {
        assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)), Some(ms), "{s}");
    }
    if let Some(ms) = live::record::started(s) {
        assert_eq!(live::record::started(&live::record::file_name(ms, "ts")), Some(ms), "{s}");
    }
});
