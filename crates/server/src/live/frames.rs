//! The viewer loop over HTTP/2 (h2.rs): the same `live::Viewer::step` as follow.rs, each part a
//! body frame (the ring's own `Bytes`, no copy) sent through a short channel to hyper's stream.
//! hyper stops taking frames when the client's flow-control window is full; a viewer whose
//! channel stays full for the stall timeout is dropped, and one that falls out of the ring skips
//! to the newest keyframe, exactly as on HTTP/1.1.

use super::follow::{log_skip, Connected, FLV_HEADER};
use super::{Live, Output, Stream};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use live::{Step, Viewer};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, watch};

/// Frames queued between the viewer loop and hyper (each a slice of a unit, or a whole unit)...
const QUEUED_FRAMES: usize = 64;
/// ...and their bytes (a frame larger than this is queued alone): a client that gives a stream
/// just enough credit not to stall holds no more of the ring's units than this, whatever their
/// size (a `.ts` unit is one ingest read, up to 256 KiB).
const QUEUED_BYTES: usize = 512 << 10;

/// The viewer loop's end of the queue: frames, and room in bytes that the body gives back as
/// hyper takes each.
struct Tx {
    tx: mpsc::Sender<Bytes>,
    room: Arc<tokio::sync::Semaphore>,
    /// Set when the viewer loop ends cleanly (the stream ended, the server stops): the body
    /// ends then; otherwise (dropped, too slow, stalled) it ends with an error, so that hyper
    /// resets the stream (HTTP/2) or closes the connection without the last chunk, and the
    /// player takes it for a cut, not for the end of the broadcast.
    clean: Arc<std::sync::atomic::AtomicBool>,
}

impl Tx {
    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    async fn closed(&self) {
        self.tx.closed().await;
    }
}

/// A viewer loop's queue to hyper's stream: its end, and the body.
fn queue() -> (Tx, Frames) {
    let (tx, rx) = mpsc::channel(QUEUED_FRAMES);
    let room = Arc::new(tokio::sync::Semaphore::new(QUEUED_BYTES));
    let clean = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tx = Tx {
        tx,
        room: room.clone(),
        clean: clean.clone(),
    };
    (tx, Frames { rx, room, clean })
}

/// The room a frame of `len` bytes takes in the queue.
fn room_of(len: usize) -> u32 {
    len.clamp(1, QUEUED_BYTES) as u32
}

/// The response of an HTTP/2 viewer: its head, and a body fed by a viewer loop task that ends
/// with the stream, the client, a drop, or `shutdown`.
pub(crate) fn response(
    stream: Arc<Stream>,
    live: Arc<Live>,
    output: Output,
    shutdown: watch::Receiver<bool>,
    start: Option<super::dvr::Start>,
) -> Response<UnsyncBoxBody<Bytes, std::io::Error>> {
    let (tx, frames) = queue();
    live.fanout
        .spawn(feed(tx, stream, live.clone(), output, shutdown, start));
    let mut r = Response::new(frames.boxed_unsync());
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(output.content_type()),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    r
}

/// The body: what the viewer loop sends; each frame taken gives its room back.
struct Frames {
    rx: mpsc::Receiver<Bytes>,
    room: Arc<tokio::sync::Semaphore>,
    clean: Arc<std::sync::atomic::AtomicBool>,
}

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx.poll_recv(cx).map(|b| match b {
            Some(b) => {
                self.room.add_permits(room_of(b.len()) as usize);
                Some(Ok(Frame::data(b)))
            }
            None if self.clean.load(Relaxed) => None,
            None => Some(Err(std::io::Error::other("the viewer was cut off"))),
        })
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        // A loop waiting for room learns at once that nobody will take its frame.
        self.room.close();
    }
}

/// Sends one frame once the queue has room for it; `false`: the viewer is gone, or took
/// nothing for the stall timeout.
async fn send(tx: &Tx, b: Bytes, live: &Live) -> bool {
    queue_frame(tx, b, live.config.stall_timeout).await
}

async fn queue_frame(tx: &Tx, b: Bytes, stall: std::time::Duration) -> bool {
    let queued = async {
        let room = tx.room.acquire_many(room_of(b.len())).await.ok()?;
        room.forget();
        tx.tx.send(b).await.ok()
    };
    matches!(tokio::time::timeout(stall, queued).await, Ok(Some(())))
}

/// An HTTP/2 viewer's body, for rewind.rs.
struct Body<'a> {
    tx: &'a Tx,
    live: &'a Live,
    stream: &'a Stream,
}

impl super::rewind::Sink for Body<'_> {
    async fn send(&mut self, parts: Vec<Bytes>) -> bool {
        for p in parts {
            let n = p.len() as u64;
            if !send(self.tx, p, self.live).await {
                if !self.tx.is_closed() {
                    self.stream.stats.stalled_disconnects.fetch_add(1, Relaxed);
                }
                return false;
            }
            self.stream.stats.bytes_out.fetch_add(n, Relaxed);
        }
        true
    }

    async fn gone(&mut self) {
        self.tx.closed().await;
    }
}

async fn feed(
    tx: Tx,
    stream: Arc<Stream>,
    live: Arc<Live>,
    output: Output,
    shutdown: watch::Receiver<bool>,
    start: Option<super::dvr::Start>,
) {
    let stopping = shutdown.clone();
    let clean = watch_stream(&tx, &stream, &live, output, shutdown, start).await;
    let ended = stream.read().lifecycle.is_ended();
    if clean || ended || *stopping.borrow() {
        tx.clean.store(true, Relaxed);
    }
}

/// The viewer loop; `true`: it ended cleanly (the stream ended, the server stops).
async fn watch_stream(
    tx: &Tx,
    stream: &Arc<Stream>,
    live: &Arc<Live>,
    output: Output,
    mut shutdown: watch::Receiver<bool>,
    mut start: Option<super::dvr::Start>,
) -> bool {
    let stats = &stream.stats;
    stats.viewers[output as usize].fetch_add(1, Relaxed);
    stats.viewers_total.fetch_add(1, Relaxed);
    let _connected = Connected(&stats.viewers[output as usize]);
    if output == Output::Flv && !send(tx, Bytes::from_static(FLV_HEADER), live).await {
        return false;
    }
    let policy = live.config.viewer;
    let mut rx = stream.subscribe(output);
    let mut drops = stream.drops();
    let mut viewer = Viewer::default();
    if let Some(start) = start.take_if(|s| s.convert.is_some()) {
        // A DVR viewer before its ring (`.flv`, `.mp4`; `.ts` of a stream recorded as fMP4):
        // another format converted first (rewind.rs).
        let mut to = Body { tx, live, stream };
        let caught = Box::pin(super::rewind::catch_up(
            stream,
            live,
            output,
            start,
            &mut to,
            &mut drops,
            &mut shutdown,
        ))
        .await;
        match caught {
            super::rewind::Caught::Up(seq) => viewer = Viewer::after(seq),
            // (The caller tells a stream that ended, or a stop, from a cut.)
            super::rewind::Caught::Done => return false,
        }
    }
    if let Some(mut start) = start {
        // A DVR start from the recording: its bytes first, then more of it while the ring no
        // longer holds where they end (as in follow.rs).
        let continuing = !start.prefix.is_empty();
        loop {
            for (i, p) in std::mem::take(&mut start.prefix).into_iter().enumerate() {
                start.read_in(i, p.len()).await;
                let n = p.len() as u64;
                if !send(tx, p, live).await {
                    return false;
                }
                stats.bytes_out.fetch_add(n, Relaxed);
            }
            if drops.has_changed().unwrap_or(true) {
                return false;
            }
            if *shutdown.borrow() {
                return true;
            }
            let more = start.more.take();
            match more.as_ref().and_then(|m| m.next(start.seq)) {
                Some(next) if continuing && !next.prefix.is_empty() => {
                    start = super::dvr::Start { more, ..next };
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
    loop {
        if drops.has_changed().unwrap_or(true) {
            return false;
        }
        rx.borrow_and_update();
        let now = live.now();
        let (step, ended) = {
            let inner = stream.read();
            let ended = inner.lifecycle.is_ended();
            match inner.ring(output) {
                Some(ring) => (viewer.step(ring, now, &policy), ended),
                None => (Step::Wait, ended),
            }
        };
        match step {
            Step::Send { parts, skipped } => {
                if skipped {
                    stats.skips.fetch_add(1, Relaxed);
                    log_skip(stream, now, viewer.total_skips);
                }
                for p in parts {
                    let n = p.len() as u64;
                    if !send(tx, p, live).await {
                        if !tx.is_closed() {
                            stats.stalled_disconnects.fetch_add(1, Relaxed);
                        }
                        return false;
                    }
                    stats.bytes_out.fetch_add(n, Relaxed);
                }
            }
            Step::Disconnect => {
                stats.slow_disconnects.fetch_add(1, Relaxed);
                return false;
            }
            Step::Wait if ended => return true,
            Step::Wait => {
                tokio::select! {
                    // (The stream gone: it ended.)
                    r = rx.changed() => if r.is_err() { return true },
                    _ = drops.changed() => return false,
                    () = tx.closed() => return false,
                    _ = shutdown.changed() => return true,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A client that takes nothing: the queue to hyper holds at most [`QUEUED_BYTES`] of the
    /// ring's units (a frame past them waits, and times out as a stall); each frame hyper takes
    /// makes room again; a body gone ends the wait at once.
    #[tokio::test]
    async fn the_queue_to_hyper_holds_at_most_its_bytes() {
        let (tx, mut frames) = queue();
        let unit = || Bytes::from(vec![0u8; 256 << 10]);
        let stall = Duration::from_millis(200);
        assert!(queue_frame(&tx, unit(), stall).await);
        assert!(queue_frame(&tx, unit(), stall).await);
        assert!(
            !queue_frame(&tx, Bytes::from_static(b"x"), stall).await,
            "full"
        );
        let taken =
            std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut frames), cx)).await;
        assert_eq!(
            taken.unwrap().unwrap().into_data().unwrap().len(),
            256 << 10
        );
        assert!(queue_frame(&tx, unit(), stall).await, "room for one more");
        drop(frames);
        let gone = std::time::Instant::now();
        assert!(!queue_frame(&tx, unit(), Duration::from_secs(60)).await);
        assert!(
            gone.elapsed() < Duration::from_secs(30),
            "not the stall timeout"
        );
    }
}
