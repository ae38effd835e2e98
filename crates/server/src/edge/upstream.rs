//! The connection to an origin: `GET {prefix}/live/{name}.ts` over HTTP/1.1, and its response head
//! read (bounded, `live::relay::head`) so that the body can go to the ingest loop.

use super::Origin;
use crate::transport::Transport;
use bytes::BytesMut;
use live::relay::head::{self, Answer, MAX_HEAD};
use live::RequestBody;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connecting may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The response head may take this long once connected: longer than an edge's own wait for its
/// origins (`super::ANSWER_WAIT`), so that an edge of an edge hears its origin's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(12);

/// An origin streaming to the edge.
#[derive(Debug)]
pub(super) struct Upstream {
    pub sock: Transport,
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
    /// It could not be asked, or refused.
    Other(String),
}

/// Asks `origin` for the stream.
pub(super) async fn open(
    origin: &Origin,
    name: &str,
    token: Option<&str>,
) -> Result<Upstream, Failure> {
    let asked =
        tokio::time::timeout(CONNECT_TIMEOUT + ANSWER_TIMEOUT, ask(origin, name, token)).await;
    asked.unwrap_or_else(|_| {
        Err(Failure::Other(format!(
            "no answer within {ANSWER_TIMEOUT:?}"
        )))
    })
}

async fn ask(origin: &Origin, name: &str, token: Option<&str>) -> Result<Upstream, Failure> {
    let io = |e: std::io::Error| Failure::Other(e.to_string());
    let connect = TcpStream::connect(origin.authority.as_str());
    let sock = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(sock) => sock.map_err(io)?,
        Err(_) => {
            return Err(Failure::Other(format!(
                "no connection within {CONNECT_TIMEOUT:?}"
            )))
        }
    };
    let _ = sock.set_nodelay(true);
    let peer = sock.peer_addr().map_err(io)?;
    let mut sock = Transport::Plain(sock);
    sock.write_all(request(origin, name, token).as_bytes())
        .await
        .map_err(io)?;
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
            Ok(Some(Answer::Refused(status))) => {
                return Err(Failure::Other(format!("the origin answered {status}")))
            }
            Err(e) => return Err(Failure::Other(e.to_string())),
        }
    }
}

/// The request line and head (the name is a valid stream name: nothing to escape).
fn request(origin: &Origin, name: &str, token: Option<&str>) -> String {
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    format!(
        "GET {}/live/{name}.ts HTTP/1.1\r\nhost: {}\r\nuser-agent: zerocast-edge/{}\r\naccept: video/mp2t\r\n{auth}\r\n",
        origin.prefix,
        origin.authority,
        env!("CARGO_PKG_VERSION"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_asks_for_the_ts_output_under_the_prefix_with_the_credential() {
        let o = Origin::parse("http://o:81/zc").unwrap();
        let r = request(&o, "show", Some("T0K"));
        assert!(
            r.starts_with("GET /zc/live/show.ts HTTP/1.1\r\nhost: o:81\r\n"),
            "{r}"
        );
        assert!(r.contains("authorization: Bearer T0K\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n"));
        assert!(!request(&o, "show", None).contains("authorization"));
    }
}
