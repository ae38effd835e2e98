//! Live: publish an MPEG-TS file in real time, and watch a live stream.

use crate::{failure, Error, Result};
use bytes::{Bytes, BytesMut};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use media::ts::{Cut, Restamp, Splitter, PACKET};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// `http://HOST[:PORT]/live/NAME[.ts][?key=K]` split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveUrl {
    pub authority: String,
    pub name: String,
    pub key: Option<String>,
    /// The URL's query less `key=` (a token, `t=` for a DVR start), sent on as it was.
    pub query: Option<String>,
}

/// What [`watch`] takes.
const WATCH_URL: &str = "an http://HOST[:PORT]/live/NAME.ts URL (watch follows MPEG-TS; .flv, \
                         HLS and rtmp:// are not supported by watch)";

impl LiveUrl {
    /// A stream's URL to publish to.
    pub fn parse(url: &str) -> Result<Self> {
        Self::parse_as(url, "http://HOST[:PORT]/live/NAME")
    }

    /// A stream's URL to watch: `.ts` or no suffix; not `.flv`, `.mp4`, HLS, DASH or another
    /// scheme.
    pub fn parse_watch(url: &str) -> Result<Self> {
        let u = Self::parse_as(url, WATCH_URL)?;
        let other = [".flv", ".mp4", ".m3u8", ".mpd"];
        if other.iter().any(|s| u.name.ends_with(s)) {
            return Err(Error::BadUrl {
                url: crate::shown(url),
                expected: WATCH_URL,
            });
        }
        Ok(u)
    }

    fn parse_as(url: &str, expected: &'static str) -> Result<Self> {
        let bad = || Error::BadUrl {
            url: crate::shown(url),
            expected,
        };
        let uri: Uri = url.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("http") {
            return Err(bad());
        }
        let authority = uri.authority().and_then(crate::authority).ok_or_else(bad)?;
        let name = uri
            .path()
            .strip_prefix("/live/")
            .map(|n| n.strip_suffix(".ts").unwrap_or(n))
            .filter(|n| !n.is_empty() && !n.contains('/'))
            .ok_or_else(bad)?;
        let pairs = || uri.query().into_iter().flat_map(|q| q.split('&'));
        let key = pairs().find_map(|kv| kv.strip_prefix("key=")).map(|k| {
            percent_encoding::percent_decode_str(k)
                .decode_utf8_lossy()
                .into_owned()
        });
        let rest: Vec<&str> = pairs()
            .filter(|kv| !kv.is_empty() && !kv.starts_with("key="))
            .collect();
        Ok(LiveUrl {
            authority,
            name: name.to_string(),
            key,
            query: (!rest.is_empty()).then(|| rest.join("&")),
        })
    }
}

/// When each run of packets is due, from the file's PCR (or, without PCR, its PES timestamps):
/// `(packet offset, 90 kHz ticks since the first)`, offsets rising, ticks never falling.
pub fn schedule(data: &[u8]) -> Vec<(usize, u64)> {
    let packets = data.len() / PACKET;
    let mut pcr = Vec::new();
    let mut pts = Vec::new();
    let mut pcr_pid = None;
    for i in 0..packets {
        let p = &data[i * PACKET..(i + 1) * PACKET];
        let Some(h) = media::ts::header(p) else {
            continue;
        };
        if p[3] & 0x20 != 0 && p[4] >= 7 && p[5] & 0x10 != 0 && pcr_pid.is_none_or(|x| x == h.pid) {
            pcr_pid = Some(h.pid);
            let b = &p[6..11];
            let base = u64::from(b[0]) << 25
                | u64::from(b[1]) << 17
                | u64::from(b[2]) << 9
                | u64::from(b[3]) << 1
                | u64::from(b[4]) >> 7;
            pcr.push((i * PACKET, base));
        }
        if h.pusi && h.has_payload {
            if let Some((Some(t), dts, _)) = media::ts::pes_header(&p[h.payload_start..]) {
                pts.push((i * PACKET, dts.unwrap_or(t).0));
            }
        }
    }
    let marks = if pcr.len() >= 2 { pcr } else { pts };
    let mut out = Vec::with_capacity(marks.len());
    let mut unwrap = media::time::Unwrapper::default();
    let mut first = None;
    let mut last = 0u64;
    for (off, t) in marks {
        let t = unwrap.unwrap(media::time::Ts90k(t));
        let base = *first.get_or_insert(t);
        // Never backwards (B-frame PTS without DTS), never a jump of more than 10 s.
        let rel = (t - base).max(0) as u64;
        let rel = rel.clamp(last, last + 900_000);
        last = rel;
        out.push((off, rel));
    }
    out
}

/// What `publish` did.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub bytes: u64,
    pub loops: u64,
    pub elapsed: Duration,
    /// Times the connection was lost and made again (`looped` only).
    pub reconnects: u64,
}

/// How long a publisher waits for `100 Continue` before it sends its body anyway (RFC 9110
/// §10.1.1: a server may not answer the expectation).
const CONTINUE_WAIT: Duration = Duration::from_secs(1);

/// The longest wait between two attempts to connect again after the connection was lost.
const RECONNECT_MAX: Duration = Duration::from_secs(10);

/// Publishes an MPEG-TS file to `url` (`http://HOST/live/NAME`), paced in real time from its
/// timestamps, as one chunked POST. With `looped`, sends it again and again, continuing counters
/// and timestamps so players see one stream, and connects again when the connection is lost
/// (1 s, doubling to 10 s, between attempts, for as long as it takes: the server's grace keeps
/// the stream for a publisher that comes back), going on from where it was; a refusal (a
/// status the server answers) ends it. `progress` is called about once a second. When
/// `stop` resolves (a signal), the body is ended properly (its last chunk) between two chunks:
/// the server ends the stream at once, instead of waiting out its grace for a publisher that
/// dropped.
pub async fn publish(
    url: &str,
    key: Option<&str>,
    data: Bytes,
    looped: bool,
    mut progress: impl FnMut(&Published),
    stop: impl std::future::Future<Output = ()>,
) -> Result<Published> {
    let mut stop = std::pin::pin!(stop);
    let u = LiveUrl::parse(url)?;
    let start = media::ts::find_sync(&data)
        .filter(|&s| s == 0)
        .ok_or_else(|| Error::Protocol("the file is not MPEG-TS (no sync byte at offset 0); remux it: ffmpeg -i IN -c copy -f mpegts OUT.ts".into()))?;
    let data = data.slice(start..data.len() / PACKET * PACKET);
    let plan = schedule(&data);
    if plan.is_empty() {
        return Err(Error::Protocol(
            "no timestamps in the file to pace it by".into(),
        ));
    }
    let total_ticks = plan.last().map_or(0, |p| p.1) + 3600;
    let key = key.map(String::from).or(u.key.clone());
    let mut query: Vec<String> = u.query.iter().cloned().collect();
    if let Some(k) = &key {
        let k = percent_encoding::utf8_percent_encode(k, percent_encoding::NON_ALPHANUMERIC);
        query.push(format!("key={k}"));
    }
    let mut path = format!("/live/{}", u.name);
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\nuser-agent: zerocast/{}\r\ncontent-type: video/mp2t\r\n\
         transfer-encoding: chunked\r\nexpect: 100-continue\r\n\r\n",
        u.authority,
        env!("CARGO_PKG_VERSION")
    );
    // Errors name the stream without its query: the key stays out of logs.
    let url = url.split('?').next().unwrap_or(url);
    let io = |e: std::io::Error| Error::Protocol(format!("publishing to {url}: {e}"));
    let open = || async {
        let mut sock = crate::connect(&u.authority).await?;
        write_within(&mut sock, head.as_bytes()).await.map_err(io)?;
        // The server answers `100 Continue` (or refuses) at once; one that does not answer the
        // expectation is sent the body after a while.
        if tokio::time::timeout(CONTINUE_WAIT, sock.readable())
            .await
            .is_ok()
        {
            let (status, body) = read_response(&mut sock, false).await.map_err(io)?;
            if status != StatusCode::CONTINUE {
                return Err(status_error(url, status, &body));
            }
        }
        Ok(sock)
    };
    let mut sock = open().await?;
    let mut connected = true;
    let mut report = Published::default();
    let mut began = Instant::now();
    let mut restamp = Restamp::default();
    let mut next_report = Duration::from_secs(1);
    // Each chunk is restamped in a copy of its own (whole packets: the plan cuts between them).
    let mut chunk = Vec::new();
    'publishing: loop {
        if report.loops > 0 {
            restamp.new_session();
        }
        let base = report.loops * total_ticks;
        let mut sent = 0;
        let mut i = 0;
        while sent < data.len() {
            // Everything due within the next 20 ms goes in one chunk.
            let due_ticks = base + plan.get(i).map_or(total_ticks, |p| p.1);
            let due = Duration::from_micros(due_ticks * 100 / 9);
            let now = began.elapsed();
            tokio::select! {
                () = tokio::time::sleep(due.saturating_sub(now)) => {}
                () = &mut stop => break 'publishing,
            }
            let horizon = plan.get(i).map_or(u64::MAX, |p| p.1 + 1800);
            while i < plan.len() && plan[i].1 <= horizon {
                i += 1;
            }
            let end = plan.get(i).map_or(data.len(), |p| p.0);
            if end > sent {
                chunk.clear();
                chunk.extend_from_slice(&data[sent..end]);
                restamp.apply(&mut chunk);
                let line = format!("{:x}\r\n", chunk.len());
                let mut ok = write_within(&mut sock, line.as_bytes()).await;
                if ok.is_ok() {
                    ok = write_within(&mut sock, &chunk).await;
                }
                if ok.is_ok() {
                    ok = write_within(&mut sock, b"\r\n").await;
                }
                if let Err(e) = ok {
                    // The server may have refused the stream and said why (at once, when it
                    // did: a lost connection is not waited on for long in a loop).
                    let why = match looped {
                        true => Duration::from_secs(2),
                        false => Duration::from_secs(30),
                    };
                    let answer = tokio::time::timeout(why, read_response(&mut sock, true)).await;
                    if let Ok(Ok((status, body))) = answer {
                        return Err(status_error(url, status, &body));
                    }
                    if !looped {
                        return Err(io(e));
                    }
                    // Lost: the old connection ended (a server that still takes it for the
                    // publisher's lets it go), a new one made, and on from this chunk, paced from
                    // now as if the time without a connection had not passed.
                    let _ = sock.shutdown().await;
                    let mut wait = Duration::from_secs(1);
                    connected = false;
                    sock = loop {
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = &mut stop => break 'publishing,
                        }
                        let opened = tokio::select! {
                            o = open() => o,
                            () = &mut stop => break 'publishing,
                        };
                        match opened {
                            Ok(s) => break s,
                            // The server still holds the lost session (it has not seen the
                            // drop yet: its publisher timeout): tried again.
                            Err(Error::Status { status, .. }) if status == StatusCode::CONFLICT => {
                                wait = (wait * 2).min(RECONNECT_MAX)
                            }
                            Err(e @ Error::Status { .. }) => return Err(e),
                            Err(_) => wait = (wait * 2).min(RECONNECT_MAX),
                        }
                    };
                    connected = true;
                    report.reconnects += 1;
                    began = Instant::now().checked_sub(due).unwrap_or(began);
                    continue;
                }
                report.bytes += chunk.len() as u64;
                sent = end;
            }
            report.elapsed = began.elapsed();
            if report.elapsed >= next_report {
                progress(&report);
                next_report += Duration::from_secs(1);
            }
        }
        report.loops += 1;
        if !looped {
            break;
        }
    }
    if !connected {
        // Stopped while the connection was lost: nothing to end.
        report.elapsed = began.elapsed();
        return Ok(report);
    }
    write_within(&mut sock, b"0\r\n\r\n").await.map_err(io)?;
    let (status, body) = read_response(&mut sock, true).await.map_err(io)?;
    if !status.is_success() {
        return Err(status_error(url, status, &body));
    }
    report.elapsed = began.elapsed();
    Ok(report)
}

/// Writes all of `b`, or fails once the server has taken none of it for [`crate::TIMEOUT`].
async fn write_within(sock: &mut TcpStream, b: &[u8]) -> std::io::Result<()> {
    tokio::time::timeout(crate::TIMEOUT, sock.write_all(b))
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the server took nothing for {} s", crate::TIMEOUT.as_secs()),
            ))
        })
}

fn status_error(url: &str, status: StatusCode, body: &[u8]) -> Error {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    Error::Status {
        url: crate::shown(url),
        status,
        // What the server says goes to a terminal: no control sequences, not all of it.
        message: crate::printable(&message, 300),
    }
}

/// Reads one response (head, and a body up to 64 KiB by Content-Length or until close);
/// `final_only`: interim ones (`100 Continue` come late, after the body was sent without it)
/// are passed over.
async fn read_response(
    sock: &mut TcpStream,
    final_only: bool,
) -> std::io::Result<(StatusCode, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = resp.parse(&buf) {
            let status = StatusCode::from_u16(resp.code.unwrap_or(500))
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if final_only && status.is_informational() {
                buf.drain(..n);
                continue;
            }
            let len = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                });
            let mut body = buf[n..].to_vec();
            let bodiless = matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
            if status != StatusCode::CONTINUE && !bodiless {
                let want = len.unwrap_or(64 << 10).min(64 << 10);
                while body.len() < want {
                    let mut b = [0u8; 4096];
                    match tokio::time::timeout_at(deadline, sock.read(&mut b)).await {
                        Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                        Ok(Ok(k)) => body.extend_from_slice(&b[..k]),
                    }
                }
            }
            return Ok((status, body));
        }
        if buf.len() > 64 << 10 {
            return Err(std::io::Error::other("response head too long"));
        }
        let mut b = [0u8; 4096];
        match tokio::time::timeout_at(deadline, sock.read(&mut b)).await {
            Ok(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(Ok(k)) => buf.extend_from_slice(&b[..k]),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}

/// What a viewer has seen so far.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    pub bytes: u64,
    pub keyframes: u64,
    /// From the request to the first keyframe's first byte.
    pub first_keyframe: Option<Duration>,
    pub elapsed: Duration,
    /// Bits per second over the last report interval.
    pub bitrate: f64,
    /// Whether the server ended the stream (rather than `duration` running out).
    pub ended: bool,
}

/// An event while watching.
#[derive(Debug, Clone)]
pub enum WatchEvent<'a> {
    /// About once a second.
    Progress(&'a Watched),
    /// A keyframe arrived (at this time since the request).
    Keyframe(Duration),
}

/// Watches `url` (`http://HOST/live/NAME.ts`): writes the stream to `out` (when given) for at
/// most `duration`, following its keyframes. An error from `events` (its own output closed:
/// `zerocast watch ... | head`) ends the watch as [`Error::Output`], `out` flushed.
pub async fn watch<W: AsyncWrite + Unpin>(
    url: &str,
    mut out: Option<&mut W>,
    duration: Option<Duration>,
    mut events: impl FnMut(WatchEvent<'_>) -> std::io::Result<()>,
) -> Result<Watched> {
    let u = LiveUrl::parse_watch(url)?;
    let began = Instant::now();
    let tcp = crate::connect(&u.authority).await?;
    let http = |error| Error::Http {
        addr: u.authority.clone(),
        error,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(http)?;
    tokio::spawn(conn);
    let query = u.query.as_ref().map_or(String::new(), |q| format!("?{q}"));
    let req = Request::get(format!("/live/{}.ts{query}", u.name))
        .header(http::header::HOST, &u.authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| Error::Protocol(e.to_string()))?;
    let resp = crate::within(&u.authority, "answer", async {
        sender.send_request(req).await.map_err(http)
    })
    .await?;
    if !resp.status().is_success() {
        return Err(failure(url, resp).await);
    }
    let mut body = resp.into_body();
    let mut seen = Watched::default();
    let mut splitter = Splitter::default();
    let mut pending = BytesMut::new();
    let mut cuts = Vec::new();
    let mut window = (Duration::ZERO, 0u64);
    let deadline = duration.map(|d| began + d);
    loop {
        // A stream that is reconnecting sends nothing for its grace (10 s by default); nothing
        // for `TIMEOUT` is a stall, with or without a duration asked for.
        let stall = Instant::now() + crate::TIMEOUT;
        let until = deadline.map_or(stall, |d| d.min(stall));
        let frame = match tokio::time::timeout_at(until, body.frame()).await {
            Ok(f) => f,
            Err(_) if deadline.is_some_and(|d| d <= until) => break,
            Err(_) => {
                return Err(Error::Timeout {
                    addr: u.authority.clone(),
                    what: "send more of the stream",
                })
            }
        };
        let Some(frame) = frame else {
            seen.ended = true;
            break;
        };
        let frame = frame.map_err(http)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if let Some(w) = out.as_mut() {
            w.write_all(&data).await.map_err(Error::Output)?;
        }
        seen.bytes += data.len() as u64;
        pending.extend_from_slice(&data);
        let whole = pending.len() / PACKET * PACKET;
        let packets = pending.split_to(whole);
        cuts.clear();
        splitter
            .feed(&packets, &mut cuts)
            .map_err(|e| Error::Protocol(format!("the stream is not valid MPEG-TS: {e}")))?;
        let mut told = Ok(());
        for c in &cuts {
            if let Cut::Keyframe { .. } = c {
                seen.keyframes += 1;
                let at = began.elapsed();
                seen.first_keyframe.get_or_insert(at);
                told = told.and_then(|()| events(WatchEvent::Keyframe(at)));
            }
        }
        seen.elapsed = began.elapsed();
        if seen.elapsed - window.0 >= Duration::from_secs(1) {
            let secs = (seen.elapsed - window.0).as_secs_f64();
            seen.bitrate = (seen.bytes - window.1) as f64 * 8.0 / secs;
            window = (seen.elapsed, seen.bytes);
            told = told.and_then(|()| events(WatchEvent::Progress(&seen)));
        }
        if let Err(e) = told {
            if let Some(w) = out.as_mut() {
                let _ = w.flush().await;
            }
            return Err(Error::Output(e));
        }
    }
    if let Some(w) = out.as_mut() {
        w.flush().await.map_err(Error::Output)?;
    }
    seen.elapsed = began.elapsed();
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_urls() {
        let u = LiveUrl::parse("http://127.0.0.1:8080/live/show?key=a%20b").unwrap();
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!(u.name, "show");
        assert_eq!(u.key.as_deref(), Some("a b"));
        assert_eq!(u.query, None);
        assert_eq!(LiveUrl::parse("http://h/live/x.ts").unwrap().name, "x");
        // The rest of the query (a token, a DVR start) is kept to be sent on.
        let u = LiveUrl::parse("http://h/live/x.ts?jwt=T&key=k&t=-00%3A00%3A20").unwrap();
        assert_eq!(u.key.as_deref(), Some("k"));
        assert_eq!(u.query.as_deref(), Some("jwt=T&t=-00%3A00%3A20"));
        for bad in [
            "http://h/videos/x",
            "http://h/live/",
            "http://h/live/a/b",
            "rtmp://h/live/x",
        ] {
            assert!(LiveUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn watch_takes_ts_urls_only() {
        assert_eq!(
            LiveUrl::parse_watch("http://h/live/x.ts").unwrap().name,
            "x"
        );
        assert_eq!(LiveUrl::parse_watch("http://h/live/x").unwrap().name, "x");
        for bad in [
            "http://h/live/x.flv",
            "http://h/live/x.mp4",
            "http://h/live/x.m3u8",
            "http://h/live/x/index.m3u8",
            "rtmp://h/live/x",
        ] {
            let e = LiveUrl::parse_watch(bad).unwrap_err().to_string();
            assert_eq!(e, format!("bad URL '{bad}': expected {WATCH_URL}"));
        }
    }

    #[test]
    fn the_schedule_follows_the_clip_in_real_time() {
        let data =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts")).unwrap();
        let plan = schedule(&data);
        assert!(plan.len() > 10);
        assert!(plan.windows(2).all(|w| w[1].0 > w[0].0 && w[1].1 >= w[0].1));
        let info = media::ts::index(&data).unwrap();
        let secs = plan.last().unwrap().1 as f64 / 90_000.0;
        let want = info.duration.as_secs_f64();
        assert!(
            (secs - want).abs() < 1.0,
            "paced over {secs} s for a {want} s clip"
        );
    }
}
