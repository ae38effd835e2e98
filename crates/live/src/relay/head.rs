//! The origin's answer to an edge's `GET /live/{name}.ts`: its status, and for a 200 how its body
//! is framed (chunked, by length, or until the origin closes), so that the edge's ingest loop reads
//! it exactly as it reads a publisher's body (`crate::body`). Bounded: a head larger than
//! [`MAX_HEAD`] or with more than [`MAX_HEADERS`] fields is refused.

use crate::body::RequestBody;

/// The most bytes a response head may take.
pub const MAX_HEAD: usize = 16 << 10;
/// The most header fields it may have.
pub const MAX_HEADERS: usize = 64;

/// What the origin answered.
#[derive(Debug)]
pub enum Answer {
    /// 200: the stream, with its body's framing; `used` bytes of the input were the head.
    Stream { body: RequestBody, used: usize },
    /// 404 or 410: the origin has no such stream.
    NotFound,
    /// Anything else (401/403: the edge's credential; 5xx: the origin's trouble).
    Refused(u16),
}

/// A response head the edge cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("the origin's response head is over {MAX_HEAD} bytes")]
    TooLarge,
    #[error("the origin's response head does not parse: {0}")]
    Malformed(String),
    #[error("the origin's response body framing: {0}")]
    Framing(&'static str),
}

/// Parses the head at the start of `buf`: `Ok(None)` while it is incomplete.
pub fn parse(buf: &[u8]) -> Result<Option<Answer>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let used = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    if used > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    match resp.code {
        Some(200) => {}
        Some(404 | 410) => return Ok(Some(Answer::NotFound)),
        Some(code) => return Ok(Some(Answer::Refused(code))),
        None => return Err(HeadError::Malformed("no status".into())),
    }
    let mut chunked = false;
    let mut length: Option<u64> = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let value = std::str::from_utf8(h.value).map_err(|_| HeadError::Framing("not text"))?;
            // RFC 9112 §6.3: chunked must be the last coding; no other coding is readable here.
            for coding in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                if !coding.eq_ignore_ascii_case("chunked") || chunked {
                    return Err(HeadError::Framing(
                        "a transfer coding other than one chunked",
                    ));
                }
                chunked = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(HeadError::Framing("a Content-Length that is not a number"))?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Framing("two different Content-Lengths"));
            }
            length = Some(n);
        }
    }
    let body = match (chunked, length) {
        (true, Some(_)) => return Err(HeadError::Framing("Content-Length with Transfer-Encoding")),
        (true, None) => RequestBody::chunked(),
        (false, Some(n)) => RequestBody::length(n),
        (false, None) => RequestBody::until_close(),
    };
    Ok(Some(Answer::Stream { body, used }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Want;

    fn stream(head: &str) -> (RequestBody, usize) {
        match parse(head.as_bytes()) {
            Ok(Some(Answer::Stream { body, used })) => (body, used),
            other => panic!("{head:?}: {other:?}"),
        }
    }

    #[test]
    fn a_chunked_stream_is_read_as_chunks_after_the_head() {
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: video/mp2t\r\ntransfer-encoding: chunked\r\n\r\n";
        let (body, used) = stream(&format!("{head}5\r\nhello"));
        assert_eq!(used, head.len());
        assert_eq!(body.want(), Want::Framing);
    }

    #[test]
    fn a_stream_without_framing_runs_until_the_origin_closes() {
        let (body, _) = stream("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n");
        assert!(matches!(body.want(), Want::Data(_)));
        assert!(body.eof().is_ok());
    }

    #[test]
    fn a_length_framed_stream_ends_at_its_length() {
        let (body, _) = stream("HTTP/1.1 200 OK\r\nContent-Length: 188\r\n\r\n");
        assert_eq!(body.want(), Want::Data(188));
    }

    #[test]
    fn an_incomplete_head_asks_for_more() {
        assert!(matches!(parse(b"HTTP/1.1 200 OK\r\ncontent-"), Ok(None)));
    }

    #[test]
    fn the_origin_without_the_stream_is_not_found() {
        let r = parse(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}");
        assert!(matches!(r, Ok(Some(Answer::NotFound))));
    }

    #[test]
    fn a_refused_credential_is_a_refusal_with_its_status() {
        let r = parse(b"HTTP/1.1 403 Forbidden\r\n\r\n");
        assert!(matches!(r, Ok(Some(Answer::Refused(403)))));
    }

    #[test]
    fn framing_that_cannot_be_read_exactly_is_refused() {
        for bad in [
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad.as_bytes()), Err(HeadError::Framing(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_head_that_never_ends_is_refused_at_the_bound() {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        while head.len() < MAX_HEAD {
            head.extend_from_slice(b"x-pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(parse(&head).is_err());
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            parse(b"\x16\x03\x01garbage\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }
}
