//! The config file's schema and its merge with the flags.

use super::*;

fn file(toml_text: &str) -> FileConfig {
    toml::from_str(toml_text).expect("a valid config file")
}

/// The `serve` flags in `line`, split at spaces.
fn flags(line: &str) -> ServeArgs {
    use clap::Parser;
    let argv = ["zerocast", "serve"]
        .into_iter()
        .chain(line.split_whitespace());
    match crate::cli::Cli::parse_from(argv).command {
        crate::cli::Command::Serve(a) => a,
        c => panic!("not serve: {c:?}"),
    }
}

/// The example config file in the README is one the server accepts, key for key (the file
/// format refuses unknown keys), so the documentation cannot drift from the code.
#[test]
fn readme_config_example_parses() {
    let readme = include_str!("../../../../README.md");
    let start = readme
        .find("```toml\n")
        .expect("a toml block in the README")
        + 8;
    let len = readme[start..].find("```").expect("its end");
    let file: FileConfig = toml::from_str(&readme[start..start + len]).expect("parses");
    assert_eq!(file.workers, Some(4));
    assert!(file.live.keys.contains_key("show"));
    let s = merge(ServeArgs::default(), file).expect("the whole file applies");
    assert!(s.config.signed.is_some() && s.config.admin_token.is_some());
    let tls = s.config.tls.expect("HTTPS from the example");
    assert_eq!(tls.listen.len(), 1);
    assert!(tls.rtmps_listen.is_some() && tls.hsts.is_some());
    assert!(s.config.auth.jwt.is_some() && s.config.auth.rules.len() == 1);
    assert!(s.config.hooks.is_some_and(|h| h.on_unpublish.is_some()));
    assert_eq!(s.config.record.len(), 1);
    assert_eq!(s.config.record[0].dir, Path::new("/srv/videos/recordings"));
}

#[test]
fn without_file_or_flags_the_server_defaults_hold() {
    let s = merge(ServeArgs::default(), FileConfig::default()).unwrap();
    let d = Config::default();
    assert_eq!(s.config.listen, d.listen);
    assert_eq!(s.config.rtmp_listen, d.rtmp_listen);
    assert_eq!(s.config.workers, d.workers);
    assert_eq!(s.config.header_read_timeout, d.header_read_timeout);
    assert_eq!(s.config.send_timeout, d.send_timeout);
    assert_eq!(s.config.max_connections, None);
    assert_eq!(s.config.policy.sendfile_min, d.policy.sendfile_min);
    assert_eq!(s.config.live.global_key, None);
    assert!(s.config.live.keys.is_empty());
    assert_eq!(s.cache_budget, server::default_cache_budget());
    assert_eq!(s.library, None);
    assert_eq!(FileConfig::default().log_format(None), LogFormat::Human);
}

#[test]
fn the_file_wins_over_the_defaults() {
    let f = file(
        r#"
        library = "/srv/videos"
        listen = "127.0.0.1:9000"
        cache_size = "2MiB"
        log_format = "json"
        header_read_timeout_secs = 0
        send_timeout_secs = 0
        shutdown_grace_secs = 3
        max_connections = 0
        cors_origins = ["https://player.example"]
        admin_token = "0123456789abcdef"
        private_api = true
        max_ranges = 0
        sendfile_min = "64KiB"
        rtmp_listen = "off"
        workers = 0
        listen_backlog = 128
        [signed_urls]
        secret = "0123456789abcdef-signing"
        [live]
        publish_key = "any"
        grace_secs = 7
        linger_secs = 2
        window_secs = 0
        window_size = "1MiB"
        hls_segment_secs = 1000.0
        hls_window = 1
        ll_hls_part_ms = 5
        ll_hls_segment_secs = 4
        ll_hls_window = 1
        max_ingest_bitrate = 1
        viewer_max_skips = 5
        viewer_skip_period_secs = 9
        viewer_stall_timeout_secs = 0
        memory_budget = "300MiB"
        fanout_threads = 3
        fanout_nice = 0
        [live.keys]
        show = "secret"
        "#,
    );
    assert_eq!(f.log_format(None), LogFormat::Json);
    let s = merge(ServeArgs::default(), f).unwrap();
    let c = &s.config;
    assert_eq!(s.library, Some(PathBuf::from("/srv/videos")));
    assert_eq!(s.cache_budget, 2 << 20);
    assert_eq!(c.listen, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(c.rtmp_listen, None);
    // Values that would disable something are raised to the least that works.
    assert_eq!(c.header_read_timeout, Duration::from_secs(1));
    assert_eq!(c.send_timeout, Duration::from_secs(1));
    assert_eq!(c.shutdown_grace, Duration::from_secs(3));
    assert_eq!(c.max_connections, Some(1));
    assert_eq!(
        c.cors,
        server::cors::Cors::Origins(vec!["https://player.example".into()])
    );
    assert_eq!(c.admin_token.as_deref(), Some("0123456789abcdef"));
    assert!(c.private_api);
    let signed = c.signed.as_ref().expect("signed_urls");
    assert!(signed.covers("/videos/x.mp4") && signed.covers("/live/x.ts"));
    assert_eq!(c.policy.max_ranges, 1);
    assert_eq!(c.policy.sendfile_min, 64 << 10);
    assert_eq!(c.workers, Some(0));
    assert_eq!(c.listen_backlog, 128);
    let l = &c.live;
    assert_eq!(l.global_key.as_deref(), Some("any"));
    assert_eq!(l.keys.get("show").map(String::as_str), Some("secret"));
    assert_eq!(l.grace, Duration::from_secs(7));
    assert_eq!(l.linger, Duration::from_secs(2));
    assert_eq!(l.ring.max_age, Duration::from_secs(1));
    assert_eq!(l.ring.max_bytes, 1 << 20);
    assert_eq!(l.memory_budget.limit, 300 << 20);
    assert_eq!(l.hls.min_segment, Duration::from_secs(60));
    assert_eq!(l.hls.window, 2);
    assert_eq!(l.ll_hls.part_target, Duration::from_millis(100));
    assert_eq!(l.ll_hls.min_segment, Duration::from_secs(4));
    assert_eq!(l.ll_hls.window, 2);
    assert_eq!(l.max_ingest_bitrate, 100_000);
    assert_eq!(l.viewer.max_skips, 5);
    assert_eq!(l.viewer.skip_period, Duration::from_secs(9));
    assert_eq!(l.stall_timeout, Duration::from_secs(1));
    assert_eq!(l.fanout.threads, Some(3));
    assert_eq!(l.fanout.nice, 0);
}

#[test]
fn a_fanout_nice_outside_0_to_19_is_refused() {
    for nice in [-1, 20] {
        let f = file(&format!("[live]\nfanout_nice = {nice}\n"));
        let e = merge(ServeArgs::default(), f).unwrap_err();
        assert!(
            format!("{e:#}").contains("fanout_nice must be 0 to 19"),
            "{e:#}"
        );
    }
}

/// Counts that would make the server ask for terabytes or millions of threads (an abort at
/// the first playlist request, a panic at start) are refused, naming the key.
#[test]
fn thread_counts_and_playlist_windows_past_their_bounds_are_refused() {
    for (text, expected) in [
        (
            "workers = 1025\n",
            "workers must be at most 1024 (got 1025)",
        ),
        (
            "[live]\nfanout_threads = 1000000\n",
            "live.fanout_threads must be at most 1024",
        ),
        (
            "[live]\nhls_window = 1000000000000\n",
            "live.hls_window must be at most 1000",
        ),
        (
            "[live]\nll_hls_window = 1001\n",
            "live.ll_hls_window must be at most 1000",
        ),
    ] {
        let e = merge(ServeArgs::default(), file(text)).unwrap_err();
        assert!(format!("{e:#}").contains(expected), "{text}: {e:#}");
    }
    assert!(merge(ServeArgs::default(), file("[live]\nhls_window = 1000\n")).is_ok());
}

#[test]
fn flags_win_over_the_file() {
    let f = file(
        r#"
        library = "/from/file"
        listen = "127.0.0.1:9000"
        cache_size = "1GiB"
        log_format = "json"
        rtmp_listen = "127.0.0.1:1936"
        [live]
        publish_key = "file-key"
        [live.keys]
        show = "from-file"
        other = "kept"
        "#,
    );
    assert_eq!(f.log_format(Some(LogFormat::Human)), LogFormat::Human);
    let args = flags(
        "--library /from/flag --listen 127.0.0.1:9001 --cache-size 5MiB --rtmp-listen off \
         --publish-key flag-key --publish-key show=from-flag",
    );
    let s = merge(args, f).unwrap();
    assert_eq!(s.library, Some(PathBuf::from("/from/flag")));
    assert_eq!(s.config.listen, "127.0.0.1:9001".parse().unwrap());
    assert_eq!(s.cache_budget, 5 << 20);
    assert_eq!(s.config.rtmp_listen, None);
    let l = &s.config.live;
    assert_eq!(l.global_key.as_deref(), Some("flag-key"));
    assert_eq!(l.keys.get("show").map(String::as_str), Some("from-flag"));
    assert_eq!(l.keys.get("other").map(String::as_str), Some("kept"));
    // And an address flag over the file's `off`.
    let args = flags("--rtmp-listen 127.0.0.1:1937");
    let s = merge(args, file("rtmp_listen = 'off'")).unwrap();
    assert_eq!(s.config.rtmp_listen, "127.0.0.1:1937".parse().ok());
}

/// Each case: `FLAGS | CONFIG FILE => the error says`.
#[test]
fn bad_values_get_a_clear_error() {
    for case in [
        " | sendfile_min = 'lots' => sendfile_min in the config file: 'lots' is not a size",
        " | cache_size = '3 parsecs' => cache_size in the config file: unknown size unit",
        " | [live]\nwindow_size = 'big' => live.window_size: 'big' is not a size",
        " | rtmp_listen = 'nowhere' => rtmp_listen 'nowhere': expected HOST:PORT or off",
        "--rtmp-listen 1935 | => rtmp_listen '1935': expected HOST:PORT or off",
        " | listen = 'port 80' => listen 'port 80': expected HOST:PORT or off",
        "--listen off | => listen = off needs an HTTPS listener",
        "--tls-listen 127.0.0.1:8443 | => need tls_cert and tls_key",
        " | tls_cert = 'c.pem'\ntls_key = 'k.pem' => no tls_listen or rtmps_listen uses them",
        " | redirect_http = true => redirect_http = true needs an HTTPS listener",
        "--publish-key a/b=x | => --publish-key a/b=x: expected NAME=SECRET with a valid",
        "--publish-key show= | => --publish-key show=: expected NAME=SECRET",
        "--publish-key= | => --publish-key: empty key",
        " | [live]\npublish_key = '' => [live] publish_key is empty",
        " | [live.keys]\nshow = '' => [live.keys] show: the key is empty",
        " | [live]\nhls_segment_secs = nan => live.hls_segment_secs must be a number of seconds",
        " | [live]\nll_hls_segment_secs = inf => live.ll_hls_segment_secs must be a number of",
        " | send_timeout_secs = 9223372036854775807 => send_timeout_secs must be at most",
        " | [live]\nviewer_stall_timeout_secs = 9223372036854775807 => live.viewer_stall_timeout_secs",
        " | [live]\nmemory_budget = '100KiB' => live.memory_budget must be at least 1MiB",
        " | [live]\nwindow_size = '0' => live.window_size must be at least 1MiB",
        " | [callbacks]\non_publish = 'https://auth.example/p'\nca = '/nonexistent/ca.pem' => callbacks.ca",
    ] {
        let (input, expected) = case.split_once(" => ").unwrap();
        let (args, toml_text) = input.split_once('|').unwrap();
        let e = merge(flags(args), file(toml_text)).expect_err(case);
        assert!(format!("{e:#}").contains(expected), "{case}: {e:#}");
    }
}

#[test]
fn a_relative_library_in_the_file_is_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zerocast.toml");
    std::fs::write(&path, "library = \"videos\"").unwrap();
    let s = merge(ServeArgs::default(), FileConfig::load(Some(&path)).unwrap()).unwrap();
    assert_eq!(s.library, Some(dir.path().join("videos")));
    std::fs::write(&path, "library = \"/srv/videos\"").unwrap();
    let s = merge(ServeArgs::default(), FileConfig::load(Some(&path)).unwrap()).unwrap();
    assert_eq!(s.library, Some(PathBuf::from("/srv/videos")));
    // A flag stays relative to the working directory.
    let s = merge(
        flags("--library videos"),
        FileConfig::load(Some(&path)).unwrap(),
    )
    .unwrap();
    assert_eq!(s.library, Some(PathBuf::from("videos")));
}

#[test]
fn the_file_is_strict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zerocast.toml");
    for (text, expected) in [
        ("listen_port = 80", "unknown field `listen_port`"),
        ("[live]\nwindow = 3", "unknown field `window`"),
        ("tls_listen = \"port 80\"", "invalid type"),
        (r#"log_format = "xml""#, "unknown variant `xml`"),
        ("workers = -1", "invalid value"),
    ] {
        std::fs::write(&path, text).unwrap();
        let e = format!("{:#}", FileConfig::load(Some(&path)).expect_err(text));
        let context = format!("config file {}: ", path.display());
        assert!(
            e.starts_with(&context) && e.contains(expected),
            "{text}: {e}"
        );
    }
    let missing = dir.path().join("missing.toml");
    let e = format!("{:#}", FileConfig::load(Some(&missing)).unwrap_err());
    assert!(
        e.starts_with(&format!("reading {}", missing.display())),
        "{e}"
    );
    std::fs::write(&path, "workers = 2").unwrap();
    assert_eq!(FileConfig::load(Some(&path)).unwrap().workers, Some(2));
}

#[test]
fn record_rules_are_read_with_their_directory_inside_the_library() {
    let f = file(
        "library = \"/lib\"\n[[record]]\nstreams = \"a*\"\ndir = \"rec/live\"\nsegment_secs = 5\nkeep_secs = 60\nkeep_size = \"1GiB\"\n[[record]]\nstreams = \"b\"\nformat = \"fmp4\"\n",
    );
    let s = merge(ServeArgs::default(), f).unwrap();
    let [a, b] = &s.config.record[..] else {
        panic!("two rules: {:?}", s.config.record)
    };
    assert_eq!(
        (a.dir.as_path(), a.id_prefix.as_str()),
        (Path::new("/lib/rec/live"), "rec/live")
    );
    assert_eq!(a.rotation.segment, Duration::from_secs(5));
    assert_eq!(a.keep.max_age, Some(Duration::from_secs(60)));
    assert_eq!(a.keep.max_bytes, Some(1 << 30));
    assert_eq!(
        (b.dir.as_path(), b.keep.max_bytes, b.format),
        (
            Path::new("/lib/recordings"),
            None,
            server::record::Format::Fmp4
        )
    );
    assert_eq!(a.format, server::record::Format::Ts);
}

#[test]
fn library_entries_name_one_directory_and_any_buckets_set_by_the_s3_table() {
    let text = "library = [\"s3://media/films\", \"/srv/v\", \"s3://archive\"]\n\
        [s3]\nendpoint = \"http://127.0.0.1:9000\"\nblock_size = \"256KiB\"\n\
        relist_secs = 0\nretries = 5\nindex_max = \"1GiB\"\n";
    let s = merge(ServeArgs::default(), file(text)).unwrap();
    assert_eq!(s.library, Some(PathBuf::from("/srv/v")));
    let store = &s.config.store;
    let urls: Vec<&str> = store.sources.iter().map(|x| x.url.as_str()).collect();
    assert_eq!(urls, ["s3://media/films", "s3://archive"]);
    assert_eq!(
        store.sources[1].endpoint.as_deref(),
        Some("http://127.0.0.1:9000")
    );
    assert_eq!(
        (
            store.block_size,
            store.relist,
            store.retries,
            store.index_max
        ),
        (256 << 10, None, 5, 1 << 30)
    );
    // Flags replace the file's entries.
    let s = merge(flags("--library s3://other --library /x"), file(text)).unwrap();
    assert_eq!(s.library, Some(PathBuf::from("/x")));
    assert_eq!(s.config.store.sources.len(), 1);
    // Without a bucket there is no object storage.
    let s = merge(ServeArgs::default(), file("library = \"/srv/v\"")).unwrap();
    assert!(s.config.store.sources.is_empty());
}

#[test]
fn a_record_rule_may_upload_its_finished_files_to_a_bucket_set_by_the_s3_table() {
    let text = "library = \"/lib\"\n[s3]\nendpoint = \"http://127.0.0.1:9000\"\n\
        [[record]]\nstreams = \"cam\"\nupload = \"s3://archive/live\"\n";
    let s = merge(ServeArgs::default(), file(text)).unwrap();
    let up = s.config.record[0].upload.as_ref().expect("an upload");
    assert_eq!(up.url, "s3://archive/live");
    assert_eq!(up.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert!(
        s.config.store.sources.is_empty(),
        "the bucket is not a library source"
    );
    let bad = "library = \"/lib\"\n[[record]]\nstreams = \"cam\"\nupload = \"s3://X\"\n";
    let e = merge(ServeArgs::default(), file(bad)).unwrap_err();
    assert!(format!("{e:#}").contains("upload"), "{e:#}");
}

#[test]
fn library_entries_and_s3_settings_that_cannot_work_are_refused_with_the_reason() {
    for (text, why) in [
        ("library = [\"/a\", \"/b\"]", "one directory at most"),
        ("library = \"s3://Bad_Name\"", "bucket names"),
        ("library = \"s3://ok-bucket/../x\"", "'..'"),
        ("library = \"/a\"\n[s3]\nregion = \"x\"", "names a bucket"),
        (
            "library = \"s3://bkt\"\n[s3]\nblock_size = \"4KiB\"",
            "64KiB to 64MiB",
        ),
        (
            "library = \"s3://bkt\"\n[s3]\nsecret = \"x\"",
            "unknown field",
        ),
    ] {
        let e = toml::from_str::<FileConfig>(text)
            .map_err(anyhow::Error::from)
            .and_then(|f| merge(ServeArgs::default(), f));
        let e = e.unwrap_err();
        assert!(format!("{e:#}").contains(why), "{text}: {e:#}");
    }
}

#[test]
fn record_rules_that_cannot_work_are_refused_with_the_reason() {
    for (text, why) in [
        ("[[record]]\nstreams = \"a\"\n", "needs a library directory"),
        (
            "library = \"/l\"\n[[record]]\nstreams = \"a\"\nformat = \"avi\"\n",
            "unknown format",
        ),
        (
            "library = \"/l\"\n[[record]]\nstreams = \"a\"\ndir = \"../x\"\n",
            "inside the library",
        ),
        (
            "library = \"/l\"\n[[record]]\nstreams = \"a\"\ndir = \"/abs\"\n",
            "inside the library",
        ),
        (
            "library = \"/l\"\n[[record]]\nstreams = \"a*b*\"\n",
            "one '*'",
        ),
        (
            "library = \"/l\"\n[[record]]\nstreams = \"a\"\nkeep_size = \"lots\"\n",
            "keep_size",
        ),
        (
            "library = \"/l\"\n[[record]]\nstreams = \"a\"\nkeep_secs = 999999999999\n",
            "keep_secs must be at most",
        ),
    ] {
        let e = merge(ServeArgs::default(), file(text)).unwrap_err();
        assert!(format!("{e:#}").contains(why), "{text}: {e:#}");
    }
}

#[test]
fn origin_flags_make_an_edge_and_replace_the_files_origins() {
    let f = file(
        "[edge]\norigins = [\"http://a:8080\", \"http://b:8080\"]\nidle_secs = 30\ntoken = \"T\"\n",
    );
    let s = merge(ServeArgs::default(), f).unwrap();
    let edge = s.config.edge.expect("an edge");
    let urls: Vec<&str> = edge.origins.iter().map(|o| o.url.as_str()).collect();
    assert_eq!(urls, ["http://a:8080", "http://b:8080"]);
    assert_eq!(
        (edge.idle, edge.token.as_deref()),
        (Duration::from_secs(30), Some("T"))
    );
    let f = file("[edge]\norigins = [\"http://a:8080\"]\n");
    let s = merge(flags("--origin http://c:9000"), f).unwrap();
    assert_eq!(s.config.edge.unwrap().origins[0].authority, "c:9000");
    assert!(merge(ServeArgs::default(), FileConfig::default())
        .unwrap()
        .config
        .edge
        .is_none());
}

#[test]
fn an_edge_without_a_usable_origin_is_refused_at_start() {
    let e = merge(flags("--origin rtmp://a:1935"), FileConfig::default()).unwrap_err();
    assert!(format!("{e:#}").contains("not supported"), "{e:#}");
    let e = merge(ServeArgs::default(), file("[edge]\nidle_secs = 5\n")).unwrap_err();
    assert!(format!("{e:#}").contains("needs origins"), "{e:#}");
}
