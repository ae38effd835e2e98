//! TLS certificates reloaded without a restart (issue 12, part 4): `zerocast serve` as a
//! process; SIGHUP and changed files bring a new certificate to new handshakes while connections
//! stay up; a bad file is refused and the old certificate stays; a bad file at start is a clear
//! error. openssl s_client reads the serial number a handshake sees.

mod common;

use common::live::wait_until;
use common::spawned::Served;
use common::tls::{connect, get_on, serial, TestCa};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

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
