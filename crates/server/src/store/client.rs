//! HTTP/1.1 requests to an object store with hyper's client, over plain TCP or rustls, keeping
//! idle connections for the next request (one per block fetch would cost a handshake each).

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use rustls::pki_types::ServerName;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Idle connections kept per store.
const MAX_IDLE: usize = 32;

/// The most bytes read of an error answer's body.
const ERROR_BODY: usize = 64 << 10;

/// An answer, its body read whole (up to the limit given).
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    /// Where a 206's `Content-Range` says its bytes start.
    pub content_range_start: Option<u64>,
    /// The whole object's length a 206's `Content-Range` gives (`None`: unknown, `*`).
    pub content_range_total: Option<u64>,
    /// The `ETag` the answer names its object's version by.
    pub etag: Option<String>,
    pub body: Bytes,
}

/// Why a request got no answer (an answer with any status is not an error here).
#[derive(Debug)]
pub(crate) enum Failed {
    /// No answer in time.
    Timeout,
    /// Connecting, the TLS handshake, or the exchange failed.
    Io(String),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Timeout => f.write_str("no answer in time"),
            Failed::Io(e) => f.write_str(e),
        }
    }
}

/// One endpoint (scheme, host, port) and its idle connections.
pub(crate) struct Client {
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Client {
    /// A client for the host of `url`; `tls` is needed for `https://`.
    pub(crate) fn new(
        url: &url::Url,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Client, String> {
        let host = url.host_str().ok_or("no host in the endpoint")?;
        let https = url.scheme() == "https";
        if https && tls.is_none() {
            return Err("https needs a TLS client configuration".into());
        }
        Ok(Client {
            host: host.trim_matches(['[', ']']).to_string(),
            port: url
                .port_or_known_default()
                .unwrap_or(if https { 443 } else { 80 }),
            tls: if https { tls } else { None },
            idle: Mutex::new(Vec::new()),
        })
    }

    /// `method` `url` (on this client's host) with `headers` and `body` (a `Bytes` handed to
    /// the socket as it is); the whole exchange within `timeout`, the answer's body at most
    /// `max_body` bytes.
    pub(crate) async fn request(
        &self,
        method: &http::Method,
        url: &url::Url,
        headers: &[(HeaderName, HeaderValue)],
        body: &Bytes,
        max_body: usize,
        timeout: Duration,
    ) -> Result<Answer, Failed> {
        let exchange = self.exchange(method, url, headers, body, max_body);
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r.map_err(Failed::Io),
            Err(_) => Err(Failed::Timeout),
        }
    }

    async fn exchange(
        &self,
        method: &http::Method,
        url: &url::Url,
        headers: &[(HeaderName, HeaderValue)],
        body: &Bytes,
        max_body: usize,
    ) -> Result<Answer, String> {
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let build = || {
            let mut req = Request::builder()
                .method(method)
                .uri(&path)
                .header(http::header::HOST, &authority);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            req.body(Full::new(body.clone())).map_err(|e| e.to_string())
        };
        let req = build()?;
        let pooled = self.take_idle();
        let reused = pooled.is_some();
        let mut sender = match pooled {
            Some(s) => s,
            None => self.connect().await?,
        };
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            // A kept connection the store closed meanwhile: once more on a new one (not with a
            // body: it may have gone out already).
            Err(_) if reused && body.is_empty() => {
                sender = self.connect().await?;
                sender
                    .send_request(build()?)
                    .await
                    .map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
        let (parts, body) = resp.into_parts();
        // An error's body (S3's XML, a proxy's page) is read whatever the length asked for:
        // a 412 or 404 for a block shorter than its message is that answer, not a failure to
        // read one (which would be tried again, as if the store could not be reached).
        let max_body = match parts.status.is_success() {
            true => max_body,
            false => max_body.max(ERROR_BODY),
        };
        let body = Limited::new(body, max_body)
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))?
            .to_bytes();
        self.keep(sender);
        let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
        // `bytes START-END/TOTAL`
        let range = header(http::header::CONTENT_RANGE).and_then(|v| v.strip_prefix("bytes "));
        Ok(Answer {
            status: parts.status,
            content_range_start: range
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse().ok()),
            content_range_total: range
                .and_then(|v| v.rsplit_once('/'))
                .and_then(|(_, total)| total.parse().ok()),
            etag: header(http::header::ETAG).map(str::to_string),
            body,
        })
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(s) = idle.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    fn keep(&self, s: SendRequest<Full<Bytes>>) {
        if s.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(s);
        }
    }

    /// Drops the kept connections (the store went away: the next requests connect afresh).
    pub(crate) fn forget_idle(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connecting to {}:{}: {e}", self.host, self.port))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(tcp).await,
            Some(tls) => {
                let name = ServerName::try_from(self.host.clone()).map_err(|e| e.to_string())?;
                let stream = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS with {}: {e}", self.host))?;
                handshake(stream).await
            }
        }
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}
