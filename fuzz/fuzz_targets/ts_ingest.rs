//! Live MPEG-TS ingest: restamping, cutting at keyframes, the ring and the HLS segmenter, fed the
//! way the shell feeds them (whole packets, in reads of varying size, with publisher sessions
//! that end and resume).
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use live::{HlsLimits, Ingest, Limits, Ring, Segmenter};
use media::ts::PACKET;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let mut ingest = Ingest::default();
    let mut ring = Ring::new(Limits {
        max_bytes: 1 << 20,
        max_age: Duration::from_secs(2),
    });
    let mut hls = Segmenter::new(HlsLimits {
        max_segment_bytes: 256 << 10,
        ..HlsLimits::default()
    });
    let step = PACKET * (usize::from(split % 8) + 1);
    let mut now = Duration::ZERO;
    for (i, read) in data.chunks(step).enumerate() {
        let whole = read.len() - read.len() % PACKET;
        if whole == 0 {
            break;
        }
        if split & 0x80 != 0 && i == 3 {
            ingest.new_session();
            hls.discontinuity();
        }
        match ingest.prepare(BytesMut::from(&read[..whole])) {
            Ok(frozen) => ingest.commit(frozen, &mut ring, &mut hls, now),
            Err(_) => return,
        }
        now += Duration::from_millis(40);
    }
    hls.end();
    let _ = hls.playlist();
    assert!(ring.bytes() <= (1 << 20) + step + live::ring::UNIT_OVERHEAD);
});
