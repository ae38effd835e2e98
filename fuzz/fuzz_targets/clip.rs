//! Clips (`/videos/{id}?start=&end=`) of arbitrary bytes: index, then cut at a few spans; the
//! clip's body lies inside the title and the clip file indexes without a panic.
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
});
