//! The connection to an origin (plain TCP, or TLS with rustls for `https://`): `GET
//! {prefix}/live/{name}.ts` over HTTP/1.1, and its response head read (bounded,
//! `live::relay::head`) so that the body can go to the ingest loop.

use super::Origin;
use bytes::BytesMut;
use live::relay::head::{self, Answer, MAX_HEAD};
use live::RequestBody;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Connecting (and the TLS handshake) may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The response head may take this long once connected: longer than an edge's own wait for its
/// origins (`super::ANSWER_WAIT`), so that an edge of an edge hears its origin's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(12);

/// The TLS client for `https://` origins, or why there is none.
pub(super) type TlsClient = Result<Arc<rustls::ClientConfig>, String>;

/// An origin streaming to the edge.
#[derive(Debug)]
pub(super) struct Upstream {
    pub sock: Io,
    /// How its body is framed.
    pub body: RequestBody,
    /// Body bytes read with the head.
    pub side: BytesMut,
    pub peer: SocketAddr,
}

/// Why an origin did not stream.
#[derive(Debug)]
pub(super) enum Failure {
    /// It has no such stream.
    NotFound,
    /// It answered 508: its pull of the stream would come back here (a loop of edges).
    Loop,
    /// It could not be asked, or refused.
    Other(String),
}

/// A connection to an origin.
#[derive(Debug)]
pub(super) enum Io {
    Plain(TcpStream),
    /// Boxed: rustls's client state is large.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, b),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, b),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Connects to `origin` (with a TLS handshake for `https://`, its certificate checked against
/// `tls`'s CAs and the origin's host name), within [`CONNECT_TIMEOUT`]; and the origin's address.
pub(super) async fn connect(origin: &Origin, tls: &TlsClient) -> Result<(Io, SocketAddr), String> {
    let connected = async {
        let sock = TcpStream::connect(origin.authority.as_str())
            .await
            .map_err(|e| e.to_string())?;
        let _ = sock.set_nodelay(true);
        let peer = sock.peer_addr().map_err(|e| e.to_string())?;
        if !origin.tls {
            return Ok((Io::Plain(sock), peer));
        }
        let config = tls.as_ref().map_err(|e| format!("no TLS client: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from(origin.host.clone())
            .map_err(|e| format!("'{}' as a TLS server name: {e}", origin.host))?;
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let tls = connector
            .connect(name, sock)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        Ok((Io::Tls(Box::new(tls)), peer))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connected)
        .await
        .unwrap_or_else(|_| Err(format!("no connection within {CONNECT_TIMEOUT:?}")))
}

/// What an edge asks its origins for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ask<'a> {
    /// The stream (a valid stream name: nothing to escape).
    pub name: &'a str,
    /// Sent as `Authorization: Bearer`.
    pub token: Option<&'a str>,
    /// Sent as `x-zerocast-via`: the edges the pull came through, this one last.
    pub via: &'a str,
}

/// Asks `origin` for the stream, within `patience` (connecting and answering together) where
/// one is given (`live::relay::Relay::patience`).
pub(super) async fn open(
    origin: &Origin,
    tls: &TlsClient,
    what: &Ask<'_>,
    patience: Option<Duration>,
) -> Result<Upstream, Failure> {
    let limit = CONNECT_TIMEOUT + ANSWER_TIMEOUT;
    let limit = patience.map_or(limit, |p| p.min(limit));
    let asked = async {
        let (sock, peer) = connect(origin, tls).await.map_err(Failure::Other)?;
        let asked = tokio::time::timeout(ANSWER_TIMEOUT, ask(sock, peer, origin, what)).await;
        asked.unwrap_or_else(|_| {
            Err(Failure::Other(format!(
                "no answer within {ANSWER_TIMEOUT:?}"
            )))
        })
    };
    tokio::time::timeout(limit, asked)
        .await
        .unwrap_or_else(|_| Err(Failure::Other(format!("no answer within {limit:?}"))))
}

async fn ask(
    mut sock: Io,
    peer: SocketAddr,
    origin: &Origin,
    what: &Ask<'_>,
) -> Result<Upstream, Failure> {
    let io = |e: std::io::Error| Failure::Other(e.to_string());
    sock.write_all(request(origin, what).as_bytes())
        .await
        .map_err(io)?;
    sock.flush().await.map_err(io)?;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if buf.len() >= MAX_HEAD {
            return Err(Failure::Other(head::HeadError::TooLarge.to_string()));
        }
        if buf.capacity() == buf.len() {
            buf.reserve(4096);
        }
        let n = sock.read_buf(&mut buf).await.map_err(io)?;
        if n == 0 {
            return Err(Failure::Other("the origin closed before answering".into()));
        }
        match head::parse(&buf) {
            Ok(None) => continue,
            Ok(Some(Answer::Stream { body, used })) => {
                let side = buf.split_off(used);
                return Ok(Upstream {
                    sock,
                    body,
                    side,
                    peer,
                });
            }
            Ok(Some(Answer::NotFound)) => return Err(Failure::NotFound),
            Ok(Some(Answer::Refused(508))) => return Err(Failure::Loop),
            Ok(Some(Answer::Refused(status))) => {
                return Err(Failure::Other(format!("the origin answered {status}")))
            }
            Err(e) => return Err(Failure::Other(e.to_string())),
        }
    }
}

/// The request line and head.
fn request(origin: &Origin, what: &Ask<'_>) -> String {
    let auth = what
        .token
        .map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    format!(
        "GET {}/live/{}.ts HTTP/1.1\r\nhost: {}\r\nuser-agent: zerocast-edge/{}\r\naccept: video/mp2t\r\n{}: {}\r\n{auth}\r\n",
        origin.prefix,
        what.name,
        origin.authority,
        env!("CARGO_PKG_VERSION"),
        super::VIA,
        what.via,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_asks_for_the_ts_output_under_the_prefix_with_the_credential_and_via() {
        let o = Origin::parse("http://o:81/zc").unwrap();
        let mut what = Ask {
            name: "show",
            token: Some("T0K"),
            via: "a1, b2",
        };
        let r = request(&o, &what);
        assert!(
            r.starts_with("GET /zc/live/show.ts HTTP/1.1\r\nhost: o:81\r\n"),
            "{r}"
        );
        assert!(r.contains("authorization: Bearer T0K\r\n"), "{r}");
        assert!(r.contains("x-zerocast-via: a1, b2\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n"));
        what.token = None;
        assert!(!request(&o, &what).contains("authorization"));
    }
}
