//! An H.265 + Opus source (issue 13's tests): ffmpeg publishes MPEG-TS with H.265 video and
//! Opus audio over HTTP in real time, and ffprobe and ffmpeg read its fragmented-MP4 output,
//! its LL-HLS playlist and its LL-DASH manifest with both codecs and no decode error. (An RTMP
//! source of these codecs needs enhanced RTMP, which the ffmpeg here, 5.1, cannot publish.)

mod common;

use common::fixtures::long_hevc_opus_ts;
use common::live::{ffmpeg_publish, server, wait_for, wait_until, Proc, WAIT};
use common::TestServer;

fn publish() -> (TestServer, Proc) {
    let s = server(|_| {});
    let url = s.url("/live/hevc");
    let p = ffmpeg_publish(&long_hevc_opus_ts(), &["-re"], "mpegts", &[], &url);
    wait_for(&s, "hevc", "a first HLS segment", |d| {
        d["hls_segments"].as_u64() >= Some(1)
    });
    (s, p)
}

#[track_caller]
fn assert_plays_hevc_opus(input: &str) {
    let found = common::codecs(input);
    assert!(
        found.iter().any(|c| c == "hevc") && found.iter().any(|c| c == "opus"),
        "{input}: {found:?}"
    );
    common::assert_decodes_without_errors(input, Some("2"));
}

#[test]
fn an_h265_opus_source_plays_as_fragmented_mp4_ll_hls_and_dash() {
    let (s, _publisher) = publish();
    assert_plays_hevc_opus(&s.url("/live/hevc.mp4"));
    let s2 = &s;
    wait_until("a complete LL-HLS segment", WAIT, || {
        let r = s2.get("/live/hevc/ll.m3u8", &[]);
        String::from_utf8_lossy(&r.body).contains("#EXTINF")
    });
    assert_plays_hevc_opus(&s.url("/live/hevc/ll.m3u8"));
    let m = s.get("/live/hevc/manifest.mpd", &[]);
    let m = String::from_utf8_lossy(&m.body);
    assert!(m.contains("codecs=\"hvc1."), "{m}");
    assert!(m.contains("codecs=\"opus\""), "{m}");
    assert_plays_hevc_opus(&s.url("/live/hevc/manifest.mpd"));
}
