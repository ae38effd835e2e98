//! Clips, VOD HLS and DASH of titles in S3-compatible object storage, against a real S3 server
//! (moto, `common::s3`): an unfragmented MP4 in a bucket gives, byte for byte, what the same file
//! in a directory gives (its `ftyp` and `moov` read once through the block cache, its samples
//! ranges of the object); other containers in a bucket say why they have none.

mod common;
use common::s3::{demo_in_local, serve, store_with_demo};
use common::*;

/// The same paths asked of the bucket's title and of the directory's copy.
fn same(s: &common::spawned::Served, path: &str, headers: &[(&str, &str)]) -> Resp {
    let stored = request(s.addr, "GET", &format!("/videos/{path}"), headers);
    let local = request(s.addr, "GET", &format!("/videos/local/{path}"), headers);
    assert_eq!(
        stored.status,
        local.status,
        "{path}: {}",
        String::from_utf8_lossy(&stored.body[..stored.body.len().min(300)])
    );
    assert!(stored.body == local.body, "{path}: the same bytes");
    for h in ["content-type", "content-range", "content-length"] {
        assert_eq!(stored.header(h), local.header(h), "{path}: {h}");
    }
    stored
}

#[test]
fn clips_hls_and_dash_of_an_mp4_in_a_bucket_are_those_of_the_same_file_in_a_directory() {
    let store = store_with_demo();
    let lib = demo_in_local();
    let dir = lib.path().to_str().unwrap();
    let config = "[s3]\nblock_size = \"64KiB\"\n";
    let (_d, s) = serve(
        &store,
        &["--library", dir, "--library", "s3://media/videos"],
        config,
    );
    for name in ["faststart.mp4", "ntsc-moov-at-end.mp4"] {
        let clip = same(&s, &format!("{name}?start=1&end=3"), &[]);
        assert_eq!(clip.status, 200, "{name}");
        same(
            &s,
            &format!("{name}?start=1&end=3"),
            &[("Range", "bytes=100-70000")],
        );
        let playlist = same(&s, &format!("{name}/index.m3u8"), &[]);
        assert_eq!(playlist.status, 200, "{name}");
        let text = String::from_utf8(playlist.body).unwrap();
        let segments: Vec<&str> = text.lines().filter(|l| l.ends_with(".m4s")).collect();
        assert!(segments.len() >= 2, "{name}: {text}");
        same(&s, &format!("{name}/hls/init.mp4"), &[]);
        for seg in &segments {
            assert_eq!(
                same(&s, &format!("{name}/{seg}"), &[]).status,
                200,
                "{name} {seg}"
            );
        }
        same(&s, &format!("{name}/hls/1.m4s"), &[("Range", "bytes=10-")]);
        assert_eq!(same(&s, &format!("{name}/manifest.mpd"), &[]).status, 200);
        same(&s, &format!("{name}/dash/init-0.mp4"), &[]);
        assert_eq!(same(&s, &format!("{name}/dash/0-1.m4s"), &[]).status, 200);
    }
    // The clip plays: ffmpeg decodes it from the server with no error.
    let url = format!("http://{}/videos/faststart.mp4?start=1&end=3", s.addr);
    assert_decodes_without_errors(&url, None);
    // Other containers in a bucket say why (422), they do not guess.
    for path in [
        "clip.ts?start=1&end=3",
        "clip.ts/index.m3u8",
        "vp9-opus.webm?start=1",
    ] {
        let r = request(s.addr, "GET", &format!("/videos/{path}"), &[]);
        assert_eq!(r.status, 422, "{path}");
        assert!(
            String::from_utf8_lossy(&r.body).contains("object storage"),
            "{path}"
        );
    }
}

/// `/api/videos` names a title's `hls_url` and `dash_url` only where they answer: in a bucket,
/// for unfragmented MP4s (packaged from their `moov`); a fragmented MP4, a TS and a WebM in a
/// bucket name none, as the same files in a directory name theirs.
#[test]
fn a_bucket_title_names_only_the_hls_and_dash_that_answer_it() {
    let store = store_with_demo();
    let lib = demo_in_local();
    let dir = lib.path().to_str().unwrap();
    let (_d, s) = serve(
        &store,
        &["--library", dir, "--library", "s3://media/videos"],
        "",
    );
    let list = request(s.addr, "GET", "/api/videos", &[]).json();
    let urls = |id: &str| {
        let t = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("{id} listed"));
        (
            t["hls_url"].as_str().map(String::from),
            t["dash_url"].as_str().map(String::from),
        )
    };
    let has = |id: &str| {
        let (h, d) = urls(id);
        (h.is_some(), d.is_some())
    };
    assert_eq!(has("faststart.mp4"), (true, true));
    assert_eq!(
        has("fragmented.mp4"),
        (false, false),
        "a bucket fMP4 is not packaged"
    );
    assert_eq!(has("clip.ts"), (false, false));
    assert_eq!(has("vp9-opus.webm"), (false, false));
    assert_eq!(has("local/fragmented.mp4"), (true, false));
    assert_eq!(has("local/clip.ts"), (true, false));
    assert_eq!(has("local/vp9-opus.webm"), (false, true));
    for t in list.as_array().unwrap() {
        let id = t["id"].as_str().unwrap();
        let (h, d) = urls(id);
        for url in h.into_iter().chain(d) {
            assert_eq!(request(s.addr, "GET", &url, &[]).status, 200, "{url}");
        }
    }
}
