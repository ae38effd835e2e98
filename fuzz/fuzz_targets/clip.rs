//! Clips (`/videos/{id}?start=&end=`) and VOD packaging (HLS/DASH segments) of arbitrary bytes:
//! index, cut at a few spans, package; every body lies inside the title, every clip indexes
//! without a panic, and every written WebM Cluster head declares the bytes that follow it.
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
            assert!(c.body.iter().all(|r| r.start <= r.end && r.end <= data.len() as u64));
            assert!(c.body.windows(2).all(|w| w[0].end < w[1].start), "in order, apart");
            let mut file = c.head.clone();
            for r in &c.body {
                file.extend_from_slice(&data[r.start as usize..r.end as usize]);
            }
            let _ = media::index(&file);
        }
    }
    for (a, b, _) in media::package::by_keyframes(&info, MediaTime::new(6, 1)).iter().take(3) {
        let to = b.map(|b| info.keyframes[b].time);
        let _ = media::clip::clip(data, &info, info.keyframes[*a].time, to);
    }
    webm_dash(data);
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

/// A WebM title's DASH layout: every listed segment of every track is served, its title ranges
/// lie inside the title, and each written Cluster head's size is what follows it.
fn webm_dash(data: &[u8]) {
    use media::webm::dash::{Layout, Span};
    let Ok(l) = Layout::scan(data, MediaTime::new(1, 1)) else {
        return;
    };
    let segs = l.segs();
    for t in 0..l.tracks.len() {
        assert!(l.init(t).is_some());
        for n in 0..segs.len().min(4) {
            let spans = l.segment(t, n).expect("a listed segment");
            let mut open: Option<(u64, u64)> = None; // (declared, seen)
            for s in spans {
                match s {
                    Span::Written(w) => {
                        if let Some((declared, seen)) = open {
                            assert_eq!(declared, seen);
                        }
                        assert_eq!(&w[..5], &[0x1f, 0x43, 0xb6, 0x75, 0x01]);
                        let mut size = [0u8; 8];
                        size[1..].copy_from_slice(&w[5..12]);
                        open = Some((u64::from_be_bytes(size), w.len() as u64 - 12));
                    }
                    Span::Title(r) => {
                        assert!(r.start < r.end && r.end <= data.len() as u64);
                        let o = open.as_mut().expect("a head before the blocks");
                        o.1 += r.end - r.start;
                    }
                }
            }
            if let Some((declared, seen)) = open {
                assert_eq!(declared, seen);
            }
        }
    }
}
