//! HTTP callbacks, in the style of SRS's hooks: `on_publish` and `on_play` are asked (a JSON
//! POST) before a publisher or viewer is let in, after its credentials pass; `on_unpublish` is
//! told when a publisher's session ends. A 2xx answer admits; any other status refuses (403);
//! no answer within the timeout, or a connection error, refuses too unless `fail_open` is set.
//!
//! The body: `{"action": "publish" | "play" | "unpublish", "stream": NAME, "client": "IP:PORT",
//! "protocol": "http" | "https" | "rtmp" | "rtmps" | "hls", "query": "..."}`.
//!
//! Callback URLs are `http://` or `https://` (checked against the system's CA bundle, or `ca`);
//! the request is one HTTP/1.1 POST on a fresh connection (`outbound.rs`).
//!
//! An `on_play` answer (2xx or a refusal, not silence) holds for [`PLAY_MEMO`] for the same
//! stream, client address, protocol and query: a player reloading its playlist every part
//! (LL-HLS: four times a second) asks the service once in that time, not at every reload, which
//! would also run a busy server out of ports to it (the blocking-reload parameters `_HLS_*`
//! are not part of the query remembered; a query over 512 bytes is not remembered). At most
//! [`IN_FLIGHT`] calls wait for an answer at once; one more waits its turn for as long as the
//! callback's timeout, then is refused as unanswered (admitted under `fail_open`).

use bytes::Bytes;
use http::StatusCode;
pub use http::Uri;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an `on_play` answer holds for the same request.
pub const PLAY_MEMO: Duration = Duration::from_secs(5);
/// Calls waiting for an answer at once, at most.
pub const IN_FLIGHT: usize = 256;
/// Answers remembered at most (then none more until the old ones expire).
const MEMO_ENTRIES: usize = 16_384;
/// The longest query remembered (a longer one is asked about every time): with
/// [`MEMO_ENTRIES`], at most 8 MiB of queries.
const MEMO_QUERY: usize = 512;

/// The query an answer is remembered under: without the blocking-reload parameters
/// (`_HLS_msn`, `_HLS_part`, `_HLS_skip`), which change at every reload; `None` when too long.
fn memo_query(query: Option<&str>) -> Option<String> {
    let kept: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("_HLS_"))
        .collect();
    let q = kept.join("&");
    (q.len() <= MEMO_QUERY).then_some(q)
}

/// (stream, client IP, protocol, query) → when it was answered, and what.
type Memo = HashMap<(String, IpAddr, &'static str, String), (Instant, Result<(), HookError>)>;

/// The configured callbacks.
#[derive(Debug, Clone)]
pub struct Hooks {
    pub on_publish: Option<Uri>,
    pub on_play: Option<Uri>,
    pub on_unpublish: Option<Uri>,
    pub timeout: Duration,
    /// Admit when the callback cannot be reached or times out (default: refuse).
    pub fail_open: bool,
    /// For `https://` callbacks: the CA that signs the service's certificate (PEM); `None`: the
    /// system's bundle.
    pub ca: Option<std::path::PathBuf>,
    /// The TLS client configuration, made at the first `https://` call.
    tls: std::sync::Arc<std::sync::OnceLock<Result<std::sync::Arc<rustls::ClientConfig>, String>>>,
    /// Recent `on_play` answers ([`PLAY_MEMO`]).
    memo: Arc<Mutex<Memo>>,
    /// Calls waiting for an answer ([`IN_FLIGHT`]).
    calls: Arc<tokio::sync::Semaphore>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            on_publish: None,
            on_play: None,
            on_unpublish: None,
            timeout: Duration::from_secs(3),
            fail_open: false,
            ca: None,
            tls: Default::default(),
            memo: Default::default(),
            calls: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)),
        }
    }
}

/// Which callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Publish,
    Play,
    Unpublish,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Publish => "publish",
            Event::Play => "play",
            Event::Unpublish => "unpublish",
        }
    }
}

/// One call's facts.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub event: Event,
    pub stream: &'a str,
    pub client: SocketAddr,
    pub protocol: &'static str,
    pub query: Option<&'a str>,
}

/// Why a callback refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("refused by the on_{0} callback (it answered {1})")]
    Refused(&'static str, u16),
    /// (Why it did not: for the log, not for the client, who is told only that it did not.)
    #[error("the on_{0} callback did not answer")]
    Unreachable(&'static str, String),
}

/// Checks a callback URL from the config.
pub fn parse_url(s: &str) -> Result<Uri, String> {
    let uri: Uri = s.parse().map_err(|e| format!("'{s}': {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(format!(
            "'{s}': a callback URL is http(s)://HOST[:PORT]/PATH"
        ));
    }
    Ok(uri)
}

/// The JSON body of a call.
pub fn body(call: &Call<'_>) -> String {
    serde_json::json!({
        "action": call.event.name(),
        "stream": call.stream,
        "client": call.client.to_string(),
        "protocol": call.protocol,
        "query": call.query.unwrap_or(""),
    })
    .to_string()
}

/// What an answer (or its absence) decides.
pub fn decide(
    event: Event,
    answer: Result<StatusCode, String>,
    fail_open: bool,
) -> Result<(), HookError> {
    match answer {
        Ok(s) if s.is_success() => Ok(()),
        Ok(s) => Err(HookError::Refused(event.name(), s.as_u16())),
        Err(_) if fail_open => Ok(()),
        Err(why) => Err(HookError::Unreachable(event.name(), why)),
    }
}

impl Hooks {
    /// The TLS client configuration an `https://` URL needs (made once).
    fn tls_for(&self, url: &Uri) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, String> {
        if url.scheme_str() != Some("https") {
            return Ok(None);
        }
        let made = self
            .tls
            .get_or_init(|| crate::outbound::tls_client(self.ca.as_deref()));
        made.clone().map(Some)
    }

    /// Makes the TLS client an `https://` callback needs now, so that a CA file that cannot be
    /// read is an error at start (or reload), not a refusal of every publisher later.
    pub fn ready(&self) -> Result<(), String> {
        // Without `ca`, the system's bundle, read at the first call (`fail_open` may cover a
        // host without one).
        if self.ca.is_none() {
            return Ok(());
        }
        for url in [&self.on_publish, &self.on_play, &self.on_unpublish]
            .into_iter()
            .flatten()
        {
            self.tls_for(url)?;
        }
        Ok(())
    }

    fn url(&self, event: Event) -> Option<&Uri> {
        match event {
            Event::Publish => self.on_publish.as_ref(),
            Event::Play => self.on_play.as_ref(),
            Event::Unpublish => self.on_unpublish.as_ref(),
        }
    }

    /// Asks the callback for `call` (admits at once when that callback is not configured).
    pub async fn ask(&self, call: Call<'_>) -> Result<(), HookError> {
        let Some(url) = self.url(call.event) else {
            return Ok(());
        };
        let key = (call.event == Event::Play)
            .then(|| memo_query(call.query))
            .flatten()
            .map(|q| (call.stream.to_string(), call.client.ip(), call.protocol, q));
        if let Some(answered) = key.as_ref().and_then(|k| self.recall(k)) {
            return answered;
        }
        let tls = match self.tls_for(url) {
            Ok(t) => t,
            Err(e) => return decide(call.event, Err(e), self.fail_open),
        };
        // A burst (a popular stream starting) waits its turn, within the callback's timeout.
        let Ok(Ok(_calling)) = tokio::time::timeout(self.timeout, self.calls.acquire()).await
        else {
            let busy = format!("{IN_FLIGHT} callbacks already waiting for an answer");
            return decide(call.event, Err(busy), self.fail_open);
        };
        let answer = match tokio::time::timeout(self.timeout, post(url, body(&call), tls)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        };
        // What the service said holds a while; silence is asked about again.
        if let (Some(k), Ok(status)) = (key, &answer) {
            self.remember(k, decide(call.event, Ok(*status), false));
        }
        let decided = decide(call.event, answer, self.fail_open);
        if let Err(e) = &decided {
            let why = match e {
                HookError::Unreachable(_, why) => why.as_str(),
                HookError::Refused(..) => "",
            };
            tracing::info!(stream = %crate::clip::Clip(call.stream), client = %call.client, error = %e, why, "callback refused");
        }
        decided
    }

    /// The answer to the same `on_play` call within [`PLAY_MEMO`].
    fn recall(
        &self,
        key: &(String, IpAddr, &'static str, String),
    ) -> Option<Result<(), HookError>> {
        let memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        let (at, answer) = memo.get(key)?;
        (at.elapsed() < PLAY_MEMO).then(|| answer.clone())
    }

    fn remember(&self, key: (String, IpAddr, &'static str, String), answer: Result<(), HookError>) {
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        if memo.len() >= MEMO_ENTRIES {
            memo.retain(|_, (at, _)| at.elapsed() < PLAY_MEMO);
        }
        if memo.len() < MEMO_ENTRIES {
            memo.insert(key, (Instant::now(), answer));
        }
    }

    /// Tells the callback (`on_unpublish`), without waiting for it.
    pub fn tell(&self, call: Call<'_>) {
        let Some(url) = self.url(call.event).cloned() else {
            return;
        };
        let (body, timeout) = (body(&call), self.timeout);
        let tls = match self.tls_for(&url) {
            Ok(t) => t,
            Err(e) => {
                tracing::info!(url = %url, error = %e, "on_unpublish callback failed");
                return;
            }
        };
        tokio::spawn(async move {
            if let Ok(Err(e)) | Err(e) = tokio::time::timeout(timeout, post(&url, body, tls))
                .await
                .map_err(|_| "timed out".to_string())
                .map(|r| r.map(|_| ()))
            {
                tracing::info!(url = %url, error = %e, "on_unpublish callback failed");
            }
        });
    }
}

/// One JSON POST; the answer's status.
async fn post(
    url: &Uri,
    body: String,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> Result<StatusCode, String> {
    let json = Some("application/json");
    let body = Bytes::from(body);
    let r = crate::outbound::request(http::Method::POST, url, json, body, tls.as_ref()).await;
    r.map(|(status, _)| status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2xx_admits_other_statuses_refuse_and_silence_refuses_unless_fail_open() {
        let e = Event::Publish;
        assert_eq!(decide(e, Ok(StatusCode::NO_CONTENT), false), Ok(()));
        assert_eq!(
            decide(e, Ok(StatusCode::INTERNAL_SERVER_ERROR), false),
            Err(HookError::Refused("publish", 500))
        );
        assert_eq!(
            decide(e, Ok(StatusCode::INTERNAL_SERVER_ERROR), true),
            Err(HookError::Refused("publish", 500)),
            "a refusal is a refusal even when fail-open"
        );
        assert!(matches!(
            decide(e, Err("timeout".into()), false),
            Err(HookError::Unreachable(..))
        ));
        assert_eq!(decide(e, Err("timeout".into()), true), Ok(()));
    }

    #[test]
    fn the_body_names_the_action_stream_client_protocol_and_query() {
        let call = Call {
            event: Event::Play,
            stream: "show",
            client: "10.0.0.1:5000".parse().unwrap(),
            protocol: "rtmp",
            query: Some("token=1"),
        };
        let v: serde_json::Value = serde_json::from_str(&body(&call)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"action": "play", "stream": "show", "client": "10.0.0.1:5000",
                               "protocol": "rtmp", "query": "token=1"})
        );
    }

    #[test]
    fn an_answer_is_remembered_without_the_blocking_reload_directives_and_not_for_long_queries() {
        assert_eq!(
            memo_query(Some("_HLS_msn=5&_HLS_part=2&token=a&_HLS_skip=YES")).as_deref(),
            Some("token=a")
        );
        assert_eq!(memo_query(None).as_deref(), Some(""));
        assert_eq!(memo_query(Some(&"x".repeat(MEMO_QUERY + 1))), None);
    }

    #[test]
    fn callback_urls_are_http_or_https_with_a_host() {
        assert!(parse_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(parse_url("https://auth.example/hook").is_ok());
        assert!(parse_url("ftp://auth.example/hook").is_err());
        assert!(parse_url("/hook").is_err());
    }
}
