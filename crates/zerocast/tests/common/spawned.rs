//! `zerocast serve` as a separate process (the embedded demo library), optionally under a
//! descriptor limit (`prlimit --nofile`), with its log lines collected: for the tests that need
//! the process's own limits, RSS or signals.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// A port on 127.0.0.1 that was free a moment ago (for a process that binds it itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Starts the server with at most `nofile` descriptors (if given) and `extra` arguments;
    /// returns once it listens.
    pub fn start(nofile: Option<u32>, extra: &[&str]) -> Served {
        Served::start_with_env(nofile, extra, &[])
    }

    /// [`Served::start`] with environment variables set for the server.
    pub fn start_with_env(nofile: Option<u32>, extra: &[&str], env: &[(&str, &str)]) -> Served {
        let limits: Vec<String> = nofile
            .map(|n| format!("--nofile={n}:{n}"))
            .into_iter()
            .collect();
        Served::start_under(&limits, extra, env)
    }

    /// [`Served::start_with_env`] under `prlimit` with these limits (`--fsize=N`, ...).
    pub fn start_under(limits: &[String], extra: &[&str], env: &[(&str, &str)]) -> Served {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut cmd = if limits.is_empty() {
            Command::new(env!("CARGO_BIN_EXE_zerocast"))
        } else {
            let mut c = Command::new("prlimit");
            c.args(limits).args(["--", env!("CARGO_BIN_EXE_zerocast")]);
            c
        };
        let mut child = cmd
            .args(["serve", "--listen", &listen, "--rtmp-listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prlimit and zerocast");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("listening") {
                    let _ = tx.send(());
                }
                kept.lock().unwrap().push(line);
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the server started");
        Served {
            child,
            addr: listen.parse().unwrap(),
            log,
        }
    }

    /// Log lines that contain `what`.
    pub fn log_lines(&self, what: &str) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(what)).cloned().collect()
    }

    /// The process's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
