//! What a request may fetch besides its route: the signed link it carries, the query a playlist
//! passes on to its segment URIs, and the viewers' rules of the stream a recording is of.

use crate::error::Error;
use crate::state::State;
use http::Request;

/// What is escaped in a query value passed on to segment URIs: all but RFC 3986's unreserved
/// characters (a JWT's base64url and dots pass as they are).
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What a playlist passes on to its segment URIs: the signed link's query, and a token that came
/// in the query (`?jwt=`) when the stream's rules ask viewers for one.
pub(super) fn carried_query<B>(
    state: &State,
    name: &str,
    req: &Request<B>,
    signed: Option<&str>,
) -> Option<String> {
    let rules = &state.config().auth;
    let jwt = rules
        .for_stream(crate::auth::Action::Read, name)
        .and_then(|_| crate::auth::query_param(req.uri().query(), "jwt"))
        .map(|t| {
            format!(
                "jwt={}",
                percent_encoding::utf8_percent_encode(&t, QUERY_VALUE)
            )
        });
    match (signed, jwt) {
        (Some(c), Some(j)) => Some(format!("{c}&{j}")),
        (c, j) => c.map(str::to_string).or(j),
    }
}

/// The signed-link check (`auth::signed`) on the server's clock: what a playlist carries on to
/// its segment URIs, or why the request is refused.
pub(crate) fn signed_link<B>(
    config: &crate::config::Config,
    req: &Request<B>,
) -> Result<Option<String>, Error> {
    let Some(signed) = &config.signed else {
        return Ok(None);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    signed
        .check(req.uri().path(), req.uri().query(), now)
        .map(|v| v.carry)
        .map_err(Error::Link)
}

/// The viewers' rules of the stream title `id` was recorded from, when it is a recording.
pub(super) fn recording_admitted<B>(
    state: &State,
    lib: &crate::library::Library,
    id: &str,
    req: &Request<B>,
) -> Result<(), Error> {
    // (The admin, behind whose token `private_api` puts the API, sees every title's.)
    let admin = state.config().private_api && super::admin::authorize(state, req).is_ok();
    match super::vod::recorded_stream(lib, id) {
        Some(stream) if !admin => crate::admit::viewer_request(state, &stream, req),
        _ => Ok(()),
    }
}
