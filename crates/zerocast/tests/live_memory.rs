//! The server-wide live memory budget: streams shrink to their current GOP past it, new
//! publishers are refused with 503 while it is reached, and what an ended stream held is given
//! back.

mod common;

use common::fixtures::{audio_only_ts, live_ts};
use common::live::{
    raw_publish, server, stream_doc, wait_for, wait_until, ChunkedPost, Reading, Viewer, WAIT,
};
use common::{request, TestServer};
use server::live::{Budget, LiveConfig};
use std::time::Duration;

/// A budget of 512 KiB, 64 KiB receive slabs, 1 s HLS segments.
fn small_budget(c: &mut LiveConfig) {
    c.memory_budget = Budget { limit: 512 << 10 };
    c.slab_size = 64 << 10;
    c.slab_min_read = 16 << 10;
    c.hls.min_segment = Duration::from_secs(1);
}

/// The value of an unlabelled series in `/metrics`.
fn metric(s: &TestServer, name: &str) -> u64 {
    let body = String::from_utf8(s.get("/metrics", &[]).body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
        .parse()
        .unwrap()
}

fn put(s: &TestServer, path: &str) -> common::Resp {
    request(s.addr, "PUT", path, &[("Content-Length", "0")])
}

#[test]
fn past_the_budget_a_stream_shrinks_to_its_current_gop_and_late_joiners_still_start_at_a_keyframe()
{
    let s = server(small_budget);
    let data = std::fs::read(live_ts()).unwrap();
    assert!(
        data.len() > 2 * (512 << 10),
        "the fixture must overflow the budget"
    );
    // 12 s of stream arrive in about 3 s: nothing is old enough to age out (10 s), so only the
    // budget can keep the stream from holding all of it. (Units of the last second are kept
    // through a shrink, for viewers a moment behind.)
    let mut publisher = ChunkedPost::start(s.addr, "/live/big");
    publisher.send(&data, Duration::from_millis(20));
    let doc = wait_for(&s, "big", "all of it received", |d| {
        d["bytes_in"].as_u64() == Some(data.len() as u64)
    });
    let held = doc["held_bytes"].as_u64().unwrap();
    assert!(
        held <= 512 << 10,
        "held {held} bytes, over the 512 KiB budget"
    );
    assert!(metric(&s, "zerocast_live_memory_shrinks_total") > 0);
    assert_eq!(metric(&s, "zerocast_live_memory_bytes"), held);
    assert!(doc["hls_segments"].as_u64().unwrap() >= 1, "{doc}");
    // A late joiner still starts with PAT/PMT and a keyframe (what remains is the current GOP).
    let v = Viewer::start(s.addr, "/live/big.ts", Reading::Fast);
    v.wait_body("a GOP's start", |b| b.len() >= 3 * common::ts::PACKET);
    common::ts::assert_starts_with_psi_and_keyframe(&v.body().unwrap().0);
}

#[test]
fn a_new_publisher_gets_503_while_the_budget_is_reached() {
    let s = server(|c| {
        small_budget(c);
        c.memory_budget = Budget { limit: 128 << 10 };
    });
    // Audio only, sent at once: all of it arrived within the last second, which a stream
    // shrinking for the budget keeps, so it cannot shrink below what it holds.
    let data = std::fs::read(audio_only_ts()).unwrap();
    let _first = raw_publish(s.addr, "/live/radio", &data);
    wait_for(&s, "radio", "over the budget", |d| {
        d["held_bytes"].as_u64().unwrap() + (64 << 10) > 128 << 10
    });
    let r = put(&s, "/live/second");
    assert_eq!(r.status, 503, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("retry-after"), Some("5"));
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("live memory budget reached"), "{error}");
    assert!(
        stream_doc(&s, "second").is_none(),
        "a refusal creates no stream"
    );
    assert_eq!(metric(&s, "zerocast_live_memory_refused_total"), 1);
}

#[test]
fn what_an_ended_stream_held_is_given_back_and_publishers_are_admitted_again() {
    let s = server(|c| {
        small_budget(c);
        c.memory_budget = Budget { limit: 128 << 10 };
        c.linger = Duration::ZERO;
    });
    let data = std::fs::read(audio_only_ts()).unwrap();
    let first = raw_publish(s.addr, "/live/radio", &data);
    wait_for(&s, "radio", "over the budget", |d| {
        d["held_bytes"].as_u64().unwrap() + (64 << 10) > 128 << 10
    });
    assert_eq!(put(&s, "/live/second").status, 503);
    let r = first.end();
    assert!(r.status < 300, "the publish ended cleanly: {}", r.status);
    wait_until("the stream's memory given back", WAIT, || {
        metric(&s, "zerocast_live_memory_bytes") == 0
    });
    let r = put(&s, "/live/second");
    assert!(r.status < 300, "admitted again: {}", r.status);
}

#[test]
fn a_viewer_that_keeps_up_never_skips_while_its_stream_shrinks_for_the_budget() {
    let s = server(small_budget);
    let data = std::fs::read(live_ts()).unwrap();
    let (first, rest) = data.split_at(common::ts::PACKET * 400);
    let mut publisher = ChunkedPost::start(s.addr, "/live/big");
    publisher.send(first, Duration::ZERO);
    wait_for(&s, "big", "a keyframe", |d| {
        d["ring_units"].as_u64() > Some(0)
    });
    // An FLV viewer: woken every 100 ms (or at a keyframe), so it is always a little behind.
    let v = Viewer::start(s.addr, "/live/big.flv", Reading::Fast);
    // About 1.3 times real time (the fixture is 94 kB/s): faster, a viewer on a loaded core
    // falls a second behind, which a shrink does not keep.
    publisher.send(rest, Duration::from_millis(60));
    let doc = wait_for(&s, "big", "all of it received", |d| {
        d["bytes_in"].as_u64() == Some(data.len() as u64)
    });
    assert!(
        metric(&s, "zerocast_live_memory_shrinks_total") > 0,
        "{doc}"
    );
    assert_eq!(doc["skips"], 0, "{doc}");
    assert!(!v.finished(), "the viewer is still connected");
    let (body, _) = v.body().unwrap();
    let tags = common::ts::flv_tags(&body);
    assert!(tags.len() > 100, "{} FLV tags", tags.len());
}
