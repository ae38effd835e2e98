//! Titles in object storage: built from each source's listing (indexed by Range reads,
//! `store::index`), and the library's set of them replaced on each relist. An object whose key,
//! length and ETag are unchanged keeps its title (and its index and cached blocks); a source
//! that cannot be listed keeps the titles it had.

use super::{Library, Title};
use crate::store::{kept, Listed, Object, Source};
use bytes::Bytes;
use media::{Container, MediaInfo};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Titles indexed at once while listing.
const INDEXING: usize = 8;

impl Title {
    /// A title whose bytes are the object's (its ETag is the object's: every server reading the
    /// bucket gives the same).
    pub fn stored(
        id: String,
        obj: Arc<Object>,
        container: Container,
        index: Result<MediaInfo, String>,
        modified: SystemTime,
    ) -> Title {
        // Built with its id: a recording's name says when it began, in a bucket as on disk.
        let mut t = Title::new(id, Bytes::new(), false, obj.etag.clone(), modified);
        t.container = container;
        t.index = index;
        t.remote = Some(obj);
        t
    }

    /// Its length: its bytes', or its object's.
    pub fn len(&self) -> u64 {
        match &self.remote {
            Some(o) => o.len,
            None => self.data.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Library {
    /// This library with `stored` as its titles in object storage.
    pub fn with_stored(&self, stored: BTreeMap<String, Arc<Title>>) -> Library {
        let mut next = self.clone();
        next.stored = Arc::new(stored);
        next
    }

    /// Its titles in object storage.
    pub fn stored(&self) -> impl Iterator<Item = &Arc<Title>> {
        self.stored.values()
    }
}

/// What a listing did, for the log.
#[derive(Debug, Default)]
pub struct Listing {
    pub titles: usize,
    pub indexed: usize,
    pub kept: usize,
    /// Sources that could not be listed (their titles kept), with why.
    pub failed: Vec<(String, String)>,
    pub took: Duration,
}

/// Lists every source and builds the titles they hold; `previous` gives the titles kept.
pub async fn list(
    sources: &[Arc<Source>],
    previous: &Library,
    index_max: u64,
) -> (BTreeMap<String, Arc<Title>>, Listing) {
    let started = Instant::now();
    let mut out = BTreeMap::new();
    let mut report = Listing::default();
    for source in sources {
        let of_source = |t: &&Arc<Title>| {
            t.remote
                .as_ref()
                .is_some_and(|o| Arc::ptr_eq(&o.source, source))
        };
        let listed = match source.list().await {
            Ok(l) => l,
            Err(e) => {
                report.failed.push((source.url.clone(), e.to_string()));
                for t in previous.stored().filter(of_source) {
                    out.entry(t.id.clone()).or_insert_with(|| t.clone());
                }
                continue;
            }
        };
        let first = !previous.stored().any(|t| of_source(&t));
        if let (Some(dir), true) = (crate::etags::cache_dir(), first) {
            // Kept indexes of versions the bucket no longer holds: once, at the source's first
            // listing of this run (a hash per object, off the async threads).
            let (url, names) = (source.url.clone(), listed.clone());
            let _ = tokio::task::spawn_blocking(move || kept::prune(&dir, &url, &names)).await;
        }
        let mut todo = Vec::new();
        for l in listed {
            if out.contains_key(&l.id) {
                continue; // an earlier source has this id
            }
            // The same version, indexed (a title whose index failed because the store did
            // not answer is indexed again).
            let old = previous.stored.get(&l.id).filter(|t| {
                t.remote.as_ref().is_some_and(|o| {
                    Arc::ptr_eq(&o.source, source) && o.is(&l) && !o.index_failed_by_store()
                })
            });
            match old {
                Some(t) => {
                    report.kept += 1;
                    out.insert(l.id.clone(), t.clone());
                }
                None => todo.push(l),
            }
        }
        report.indexed += todo.len();
        for batch in todo.chunks(INDEXING) {
            let mut set = tokio::task::JoinSet::new();
            for l in batch {
                let (source, l) = (source.clone(), l.clone());
                set.spawn(async move { build(source, l, index_max).await });
            }
            while let Some(t) = set.join_next().await {
                if let Ok(t) = t {
                    out.entry(t.id.clone()).or_insert_with(|| Arc::new(t));
                }
            }
        }
    }
    report.titles = out.len();
    report.took = started.elapsed();
    (out, report)
}

async fn build(source: Arc<Source>, l: Listed, index_max: u64) -> Title {
    let obj = Arc::new(Object::new(source.clone(), &l));
    // An index kept from an earlier start, for exactly this version of the object.
    let dir = crate::etags::cache_dir();
    let kept = match &dir {
        Some(d) => {
            let (d, url, l) = (d.clone(), source.url.clone(), l.clone());
            tokio::task::spawn_blocking(move || kept::load(&d, &url, &l))
                .await
                .ok()
                .flatten()
        }
        None => None,
    };
    let was_kept = kept.is_some();
    let (container, index) = match kept {
        Some((c, i, moov)) => {
            if moov {
                obj.mark_indexed_from_moov();
            }
            (c, Ok(i))
        }
        None => crate::store::index(&obj, index_max).await,
    };
    if let (Some(d), Ok(i), false) = (dir, &index, was_kept) {
        let (url, l2, i, moov) = (
            source.url.clone(),
            l.clone(),
            i.clone(),
            obj.indexed_from_moov(),
        );
        let saved =
            tokio::task::spawn_blocking(move || kept::save(&d, &url, &l2, container, &i, moov));
        if let Ok(Err(e)) = saved.await {
            tracing::debug!(error = %e, id = %l.id, "the index could not be kept in the cache directory");
        }
    }
    match &index {
        Ok(i) => tracing::info!(id = %l.id, bytes = l.len, container = container.name(),
            keyframes = i.keyframes.len(), duration = i.duration.as_secs_f64(), kept = was_kept, "listed"),
        Err(e) => tracing::warn!(id = %l.id, bytes = l.len, reason = %e,
            "cannot index; served as plain bytes without seek"),
    }
    let modified = l.modified.unwrap_or(UNIX_EPOCH);
    Title::stored(l.id, obj, container, index, modified)
}

/// Packagings read from the store at once, all titles together (each holds a `moov` of up to
/// `index_max` bytes while it is read).
static LOADING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// After the store failed to give a title's packaging, the requests for it in this long are
/// told so at once (rather than each waiting for the store's tries in turn).
const FAILED_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// A response that needs a title's packaging read from its store first carries this: the
/// async shells read it ([`Title::load_package`]) and answer the request again.
#[derive(Debug, Clone)]
pub struct LoadPackage(pub Arc<Title>);

impl LoadPackage {
    /// Whether `resp` asks for a title's packaging to be read first.
    pub fn asked<T>(resp: &http::Response<T>) -> bool {
        resp.extensions().get::<LoadPackage>().is_some()
    }
}

impl Title {
    /// Reads what the packaging of an MP4 in object storage is built from (its `ftyp` and
    /// `moov`, through the block cache) and builds it; a title that cannot be packaged keeps the
    /// reason (clips and playlists of it then say why). An error of the store leaves it to be
    /// read again by the next request.
    pub async fn load_package(&self, index_max: u64) -> Result<(), crate::store::StoreError> {
        let Some(obj) = &self.remote else {
            return Ok(());
        };
        // One read per title (the next request for it finds it built, or the store's failure
        // of a moment ago), and a few titles at a time: a burst of first requests after a
        // start reads each `moov` once, and a store that stalls on one title holds up the
        // requests for that title, not every title's.
        let mut failed = obj.loading.lock().await;
        if !self.package_pending() {
            return Ok(());
        }
        if let Some((at, e)) = &*failed {
            if at.elapsed() < FAILED_FOR {
                return Err(e.clone());
            }
        }
        let _turn = LOADING.acquire().await;
        let skeleton = match crate::store::skeleton(obj, index_max).await {
            Ok(s) => s,
            Err(e) => {
                *failed = Some((std::time::Instant::now(), e.clone()));
                return Err(e);
            }
        };
        let built = skeleton
            .and_then(|s| crate::package::Package::build_stored(&s, obj.len))
            .map(Arc::new);
        let _ = self.package.set(built);
        Ok(())
    }
}
