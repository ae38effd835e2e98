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
