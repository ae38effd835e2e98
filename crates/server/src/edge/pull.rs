//! One stream's pull: connect to an origin (`upstream.rs`), take the stream in the registry as
//! its publisher (`Live::begin_publish`: a reconnect within the grace continues the stream, so
//! the edge's viewers stay), read the origin's `.ts` through the HTTP ingest loop, and watch for
//! viewers. What to do when is `live::relay::Relay`'s decision.

use super::upstream::{self, Ask, Failure, Upstream};
use super::{Edge, Pulled};
use crate::error::{Error, IngestError};
use crate::live::ingest::{ingest, Ended};
use crate::live::{Publish, Stream};
use live::relay::{Attempt, Relay, RelayConfig};
use live::End;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often a pull looks for viewers.
const LOOK: Duration = Duration::from_secs(1);
/// A pull that found nothing is remembered this long: viewers asking again meanwhile get the
/// same answer without a request to the origins.
const FORGET_ABSENT: Duration = Duration::from_secs(1);

/// Why a connected pull stopped reading.
enum Stopped {
    /// Nobody watches, or the server stops: the stream ends cleanly.
    Done(&'static str),
    /// The ingest loop ended.
    Ingest(Ended),
}

/// Takes the pull out of the edge's list when its task ends, however it ends.
struct Forget {
    edge: Arc<Edge>,
    name: String,
    id: u64,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.edge.forget(&self.name, self.id);
    }
}

/// Pulls `name` until nobody watches, the origin ends it, or it cannot be pulled any more.
/// `via`: sent to the origins as `x-zerocast-via`.
pub(super) async fn run(
    edge: Arc<Edge>,
    name: String,
    id: u64,
    state: watch::Sender<Pulled>,
    via: String,
) {
    let forget = Forget {
        edge: edge.clone(),
        name: name.clone(),
        id,
    };
    let end = pull(&edge, &name, &state, &via).await;
    let absent = end != Pulled::Over;
    state.send_replace(end);
    if absent {
        tokio::time::sleep(FORGET_ABSENT).await;
    }
    drop(forget);
}

/// The pull's loop; returns how it ended.
async fn pull(edge: &Arc<Edge>, name: &str, state: &watch::Sender<Pulled>, via: &str) -> Pulled {
    let ask = Ask {
        name,
        token: edge.config.token.as_deref(),
        via,
    };
    let live = edge.live.clone();
    let config = RelayConfig {
        idle: edge.config.idle,
        grace: live.config.grace,
        ..RelayConfig::default()
    };
    let mut relay = Relay::new(edge.config.origins.len(), config, live.now());
    let preferred = &edge.preferred;
    let mut attempt = relay.first_from(preferred.load(Relaxed), live.now());
    let mut stop = edge.stop.subscribe();
    let mut looked = Looked::default();
    // Why the last origin that was asked did not stream (`None`: they said they do not have it).
    let mut why: Option<String> = None;
    // An origin answered that its pull would come back here.
    let mut looped = false;
    // An origin's answer already in hand (after it ended a response cleanly), and which origin.
    let mut answered: Option<(usize, Upstream)> = None;
    // The origin's address of the last session, while the stream waits for it to come back.
    let mut waiting: Option<SocketAddr> = None;
    while let Attempt::Try { origin, at } = attempt {
        // Waiting for the next attempt: still watching for viewers.
        while live.now() < at && !*stop.borrow() {
            let wait = at.saturating_sub(live.now()).min(LOOK);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
            if let Some(s) = live.get(name) {
                relay.seen(looked.active(&s), live.now());
            }
        }
        if *stop.borrow() {
            break;
        }
        // (The relay names origins by their index in the configured list, which is not empty.)
        let Some(o) = edge.config.origins.get(origin) else {
            break;
        };
        let next = match answered.take() {
            Some((from, up)) if from == origin => Ok(up),
            _ => upstream::open(o, &edge.tls, &ask, relay.patience(live.now())).await,
        };
        let up = match next {
            Ok(up) => up,
            Err(failure) => {
                match failure {
                    Failure::NotFound => {
                        tracing::debug!(stream = %name, origin = %o.url, "the origin has no such stream");
                    }
                    Failure::Loop => {
                        tracing::warn!(stream = %name, origin = %o.url, "a loop of edges: the origin's pull of the stream comes back here");
                        looped = true;
                    }
                    Failure::Other(e) => {
                        tracing::warn!(stream = %name, origin = %o.url, error = %e, "pull from the origin failed");
                        why = Some(format!("{}: {e}", o.url));
                        // New pulls begin with the next origin (unless another pull moved on).
                        let next = (origin + 1) % edge.config.origins.len().max(1);
                        let _ = preferred.compare_exchange(origin, next, Relaxed, Relaxed);
                    }
                }
                if let Some(s) = live.get(name) {
                    relay.seen(looked.active(&s), live.now());
                }
                attempt = relay.failed(origin, live.now());
                continue;
            }
        };
        let mut publish = match live.begin_publish(name, up.peer) {
            Ok(p) => p,
            // A publisher took the name here meanwhile: viewers watch that.
            Err(Error::StreamBusy(_)) if !relay.connected_once() => return Pulled::Absent,
            Err(e) => {
                tracing::warn!(stream = %name, error = %e, "pulled stream not taken");
                return match relay.connected_once() {
                    true => Pulled::Over,
                    false => Pulled::Busy(e.to_string()),
                };
            }
        };
        waiting = None;
        publish.stream.set_origin(Some(o.url.clone()));
        relay.connected(origin, live.now());
        preferred.store(origin, Relaxed);
        state.send_replace(Pulled::Streaming);
        edge.connects.fetch_add(1, Relaxed);
        edge.open.fetch_add(1, Relaxed);
        tracing::info!(stream = %name, origin = %o.url, "pulling from the origin");
        let peer = up.peer;
        let stopped = follow(edge, &mut relay, &mut looked, up, &mut publish, &mut stop).await;
        // When the session ended (asking the origin again below takes time of its own).
        let ended_at = live.now();
        edge.open.fetch_sub(1, Relaxed);
        match stopped {
            Stopped::Done(reason) => {
                tracing::info!(stream = %name, reason, "pull stopped");
                publish.finish(End::Clean);
                break;
            }
            Stopped::Ingest(Ended::Refused(IngestError::Kicked)) => {
                tracing::info!(stream = %name, "pull ended through the control API");
                publish.finish(End::Refused(IngestError::Kicked.to_string()));
                break;
            }
            Stopped::Ingest(Ended::Clean) => {
                // The stream ended at the origin, or the origin is going away (a restart or a
                // drain ends its viewers' responses cleanly too): asked again, it says which.
                // (Within half the grace: the stream's own begins only once this is known.)
                match upstream::open(o, &edge.tls, &ask, Some(config.grace / 2)).await {
                    Err(Failure::NotFound) => {
                        tracing::info!(stream = %name, origin = %o.url, "the origin ended the stream");
                        publish.finish(End::Clean);
                        break;
                    }
                    Ok(up) => answered = Some((origin, up)),
                    Err(Failure::Other(e)) => {
                        tracing::info!(stream = %name, origin = %o.url, error = %e, "the origin went away; reconnecting");
                    }
                    Err(Failure::Loop) => {}
                }
                publish.finish(End::Dropped("the origin ended its response".into()));
            }
            Stopped::Ingest(Ended::Dropped(e)) => {
                tracing::info!(stream = %name, origin = %o.url, error = %e, "lost the origin; reconnecting");
                publish.finish(End::Dropped(e.to_string()));
            }
            Stopped::Ingest(Ended::Refused(e)) => {
                // Bad bytes from an origin: another connection may do better, within the grace.
                tracing::warn!(stream = %name, origin = %o.url, error = %e, "bad stream from the origin; reconnecting");
                publish.finish(End::Dropped(e.to_string()));
            }
        }
        waiting = Some(peer);
        attempt = relay.lost(ended_at);
    }
    if let Some(peer) = waiting {
        // Given up while the stream waits for its upstream: it ends now, not when its grace
        // would have (its viewers are told, new ones pull it afresh). Only that stream: one
        // that already ended is not made again.
        let reconnecting = live.get(name).is_some_and(|s| {
            let inner = s.read();
            !inner.lifecycle.is_ended() && inner.publisher.is_none()
        });
        if reconnecting {
            if let Ok(p) = live.begin_publish(name, peer) {
                p.finish(End::Clean);
            }
        }
    }
    match (relay.connected_once(), why) {
        (true, _) => Pulled::Over,
        (false, _) if looped => Pulled::Loop,
        (false, Some(why)) => Pulled::Failed(why),
        (false, None) => Pulled::Absent,
    }
}

/// Reads the origin's stream into the registry until it ends or nobody watches.
async fn follow(
    edge: &Edge,
    relay: &mut Relay,
    looked: &mut Looked,
    up: Upstream,
    publish: &mut Publish,
    stop: &mut watch::Receiver<bool>,
) -> Stopped {
    let live = &edge.live;
    let stream = publish.stream.clone();
    let Upstream {
        mut sock,
        body,
        side,
        ..
    } = up;
    let (end, ended) = watch::channel(false);
    let reading = ingest(&mut sock, publish, body, side, live, ended);
    tokio::pin!(reading);
    let mut look = tokio::time::interval(LOOK);
    let mut done: Option<&'static str> = None;
    loop {
        tokio::select! {
            e = &mut reading => return done.map_or(Stopped::Ingest(e), Stopped::Done),
            _ = look.tick(), if done.is_none() => {
                relay.seen(looked.active(&stream), live.now());
                if relay.idle(live.now()) {
                    done = Some("no viewers");
                    end.send_replace(true);
                }
            }
            _ = stop.changed(), if done.is_none() => {
                done = Some("the server stops");
                end.send_replace(true);
            }
        }
    }
}

/// What a pull last saw of its stream's HLS requests (viewers that hold no connection).
#[derive(Debug, Default)]
struct Looked {
    requests: u64,
}

impl Looked {
    /// Whether the stream has someone waiting on it (a viewer of any output, a player held for a
    /// playlist, part or segment, a recorder), or HLS/LL-HLS/DASH requests came since the last
    /// look.
    fn active(&mut self, s: &Stream) -> bool {
        let requests =
            s.stats.playlist_requests.load(Relaxed) + s.stats.segment_requests.load(Relaxed);
        let moved = requests != self.requests;
        self.requests = requests;
        s.waiting() > 0 || moved
    }
}
