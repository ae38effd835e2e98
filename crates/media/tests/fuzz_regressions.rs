//! Inputs the fuzzers found crashes with (`fuzz/regressions/<target>/`), replayed by the ordinary
//! test suite (debug build: overflow checks on), so a fix stays fixed without nightly.

use media::MediaTime;
use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no inputs in {}", dir.display());
    v
}

#[test]
fn inputs_that_crashed_the_index_fuzzer_index_without_panicking() {
    for (path, data) in inputs("media_index") {
        eprintln!("{}", path.display());
        let _ = media::detect(&data);
        if let Ok(info) = media::index(&data) {
            let _ = info.seek(MediaTime::new(1, 1));
        }
    }
}

/// Replays a `cmaf_from_flv` input as the fuzz target does: records of
/// [kind, ms (4 bytes), len (2 bytes), body] through one fragmenter.
#[test]
fn inputs_that_crashed_the_cmaf_fuzzer_fragment_without_panicking() {
    use media::cmaf::{Event, Fragmenter};
    for (path, data) in inputs("cmaf_from_flv") {
        eprintln!("{}", path.display());
        let mut f = Fragmenter::<usize>::default();
        let mut out = Vec::new();
        let mut rest = &data[..];
        while let Some((head, tail)) = rest.split_at_checked(7) {
            let video = head[0] & 1 == 1;
            let ms = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
            let len = usize::from(u16::from_be_bytes([head[5], head[6]]));
            let (body, after) = tail.split_at(len.min(tail.len()));
            let _ = f.tag(video, ms, body, |start| body.len() - start, &mut out);
            for e in out.drain(..) {
                if let Event::Fragment { head, data, .. } = e {
                    let n = head.len();
                    let mdat =
                        u32::from_be_bytes([head[n - 8], head[n - 7], head[n - 6], head[n - 5]]);
                    assert_eq!(
                        mdat as usize,
                        8 + data.iter().sum::<usize>(),
                        "{}",
                        path.display()
                    );
                }
            }
            rest = after;
        }
        let _ = f.init();
    }
}
