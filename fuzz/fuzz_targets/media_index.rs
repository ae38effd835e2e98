//! Container detection, indexing and seeking (MP4, fragmented MP4, MPEG-TS, WebM/Matroska) over
//! arbitrary bytes: what the library does with every file it loads; and the growing indexes of
//! recordings (TS fed in packet runs, fMP4 fed its init then its fragments).
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
    // A title in object storage: its top-level box headers walked one at a time, then its
    // `moov` indexed alone; where both ways succeed on a file without fragments, they agree.
    let len = data.len() as u64;
    let (mut at, mut moofs) = (0u64, false);
    let mut moov = None;
    while at < len {
        let Ok(b) = media::mp4::top_box(&data[at as usize..], at, len) else {
            break;
        };
        moofs |= &b.kind == b"moof";
        if &b.kind == b"moov" && moov.is_none() {
            moov = Some(media::mp4::index_moov(&data[at as usize..(at + b.size) as usize], at, len));
        }
        at += b.size;
    }
    // (As the server does it: only for what `detect` calls an MP4, compared with the MP4 index.)
    let mp4 = media::detect(data) == media::Container::Mp4;
    if let (Some(Ok(alone)), false, Ok(whole)) = (&moov, moofs, media::mp4::index(data)) {
        if at == len && mp4 {
            assert_eq!(alone, &whole, "the moov alone indexes as the whole file");
        }
    }
    // A recording's index: the file's whole packets in runs of 7, or its boxes as fragments.
    let mut ts = live::record::index::Growing::default();
    let packets = &data[..data.len() / 188 * 188];
    for run in packets.chunks(188 * 7) {
        if ts.feed(run).is_err() {
            break;
        }
    }
    let _ = ts.info(packets);
    if let Ok(mut mp4) = media::mp4::growing::Growing::new(data) {
        let len = data.len() as u64;
        let half = data.len() / 2;
        let _ = mp4.feed(&data[half..], half as u64, len);
        let _ = mp4.feed(data, 0, len.saturating_mul(2));
        let _ = mp4.info();
    }
});
