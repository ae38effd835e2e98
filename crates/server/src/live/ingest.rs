//! The HTTP ingest read loop: a publisher's body (`PUT|POST /live/{name}`) read straight into
//! receive slabs (`live::Slab`), framed by `live::RequestBody`, held to the configured bitrate by
//! not reading (`live::RateLimit`, counting wire bytes: chunk framing included), and handed to
//! [`Publish`] a read at a time. Framing that outweighs the body ends the publish
//! (`live::BodyError::Overhead`, a 400).

use super::{Live, Publish};
use crate::error::{ConnError, IngestError};
use bytes::{Buf, BytesMut};
use live::{RateLimit, RequestBody, Slab, Want};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

/// How an ingest session ended, as the shell saw it.
#[derive(Debug)]
pub enum Ended {
    /// The body ended properly, or the server is shutting down.
    Clean,
    /// The connection dropped or went quiet.
    Dropped(ConnError),
    /// The input is not acceptable.
    Refused(IngestError),
}

impl Ended {
    /// The lifecycle's view of it.
    pub fn end(&self) -> live::End {
        match self {
            Ended::Clean => live::End::Clean,
            Ended::Dropped(e) => live::End::Dropped(e.to_string()),
            Ended::Refused(e) => live::End::Refused(e.to_string()),
        }
    }
}

/// A read result: bytes, or how the session ends.
fn outcome(
    r: Result<std::io::Result<usize>, tokio::time::error::Elapsed>,
    body: &RequestBody,
) -> Result<usize, Ended> {
    match r {
        Err(_) => Err(Ended::Dropped(ConnError::Timeout(
            "the publisher sent nothing",
        ))),
        Ok(Err(e)) => Err(Ended::Dropped(e.into())),
        Ok(Ok(0)) => Err(match body.eof() {
            Ok(()) => Ended::Dropped(ConnError::Closed("by the publisher")),
            Err(e) => Ended::Dropped(ConnError::Ingest(e.into())),
        }),
        Ok(Ok(n)) => Ok(n),
    }
}

/// Resolves when the viewers are owed the wake that no read has given them yet (publish.rs:
/// they are woken at most every few ms); never if they are not.
fn owed_wake(publish: &Publish, live: &Live) -> impl std::future::Future<Output = ()> {
    let owed = publish.wake_owed().map(|at| live.instant(at));
    async move {
        match owed {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

/// Reads a publisher's body into slabs and publishes it. `side` holds body bytes that arrived with
/// the request head. (`sock`: a publisher's connection, or an edge's to its origin.)
pub(crate) async fn ingest<S: AsyncRead + Unpin>(
    sock: &mut S,
    publish: &mut Publish,
    mut body: RequestBody,
    mut side: BytesMut,
    live: &Live,
    mut shutdown: watch::Receiver<bool>,
) -> Ended {
    let cfg = &live.config;
    let mut slab = Slab::new(cfg.slab_size, cfg.slab_min_read);
    let rate = RateLimit::new(cfg.max_ingest_bitrate, Duration::from_secs(2), live.now());
    let mut received: u64 = 0;
    let mut kicks = publish.stream.kicks();
    let end = loop {
        match body.want() {
            Want::Done => break Ended::Clean,
            Want::Data(n) => {
                let got = if !side.is_empty() {
                    // Body bytes that came with the head or a framing read: the small copy.
                    let k = side.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    slab.extend(&side[..k]);
                    side.advance(k);
                    k
                } else {
                    // Over the rate limit: stop reading for a while (TCP pushes back); what was
                    // read is seen by the viewers first.
                    if let Some(wait) = rate.wait(body.wire(), live.now()) {
                        publish.wake_now();
                        tokio::time::sleep(wait).await;
                    }
                    let buf = slab.spare();
                    let room = (buf.capacity() - buf.len()) as u64;
                    let mut limited = (&mut *sock).take(n.min(room));
                    let read = limited.read_buf(buf);
                    let wake = owed_wake(publish, live);
                    let r = tokio::select! {
                        r = tokio::time::timeout(cfg.publisher_timeout, read) => r,
                        () = wake => {
                            publish.wake_now();
                            continue;
                        }
                        _ = shutdown.changed() => break Ended::Clean,
                        _ = kicks.changed() => break Ended::Refused(IngestError::Kicked),
                    };
                    match outcome(r, &body) {
                        Ok(k) => k,
                        Err(end) => break end,
                    }
                };
                body.data(got);
                received += got as u64;
                publish.received(got, 0);
                if let Err(e) = publish.slab(&mut slab) {
                    break Ended::Refused(e);
                }
            }
            Want::Framing => {
                let used = match body.framing(&side) {
                    Ok(used) => used,
                    Err(e) => break Ended::Refused(e.into()),
                };
                side.advance(used);
                if body.want() == Want::Framing && (used == 0 || side.is_empty()) {
                    // Framing is read 64 bytes at a time: it counts against the rate too.
                    if let Some(wait) = rate.wait(body.wire(), live.now()) {
                        publish.wake_now();
                        tokio::time::sleep(wait).await;
                    }
                    if side.capacity() - side.len() < 64 {
                        side.reserve(64);
                    }
                    let mut limited = (&mut *sock).take(64);
                    let read = limited.read_buf(&mut side);
                    let wake = owed_wake(publish, live);
                    let r = tokio::select! {
                        r = tokio::time::timeout(cfg.publisher_timeout, read) => r,
                        () = wake => {
                            publish.wake_now();
                            continue;
                        }
                        _ = shutdown.changed() => break Ended::Clean,
                        _ = kicks.changed() => break Ended::Refused(IngestError::Kicked),
                    };
                    if let Err(end) = outcome(r, &body) {
                        break end;
                    }
                }
            }
        }
    };
    publish.wake_now();
    if slab.pending() > 0 {
        tracing::debug!(stream = %publish.stream.name, bytes = slab.pending(), "partial packet at the end dropped");
    }
    tracing::debug!(
        stream = %publish.stream.name,
        received,
        wire = body.wire(),
        slabs = slab.allocations,
        reclaimed = slab.reclaims,
        copied = slab.carried,
        "ingest session over"
    );
    end
}
