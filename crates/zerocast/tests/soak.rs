//! A live stream under a mixed crowd (issue 11, soak and fault tests): 500 fast viewers, 50 that
//! upload, 50 that never read, 50 that connect and drop in a loop, VOD range clients on the same
//! workers, and a publisher that is cut off and comes back every 10 s. The fast viewers and the
//! VOD clients must not notice. The longer run with latency plots: bench/soak.sh.

mod common;

use common::added_latency::{added, Arrivals};
use common::crowd::Mix;
use common::soak::soak;
use std::time::{Duration, Instant};

/// The harness's own measure: a viewer that gets packets 30 ms after the others shows 30 ms of
/// added latency for them; PCRs that start over (the next publisher session) are other packets.
#[test]
fn the_added_latency_measure_compares_each_packet_with_its_first_arrival() {
    let t = Instant::now();
    let ms = Duration::from_millis;
    let mut v: [Arrivals; 3] = Default::default();
    for (session, late) in [(0u64, ms(30)), (1, ms(2))] {
        for i in 0..400u64 {
            let (pcr, at) = (1_000 + i * 1_800, t + ms(5_000 * session + 20 * i));
            v[0].pcr(pcr, at, false);
            v[1].pcr(pcr, at + late, false);
            v[2].pcr(pcr, at, false);
        }
    }
    let h = added(&[&v[0], &v[1], &v[2]]);
    assert!(v[0].notes.len() > 20, "{} notes", v[0].notes.len());
    assert_eq!(h.count(), 3 * v[0].notes.len() as u64);
    assert!(h.quantile(0.5) <= ms(1), "{:?}", h.quantile(0.5));
    let worst = h.quantile(1.0);
    assert!(worst >= ms(30) && worst <= ms(31), "{worst:?}");
}

#[test]
fn a_misbehaving_crowd_does_not_disturb_fast_viewers_or_vod_clients() {
    let mix = Mix {
        fast: 500,
        uploading: 50,
        never_reading: 50,
        dropping: 50,
        vod: 2,
    };
    soak(None, mix, Duration::from_secs(25)).assert_undisturbed();
}

/// The long soak (not in CI): `SOAK_SECS` seconds (default 1800), its per-second figures written
/// to `SOAK_CSV`; bench/soak.sh runs it and plots them.
#[test]
#[ignore = "30 minutes; run by bench/soak.sh"]
fn a_long_soak_stays_flat() {
    let secs = std::env::var("SOAK_SECS").map_or(1800, |s| s.parse().unwrap());
    // SOAK_QUIET=1: the VOD clients and the publisher alone, the baseline for the ratios.
    let quiet = std::env::var_os("SOAK_QUIET").is_some();
    let crowd = usize::from(!quiet);
    // SOAK_MIX=FAST,UPLOADING,NEVER_READING,DROPPING: another crowd (to find what costs what).
    let n: Vec<usize> = std::env::var("SOAK_MIX").map_or_else(
        |_| vec![500 * crowd, 50 * crowd, 50 * crowd, 50 * crowd],
        |m| m.split(',').map(|x| x.parse().unwrap()).collect(),
    );
    let mix = Mix {
        fast: n[0],
        uploading: n[1],
        never_reading: n[2],
        dropping: n[3],
        vod: 2,
    };
    let quiet = quiet || std::env::var_os("SOAK_MIX").is_some();
    let run = soak(None, mix, Duration::from_secs(secs));
    if let Ok(path) = std::env::var("SOAK_CSV") {
        std::fs::write(path, run.csv()).unwrap();
    }
    if quiet {
        run.report();
    } else {
        run.assert_undisturbed();
    }
}
