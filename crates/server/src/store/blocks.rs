//! The block cache of object-storage titles: aligned blocks fetched by Range, kept in an LRU
//! bounded by bytes (the library's memory budget, less what local titles hold), concurrent
//! misses of one block collapsed into one request, the next blocks fetched ahead of a viewer
//! that reads on (a miss right after its predecessor block).

use super::lru::{Key, Lru};
use super::Object;
use crate::store::StoreError;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

type Flight = Arc<OnceCell<Result<Bytes, StoreError>>>;

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
    flights: Mutex<HashMap<Key, Flight>>,
    pub block_size: u64,
    read_ahead: u64,
    pub stats: Stats,
}

impl Blocks {
    pub fn new(limit: u64, block_size: u64, read_ahead: u64) -> Arc<Blocks> {
        Arc::new(Blocks {
            lru: Mutex::new(Lru::new(limit)),
            flights: Mutex::new(HashMap::new()),
            block_size: block_size.max(1),
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

    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Flight>> {
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Block `n` of `obj` (`n * block_size..`, shorter at the object's end).
    pub async fn get(&self, obj: &Arc<Object>, n: u64) -> Result<Bytes, StoreError> {
        let key = (obj.uid, n);
        if let Some(b) = self.lru().get(key) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(b);
        }
        let (flight, first) = self.flight(key);
        if first {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            if n > 0 && self.lru().contains((obj.uid, n - 1)) {
                self.ahead(obj, n);
            }
        } else {
            self.stats.collapsed.fetch_add(1, Ordering::Relaxed);
        }
        self.fly(obj, n, &flight).await
    }

    /// The fetch of `key` in flight, or a new one (`true`).
    fn flight(&self, key: Key) -> (Flight, bool) {
        let mut flights = self.flights();
        match flights.get(&key) {
            Some(f) => (f.clone(), false),
            None => {
                let f = Flight::default();
                flights.insert(key, f.clone());
                (f, true)
            }
        }
    }

    /// Waits for the flight (or flies it: the first reader whose wait is still running does),
    /// then lands it: the block into the cache, the flight off the board.
    async fn fly(&self, obj: &Arc<Object>, n: u64, flight: &Flight) -> Result<Bytes, StoreError> {
        let key = (obj.uid, n);
        let r = flight
            .get_or_init(|| async {
                let r = self.fetch(obj, n).await;
                if let Ok(b) = &r {
                    let evicted = self.lru().put(key, b.clone());
                    self.stats
                        .evictions
                        .fetch_add(evicted as u64, Ordering::Relaxed);
                }
                r
            })
            .await
            .clone();
        let mut flights = self.flights();
        if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            flights.remove(&key);
        }
        r
    }

    async fn fetch(&self, obj: &Arc<Object>, n: u64) -> Result<Bytes, StoreError> {
        let start = n.saturating_mul(self.block_size);
        let end = start.saturating_add(self.block_size).min(obj.len);
        if start >= end {
            return Err(StoreError::Short { got: 0, want: 1 });
        }
        obj.source.get(&obj.key, &obj.etag, start..end).await
    }

    /// Starts fetching the blocks after `n` that are neither held nor in flight.
    fn ahead(&self, obj: &Arc<Object>, n: u64) {
        let Some(blocks) = tokio::runtime::Handle::try_current().ok() else {
            return;
        };
        let last = obj.len.saturating_sub(1) / self.block_size;
        for m in n + 1..=(n + self.read_ahead).min(last) {
            let key = (obj.uid, m);
            if self.lru().contains(key) {
                continue;
            }
            let (flight, first) = self.flight(key);
            if !first {
                continue;
            }
            self.stats.read_ahead.fetch_add(1, Ordering::Relaxed);
            let obj = obj.clone();
            let me = obj.source.blocks.clone();
            blocks.spawn(async move {
                let _ = me.fly(&obj, m, &flight).await;
            });
        }
    }

    /// Lets an object's blocks go (it left the library or changed).
    pub(crate) fn forget(&self, uid: u64) {
        self.lru().forget(uid);
    }
}
