use super::*;
use crate::llhls::request::{Awaited, Readiness};
use crate::llhls::{LlHls, LlLimits, TrackInit};
use bytes::Bytes;
use std::time::Duration;

fn limits() -> LlLimits {
    LlLimits {
        part_target: Duration::from_millis(333),
        min_segment: Duration::from_secs(2),
        window: 4,
        spare: 1,
        max_segment_bytes: 1 << 20,
        dvr: 0,
    }
}

/// Wall clock of media time 0: 2026-11-26 00:00:00 UTC.
const WALL0: u64 = 1_795_651_200_000;

fn tracks() -> [Option<TrackInit>; 2] {
    [
        Some(TrackInit {
            init: Bytes::from_static(b"video init"),
            codecs: "avc1.64001f".into(),
            shape: (1280, 720),
        }),
        Some(TrackInit {
            init: Bytes::from_static(b"audio init"),
            codecs: "mp4a.40.2".into(),
            shape: (48_000, 2),
        }),
    ]
}

/// 25 fps frames `from..from+frames` (a keyframe every 50) at media time `n * 40 + shift` ms,
/// received at `WALL0 + n * 40 + late` ms: each fragment a 100-byte video and a 10-byte audio
/// track.
fn feed(l: &mut LlHls, from: u32, frames: u32, shift: u64, late: u64) {
    for n in from..from + frames {
        let ms = u64::from(n * 40) + shift;
        let v = vec![Bytes::from_static(b"vhead"), Bytes::from(vec![1; 100])];
        let a = vec![Bytes::from_static(b"ahead"), Bytes::from(vec![2; 10])];
        let muxed = vec![Bytes::from(vec![0; 120])];
        l.fragment_tracks(
            muxed,
            [v, a],
            n % 50 == 0,
            ms,
            Some(WALL0 + u64::from(n * 40) + late),
            Some(n.into()),
        );
    }
}

fn stream() -> LlHls {
    let mut l = LlHls::new(limits());
    l.init_tracks(Bytes::from_static(b"muxed init"), tracks());
    l
}

fn render(l: &LlHls) -> String {
    mpd(
        l,
        &Manifest {
            now_ms: WALL0 + 60_000,
            carry: None,
            clock_url: "http://127.0.0.1:8080/api/time",
        },
    )
    .unwrap()
}

/// The `(t, d)` of every `<S>` of the first AdaptationSet of each Period.
fn timelines(mpd: &str) -> Vec<Vec<(u64, u64)>> {
    mpd.split("<Period ")
        .skip(1)
        .map(|p| {
            let set = p.split("</AdaptationSet>").next().unwrap();
            set.split("<S ")
                .skip(1)
                .map(|s| (attr(s, "t").parse().unwrap(), attr(s, "d").parse().unwrap()))
                .collect()
        })
        .collect()
}

fn attr<'a>(s: &'a str, name: &str) -> &'a str {
    let at = s.find(&format!(" {name}=\"")).map(|i| i + name.len() + 3);
    let at = at.or_else(|| {
        s.strip_prefix(&format!("{name}=\""))
            .map(|_| name.len() + 2)
    });
    let rest = &s[at.unwrap_or_else(|| panic!("no {name} in {s}"))..];
    &rest[..rest.find('"').unwrap()]
}

#[test]
fn the_manifest_lists_the_window_and_the_segment_being_written() {
    let mut l = stream();
    feed(&mut l, 0, 50 * 6 + 10, 0, 0);
    let m = render(&l);
    assert!(m.contains("type=\"dynamic\""));
    assert!(
        m.contains("availabilityStartTime=\"2026-11-26T00:00:00.000Z\""),
        "{m}"
    );
    assert!(m.contains("minimumUpdatePeriod=\"PT2.000S\""));
    // Segments 0..=5 are complete, 6 is open: the window's four complete ones, the open one
    // (listed as lasting as long as any segment may: the 2 s target and half a second), and the
    // one after it.
    let t = timelines(&m);
    assert_eq!(t.len(), 1, "one Period");
    assert_eq!(
        t[0],
        [
            (4000, 2000),
            (6000, 2000),
            (8000, 2000),
            (10000, 2000),
            (12000, 2500),
            (14500, 2500)
        ]
    );
    // Available from half a second before it begins.
    assert!(m.contains("availabilityTimeOffset=\"3\""), "{m}");
    assert!(m.contains("startNumber=\"2\""), "{m}");
    assert!(m.contains("presentationTimeOffset=\"0\""));
    assert!(m.contains("media=\"dash/v$Number$.m4s\""));
    assert!(m.contains("initialization=\"dash/init-a0.mp4\""));
    assert!(m.contains("codecs=\"avc1.64001f\""));
    assert!(m.contains("width=\"1280\" height=\"720\""));
    assert!(m.contains("audioSamplingRate=\"48000\""));
    assert!(m.contains("availabilityTimeComplete=\"false\""));
    // 105 video bytes a frame, 25 a second.
    assert!(m.contains("bandwidth=\"21000\""), "{m}");
    assert!(m.contains("value=\"http://127.0.0.1:8080/api/time\""));
}

#[test]
fn a_publisher_that_comes_back_begins_a_new_period_at_its_wall_clock() {
    let mut l = stream();
    feed(&mut l, 0, 50 * 3, 0, 0);
    l.discontinuity();
    // Back 5 s later (wall clock); its media clock continues where the stream's stopped.
    feed(&mut l, 150, 50 * 2 + 5, 0, 5000);
    let m = render(&l);
    let t = timelines(&m);
    assert_eq!(t.len(), 2, "{m}");
    assert_eq!(t[0].last(), Some(&(4000, 2000)));
    assert_eq!(t[1][0], (6000, 2000));
    // The second Period starts when its first segment reached the ingest: 11 s after the first.
    assert!(
        m.contains("<Period id=\"p11000\" start=\"PT11.000S\">"),
        "{m}"
    );
    assert!(m.contains("presentationTimeOffset=\"6000\""));
}

/// Fragments past 2^32 ms on the fragmenter's timeline (a publisher's clock 49.7 days on): a
/// Period that begins there has its offset and segment times on that timeline, where the
/// fragments' `tfdt` are, not wrapped back.
#[test]
fn a_period_past_the_32_bit_wrap_has_its_times_on_the_fragments_timeline() {
    let far = 1u64 << 32;
    let mut l = stream();
    feed(&mut l, 0, 50 * 3, far - 3000, 0);
    l.discontinuity();
    feed(&mut l, 150, 50 * 2 + 5, far - 3000, 5000);
    let m = render(&l);
    let t = timelines(&m);
    assert_eq!(t.len(), 2, "{m}");
    assert_eq!(t[0].last(), Some(&(far + 1000, 2000)));
    assert_eq!(t[1][0], (far + 3000, 2000));
    assert!(
        m.contains(&format!("presentationTimeOffset=\"{}\"", far + 3000)),
        "{m}"
    );
}

#[test]
fn a_new_init_segment_begins_a_period_where_the_last_one_ends() {
    let mut l = stream();
    feed(&mut l, 0, 50 * 2, 0, 0);
    let mut other = tracks();
    other[0].as_mut().unwrap().shape = (640, 360);
    l.init_tracks(Bytes::from_static(b"muxed init 2"), other);
    feed(&mut l, 100, 60, 0, 0);
    let m = render(&l);
    assert!(
        m.contains("<Period id=\"p4000\" start=\"PT4.000S\">"),
        "{m}"
    );
    assert!(m.contains("initialization=\"dash/init-v1.mp4\""));
    assert!(m.contains("width=\"640\""));
}

#[test]
fn an_ended_stream_has_a_duration_and_is_no_longer_updated() {
    let mut l = stream();
    feed(&mut l, 0, 50 * 2 + 25, 0, 0);
    l.end();
    let m = render(&l);
    assert!(!m.contains("minimumUpdatePeriod"));
    // Segments of 2 s, 2 s and 1 s.
    assert!(m.contains("mediaPresentationDuration=\"PT5.000S\""), "{m}");
    assert_eq!(timelines(&m)[0].last(), Some(&(4000, 1000)));
}

#[test]
fn a_signed_query_is_carried_to_every_uri_escaped() {
    let mut l = stream();
    feed(&mut l, 0, 60, 0, 0);
    let m = mpd(
        &l,
        &Manifest {
            now_ms: WALL0,
            carry: Some("expires=9&sig=a\"b"),
            clock_url: "/api/time",
        },
    )
    .unwrap();
    assert!(
        m.contains("media=\"dash/a$Number$.m4s?expires=9&amp;sig=a&quot;b\""),
        "{m}"
    );
    assert!(m.contains("initialization=\"dash/init-v0.mp4?expires=9&amp;sig=a&quot;b\""));
}

#[test]
fn a_signed_query_written_into_the_shared_render_is_the_manifest_rendered_with_it() {
    let mut l = stream();
    feed(&mut l, 0, 60, 0, 0);
    // A publisher that came back: two Periods, each with its own templates.
    l.discontinuity();
    feed(&mut l, 60, 60, 0, 0);
    let carry = "expires=9&sig=a\"b&scope=/live/x/";
    let m = |carry| Manifest {
        now_ms: WALL0,
        carry,
        clock_url: "/api/time",
    };
    let shared = shared_with(&l, &m(None), None).unwrap();
    let own = shared_with(&l, &m(Some(carry)), None).unwrap();
    assert!(own.matches("m4s?expires").count() >= 4, "{own}");
    assert_eq!(with_query(&shared, carry), own);
}

#[test]
fn nothing_is_rendered_before_the_first_segment() {
    let l = stream();
    assert!(mpd(
        &l,
        &Manifest {
            now_ms: 0,
            carry: None,
            clock_url: "/"
        }
    )
    .is_none());
}

#[test]
fn a_segment_request_waits_only_for_the_next_segment_to_begin() {
    let mut l = stream();
    feed(&mut l, 0, 50 * 2 + 5, 0, 0);
    // 0 and 1 complete, 2 open.
    let ask = |l: &LlHls, msn, begun| l.awaited(&Awaited::Segment { msn, begun });
    assert_eq!(ask(&l, 1, false), Readiness::Ready);
    assert_eq!(
        ask(&l, 2, true),
        Readiness::Ready,
        "streamed as it is written"
    );
    assert_eq!(ask(&l, 2, false), Readiness::Wait, "or held until complete");
    assert_eq!(ask(&l, 3, true), Readiness::Wait, "the next to begin");
    assert_eq!(ask(&l, 4, true), Readiness::TooFar { newest: 1 });
    feed(&mut l, 105, 50 * 5, 0, 0);
    assert_eq!(ask(&l, 0, true), Readiness::Gone, "slid out");
}

#[test]
fn the_next_segment_is_not_listed_when_it_will_begin_a_new_period() {
    let mut l = stream();
    feed(&mut l, 0, 60, 0, 0);
    // Segment 1 is open; a new init segment takes effect at the next keyframe, in a new Period
    // with another init segment: the player must not fetch it with this one's.
    let mut other = tracks();
    other[0].as_mut().unwrap().shape = (640, 360);
    l.init_tracks(Bytes::from_static(b"muxed init 2"), other);
    let t = timelines(&render(&l));
    assert_eq!(t, [vec![(0, 2000), (2000, 2500)]], "the open one, no next");
}

#[test]
fn the_per_track_fragments_cost_only_their_heads_in_memory() {
    let mut l = stream();
    feed(&mut l, 0, 60, 0, 0);
    // 60 fragments of 120 muxed bytes and two 5-byte track heads (their samples are counted
    // with the muxed bytes they are slices of in the live wing), and three 10-byte inits.
    assert_eq!(l.bytes(), 60 * (120 + 10) + 30);
}

#[test]
fn a_dvr_window_from_the_recording_is_listed_before_the_kept_segments() {
    let mut l = LlHls::new(LlLimits {
        dvr: 10,
        ..limits()
    });
    l.init_tracks(Bytes::from_static(b"muxed init"), tracks());
    feed(&mut l, 0, 50 * 20 + 10, 0, 0);
    let render_with = |recorded: &dyn Fn(u64) -> bool| {
        let m = Manifest {
            now_ms: WALL0 + 60_000,
            carry: None,
            clock_url: "http://127.0.0.1:8080/api/time",
        };
        let r = |a: u64, _: u64, _: u64| recorded(a);
        let dvr = crate::llhls::Dvr {
            recorded: &r,
            floor: 0,
        };
        mpd_with(&l, &m, Some(&dvr)).unwrap()
    };
    // Segments 5 to 14 listed from the recording (4 remembered too), 15 to 19 kept and
    // complete, 20 open, and the next one.
    let all = render_with(&|_| true);
    let t = timelines(&all);
    assert_eq!(t.len(), 1, "{all}");
    assert_eq!(t[0].len(), 15 + 2, "{all}");
    assert_eq!(t[0][0], (10_000, 2000), "{all}");
    assert!(t[0].windows(2).all(|w| w[0].0 + w[0].1 == w[1].0), "{all}");
    assert!(all.contains("startNumber=\"5\""), "{all}");
    assert!(all.contains("timeShiftBufferDepth=\"PT32.500S\""), "{all}");
    // The same rate, with the remembered segments' bytes counted as the kept ones' are.
    let window = render(&l);
    let rates = |m: &str| -> Vec<String> {
        m.split("bandwidth=\"")
            .skip(1)
            .map(|r| r[..r.find('"').unwrap()].to_string())
            .collect()
    };
    assert_eq!(rates(&all), rates(&window));
    // Only the newest run the recording holds; none: the window in memory, as without one.
    let some = render_with(&|a| a >= 50 * 12);
    assert!(some.contains("startNumber=\"12\""), "{some}");
    assert_eq!(render_with(&|_| false), window);
}

#[test]
fn a_period_after_every_kept_segment_was_shrunk_away_begins_after_the_remembered_ones() {
    let mut l = LlHls::new(LlLimits {
        dvr: 10,
        ..limits()
    });
    l.init_tracks(Bytes::from_static(b"muxed init"), tracks());
    feed(&mut l, 0, 50 * 2 + 10, 0, 0);
    // Over the memory budget: nothing but the open segment kept. The publisher comes back with
    // its clock restarted, before the wall clock has moved on as far.
    l.shrink(0);
    l.discontinuity();
    l.shrink(0);
    feed(&mut l, 0, 50 * 2 + 10, 0, 0);
    let r = |_: u64, _: u64, _: u64| true;
    let dvr = crate::llhls::Dvr {
        recorded: &r,
        floor: 0,
    };
    let m = Manifest {
        now_ms: WALL0 + 60_000,
        carry: None,
        clock_url: "/api/time",
    };
    let m = mpd_with(&l, &m, Some(&dvr)).unwrap();
    let t = timelines(&m);
    assert_eq!(t.len(), 2, "{m}");
    // The first Period ends at 4.4 s (two segments and the 10 frames closed by the reconnect);
    // the second begins there, not over it.
    assert_eq!(t[0].last(), Some(&(4000, 400)), "{m}");
    assert!(
        m.contains("<Period id=\"p4400\" start=\"PT4.400S\">"),
        "{m}"
    );
}

/// The encoder drops a second of frames (decode time 1.8 s to 2.8 s) inside one Period: the
/// time-shift buffer reaches from the first listed segment's start to the open one's listed
/// end, the gap included, not the sum of the segments' durations.
#[test]
fn the_time_shift_buffer_spans_a_gap_in_the_media() {
    let mut l = stream();
    feed(&mut l, 0, 45, 0, 0);
    feed(&mut l, 70, 100, 0, 0);
    let m = render(&l);
    let t = timelines(&m);
    assert_eq!(t.len(), 1, "one Period: {m}");
    let (first, open) = (t[0][0], t[0][t[0].len() - 2]);
    assert_eq!(first.0, 0, "{m}");
    let listed: u64 = t[0][..t[0].len() - 1].iter().map(|s| s.1).sum();
    let span = open.0 + open.1 - first.0;
    assert!(span >= listed + 1000, "the gap is in the timeline: {m}");
    let depth = attr(&m, "timeShiftBufferDepth");
    assert_eq!(
        depth,
        format!("PT{}.{:03}S", span / 1000, span % 1000),
        "{m}"
    );
}

/// A publisher back 5 s later begins a second Period at its wall clock: the time-shift buffer
/// reaches from the first Period's first listed segment to the second's open one's listed end,
/// the 5 s between the Periods included.
#[test]
fn the_time_shift_buffer_spans_the_time_between_periods() {
    let mut l = stream();
    feed(&mut l, 0, 50 * 3, 0, 0);
    l.discontinuity();
    feed(&mut l, 150, 50 * 2 + 5, 0, 5000);
    let m = render(&l);
    // Each Period's start and presentationTimeOffset, ms.
    let periods: Vec<(u64, u64)> = m
        .split("<Period ")
        .skip(1)
        .map(|p| {
            let start = attr(p, "start")
                .trim_start_matches("PT")
                .trim_end_matches('S');
            let start = (start.parse::<f64>().unwrap() * 1000.0).round() as u64;
            (start, attr(p, "presentationTimeOffset").parse().unwrap())
        })
        .collect();
    let t = timelines(&m);
    assert_eq!((periods.len(), t.len()), (2, 2), "{m}");
    let first = periods[0].0 + t[0][0].0 - periods[0].1;
    let open = t[1][t[1].len() - 2];
    let end = periods[1].0 + open.0 - periods[1].1 + open.1;
    let listed: u64 = t[0]
        .iter()
        .chain(&t[1][..t[1].len() - 1])
        .map(|s| s.1)
        .sum();
    assert_eq!(end - first, listed + 5000, "the 5 s between them: {m}");
    let depth = attr(&m, "timeShiftBufferDepth");
    let span = end - first;
    assert_eq!(
        depth,
        format!("PT{}.{:03}S", span / 1000, span % 1000),
        "{m}"
    );
}

#[test]
fn the_latency_refers_to_a_producer_reference_time_from_the_ingest_wall_clock() {
    let mut l = stream();
    feed(&mut l, 0, 50 * 6 + 10, 0, 0);
    let m = render(&l);
    let latency = m.split("<Latency ").nth(1).unwrap();
    let id = attr(latency, "referenceId");
    // Each AdaptationSet names when the latest segment's first frame reached the ingest: the
    // open segment 6, at 12 s on the timeline.
    let sets: Vec<&str> = m.split("<AdaptationSet ").skip(1).collect();
    assert_eq!(sets.len(), 2);
    for set in sets {
        let prt = set
            .split("<ProducerReferenceTime ")
            .nth(1)
            .and_then(|p| p.split("/>").next())
            .unwrap_or_else(|| panic!("no ProducerReferenceTime in {set}"));
        assert_eq!(attr(prt, "id"), id);
        assert_eq!(attr(prt, "wallClockTime"), "2026-11-26T00:00:12.000Z");
        assert_eq!(attr(prt, "presentationTime"), "12000");
    }
}
