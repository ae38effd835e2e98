//! Indexing titles in S3-compatible object storage, against a real S3 server (moto,
//! `common::s3`): a bucket title's index, from Range reads of only what its parser needs,
//! answers seeks as the same file's in a directory does.

mod common;
use common::s3::{
    demo_in_local, file, metric, serve, serve_with_cache, store_with_demo, Moto, BUCKET,
};
use common::*;

/// A seek at `t` in the bucket's title `name` and in the directory's copy of it.
fn seek_both(s: &common::spawned::Served, name: &str, t: &str) -> (Resp, Resp) {
    let seek = |path: &str| request(s.addr, "GET", &format!("{path}/seek?t={t}"), &[]);
    (
        seek(&format!("/api/videos/{name}")),
        seek(&format!("/api/videos/local/{name}")),
    )
}

/// A title's document without what names where it is (its id, URLs, where its bytes are):
/// what is left is its index, which must not depend on the place.
fn without_place(doc: &mut serde_json::Value) {
    let o = doc.as_object_mut().unwrap();
    for k in [
        "id",
        "url",
        "cached_in_memory",
        "source",
        "hls_url",
        "dash_url",
    ] {
        o.remove(k);
    }
}

#[test]
fn seek_on_bucket_titles_answers_as_on_the_same_files_in_a_directory_served_beside_them() {
    let store = store_with_demo();
    let lib = demo_in_local();
    let dir = lib.path().to_str().unwrap();
    let (_d, s) = serve(
        &store,
        &["--library", dir, "--library", "s3://media/videos"],
        "",
    );
    let list = request(s.addr, "GET", "/api/videos", &[]).json();
    assert_eq!(
        list.as_array().unwrap().len(),
        2 * DEMO.len(),
        "both sources listed"
    );
    let mut rng = fastrand::Rng::with_seed(3);
    for name in DEMO {
        let mut stored = request(s.addr, "GET", &format!("/api/videos/{name}"), &[]).json();
        let mut local = request(s.addr, "GET", &format!("/api/videos/local/{name}"), &[]).json();
        assert_eq!(stored["source"], "s3://media/videos", "{name}");
        for doc in [&mut stored, &mut local] {
            without_place(doc);
        }
        assert_eq!(stored, local, "{name}: the same index from Range reads");
        let duration = local["duration_seconds"].as_f64().unwrap();
        for _ in 0..10 {
            let t = format!("{:.3}", rng.f64() * duration);
            let (a, b) = seek_both(&s, name, &t);
            assert_eq!(a.status, 200, "{name} at {t}");
            let (mut a, mut b) = (a.json(), b.json());
            a.as_object_mut().unwrap().remove("id");
            b.as_object_mut().unwrap().remove("id");
            assert_eq!(a, b, "{name} at {t}");
            // The offset is where the keyframe's bytes are in the bucket's object too.
            let off = a["offset"].as_u64().unwrap();
            let r = request(
                s.addr,
                "GET",
                &format!("/videos/{name}"),
                &[("Range", &format!("bytes={off}-{}", off + 187))],
            );
            assert!(
                r.body[..] == file(name)[off as usize..off as usize + 188],
                "{name}"
            );
        }
    }
}

#[test]
fn webm_and_matroska_titles_in_a_bucket_are_indexed_from_their_head_cues_and_first_cluster() {
    let lib = tempfile::tempdir().unwrap();
    let local = lib.path().join("local");
    std::fs::create_dir(&local).unwrap();
    let (webm, mkv) = (local.join("720p.webm"), local.join("720p.mkv"));
    let src = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:sample_rate=48000",
        "-t",
        "8",
        "-g",
        "50",
        "-c:a",
        "libopus",
    ];
    let vp9 = [
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-b:v",
        "3M",
    ];
    ffmpeg(&[&src[..], &vp9[..], &[webm.to_str().unwrap()]].concat());
    let h264 = ["-c:v", "libx264", "-preset", "ultrafast"];
    ffmpeg(&[&src[..], &h264[..], &[mkv.to_str().unwrap()]].concat());
    let store = Moto::start();
    store.create_bucket(BUCKET);
    let mut blocks = 0;
    for f in [&webm, &mkv] {
        let bytes = std::fs::read(f).unwrap();
        blocks += bytes.len().div_ceil(64 << 10);
        let name = f.file_name().unwrap().to_str().unwrap();
        store.put(BUCKET, &format!("videos/{name}"), &bytes);
    }
    let config = "[s3]\nblock_size = \"64KiB\"\nread_ahead = 0\n";
    let dir = lib.path().to_str().unwrap();
    let (_d, s) = serve(
        &store,
        &["--library", dir, "--library", "s3://media/videos"],
        config,
    );
    // Listing and indexing both titles: a few reads each, not the files' blocks.
    let requests = metric(&s, "s3_requests_total");
    assert!(
        requests <= 10,
        "{requests} requests to the store to list and index two titles of {blocks} blocks"
    );
    for name in ["720p.webm", "720p.mkv"] {
        let mut stored = request(s.addr, "GET", &format!("/api/videos/{name}"), &[]).json();
        let mut local = request(s.addr, "GET", &format!("/api/videos/local/{name}"), &[]).json();
        assert!(
            local["keyframes"].as_u64().unwrap_or(0) >= 4,
            "{name}: {local}"
        );
        for doc in [&mut stored, &mut local] {
            without_place(doc);
        }
        assert_eq!(
            stored, local,
            "{name}: the same index from its head, Cues and a cluster"
        );
        for t in ["0", "1.9", "2.1", "4.99", "7.5"] {
            let (a, b) = seek_both(&s, name, t);
            let (a, b) = (a.json(), b.json());
            assert_eq!(a["offset"], b["offset"], "{name} at {t}: {a} {b}");
            assert_eq!(a["keyframe"], b["keyframe"], "{name} at {t}");
            assert_eq!(a["keyframe_index"], b["keyframe_index"], "{name} at {t}");
        }
    }
}

#[test]
fn a_server_started_again_takes_the_indexes_it_kept_and_reads_only_the_listing() {
    let store = store_with_demo();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let args = ["--library", "s3://media/videos"];
    let first = serve_with_cache(&store, &args, "", &cache, &dir);
    let indexed = metric(&first, "s3_requests_total");
    assert!(
        indexed > DEMO.len() as u64,
        "{indexed} requests to list and index"
    );
    let titles = request(first.addr, "GET", "/api/videos", &[]).json();
    drop(first);
    let again = serve_with_cache(&store, &args, "", &cache, &dir);
    assert_eq!(
        metric(&again, "s3_requests_total"),
        1,
        "the listing only: every index was kept"
    );
    let kept = request(again.addr, "GET", "/api/videos", &[]).json();
    assert_eq!(kept, titles, "the same titles and indexes");
    // Seeks and bytes answer from the kept index as from the one read.
    let r = request(again.addr, "GET", "/api/videos/faststart.mp4/seek?t=3", &[]);
    assert_eq!(r.status, 200);
    let off = r.json()["offset"].as_u64().unwrap();
    let r = request(
        again.addr,
        "GET",
        "/videos/faststart.mp4",
        &[("Range", &format!("bytes={off}-{}", off + 99))],
    );
    assert!(r.body[..] == file("faststart.mp4")[off as usize..off as usize + 100]);
}

/// A store that takes connections and never answers (a stalled proxy, a hung store) does not
/// keep the server from serving: it starts after `start_wait_secs` with the listing still
/// going on.
#[test]
fn a_store_that_never_answers_does_not_keep_the_server_from_serving() {
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", hung.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in hung.incoming() {
            held.push(c);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zerocast.toml");
    std::fs::write(
        &config,
        "[s3]\ntimeout_secs = 600\nretries = 0\nstart_wait_secs = 1\n",
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--library",
        "s3://media/videos",
    ];
    let env = common::s3::store_env(&endpoint, cache.to_str().unwrap());
    let s = common::spawned::Served::start_with_env(None, &args, &env);
    assert_eq!(request(s.addr, "GET", "/healthz", &[]).status, 200);
    let titles = request(s.addr, "GET", "/api/videos", &[]);
    assert_eq!(titles.status, 200);
    let still = s.log_lines("object storage is still being listed");
    assert_eq!(
        still.len(),
        1,
        "the start says why the bucket's titles are not there yet"
    );
}
