//! Object storage's settings: a `library = "s3://…"` entry and the `[s3]` table, completed from
//! the environment variables the AWS SDKs read.

use std::path::PathBuf;
use std::time::Duration;

/// One S3 source as configured; what the config leaves out comes from the environment variables
/// the AWS SDKs read ([`S3Source::with_env`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Source {
    /// `s3://bucket` or `s3://bucket/prefix`: the titles are the objects under the prefix, their
    /// ids the keys after it.
    pub url: String,
    /// `http(s)://host[:port]` of an S3-compatible server; AWS's regional endpoint when unset.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Path-style URLs (`endpoint/bucket/key`); default: on with an endpoint, off for AWS.
    pub path_style: Option<bool>,
    /// A CA file for an `https://` endpoint (default: the system's bundle).
    pub ca: Option<PathBuf>,
}

impl S3Source {
    /// Fills what is unset from `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, `AWS_REGION` /
    /// `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`
    /// (`var` reads one; empty values count as unset, as in the SDKs).
    pub fn with_env(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |n: &str| var(n).filter(|v| !v.trim().is_empty());
        self.endpoint = self
            .endpoint
            .or_else(|| var("AWS_ENDPOINT_URL_S3"))
            .or_else(|| var("AWS_ENDPOINT_URL"));
        self.region = self
            .region
            .or_else(|| var("AWS_REGION"))
            .or_else(|| var("AWS_DEFAULT_REGION"));
        if self.access_key_id.is_none() && self.secret_access_key.is_none() {
            self.access_key_id = var("AWS_ACCESS_KEY_ID");
            self.secret_access_key = var("AWS_SECRET_ACCESS_KEY");
            self.session_token = self.session_token.or_else(|| var("AWS_SESSION_TOKEN"));
        }
        self
    }

    /// The bucket and the prefix (empty, or ending in `/`) of `s3://bucket/prefix`.
    pub fn bucket_and_prefix(&self) -> Result<(String, String), String> {
        let rest = self
            .url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{:?}: not an s3:// URL", self.url))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c);
        if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(ok) {
            return Err(format!(
                "{:?}: bucket names are 3 to 63 lowercase letters, digits, '.' or '-'",
                self.url
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == ".." || p == ".") {
            return Err(format!(
                "{:?}: the prefix may not hold '.' or '..'",
                self.url
            ));
        }
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        Ok((bucket.to_string(), prefix))
    }
}

/// The object-storage settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub sources: Vec<S3Source>,
    /// Bytes fetched per request and cached per entry (aligned: block n is `n*block_size..`).
    pub block_size: u64,
    /// Blocks fetched ahead of a viewer that reads on.
    pub read_ahead: u64,
    /// Relist every source this often (`None`: on SIGHUP only).
    pub relist: Option<Duration>,
    /// How long the server waits at start for the first listing before it serves the rest (the
    /// listing goes on; its titles are served when it ends).
    pub start_wait: Duration,
    /// One request's limit (connect, answer, body).
    pub timeout: Duration,
    /// Further tries of a request that failed or timed out (with a backoff of 100 ms × 4ⁿ).
    pub retries: u32,
    /// The most bytes read to index a title that is not an unfragmented MP4 (those read only
    /// their box headers and `moov`); a larger one is served without seek.
    pub index_max: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            sources: Vec::new(),
            block_size: 1 << 20,
            read_ahead: 2,
            relist: Some(Duration::from_secs(300)),
            start_wait: Duration::from_secs(20),
            timeout: Duration::from_secs(10),
            retries: 2,
            index_max: 256 << 20,
        }
    }
}
