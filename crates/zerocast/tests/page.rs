//! The page at `/` (issue 13, part 5), in headless Chromium driven over the DevTools protocol:
//! a player per live stream that plays, the stream's stats and URLs, a player per title the
//! browser can play, the timecode box that seeks the player to the keyframe the server names, and
//! each live player's rewind box (DVR, issue 14).
//! Screenshots at a desktop and a phone width are written to target/page-*.png.

mod common;

use common::cdp::Devtools;
use common::fixtures::long_rtmp_mp4;
use common::live::{rtmp_publisher, wait_for, Proc};
use common::{demo_copy, library, repo, TestServer};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// The demo library, and a live stream `show` published over RTMP in real time.
fn server_with_a_live_stream() -> (TestServer, Proc, tempfile::TempDir) {
    let dir = demo_copy();
    let s = TestServer::start_with(server::Config::default(), library(dir.path()));
    let publisher = rtmp_publisher(&s, "/live/show", &long_rtmp_mp4(), &["-re"]);
    wait_for(&s, "show", "a first HLS segment", |d| {
        d["hls_segments"].as_u64() >= Some(1)
    });
    (s, publisher, dir)
}

#[test]
fn the_page_plays_a_live_stream_and_shows_its_stats_and_urls() {
    let (s, _publisher, _dir) = server_with_a_live_stream();
    let mut page = Devtools::open(&s.url("/"));
    page.wait_for(
        "the live player plays the stream's picture",
        WAIT,
        "(() => { const v = document.querySelector('.stream[data-name=show] video');
                  return v.currentTime > 1 && v.videoWidth === 320 && !v.error; })()",
    );
    page.wait_for(
        "the stats show how far behind the ingest the picture is",
        WAIT,
        "document.querySelector('.stream[data-name=show]').dataset.latencyMs !== ''",
    );
    let latency_ms = page
        .eval("Number(document.querySelector('.stream[data-name=show]').dataset.latencyMs)")
        .as_f64()
        .unwrap();
    eprintln!("the page's own player: {latency_ms:.0} ms behind the ingest");
    assert!((0.0..5000.0).contains(&latency_ms), "{latency_ms}");
    let text = page
        .eval("document.querySelector('.stream[data-name=show]').innerText")
        .as_str()
        .unwrap()
        .to_string();
    for want in [
        "LIVE",
        "uptime",
        "input",
        "h264 + aac",
        "viewers",
        "mp4 1",
        "latency",
        "/live/show.mp4",
        "/live/show/ll.m3u8",
        "/live/show/manifest.mpd",
        "/live/show/index.m3u8",
        "/live/show.ts",
        "/live/show.flv",
        "rtmp://",
    ] {
        assert!(
            text.contains(want),
            "{want:?} missing from the stream's card:\n{text}"
        );
    }
    // The server counts the page's player as an fMP4 viewer.
    let doc = common::live::stream_doc(&s, "show").unwrap();
    assert_eq!(doc["viewers"]["mp4"], 1, "{doc}");
}

/// The stream card's `(latency ms, currentTime)`, once the stats show a latency.
fn behind_and_at(page: &mut Devtools, card: &str) -> (f64, f64) {
    let v = page.eval(&format!(
        "[Number({card}.dataset.latencyMs), {card}.querySelector('video').currentTime]"
    ));
    (v[0].as_f64().unwrap(), v[1].as_f64().unwrap())
}

#[test]
fn rewinding_a_live_player_plays_from_that_far_back_and_live_returns_to_the_edge() {
    let dir = demo_copy();
    let mut config = server::Config::default();
    config.live.ring.max_age = Duration::from_secs(30);
    let s = TestServer::start_with(config, library(dir.path()));
    let _publisher = rtmp_publisher(&s, "/live/show", &long_rtmp_mp4(), &["-re"]);
    wait_for(&s, "show", "12 s of stream", |d| {
        d["session_uptime_seconds"].as_f64() >= Some(12.0)
    });
    let mut page = Devtools::open(&s.url("/"));
    let card = "document.querySelector('.stream[data-name=show]')";
    page.wait_for(
        "the live player plays",
        WAIT,
        &format!("{card}.querySelector('video').currentTime > 0.5"),
    );
    page.eval(&format!("{card}.querySelector('input[name=t]').focus()"));
    page.type_and_enter("-10");
    page.wait_for(
        "the rewound player shows a picture about 10 s behind the ingest",
        WAIT,
        &format!(
            "{card}.dataset.rewound === '-10' && Number({card}.dataset.latencyMs) > 8000 \
             && !{card}.querySelector('video').error"
        ),
    );
    let (behind, at) = behind_and_at(&mut page, card);
    eprintln!("rewound: {behind:.0} ms behind the ingest");
    assert!((8000.0..14000.0).contains(&behind), "{behind}");
    // It plays on from there, at normal speed rather than jumping to the edge.
    page.wait_for(
        "the rewound player plays on",
        WAIT,
        &format!("{card}.querySelector('video').currentTime > {at} + 2"),
    );
    let (behind, _) = behind_and_at(&mut page, card);
    assert!(behind > 8000.0, "still behind: {behind}");
    page.eval(&format!("{card}.querySelector('button.edge').click()"));
    page.wait_for(
        "Live goes back to the live edge",
        WAIT,
        &format!(
            "{card}.dataset.rewound === '' && {card}.dataset.latencyMs !== '' \
             && Number({card}.dataset.latencyMs) < 5000"
        ),
    );
}

#[test]
fn a_rewind_outside_the_dvr_window_shows_the_servers_reason() {
    let (s, _publisher, _dir) = server_with_a_live_stream();
    let mut page = Devtools::open(&s.url("/"));
    let card = "document.querySelector('.stream[data-name=show]')";
    page.wait_for("the stream's card", WAIT, &format!("{card} !== null"));
    let video = format!("{card}.querySelector('video')");
    page.wait_for(
        "the live player plays",
        WAIT,
        &format!("{video}.currentTime > 1"),
    );
    page.eval(&format!("{card}.querySelector('input[name=t]').focus()"));
    page.type_and_enter("-01:00:00");
    page.wait_for(
        "the refusal is shown",
        WAIT,
        &format!("{card}.querySelector('.rewind output').className === 'error'"),
    );
    let said = page.eval(&format!(
        "{card}.querySelector('.rewind output').textContent"
    ));
    let said = said.as_str().unwrap();
    assert!(said.contains("outside the DVR window"), "{said}");
    // The live picture was left playing: it goes on from where it was.
    let at = page.eval(&format!("{video}.currentTime")).as_f64().unwrap();
    page.wait_for(
        "the live player plays on",
        WAIT,
        &format!("{video}.currentTime > {at} + 1"),
    );
    assert_eq!(
        page.eval(&format!("{card}.dataset.rewound")).as_str(),
        Some("")
    );
}

#[test]
fn typing_a_timecode_seeks_the_player_to_the_keyframe_the_server_names() {
    let dir = demo_copy();
    let s = TestServer::start_with(server::Config::default(), library(dir.path()));
    let mut page = Devtools::open(&s.url("/"));
    let card = "document.querySelector('.title[data-id=\"ntsc-moov-at-end.mp4\"]')";
    page.eval(&format!("{card}.querySelector('input[name=t]').focus()"));
    // Drop-frame NTSC: 00:01:00;02 is the first frame of minute one.
    page.type_and_enter("00:01:00;02");
    page.wait_for(
        "the player seeked",
        WAIT,
        &format!("{card}.dataset.seeked !== undefined"),
    );
    let answer = s.get("/api/videos/ntsc-moov-at-end.mp4/seek?t=00:01:00%3B02", &[]);
    let want = answer.json();
    let keyframe = want["keyframe"]["seconds"].as_f64().unwrap();
    let seeked: f64 = page
        .eval(&format!("Number({card}.dataset.seeked)"))
        .as_f64()
        .unwrap();
    assert!(
        (seeked - keyframe).abs() < 0.05,
        "player at {seeked}, keyframe at {keyframe}"
    );
    let shown = page.eval(&format!("{card}.querySelector('output').textContent"));
    let offset = want["offset"].as_u64().unwrap();
    let shown = shown.as_str().unwrap();
    assert!(
        shown.contains(
            &offset
                .to_string()
                .chars()
                .rev()
                .collect::<Vec<_>>()
                .chunks(3)
                .map(|c| c.iter().rev().collect::<String>())
                .rev()
                .collect::<Vec<_>>()
                .join(",")
        ),
        "{shown} names the offset {offset}"
    );
    // A timecode the server refuses: its message, no seek.
    page.eval(&format!(
        "{card}.querySelector('input[name=t]').value = ''; {card}.querySelector('input[name=t]').focus()"
    ));
    page.type_and_enter("99:99:99:99");
    page.wait_for(
        "the refusal is shown",
        WAIT,
        &format!("{card}.querySelector('output').className === 'error'"),
    );
}

#[test]
fn at_desktop_and_phone_widths_every_part_is_there_and_nothing_overflows() {
    let (s, _publisher, _dir) = server_with_a_live_stream();
    let mut page = Devtools::open(&s.url("/"));
    let titles = s.get("/api/videos", &[]).json();
    let titles = titles.as_array().unwrap();
    let playable = titles
        .iter()
        .filter(|t| matches!(t["container"].as_str(), Some("mp4" | "webm")))
        .count();
    for (name, width, height, mobile) in [("desktop", 1280, 900, false), ("phone", 390, 844, true)]
    {
        page.viewport(width, height, mobile);
        page.wait_for(
            "the live stream's player plays",
            WAIT,
            "(() => { const v = document.querySelectorAll('.stream video');
                      return v.length === 1 && v[0].currentTime > 1; })()",
        );
        let facts = page.eval(
            "({ titles: document.querySelectorAll('.title').length,
                players: document.querySelectorAll('.title video').length,
                seek: document.querySelectorAll('.title form.seek input').length,
                stats: document.querySelectorAll('.stream .stats dt').length,
                rewind: document.querySelectorAll('.stream form.rewind input').length,
                overflow: document.documentElement.scrollWidth > innerWidth })",
        );
        assert_eq!(facts["titles"], titles.len(), "{name}: {facts}");
        assert_eq!(facts["players"], playable, "{name}: {facts}");
        assert_eq!(
            facts["seek"],
            titles.len(),
            "{name}: a timecode box per title: {facts}"
        );
        // Uptime, input, codecs, viewers, latency, and how far back it can rewind.
        assert!(facts["stats"].as_u64() >= Some(6), "{name}: {facts}");
        assert_eq!(
            facts["rewind"], 1,
            "{name}: a rewind box per live player: {facts}"
        );
        assert_eq!(
            facts["overflow"], false,
            "{name}: wider than the viewport: {facts}"
        );
        let path = repo().join(format!("target/page-{name}.png"));
        // The page's width: the viewport's, less a scrollbar where the platform draws one.
        let (w, _) = page.screenshot(&path);
        assert!(
            w <= width && w + 20 >= width,
            "{name}: {w} px: {}",
            path.display()
        );
    }
}
