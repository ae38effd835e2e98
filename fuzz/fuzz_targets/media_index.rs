//! Container detection, indexing and seeking (MP4, fragmented MP4, MPEG-TS, WebM/Matroska) over
//! arbitrary bytes: what the library does with every file it loads; the indexes of titles in
//! object storage (an MP4's moov alone, a TS fed in pieces, a WebM's head, Cues and first
//! cluster); and the growing indexes of recordings (TS fed in packet runs, fMP4 fed its init
//! then its fragments).
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
    // An MPEG-TS in object storage, scanned block by block: the same index as the whole file.
    let whole = media::ts::index(data).map_err(|e| e.to_string());
    let mut ix = media::ts::Indexer::default();
    let step = 1 + data.first().map_or(0, |&b| usize::from(b)) * 3;
    for piece in data.chunks(step) {
        ix.feed(piece);
    }
    assert_eq!(ix.finish().map_err(|e| e.to_string()), whole, "pieces of {step}");
    // A WebM in object storage: its head, then its Cues, then its first cluster's prefix.
    if let Ok(Some(mut h)) = media::webm::ranged::head(&data[..data.len().min(4096)]) {
        if let Some(at) = h.cues_at().and_then(|a| usize::try_from(a).ok()) {
            if at < data.len() {
                if let Ok((_, Some(n))) = media::webm::ranged::element_len(&data[at..]) {
                    let end = at.saturating_add(n as usize).min(data.len());
                    let _ = h.cues(&data[at..end]);
                }
            }
        }
        if let Some(c) = h.first_cluster().and_then(|c| usize::try_from(c).ok()) {
            if c < data.len() {
                let end = c.saturating_add(64 << 10).min(data.len());
                for more in [true, false] {
                    let _ = h.index(&data[c..end], len, media::detect(data), more);
                }
            }
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
