//! The shell of LL-HLS's blocking requests: a request waits on the stream's LL tick (a part
//! completed or began, or the stream changed state) and asks `live::llhls` again after each, for at most
//! three target durations; a part being streamed follows the per-frame tick.

use super::registry::Stream;
use super::{Live, Output};
use crate::error::Error;
use live::llhls::Readiness;
use live::LlHls;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How a held request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    Ready,
    /// What it asked for is further ahead than a held request may wait for.
    TooFar {
        newest: u64,
    },
    /// Three target durations passed (or the stream is gone).
    TimedOut,
    /// What it asked for will never be there (a part that slid out, or past its segment's end).
    Gone,
}

/// A request on a stream that has no LL-HLS output yet (a TS source that starts converting at
/// its next keyframe) waits this long for it.
const FIRST_WAIT: Duration = Duration::from_secs(8);

impl Live {
    /// Waits until `ready` says so, re-asking whenever a part completes or begins (what every
    /// held request waits for: a part or segment to complete, or to begin) or the stream
    /// changes state. Makes sure the stream has its fMP4 output (a TS
    /// source converts from now on).
    pub async fn hold_ll(
        &self,
        name: &str,
        mut ready: impl FnMut(&LlHls) -> Readiness,
    ) -> Result<Held, Error> {
        let s: Arc<Stream> = self
            .get(name)
            .ok_or_else(|| Error::UnknownStream(name.into()))?;
        let (ended, limit) = {
            let inner = s.read();
            let limit = match &inner.media {
                Some(m) if m.llhls.last_segment().is_some() => m.llhls.target_duration() * 3,
                _ => FIRST_WAIT,
            };
            (inner.lifecycle.is_ended(), limit)
        };
        if !ended && !s.want_media(self.config.ring, self.config.ll_hls) {
            return Err(Error::NoFlvOutput(name.into()));
        }
        let mut rx = s.subscribe_ll();
        let deadline = Instant::now() + limit;
        loop {
            let r = {
                let inner = s.read();
                match &inner.media {
                    _ if inner.lifecycle.is_ended() => Readiness::Ready,
                    Some(m) => ready(&m.llhls),
                    None => Readiness::Wait,
                }
            };
            match r {
                Readiness::Ready => return Ok(Held::Ready),
                Readiness::TooFar { newest } => return Ok(Held::TooFar { newest }),
                Readiness::Gone => return Ok(Held::Gone),
                Readiness::Wait => {}
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return Ok(Held::TimedOut),
            }
        }
    }
}

/// What a request streamed as it is written asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// An LL-HLS part (both tracks).
    Part { msn: u64, part: usize },
    /// A DASH segment of one track (0 video, 1 audio): every part's fragments of that track.
    Track { msn: u64, track: usize },
}

/// Where a follower is: the part (of a DASH segment; 0 for an LL-HLS part) and the `Bytes` of
/// it already handed out.
type Cursor = (usize, usize);

impl Followed {
    /// Its `Bytes` after `at`, whether it is complete, and where that leaves the cursor; `None`
    /// if it is not kept. Walks only what is new: a segment's complete parts are passed once.
    fn pick(self, ll: &LlHls, at: Cursor) -> Option<(Vec<bytes::Bytes>, bool, Cursor)> {
        match self {
            Followed::Part { msn, part } => {
                let p = ll.part(msn, part)?;
                let new = p.data.get(at.1..).unwrap_or_default().to_vec();
                let next = (0, at.1 + new.len());
                Some((new, p.complete, next))
            }
            Followed::Track { msn, track } => {
                let s = ll.segment(msn)?;
                let (mut part, mut at) = at;
                let mut new = Vec::new();
                while let Some(p) = s.parts.get(part) {
                    let list = p.tracks.get(track).map_or(&[][..], Vec::as_slice);
                    new.extend(list.get(at..).unwrap_or_default().iter().cloned());
                    at = list.len().max(at);
                    // A complete part no longer grows: on to the next one, if it has begun.
                    if !p.complete || part + 1 >= s.parts.len() {
                        break;
                    }
                    (part, at) = (part + 1, 0);
                }
                Some((new, s.complete, (part, at)))
            }
        }
    }

    /// It exists and is not complete (a complete one is served as an entity).
    fn open(self, ll: &LlHls) -> bool {
        match self {
            Followed::Part { msn, part } => ll.part(msn, part).is_some_and(|p| !p.complete),
            Followed::Track { msn, .. } => ll.segment(msn).is_some_and(|s| !s.complete),
        }
    }
}

/// A part (or a DASH segment) that is still being written, followed by a request for it
/// (RFC 8216bis lets a server hold such a request until the part is complete; zerocast answers
/// at once and sends each fragment as it arrives, so a player gets a frame as soon as the ingest
/// did).
#[derive(Debug)]
pub struct PartFollow {
    stream: Arc<Stream>,
    what: Followed,
    /// What of it was already handed out.
    taken: Cursor,
    rx: tokio::sync::watch::Receiver<u64>,
    /// The longest wait for the next fragment.
    limit: Duration,
    /// When the ingest received the first frame of what was handed out last (NTP, its `prft`),
    /// if it came after the request (delivery.rs).
    arrived: Option<u64>,
    /// When the request came (NTP), if its deliveries are counted.
    requested: Option<u64>,
}

impl Live {
    /// A follower for `what` of stream `name` (of its instance `tag`), if it is begun and not
    /// complete (a complete one is served as an entity, with ranges and an ETag).
    pub fn follow(&self, name: &str, tag: &str, what: Followed) -> Option<PartFollow> {
        // Of the instance asked for, checked again here: another could have begun since.
        let stream = self.get(name).filter(|s| s.is_instance(tag))?;
        let rx = stream.subscribe(Output::Mp4);
        let limit = {
            let inner = stream.read();
            let ll = &inner.media.as_ref()?.llhls;
            if !what.open(ll) {
                return None;
            }
            ll.target_duration() * 3
        };
        Some(PartFollow {
            stream,
            what,
            taken: (0, 0),
            rx,
            limit,
            arrived: None,
            requested: None,
        })
    }
}

impl PartFollow {
    /// The `Content-Type` of what it follows (a DASH audio segment is `audio/mp4`).
    pub fn content_type(&self) -> &'static str {
        match self.what {
            Followed::Track { track: 1, .. } => "audio/mp4",
            _ => "video/mp4",
        }
    }

    /// The part's `Bytes` added since the last call, waiting for the next fragment if there are
    /// none; `None` once the part is complete and all of it was handed out. An error when the
    /// part is gone (its segment was dropped) or no fragment came for three target durations:
    /// the response cannot be ended cleanly then, and its connection is closed.
    pub async fn next(&mut self) -> std::io::Result<Option<Vec<bytes::Bytes>>> {
        use std::io::{Error, ErrorKind};
        loop {
            self.rx.borrow_and_update();
            let (new, complete, taken) = {
                let inner = self.stream.read();
                inner
                    .media
                    .as_ref()
                    .and_then(|m| self.what.pick(&m.llhls, self.taken))
                    .ok_or_else(|| Error::new(ErrorKind::NotFound, "the part was dropped"))?
            };
            self.taken = taken;
            if !new.is_empty() {
                // A part's new `Bytes` begin with a fragment's `prft` (a fragment is added whole).
                let after = |ntp| {
                    self.requested
                        .is_some_and(|r| super::clock::since(r, ntp).is_some())
                };
                self.arrived = media::cmaf::read_prft_ntp(&new[0]).filter(|&ntp| after(ntp));
                self.stream
                    .stats
                    .bytes_out
                    .fetch_add(new.iter().map(|b| b.len() as u64).sum(), Relaxed);
                return Ok(Some(new));
            }
            if complete {
                return Ok(None);
            }
            match tokio::time::timeout(self.limit, self.rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::new(ErrorKind::NotFound, "the stream is gone")),
                Err(_) => return Err(Error::new(ErrorKind::TimedOut, "no fragment came")),
            }
        }
    }
}

impl PartFollow {
    /// Counts in `Live::delivery` the frames that reach the ingest after `ntp`, when the
    /// request came: what the request waited for, not what was there before it.
    pub fn count_after(&mut self, ntp: u64) {
        self.requested = Some(ntp);
    }

    /// What [`PartFollow::next`] handed out last is written: counted in `live.delivery` if its
    /// first frame came after the request ([`PartFollow::count_after`]).
    pub fn delivered(&mut self, live: &Live) {
        if let Some(at) = self.arrived.take().and_then(|ntp| live.at_ntp(ntp)) {
            live.delivery.record(live.now().saturating_sub(at));
        }
    }
}

/// What the task following a part sends to its HTTP/2 body.
enum Sent {
    Data(bytes::Bytes),
    Done,
    Failed(std::io::Error),
}

/// Fragments queued between the task following a part and hyper.
const QUEUED: usize = 64;

/// The HTTP/2 response for a part being written (its caching, HSTS and CORS headers are the
/// caller's, [`crate::http::streamed_headers`]): a task on the fan-out workers follows it and
/// sends each fragment's `Bytes` (no copy) through a short channel. A part cut short resets the
/// stream, so that no client takes a truncated part for a whole one.
pub(crate) fn part_response(
    mut follow: PartFollow,
    live: &Live,
) -> http::Response<http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, std::io::Error>> {
    use http_body_util::BodyExt;
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUED);
    let stall = live.config.stall_timeout;
    let content_type = follow.content_type();
    live.fanout.spawn(async move {
        loop {
            let (sent, last) = match follow.next().await {
                Ok(Some(data)) => (data.into_iter().map(Sent::Data).collect(), false),
                Ok(None) => (vec![Sent::Done], true),
                Err(e) => (vec![Sent::Failed(e)], true),
            };
            for s in sent {
                if !matches!(tokio::time::timeout(stall, tx.send(s)).await, Ok(Ok(()))) {
                    return;
                }
            }
            if last {
                return;
            }
        }
    });
    let body = PartBody { rx, done: false };
    let mut r = http::Response::new(body.boxed_unsync());
    let by = crate::response::SendBy::within(live.config.segment_send_limit);
    r.extensions_mut().insert(by);
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

struct PartBody {
    rx: tokio::sync::mpsc::Receiver<Sent>,
    done: bool,
}

impl http_body::Body for PartBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        use std::task::Poll;
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Sent::Data(b))) => Poll::Ready(Some(Ok(http_body::Frame::data(b)))),
            Poll::Ready(Some(Sent::Done)) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Sent::Failed(e))) => Poll::Ready(Some(Err(e))),
            // The task stopped without finishing (the client stalled): not a whole part.
            Poll::Ready(None) => Poll::Ready(Some(Err(std::io::Error::other("part cut short")))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// 25 fps fragments `from..to` (a keyframe every 50), each with a one-`Bytes` muxed unit and
    /// per track a head and a sample, numbered by the frame.
    fn feed(ll: &mut LlHls, from: u32, to: u32) {
        for n in from..to {
            let b = |tag: u8| Bytes::from(vec![tag, n as u8]);
            let tracks = [vec![b(b'V'), b(b'v')], vec![b(b'A'), b(b'a')]];
            ll.fragment_tracks(
                vec![b(0)],
                tracks,
                n % 50 == 0,
                u64::from(n * 40),
                None,
                None,
            );
        }
    }

    #[test]
    fn a_dash_segment_follower_hands_out_each_bytes_once_in_order_across_parts() {
        let mut ll = LlHls::new(live::LlLimits::default());
        ll.init(Bytes::from_static(b"init"));
        let what = Followed::Track { msn: 0, track: 1 };
        let (mut got, mut at) = (Vec::new(), (0, 0));
        // Picked after every fragment, as a follower woken per frame is.
        for n in 0..60 {
            feed(&mut ll, n, n + 1);
            let (new, _, next) = what.pick(&ll, at).unwrap();
            got.extend(new);
            at = next;
        }
        let (rest, complete, _) = what.pick(&ll, at).unwrap();
        assert!(rest.is_empty() && complete, "segment 0 ended at frame 50");
        let whole: Vec<Bytes> = ll
            .segment(0)
            .unwrap()
            .parts
            .iter()
            .flat_map(|p| p.tracks[1].iter().cloned())
            .collect();
        assert_eq!(got, whole);
        assert_eq!(got.len(), 2 * 50, "a head and a sample per frame");
        assert!(ll.segment(0).unwrap().parts.len() > 1, "across parts");
    }
}
