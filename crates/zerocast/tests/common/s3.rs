//! A real S3 server for the tests: moto in server mode (from PyPI; `scripts/test` installs it
//! into `target/moto` when it is not on the PATH), on a port of 127.0.0.1, stopped by its PID.
//! Objects are put with plain HTTP PUTs, as any S3 client's unsigned upload.

use super::spawned::{free_port, Served};
use super::{demo_dir, request, DEMO};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The moto server program: `ZEROCAST_MOTO`, else `target/moto/bin/moto_server`, else the PATH's.
fn program() -> PathBuf {
    if let Some(p) = std::env::var_os("ZEROCAST_MOTO") {
        return p.into();
    }
    let venv = super::repo().join("target/moto/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    super::require("moto_server");
    "moto_server".into()
}

pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        Moto::start_on(free_port())
    }

    /// On `port` (a restart of a stopped one: the same endpoint, nothing stored, as moto keeps
    /// objects in memory).
    pub fn start_on(port: u16) -> Moto {
        let child = Command::new(program())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server");
        let m = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while m.request("GET", "/", b"").0 != 200 {
            assert!(Instant::now() < deadline, "moto did not start on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a server reading this store is given.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = self.request("PUT", &format!("/{bucket}"), b"");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }

    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let (status, body) = self.request("PUT", &format!("/{bucket}/{key}"), bytes);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }

    /// Puts `bytes` over the object `key` (curl, signed: moto refuses an unsigned PUT of a key
    /// it holds).
    pub fn overwrite(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", "test:test"])
            .args(["-X", "PUT", "--data-binary"])
            .arg(format!("@{}", file.path().display()))
            .arg(format!("{}/{bucket}/{key}", self.endpoint()))
            .output()
            .expect("curl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "200",
            "overwrite {key}"
        );
    }

    /// Stops the server (SIGKILL: a store that goes away, mid-request included).
    pub fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }

    /// One request; its status (0 when nothing answered) and body.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, Vec::new());
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        if s.write_all(head.as_bytes())
            .and_then(|()| s.write_all(body))
            .is_err()
        {
            return (0, Vec::new());
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let status = std::str::from_utf8(out.get(9..12).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let at = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(out.len(), |p| p + 4);
        (status, out[at..].to_vec())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const BUCKET: &str = "media";

/// The environment of a server reading a store at `endpoint` (the test credentials), its
/// index kept in `cache`.
pub fn store_env<'a>(endpoint: &'a str, cache: &'a str) -> [(&'static str, &'a str); 5] {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("ZEROCAST_CACHE_DIR", cache),
    ]
}

/// A store holding the demo titles under `videos/`.
pub fn store_with_demo() -> Moto {
    let m = Moto::start();
    m.create_bucket(BUCKET);
    for name in DEMO {
        m.put(BUCKET, &format!("videos/{name}"), &file(name));
    }
    m
}

pub fn file(name: &str) -> Vec<u8> {
    std::fs::read(demo_dir().join(name)).unwrap()
}

/// `zerocast serve` reading `store` (and `extra` arguments), with `config` as its config file
/// and a cache directory of its own (so that no index kept by another test is used).
pub fn serve(store: &Moto, extra: &[&str], config: &str) -> (tempfile::TempDir, Served) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let s = serve_with_cache(store, extra, config, &cache, &dir);
    (dir, s)
}

/// As [`serve`], with `cache` as its cache directory and its config file in `dir`.
pub fn serve_with_cache(
    store: &Moto,
    extra: &[&str],
    config: &str,
    cache: &std::path::Path,
    dir: &tempfile::TempDir,
) -> Served {
    let path = dir.path().join("zerocast.toml");
    std::fs::write(&path, config).unwrap();
    let mut args = vec!["--config", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut env = store.env();
    env.push(("ZEROCAST_CACHE_DIR", cache.to_str().unwrap().to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Served::start_with_env(None, &args, &env)
}

pub fn metric(s: &Served, name: &str) -> u64 {
    let r = request(s.addr, "GET", "/metrics", &[]);
    let text = String::from_utf8(r.body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("zerocast_{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// A library directory holding the demo titles under `local/` (to serve beside a bucket of
/// them: `local/{name}` against `{name}`).
pub fn demo_in_local() -> tempfile::TempDir {
    let lib = tempfile::tempdir().unwrap();
    std::fs::create_dir(lib.path().join("local")).unwrap();
    for name in DEMO {
        std::fs::copy(demo_dir().join(name), lib.path().join("local").join(name)).unwrap();
    }
    lib
}
