//! Glass-to-glass latency of the browser outputs (issue 13's numbers): a benchmark, not part of
//! the suite (`#[ignore]`; `bench/latency.sh` runs it and keeps its output).
//!
//! The publisher's clock is burned into the picture: ffmpeg draws the frame number as 16
//! black-or-white blocks across the top 16 rows of a 320x240 test picture, and publishes it in
//! real time (`-re`) over RTMP, so frame `n` leaves the publisher at `W0 + n/30 s`, `W0` being
//! taken just before ffmpeg starts (its start-up time is counted as latency: an upper bound).
//! In headless Chromium a `requestVideoFrameCallback` reads the blocks of each frame shown off a
//! canvas, and the latency of that frame is `Date.now()` minus its publisher time: from the
//! publisher's clock to the frame on screen, through x264, RTMP, zerocast, HTTP, the player's
//! buffer and the decoder. Each player is sampled for `LATENCY_SECS` (default 60) once it plays.

mod common;

use common::browser::{beacon_server, dash_js, hls_js};
use common::cdp::Devtools;
use common::live::{server, wait_for, Proc};
use common::TestServer;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const FPS: u32 = 30;

/// The frame number in 16 blocks of 20x16 pixels, least significant bit on the left.
fn burn() -> String {
    let bit = format!("mod(floor(floor(T*{FPS}+0.5)/pow(2\\,floor(X/20)))\\,2)");
    format!(
        "testsrc2=size=320x240:rate={FPS},format=yuv420p,\
         geq=lum='if(lt(Y\\,16)\\,255*{bit}\\,lum(X\\,Y))':\
         cb='if(lt(Y\\,16)\\,128\\,cb(X\\,Y))':cr='if(lt(Y\\,16)\\,128\\,cr(X\\,Y))'"
    )
}

/// Unix ms of `2026-11-26T08:13:41.487Z` (days from the civil date, H. Hinnant's algorithm).
fn unix_ms_of(t: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| -> i64 { t[r].parse().unwrap() };
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    (secs * 1000 + n(20..23)) as u64
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// ffmpeg publishing the burned clock over RTMP in real time (1 s GOP, no encoder lookahead),
/// and `W0`.
fn publisher(s: &TestServer, name: &str) -> (Proc, u64) {
    let w0 = unix_ms();
    let p = Proc::spawn(
        Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-re", "-f", "lavfi", "-i"])
            .arg(burn())
            .args([
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
            ])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-tune",
                "zerolatency",
            ])
            .args([
                "-g",
                &FPS.to_string(),
                "-c:a",
                "aac",
                "-b:a",
                "96k",
                "-f",
                "flv",
            ])
            .arg(format!("rtmp://{}/live/{name}", s.rtmp)),
    );
    (p, w0)
}

/// Samples the latency of every frame `video` (a selector) shows for `secs`, in ms.
fn sample(page: &mut Devtools, video: &str, w0: u64, secs: u64) -> Vec<f64> {
    page.wait_for(
        "the player plays",
        Duration::from_secs(40),
        &format!("document.querySelector('{video}').currentTime > 1"),
    );
    page.eval(&format!(
        "(() => {{
          window.__lat = []; window.__t0 = Date.now(); window.__stalls = 0;
          const v = document.querySelector('{video}');
          window.__q0 = v.getVideoPlaybackQuality();
          v.addEventListener('waiting', () => window.__stalls++);
          const c = document.createElement('canvas'); c.width = 320; c.height = 16;
          const g = c.getContext('2d', {{ willReadFrequently: true }});
          const tick = () => {{
            const now = Date.now();
            g.drawImage(v, 0, 0, 320, 16, 0, 0, 320, 16);
            const px = g.getImageData(0, 0, 320, 16).data;
            let n = 0;
            for (let k = 0; k < 16; k++) {{
              const i = (8 * 320 + k * 20 + 10) * 4;
              if (px[i] + px[i + 1] + px[i + 2] > 3 * 128) n |= 1 << k;
            }}
            window.__lat.push(now - ({w0} + n * 1000 / {FPS}));
            v.requestVideoFrameCallback(tick);
          }};
          v.requestVideoFrameCallback(tick);
          return true; }})()"
    ));
    page.wait_for(
        "the sampling time",
        Duration::from_secs(secs + 30),
        &format!("Date.now() - window.__t0 > {}", secs * 1000),
    );
    let q = page.eval(
        "(() => { const v = document.querySelector('VIDEO'), q = v.getVideoPlaybackQuality();
           return `${q.totalVideoFrames - window.__q0.totalVideoFrames} decoded, \
${q.droppedVideoFrames - window.__q0.droppedVideoFrames} dropped, ${window.__stalls} stalls, \
playback rate ${v.playbackRate.toFixed(3)}`; })()"
            .replace("VIDEO", video)
            .as_str(),
    );
    println!("  ({})", q.as_str().unwrap_or("?"));
    let v = page.eval("JSON.stringify(window.__lat)");
    serde_json::from_str(v.as_str().unwrap()).unwrap()
}

fn report(what: &str, mut lat: Vec<f64>) {
    assert!(lat.len() > 100, "{what}: only {} frames shown", lat.len());
    lat.sort_by(f64::total_cmp);
    let at = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize] / 1000.0;
    println!(
        "{what:<34} median {:.2} s  p95 {:.2} s  min {:.2} s  max {:.2} s  ({} frames)",
        at(0.5),
        at(0.95),
        at(0.0),
        at(1.0),
        lat.len()
    );
}

fn secs() -> u64 {
    std::env::var("LATENCY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

/// A page on another origin with one player: `script` (a library) and `play` (what starts it
/// on the video `v`; dash.js must see the `play` event, so it starts playback itself).
fn player_page(script: &str, play: &str) -> String {
    format!(
        "<!doctype html><meta charset=utf-8><body><video id=v muted playsinline></video>
<script>{script}</script><script>const v = document.getElementById('v');
{play}</script>"
    )
}

#[test]
#[ignore = "a benchmark: bench/latency.sh"]
fn glass_to_glass_latency_of_every_browser_output() {
    // LATENCY_PART_MS: the LL-HLS part target to run with (else the default).
    let part = std::env::var("LATENCY_PART_MS")
        .ok()
        .and_then(|p| p.parse().ok());
    let s = server(|c| {
        if let Some(ms) = part {
            c.ll_hls.part_target = Duration::from_millis(ms);
        }
    });
    let (_publisher, w0) = publisher(&s, "g2g");
    wait_for(&s, "g2g", "three HLS segments", |d| {
        d["hls_segments"].as_u64() >= Some(3)
    });
    let secs = secs();
    // When the first frame reached zerocast: the first segment's PROGRAM-DATE-TIME. Less W0, the
    // publisher's start-up (and its first frame's encoding and sending), which the figures
    // include: they are an upper bound by about that much.
    let p = s.get("/live/g2g/ll.m3u8", &[]);
    let p = String::from_utf8_lossy(&p.body);
    let first = p
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .map(unix_ms_of)
        .expect("a first segment");
    assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{p}");
    println!(
        "glass to glass, {secs} s per player, parts {part:?} ms; W0 = ffmpeg's start, \
         {:.2} s before its first frame reached zerocast:",
        first.saturating_sub(w0) as f64 / 1000.0
    );
    // LATENCY_ONLY: a comma-separated list of players (mse, video, hlsjs, dashjs, ts).
    let only = std::env::var("LATENCY_ONLY").unwrap_or_default();
    let run = |p: &str| only.is_empty() || only.split(',').any(|o| o == p);

    if run("mse") {
        let mut page = Devtools::open(&s.url("/"));
        let lat = sample(&mut page, ".stream[data-name=g2g] video", w0, secs);
        report("HTTP-fMP4, the page's MSE player", lat);
    }

    let mp4 = s.url("/live/g2g.mp4");
    let html = format!(
        "<!doctype html><meta charset=utf-8><body>\
         <video id=v muted autoplay playsinline crossorigin=anonymous src='{mp4}'></video>"
    );
    if run("video") {
        measure(&html, w0, secs, "HTTP-fMP4, plain <video src>");
    }

    let ll = s.url("/live/g2g/ll.m3u8");
    let play = format!(
        "const hls = new Hls({{lowLatencyMode: true}}); hls.loadSource('{ll}'); hls.attachMedia(v); v.play().catch(() => {{}});"
    );
    if run("hlsjs") {
        let html = player_page(&hls_js(), &play);
        measure(&html, w0, secs, "LL-HLS, hls.js low-latency mode");
    }

    let mpd = s.url("/live/g2g/manifest.mpd");
    let play = format!("dashjs.MediaPlayer().create().initialize(v, '{mpd}', true);");
    if run("dashjs") {
        measure(
            &player_page(&dash_js(), &play),
            w0,
            secs,
            "LL-DASH, dash.js",
        );
    }

    let ts = s.url("/live/g2g/index.m3u8");
    let play = format!("const hls = new Hls(); hls.loadSource('{ts}'); hls.attachMedia(v); v.play().catch(() => {{}});");
    if run("ts") {
        let html = player_page(&hls_js(), &play);
        measure(&html, w0, secs, "TS HLS, hls.js (reference)");
    }
}

/// Opens `html` from another origin (the beacon server) and reports its video's latency.
fn measure(html: &str, w0: u64, secs: u64, what: &str) {
    let (base, _beacons) = beacon_server(html.to_string());
    let mut page = Devtools::open(&format!("{base}/page.html"));
    report(what, sample(&mut page, "#v", w0, secs));
}
