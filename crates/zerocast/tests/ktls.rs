//! Kernel TLS (issue 12, part 2), opt-in with `ktls = true`: where the kernel offers the `tls`
//! ULP a range goes out with `sendfile` encrypted by the kernel; where it does not (this
//! project's machines), the fallback to rustls is what is served, and the hand-over itself is
//! driven up to the kernel's refusal. Each test says SKIPPED where it does not apply.

mod common;

use common::live::wait_until;
use common::spawned::Served;
use common::tls::{curl, demo_bytes, https_server, TestCa};
use common::TestServer;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

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

/// Says that a test did not run, where the suite's output shows it: written to the process's
/// standard error directly, which the test harness does not capture (`eprintln!` it does, and
/// shows only for a failing test).
fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED ({}): {why}", module_path!());
}

#[test]
fn with_ktls_asked_for_a_kernel_without_the_tls_ulp_serves_from_user_space() {
    if server::tls::kernel_lists_tls() {
        skipped("this kernel offers the tls ULP; the kTLS test below runs instead");
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
    if !server::tls::kernel_lists_tls() {
        skipped(
            "this kernel offers no tls ULP (/proc/sys/net/ipv4/tcp_available_ulp); \
             run `modprobe tls` where the module exists to test the kTLS path",
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

/// Whether the kernel would load its `tls` module for the server: the module is on disk, and
/// the server (started by this user) may ask for it (the kernel loads a ULP's module only for
/// a process with `CAP_NET_ADMIN`: root here). The hand-over then succeeds.
fn tls_module_loadable() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let on_disk = std::path::Path::new("/lib/modules")
        .join(release.trim())
        .join("kernel/net/tls")
        .exists();
    // SAFETY: geteuid has no preconditions and touches no memory.
    on_disk && unsafe { libc::geteuid() } == 0
}

#[test]
fn the_ktls_hand_over_reaches_the_kernel_after_a_corked_handshake() {
    if server::tls::kernel_lists_tls() {
        skipped("this kernel offers the tls ULP; the end-to-end kTLS test runs instead");
        return;
    }
    if tls_module_loadable() {
        skipped("this kernel has the tls module, which the hand-over would load: `modprobe tls` and run the end-to-end kTLS test instead");
        return;
    }
    // The ULP check is told to pass: the handshake runs corked, rustls is flushed, the keys are
    // extracted, and the kernel (without the module) refuses TCP_ULP: closed and counted.
    let mut ca = TestCa::new();
    let (cert, key) = ca.issue();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zerocast.toml");
    std::fs::write(&config, "ktls = true\n").unwrap();
    let tls_listen = format!("127.0.0.1:{}", common::spawned::free_port());
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let args = [
        "--tls-listen",
        &tls_listen,
        "--tls-cert",
        c,
        "--tls-key",
        k,
        "--config",
        config.to_str().unwrap(),
    ];
    let mut s = Served::start_with_env(None, &args, &[(server::tls::ASSUME_ULP, "1")]);
    let addr: SocketAddr = tls_listen.parse().unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--http1.1", "--max-time", "10", "--cacert"])
        .arg(&ca.ca)
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", addr.port())])
        .arg(format!("https://localhost:{}/healthz", addr.port()))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the connection is closed after the refused hand-over: {} {:?}",
        String::from_utf8_lossy(&out.stdout),
        s.log_lines("")
    );
    wait_until("the refusal is logged", Duration::from_secs(10), || {
        !s.log_lines("kTLS hand-over refused").is_empty()
    });
    let line = s.log_lines("kTLS hand-over refused").pop().unwrap();
    assert!(
        line.contains("TCP_ULP tls"),
        "the keys were extracted; the kernel refused: {line}"
    );
    let m = common::request(s.addr, "GET", "/metrics", &[]);
    let m = String::from_utf8_lossy(&m.body);
    assert!(
        m.contains("zerocast_tls_connections_total{path=\"ktls_failed\"} 1"),
        "{m}"
    );
    s.child.kill().unwrap();
}
