//! `library` entries that name buckets (`s3://bucket/prefix`) and the `[s3]` table: titles in
//! S3-compatible object storage (`server::store`).

use super::FileConfig;
use crate::size;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use server::store::{S3Source, StoreConfig};
use std::path::PathBuf;
use std::time::Duration;

/// `library = "DIR"`, `library = "s3://bucket/prefix"`, or a list of them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum LibraryFile {
    One(String),
    Many(Vec<String>),
}

impl LibraryFile {
    pub(super) fn entries(&self) -> Vec<String> {
        match self {
            LibraryFile::One(s) => vec![s.clone()],
            LibraryFile::Many(v) => v.clone(),
        }
    }
}

/// The `[s3]` table: settings of every `s3://` library entry; what it leaves out comes from
/// the AWS environment variables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3File {
    /// `http(s)://host:port` of an S3-compatible server (default: `AWS_ENDPOINT_URL`, else AWS).
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    /// Path-style URLs (default: on with an endpoint, off for AWS).
    path_style: Option<bool>,
    /// CAs for an `https://` endpoint (PEM; default: the system's bundle).
    pub(super) ca: Option<PathBuf>,
    /// Bytes per block fetched and cached (default 1MiB; 64KiB to 64MiB).
    block_size: Option<String>,
    /// Blocks fetched ahead of a viewer reading on (default 2).
    read_ahead: Option<u64>,
    /// Relist the buckets this often (default 300; 0: on SIGHUP only).
    relist_secs: Option<u64>,
    /// How long the start waits for the first listing before serving the rest (default 20).
    start_wait_secs: Option<u64>,
    /// One request's limit (default 10).
    timeout_secs: Option<u64>,
    /// Further tries of a failed request (default 2).
    retries: Option<u32>,
    /// Most bytes read to index a title other than an unfragmented MP4 (default 256MiB).
    index_max: Option<String>,
}

/// The library: at most one directory (`None`: the demo library, unless buckets are named),
/// and the object-storage settings with a source per `s3://` entry.
pub(super) fn library(
    flags: &[String],
    file: &FileConfig,
) -> Result<(Option<PathBuf>, StoreConfig)> {
    let entries = match (flags, &file.library) {
        ([], Some(l)) => l.entries(),
        (flags, _) => flags.to_vec(),
    };
    let (buckets, dirs): (Vec<String>, Vec<String>) =
        entries.into_iter().partition(|e| e.starts_with("s3://"));
    if dirs.len() > 1 {
        bail!("library: one directory at most (besides any number of s3:// buckets), got {dirs:?}");
    }
    let mut store = StoreConfig::default();
    let s3 = file.s3.clone().unwrap_or_default();
    for url in buckets {
        let source = source(&url, file.s3.as_ref());
        source
            .bucket_and_prefix()
            .map_err(anyhow::Error::msg)
            .context("library")?;
        store.sources.push(source);
    }
    let uploads = file.record.iter().any(|r| r.uploads());
    if store.sources.is_empty() && file.s3.is_some() && !uploads {
        bail!(
            "[s3] needs a library entry that names a bucket (library = \"s3://bucket/prefix\") \
             or a [[record]] upload"
        );
    }
    if let Some(b) = &s3.block_size {
        let b = size::parse(b)
            .map_err(anyhow::Error::msg)
            .context("[s3] block_size")?;
        if !(64 << 10..=64 << 20).contains(&b) {
            bail!("[s3] block_size: from 64KiB to 64MiB");
        }
        store.block_size = b;
    }
    if let Some(n) = s3.read_ahead {
        store.read_ahead = n.min(16);
    }
    for (key, secs) in [
        ("s3.relist_secs", s3.relist_secs),
        ("s3.start_wait_secs", s3.start_wait_secs),
        ("s3.timeout_secs", s3.timeout_secs),
    ] {
        super::at_most_ten_years(key, secs)?;
    }
    if let Some(s) = s3.relist_secs {
        store.relist = (s > 0).then(|| Duration::from_secs(s));
    }
    if let Some(s) = s3.start_wait_secs {
        store.start_wait = Duration::from_secs(s);
    }
    if let Some(s) = s3.timeout_secs {
        store.timeout = Duration::from_secs(s.max(1));
    }
    if let Some(n) = s3.retries {
        store.retries = n.min(10);
    }
    if let Some(m) = &s3.index_max {
        store.index_max = size::parse(m)
            .map_err(anyhow::Error::msg)
            .context("[s3] index_max")?;
    }
    Ok((dirs.into_iter().next().map(PathBuf::from), store))
}

/// The source `url` with the `[s3]` table's settings (the environment fills the rest later).
pub(super) fn source(url: &str, s3: Option<&S3File>) -> S3Source {
    let s3 = s3.cloned().unwrap_or_default();
    S3Source {
        url: url.to_string(),
        endpoint: s3.endpoint,
        region: s3.region,
        access_key_id: s3.access_key_id,
        secret_access_key: s3.secret_access_key,
        session_token: s3.session_token,
        path_style: s3.path_style,
        ca: s3.ca,
    }
}
