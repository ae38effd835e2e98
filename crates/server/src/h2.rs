//! HTTP/2 (HTTPS connections whose ALPN chose `h2`), served by hyper: the JSON API, VOD bytes,
//! live HLS, and live `.ts`/`.flv` viewers (a streaming body, live/frames.rs); the answers are
//! hyper_paths.rs's, as for HTTP/1.1 connections handed over to hyper. Publishing is HTTP/1.1's (clients
//! publish over it; an HTTP/2 publish is refused with a clear 505).
//!
//! A connection with no stream open for `header_read_timeout` is closed gracefully (GOAWAY), as
//! an idle HTTP/1.1 keep-alive connection is; a long download or a live viewer keeps it open.
//! One that has not ended an idle time after its GOAWAY with no stream open is dropped: hyper
//! has no timer on the client's preface, nor on a client that never answers the GOAWAY's PING.
//!
//! A response whose client gives it no flow-control credit for `send_timeout` is reset
//! (RST_STREAM): hyper asks a body for its next frame only when the stream has credit, so a body
//! that gave a frame and has not been asked again since is waiting for the client. The other
//! streams of the connection go on (a browser's paused video among the page's requests); when
//! no body of the connection has moved for `send_timeout`, the connection itself is dropped, as
//! a socket that takes nothing ends an HTTP/1.1 one. Without this, a client that sets its window
//! to 0 would hold up to 100 responses (and the live segments or stored blocks they point to)
//! for as long as it answers PINGs. A body waiting for data (a live stream between frames) is
//! not waiting for credit.
//!
//! A stream is reset by ending the task hyper runs it in ([`StreamExec`]): its `SendStream`
//! dropped, h2 sends `RST_STREAM` (`CANCEL`) and discards what it had queued of it.
//!
//! HTTP/2 bodies go out through hyper's frames, so VOD ranges are written from the mapped
//! `Bytes` (no `sendfile`: TLS in user space needs the bytes anyway); a title mapped from its file
//! on disk is copied first, checked against a file cut short under it (`truncated::Copied`).
//!
//! A live segment's body (`SendBy`) ends with its last byte as a frame of its own, so that the
//! send limit is checked once the rest has the client's credit (`Tracked::hold`); so does each
//! frame of one streamed while it is written (an LL-HLS part, a DASH segment), whose end is not
//! known until after its last frame.

use crate::error::ConnError;
use crate::h1::handover::Rewind;
use crate::state::State;
use crate::transport::Transport;
use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Most streams a client may open at once on one connection (RFC 9113 advises no fewer than
/// 100): with [`SEND_BUFFER`] and the bodies' own frames, what a client that reads nothing can
/// make one connection hold.
const MAX_STREAMS: u32 = 100;

/// What hyper buffers of one stream's response beyond what the socket takes (its default is
/// 400 KiB: 100 MB a connection of streams whose client reads nothing).
const SEND_BUFFER: usize = 64 << 10;

/// The flow-control windows the server gives clients: no request it serves over HTTP/2 has a
/// body (publishing is HTTP/1.1's), so a client cannot make it hold more than this of one.
const RECEIVE_WINDOW: (u32, u32) = (64 << 10, 16 << 10);

/// The largest data frame a body gives hyper at once (bodies of mapped titles and stored
/// blocks come in pieces of megabytes: sent in these, so that a body not asked for its next
/// frame is one whose stream has no credit, not one whose last frame is still going out).
const MAX_FRAME: usize = 128 << 10;

/// Whether the handshake chose HTTP/2.
pub(crate) fn chosen(stream: &Transport) -> bool {
    match stream {
        Transport::Tls(s) => s.get_ref().1.alpn_protocol() == Some(b"h2"),
        Transport::Plain(_) | Transport::Ktls(_) => false,
    }
}

use crate::hyper_paths::Body;

/// Serves an HTTP/2 connection until it ends or the server shuts down.
pub(crate) async fn connection(
    stream: Transport,
    peer: std::net::SocketAddr,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnError> {
    let io = TokioIo::new(Rewind::new(
        stream,
        Bytes::new(),
        state.config().send_timeout,
    ));
    // Streams open now, and when the last one ended (ms since `start`): a connection with
    // none open for the idle time is closed.
    let streams = Arc::new(Streams::new());
    let (st, stop, s2) = (state.clone(), shutdown.clone(), streams.clone());
    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let open = Open::new(s2.clone());
        let (st, stop) = (st.clone(), stop.clone());
        async move {
            // The handle that resets this stream (its task's: [`StreamExec`]).
            let reset = RESET.try_with(Arc::clone).ok();
            let how = crate::hyper_paths::How {
                http2: true,
                secure: true,
            };
            let resp = crate::hyper_paths::answer(&st, req, peer, stop, how).await;
            let by = crate::response::SendBy::of(&resp);
            // The stream counts as open until hyper drops its body (sent, or reset).
            Ok::<_, Infallible>(resp.map(|b| {
                let id = open.0.next_id.fetch_add(1, Relaxed);
                // Until hyper first asks for a frame (at once, when the stream has credit).
                open.0.wait(id, Some(reset.clone()));
                let rest = Bytes::new();
                // A body of a known length (a range, a segment) or with a send limit holds its
                // last byte back; a live viewer's, without an end, needs not: it is watched for
                // as long as it lasts. (An empty body, a 304 or a HEAD, ends at once: nothing
                // to hold.)
                let finite = http_body::Body::size_hint(&b).exact().is_some();
                let hold = (by.is_some() || finite) && !http_body::Body::is_end_stream(&b);
                Tracked {
                    body: b,
                    open,
                    id,
                    reset,
                    rest,
                    by,
                    hold,
                    last: false,
                }
                .boxed_unsync()
            }))
        }
    });
    let mut b = hyper::server::conn::http2::Builder::new(StreamExec);
    b.timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_send_buf_size(SEND_BUFFER)
        .initial_connection_window_size(RECEIVE_WINDOW.0)
        .initial_stream_window_size(RECEIVE_WINDOW.1)
        .max_header_list_size(32 << 10)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(state.config().send_timeout);
    let conn = b.serve_connection(io, svc);
    tokio::pin!(conn);
    // As HTTP/1.1 keep-alive: no new request for the header-read timeout closes the connection,
    // gracefully (GOAWAY; streams still running, a long download or a live viewer, finish).
    // The watch goes on after the GOAWAY: a stream stalled for credit is still reset (the
    // connection dropped when nothing moves), and a connection with no stream open that has not
    // ended an idle time after it (a client that never sent its preface, or does not answer the
    // GOAWAY's PING and opens streams until it does) is dropped.
    let idle = state.config().header_read_timeout;
    let send_timeout = state.config().send_timeout;
    let mut closing: Option<Instant> = None;
    let result = loop {
        let quiet_until = match closing {
            Some(since) => since.max(streams.quiet_since()) + idle,
            None => streams.quiet_since() + idle,
        };
        let stalled_at = streams
            .waiting_since()
            .map_or(quiet_until, |since| since + send_timeout);
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = shutdown.changed(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            // A body began to wait: the deadline may be sooner than the one slept to.
            () = streams.waits.notified() => {}
            () = tokio::time::sleep_until(quiet_until.min(stalled_at)) => {
                let now = Instant::now();
                if streams
                    .waiting_since()
                    .is_some_and(|since| since + send_timeout <= now)
                {
                    if streams.moved() + send_timeout <= now {
                        // Nothing moves: dropped, not shut down gracefully (the stalled
                        // streams would never end).
                        return Err(ConnError::Timeout(
                            "an HTTP/2 client gave a response no flow-control credit",
                        ));
                    }
                    // Other streams move: only the stalled ones are reset.
                    streams.reset_stalled(now.checked_sub(send_timeout).unwrap_or(now));
                    continue;
                }
                let quiet = streams.open.load(Relaxed) == 0;
                match closing {
                    Some(since) if quiet && since.max(streams.quiet_since()) + idle <= now => {
                        return Err(ConnError::Timeout(
                            "an HTTP/2 connection did not end after its GOAWAY",
                        ));
                    }
                    None if quiet && streams.quiet_since() + idle <= now => {
                        conn.as_mut().graceful_shutdown();
                        closing = Some(now);
                    }
                    _ => {}
                }
            }
        }
    };
    result.map_err(|e| ConnError::Io(std::io::Error::other(e)))
}

/// The streams of one connection: how many are open, and when the last one ended.
struct Streams {
    start: Instant,
    open: AtomicUsize,
    /// Milliseconds since `start` when the last stream ended (or began, while none had ended).
    last: AtomicU64,
    /// The bodies that gave a frame and have not been asked for the next (their stream has no
    /// credit), since when, and what resets their stream: at most one entry per open stream.
    waiting: std::sync::Mutex<Vec<(u64, Instant, Reset)>>,
    /// Milliseconds since `start` when a body last gave a frame or a stream ended.
    moved: AtomicU64,
    next_id: AtomicU64,
    /// Told when no body waited and one does now.
    waits: tokio::sync::Notify,
}

impl Streams {
    /// None open yet, from now.
    fn new() -> Streams {
        Streams {
            start: Instant::now(),
            open: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            waiting: std::sync::Mutex::new(Vec::new()),
            moved: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            waits: tokio::sync::Notify::new(),
        }
    }

    /// Since when the connection has had nothing to do (now, while streams are open).
    fn quiet_since(&self) -> Instant {
        if self.open.load(Relaxed) > 0 {
            return Instant::now();
        }
        self.start + Duration::from_millis(self.last.load(Relaxed))
    }

    /// Since when the body that has waited longest for credit has waited.
    fn waiting_since(&self) -> Option<Instant> {
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.iter().map(|&(_, since, _)| since).min()
    }

    /// Body `id` waits for credit from now (`Some`, with what resets its stream) or no more.
    fn wait(&self, id: u64, waits: Option<Reset>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.retain(|&(i, _, _)| i != id);
        if let Some(reset) = waits {
            if waiting.is_empty() {
                self.waits.notify_one();
            }
            waiting.push((id, Instant::now(), reset));
        }
    }

    /// A body gave a frame, or a stream ended, now.
    fn moving(&self) {
        self.moved
            .store(self.start.elapsed().as_millis() as u64, Relaxed);
    }

    /// When a body last gave a frame.
    fn moved(&self) -> Instant {
        self.start + Duration::from_millis(self.moved.load(Relaxed))
    }

    /// Resets the streams whose bodies have waited for credit since `before` or longer, and
    /// forgets them (their tasks end at their next turn).
    fn reset_stalled(&self, before: Instant) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.retain(|(_, since, reset)| {
            if *since > before {
                return true;
            }
            if let Some(r) = reset {
                r.notify_one();
            }
            false
        });
    }

    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Relaxed);
    }
}

/// What resets one stream: told, the task hyper runs the stream in ends ([`StreamExec`]).
type Reset = Option<Arc<tokio::sync::Notify>>;

tokio::task_local! {
    /// The reset handle of the stream whose task this is.
    static RESET: Arc<tokio::sync::Notify>;
}

/// hyper's executor for the streams of a connection: each runs in a task of its own (as with
/// `TokioExecutor`) that ends when its [`Reset`] handle, which the task's [`RESET`] holds, is
/// told.
#[derive(Clone, Copy)]
struct StreamExec;

impl<F> hyper::rt::Executor<F> for StreamExec
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        let reset = Arc::new(tokio::sync::Notify::new());
        let told = reset.clone();
        tokio::spawn(RESET.scope(reset, async move {
            tokio::select! {
                () = fut => {}
                () = told.notified() => {}
            }
        }));
    }
}

/// One open stream; counts out when dropped.
struct Open(Arc<Streams>);

impl Open {
    fn new(s: Arc<Streams>) -> Open {
        s.open.fetch_add(1, Relaxed);
        s.touch();
        Open(s)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        // A stream that ended (an empty body, a 304 or a HEAD, never gives a frame) moved.
        self.0.moving();
        self.0.touch();
        self.0.open.fetch_sub(1, Relaxed);
    }
}

/// A response body that keeps its stream counted as open, and says when it waits for credit.
struct Tracked {
    body: Body,
    open: Open,
    id: u64,
    /// What resets this body's stream.
    reset: Reset,
    /// What is left of the last data frame, given [`MAX_FRAME`] at a time.
    rest: Bytes,
    /// When the whole body must have been given (a live segment: `SendBy`); a frame asked for
    /// after it is an error, and hyper resets the stream.
    by: Option<Instant>,
    /// The body has bytes and a known length or a `by`: its last byte is a frame of its own
    /// (the body's end comes with it: `last`). hyper asks for the next frame as soon as it has
    /// queued one, but queues it only once the stream has credit beyond what is queued
    /// already: so it asks after the last byte only once everything before it has the
    /// client's credit, and the limit is checked then (a client that stops giving credit
    /// before that is waited for as any: `send_timeout`). At most that byte is left queued
    /// when hyper is done with the body, and it is a copy: a client that gives a stream one
    /// byte of credit holds no block of object storage, no page of a title, past its end. A
    /// body streamed while it is written does not know its last frame until after it: each
    /// of its frames gives its last byte apart (one more small frame per frame).
    hold: bool,
    /// The held last byte of a frame was given: if the body ends there, hyper may send it with
    /// the stream's end (one frame fewer than an empty end of its own).
    last: bool,
}

impl Tracked {
    /// The next frame of `rest`: at most [`MAX_FRAME`]; the body's last byte alone when held
    /// (the last byte of each of its frames, when its end is not known before it comes).
    fn piece(&mut self) -> Bytes {
        let mut n = self.rest.len().min(MAX_FRAME);
        let body = &self.body;
        let may_end = || {
            http_body::Body::is_end_stream(body)
                || http_body::Body::size_hint(body).exact().is_none()
        };
        if self.hold && n > 0 && n == self.rest.len() && may_end() {
            if n == 1 {
                // The last byte, apart: a copy (the rest of what it is a slice of can go).
                self.last = true;
                return Bytes::copy_from_slice(&self.rest.split_to(1));
            }
            n -= 1;
        }
        self.rest.split_to(n)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.open.0.wait(self.id, None);
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.by.is_some_and(|by| by <= Instant::now()) {
            return std::task::Poll::Ready(Some(Err(std::io::ErrorKind::TimedOut.into())));
        }
        let polled = if this.rest.is_empty() {
            match std::pin::Pin::new(&mut this.body).poll_frame(cx) {
                std::task::Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.rest = data;
                        let piece = this.piece();
                        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
                    }
                    Err(frame) => std::task::Poll::Ready(Some(Ok(frame))),
                },
                other => other,
            }
        } else {
            let piece = this.piece();
            std::task::Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
        };
        // A frame given: until hyper asks again, this stream waits for the client's credit.
        let gave = matches!(polled, std::task::Poll::Ready(Some(Ok(_))));
        if gave {
            this.open.0.moving();
        }
        this.open.0.wait(this.id, gave.then(|| this.reset.clone()));
        polled
    }

    fn is_end_stream(&self) -> bool {
        (!self.hold || self.last) && self.rest.is_empty() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        crate::body::size_hint_plus(self.body.size_hint(), self.rest.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Frame;

    /// `body`'s frames as [`Tracked`] gives them to hyper, with a send limit far off.
    fn given(body: Body) -> Vec<usize> {
        let streams = Arc::new(Streams::new());
        let mut t = Tracked {
            body,
            open: Open::new(streams),
            id: 0,
            reset: None,
            rest: Bytes::new(),
            by: Some(Instant::now() + Duration::from_secs(3600)),
            hold: true,
            last: false,
        };
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        loop {
            match http_body::Body::poll_frame(std::pin::Pin::new(&mut t), &mut cx) {
                std::task::Poll::Ready(Some(Ok(f))) => {
                    let len = f.into_data().unwrap().len();
                    out.push(len);
                    // The end comes with the held last byte (hyper sends them in one frame),
                    // never before it.
                    if http_body::Body::is_end_stream(&t) {
                        assert_eq!(
                            len, 1,
                            "ended with a frame of {len} bytes, not the held byte"
                        );
                        return out;
                    }
                }
                std::task::Poll::Ready(None) => return out,
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_held_body_gives_its_last_byte_apart_and_a_streamed_one_each_frames() {
        // A segment whose length is known: only its very last byte comes alone.
        let mut known = crate::body::Chunks::empty();
        known.push(Bytes::from(vec![1; 10]));
        known.push(Bytes::from(vec![2; 5]));
        assert_eq!(given(known.boxed_unsync()), [10, 4, 1]);
        // A part streamed while it is written: any frame may be its last.
        let frames = [Bytes::from(vec![1; 10]), Bytes::from(vec![2; 5])];
        let streamed = Streamed(frames.into_iter().collect());
        assert_eq!(given(streamed.boxed_unsync()), [9, 1, 4, 1]);
        // An empty frame among them (a part follower's) is given as it is.
        let frames = [
            Bytes::from(vec![1; 3]),
            Bytes::new(),
            Bytes::from(vec![2; 2]),
        ];
        let streamed = Streamed(frames.into_iter().collect());
        assert_eq!(given(streamed.boxed_unsync()), [2, 1, 0, 1, 1]);
    }

    /// A body that does not know its length or its end before it comes (as a part being
    /// written).
    struct Streamed(std::collections::VecDeque<Bytes>);

    impl http_body::Body for Streamed {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }
}
