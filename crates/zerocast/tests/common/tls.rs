//! A test certificate authority made with the openssl command line (`scripts/test` installs
//! it): a CA, and leaf certificates for `localhost` and 127.0.0.1 that it signs, so clients
//! check the chain for real (`curl --cacert`, ffmpeg `-ca_file`).

use super::{demo_copy, demo_dir, library, require, TestServer};
use server::tls::TlsConfig;
use std::io::Write;
use std::net::SocketAddr;

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestCa {
    pub dir: tempfile::TempDir,
    /// The CA's certificate: what clients trust.
    pub ca: PathBuf,
    ca_key: PathBuf,
    issued: u32,
}

fn openssl(args: &[&str], dir: &Path) {
    require("openssl");
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=zerocast test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
            dir.path(),
        );
        TestCa {
            ca: dir.path().join("ca.pem"),
            ca_key: dir.path().join("ca.key"),
            dir,
            issued: 0,
        }
    }

    /// A new leaf certificate for localhost and 127.0.0.1 (PEM chain: leaf then CA) and its key.
    /// Each has its own serial number, which clients see (`serial`).
    pub fn issue(&mut self) -> (PathBuf, PathBuf) {
        self.issued += 1;
        let n = self.issued;
        let d = self.dir.path();
        let (key, csr, leaf, chain) = (
            format!("leaf{n}.key"),
            format!("leaf{n}.csr"),
            format!("leaf{n}.pem"),
            format!("chain{n}.pem"),
        );
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
            d,
        );
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        let serial = format!("{:#x}", 0x1000 + n);
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                self.ca_key.to_str().unwrap(),
                "-set_serial",
                &serial,
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-out",
                &leaf,
            ],
            d,
        );
        let mut pem = std::fs::read(d.join(&leaf)).unwrap();
        pem.extend(std::fs::read(&self.ca).unwrap());
        std::fs::write(d.join(&chain), pem).unwrap();
        (d.join(chain), d.join(key))
    }
}

/// The serial number of the certificate a TLS server at `addr` presents now (openssl s_client).
pub fn serial(addr: std::net::SocketAddr, ca: &Path) -> String {
    let connect = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .arg("-CAfile")
        .arg(ca)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&connect.stdout).into_owned();
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = text.find("-----END CERTIFICATE-----").expect("its end") + 25;
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    x509.stdin
        .take()
        .unwrap()
        .write_all(&text.as_bytes()[begin..end])
        .unwrap();
    let out = x509.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A TLS client (rustls, trusting only `ca`) on a blocking socket: for requests written by hand
/// on a connection the test keeps.
pub fn connect(
    addr: std::net::SocketAddr,
    ca: &Path,
    alpn: &[&[u8]],
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = "localhost".try_into().unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// Sends `GET path` with keep-alive on `tls` and reads one response with a `Content-Length`.
pub fn get_on<S: std::io::Read + Write>(tls: &mut S, path: &str) -> super::Resp {
    write!(tls, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    tls.flush().unwrap();
    let mut raw = Vec::new();
    let mut b = [0u8; 16384];
    loop {
        let n = tls.read(&mut b).expect("a response");
        assert!(n > 0, "the connection closed before a whole response");
        raw.extend_from_slice(&b[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if raw.len() >= end + 4 + len {
                return super::parse_response(&raw[..end + 4 + len]);
            }
        }
    }
}

/// The base64 SHA-256 of a certificate's public key (what Chromium's
/// `--ignore-certificate-errors-spki-list` takes: trust exactly this key).
pub fn spki_sha256(cert: &Path) -> String {
    let script = format!(
        "openssl x509 -pubkey -noout -in '{}' | openssl pkey -pubin -outform der \
         | openssl dgst -sha256 -binary | base64",
        cert.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A server on a copy of the demo clips with HTTPS (and RTMPS), its CA, and `edit` applied.
pub fn https_server(edit: impl FnOnce(&mut TlsConfig)) -> (TestServer, TestCa) {
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
pub fn curl(addr: SocketAddr, ca: &TestCa, path: &str, args: &[&str]) -> (Vec<u8>, String) {
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

pub fn demo_bytes(name: &str) -> Vec<u8> {
    std::fs::read(demo_dir().join(name)).unwrap()
}

/// Sends the preface, SETTINGS with INITIAL_WINDOW_SIZE (4) = `window`, `more` bytes of
/// connection credit (a WINDOW_UPDATE on stream 0), then a GET of `path` on stream 1 (HPACK:
/// :method GET, :scheme https, :authority and :path as literals).
pub fn h2_get<T: std::io::Read + Write>(mut tls: T, path: &str, window: u32, more: u32) -> T {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4]);
    out.extend_from_slice(&window.to_be_bytes());
    if more > 0 {
        out.extend_from_slice(&h2_credit(0, more));
    }
    out.extend_from_slice(&h2_get_frame(1, path));
    tls.write_all(&out).unwrap();
    tls.flush().unwrap();
    tls
}

/// A GET of `path` on `stream` (HEADERS with END_STREAM; HPACK: :method GET, :scheme https,
/// :authority and :path as literals).
pub fn h2_get_frame(stream: u32, path: &str) -> Vec<u8> {
    h2_request_frame(stream, "GET", path)
}

/// A `method` request for `path` on `stream`, as [`h2_get_frame`].
pub fn h2_request_frame(stream: u32, method: &str, path: &str) -> Vec<u8> {
    let mut block = match method {
        "GET" => vec![0x82],
        _ => [&[0x42, method.len() as u8][..], method.as_bytes()].concat(),
    };
    block.extend_from_slice(&[0x87, 0x41, 9]);
    block.extend_from_slice(b"localhost");
    block.extend_from_slice(&[0x44, path.len() as u8]);
    block.extend_from_slice(path.as_bytes());
    let mut out = vec![0, 0, block.len() as u8, 1, 5];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(&block);
    out
}

/// A WINDOW_UPDATE giving `stream` (0: the connection) `more` bytes of credit.
pub fn h2_credit(stream: u32, more: u32) -> Vec<u8> {
    let mut out = vec![0, 0, 4, 8, 0];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(&more.to_be_bytes());
    out
}

/// Reads HTTP/2 frames as a client does until `each` returns false or the connection closes:
/// acknowledges SETTINGS and PINGs, and gives each whole frame (type, flags, stream, payload)
/// to `each`, with the connection to answer on.
pub fn h2_frames<T: std::io::Read + Write>(
    tls: &mut T,
    mut each: impl FnMut(&mut T, u8, u8, u32, &[u8]) -> bool,
) {
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match tls.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
        while got.len() >= 9 {
            let len = (got[0] as usize) << 16 | (got[1] as usize) << 8 | got[2] as usize;
            if got.len() < 9 + len {
                break;
            }
            let (kind, flags) = (got[3], got[4]);
            let stream = u32::from_be_bytes([got[5], got[6], got[7], got[8]]) & 0x7fff_ffff;
            if kind == 4 && flags & 1 == 0 {
                tls.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).unwrap();
            }
            if kind == 6 && flags & 1 == 0 {
                let mut ack = vec![0, 0, 8, 6, 1, 0, 0, 0, 0];
                ack.extend_from_slice(&got[9..17]);
                tls.write_all(&ack).unwrap();
            }
            let more = each(tls, kind, flags, stream, &got[9..9 + len]);
            tls.flush().unwrap();
            if !more {
                return;
            }
            got.drain(..9 + len);
        }
    }
}
