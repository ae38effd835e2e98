//! MPEG-TS → FLV tags (the `.flv` and RTMP outputs of a TS-published stream); then the same
//! bytes again on the first conversion's clock, as an `.flv` DVR viewer converts a recording,
//! and through an `.mp4` DVR viewer's conversion to fragments (`live::rewind`), cut anywhere.
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
    let Some(clock) = from.clock() else { return };
    let mut again = FromTs::on_clock(clock);
    for read in data.chunks(PACKET * 5) {
        let whole = read.len() - read.len() % PACKET;
        again.feed(&read[..whole], &mut tags);
        tags.clear();
    }
    let mut mp4 = live::rewind::Mp4Rewind::new(clock, (None, None), [None, None]);
    let mut out = Vec::new();
    for read in data.chunks(1000) {
        assert_eq!(mp4.feed(read, &mut out), None, "no ring indexed: never joins");
        out.clear();
    }
});
