//! HTTP/2 (HTTPS connections whose ALPN chose `h2`), served by hyper: the JSON API, VOD bytes,
//! live HLS, and live `.ts`/`.flv` viewers (a streaming body, live/frames.rs); the answers are
//! hyper_paths.rs's, as for HTTP/1.1 connections handed over to hyper. Publishing is HTTP/1.1's (clients
//! publish over it; an HTTP/2 publish is refused with a clear 505).
//!
//! A connection with no stream open for `header_read_timeout` is closed gracefully (GOAWAY), as
//! an idle HTTP/1.1 keep-alive connection is; a long download or a live viewer keeps it open.
//!
//! HTTP/2 bodies go out through hyper's frames, so VOD ranges are written from the mapped
//! `Bytes` (no `sendfile`: TLS in user space needs the bytes anyway).

use crate::error::ConnError;
use crate::h1::handover::Rewind;
use crate::state::State;
use crate::transport::Transport;
use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Most streams a client may open at once on one connection.
const MAX_STREAMS: u32 = 256;

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
    let streams = Arc::new(Streams {
        start: Instant::now(),
        open: AtomicUsize::new(0),
        last: AtomicU64::new(0),
    });
    let (st, stop, s2) = (state.clone(), shutdown.clone(), streams.clone());
    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let open = Open::new(s2.clone());
        let (st, stop) = (st.clone(), stop.clone());
        async move {
            let how = crate::hyper_paths::How {
                http2: true,
                secure: true,
            };
            let resp = crate::hyper_paths::answer(&st, req, peer, stop, how).await;
            // The stream counts as open until hyper drops its body (sent, or reset).
            Ok::<_, Infallible>(resp.map(|b| {
                Tracked {
                    body: b,
                    _open: open,
                }
                .boxed_unsync()
            }))
        }
    });
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(32 << 10)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(state.config().send_timeout);
    let conn = b.serve_connection(io, svc);
    tokio::pin!(conn);
    // As HTTP/1.1 keep-alive: no new request for the header-read timeout closes the connection,
    // gracefully (GOAWAY; streams still running, a long download or a live viewer, finish).
    let idle = state.config().header_read_timeout;
    let result = loop {
        let quiet_until = streams.quiet_since() + idle;
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = shutdown.changed() => {
                conn.as_mut().graceful_shutdown();
                break conn.await;
            }
            () = tokio::time::sleep_until(quiet_until) => {
                let quiet = streams.open.load(Relaxed) == 0;
                if quiet && streams.quiet_since() + idle <= Instant::now() {
                    conn.as_mut().graceful_shutdown();
                    break conn.await;
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
}

impl Streams {
    /// Since when the connection has had nothing to do (now, while streams are open).
    fn quiet_since(&self) -> Instant {
        if self.open.load(Relaxed) > 0 {
            return Instant::now();
        }
        self.start + Duration::from_millis(self.last.load(Relaxed))
    }

    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Relaxed);
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
        self.0.touch();
        self.0.open.fetch_sub(1, Relaxed);
    }
}

/// A response body that keeps its stream counted as open.
struct Tracked {
    body: Body,
    _open: Open,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
