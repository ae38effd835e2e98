//! The ring and its cursors, on virtual time (the model test at the end).
use super::*;

const POLICY: ViewerPolicy = ViewerPolicy {
    max_skips: 3,
    skip_period: Duration::from_secs(30),
    max_batch_bytes: 1 << 20,
    max_batch_units: 1000,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A unit whose bytes name it, so tests can tell units apart: [seq as u8; len].
fn unit(seq: u64, len: usize) -> Bytes {
    Bytes::from(vec![seq as u8; len])
}

/// What each `Bytes` handle in a unit's `more` and `psi` counts for.
const HANDLE: usize = std::mem::size_of::<Bytes>();

fn ring(max_bytes: usize) -> Ring {
    Ring::new(Limits {
        max_bytes,
        max_age: Duration::from_secs(60),
    })
}

/// Pushes a unit; a keyframe comes with its PAT/PMT ("PSI").
fn put(r: &mut Ring, data: Bytes, keyframe: bool, now: Duration) {
    if keyframe {
        r.push_keyframe(data, vec![Bytes::from_static(b"PSI")], now);
    } else {
        r.push(data, now);
    }
}

#[test]
fn a_viewer_continuing_at_a_keyframe_gets_no_psi_unless_it_left_the_ring() {
    let mut r = ring(1 << 20);
    put(&mut r, unit(0, 4), true, ms(0));
    put(&mut r, unit(1, 4), true, ms(1));
    let mut v = Viewer::continuing_at(0);
    assert_eq!(
        v.step(&r, ms(2), &POLICY),
        Step::Send {
            parts: vec![unit(0, 4), unit(1, 4)],
            skipped: false
        }
    );
    // Gone from the ring: the newest keyframe, PAT and PMT first.
    let mut gone = Viewer::continuing_at(7);
    assert_eq!(
        gone.step(&r, ms(2), &POLICY),
        Step::Send {
            parts: vec![Bytes::from_static(b"PSI"), unit(1, 4)],
            skipped: false
        }
    );
}

#[test]
fn a_unit_of_parts_goes_out_whole_in_one_step_even_past_the_batch_limit() {
    let mut r = ring(1 << 20);
    let policy = ViewerPolicy {
        max_batch_bytes: 25,
        ..POLICY
    };
    let parts = |s: u64| vec![unit(s + 100, 10), unit(s + 200, 10)];
    r.push_parts(unit(0, 10), parts(0), true, Vec::new(), ms(0));
    r.push_parts(unit(1, 10), parts(1), false, Vec::new(), ms(1));
    assert_eq!(
        r.bytes(),
        60 + 2 * UNIT_OVERHEAD + 4 * HANDLE,
        "every part counts"
    );
    assert_eq!(r.data_bytes(), 60);
    let mut v = Viewer::default();
    for s in 0..2 {
        let Step::Send { parts: got, .. } = v.step(&r, ms(2), &policy) else {
            panic!("unit {s}: nothing to send");
        };
        assert_eq!(got, [unit(s, 10), unit(s + 100, 10), unit(s + 200, 10)]);
    }
}

#[test]
fn a_late_joiner_starts_with_psi_then_the_latest_keyframe() {
    let mut r = ring(1 << 20);
    for s in 0..10 {
        put(&mut r, unit(s, 10), s % 4 == 0, ms(s));
    }
    let mut v = Viewer::default();
    match v.step(&r, ms(10), &POLICY) {
        Step::Send { parts, skipped } => {
            assert!(!skipped);
            assert_eq!(parts[0], Bytes::from_static(b"PSI"));
            assert_eq!(parts[1][0], 8, "keyframe unit 8 comes right after the PSI");
            assert_eq!(parts.len(), 3);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(v.step(&r, ms(10), &POLICY), Step::Wait);
    put(&mut r, unit(10, 10), false, ms(11));
    assert_eq!(
        v.step(&r, ms(11), &POLICY),
        Step::Send {
            parts: vec![unit(10, 10)],
            skipped: false
        }
    );
    // No keyframe yet: nothing to start from.
    assert_eq!(
        Viewer::default().step(&ring(100), ms(0), &POLICY),
        Step::Wait
    );
}

#[test]
fn a_dvr_viewer_starts_at_the_keyframe_of_its_time_and_follows_on_to_the_live_edge() {
    let mut r = ring(1 << 20);
    // Units every 100 ms, a keyframe every 4th.
    for s in 0..12 {
        put(&mut r, unit(s, 10), s % 4 == 0, ms(s * 100));
    }
    assert_eq!(r.oldest_keyframe(), Some(ms(0)));
    assert_eq!(
        r.keyframe_at(ms(650)),
        Some(4),
        "the keyframe at or before 650 ms"
    );
    assert_eq!(r.keyframe_at(ms(800)), Some(8));
    let mut v = Viewer::starting_at(r.keyframe_at(ms(650)).unwrap());
    let Step::Send { parts, skipped } = v.step(&r, ms(1200), &POLICY) else {
        panic!("nothing to send");
    };
    assert!(!skipped);
    assert_eq!(parts[0], Bytes::from_static(b"PSI"));
    let seqs: Vec<u8> = parts[1..].iter().map(|p| p[0]).collect();
    assert_eq!(
        seqs,
        (4..12).collect::<Vec<u8>>(),
        "from unit 4 to the live edge, no gap"
    );
    // Before the oldest keyframe held: outside the window.
    let mut late = ring(1 << 20);
    put(&mut late, unit(0, 10), true, ms(500));
    assert_eq!(late.keyframe_at(ms(400)), None);
    // A start that has left the ring by the first step: the newest keyframe.
    let mut gone = Viewer::starting_at(1);
    let Step::Send { parts, .. } = gone.step(&r, ms(1200), &POLICY) else {
        panic!("nothing to send");
    };
    assert_eq!(parts[1][0], 8);
}

#[test]
fn tiny_units_count_what_they_hold_in_memory_not_only_their_bytes() {
    // 2-byte units (a publisher's smallest audio frames): the ring holds as many as its limit
    // takes with each one's overhead, not half a million.
    let mut r = ring(1 << 20);
    for s in 0..100_000 {
        put(&mut r, Bytes::from_static(&[1, 2]), s == 0, ms(s));
    }
    assert!(r.bytes() <= 1 << 20);
    assert!(
        r.units().count() <= (1 << 20) / UNIT_OVERHEAD,
        "{}",
        r.units().count()
    );
}

#[test]
fn memory_is_bounded_and_the_current_gop_kept_within_the_limit() {
    // GOPs of 50 units of 100 bytes; room for a GOP and a half.
    let limit = 75 * (100 + UNIT_OVERHEAD);
    let mut r = ring(limit);
    for s in 0..1000 {
        put(&mut r, unit(s, 100), s % 50 == 0, ms(s));
        assert!(r.bytes() <= limit, "seq {s}: {} bytes held", r.bytes());
        assert!(
            r.first_seq() <= r.last_keyframe().unwrap(),
            "the current GOP is never evicted"
        );
    }
    // A GOP larger than the ring (a stream whose keyframes stopped): still bounded, and new
    // viewers wait for the next keyframe instead of starting mid-GOP.
    let mut r = ring(1000);
    for s in 0..100 {
        put(&mut r, unit(s, 100), s == 0, ms(s));
        assert!(r.bytes() <= 1000);
    }
    assert_eq!(r.last_keyframe(), None);
    assert_eq!(Viewer::default().step(&r, ms(100), &POLICY), Step::Wait);
    // Age limit too.
    let mut r = Ring::new(Limits {
        max_bytes: usize::MAX,
        max_age: ms(100),
    });
    for s in 0..1000 {
        put(&mut r, unit(s, 1), true, ms(s));
    }
    assert!(r.end_seq() - r.first_seq() <= 102);
}

#[test]
fn a_slow_viewer_skips_to_a_keyframe_and_is_dropped_after_repeated_skips() {
    let mut r = ring(2000);
    let mut fast = Viewer::default();
    let mut slow = Viewer::default();
    put(&mut r, unit(0, 100), true, ms(0));
    assert!(matches!(fast.step(&r, ms(0), &POLICY), Step::Send { .. }));
    assert!(matches!(slow.step(&r, ms(0), &POLICY), Step::Send { .. }));
    let mut outcome = Vec::new();
    for s in 1..400u64 {
        put(&mut r, unit(s, 100), s % 10 == 0, ms(s));
        // The fast viewer reads everything, in order, never skipping.
        match fast.step(&r, ms(s), &POLICY) {
            Step::Send { parts, skipped } => {
                assert!(!skipped);
                assert_eq!(parts, vec![unit(s, 100)]);
            }
            other => panic!("fast viewer: {other:?}"),
        }
        // The slow viewer reads once every 60 units.
        if s % 60 == 0 {
            match slow.step(&r, ms(s), &POLICY) {
                Step::Send { parts, skipped } => {
                    assert!(skipped, "fell out of a 20-unit ring");
                    assert_eq!(parts[0], Bytes::from_static(b"PSI"));
                    assert_eq!(parts[1][0] % 10, 0, "resumes at a keyframe");
                    outcome.push("skip");
                }
                Step::Disconnect => {
                    outcome.push("disconnect");
                    break;
                }
                Step::Wait => panic!("slow viewer waits"),
            }
        }
    }
    assert_eq!(outcome, ["skip", "skip", "skip", "disconnect"]);
    assert_eq!(slow.total_skips, 4);
}

#[test]
fn shrinking_keeps_the_current_gop_and_a_viewer_behind_it_skips_to_its_keyframe() {
    let mut r = ring(1 << 20);
    let mut behind = Viewer::default();
    put(&mut r, unit(0, 100), true, ms(0));
    assert!(matches!(behind.step(&r, ms(0), &POLICY), Step::Send { .. }));
    put(&mut r, unit(1, 100), false, ms(1));
    put(&mut r, unit(2, 100), true, ms(2));
    put(&mut r, unit(3, 100), false, ms(3));
    // A keyframe and the unit after it (the keyframe's PSI handle counts).
    let two = 200 + 2 * UNIT_OVERHEAD + HANDLE;
    assert_eq!(r.shrink_to_gop(ms(4), ms(0)), two, "units 0 and 1 dropped");
    assert_eq!((r.first_seq(), r.bytes()), (2, two));
    match behind.step(&r, ms(4), &POLICY) {
        Step::Send { parts, skipped } => {
            assert!(skipped, "the viewer's next unit is gone: a counted skip");
            assert_eq!(parts[1], unit(2, 100), "restarts at the kept keyframe");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.shrink_to_gop(ms(4), ms(0)), 0, "already one GOP");
}

#[test]
fn shrinking_keeps_recent_units_so_a_viewer_a_moment_behind_keeps_its_place() {
    let mut r = ring(1 << 20);
    let mut v = Viewer::default();
    put(&mut r, unit(0, 100), true, ms(0));
    put(&mut r, unit(1, 100), false, ms(900));
    assert!(matches!(v.step(&r, ms(900), &POLICY), Step::Send { .. }));
    put(&mut r, unit(2, 100), false, ms(1950));
    put(&mut r, unit(3, 100), true, ms(2000));
    // Unit 2 came 50 ms ago and the viewer has not read it yet.
    assert_eq!(
        r.shrink_to_gop(ms(2000), ms(1000)),
        200 + 2 * UNIT_OVERHEAD + HANDLE,
        "only units 0 and 1"
    );
    match v.step(&r, ms(2000), &POLICY) {
        Step::Send { parts, skipped } => {
            assert!(!skipped);
            assert_eq!(parts, [unit(2, 100), unit(3, 100)]);
        }
        other => panic!("{other:?}"),
    }
}

/// No viewer can start before the next keyframe: over the budget, a ring without one keeps only
/// what is more recent than `keep` (it used to keep all of its `max_bytes`).
#[test]
fn shrinking_without_a_keyframe_keeps_only_the_recent_units() {
    let mut r = ring(1 << 20);
    put(&mut r, unit(0, 100), false, ms(0));
    put(&mut r, unit(1, 100), false, ms(5_000));
    assert_eq!(r.shrink_to_gop(ms(5_500), ms(1_000)), 100 + UNIT_OVERHEAD);
    assert_eq!(r.bytes(), 100 + UNIT_OVERHEAD);
}

/// A GOP longer than the ring: its keyframe was evicted, and the ring shrinks as without one.
#[test]
fn shrinking_after_the_keyframe_was_evicted_keeps_only_the_recent_units() {
    let mut r = ring(250 + 2 * UNIT_OVERHEAD);
    put(&mut r, unit(0, 100), true, ms(0));
    put(&mut r, unit(1, 100), false, ms(1_000));
    put(&mut r, unit(2, 100), false, ms(5_000));
    assert_eq!(
        r.bytes(),
        2 * (100 + UNIT_OVERHEAD),
        "the keyframe went for max_bytes"
    );
    assert_eq!(r.shrink_to_gop(ms(5_500), ms(1_000)), 100 + UNIT_OVERHEAD);
}

#[test]
fn random_viewers_see_contiguous_units_except_at_counted_skips() {
    let mut rng = fastrand::Rng::with_seed(8);
    let mut r = ring(5_000);
    let mut viewers: Vec<(Viewer, Option<u8>)> =
        (0..20).map(|_| (Viewer::default(), None)).collect();
    let policy = ViewerPolicy {
        max_skips: usize::MAX,
        ..POLICY
    };
    let mut skips = 0;
    for s in 0..3000u64 {
        // Byte 0 names the unit, byte 1 says whether it is a keyframe.
        let key = rng.u8(0..8) == 0;
        let mut data = vec![s as u8; rng.usize(2..400)];
        data[1] = u8::from(key);
        put(&mut r, Bytes::from(data), key, ms(s));
        if rng.u8(0..50) == 0 {
            // Over the memory budget now and then.
            r.shrink_to_gop(ms(s), ms(rng.u64(0..50)));
        }
        for (v, last) in viewers.iter_mut() {
            if rng.u8(0..4) != 0 {
                continue;
            }
            if let Step::Send { parts, skipped } = v.step(&r, ms(s), &policy) {
                let starts_over = skipped || last.is_none();
                let units = if starts_over {
                    assert_eq!(
                        parts[0],
                        Bytes::from_static(b"PSI"),
                        "PAT/PMT before a (re)start"
                    );
                    assert_eq!(parts[1][1], 1, "a (re)start is at a keyframe");
                    &parts[1..]
                } else {
                    assert_eq!(parts[0][0], last.unwrap().wrapping_add(1), "contiguous");
                    &parts[..]
                };
                skips += usize::from(skipped);
                for w in units.windows(2) {
                    assert_eq!(
                        w[1][0],
                        w[0][0].wrapping_add(1),
                        "contiguous within a batch"
                    );
                }
                *last = Some(units.last().unwrap()[0]);
            }
        }
        assert!(r.bytes() <= 5_000, "bounded by the limit");
    }
    assert!(skips > 0, "some viewers lagged out of the ring and skipped");
}
