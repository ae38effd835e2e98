//! Live recordings (issue 14, parts 1 and 2): a stream matching a `[[record]]` rule is written
//! into the library as it arrives, is a title while it is written, rotates at keyframes,
//! survives a crash, is pruned by retention, and a failed write never disturbs the live stream.
//! Each test runs the `zerocast` binary on a library of its own, fed by ffmpeg in real time.

mod common;

use common::live::wait_until;
use common::recorded::*;
use common::spawned::Served;
use live::llhls::wallclock::{parse_rfc3339_ms, rfc3339_ms};
use serde_json::Value;

#[test]
fn a_recording_is_a_growing_title_that_seeks_by_timecode_and_wall_clock_while_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    std::fs::create_dir(&lib).unwrap();
    let s = serve(&lib, "[[record]]\nstreams = \"show*\"\n", &[]);
    let _publisher = publish(&s, "show1");
    let t = wait_title(
        &s,
        "recordings/show1/",
        "a growing title with 4 keyframes",
        |t| t["growing"] == true && t["keyframes"].as_u64() >= Some(4),
    );
    let id = t["id"].as_str().unwrap().to_string();
    assert_eq!(
        (t["video_codec"].as_str(), t["audio_codec"].as_str()),
        (Some("h264"), Some("aac"))
    );
    assert_eq!(
        (t["width"].as_u64(), t["height"].as_u64()),
        (Some(320), Some(240))
    );
    // The file being written is a dotfile beside where the finished one will be.
    let name = id.rsplit('/').next().unwrap();
    assert!(lib
        .join("recordings/show1")
        .join(format!(".{name}.part"))
        .exists());

    // Seek by timecode, and by wall clock from when the first frame was received.
    let seek = get(&s, &format!("/api/videos/{id}/seek?t=00:00:02"), &[]);
    assert_eq!(seek.status, 200, "{}", String::from_utf8_lossy(&seek.body));
    let seek = seek.json();
    let at = seek["keyframe"]["seconds"].as_f64().unwrap();
    assert!((1.5..=2.05).contains(&at), "{seek}");
    let started = t["recording_started"].as_str().unwrap();
    let started = parse_rfc3339_ms(started).expect("an RFC 3339 time");
    let wall = rfc3339_ms(started + 2000);
    let by_wall = get(&s, &format!("/api/videos/{id}/seek?t={wall}"), &[]).json();
    assert_eq!(by_wall["offset"], seek["offset"], "{by_wall}");
    // The CLI takes the same wall-clock time.
    let url = format!("http://{}/videos/{id}", s.addr);
    let cli = common::zerocast(&["seek", &url, &wall, "--json"]);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(cli["offset"], seek["offset"], "{cli}");
    let before = get(
        &s,
        &format!("/api/videos/{id}/seek?t=2001-01-01T00:00:00Z"),
        &[],
    );
    assert_eq!(before.status, 400);
    assert!(
        String::from_utf8_lossy(&before.body).contains("before"),
        "{:?}",
        before.body
    );

    // Ranges within the written part; a weak ETag that names what is written; no caching.
    let r = get(&s, &format!("/videos/{id}"), &[("range", "bytes=0-187")]);
    assert_eq!(r.status, 206);
    assert_eq!((r.body.len(), r.body[0]), (188, 0x47));
    let etag = r.header("etag").unwrap().to_string();
    assert!(etag.starts_with("W/"), "{etag}");
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    // So is a clip of it (it grows with the title).
    let clip = get(&s, &format!("/videos/{id}?start=0&end=1"), &[]);
    assert_eq!(clip.status, 200);
    assert_eq!(clip.header("cache-control"), Some("no-cache"));
    let size = t["size"].as_u64().unwrap();
    let keyframes = t["keyframes"].as_u64();
    wait_title(&s, &id, "the title grows by a keyframe", |t| {
        t["size"].as_u64() > Some(size) && t["keyframes"].as_u64() > keyframes
    });
    // Grown: a new tag, and the old one is no longer "not modified".
    let r = get(&s, &format!("/videos/{id}"), &[("if-none-match", &etag)]);
    assert_eq!(r.status, 200);
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    // No date to revalidate by (two lengths written within a second would share one): a
    // client asking by date gets the bytes.
    assert_eq!(r.header("last-modified"), None);
    let now = r.header("date").unwrap().to_string();
    let r = get(&s, &format!("/videos/{id}"), &[("if-modified-since", &now)]);
    assert_eq!(r.status, 200);
    // ffprobe reads what is written so far as the stream's two codecs.
    assert_eq!(
        common::codecs(&format!("http://{}/videos/{id}", s.addr)),
        ["aac", "h264"]
    );
}

#[test]
fn files_rotate_at_keyframes_and_each_finished_one_is_a_title_with_a_content_etag() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    std::fs::create_dir(&lib).unwrap();
    let s = serve(
        &lib,
        "[[record]]\nstreams = \"cam\"\nsegment_secs = 2\n",
        &[],
    );
    let _publisher = publish(&s, "cam");
    wait_until("two finished files are titles", WAIT, || {
        titles(&s, "recordings/cam/")
            .iter()
            .filter(|t| t["growing"] == false)
            .count()
            >= 2
    });
    let finished: Vec<Value> = titles(&s, "recordings/cam/")
        .into_iter()
        .filter(|t| t["growing"] == false)
        .collect();
    for t in &finished {
        let id = t["id"].as_str().unwrap();
        let url = format!("http://{}/videos/{id}", s.addr);
        // Whole GOPs of about the segment length, starting on a keyframe, decoding cleanly.
        let d = t["duration_seconds"].as_f64().unwrap();
        assert!((1.5..=3.5).contains(&d), "{id}: {d} s");
        let packets = common::ffprobe_video_packets(&url);
        let first = packets.iter().min_by(|a, b| a.0.total_cmp(&b.0)).unwrap();
        assert!(first.2, "{id} starts on a keyframe");
        common::assert_decodes_without_errors(&url, None);
        let r = get(&s, &format!("/videos/{id}"), &[]);
        let etag = r.header("etag").unwrap();
        assert!(!etag.starts_with("W/"), "{id}: {etag}");
        assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
        assert_eq!(
            r.body,
            std::fs::read(lib.join(id)).unwrap(),
            "{id}: the file on disk"
        );
    }
}

#[test]
fn retention_removes_the_oldest_files_and_their_titles() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    std::fs::create_dir(&lib).unwrap();
    let s = serve(
        &lib,
        "[[record]]\nstreams = \"short\"\nsegment_secs = 1\nkeep_secs = 2\n",
        &[],
    );
    let _publisher = publish(&s, "short");
    let first = wait_title(&s, "recordings/short/", "a finished title", |t| {
        t["growing"] == false
    });
    let first = first["id"].as_str().unwrap().to_string();
    // (The log line comes after the file is gone, and a rescan asked for before may already
    // have left its title out: each is awaited.)
    wait_until(
        "the first file is removed, and its title, and said",
        WAIT,
        || {
            !lib.join(&first).exists()
                && get(&s, &format!("/api/videos/{first}"), &[]).status == 404
                && !s.log_lines("retention removed recordings").is_empty()
        },
    );
    // What is left is younger than the limit (plus the file being finished and one segment).
    let files = finished_files(&lib, "short");
    assert!(files.len() <= 4, "{files:?}");
}

/// Two rules that share the default directory: the retention of one (`short`, 2 s) removes its
/// own stream's files, and not an old recording of a stream the other rule keeps for ever.
#[test]
fn retention_of_one_rule_leaves_the_recordings_of_another_rule_in_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    let court = lib.join("recordings/court-1");
    std::fs::create_dir_all(&court).unwrap();
    let kept = court.join("20261126T100000.000Z.ts");
    std::fs::copy(common::fixtures::live_ts(), &kept).unwrap();
    let rules = "[[record]]\nstreams = \"short\"\nsegment_secs = 1\nkeep_secs = 2\n\n\
                 [[record]]\nstreams = \"court-*\"\n";
    let s = serve(&lib, rules, &[]);
    let _publisher = publish(&s, "short");
    wait_until("retention removed a file of short's", WAIT, || {
        !s.log_lines("retention removed recordings").is_empty()
    });
    assert!(kept.exists(), "the other rule's recording is kept");
    let removed = s.log_lines("retention removed recordings").join("\n");
    assert!(!removed.contains("court-1"), "{removed}");
}

#[test]
fn a_publisher_back_within_the_grace_period_continues_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    std::fs::create_dir(&lib).unwrap();
    let s = serve(&lib, "[[record]]\nstreams = \"again\"\n", &[]);
    let first = publish(&s, "again");
    let t = wait_title(&s, "recordings/again/", "a growing title", |t| {
        t["keyframes"].as_u64() >= Some(3)
    });
    drop(first);
    wait_until("the stream waits for its publisher", WAIT, || {
        get(&s, "/api/streams/again", &[]).json()["state"] == "reconnecting"
    });
    let _second = publish(&s, "again");
    let keyframes = t["keyframes"].as_u64().unwrap();
    let id = t["id"].as_str().unwrap();
    wait_title(
        &s,
        id,
        "the same title grows with the second publisher",
        |t| t["keyframes"].as_u64() > Some(keyframes + 3),
    );
    assert_eq!(titles(&s, "recordings/again/").len(), 1, "one file");
    assert!(finished_files(&lib, "again").is_empty());
    assert_eq!(s.log_lines("recording to a new file").len(), 1);
}

#[test]
fn an_fmp4_recording_is_an_mp4_title_while_written_and_each_finished_file_plays() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    std::fs::create_dir(&lib).unwrap();
    let s = serve(
        &lib,
        "[[record]]\nstreams = \"cmaf\"\nformat = \"fmp4\"\nsegment_secs = 2\n",
        &[],
    );
    let _publisher = publish(&s, "cmaf");
    let growing = wait_title(
        &s,
        "recordings/cmaf/",
        "a growing MP4 title that can seek",
        |t| t["growing"] == true && t["keyframes"].as_u64() >= Some(2),
    );
    assert_eq!(growing["container"], "mp4", "{growing}");
    assert!(growing["id"].as_str().unwrap().ends_with(".mp4"));
    assert_eq!(growing["video_codec"], "h264", "{growing}");
    wait_until("two finished files are titles", WAIT, || {
        titles(&s, "recordings/cmaf/")
            .iter()
            .filter(|t| t["growing"] == false)
            .count()
            >= 2
    });
    for t in titles(&s, "recordings/cmaf/")
        .iter()
        .filter(|t| t["growing"] == false)
    {
        let id = t["id"].as_str().unwrap();
        let url = format!("http://{}/videos/{id}", s.addr);
        let d = t["duration_seconds"].as_f64().unwrap();
        assert!((1.5..=3.5).contains(&d), "{id}: {d} s");
        assert_eq!(common::codecs(&url), ["aac", "h264"], "{id}");
        let packets = common::ffprobe_video_packets(&url);
        let first = packets.iter().min_by(|a, b| a.0.total_cmp(&b.0)).unwrap();
        assert!(first.2, "{id} starts on a keyframe");
        common::assert_decodes_without_errors(&url, None);
    }
}

#[test]
fn a_growing_recording_has_an_event_playlist_that_only_grows() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    std::fs::create_dir(&lib).unwrap();
    let s = serve(&lib, "[[record]]\nstreams = \"ev\"\n", &[]);
    let _publisher = publish(&s, "ev");
    let t = wait_title(&s, "recordings/ev/", "a growing title of 7 s", |t| {
        t["duration_seconds"].as_f64() >= Some(7.0)
    });
    let id = t["id"].as_str().unwrap().to_string();
    // The live stream names the file it is recorded to, and that file's playlist.
    let doc = get(&s, "/api/streams/ev", &[]).json();
    assert_eq!(doc["recording"], id.as_str(), "{doc}");
    assert_eq!(
        doc["recording_hls_url"],
        format!("/videos/{id}/index.m3u8").as_str()
    );
    let playlist = |s: &Served| {
        let r = get(s, &format!("/videos/{id}/index.m3u8"), &[]);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        let etag = r.header("etag").unwrap().to_string();
        (String::from_utf8(r.body).unwrap(), etag)
    };
    let (first, first_tag) = playlist(&s);
    assert!(first.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"), "{first}");
    assert!(!first.contains("#EXT-X-ENDLIST"), "{first}");
    let segments = |p: &str| p.lines().filter(|l| l.starts_with("hls/")).count();
    assert!(segments(&first) >= 1, "{first}");
    let mut later = (String::new(), String::new());
    wait_until("a segment more", WAIT, || {
        later = playlist(&s);
        segments(&later.0) > segments(&first)
    });
    // What was listed stays as it was: the later playlist runs on from the earlier one.
    let listed: String = first.lines().map(|l| format!("{l}\n")).collect();
    assert!(later.0.starts_with(&listed), "{first}\n---\n{}", later.0);
    assert_ne!(later.1, first_tag);
    // A listed segment is a whole GOP run of TS that decodes.
    let seg = format!("http://{}/videos/{id}/hls/0.ts", s.addr);
    common::assert_decodes_without_errors(&seg, None);
}

#[test]
fn an_rtmp_recording_reads_as_the_disk_holds_it_while_written_then_is_a_title_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    std::fs::create_dir(&lib).unwrap();
    let rules = "[live]\ngrace_secs = 1\n\n[[record]]\nstreams = \"cam*\"\n";
    let s = serve(&lib, rules, &[]);
    let publisher = common::live::ffmpeg_publish(
        &common::fixtures::long_rtmp_mp4(),
        &["-re"],
        "flv",
        &[],
        &format!("rtmp://{}/live/cam1", rtmp_addr(&s)),
    );
    let t = wait_title(
        &s,
        "recordings/cam1/",
        "a growing title with 4 keyframes",
        |t| t["growing"] == true && t["keyframes"].as_u64() >= Some(4),
    );
    let id = t["id"].as_str().unwrap().to_string();
    let url = format!("http://{}/videos/{id}", s.addr);
    // While it is written: seek answers inside it, and a range is the bytes on disk.
    let seek = get(&s, &format!("/api/videos/{id}/seek?t=2"), &[]).json();
    let offset = seek["offset"].as_u64().unwrap();
    let r = get(
        &s,
        &format!("/videos/{id}"),
        &[("range", &format!("bytes={offset}-{}", offset + 18799))],
    );
    assert_eq!(r.status, 206);
    let name = id.rsplit('/').next().unwrap();
    let disk = std::fs::read(lib.join("recordings/cam1").join(format!(".{name}.part"))).unwrap();
    assert_eq!(r.body, disk[offset as usize..offset as usize + 18800]);
    // ffmpeg seeks into it over HTTP and decodes a frame.
    let frame = dir.path().join("frame.png");
    common::ffmpeg(&[
        "-ss",
        "2",
        "-i",
        &url,
        "-frames:v",
        "1",
        frame.to_str().unwrap(),
    ]);
    assert!(std::fs::metadata(&frame).unwrap().len() > 0);
    // The publisher stops: the stream ends after the grace, and the file is finished.
    drop(publisher);
    let done = wait_title(&s, &id, "the finished title", |t| t["growing"] == false);
    let keys = common::ffprobe_keyframes(&url);
    assert_eq!(
        done["keyframes"].as_u64(),
        Some(keys.len() as u64),
        "{keys:?}"
    );
    for (secs, pos) in keys.iter().take(4) {
        let at = get(&s, &format!("/api/videos/{id}/seek?t={secs:.3}"), &[]).json();
        assert_eq!(
            at["offset"].as_u64(),
            Some(*pos),
            "keyframe at {secs} s: {at}"
        );
    }
    let etag = get(&s, &format!("/videos/{id}"), &[])
        .header("etag")
        .unwrap()
        .to_string();
    drop(s);
    // After a restart: the same title, the same entity.
    let s = serve(&lib, rules, &[]);
    let r = get(&s, &format!("/videos/{id}"), &[]);
    assert_eq!((r.status, r.header("etag")), (200, Some(etag.as_str())));
    assert_eq!(r.body, std::fs::read(lib.join(&id)).unwrap());
}

/// A recording of a stream whose viewers need a token (a file named as the recorder names
/// them, in the stream's folder): its bytes, its seek answers and its HLS need the stream's
/// token too, and its playlist carries the token on to its segments, which ffmpeg then reads.
#[test]
fn a_recording_of_a_stream_whose_viewers_need_a_token_needs_the_same_token() {
    use common::auth::{token, SECRET};
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    let cam = lib.join("recordings/secret-cam");
    std::fs::create_dir_all(&cam).unwrap();
    let bytes = std::fs::read(common::fixtures::live_ts()).unwrap();
    std::fs::write(cam.join("20261126T100000.000Z.ts"), &bytes).unwrap();
    std::fs::write(lib.join("open.ts"), &bytes).unwrap();
    let config = format!(
        "[jwt]\nsecret = \"{}\"\n\n[[auth]]\nstreams = \"secret-*\"\npublish = [\"jwt\"]\n\
         read = [\"jwt\"]\n",
        String::from_utf8_lossy(SECRET)
    );
    let s = serve(&lib, &config, &[]);
    let id = "recordings/secret-cam/20261126T100000.000Z.ts";
    for path in [
        format!("/videos/{id}"),
        format!("/videos/{id}/index.m3u8"),
        format!("/videos/{id}/hls/0.ts"),
        format!("/api/videos/{id}"),
        format!("/api/videos/{id}/seek?t=1"),
        format!("/videos/{id}?start=0&end=2"),
    ] {
        assert_eq!(get(&s, &path, &[]).status, 401, "{path}");
    }
    let other = token("read", "secret-other", 60);
    let r = get(&s, &format!("/videos/{id}?jwt={other}"), &[]);
    assert_eq!(r.status, 403, "another stream's token");
    let jwt = token("read", "secret-cam", 60);
    let r = get(&s, &format!("/videos/{id}?jwt={jwt}"), &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == bytes, "the file's bytes");
    let bearer = format!("Bearer {jwt}");
    let r = get(
        &s,
        &format!("/api/videos/{id}/seek?t=1"),
        &[("authorization", &bearer)],
    );
    assert_eq!(r.status, 200);
    let playlist = get(&s, &format!("/videos/{id}/index.m3u8?jwt={jwt}"), &[]);
    assert_eq!(playlist.status, 200);
    let text = String::from_utf8(playlist.body).unwrap();
    let uris: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(!uris.is_empty());
    for uri in &uris {
        assert!(uri.ends_with(&format!("?jwt={jwt}")), "{uri}");
    }
    let url = format!("http://{}/videos/{id}/index.m3u8?jwt={jwt}", s.addr);
    assert_eq!(common::codecs(&url), ["aac", "h264"]);
    // A title that is not a recording of such a stream: open as before.
    assert_eq!(get(&s, "/videos/open.ts", &[]).status, 200);
}

/// With `private_api`, the admin (its token in `Authorization`) reads a protected recording's
/// title and seek answers, as it reads `/api/videos`: its token is not taken for a viewer's.
#[test]
fn the_admin_reads_a_protected_recordings_api_answers_behind_private_api() {
    use common::auth::SECRET;
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    let cam = lib.join("recordings/secret-cam");
    std::fs::create_dir_all(&cam).unwrap();
    std::fs::copy(
        common::fixtures::live_ts(),
        cam.join("20261126T100000.000Z.ts"),
    )
    .unwrap();
    let config = format!(
        "admin_token = \"an admin token of at least 32 bytes!!\"\nprivate_api = true\n\n\
         [jwt]\nsecret = \"{}\"\n\n[[auth]]\nstreams = \"secret-*\"\npublish = [\"jwt\"]\n\
         read = [\"jwt\"]\n",
        String::from_utf8_lossy(SECRET)
    );
    let s = serve(&lib, &config, &[]);
    let id = "recordings/secret-cam/20261126T100000.000Z.ts";
    let admin = [(
        "authorization",
        "Bearer an admin token of at least 32 bytes!!",
    )];
    for path in [
        format!("/api/videos/{id}"),
        format!("/api/videos/{id}/seek?t=1"),
    ] {
        assert_eq!(get(&s, &path, &admin).status, 200, "{path}");
        assert_eq!(get(&s, &path, &[]).status, 401, "{path}: no token");
    }
    // Its bytes are a viewer's matter: the admin token is no viewer token.
    assert_ne!(get(&s, &format!("/videos/{id}"), &admin).status, 200);
}
