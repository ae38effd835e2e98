//! A publisher's key: where it is presented (`?key=`, `Authorization: Bearer`, RTMP's stream
//! query) and how it is compared with the expected ones.

use http::{HeaderMap, Uri};

/// Compares keys in time independent of where they differ.
pub(crate) fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The key a publisher presents: `?key=` or `Authorization: Bearer`.
pub fn presented_key(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    query_key(uri.query()).or_else(|| {
        let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string())
    })
}

/// The `key=` parameter of a query string, percent-decoded.
pub(crate) fn query_key(query: Option<&str>) -> Option<String> {
    query.into_iter().flat_map(|q| q.split('&')).find_map(|kv| {
        kv.strip_prefix("key=").map(|v| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}
