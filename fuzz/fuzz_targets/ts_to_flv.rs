//! MPEG-TS → FLV tags (the `.flv` and RTMP outputs of a TS-published stream).
#![no_main]
use libfuzzer_sys::fuzz_target;
use media::flv::FromTs;
use media::ts::PACKET;

fuzz_target!(|data: &[u8]| {
    let mut from = FromTs::default();
    let mut tags = Vec::new();
    for read in data.chunks(PACKET * 7) {
        let whole = read.len() - read.len() % PACKET;
        from.feed(&read[..whole], &mut tags);
        tags.clear();
    }
});
