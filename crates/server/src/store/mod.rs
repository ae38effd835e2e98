//! Titles in S3-compatible object storage (`library = "s3://bucket/prefix"`).
//!
//! A bucket's objects are listed ([`Source::list`], ListObjectsV2, relisted on SIGHUP and on an
//! interval) and become library titles whose bytes stay in the store: each is indexed from Range
//! reads of only what its parser needs (an MP4's top-level box headers and its `moov`; other
//! containers are read once, up to `index_max`, see `index.rs`), and served from [`Blocks`], an
//! LRU cache of aligned blocks fetched by Range within the library's memory budget. A response
//! is slices of cached blocks, never copies; concurrent misses of one block make one request;
//! a viewer reading on gets the next blocks fetched ahead. Each fetch asks for the bytes of the
//! version that was listed (`If-Match` with its ETag): a title never mixes two versions.
//!
//! Requests are signed by `rusty-s3` (sans-I/O: SigV4 presigned URLs, the listing's XML) and
//! made with hyper's client (`client.rs`), with a timeout and retries with a backoff.

mod arena;
mod blocks;
mod client;
mod config;
mod error;
mod index;
pub mod kept;
pub(crate) mod listing;
mod lru;

pub use arena::Arena;
pub use blocks::{Blocks, Stats};
pub use config::{S3Source, StoreConfig};
pub use error::StoreError;
pub use index::{index, skeleton};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use rusty_s3::S3Action;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a signed request stays valid (it is made at once; this only bounds clock skew).
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);
/// Most bytes of one listing page's body.
const MAX_LISTING: usize = 8 << 20;
/// The most bytes one PUT may carry (S3's limit for a single-part upload).
const MAX_PUT: u64 = 5 << 30;

/// The configured sources and the block cache they share.
#[derive(Debug)]
pub struct Stores {
    pub sources: Vec<Arc<Source>>,
    pub blocks: Arc<Blocks>,
    pub index_max: u64,
    pub relist: Option<Duration>,
    /// One listing at a time (SIGHUP and the interval may meet).
    pub(crate) listing: tokio::sync::Mutex<()>,
}

impl Stores {
    /// The sources of `cfg` (each completed from the environment by `env`), sharing a block
    /// cache of `cache_bytes` (at least 4 blocks).
    pub fn new(
        cfg: &StoreConfig,
        cache_bytes: u64,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Stores, String> {
        let limit = cache_bytes.max(cfg.block_size.saturating_mul(4));
        let blocks = Blocks::new(limit, cfg.block_size, cfg.read_ahead);
        let sources = cfg
            .sources
            .iter()
            .map(|s| Source::new(&s.clone().with_env(&env), cfg, blocks.clone()).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(Stores {
            sources,
            blocks,
            index_max: cfg.index_max,
            relist: cfg.relist,
            listing: tokio::sync::Mutex::new(()),
        })
    }
}

/// A bucket (and prefix) titles are listed from and read from.
pub struct Source {
    /// As configured (`s3://bucket/prefix`), for logs and `/api/videos`.
    pub url: String,
    bucket: rusty_s3::Bucket,
    credentials: Option<rusty_s3::Credentials>,
    prefix: String,
    client: client::Client,
    pub(crate) blocks: Arc<Blocks>,
    timeout: Duration,
    retries: u32,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("url", &self.url).finish()
    }
}

/// An object a listing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key after the source's prefix: the title's id.
    pub id: String,
    pub key: String,
    pub len: u64,
    /// Quoted, as the store gives it; or, from a store that gives none, made of its length and
    /// time (`store_etag` false), so that a new version with another time is a new title.
    pub etag: String,
    /// `etag` is the store's own: reads hold to that version (`If-Match`).
    pub store_etag: bool,
    pub modified: Option<std::time::SystemTime>,
}

/// An RFC 3339 UTC time as listings give it (`2026-11-26T20:15:00.000Z`), to the second.
pub fn parse_time(s: &str) -> Option<std::time::SystemTime> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

impl Source {
    /// A source from its settings (already completed by [`S3Source::with_env`]).
    pub fn new(s: &S3Source, cfg: &StoreConfig, blocks: Arc<Blocks>) -> Result<Source, String> {
        let (bucket, prefix) = s.bucket_and_prefix()?;
        let region = s.region.clone().unwrap_or_else(|| "us-east-1".into());
        let endpoint = s
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let endpoint: url::Url = endpoint
            .parse()
            .map_err(|e| format!("{}: endpoint {endpoint:?}: {e}", s.url))?;
        let style = if s.path_style.unwrap_or(s.endpoint.is_some()) {
            rusty_s3::UrlStyle::Path
        } else {
            rusty_s3::UrlStyle::VirtualHost
        };
        let bucket = rusty_s3::Bucket::new(endpoint.clone(), style, bucket, region)
            .map_err(|e| format!("{}: {e}", s.url))?;
        let credentials = match (&s.access_key_id, &s.secret_access_key) {
            (Some(k), Some(sec)) => Some(match &s.session_token {
                Some(t) => rusty_s3::Credentials::new_with_token(k.clone(), sec.clone(), t.clone()),
                None => rusty_s3::Credentials::new(k.clone(), sec.clone()),
            }),
            (None, None) => None,
            _ => return Err(format!("{}: an access key id needs its secret key", s.url)),
        };
        let tls = match bucket.base_url().scheme() {
            "https" => Some(crate::outbound::tls_client(s.ca.as_deref())?),
            _ => None,
        };
        let client = client::Client::new(bucket.base_url(), tls)?;
        Ok(Source {
            url: s.url.clone(),
            bucket,
            credentials,
            prefix,
            client,
            blocks,
            timeout: cfg.timeout,
            retries: cfg.retries,
        })
    }

    /// Every object under the prefix (ListObjectsV2, page by page), dotfiles and "folders" left
    /// out, in key order.
    pub async fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let mut pages = listing::Pages::default();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(self.credentials.as_ref());
            if !self.prefix.is_empty() {
                action.with_prefix(self.prefix.as_str());
            }
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let url = action.sign(SIGNED_FOR);
            let answer = self
                .with_retries(
                    &http::Method::GET,
                    &url,
                    &[],
                    &Bytes::new(),
                    MAX_LISTING,
                    self.timeout,
                )
                .await?;
            if answer.status != StatusCode::OK {
                return Err(StoreError::Status(answer.status.as_u16()));
            }
            let text = std::str::from_utf8(&answer.body)
                .map_err(|_| StoreError::Listing("not UTF-8".into()))?;
            match pages.take(&self.prefix, text)? {
                Some(next) => token = Some(next),
                None => return Ok(pages.done()),
            }
        }
    }

    /// The bytes `range` of `obj` in the version it was listed as: an answer that names another
    /// version, or another length, is [`StoreError::Changed`] (a store or proxy that does not
    /// hold to `If-Match` must not mix two versions in one title).
    pub(crate) async fn get(
        &self,
        obj: &Object,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, StoreError> {
        let url = self
            .bucket
            .get_object(self.credentials.as_ref(), &obj.key)
            .sign(SIGNED_FOR);
        let want = range.end - range.start;
        let header =
            |s: String| HeaderValue::try_from(s).map_err(|e| StoreError::Listing(e.to_string()));
        let mut headers = vec![(
            http::header::RANGE,
            header(format!("bytes={}-{}", range.start, range.end - 1))?,
        )];
        // A listing without ETags (some S3-compatible servers): no version to hold to.
        if obj.store_etag {
            headers.push((http::header::IF_MATCH, header(obj.etag.clone())?));
        }
        let max = usize::try_from(want).unwrap_or(usize::MAX);
        let answer = self
            .with_retries(
                &http::Method::GET,
                &url,
                &headers,
                &Bytes::new(),
                max,
                self.timeout,
            )
            .await?;
        match answer.status {
            // The range asked for, not another (a proxy or server that got the header wrong):
            // a 206 of one range names it in `Content-Range` (RFC 9110 §15.3.7), and one that
            // does not (or not readably) says nothing of where its bytes are from.
            StatusCode::PARTIAL_CONTENT => {
                if answer.content_range_start != Some(range.start) {
                    return Err(StoreError::Status(206));
                }
            }
            StatusCode::OK if range.start == 0 => {}
            StatusCode::PRECONDITION_FAILED => return Err(StoreError::Changed),
            s => return Err(StoreError::Status(s.as_u16())),
        }
        let listed = (obj.etag.as_str(), obj.store_etag, obj.len);
        let total = answer.content_range_total;
        if !listing::same_version(listed, answer.etag.as_deref(), total) {
            return Err(StoreError::Changed);
        }
        if answer.body.len() as u64 != want {
            return Err(StoreError::Short {
                got: answer.body.len() as u64,
                want,
            });
        }
        Ok(answer.body)
    }

    /// Puts `bytes` (a finished recording, mapped) as the object at the prefix, then `id`;
    /// tried again after a failure, no answer in time or a 5xx/429 (`retries`, 1 s × 4ⁿ apart),
    /// each try signed anew. At most 5 GiB (S3's limit for one PUT).
    pub async fn put(&self, id: &str, bytes: Bytes) -> Result<(), StoreError> {
        if bytes.len() as u64 > MAX_PUT {
            return Err(StoreError::TooLarge(bytes.len() as u64));
        }
        let key = format!("{}{id}", self.prefix);
        let headers = [(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )];
        // Its time: the request's limit, and a second per MiB on top (a slow uplink).
        let timeout = self.timeout + Duration::from_secs(bytes.len() as u64 >> 20);
        let mut attempt = 0;
        loop {
            let url = self
                .bucket
                .put_object(self.credentials.as_ref(), &key)
                .sign(SIGNED_FOR + timeout);
            self.blocks.stats.requests.fetch_add(1, Ordering::Relaxed);
            let r = self
                .client
                .request(
                    &http::Method::PUT,
                    &url,
                    &headers,
                    &bytes,
                    64 << 10,
                    timeout,
                )
                .await;
            let e = match r {
                Ok(a) if a.status.is_success() => return Ok(()),
                Ok(a) => StoreError::Status(a.status.as_u16()),
                Err(client::Failed::Timeout) => StoreError::Timeout(timeout),
                Err(client::Failed::Io(e)) => StoreError::Unreachable(e),
            };
            let again = !matches!(&e, StoreError::Status(s) if *s < 500 && *s != 429);
            if !again || attempt >= self.retries {
                self.blocks.stats.failures.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
            self.client.forget_idle();
            tokio::time::sleep(Duration::from_secs(1) * 4u32.pow(attempt.min(4))).await;
            attempt += 1;
        }
    }

    /// One request, tried again after a failure, no answer in time, or a 5xx/429 answer.
    async fn with_retries(
        &self,
        method: &http::Method,
        url: &url::Url,
        headers: &[(HeaderName, HeaderValue)],
        body: &Bytes,
        max_body: usize,
        timeout: Duration,
    ) -> Result<client::Answer, StoreError> {
        let mut attempt = 0;
        loop {
            self.blocks.stats.requests.fetch_add(1, Ordering::Relaxed);
            let r = self
                .client
                .request(method, url, headers, body, max_body, timeout)
                .await;
            let again = match &r {
                Ok(a) => a.status.is_server_error() || a.status == StatusCode::TOO_MANY_REQUESTS,
                Err(_) => true,
            };
            if !again || attempt >= self.retries {
                return match r {
                    Ok(a) => {
                        if again {
                            self.blocks.stats.failures.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(a)
                    }
                    Err(client::Failed::Timeout) => {
                        self.blocks.stats.failures.fetch_add(1, Ordering::Relaxed);
                        Err(StoreError::Timeout(timeout))
                    }
                    Err(client::Failed::Io(e)) => {
                        self.blocks.stats.failures.fetch_add(1, Ordering::Relaxed);
                        self.client.forget_idle();
                        Err(StoreError::Unreachable(e))
                    }
                };
            }
            if r.is_err() {
                self.client.forget_idle();
            }
            // 100 ms, 400 ms, ..., each between half and one and a half of that: the many
            // fetches a store's `SlowDown` failed at once come back spread out.
            let wait = Duration::from_millis(100) * 4u32.pow(attempt.min(4));
            let random = std::hash::BuildHasher::hash_one(
                &std::collections::hash_map::RandomState::new(),
                attempt,
            );
            let spread = 0.5 + (random % 1024) as f64 / 1024.0;
            tokio::time::sleep(wait.mul_f64(spread)).await;
            attempt += 1;
        }
    }
}

/// An object served as a title: which source, which key and version, how long.
#[derive(Debug)]
pub struct Object {
    pub source: Arc<Source>,
    pub key: String,
    pub len: u64,
    /// Quoted ([`Listed::etag`]).
    pub etag: String,
    /// `etag` is the store's own ([`Listed::store_etag`]).
    pub store_etag: bool,
    /// This process's number for it (the block cache's key).
    pub(crate) uid: u64,
    /// Its index could not be built because the store did not answer (the next listing
    /// indexes it again).
    index_failed: std::sync::atomic::AtomicBool,
    /// Its index was read from its `moov` alone: an unfragmented MP4, whose clips, HLS and
    /// DASH are made from that box (`store::skeleton`).
    moov: std::sync::atomic::AtomicBool,
    /// Held while its packaging is read (one read per title; the other requests for it wait
    /// here, not in the queue of every title's), with the store's last failure at that.
    pub(crate) loading: tokio::sync::Mutex<Option<(std::time::Instant, StoreError)>>,
}

impl Object {
    pub fn new(source: Arc<Source>, listed: &Listed) -> Object {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Object {
            source,
            key: listed.key.clone(),
            len: listed.len,
            etag: listed.etag.clone(),
            store_etag: listed.store_etag,
            uid: NEXT.fetch_add(1, Ordering::Relaxed),
            index_failed: std::sync::atomic::AtomicBool::new(false),
            moov: std::sync::atomic::AtomicBool::new(false),
            loading: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) fn mark_indexed_from_moov(&self) {
        self.moov.store(true, Ordering::Relaxed);
    }

    /// Whether it is an unfragmented MP4 indexed from its `moov` (see the field).
    pub fn indexed_from_moov(&self) -> bool {
        self.moov.load(Ordering::Relaxed)
    }

    pub(crate) fn mark_index_failed_by_store(&self) {
        self.index_failed.store(true, Ordering::Relaxed);
    }

    /// Whether its index failed because the store did not answer.
    pub fn index_failed_by_store(&self) -> bool {
        self.index_failed.load(Ordering::Relaxed)
    }

    /// Whether a listing found this same version. Never for an object the store lists without
    /// an ETag or a time: its version is its length alone, and an object overwritten with one of
    /// the same length would keep the old one's title (index, cached blocks).
    pub fn is(&self, listed: &Listed) -> bool {
        let told = listed.store_etag || listed.modified.is_some();
        told && self.key == listed.key && self.len == listed.len && self.etag == listed.etag
    }

    /// The bytes `range` (within the object): one cached block's slice, or several blocks
    /// joined (a copy: for indexing, not for responses).
    pub async fn read(self: &Arc<Self>, range: std::ops::Range<u64>) -> Result<Bytes, StoreError> {
        let bs = self.source.blocks.block_size;
        let end = range.end.min(self.len);
        if range.start >= end {
            return Ok(Bytes::new());
        }
        let (first, last) = (range.start / bs, (end - 1) / bs);
        if first == last {
            let b = self.source.blocks.get(self, first, first).await?;
            let at = (range.start - first * bs) as usize;
            let to = at + (end - range.start) as usize;
            if to > b.len() {
                return Err(StoreError::Short {
                    got: b.len() as u64,
                    want: to as u64,
                });
            }
            return Ok(b.slice(at..to));
        }
        let mut out = Vec::with_capacity((end - range.start) as usize);
        for n in first..=last {
            let b = self.source.blocks.get(self, n, n).await?;
            let at = n.saturating_mul(bs);
            let from = range.start.max(at) - at;
            let to = end.min(at.saturating_add(bs)) - at;
            let piece = b.get(from as usize..to as usize).ok_or(StoreError::Short {
                got: b.len() as u64,
                want: to,
            })?;
            out.extend_from_slice(piece);
        }
        Ok(out.into())
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        self.source.blocks.forget(self.uid);
    }
}

#[cfg(test)]
mod tests;
