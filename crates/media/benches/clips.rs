//! What cutting an MP4 clip costs (its head: `ftyp`, `moov` with the kept samples' tables, the
//! `mdat` header; and where its body lies in the title): clips of 10 minutes at spread starts.
//! The title is `BENCH_MP4` (default `bench/media/big.mp4`, which `bench/lib.sh` makes: 43
//! minutes of 720p, interleaved; without it, the demo's 70 s title, cut into clips of 20 s).
//!
//! `cargo bench -p media --bench clips`

use criterion::{criterion_group, criterion_main, Criterion};
use media::clip::mp4::{clip, Movie};
use media::MediaTime;

fn title() -> (Vec<u8>, i64, i64) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let big = std::env::var("BENCH_MP4").unwrap_or_else(|_| format!("{root}/bench/media/big.mp4"));
    match std::fs::read(&big) {
        Ok(data) => (data, 1900, 600),
        Err(_) => {
            let demo = format!("{root}/demo/ntsc-moov-at-end.mp4");
            (std::fs::read(demo).expect("the demo title"), 50, 20)
        }
    }
}

fn cuts(c: &mut Criterion) {
    let (data, spread, length) = title();
    let movie = Movie::parse(&data).expect("an MP4");
    c.bench_function("mp4 clip: head and body ranges", |b| {
        let mut rng = 12345u64;
        b.iter(|| {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
            let s = ((rng >> 33) % spread as u64) as i64;
            let to = Some(MediaTime::new(s + length, 1));
            clip(&movie, MediaTime::new(s, 1), to).expect("a clip")
        })
    });
}

criterion_group!(benches, cuts);
criterion_main!(benches);
