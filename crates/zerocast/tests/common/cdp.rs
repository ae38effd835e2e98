//! Headless Chromium driven over the Chrome DevTools Protocol, for tests of pages that zerocast
//! serves itself (the page at `/`): evaluate JavaScript in the page, type into it, resize the
//! viewport, take screenshots. The protocol's JSON goes over a WebSocket (tungstenite).

use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tungstenite::{Message, WebSocket};

/// A Chromium with one page, and the DevTools connection to that page.
pub struct Devtools {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    child: Child,
    _profile: tempfile::TempDir,
}

impl Devtools {
    /// Starts Chromium on `url` (about:blank first, so nothing runs before the connection).
    pub fn open(url: &str) -> Devtools {
        super::require("chromium");
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new("chromium")
            .args(super::browser::FLAGS)
            .args(["--remote-debugging-port=0", "--window-size=1280,900"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        // Killed when dropped, also when this function panics before the connection is made.
        let mut guard = Killed(Some(child));
        let port = devtools_port(profile.path());
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let targets = json_list(addr);
        let ws_url = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let (ws, _) = tungstenite::client(ws_url.as_str(), sock).expect("devtools websocket");
        let child = guard.0.take().expect("the child");
        let mut d = Devtools {
            ws,
            next_id: 1,
            child,
            _profile: profile,
        };
        d.call("Page.navigate", json!({ "url": url }));
        // Until the page's own document is parsed and its scripts ran (a waiter evaluated in
        // about:blank would die with the navigation).
        let expected = url.split('#').next().unwrap_or(url).to_string();
        let ready = format!(
            "location.href.startsWith({}) && document.readyState !== 'loading'",
            serde_json::to_string(&expected).unwrap()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while d.eval(&ready) != Value::Bool(true) {
            assert!(Instant::now() < deadline, "{url} did not load");
            // The navigation is in flight: the next evaluation runs in the new document.
            std::thread::yield_now();
        }
        d
    }

    /// One protocol command; its `result` (events and other answers in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(Message::text(msg)).expect("devtools send");
        loop {
            let m = self.ws.read().expect("devtools read");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Waits, in the page, until `expression` is true (checked on every animation frame or
    /// 50 ms, at most `limit`); panics with `what` otherwise.
    #[track_caller]
    pub fn wait_for(&mut self, what: &str, limit: Duration, expression: &str) {
        let ms = limit.as_millis();
        let waiter = format!(
            "new Promise((done) => {{ const t0 = Date.now(); const check = () => {{
               let r = false; try {{ r = ({expression}) === true; }} catch (e) {{}}
               if (r) done(true); else if (Date.now() - t0 > {ms}) done(false);
               else setTimeout(check, 50); }}; check(); }})"
        );
        if self.eval(&waiter) != Value::Bool(true) {
            // What the page's videos were doing, for the failure message.
            let videos = self.eval(
                "JSON.stringify([...document.querySelectorAll('video')].map((v) => {
                   const b = v.buffered, r = [];
                   for (let i = 0; i < b.length; i++) r.push([b.start(i), b.end(i)]);
                   return { src: v.currentSrc.slice(0, 60), t: v.currentTime, ready: v.readyState,
                            paused: v.paused, error: v.error && v.error.message,
                            note: v.dataset.error, phase: v.dataset.phase, buffered: r }; }))",
            );
            panic!("{what}: `{expression}` not true within {limit:?}; videos: {videos}");
        }
    }

    /// Types `text` into the focused element, key by key as the protocol inserts text, then
    /// presses Enter.
    pub fn type_and_enter(&mut self, text: &str) {
        self.call("Input.insertText", json!({ "text": text }));
        for kind in ["keyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({ "type": kind, "key": "Enter", "code": "Enter",
                        "windowsVirtualKeyCode": 13, "text": "\r" }),
            );
        }
    }

    /// A viewport of `width`×`height` CSS pixels (`mobile`: a phone's, touch and all).
    pub fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        );
    }

    /// A PNG of the whole page, written to `path`; returns its width and height in pixels.
    pub fn screenshot(&mut self, path: &Path) -> (u32, u32) {
        use base64::Engine as _;
        let r = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, &png).unwrap();
        // IHDR: width and height at bytes 16..24.
        let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
        (be(16), be(20))
    }
}

impl Drop for Devtools {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills a child process when dropped.
struct Killed(Option<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The port Chromium's DevTools listen on, from `DevToolsActivePort` in its profile.
fn devtools_port(profile: &Path) -> u16 {
    let file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(port) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
        {
            return port;
        }
        assert!(
            Instant::now() < deadline,
            "Chromium wrote no DevToolsActivePort"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET /json/list` of the DevTools HTTP server (which keeps the connection open: the body is
/// read by its length).
fn json_list(addr: std::net::SocketAddr) -> Value {
    use std::io::{Read, Write};
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(c, "GET /json/list HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        let n = c.read(&mut b).expect("devtools /json/list");
        assert!(n > 0, "devtools closed before answering");
        raw.extend_from_slice(&b[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("a content-length");
        if raw.len() >= end + 4 + len {
            return serde_json::from_slice(&raw[end + 4..end + 4 + len]).unwrap();
        }
    }
}
