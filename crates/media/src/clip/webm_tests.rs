//! WebM clips of titles whose Clusters hold several GOPs (1 s GOPs in 5 s Clusters, as mkvmerge
//! writes them): a clip is whole Clusters, and its Duration and Cues say what it holds.

use super::clip;
use crate::clip::fixtures::{file, read_webm, webm, WEBM_VIDEO};
use crate::time::MediaTime;

fn secs(s: i64) -> MediaTime {
    MediaTime::new(s, 1)
}

/// 15 s in 5 s Clusters of 1 s GOPs, with Cues of every keyframe or without Cues.
fn title(cues: bool) -> Vec<u8> {
    webm(15, 5000, Some(1000), cues)
}

/// What a player checks of a clip: it opens with a keyframe, each Cue names a Cluster of the
/// clip holding a keyframe at the Cue's time, and its Duration; as (the video blocks' times in
/// ms, the Duration in seconds).
fn played(f: &[u8]) -> (Vec<i64>, f64) {
    let info = crate::index(f).unwrap();
    let r = read_webm(f, WEBM_VIDEO);
    let blocks: Vec<(i64, bool)> = r.clusters.iter().flat_map(|c| c.2.clone()).collect();
    assert!(blocks.first().unwrap().1, "the clip opens with a keyframe");
    assert!(!r.cues.is_empty());
    for (time, at) in &r.cues {
        let c = r.clusters.iter().find(|c| c.0 == *at);
        let c = c.expect("a Cue names a Cluster of the clip");
        assert!(c.2.iter().any(|b| b.1 && b.0 == *time as i64), "{time} ms");
    }
    (
        blocks.iter().map(|b| b.0).collect(),
        info.duration.as_secs_f64(),
    )
}

#[test]
fn a_webm_clip_ending_in_a_cluster_of_several_keyframes_keeps_all_of_that_cluster() {
    for cues in [true, false] {
        let t = title(cues);
        let info = crate::index(&t).unwrap();
        assert_eq!(info.keyframes.len(), 15);
        // 1 s .. 6 s: the 0 s Cluster, and the 5 s one (its 6 s keyframe follows the 5 s one).
        let c = clip(&t, &info, secs(1), Some(secs(6))).unwrap();
        assert_eq!(c.body_start(), info.keyframes[0].offset);
        assert_eq!((c.start, c.end), (secs(0), secs(10)));
        let (times, duration) = played(&file(&t, &c));
        assert_eq!((times[0], *times.last().unwrap()), (0, 9750), "cues {cues}");
        assert!((duration - 10.0).abs() < 1e-6, "cues {cues}: {duration}");
    }
}

#[test]
fn a_webm_clip_within_one_cluster_is_that_cluster() {
    for cues in [true, false] {
        let t = title(cues);
        let info = crate::index(&t).unwrap();
        for (from, to, first, last) in [(1, 3, 0, 4750), (6, 8, 5000, 9750), (11, 12, 10000, 14750)]
        {
            let c = clip(&t, &info, secs(from), Some(secs(to))).unwrap();
            let (times, duration) = played(&file(&t, &c));
            assert_eq!((times[0], *times.last().unwrap()), (first, last));
            assert!((duration - 5.0).abs() < 1e-6, "{from}..{to}: {duration}");
        }
    }
}

#[test]
fn a_webm_clip_ends_before_the_cluster_its_end_keyframe_opens_or_at_the_titles_end() {
    let t = title(false);
    let info = crate::index(&t).unwrap();
    let c = clip(&t, &info, secs(6), Some(secs(10))).unwrap();
    assert_eq!((c.start, c.end), (secs(5), secs(10)));
    let (times, duration) = played(&file(&t, &c));
    assert_eq!((times[0], *times.last().unwrap()), (5000, 9750));
    assert!((duration - 5.0).abs() < 1e-6, "{duration}");
    // To the end: the last Cluster, as long as the rest of the title.
    let c = clip(&t, &info, secs(11), None).unwrap();
    assert_eq!(c.body_end(), t.len() as u64);
    let (times, duration) = played(&file(&t, &c));
    assert_eq!(times[0], 10000);
    assert!((duration - 5.0).abs() < 1e-6, "{duration}");
}

#[test]
fn random_mutations_of_a_title_of_several_keyframes_a_cluster_never_panic() {
    for (seed, base) in [(3, title(true)), (4, webm(15, 5000, None, false))] {
        crate::mutations(&base, seed, 3_000, |d| {
            let Ok(info) = crate::index(d) else {
                return;
            };
            for (from, to) in [(0, None), (1, Some(6)), (6, Some(8)), (11, None)] {
                if let Ok(c) = clip(d, &info, secs(from), to.map(secs)) {
                    assert!(c.body_start() <= c.body_end() && c.body_end() <= d.len() as u64);
                    let _ = crate::index(&file(d, &c));
                }
            }
        });
    }
}
