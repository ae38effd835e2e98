//! What serialising one live stream for the FLV, RTMP and fragmented-MP4 outputs costs, per
//! second of stream, the MP4 part alone (tag bodies read and fragmented), and what a TS
//! source adds before them (`FromTs`: PES reassembly into tag bodies). The stream is `BENCH_TS` (default demo/clip.ts): its tags are made once by
//! `FromTs`, then pushed, as the publish path does, in each timed iteration.
//!
//! `cargo bench -p live --bench outputs`
//! `BENCH_TS=bench/media/live6m.ts cargo bench -p live --bench outputs`   (bench/live.sh makes
//! live4m.ts; a 6 Mbit/s one: see docs/benchmarks.md)

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use live::ring::Limits;
use live::MediaOutputs;
use media::cmaf::Fragmenter;
use media::flv::wire::classify;
use media::flv::{FromTs, Tag};
use std::time::Duration;

fn tags() -> (Vec<Tag>, f64, Vec<u8>) {
    let path = std::env::var("BENCH_TS")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts").to_string());
    let ts = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut tags = Vec::new();
    FromTs::default().feed(&ts, &mut tags);
    let secs = f64::from(tags.last().map_or(0, |t| t.ms)) / 1000.0;
    eprintln!(
        "{path}: {} tags, {secs:.1} s, {:.2} Mbit/s",
        tags.len(),
        ts.len() as f64 * 8.0 / secs / 1e6
    );
    (tags, secs, ts)
}

fn outputs(c: &mut Criterion) {
    let (tags, secs, ts) = tags();
    let limits = Limits {
        max_bytes: 1 << 30,
        max_age: Duration::from_secs(3600),
    };
    let mut g = c.benchmark_group("outputs");
    g.measurement_time(Duration::from_secs(5));
    // Throughput in stream seconds: criterion's "elements" are milliseconds of stream.
    g.throughput(Throughput::Elements((secs * 1000.0) as u64));
    g.bench_function("flv_rtmp_mp4", |b| {
        b.iter(|| {
            let mut o = MediaOutputs::new(limits, live::LlLimits::default());
            for t in &tags {
                o.push(
                    t.video,
                    &t.body,
                    t.ms,
                    classify(t.video, &t.body),
                    Duration::ZERO,
                    0,
                );
            }
            o
        })
    });
    // The MP4 part alone: tag bodies read and fragmented (samples are slices, as in the ring).
    let bodies: Vec<bytes::Bytes> = tags.iter().map(|t| t.body.clone().into()).collect();
    g.bench_function("mp4_only", |b| {
        b.iter(|| {
            let mut f = Fragmenter::<bytes::Bytes>::default();
            let mut out = Vec::new();
            let mut n = 0;
            for (t, body) in tags.iter().zip(&bodies) {
                f.tag(t.video, t.ms, body, |start| body.slice(start..), &mut out)
                    .unwrap();
                n += out.len();
                out.clear();
            }
            n
        })
    });
    // What a TS source adds before any of it: PES reassembly into FLV tag bodies.
    g.bench_function("ts_to_tags", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            FromTs::default().feed(&ts, &mut out);
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, outputs);
criterion_main!(benches);
