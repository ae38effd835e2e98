//! Who may publish and watch, and who may fetch what, decided without I/O (the time is passed
//! in); the only I/O is the HTTP callbacks' (hooks.rs), called by the shells.
//!
//! - [`Rules`]: per stream-name pattern (first match wins), the credentials that admit a
//!   publisher and a viewer ([`Credential`]): a publish key (`live::registry`), a JWT
//!   ([`jwt`]), or nothing (`open`). Without a matching rule, publishers need a key (or, with no
//!   key configured at all, must be on this machine) and viewers are let in, as before rules.
//!   Viewers are checked on every protocol: `.ts`/`.flv` over HTTP/1.1 and HTTP/2, RTMP(S) play,
//!   and each HLS playlist and segment (a playlist fetched with `?jwt=` carries it on to its
//!   segment URIs, as signed links do).
//! - [`hooks`]: `on_publish`, `on_play` (HTTP viewers, RTMP players, HLS playlists) and
//!   `on_unpublish`, POSTed as JSON after the credentials pass; fail-closed by default.
//! - [`signed`]: signed URLs for titles and live HLS (an HMAC of a path and an expiry, in the
//!   style of nginx's `secure_link`), so that links expire while a CDN caches the bytes.
//! - The admin token: the control API's (`http::admin`).

pub mod hooks;
pub mod jwt;
pub mod signed;

pub use jwt::{Action, JwksSource, Keys, TokenError};

use http::{HeaderMap, Uri};
use std::sync::Arc;

/// A credential a rule accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// Anyone.
    Open,
    /// A publish key (publishing only).
    Key,
    /// A JWT for the action and the stream.
    Jwt,
}

impl std::str::FromStr for Credential {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(Credential::Open),
            "key" => Ok(Credential::Key),
            "jwt" => Ok(Credential::Jwt),
            _ => Err(format!("'{s}': expected open, key or jwt")),
        }
    }
}

/// The credentials for the streams whose names match `streams`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// A stream name, or a pattern with one `*`.
    pub streams: String,
    pub publish: Vec<Credential>,
    pub read: Vec<Credential>,
}

/// Per-stream rules and the JWT keys.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub rules: Vec<Rule>,
    pub jwt: Option<Arc<Keys>>,
    /// A JWKS URL whose keys join `jwt`'s.
    pub jwks: Option<JwksSource>,
}

/// What a client presented for one request.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    /// A publish key (`?key=` or Bearer), already extracted by the caller.
    pub key: Option<&'a str>,
    /// A token (`?jwt=` or Bearer).
    pub token: Option<&'a str>,
}

/// Why a request was refused, with what it was refused for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("{0}")]
    Token(TokenError),
    /// A rule asks for a key: the registry's check says what is wrong (`None`: no key rule).
    #[error("a publish key is required")]
    Key,
}

impl Rules {
    /// The credentials that admit `action` on `stream`; `None`: no rule matches (the defaults).
    pub fn for_stream(&self, action: Action, stream: &str) -> Option<&[Credential]> {
        let rule = self
            .rules
            .iter()
            .find(|r| jwt::matches(&r.streams, stream))?;
        Some(match action {
            Action::Publish => &rule.publish,
            Action::Read => &rule.read,
        })
    }

    /// Checks a viewer (`Read`) or, for a rule without `key`, a publisher. `key_ok` says whether
    /// the presented key passes the registry's check (asked only when a rule accepts keys).
    /// `Ok(true)`: admitted by a rule; `Ok(false)`: no rule matches, the defaults apply.
    pub fn check(
        &self,
        action: Action,
        stream: &str,
        presented: Presented<'_>,
        key_ok: impl FnOnce() -> bool,
        now: u64,
    ) -> Result<bool, Denied> {
        let Some(accepted) = self.for_stream(action, stream) else {
            return Ok(false);
        };
        if accepted.contains(&Credential::Open) {
            return Ok(true);
        }
        let mut why = Denied::Key;
        if accepted.contains(&Credential::Jwt) {
            let keys = self.jwt.as_deref();
            let checked = match keys {
                Some(k) => k.check(presented.token, action, stream, now),
                None => Err(TokenError::Invalid),
            };
            match checked {
                Ok(()) => return Ok(true),
                Err(e) => why = Denied::Token(e),
            }
        }
        if accepted.contains(&Credential::Key) && presented.key.is_some() && key_ok() {
            return Ok(true);
        }
        Err(why)
    }
}

/// The token a request presents: `?jwt=` (percent-decoded), else `Authorization: Bearer`.
pub fn token(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    query_param(uri.query(), "jwt").or_else(|| {
        let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string())
    })
}

/// A query parameter, percent-decoded.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query.into_iter().flat_map(|q| q.split('&')).find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// A query with the values of its credentials (`key`, `jwt`, `sig`) replaced by `-`: what
/// callbacks hear and logs show.
pub fn redact(query: &str) -> String {
    query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k @ ("key" | "jwt" | "sig"), _)) => format!("{k}=-"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether a `[[auth]]` pattern can match stream names: one `*` at most, and otherwise the
/// characters a stream name may have.
pub fn valid_pattern(p: &str) -> bool {
    !p.is_empty()
        && p.matches('*').count() <= 1
        && p.bytes()
            .all(|b| b == b'*' || b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The Unix time now, in seconds (the shells' clock for the pure checks).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        let secret = b"0123456789abcdef0123456789abcdef";
        Rules {
            rules: vec![
                Rule {
                    streams: "private/*".into(),
                    publish: vec![Credential::Jwt, Credential::Key],
                    read: vec![Credential::Jwt],
                },
                Rule {
                    streams: "*".into(),
                    publish: vec![Credential::Key],
                    read: vec![Credential::Open],
                },
            ],
            jwt: Some(Arc::new(Keys::new(Some(secret), &[], 0).unwrap())),
            jwks: None,
        }
    }

    const NONE: Presented<'static> = Presented {
        key: None,
        token: None,
    };

    #[test]
    fn the_first_matching_rule_decides() {
        let r = rules();
        assert_eq!(r.check(Action::Read, "lobby", NONE, || false, 0), Ok(true));
        assert_eq!(
            r.check(Action::Read, "private/a", NONE, || false, 0),
            Err(Denied::Token(TokenError::Missing))
        );
        assert_eq!(
            Rules::default().check(Action::Read, "x", NONE, || false, 0),
            Ok(false)
        );
    }

    #[test]
    fn a_key_admits_a_publisher_where_the_rule_takes_keys() {
        let r = rules();
        let key = Presented {
            key: Some("k"),
            token: None,
        };
        assert_eq!(
            r.check(Action::Publish, "private/a", key, || true, 0),
            Ok(true)
        );
        assert_eq!(
            r.check(Action::Publish, "private/a", key, || false, 0),
            Err(Denied::Token(TokenError::Missing)),
            "a wrong key leaves the token's refusal"
        );
        assert_eq!(
            r.check(Action::Publish, "lobby", NONE, || true, 0),
            Err(Denied::Key)
        );
    }

    #[test]
    fn credentials_are_redacted_and_the_rest_kept() {
        assert_eq!(
            redact("a=1&key=s3&jwt=x.y.z&sig=ab&b="),
            "a=1&key=-&jwt=-&sig=-&b="
        );
        assert_eq!(redact("session=7"), "session=7");
    }

    #[test]
    fn patterns_have_one_star_at_most_and_name_characters() {
        assert!(valid_pattern("cams-*") && valid_pattern("*") && valid_pattern("show"));
        assert!(!valid_pattern("team-*-hd*"));
        assert!(!valid_pattern("a b") && !valid_pattern(""));
    }

    #[test]
    fn query_parameters_are_found_and_decoded() {
        assert_eq!(
            query_param(Some("a=1&jwt=x%2Ey"), "jwt").as_deref(),
            Some("x.y")
        );
        assert_eq!(query_param(Some("xjwt=1"), "jwt"), None);
        assert_eq!(query_param(None, "jwt"), None);
    }
}
