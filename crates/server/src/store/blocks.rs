//! The block cache of object-storage titles: aligned blocks fetched by Range, kept in an LRU
//! bounded by bytes (the library's memory budget, less what local titles hold) in a memfd
//! arena (`arena.rs`: `sendfile` can send them), concurrent
//! misses of one block collapsed into one request, the next blocks fetched ahead of a viewer
//! that reads on (a miss right after its predecessor block).

use super::lru::{Key, Lru};
use super::{Arena, Object};
use crate::store::StoreError;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// A fetch's result, once it landed.
type Landed = watch::Receiver<Option<Result<Bytes, StoreError>>>;

enum Flight {
    Held(Bytes),
    /// Wait for it to land (`true`: this read started it).
    Wait(Landed, bool),
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests made to the stores (listings and block fetches, each try).
    pub requests: AtomicU64,
    /// Requests that failed for good (after their tries).
    pub failures: AtomicU64,
    /// Block reads served from the cache.
    pub hits: AtomicU64,
    /// Block reads that started a fetch.
    pub misses: AtomicU64,
    /// Block reads that waited on a fetch another read started.
    pub collapsed: AtomicU64,
    /// Fetches started ahead of a reader.
    pub read_ahead: AtomicU64,
    /// Blocks let go to stay within the limit.
    pub evictions: AtomicU64,
}

/// Every object-storage source's blocks, under one limit.
#[derive(Debug)]
pub struct Blocks {
    lru: Mutex<Lru>,
    flights: Mutex<HashMap<Key, Landed>>,
    pub block_size: u64,
    read_ahead: u64,
    pub stats: Stats,
    /// Where blocks are kept so that `sendfile` can send them (`None`: on the heap).
    pub arena: Option<Arc<Arena>>,
    /// Fetches that may be in flight at once ([`fetches_at_once`]): each holds its block on
    /// the heap until it lands, and many misses at once (many viewers, or one request's many
    /// ranges) must not take the store's capacity or this process's memory.
    fetching: tokio::sync::Semaphore,
}

/// Bytes of blocks that may be in flight at once.
const IN_FLIGHT: u64 = 256 << 20;

/// How many fetches of `block_size` may be in flight at once: [`IN_FLIGHT`] bytes of them,
/// from 4 to 64.
fn fetches_at_once(block_size: u64) -> usize {
    (IN_FLIGHT / block_size.max(1)).clamp(4, 64) as usize
}

impl Blocks {
    pub fn new(limit: u64, block_size: u64, read_ahead: u64) -> Arc<Blocks> {
        // A store that only takes uploads caches nothing: no arena.
        let made = (limit > 0).then(|| Arena::new(limit, block_size.max(1)));
        let arena = match made {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "block cache on the heap: blocks are written, not sent with sendfile");
                None
            }
        };
        Arc::new(Blocks {
            arena,
            lru: Mutex::new(Lru::new(limit)),
            flights: Mutex::new(HashMap::new()),
            block_size: block_size.max(1),
            fetching: tokio::sync::Semaphore::new(fetches_at_once(block_size)),
            read_ahead,
            stats: Stats::default(),
        })
    }

    /// The most bytes cached.
    pub fn limit(&self) -> u64 {
        self.lru().limit()
    }

    /// The bytes cached now.
    pub fn held(&self) -> u64 {
        self.lru().held()
    }

    fn lru(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Landed>> {
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Block `n` of `obj` (`n * block_size..`, shorter at the object's end); the blocks after
    /// it up to `ahead_to` (within `read_ahead`) that are neither held nor in flight start
    /// being fetched.
    pub async fn get(
        self: &Arc<Self>,
        obj: &Arc<Object>,
        n: u64,
        ahead_to: u64,
    ) -> Result<Bytes, StoreError> {
        let r = match self.flight(obj, n) {
            Flight::Held(b) => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                self.ahead(obj, n, ahead_to);
                return Ok(b);
            }
            Flight::Wait(landed, first) => {
                let counter = if first {
                    &self.stats.misses
                } else {
                    &self.stats.collapsed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                self.ahead(obj, n, ahead_to);
                landed
            }
        };
        let mut landed = r;
        let answer = match landed.wait_for(Option::is_some).await {
            Ok(r) => r
                .clone()
                .unwrap_or(Err(StoreError::Short { got: 0, want: 1 })),
            Err(_) => Err(StoreError::Unreachable(format!(
                "the fetch of block {n} of {} ended without an answer",
                obj.key
            ))),
        };
        answer
    }

    /// How far ahead a response for `range` of `obj` reads: to its own last block (they will
    /// all be sent), and `read_ahead` blocks past it when it continues where another read of
    /// the object ended (it starts on a block boundary whose block before is held: a player or
    /// a cache going through the title range after range).
    pub fn ahead_to(&self, obj: &Object, range: &std::ops::Range<u64>) -> u64 {
        let bs = self.block_size;
        let last = range.end.saturating_sub(1) / bs;
        let first = range.start / bs;
        let continues = range.start.is_multiple_of(bs)
            && first > 0
            && self.lru().contains((obj.uid, first - 1));
        if continues {
            last.saturating_add(self.read_ahead)
        } else {
            last
        }
    }

    /// The block if it is held, else the fetch of it in flight, or a new one (`true`): a task
    /// of its own, so it lands (into the cache, off the board) and its timeout runs whether
    /// or not the reader that started it is still there, or still polled.
    fn flight(self: &Arc<Self>, obj: &Arc<Object>, n: u64) -> Flight {
        let key = (obj.uid, n);
        let mut flights = self.flights();
        // Under the flights' lock: a fetch puts its block in the cache before it leaves the
        // board, so a block that is neither held nor in flight is not there.
        if let Some(b) = self.lru().get(key) {
            return Flight::Held(b);
        }
        if let Some(landed) = flights.get(&key) {
            return Flight::Wait(landed.clone(), false);
        }
        let (tx, landed) = watch::channel(None);
        flights.insert(key, landed.clone());
        drop(flights);
        let (me, obj) = (self.clone(), obj.clone());
        tokio::spawn(async move {
            // Never closed: a permit always comes.
            let permit = me.fetching.acquire().await;
            let r = me.fetch(&obj, n).await.map(|b| me.keep(b));
            drop(permit);
            if let Ok(b) = &r {
                let evicted = me.lru().put(key, b.clone());
                me.stats
                    .evictions
                    .fetch_add(evicted as u64, Ordering::Relaxed);
            }
            me.flights().remove(&key);
            let _ = tx.send(Some(r));
        });
        Flight::Wait(landed, true)
    }

    /// A fetched block as the cache keeps it: in the arena while it has a free slot.
    fn keep(&self, b: Bytes) -> Bytes {
        self.arena.as_ref().and_then(|a| a.hold(&b)).unwrap_or(b)
    }

    async fn fetch(&self, obj: &Arc<Object>, n: u64) -> Result<Bytes, StoreError> {
        let start = n.saturating_mul(self.block_size);
        let end = start.saturating_add(self.block_size).min(obj.len);
        if start >= end {
            return Err(StoreError::Short { got: 0, want: 1 });
        }
        obj.source.get(obj, start..end).await
    }

    /// Starts fetching the blocks after `n`, to `ahead_to` and at most `read_ahead` of them,
    /// that are neither held nor in flight.
    fn ahead(self: &Arc<Self>, obj: &Arc<Object>, n: u64, ahead_to: u64) {
        let last = obj.len.saturating_sub(1) / self.block_size;
        let to = n.saturating_add(self.read_ahead).min(ahead_to).min(last);
        for m in n.saturating_add(1)..=to {
            if let Flight::Wait(_, true) = self.flight(obj, m) {
                self.stats.read_ahead.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lets an object's blocks go (it left the library or changed).
    pub(crate) fn forget(&self, uid: u64) {
        self.lru().forget(uid);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fetches_in_flight_hold_at_most_256_mib_and_never_fewer_than_4() {
        use super::fetches_at_once;
        assert_eq!(fetches_at_once(64 << 10), 64);
        assert_eq!(fetches_at_once(1 << 20), 64);
        assert_eq!(fetches_at_once(16 << 20), 16);
        assert_eq!(fetches_at_once(64 << 20), 4);
    }
}
