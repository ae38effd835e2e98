//! DVR from the ring (`/live/{name}.ts?t=-S`): a viewer starts at the keyframe that arrived about
//! S seconds ago and follows on to the live edge without a gap; a time past the ring's window is
//! a 416 that says how far back the stream goes.

mod common;
use common::live::{server, ts_publisher, wait_for_within, Reading, Viewer, WAIT};
use common::ts::{assert_continuous, assert_starts_with_psi_and_keyframe, cuts};
use media::ts::Cut;
use std::time::Duration;

/// The PTS (seconds) of the first keyframe in `ts`.
fn first_keyframe_pts(ts: &[u8]) -> f64 {
    cuts(ts)
        .into_iter()
        .find_map(|c| match c {
            Cut::Keyframe { pts: Some(p), .. } => Some(p.0 as f64 / 90_000.0),
            _ => None,
        })
        .expect("a keyframe with a PTS")
}

#[test]
fn a_ts_viewer_asking_for_t_minus_5_starts_5_s_behind_the_live_edge_and_plays_on() {
    let s = server(|c| c.ring.max_age = Duration::from_secs(30));
    let _publisher = ts_publisher(&s.url("/live/dvr"), None);
    wait_for_within(&s, "dvr", "7 s of stream", WAIT, |d| {
        d["session_uptime_seconds"].as_f64() >= Some(7.0)
    });
    let live = Viewer::start(s.addr, "/live/dvr.ts", Reading::Fast);
    let back = Viewer::start(s.addr, "/live/dvr.ts?t=-00:00:05", Reading::Fast);
    let enough = |b: &[u8]| {
        cuts(b)
            .iter()
            .filter(|c| matches!(c, Cut::Keyframe { .. }))
            .count()
            >= 2
    };
    live.wait_body("two keyframes live", enough);
    back.wait_body("two keyframes from 5 s back", enough);
    let (_, live_ts, _) = live.response();
    let (resp, back_ts, _) = back.response();
    assert_eq!(resp.status, 200);
    let whole = |b: &[u8]| b[..b.len() / 188 * 188].to_vec();
    let (live_ts, back_ts) = (whole(&live_ts), whole(&back_ts));
    assert_starts_with_psi_and_keyframe(&back_ts);
    // The fixture has a keyframe every second: the DVR viewer starts within a GOP of 5 s back.
    let behind = first_keyframe_pts(&live_ts) - first_keyframe_pts(&back_ts);
    assert!(
        (4.0..=6.1).contains(&behind),
        "{behind:.2} s behind the live edge"
    );
    // Continuous from there on: counters and rising keyframe PTS.
    assert_continuous(&back_ts, "the DVR viewer");
    let pts: Vec<f64> = cuts(&back_ts)
        .into_iter()
        .filter_map(|c| match c {
            Cut::Keyframe { pts: Some(p), .. } => Some(p.0 as f64 / 90_000.0),
            _ => None,
        })
        .collect();
    assert!(
        pts.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] < 1.5),
        "{pts:?}"
    );
}

#[test]
fn a_time_past_the_window_or_not_before_the_live_edge_is_refused_with_the_window() {
    let s = server(|c| c.ring.max_age = Duration::from_secs(30));
    let _publisher = ts_publisher(&s.url("/live/dvr"), None);
    wait_for_within(&s, "dvr", "2 s of stream", WAIT, |d| {
        d["session_uptime_seconds"].as_f64() >= Some(2.0)
    });
    let far = s.get("/live/dvr.ts?t=-1h", &[]);
    let text = String::from_utf8_lossy(&far.body);
    assert_eq!(far.status, 416, "{text}");
    assert!(
        text.contains("3600.0 s back is outside the DVR window"),
        "{text}"
    );
    for bad in ["?t=00:00:05", "?t=-banana", "?t=2026-11-25T20:15:00Z"] {
        let r = s.get(&format!("/live/dvr.ts{bad}"), &[]);
        assert_eq!(r.status, 400, "{bad}: {}", String::from_utf8_lossy(&r.body));
    }
}
