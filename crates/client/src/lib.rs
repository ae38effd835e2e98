//! zerocast client: the two calls a player makes.
//!
//! - [`timecode_to_index`]: "where does `01:09:14:28` start in this video?" → a byte offset (asks the
//!   server's `/api/videos/{id}/seek`).
//! - [`request_chunk`]: "send me `size` bytes from `offset`" → streamed into any `AsyncWrite` as
//!   the frames arrive, never buffered whole.
//!
//! - [`live::publish`] and [`live::watch`]: push an MPEG-TS file to a live stream in real time,
//!   and follow one.
//!
//! Plain HTTP/1.1 over one TCP connection per call (hyper's client connection, no pool).

pub mod live;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a call failed. A message includes its cause and no variant has a `source()` (a chain
/// printer would show the cause twice).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A URL the call cannot take (bad usage, not a failure of the server).
    #[error("bad URL '{url}': expected {expected}")]
    BadUrl { url: String, expected: &'static str },
    #[error("cannot connect to {addr}: {error}")]
    Connect { addr: String, error: std::io::Error },
    #[error("{url}: {status}: {message}")]
    Status {
        url: String,
        status: StatusCode,
        message: String,
    },
    #[error("HTTP error talking to {addr}: {error}")]
    Http { addr: String, error: hyper::Error },
    #[error("the server sent {got} bytes, {expected} were expected")]
    ShortBody { expected: u64, got: u64 },
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    #[error("writing the output: {0}")]
    Output(std::io::Error),
    #[error("{addr} did not {what} within {} s", TIMEOUT.as_secs())]
    Timeout { addr: String, what: &'static str },
}

/// How long a call waits for the server to connect, to answer, and between two pieces of a body.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `fut`, or [`Error::Timeout`] after [`TIMEOUT`].
pub(crate) async fn within<T>(
    addr: &str,
    what: &'static str,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            addr: addr.to_string(),
            what,
        }),
    }
}

/// A TCP connection to `addr` (`host:port`), with no delay, or an error after [`TIMEOUT`].
pub(crate) async fn connect(addr: &str) -> Result<TcpStream> {
    let tcp = within(addr, "accept the connection", async {
        TcpStream::connect(addr)
            .await
            .map_err(|error| Error::Connect {
                addr: addr.to_string(),
                error,
            })
    })
    .await?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// The next frame of a body: `None` at its end, an error past [`TIMEOUT`] without one.
async fn next_frame(
    addr: &str,
    body: &mut hyper::body::Incoming,
) -> Result<Option<hyper::body::Frame<Bytes>>> {
    within(addr, "send more of the body", async {
        body.frame().await.transpose().map_err(|error| Error::Http {
            addr: addr.to_string(),
            error,
        })
    })
    .await
}

impl Error {
    /// True for "no such video" (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }

    /// True when the server cannot do this for this video (HTTP 422: a clip of a container it
    /// does not clip, a seek in a title without keyframes).
    pub fn is_unprocessable(&self) -> bool {
        matches!(self, Error::Status { status, .. } if *status == StatusCode::UNPROCESSABLE_ENTITY)
    }

    /// True for a URL the call cannot take: bad usage.
    pub fn is_bad_url(&self) -> bool {
        matches!(self, Error::BadUrl { .. })
    }

    /// True when the output was closed by its reader (`zerocast get ... | head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A video's URL split into the parts we need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoUrl {
    /// `host:port`
    pub authority: String,
    /// The id, percent-encoded as in the URL.
    pub id: String,
    /// The URL's query, sent on with every request made of it.
    pub query: Option<String>,
}

impl VideoUrl {
    pub fn parse(url: &str) -> Result<Self> {
        let bad = || Error::BadUrl {
            url: shown(url),
            expected: "http://HOST[:PORT]/videos/ID",
        };
        let uri: Uri = url.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("http") {
            return Err(bad());
        }
        let authority = uri.authority().and_then(authority).ok_or_else(bad)?;
        let id = uri
            .path()
            .strip_prefix("/videos/")
            .filter(|id| !id.is_empty())
            .ok_or_else(bad)?;
        Ok(VideoUrl {
            authority,
            id: id.to_string(),
            query: uri.query().filter(|q| !q.is_empty()).map(String::from),
        })
    }

    /// `&` and the URL's own query (a signed link's `expires` and `sig`, a `jwt`), to be sent
    /// on with every request made of it; empty without one.
    fn carried(&self) -> String {
        self.query
            .as_ref()
            .map_or(String::new(), |q| format!("&{q}"))
    }

    pub fn video_path(&self) -> String {
        match &self.query {
            Some(q) => format!("/videos/{}?{q}", self.id),
            None => format!("/videos/{}", self.id),
        }
    }

    pub fn seek_path(&self, timecode: &str) -> String {
        let t: String =
            percent_encoding::utf8_percent_encode(timecode, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        format!("/api/videos/{}/seek?t={t}{}", self.id, self.carried())
    }

    /// The path of the clip between two times (an absent start is the beginning, an absent end
    /// the end).
    pub fn clip_path(&self, start: Option<&str>, end: Option<&str>) -> String {
        let enc = |t: &str| {
            percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let mut q = Vec::new();
        if let Some(s) = start {
            q.push(format!("start={}", enc(s)));
        }
        if let Some(e) = end {
            q.push(format!("end={}", enc(e)));
        }
        format!("/videos/{}?{}{}", self.id, q.join("&"), self.carried())
    }
}

/// A point in time as the server describes it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TimePoint {
    pub seconds: f64,
    pub timecode: Option<String>,
}

/// The server's answer to a seek.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Seek {
    pub offset: u64,
    pub keyframe: TimePoint,
    pub keyframe_index: usize,
    pub requested: TimePoint,
    pub frame_rate: Option<String>,
    pub size: u64,
}

async fn send(
    url: &VideoUrl,
    path: &str,
    range: Option<String>,
) -> Result<hyper::Response<hyper::body::Incoming>> {
    let addr = url.authority.clone();
    let tcp = connect(&addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|error| Error::Http {
            addr: addr.clone(),
            error,
        })?;
    tokio::spawn(conn);
    let mut req = Request::get(path).header(http::header::HOST, &addr);
    if let Some(r) = range {
        req = req.header(http::header::RANGE, r);
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| Error::Protocol(e.to_string()))?;
    within(&addr, "answer", async {
        sender.send_request(req).await.map_err(|error| Error::Http {
            addr: addr.clone(),
            error,
        })
    })
    .await
}

/// `url` as an error shows it: without its query (a signed link's `sig`, a `jwt`, a `key`) or
/// credentials. Whatever comes before the last `@` after the scheme is left out, wherever it is
/// (a password may hold `/`, `?` or `#`; a URL with `@` in its path or query is shown cut).
pub(crate) fn shown(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    match scheme {
        Some(scheme) => format!("{scheme}://{rest}"),
        None => rest.to_string(),
    }
}

/// `host:port` of `auth` (port 80 when none); `None` for one with credentials (`user:pw@`),
/// which the client does not send.
pub(crate) fn authority(auth: &http::uri::Authority) -> Option<String> {
    if auth.as_str().contains('@') {
        return None;
    }
    Some(match auth.port_u16() {
        Some(_) => auth.to_string(),
        None => format!("{}:80", auth.host()),
    })
}

/// Reads an error document's message (bounded) from a failed response.
async fn failure(url: &str, resp: hyper::Response<hyper::body::Incoming>) -> Error {
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), 64 * 1024);
    let message = match tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
    {
        Ok(b) => {
            let b = b.to_bytes();
            serde_json::from_slice::<serde_json::Value>(&b)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(&b).trim().to_string())
        }
        Err(_) => String::new(),
    };
    Error::Status {
        url: shown(url),
        status,
        message: printable(&message, 300),
    }
}

/// Text from a server, fit for a terminal: control characters (escape sequences, carriage
/// returns) and the marks that reorder text (bidirectional overrides and isolates) become
/// spaces, and at most `max` characters are kept (an HTML error page whole says nothing more).
pub fn printable(text: &str, max: usize) -> String {
    let reorders = |c: char| matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_control() || reorders(c) {
                ' '
            } else {
                c
            }
        })
        .take(max)
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Resolves a timecode (`01:09:14:28`, `01:09:14;28`, `4154.93`, `1h9m14s`) to the byte offset of
/// the keyframe at or before it.
pub async fn timecode_to_index(video: &str, timecode: &str) -> Result<Seek> {
    let url = VideoUrl::parse(video)?;
    let resp = send(&url, &url.seek_path(timecode), None).await?;
    if !resp.status().is_success() {
        return Err(failure(video, resp).await);
    }
    let body = within(&url.authority, "send its answer", async {
        http_body_util::Limited::new(resp.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| Error::Protocol(e.to_string()))
    })
    .await?
    .to_bytes();
    let mut seek: Seek =
        serde_json::from_slice(&body).map_err(|e| Error::Protocol(format!("seek answer: {e}")))?;
    // Printed as they came: no terminal escapes from a server.
    let texts = [
        &mut seek.keyframe.timecode,
        &mut seek.requested.timecode,
        &mut seek.frame_rate,
    ];
    for t in texts.into_iter().flatten() {
        *t = printable(t, 64);
    }
    Ok(seek)
}

/// Fetches `size` bytes of `video` from `offset` (fewer at the end of the video) and streams them
/// into `out` as they arrive. Returns the number of bytes written.
pub async fn request_chunk<W: AsyncWrite + Unpin>(
    video: &str,
    offset: u64,
    size: u64,
    out: &mut W,
) -> Result<u64> {
    let url = VideoUrl::parse(video)?;
    range_into(&url, video, &url.video_path(), offset, size, out).await
}

/// Fetches the clip of `video` between two times (a file of the video's container that players
/// open) into `out`: all of it, or its first `size` bytes. Returns the number of bytes written.
pub async fn request_clip<W: AsyncWrite + Unpin>(
    video: &str,
    start: Option<&str>,
    end: Option<&str>,
    size: Option<u64>,
    out: &mut W,
) -> Result<u64> {
    let url = VideoUrl::parse(video)?;
    let path = url.clip_path(start, end);
    if let Some(size) = size {
        return range_into(&url, video, &path, 0, size, out).await;
    }
    let resp = send(&url, &path, None).await?;
    if resp.status() != StatusCode::OK {
        return Err(failure(video, resp).await);
    }
    let expected = content_length(&resp);
    let mut body = resp.into_body();
    let mut written = 0u64;
    while let Some(frame) = next_frame(&url.authority, &mut body).await? {
        if let Ok(data) = frame.into_data() {
            out.write_all(&data).await.map_err(Error::Output)?;
            written += data.len() as u64;
        }
    }
    out.flush().await.map_err(Error::Output)?;
    match expected {
        Some(expected) if written < expected => Err(Error::ShortBody {
            expected,
            got: written,
        }),
        _ => Ok(written),
    }
}

/// `size` bytes of `path` from `offset`, streamed into `out`.
async fn range_into<W: AsyncWrite + Unpin>(
    url: &VideoUrl,
    video: &str,
    path: &str,
    offset: u64,
    size: u64,
    out: &mut W,
) -> Result<u64> {
    if size == 0 {
        return Ok(0);
    }
    let last = offset.saturating_add(size - 1);
    let resp = send(url, path, Some(format!("bytes={offset}-{last}"))).await?;
    let past_end = |total: &dyn std::fmt::Display| Error::Status {
        url: shown(video),
        status: StatusCode::RANGE_NOT_SATISFIABLE,
        message: format!("offset {offset} is past the end of the video ({total} bytes)"),
    };
    // What to skip of the body, how much to write, and whether that much must come.
    let (skip, expected, exact) = match resp.status() {
        StatusCode::PARTIAL_CONTENT => {
            let cr = resp
                .headers()
                .get(http::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            // Exactly the range asked for, or less of it where the video ends: never more, and
            // never less before its end (a proxy's or a cache's short answer is not the chunk).
            let (start, end) = parse_content_range(cr)
                .filter(|&(start, end, total)| {
                    start == offset && (end == last || (end < last && total == Some(end + 1)))
                })
                .map(|(start, end, _)| (start, end))
                .ok_or_else(|| {
                    Error::Protocol(format!("asked for bytes {offset}-{last}, got '{cr}'"))
                })?;
            let expected = (end - start)
                .checked_add(1)
                .ok_or_else(|| Error::Protocol(format!("Content-Range '{cr}'")))?;
            (0, expected, true)
        }
        // The whole video (the range covered it, or the server ignores ranges): skip to
        // `offset`, and expect what it holds from there, when its length is known.
        StatusCode::OK => match content_length(&resp) {
            Some(total) if offset >= total => return Err(past_end(&total)),
            Some(total) => (offset, size.min(total - offset), true),
            None => (offset, size, false),
        },
        StatusCode::RANGE_NOT_SATISFIABLE => {
            let total = resp
                .headers()
                .get(http::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes */"))
                .unwrap_or("?")
                .to_string();
            return Err(past_end(&total));
        }
        _ => return Err(failure(video, resp).await),
    };
    let mut body = resp.into_body();
    let (mut skipped, mut written) = (0u64, 0u64);
    while let Some(frame) = next_frame(&url.authority, &mut body).await? {
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        if skipped < skip {
            let n = (skip - skipped).min(data.len() as u64) as usize;
            skipped += n as u64;
            bytes::Buf::advance(&mut data, n);
        }
        let n = (expected - written).min(data.len() as u64) as usize;
        out.write_all(&data[..n]).await.map_err(Error::Output)?;
        written += n as u64;
        if written == expected {
            break;
        }
    }
    out.flush().await.map_err(Error::Output)?;
    if written < expected && exact {
        return Err(Error::ShortBody {
            expected,
            got: written,
        });
    }
    Ok(written)
}

fn content_length<B>(resp: &hyper::Response<B>) -> Option<u64> {
    resp.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
}

/// `bytes A-B/TOTAL`: A, B and TOTAL (`None` for `*`).
fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let r = v.strip_prefix("bytes ")?;
    let (range, total) = r.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b) = (a.parse().ok()?, b.parse().ok()?);
    let total = match total {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (a <= b).then_some((a, b, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = VideoUrl::parse("http://127.0.0.1:8080/videos/movies/a%20b.mp4").unwrap();
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!(u.id, "movies/a%20b.mp4");
        assert_eq!(
            VideoUrl::parse("http://host/videos/x").unwrap().authority,
            "host:80"
        );
        for bad in [
            "ftp://h/videos/x",
            "http://h/other/x",
            "http://h/videos/",
            "nonsense",
        ] {
            assert!(VideoUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            u.seek_path("01:02:03;04"),
            "/api/videos/movies/a%20b.mp4/seek?t=01%3A02%3A03%3B04"
        );
        assert_eq!(
            u.clip_path(Some("1:00"), Some("90.5")),
            "/videos/movies/a%20b.mp4?start=1%3A00&end=90%2E5"
        );
        assert_eq!(
            u.clip_path(None, Some("9")),
            "/videos/movies/a%20b.mp4?end=9"
        );
        // A signed link's query goes with every request.
        let s = VideoUrl::parse("http://h/videos/x.mp4?expires=9&sig=ab").unwrap();
        assert_eq!(s.video_path(), "/videos/x.mp4?expires=9&sig=ab");
        assert_eq!(
            s.seek_path("5"),
            "/api/videos/x.mp4/seek?t=5&expires=9&sig=ab"
        );
        assert_eq!(
            s.clip_path(Some("1"), None),
            "/videos/x.mp4?start=1&expires=9&sig=ab"
        );
    }

    /// Credentials in a URL are refused (the client would not send them), and no error shows
    /// them, nor a URL's query (a signed link's `sig`, a `jwt`).
    #[test]
    fn urls_with_credentials_are_refused_and_errors_show_no_secrets() {
        for url in ["http://user:pw@h:8080/videos/x", "http://user@h/videos/x"] {
            let e = VideoUrl::parse(url).unwrap_err().to_string();
            assert!(!e.contains("pw") && !e.contains("user"), "{e}");
        }
        let live = crate::live::LiveUrl::parse("http://a:b@h/live/x").unwrap_err();
        assert!(!live.to_string().contains("a:b"), "{live}");
        assert_eq!(
            shown("http://u:p@h:1/videos/x?jwt=e.y.j#t"),
            "http://h:1/videos/x"
        );
        assert_eq!(shown("http://h/live/x.ts?key=k"), "http://h/live/x.ts");
        // A password with `/`, `?` or `#` (a URL that does not parse).
        for url in ["http://user:p/ss@h/videos/x", "http://user:p?ss@h/videos/x"] {
            assert_eq!(shown(url), "http://h/videos/x");
            let e = VideoUrl::parse(url).unwrap_err().to_string();
            assert!(!e.contains("ss") && !e.contains("user"), "{e}");
        }
    }

    #[test]
    fn server_text_is_printed_without_escapes_and_cut_short() {
        assert_eq!(printable("bad\x1b[31m red\r\n", 100), "bad [31m red  ");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("abc", 3), "abc");
        assert_eq!(printable("ok\u{202E}gpj.exe", 100), "ok gpj.exe");
    }

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some((0, 99, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 0-99/*"), Some((0, 99, None)));
        assert_eq!(parse_content_range("bytes 0-99/x"), None);
        assert_eq!(parse_content_range("bytes 9-1/1000"), None);
        assert_eq!(parse_content_range("bytes */1000"), None);
    }
}
