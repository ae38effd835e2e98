//! Signed URLs, decided without I/O (the time is passed in). Paths under the configured prefixes
//! (e.g. `/videos/`, `/live/`) are served only with a valid signature in their query:
//!
//! ```text
//! /videos/film.mp4?expires=1795000000&sig=HEX
//! /live/show/index.m3u8?expires=1795000000&scope=/live/show/&sig=HEX
//!   sig = lowercase hex of HMAC-SHA256(secret, SCOPE + "\n" + EXPIRES)
//!   SCOPE = the `scope` parameter if present (a path prefix that the request's path must start
//!           with: one link for a playlist and every segment it lists), else the request's path
//! ```
//! A live playlist fetched with a scoped signature carries the link (`expires`, `scope`, `sig`,
//! written again from the checked values; nothing else of the query) on to its segment URIs
//! (`http::hls`), so players need nothing special. A CDN in front keys on (or strips) the query
//! and caches the bytes; the link still expires at the edge that checks it, here.
//!
//! The signature is compared in constant time; an expired link is refused even with a valid
//! signature, and the refusal says which (never why a signature is wrong).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What the config asks for: the keyed MAC (cloned for each use) and the protected prefixes.
#[derive(Clone)]
pub struct Signed {
    key: Hmac<Sha256>,
    prefixes: Vec<String>,
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Signed")
            .field("prefixes", &self.prefixes)
            .finish_non_exhaustive()
    }
}

/// Why a request for a protected path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this path needs a signed link (expires and sig)")]
    Unsigned,
    #[error("the link expired at {0} (Unix time)")]
    Expired(u64),
    #[error("the link's signature does not match")]
    BadSignature,
    #[error("the link's scope does not cover this path")]
    OutOfScope,
}

/// A valid signed request: the query to carry on to the URIs a playlist lists (with a scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid {
    pub carry: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Signed {
    /// `secret` must be at least 16 bytes; `prefixes` start with `/`.
    pub fn new(secret: &[u8], prefixes: Vec<String>) -> Result<Signed, String> {
        if secret.len() < 16 {
            return Err("the secret needs at least 16 bytes".into());
        }
        if let Some(p) = prefixes.iter().find(|p| !p.starts_with('/')) {
            return Err(format!("'{p}': a prefix is a path, starting with '/'"));
        }
        // Matched against decoded paths: decoded too.
        let prefixes = prefixes
            .iter()
            .map(|p| {
                percent_encoding::percent_decode_str(p)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let key = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .map_err(|_| "the secret cannot key HMAC-SHA256".to_string())?;
        Ok(Signed { key, prefixes })
    }

    /// Whether `path` needs a signed link.
    pub fn covers(&self, path: &str) -> bool {
        self.prefixes.iter().any(|p| path.starts_with(p.as_str()))
    }

    fn mac(&self, scope: &str, expires: u64) -> Hmac<Sha256> {
        let mut mac = self.key.clone();
        mac.update(scope.as_bytes());
        mac.update(b"\n");
        // The decimal expiry, formatted on the stack: a check allocates nothing.
        let mut digits = [0u8; 20];
        let mut w = &mut digits[..];
        let _ = std::io::Write::write_fmt(&mut w, format_args!("{expires}"));
        let n = 20 - w.len();
        mac.update(&digits[..n]);
        mac
    }

    /// The signature of a link to `scope` valid until `expires` (Unix seconds).
    pub fn sign(&self, scope: &str, expires: u64) -> String {
        hex(&self.mac(scope, expires).finalize().into_bytes())
    }

    /// A request for `path` with `query`, at `now` (Unix seconds). Paths not covered pass.
    /// The path is taken as decoded (`/videos/%70remium/a.mp4` is `/videos/premium/a.mp4`, as
    /// the title it names): the prefixes (decoded too), the scope and the signature all see
    /// that one, so a link opens the one title it names however its path is written.
    pub fn check(&self, path: &str, query: Option<&str>, now: u64) -> Result<Valid, LinkError> {
        let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        let path = path.as_ref();
        if !self.covers(path) {
            return Ok(Valid { carry: None });
        }
        let (mut expires, mut sig, mut scope) = (None, None, None);
        for kv in query.unwrap_or("").split('&') {
            let slot = match kv.split_once('=') {
                Some(("expires", v)) => (&mut expires, v),
                Some(("sig", v)) => (&mut sig, v),
                Some(("scope", v)) => (&mut scope, v),
                _ => continue,
            };
            // One of each: a second `expires` is not a link (which one would a cache, or the
            // cap on what it may keep, read?).
            if slot.0.replace(slot.1).is_some() {
                return Err(LinkError::BadSignature);
            }
        }
        let (Some(expires), Some(sig)) = (expires, sig) else {
            return Err(LinkError::Unsigned);
        };
        let expires: u64 = expires.parse().map_err(|_| LinkError::BadSignature)?;
        let scope_path = match scope {
            Some(s) => {
                let s = percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .map_err(|_| LinkError::BadSignature)?;
                if !s.ends_with('/') || !path.starts_with(s.as_ref()) {
                    return Err(LinkError::OutOfScope);
                }
                s
            }
            None => std::borrow::Cow::Borrowed(path),
        };
        let Some(sig) = unhex(sig) else {
            return Err(LinkError::BadSignature);
        };
        // Constant time, by the HMAC crate.
        self.mac(&scope_path, expires)
            .verify_slice(&sig)
            .map_err(|_| LinkError::BadSignature)?;
        if now > expires {
            return Err(LinkError::Expired(expires));
        }
        // Only what the link is made of is carried on, written again from what was just
        // checked: a playlist writes the carry into its URIs (in quoted attributes too), so
        // nothing else of the requester's query may reach it.
        Ok(Valid {
            carry: scope.map(|_| {
                let scope = percent_encoding::utf8_percent_encode(&scope_path, SCOPE);
                format!("expires={expires}&scope={scope}&sig={}", hex(&sig))
            }),
        })
    }
}

/// What is escaped in a carried scope: all but RFC 3986's unreserved characters and `/`.
const SCOPE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// A 64-digit hex signature as its 32 bytes (on the stack).
fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_790_000_000;

    fn signed() -> Signed {
        Signed::new(
            b"0123456789abcdef-secret",
            vec!["/videos/".into(), "/live/".into()],
        )
        .unwrap()
    }

    fn link(path: &str, scope: Option<&str>, expires: u64) -> String {
        let s = signed();
        let sig = s.sign(scope.unwrap_or(path), expires);
        match scope {
            Some(sc) => format!("expires={expires}&scope={sc}&sig={sig}"),
            None => format!("expires={expires}&sig={sig}"),
        }
    }

    #[test]
    fn a_path_outside_the_prefixes_needs_no_signature() {
        assert_eq!(
            signed().check("/api/videos", None, NOW),
            Ok(Valid { carry: None })
        );
    }

    #[test]
    fn a_valid_link_passes_until_it_expires() {
        let q = link("/videos/a.mp4", None, NOW + 60);
        assert!(signed().check("/videos/a.mp4", Some(&q), NOW).is_ok());
        assert!(signed().check("/videos/a.mp4", Some(&q), NOW + 60).is_ok());
        assert_eq!(
            signed().check("/videos/a.mp4", Some(&q), NOW + 61),
            Err(LinkError::Expired(NOW + 60))
        );
    }

    /// A second `expires` (or `sig`, or `scope`) in front of a valid link: refused, so that
    /// what a cache and the server's cap on its keeping read is the one expiry checked.
    #[test]
    fn a_link_with_a_parameter_twice_is_refused() {
        let q = link("/videos/a.mp4", None, NOW + 60);
        for extra in ["expires=99999999999", "sig=00", "scope=/videos/"] {
            let twice = format!("{extra}&{q}");
            assert_eq!(
                signed().check("/videos/a.mp4", Some(&twice), NOW),
                Err(LinkError::BadSignature),
                "{twice}"
            );
        }
    }

    #[test]
    fn a_link_for_one_path_does_not_open_another() {
        let q = link("/videos/a.mp4", None, NOW + 60);
        assert_eq!(
            signed().check("/videos/b.mp4", Some(&q), NOW),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn a_changed_expiry_or_signature_or_secret_is_refused() {
        let q = link("/videos/a.mp4", None, NOW + 60);
        let later = q.replace(
            &format!("expires={}", NOW + 60),
            &format!("expires={}", NOW + 6000),
        );
        assert_eq!(
            signed().check("/videos/a.mp4", Some(&later), NOW),
            Err(LinkError::BadSignature)
        );
        let flipped = format!("{}0", &q[..q.len() - 1]);
        let flipped = if flipped == q {
            format!("{}1", &q[..q.len() - 1])
        } else {
            flipped
        };
        assert_eq!(
            signed().check("/videos/a.mp4", Some(&flipped), NOW),
            Err(LinkError::BadSignature)
        );
        let other = Signed::new(b"another-secret-of-16+", vec!["/videos/".into()]).unwrap();
        assert_eq!(
            other.check("/videos/a.mp4", Some(&q), NOW),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn a_missing_or_malformed_signature_is_refused() {
        let s = signed();
        assert_eq!(
            s.check("/videos/a.mp4", None, NOW),
            Err(LinkError::Unsigned)
        );
        assert_eq!(
            s.check("/videos/a.mp4", Some("expires=1"), NOW),
            Err(LinkError::Unsigned)
        );
        for bad in ["expires=x&sig=00", "expires=1&sig=zz", "expires=1&sig=é"] {
            assert_eq!(
                s.check("/videos/a.mp4", Some(bad), NOW),
                Err(LinkError::BadSignature),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_scoped_link_opens_every_path_under_its_scope_and_is_carried_on() {
        let q = link("", Some("/live/show/"), NOW + 60);
        for path in ["/live/show/index.m3u8", "/live/show/12.ts"] {
            let v = signed().check(path, Some(&q), NOW).unwrap();
            assert_eq!(v.carry.as_deref(), Some(q.as_str()));
        }
        assert_eq!(
            signed().check("/live/other/index.m3u8", Some(&q), NOW),
            Err(LinkError::OutOfScope)
        );
    }

    #[test]
    fn only_the_link_itself_is_carried_on_never_the_rest_of_the_query() {
        let q = link("", Some("/live/show/"), NOW + 60);
        let v = signed()
            .check(
                "/live/show/ll.m3u8",
                Some(&format!("a=\",x=\"y&{q}&b=%22,")),
                NOW,
            )
            .unwrap();
        assert_eq!(v.carry.as_deref(), Some(q.as_str()));
    }

    #[test]
    fn a_carried_scope_is_written_percent_encoded() {
        let sig = signed().sign("/live/a \"b/", NOW + 60);
        let q = format!("expires={}&scope=/live/a%20%22b/&sig={sig}", NOW + 60);
        let v = signed()
            .check("/live/a \"b/ll.m3u8", Some(&q), NOW)
            .unwrap();
        assert_eq!(v.carry.as_deref(), Some(q.as_str()));
        // The same link with the scope's characters written raw: the same carry.
        let raw = format!("expires={}&scope=/live/a \"b/&sig={sig}", NOW + 60);
        let v = signed()
            .check("/live/a \"b/ll.m3u8", Some(&raw), NOW)
            .unwrap();
        assert_eq!(v.carry.as_deref(), Some(q.as_str()));
    }

    #[test]
    fn a_path_written_with_percent_escapes_is_the_path_it_names() {
        let s = Signed::new(b"0123456789abcdef-secret", vec!["/videos/premium/".into()]).unwrap();
        for path in [
            "/videos/%70remium/film.mp4",
            "/videos/premium%2Ffilm.mp4",
            "/videos/premium%2ffilm.mp4",
        ] {
            assert_eq!(s.check(path, None, NOW), Err(LinkError::Unsigned), "{path}");
            let sig = s.sign("/videos/premium/film.mp4", NOW + 60);
            let q = format!("expires={}&sig={sig}", NOW + 60);
            assert!(s.check(path, Some(&q), NOW).is_ok(), "{path}");
        }
        assert!(s.check("/videos/free/film.mp4", None, NOW).is_ok());
    }

    #[test]
    fn a_link_is_signed_for_the_title_it_names_not_for_how_its_path_is_written() {
        let s = signed();
        let q = format!(
            "expires={}&sig={}",
            NOW + 60,
            s.sign("/videos/a b.mp4", NOW + 60)
        );
        assert!(s.check("/videos/a%20b.mp4", Some(&q), NOW).is_ok());
        // Signed for the path as written: `a%20b.mp4` names the title `a b.mp4`, and a title
        // named `a%20b.mp4` (its path `a%2520b.mp4`) needs a link of its own.
        let raw = format!(
            "expires={}&sig={}",
            NOW + 60,
            s.sign("/videos/a%20b.mp4", NOW + 60)
        );
        assert_eq!(
            s.check("/videos/a%20b.mp4", Some(&raw), NOW),
            Err(LinkError::BadSignature)
        );
        assert!(s.check("/videos/a%2520b.mp4", Some(&raw), NOW).is_ok());
    }

    #[test]
    fn a_prefix_written_with_percent_escapes_covers_the_paths_it_names() {
        let s = Signed::new(b"0123456789abcdef-secret", vec!["/videos/my%20dir/".into()]).unwrap();
        assert_eq!(
            s.check("/videos/my%20dir/a.mp4", None, NOW),
            Err(LinkError::Unsigned)
        );
        assert_eq!(
            s.check("/videos/my dir/a.mp4", None, NOW),
            Err(LinkError::Unsigned)
        );
    }

    #[test]
    fn a_scope_must_end_with_a_slash() {
        let q = link("", Some("/live/sh"), NOW + 60);
        assert_eq!(
            signed().check("/live/show/1.ts", Some(&q), NOW),
            Err(LinkError::OutOfScope)
        );
    }

    #[test]
    fn the_signature_is_what_openssl_computes() {
        // printf '%s\n%s' /videos/faststart.mp4 1790000000 |
        //   openssl dgst -sha256 -hmac a-signing-secret-for-tests -hex   (docs/auth.md)
        let s = Signed::new(b"a-signing-secret-for-tests", vec!["/videos/".into()]).unwrap();
        assert_eq!(
            s.sign("/videos/faststart.mp4", 1_790_000_000),
            "5b70fcc1805822fac266d17d05fd7e106d6eec7ee861a3a110c5551a77c6466e"
        );
    }

    #[test]
    fn the_secret_is_long_enough_and_never_printed() {
        assert!(Signed::new(b"short", vec![]).is_err());
        assert!(!format!("{:?}", signed()).contains("0123456789abcdef"));
    }
}
