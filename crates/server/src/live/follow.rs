//! The viewer loop of every output: `.ts` and `.flv` over HTTP ([`watch_http`] writes the head),
//! and RTMP players (rtmp.rs hands its socket over once `play` is accepted). A viewer waits on
//! its stream's wake-up channel, takes what is new from its output's ring with
//! `live::Viewer::step` under the read lock, and writes it outside the lock in one `writev`;
//! a socket that takes nothing for the stall timeout ends it (`live::Stall`).

use super::{dvr, rewind, Live, Output, Stream};
use crate::date;
use crate::transport::Transport;
use crate::vectored;
use live::{RateLimit, Stall, Step, Viewer};
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The FLV file header (audio and video) and PreviousTagSize0, once per `.flv` viewer.
pub(super) const FLV_HEADER: &[u8] = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00";

/// Serves one `.ts` or `.flv` viewer over HTTP until the stream ends, the viewer goes, or it is
/// dropped for lagging. `chunked`: HTTP/1.1 chunked framing (HTTP/1.0: until close); `cors`: the
/// CORS header lines for the request's origin (`Cors::lines`).
pub(crate) async fn watch_http(
    sock: &mut Transport,
    stream: Arc<Stream>,
    live: &Live,
    how: Watching,
    cors: &str,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let Watching {
        output,
        chunked,
        start,
    } = how;
    let mut head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {}\r\ncache-control: no-cache, no-store\r\n{cors}{}date: ",
        output.content_type(),
        if chunked {
            "transfer-encoding: chunked\r\n"
        } else {
            "connection: close\r\n"
        }
    )
    .into_bytes();
    date::now(|d| head.extend_from_slice(d));
    head.extend_from_slice(b"\r\n\r\n");
    if output == Output::Flv {
        if chunked {
            head.extend_from_slice(format!("{:x}\r\n", FLV_HEADER.len()).as_bytes());
        }
        head.extend_from_slice(FLV_HEADER);
        if chunked {
            head.extend_from_slice(b"\r\n");
        }
    }
    // Bounded as every write after it: a client that pipelined this request behind a response
    // that filled its socket, and reads nothing, must not hold the connection for ever.
    let write = async {
        sock.write_all(&head).await?;
        sock.flush().await
    };
    tokio::time::timeout(live.config.stall_timeout, write)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the viewer took nothing"))??;
    drop(head);
    follow(sock, stream, live, output, chunked, shutdown, start).await
}

/// What an HTTP viewer watches: the output, whether the body is chunked, and where a DVR
/// viewer starts (`live::dvr`).
#[derive(Debug)]
pub(crate) struct Watching {
    pub output: Output,
    pub chunked: bool,
    pub start: Option<super::dvr::Start>,
}

/// Sets a viewer socket's send buffer (see `LiveConfig::viewer_send_buffer`).
fn viewer_socket(sock: &TcpStream, live: &Live) {
    if live.config.viewer_send_buffer > 0 {
        let _ =
            rustix::net::sockopt::set_socket_send_buffer_size(sock, live.config.viewer_send_buffer);
    }
}

/// Counts a connected viewer while it lives.
pub(super) struct Connected<'a>(pub(super) &'a AtomicI64);

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Writes a stream's units of one output to a viewer, from the latest keyframe (or the DVR
/// keyframe `start`, `live::dvr`) on, until the stream ends or the viewer goes or is dropped.
/// `chunked`: HTTP chunked framing per batch.
pub(crate) async fn follow(
    sock: &mut Transport,
    stream: Arc<Stream>,
    live: &Live,
    output: Output,
    chunked: bool,
    mut shutdown: watch::Receiver<bool>,
    mut start: Option<super::dvr::Start>,
) -> io::Result<()> {
    viewer_socket(sock.tcp(), live);
    let stats = &stream.stats;
    stats.viewers[output as usize].fetch_add(1, Relaxed);
    stats.viewers_total.fetch_add(1, Relaxed);
    let _connected = Connected(&stats.viewers[output as usize]);
    let policy = live.config.viewer;
    let mut rx = stream.subscribe(output);
    // The control API's "drop viewers".
    let mut drops = stream.drops();
    let mut viewer = Viewer::default();
    if let Some(start) = start.take_if(|s| s.convert.is_some()) {
        // A DVR viewer before its ring (`.flv`, `.mp4`; `.ts` of a stream recorded as fMP4):
        // another format converted first (rewind.rs).
        let mut to = Socket {
            sock: &mut *sock,
            chunked,
            live,
            stream: &stream,
            limit: RateLimit::new(VIEWER_INPUT_BITS_PER_SECOND, VIEWER_INPUT_BURST, live.now()),
            input: 0,
        };
        let caught = Box::pin(rewind::catch_up(
            &stream,
            live,
            output,
            start,
            &mut to,
            &mut drops,
            &mut shutdown,
        ))
        .await;
        match caught {
            rewind::Caught::Up(seq) => viewer = Viewer::after(seq),
            rewind::Caught::Done => {
                // The stream ended or the server stops: the body ends cleanly.
                if chunked && (stream.read().lifecycle.is_ended() || *shutdown.borrow()) {
                    last_chunk(sock, live).await?;
                }
                return Ok(());
            }
        }
    }
    if let Some(mut start) = start {
        // A DVR start from the recording: its bytes first, a slice per write; then more of it
        // for as long as the ring no longer holds where they end (a viewer reading in real
        // time takes as long to get them as they play for).
        let continuing = !start.prefix.is_empty();
        loop {
            for (i, p) in start.prefix.iter().enumerate() {
                start.read_in(i, p.len()).await;
                write_batch(sock, std::slice::from_ref(p), chunked, live, &stream).await?;
            }
            // Dropped by the control API, or the server stops: not another stretch.
            if drops.has_changed().unwrap_or(true) || *shutdown.borrow() {
                return Ok(());
            }
            let more = start.more.take();
            match more.as_ref().and_then(|m| m.next(start.seq)) {
                Some(next) if continuing && !next.prefix.is_empty() => {
                    start = dvr::Start { more, ..next };
                }
                _ => break,
            }
        }
        viewer = if continuing {
            Viewer::continuing_at(start.seq)
        } else {
            Viewer::starting_at(start.seq)
        };
    }
    let input_limit = RateLimit::new(VIEWER_INPUT_BITS_PER_SECOND, VIEWER_INPUT_BURST, live.now());
    let mut input: u64 = 0;
    loop {
        if drops.has_changed().unwrap_or(true) {
            return Ok(());
        }
        rx.borrow_and_update();
        let now = live.now();
        let (step, ended, lag) = {
            let inner = stream.read();
            let ended = inner.lifecycle.is_ended();
            match inner.ring(output) {
                Some(ring) => (viewer.step(ring, now, &policy), ended, viewer.lag(ring)),
                None => (Step::Wait, ended, 0),
            }
        };
        match step {
            Step::Send { parts, skipped } => {
                if skipped {
                    stats.skips.fetch_add(1, Relaxed);
                    log_skip(&stream, now, viewer.total_skips);
                }
                stats.max_lag_units.fetch_max(lag, Relaxed);
                write_batch(sock, &parts, chunked, live, &stream).await?;
            }
            Step::Disconnect => {
                stats.slow_disconnects.fetch_add(1, Relaxed);
                tracing::info!(stream = %stream.name, skips = viewer.total_skips, "viewer keeps falling behind; disconnected");
                return Ok(());
            }
            Step::Wait if ended => {
                if chunked {
                    last_chunk(sock, live).await?;
                }
                return Ok(());
            }
            Step::Wait => {
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return Ok(()) },
                    _ = drops.changed() => return Ok(()),
                    why = closed(sock, live, &input_limit, &mut input) => {
                        if why == Input::TooMuch {
                            tracing::info!(stream = %stream.name, bytes = input, "viewer sent more than a viewer may; disconnected");
                        }
                        return Ok(());
                    }
                    _ = shutdown.changed() => {
                        if chunked {
                            last_chunk(sock, live).await?;
                        }
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// An HTTP/1.1 viewer's socket, for rewind.rs.
struct Socket<'a> {
    sock: &'a mut Transport,
    chunked: bool,
    live: &'a Live,
    stream: &'a Stream,
    /// What the viewer may send, and has sent (see [`closed`]).
    limit: RateLimit,
    input: u64,
}

impl rewind::Sink for Socket<'_> {
    async fn send(&mut self, parts: Vec<bytes::Bytes>) -> bool {
        write_batch(self.sock, &parts, self.chunked, self.live, self.stream)
            .await
            .is_ok()
    }

    async fn gone(&mut self) {
        closed(self.sock, self.live, &self.limit, &mut self.input).await;
    }
}

/// Writes `parts` in one vectored write (one chunk when `chunked`); a viewer whose socket takes
/// nothing for the stall timeout is disconnected.
async fn write_batch(
    sock: &mut Transport,
    parts: &[bytes::Bytes],
    chunked: bool,
    live: &Live,
    stream: &Stream,
) -> io::Result<()> {
    let stats = &stream.stats;
    let n: usize = parts.iter().map(|p| p.len()).sum();
    let mut size = [0u8; 20];
    let size = chunk_size_line(n, &mut size);
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len() + 2);
    if chunked {
        slices.push(IoSlice::new(size));
    }
    slices.extend(parts.iter().map(|p| IoSlice::new(p)));
    if chunked {
        slices.push(IoSlice::new(b"\r\n"));
    }
    let mut stall = Stall::new(live.config.stall_timeout, live.now());
    let progress = |n: usize| {
        let now = live.now();
        stall.wrote(n, now);
        Some(live.instant(stall.deadline()))
    };
    match vectored::write_all(sock, &mut slices, progress).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            stats.stalled_disconnects.fetch_add(1, Relaxed);
            tracing::info!(stream = %stream.name, "viewer took nothing for {:?}; disconnected", live.config.stall_timeout);
            return Err(e);
        }
        Err(e) => return Err(e),
    }
    stats.bytes_out.fetch_add(n as u64, Relaxed);
    Ok(())
}

/// Ends a chunked body; a viewer whose socket takes nothing for the stall timeout is not waited
/// for.
async fn last_chunk(sock: &mut Transport, live: &Live) -> io::Result<()> {
    let write = async {
        sock.write_all(b"0\r\n\r\n").await?;
        sock.flush().await
    };
    match tokio::time::timeout(live.config.stall_timeout, write).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the viewer took nothing",
        )),
    }
}

/// What a viewer may send after its request: a burst of this much, then this rate. An HTTP
/// viewer has nothing to send; an RTMP player sends acknowledgements and pings (a few bytes per
/// megabyte watched). More than this ends the connection.
const VIEWER_INPUT_BURST: Duration = Duration::from_secs(8);
const VIEWER_INPUT_BITS_PER_SECOND: u64 = 64 * 1024;
/// Most bytes discarded per wake-up before the task yields to the others on its worker.
const VIEWER_INPUT_PER_WAKE: usize = 4096;

/// Why a viewer's own input ended its connection.
#[derive(Debug, PartialEq, Eq)]
enum Input {
    /// It closed its side, or the socket failed.
    Closed,
    /// It sent more than a viewer may.
    TooMuch,
}

/// Resolves when the peer has closed its side or has sent more than a viewer may (see
/// `VIEWER_INPUT_*`). What it sends is discarded; each wake-up reads at most
/// `VIEWER_INPUT_PER_WAKE` bytes and then yields, so a viewer that sends as fast as it can
/// never keeps its worker from the other connections.
async fn closed(sock: &mut Transport, live: &Live, limit: &RateLimit, received: &mut u64) -> Input {
    loop {
        let n = match sock {
            Transport::Plain(_) | Transport::Ktls(_) => {
                let sock = sock.tcp();
                if sock.readable().await.is_err() {
                    return Input::Closed;
                }
                discard(sock)
            }
            // Boxed: only TLS viewers carry its buffer.
            Transport::Tls(_) => Box::pin(discard_tls(sock)).await,
        };
        let Some(n) = n else {
            return Input::Closed;
        };
        *received += n as u64;
        if limit.wait(*received, live.now()).is_some() {
            return Input::TooMuch;
        }
        if n >= VIEWER_INPUT_PER_WAKE {
            tokio::task::yield_now().await;
        }
    }
}

/// Reads and drops what the socket holds, up to `VIEWER_INPUT_PER_WAKE` bytes; `None` when the
/// peer has closed or the socket failed. Not async, so its buffer is on the stack for the call
/// only, not in every viewer's future.
fn discard(sock: &TcpStream) -> Option<usize> {
    let mut b = [0u8; 1024];
    let mut n = 0;
    while n < VIEWER_INPUT_PER_WAKE {
        match sock.try_read(&mut b) {
            Ok(0) => return None,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => return None,
        }
    }
    Some(n)
}

/// [`discard`] through TLS: one read of what the peer sent (decrypted and dropped).
async fn discard_tls(sock: &mut Transport) -> Option<usize> {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 1024];
    match sock.read(&mut b).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// Logs skips at most once a second per stream.
pub(super) fn log_skip(stream: &Stream, now: Duration, viewer_skips: u64) {
    let ms = now.as_millis() as u64;
    let last = stream.stats.last_skip_log.load(Relaxed);
    if ms.saturating_sub(last) >= 1000
        && stream
            .stats
            .last_skip_log
            .compare_exchange(last, ms, Relaxed, Relaxed)
            .is_ok()
    {
        tracing::info!(
            stream = %stream.name,
            total_skips = stream.stats.skips.load(Relaxed),
            viewer_skips,
            "a slow viewer skipped to the newest keyframe"
        );
    }
}

fn chunk_size_line(n: usize, buf: &mut [u8; 20]) -> &[u8] {
    use std::io::Write as _;
    let mut w = &mut buf[..];
    let _ = write!(w, "{n:x}\r\n");
    let left = w.len();
    &buf[..20 - left]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that pipelined its viewer request behind a response that filled its socket,
    /// and reads nothing: the viewer's head is not waited for past the stall timeout.
    #[tokio::test]
    async fn a_viewer_that_takes_nothing_is_let_go_before_its_head_is_written() {
        let config = super::super::LiveConfig {
            stall_timeout: Duration::from_millis(300),
            ..Default::default()
        };
        let live = Arc::new(Live::new(config));
        let peer = "127.0.0.1:1".parse().unwrap();
        let _publish = live.begin_publish("cam", peer).unwrap();
        let stream = live.get("cam").unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (sock, _) = listener.accept().await.unwrap();
        // The socket full: what the client has not read fills its buffer and the server's.
        let filler = vec![0u8; 64 << 10];
        while sock.try_write(&filler).is_ok() {}
        let mut sock = Transport::Plain(sock);
        let how = Watching {
            output: Output::Ts,
            chunked: true,
            start: None,
        };
        let (_stop, shutdown) = watch::channel(false);
        let watched = watch_http(&mut sock, stream, &live, how, "", shutdown);
        let r = tokio::time::timeout(Duration::from_secs(20), watched).await;
        let e = r.expect("let go within the stall timeout").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        drop(client);
    }
}
