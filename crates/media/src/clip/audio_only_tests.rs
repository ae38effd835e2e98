//! Clips of titles without video: cut at their audio (a PES start of an MPEG-TS each half
//! second at most, every fragment of a fragmented MP4, every Cluster of a WebM), starting at
//! or before the start.

use super::clip;
use super::fixtures::{audio_fmp4, audio_ts, file, read_webm, webm, WEBM_AUDIO};
use crate::time::MediaTime;
use crate::ts::{self as mpegts, mux::AUDIO_PID};

fn at(tenths: i64) -> MediaTime {
    MediaTime::new(tenths, 10)
}

#[test]
fn an_audio_only_mpegts_clip_starts_at_the_audio_pes_at_or_before_its_start() {
    let t = audio_ts(10);
    let info = crate::index(&t).unwrap();
    assert!(info.video.is_none() && info.audio.is_some());
    assert!(
        (info.duration.as_secs_f64() - 9.984).abs() < 0.01,
        "{}",
        info.duration
    );
    let c = clip(&t, &info, at(35), Some(at(55))).unwrap();
    assert!(c.start <= at(35) && c.start > at(29), "{}", c.start);
    assert!(c.end >= at(55) && c.end < at(61), "{}", c.end);
    let f = file(&t, &c);
    // PAT and PMT, then the audio PES at the clip's start (the title's first PTS is 1 s).
    let (h, p) = f[c.head.len()..]
        .chunks_exact(mpegts::PACKET)
        .filter_map(|p| mpegts::header(p).map(|h| (h, p)))
        .next()
        .unwrap();
    assert!(h.pid == AUDIO_PID && h.pusi);
    let (pts, _, _) = mpegts::pes_header(&p[h.payload_start..]).unwrap();
    let pts = pts.unwrap().0 as i64 - 90_000;
    assert_eq!(MediaTime::new(pts, 90_000), c.start);
    let clipped = crate::index(&f).unwrap();
    let span = c.end.as_secs_f64() - c.start.as_secs_f64();
    assert!((clipped.duration.as_secs_f64() - span).abs() < 0.03);
    assert_eq!(clipped.keyframes[0].offset, c.head.len() as u64);
}

#[test]
fn an_audio_only_fragmented_mp4_clip_is_the_fragments_from_the_one_at_or_before_its_start() {
    let t = audio_fmp4(10);
    let info = crate::index(&t).unwrap();
    assert!(info.video.is_none() && info.audio.is_some());
    assert_eq!(info.keyframes.len(), 10, "one cut point a fragment");
    let second = 47.0 * 1024.0 / 48_000.0;
    assert!((info.duration.as_secs_f64() - 10.0 * second).abs() < 1e-3);
    let c = clip(&t, &info, at(35), Some(at(55))).unwrap();
    assert!(
        (c.start.as_secs_f64() - 3.0 * second).abs() < 1e-6,
        "{}",
        c.start
    );
    assert!(
        (c.end.as_secs_f64() - 6.0 * second).abs() < 1e-6,
        "{}",
        c.end
    );
    assert_eq!(&t[c.body_start() as usize + 4..][..4], b"moof");
    let clipped = crate::index(&file(&t, &c)).unwrap();
    assert_eq!(clipped.keyframes.len(), 3);
    assert!((clipped.duration.as_secs_f64() - 3.0 * second).abs() < 1e-3);
}

#[test]
fn an_audio_only_webm_clip_is_the_clusters_from_the_one_at_or_before_its_start() {
    for cues in [true, false] {
        let t = webm(15, 5000, None, cues);
        let info = crate::index(&t).unwrap();
        assert!(info.video.is_none() && info.audio.is_some());
        let times: Vec<f64> = info
            .keyframes
            .iter()
            .map(|k| k.time.as_secs_f64())
            .collect();
        assert_eq!(times, [0.0, 5.0, 10.0], "one cut point a Cluster");
        let c = clip(&t, &info, at(70), Some(at(80))).unwrap();
        assert_eq!((c.start, c.end), (at(50), at(100)));
        let f = file(&t, &c);
        let r = read_webm(&f, WEBM_AUDIO);
        let blocks: Vec<i64> = r
            .clusters
            .iter()
            .flat_map(|c| c.2.iter().map(|b| b.0))
            .collect();
        assert_eq!((blocks[0], *blocks.last().unwrap()), (5000, 9500));
        assert_eq!(r.cues, [(5000, r.clusters[0].0)]);
        let clipped = crate::index(&f).unwrap();
        assert!((clipped.duration.as_secs_f64() - 5.0).abs() < 1e-6);
    }
}
