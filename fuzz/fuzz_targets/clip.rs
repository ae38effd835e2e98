//! Clips (`/videos/{id}?start=&end=`) and VOD packaging (HLS/DASH segments) of arbitrary bytes:
//! index, cut at a few spans, package; every body lies inside the title and every clip indexes
//! without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use media::MediaTime;

fuzz_target!(|data: &[u8]| {
    let Ok(info) = media::index(data) else {
        return;
    };
    let d = info.duration;
    let spans = [
        (MediaTime::ZERO, None),
        (MediaTime::new(d.ticks / 3, d.scale), Some(MediaTime::new(d.ticks / 2, d.scale))),
        (MediaTime::new(1, 1), Some(MediaTime::new(3, 1))),
        (MediaTime::new(-5, 1), Some(d)),
    ];
    for (from, to) in spans {
        if let Ok(c) = media::clip::clip(data, &info, from, to) {
            assert!(c.body.start <= c.body.end && c.body.end <= data.len() as u64);
            let mut file = c.head.clone();
            file.extend_from_slice(&data[c.body.start as usize..c.body.end as usize]);
            let _ = media::index(&file);
        }
    }
    for (a, b, _) in media::package::by_keyframes(&info, MediaTime::new(6, 1)).iter().take(3) {
        let to = b.map(|b| info.keyframes[b].time);
        let _ = media::clip::clip(data, &info, info.keyframes[*a].time, to);
    }
    let Ok(movie) = media::clip::mp4::Movie::parse(data) else {
        return;
    };
    let _ = media::clip::mp4::init(&movie, None);
    for (n, slot) in media::clip::mp4::plan(&movie, MediaTime::new(2, 1)).iter().enumerate().take(4) {
        for track in [None, Some(0), Some(1)] {
            if let Ok(s) = media::clip::mp4::segment(&movie, slot, n as u32 + 1, track) {
                assert!(s.body.iter().all(|r| r.start <= r.end && r.end <= data.len() as u64));
            }
        }
    }
});
