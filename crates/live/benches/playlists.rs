//! What rendering a live playlist costs, with a DVR window of an hour of 2 s segments (1,800
//! listed from a recording) and without one: the TS HLS playlist, the LL-HLS one in full and as
//! a delta update (`_HLS_skip=YES`), and the LL-DASH manifest. The server renders each once per
//! change (LL-HLS: when a part completes or begins) and shares it among the requests until the
//! next; a signed link's LL-HLS playlist and every DASH manifest are rendered per request.
//!
//! `cargo bench -p live --bench playlists`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use live::dash::{mpd_with, Manifest};
use live::hls::{HlsLimits, Segmenter};
use live::llhls::{Dvr, LlHls, LlLimits, TrackInit};
use media::time::Ts90k;
use std::time::Duration;

/// An hour and a minute of 25 fps with a keyframe every second, into segments of 2 s.
fn ts(dvr: usize) -> Segmenter {
    let mut s = Segmenter::new(HlsLimits {
        dvr,
        ..HlsLimits::default()
    });
    let unit = Bytes::from_static(&[0; 188]);
    for t in 0..3660u64 {
        let now = Duration::from_secs(t);
        s.push_keyframe(unit.clone(), &[], Some(Ts90k(t * 90_000)), now, t);
    }
    s
}

fn ll(dvr: usize) -> LlHls {
    let mut l = LlHls::new(LlLimits {
        dvr,
        ..LlLimits::default()
    });
    let track = |codecs: &str, shape| TrackInit {
        init: Bytes::from_static(b"init"),
        codecs: codecs.into(),
        shape,
    };
    let tracks = [
        Some(track("avc1.64001f", (1280, 720))),
        Some(track("mp4a.40.2", (48_000, 2))),
    ];
    l.init_tracks(Bytes::from_static(b"init"), tracks);
    let frame = Bytes::from_static(&[0; 100]);
    for n in 0..3660u32 * 25 {
        let wall = Some(1_795_651_200_000 + u64::from(n) * 40);
        let tracks = [vec![frame.clone()], vec![frame.clone()]];
        l.fragment_tracks(
            vec![frame.clone()],
            tracks,
            n % 25 == 0,
            u64::from(n * 40),
            wall,
            Some(n.into()),
        );
    }
    l
}

fn playlists(c: &mut Criterion) {
    let mut g = c.benchmark_group("playlists");
    g.measurement_time(Duration::from_secs(3));
    let all = |_: u64, _: u64, _: u64| true;
    let (plain, dvr) = (ts(0), ts(1800));
    g.bench_function("ts_window", |b| b.iter(|| plain.playlist()));
    g.bench_function("ts_dvr_1800", |b| b.iter(|| dvr.playlist_with(all, 0)));
    let (plain, dvr) = (ll(0), ll(1800));
    let holds = |_: u64, _: u64, _: u64| true;
    let d = Dvr {
        recorded: &holds,
        floor: 0,
    };
    g.bench_function("ll_window", |b| b.iter(|| plain.playlist(false, None)));
    g.bench_function("ll_dvr_1800_full", |b| {
        b.iter(|| dvr.playlist_with(false, None, Some(&d)))
    });
    g.bench_function("ll_dvr_1800_delta", |b| {
        b.iter(|| dvr.playlist_with(true, None, Some(&d)))
    });
    let m = Manifest {
        now_ms: 1_795_651_200_000,
        carry: None,
        clock_url: "/api/time",
    };
    g.bench_function("dash_dvr_1800", |b| b.iter(|| mpd_with(&dvr, &m, Some(&d))));
    eprintln!(
        "bytes: ts window {}, ts dvr {}, ll window {}, ll dvr full {}, delta {}, dash dvr {}",
        plain_len(&ts(0).playlist()),
        plain_len(&ts(1800).playlist_with(all, 0)),
        plain.playlist(false, None).len(),
        dvr.playlist_with(false, None, Some(&d)).len(),
        dvr.playlist_with(true, None, Some(&d)).len(),
        mpd_with(&dvr, &m, Some(&d)).map_or(0, |m| m.len()),
    );
    g.finish();
}

fn plain_len(s: &str) -> usize {
    s.len()
}

criterion_group!(benches, playlists);
criterion_main!(benches);
