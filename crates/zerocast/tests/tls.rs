//! HTTPS, HTTP/2 and RTMPS (issue 12, parts 1, 3 and 4): real clients (curl, ffmpeg, ffprobe,
//! openssl s_client, a rustls client) against a certificate from a test CA the tests make, and
//! the hostile cases: a handshake that never completes, a client that speaks no TLS, a thousand
//! stalled handshakes, bad certificate files.

mod common;

use common::fixtures::live_ts;
use common::live::{ffmpeg_publish, wait_for, wait_until, Proc};
use common::spawned::Served;
use common::tls::{connect, get_on, serial, TestCa};
use common::{demo_copy, demo_dir, library, require, TestServer};
use server::tls::TlsConfig;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A server on a copy of the demo clips with HTTPS (and RTMPS), its CA, and `edit` applied.
fn https_server(edit: impl FnOnce(&mut TlsConfig)) -> (TestServer, TestCa) {
    let mut ca = TestCa::new();
    let (cert, key) = ca.issue();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut tls = TlsConfig::new(vec![any], cert, key);
    tls.rtmps_listen = Some(any);
    edit(&mut tls);
    let config = server::Config {
        tls: Some(tls),
        ..server::Config::default()
    };
    let dir = demo_copy();
    (TestServer::start_with(config, library(dir.path())), ca)
}

/// `curl` with the test CA and `localhost` pinned to the listener: (body, `%{http_version}
/// %{http_code}`).
fn curl(addr: SocketAddr, ca: &TestCa, path: &str, args: &[&str]) -> (Vec<u8>, String) {
    require("curl");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(&ca.ca)
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", addr.port())])
        .args(["-w", "\n%{http_version} %{http_code}"])
        .args(args)
        .arg(format!("https://localhost:{}{path}", addr.port()))
        .output()
        .expect("curl");
    assert!(
        out.status.success() || out.status.code() == Some(28),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut body = out.stdout;
    let at = body.iter().rposition(|&b| b == b'\n').unwrap();
    let status = String::from_utf8_lossy(&body[at + 1..]).into_owned();
    body.truncate(at);
    (body, status)
}

fn demo_bytes(name: &str) -> Vec<u8> {
    std::fs::read(demo_dir().join(name)).unwrap()
}

#[test]
fn curl_gets_a_vod_range_over_https_http_1_1() {
    let (s, ca) = https_server(|_| {});
    let (body, status) = curl(
        s.https[0],
        &ca,
        "/videos/faststart.mp4",
        &["--http1.1", "-r", "1000-200999"],
    );
    assert_eq!(status, "1.1 206");
    assert_eq!(body, demo_bytes("faststart.mp4")[1000..201000]);
}

#[test]
fn curl_http2_gets_the_json_api_and_a_vod_range() {
    let (s, ca) = https_server(|_| {});
    let (body, status) = curl(s.https[0], &ca, "/api/videos", &["--http2"]);
    assert_eq!(status, "2 200");
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 5);
    let (body, status) = curl(
        s.https[0],
        &ca,
        "/videos/clip.ts",
        &["--http2", "-r", "0-99999"],
    );
    assert_eq!(status, "2 206");
    assert_eq!(body, demo_bytes("clip.ts")[..100000]);
}

#[test]
fn ffmpeg_publishes_with_put_over_https_and_an_http2_viewer_gets_h264_and_aac() {
    let (s, ca) = https_server(|_| {});
    let url = format!("https://localhost:{}/live/secure", s.https[0].port());
    let ca_file = ca.ca.to_str().unwrap().to_owned();
    let _publisher = ffmpeg_publish(
        &live_ts(),
        &["-re"],
        "mpegts",
        &["-method", "PUT", "-tls_verify", "1", "-ca_file", &ca_file],
        &url,
    );
    wait_for(&s, "secure", "live", |d| d["state"] == "live");
    let (body, status) = curl(
        s.https[0],
        &ca,
        "/live/secure.ts",
        &["--http2", "--max-time", "3"],
    );
    assert_eq!(status, "2 200");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("watched.ts");
    std::fs::write(&file, &body).unwrap();
    assert_eq!(common::codecs(file.to_str().unwrap()), ["aac", "h264"]);
}

#[test]
fn ffprobe_plays_live_hls_over_https() {
    let (s, ca) = https_server(|_| {});
    let url = format!("http://{}/live/hls", s.addr);
    let _publisher = ffmpeg_publish(&live_ts(), &["-re"], "mpegts", &[], &url);
    wait_for(&s, "hls", "two HLS segments", |d| {
        d["hls_segments"].as_u64() >= Some(2)
    });
    let playlist = format!(
        "https://localhost:{}/live/hls/index.m3u8",
        s.https[0].port()
    );
    let (body, status) = curl(s.https[0], &ca, "/live/hls/index.m3u8", &["--http2"]);
    assert_eq!(status, "2 200");
    assert!(String::from_utf8_lossy(&body).contains("#EXTINF"));
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-tls_verify", "1", "-ca_file"])
        .arg(&ca.ca)
        .args(["-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(&playlist)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("h264") && text.contains("aac"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ffmpeg_publishes_and_plays_over_rtmps() {
    let (s, _ca) = https_server(|_| {});
    let rtmps = s.rtmps.unwrap();
    let url = format!("rtmps://localhost:{}/live/rtmps", rtmps.port());
    let _publisher = ffmpeg_publish(&common::fixtures::rtmp_mp4(), &["-re"], "flv", &[], &url);
    wait_for(&s, "rtmps", "live", |d| d["state"] == "live");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("played.flv");
    let (ok, err) = Proc::spawn(
        Command::new("ffmpeg")
            .args([
                "-v", "error", "-nostdin", "-i", &url, "-t", "2", "-c", "copy", "-y",
            ])
            .arg(&out),
    )
    .wait(Duration::from_secs(20));
    assert!(ok, "ffmpeg played rtmps: {err}");
    assert_eq!(common::codecs(out.to_str().unwrap()), ["aac", "h264"]);
}

#[test]
fn plain_http_redirects_to_https_and_https_answers_carry_hsts() {
    let (s, ca) = https_server(|t| {
        t.redirect_http = true;
        t.hsts = Some(Duration::from_secs(31_536_000));
    });
    let r = s.get("/videos/clip.ts?x=1", &[]);
    assert_eq!(r.status, 308);
    let to = format!("https://127.0.0.1:{}/videos/clip.ts?x=1", s.https[0].port());
    assert_eq!(r.header("location"), Some(to.as_str()));
    assert_eq!(
        s.get("/healthz", &[]).status,
        200,
        "health checks are not redirected"
    );
    let mut tls = connect(s.https[0], &ca.ca, &[b"http/1.1"]);
    let r = get_on(&mut tls, "/healthz");
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
}

#[test]
fn a_handshake_that_never_completes_is_dropped_after_the_timeout() {
    let (s, ca) = https_server(|t| t.handshake_timeout = Duration::from_secs(1));
    let mut sock = TcpStream::connect(s.https[0]).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut b = [0u8; 64];
    let closed = matches!(sock.read(&mut b), Ok(0) | Err(_));
    assert!(
        closed && started.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        started.elapsed()
    );
    let (metrics, _) = curl(s.https[0], &ca, "/metrics", &[]);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("zerocast_tls_handshakes_total{result=\"timed_out\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_client_speaking_plain_http_to_the_tls_port_is_closed_and_others_are_served() {
    let (s, ca) = https_server(|_| {});
    let mut sock = TcpStream::connect(s.https[0]).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = sock.read_to_end(&mut got);
    // A TLS alert record (type 21) at most; never an HTTP answer.
    assert!(got.is_empty() || got[0] == 21, "{got:?}");
    let (_, status) = curl(s.https[0], &ca, "/healthz", &[]);
    assert_eq!(status, "2 200");
}

#[test]
fn a_thousand_stalled_handshakes_do_not_keep_others_out() {
    let (s, ca) = https_server(|t| t.handshake_timeout = Duration::from_secs(3));
    // Each sends the start of a ClientHello record and stops.
    let stalled: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut c = TcpStream::connect(s.https[0]).unwrap();
            c.write_all(&[22, 3, 1, 0x02, 0x00, 1, 0, 1]).unwrap();
            c
        })
        .collect();
    let started = Instant::now();
    let mut tls = connect(s.https[0], &ca.ca, &[b"http/1.1"]);
    assert_eq!(get_on(&mut tls, "/healthz").status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "served after {:?}",
        started.elapsed()
    );
    // And they are all let go once their time is up.
    wait_until(
        "the stalled handshakes timed out",
        Duration::from_secs(20),
        || {
            let m = get_on(&mut tls, "/metrics");
            String::from_utf8_lossy(&m.body)
                .contains("zerocast_tls_handshakes_total{result=\"timed_out\"} 1000")
        },
    );
    drop(stalled);
}

/// The serial a fresh handshake sees on the server's HTTPS port.
fn served_serial(s: &Served, ca: &TestCa) -> String {
    serial(https_addr(s), &ca.ca)
}

fn https_addr(s: &Served) -> SocketAddr {
    let logged = || s.log_lines("HTTPS (HTTP/2").pop();
    wait_until("the HTTPS log line", Duration::from_secs(10), || {
        logged().is_some()
    });
    let line = logged().unwrap();
    let at = line.find("https://").unwrap() + 8;
    line[at..].split('/').next().unwrap().parse().unwrap()
}

/// `zerocast serve` with HTTPS on a free port, certificate files at `cert`/`key`.
fn served(cert: &Path, key: &Path) -> Served {
    let tls_listen = format!("127.0.0.1:{}", common::spawned::free_port());
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    Served::start(
        None,
        &["--tls-listen", &tls_listen, "--tls-cert", c, "--tls-key", k],
    )
}

fn hangup(s: &Served) {
    let pid = s.child.id() as libc::pid_t;
    // SAFETY: kill(2) on the child's pid, which is alive (the test holds its handle).
    unsafe { libc::kill(pid, libc::SIGHUP) };
}

/// Copies a certificate pair over the files the server reads.
fn install(
    from: &(std::path::PathBuf, std::path::PathBuf),
    to: &Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (c, k) = (to.join("cert.pem"), to.join("key.pem"));
    std::fs::copy(&from.0, &c).unwrap();
    std::fs::copy(&from.1, &k).unwrap();
    (c, k)
}

#[test]
fn sighup_reloads_the_certificate_while_a_connection_stays_up() {
    let mut ca = TestCa::new();
    let (first, second) = (ca.issue(), ca.issue());
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = install(&first, dir.path());
    let mut s = served(&cert, &key);
    assert_eq!(served_serial(&s, &ca), "serial=1001");
    let mut kept = connect(https_addr(&s), &ca.ca, &[b"http/1.1"]);
    assert_eq!(get_on(&mut kept, "/healthz").status, 200);
    // Written in place (a watcher would see it too; the signal must not wait for it).
    std::fs::write(&key, std::fs::read(&second.1).unwrap()).unwrap();
    std::fs::write(&cert, std::fs::read(&second.0).unwrap()).unwrap();
    hangup(&s);
    wait_until(
        "the new certificate is served",
        Duration::from_secs(10),
        || served_serial(&s, &ca) == "serial=1002",
    );
    assert_eq!(
        get_on(&mut kept, "/healthz").status,
        200,
        "the old connection still works"
    );
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "SIGHUP did not end the server"
    );
    s.child.kill().unwrap();
}

#[test]
fn a_bad_new_certificate_is_refused_and_the_old_one_stays() {
    let mut ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = install(&ca.issue(), dir.path());
    let mut s = served(&cert, &key);
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    hangup(&s);
    wait_until("the refusal is logged", Duration::from_secs(10), || {
        !s.log_lines("TLS certificate reload refused").is_empty()
    });
    let line = s.log_lines("TLS certificate reload refused").pop().unwrap();
    assert!(line.contains("cert.pem"), "names the file: {line}");
    assert_eq!(served_serial(&s, &ca), "serial=1001");
    s.child.kill().unwrap();
}

#[test]
fn a_certificate_replaced_on_disk_is_taken_without_a_signal() {
    let mut ca = TestCa::new();
    let (first, second) = (ca.issue(), ca.issue());
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = install(&first, dir.path());
    let mut s = served(&cert, &key);
    // As certbot does: new files renamed over the old ones.
    let (c2, k2) = (dir.path().join("c.new"), dir.path().join("k.new"));
    std::fs::copy(&second.0, &c2).unwrap();
    std::fs::copy(&second.1, &k2).unwrap();
    std::fs::rename(&k2, &key).unwrap();
    std::fs::rename(&c2, &cert).unwrap();
    wait_until(
        "the new certificate is served",
        Duration::from_secs(15),
        || served_serial(&s, &ca) == "serial=1002",
    );
    s.child.kill().unwrap();
}

#[test]
fn a_malformed_certificate_at_start_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, "hello").unwrap();
    std::fs::write(&key, "hello").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zerocast"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rtmp-listen",
            "off",
            "--tls-listen",
            "127.0.0.1:0",
        ])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cert.pem: no PEM certificate in it"), "{err}");
}

#[test]
fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let mut ca = TestCa::new();
    let (cert, key) = ca.issue();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    // The idle limit is the header-read timeout, as for HTTP/1.1 keep-alive.
    let config = server::Config {
        tls: Some(TlsConfig::new(vec![any], cert, key)),
        header_read_timeout: Duration::from_secs(1),
        ..server::Config::default()
    };
    let empty = server::Library::from_static(&[], std::time::SystemTime::now());
    let s = TestServer::start_with(config, empty);
    let mut tls = connect(s.https[0], &ca.ca, &[b"h2"]);
    // The client preface and an empty SETTINGS frame, then nothing.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    tls.flush().unwrap();
    // Read frames as a client does: acknowledge SETTINGS and PINGs, note each frame's type.
    let started = Instant::now();
    let (mut got, mut types) = (Vec::new(), Vec::new());
    let mut b = [0u8; 1024];
    loop {
        match tls.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
        while got.len() >= 9 {
            let len = (got[0] as usize) << 16 | (got[1] as usize) << 8 | got[2] as usize;
            if got.len() < 9 + len {
                break;
            }
            let (kind, flags) = (got[3], got[4]);
            types.push(kind);
            if kind == 4 && flags & 1 == 0 {
                tls.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).unwrap();
            }
            if kind == 6 && flags & 1 == 0 {
                let mut ack = vec![0, 0, 8, 6, 1, 0, 0, 0, 0];
                ack.extend_from_slice(&got[9..17]);
                tls.write_all(&ack).unwrap();
            }
            tls.flush().unwrap();
            got.drain(..9 + len);
        }
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    // A GOAWAY frame (type 7) came before the close.
    assert!(types.contains(&7), "frames: {types:?}");
}

#[test]
fn an_http2_viewer_and_playlist_need_their_jwt_as_over_http_1_1() {
    use server::auth::{Credential, Keys, Rule, Rules};
    let secret = b"a test secret of at least 32 bytes!!";
    let mut ca = TestCa::new();
    let (cert, key) = ca.issue();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = server::Config {
        tls: Some(TlsConfig::new(vec![any], cert, key)),
        auth: Rules {
            rules: vec![Rule {
                streams: "*".into(),
                publish: vec![Credential::Key],
                read: vec![Credential::Jwt],
            }],
            jwt: Some(std::sync::Arc::new(
                Keys::new(Some(secret), &[], 5).unwrap(),
            )),
            jwks: None,
        },
        ..server::Config::default()
    };
    let s = TestServer::start_with(
        config,
        server::Library::from_static(&[], std::time::SystemTime::now()),
    );
    let _publisher = ffmpeg_publish(&live_ts(), &["-re"], "mpegts", &[], &s.url("/live/h2"));
    wait_for(&s, "h2", "a segment", |d| {
        d["hls_segments"].as_u64() >= Some(1)
    });
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let claims = serde_json::json!({"action": "read", "stream": "h2", "exp": exp});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap();
    let (_, status) = curl(s.https[0], &ca, "/live/h2.ts", &["--http2"]);
    assert_eq!(status, "2 401");
    let (_, status) = curl(s.https[0], &ca, "/live/h2/index.m3u8", &["--http2"]);
    assert_eq!(status, "2 401");
    let (body, status) = curl(
        s.https[0],
        &ca,
        &format!("/live/h2/index.m3u8?jwt={token}"),
        &["--http2"],
    );
    assert_eq!(status, "2 200");
    assert!(String::from_utf8_lossy(&body).contains(&format!("?jwt={token}")));
    let (body, status) = curl(
        s.https[0],
        &ca,
        &format!("/live/h2.ts?jwt={token}"),
        &["--http2", "--max-time", "2"],
    );
    assert_eq!(status, "2 200");
    assert!(body.len() > 188 && body[0] == 0x47, "TS bytes");
}

/// The value of a `/metrics` sample line that starts with `prefix`.
fn metric(s: &TestServer, prefix: &str) -> Option<u64> {
    let m = s.get("/metrics", &[]);
    String::from_utf8_lossy(&m.body)
        .lines()
        .find_map(|l| l.strip_prefix(prefix).map(|v| v.trim().parse().unwrap()))
}

/// A server with `ktls = true`, after a 2 MB range over HTTPS/1.1 (large enough for `sendfile`:
/// `sendfile_min` is 1 MiB) came back whole.
fn ktls_range() -> (TestServer, TestCa) {
    let (s, ca) = https_server(|t| t.ktls = true);
    let (body, status) = curl(
        s.https[0],
        &ca,
        "/videos/ntsc-moov-at-end.mp4",
        &["--http1.1", "-r", "0-1999999"],
    );
    assert_eq!(status, "1.1 206");
    assert_eq!(body, demo_bytes("ntsc-moov-at-end.mp4")[..2_000_000]);
    (s, ca)
}

#[test]
fn with_ktls_asked_for_a_kernel_without_the_tls_ulp_serves_from_user_space() {
    if server::tls::kernel_tls_available() {
        eprintln!("SKIPPED: this kernel offers the tls ULP; the kTLS test below runs instead");
        return;
    }
    let (s, _ca) = ktls_range();
    assert!(metric(&s, "zerocast_tls_connections_total{path=\"userspace\"}") >= Some(1));
    assert_eq!(
        metric(&s, "zerocast_tls_connections_total{path=\"ktls\"}"),
        Some(0)
    );
    assert_eq!(
        metric(&s, "zerocast_tls_encryption_path{path=\"userspace\"}"),
        Some(1)
    );
}

#[test]
fn with_ktls_the_kernel_encrypts_ranges_sent_with_sendfile() {
    if !server::tls::kernel_tls_available() {
        eprintln!(
            "SKIPPED: this kernel offers no tls ULP (/proc/sys/net/ipv4/tcp_available_ulp); \
             run `modprobe tls` where the module exists to test the kTLS path"
        );
        return;
    }
    let (s, ca) = ktls_range();
    let (_, status) = curl(s.https[0], &ca, "/healthz", &["--http1.1"]);
    assert_eq!(status, "1.1 200");
    assert!(metric(&s, "zerocast_tls_connections_total{path=\"ktls\"}") >= Some(2));
    assert_eq!(
        metric(&s, "zerocast_tls_connections_total{path=\"ktls_failed\"}"),
        Some(0)
    );
}
