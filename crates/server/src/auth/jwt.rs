//! JSON Web Tokens for publishing and watching, decided without I/O (the time is passed in).
//!
//! ```text
//! header  {"alg": "HS256" | "RS256" | "ES256", "kid": optional}
//! claims  {"action": "publish" | "read", "stream": "show" | "cams/*" | "*",
//!          "exp": 1795000000, "nbf": optional}
//! ```
//! A token is taken from `?jwt=` or `Authorization: Bearer` (HTTP), or from the stream key's
//! query (`rtmp://host/live/show?jwt=...`). It grants its `action` on the streams its `stream`
//! names (one `*` matches any run of characters), until `exp`; `nbf`, when present, is when it
//! starts. Both are checked here against `now` with the configured leeway (clock skew between
//! the issuer and this server), not by the decoding crate's own clock.
//!
//! Keys: an HS256 secret, RS256/ES256 public keys (PEM), and the keys of a JWKS document
//! ([`Keys::set_jwks`], fetched by jwks.rs). A token with a `kid` is checked with that key only;
//! one without, with each key of its algorithm. Signatures are checked by `jsonwebtoken` (on
//! ring, the crypto rustls already uses).

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::sync::RwLock;

/// What a token may grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Publish,
    Read,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Read => "read",
        }
    }
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("a token is required (?jwt= or Authorization: Bearer)")]
    Missing,
    #[error("the token is malformed or its signature does not verify")]
    Invalid,
    #[error("the token expired at {0} (Unix time)")]
    Expired(u64),
    #[error("the token is not valid before {0} (Unix time)")]
    NotYet(u64),
    #[error("the token does not grant {0}")]
    WrongAction(&'static str),
    #[error("the token is from another issuer (iss)")]
    WrongIssuer,
    #[error("the token is for another audience (aud)")]
    WrongAudience,
    #[error("the token is for another stream")]
    WrongStream,
}

/// The claims this server reads; others are ignored.
#[derive(Debug, serde::Deserialize)]
struct Claims {
    action: String,
    stream: String,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
}

/// `aud`: one audience, or several (RFC 7519 §4.1.3).
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn names(&self, want: &str) -> bool {
        match self {
            Audience::One(a) => a == want,
            Audience::Many(v) => v.iter().any(|a| a == want),
        }
    }
}

/// Where JWKS keys come from: fetched at start and every `refresh` (by the server's shell,
/// jwks.rs), over `http://` or `https://` (trusting `ca`, or the system's CA bundle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSource {
    pub url: http::Uri,
    pub ca: Option<std::path::PathBuf>,
    pub refresh: std::time::Duration,
}

/// One verification key.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The verification keys, and the leeway for `exp`/`nbf`.
pub struct Keys {
    fixed: Vec<Key>,
    /// From the JWKS URL; replaced whole on each fetch.
    jwks: RwLock<Vec<Key>>,
    /// When the JWKS keys were last taken (Unix seconds; 0: never).
    jwks_at: std::sync::atomic::AtomicU64,
    leeway: u64,
    /// The `iss` and `aud` a token must carry, where the config names them (an identity
    /// provider that issues tokens for other services too).
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("fixed", &self.fixed.len())
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// `secret`: HS256 (at least 32 bytes, RFC 7518 §3.2); `pems`: RS256 or ES256 public keys
    /// (PEM `PUBLIC KEY`; the algorithm is told by the key).
    pub fn new(secret: Option<&[u8]>, pems: &[Vec<u8>], leeway_secs: u64) -> Result<Keys, String> {
        let mut fixed = Vec::new();
        if let Some(s) = secret {
            if s.len() < 32 {
                return Err("jwt secret: HS256 needs at least 32 bytes".into());
            }
            fixed.push(Key {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(s),
            });
        }
        for (i, pem) in pems.iter().enumerate() {
            let key = match DecodingKey::from_rsa_pem(pem) {
                Ok(k) => Key {
                    kid: None,
                    alg: Algorithm::RS256,
                    key: k,
                },
                Err(_) => Key {
                    kid: None,
                    alg: Algorithm::ES256,
                    key: DecodingKey::from_ec_pem(pem).map_err(|e| {
                        format!("jwt public key {}: neither RSA nor EC PEM: {e}", i + 1)
                    })?,
                },
            };
            fixed.push(key);
        }
        Ok(Keys {
            fixed,
            jwks: RwLock::new(Vec::new()),
            jwks_at: std::sync::atomic::AtomicU64::new(0),
            leeway: leeway_secs,
            issuer: None,
            audience: None,
        })
    }

    /// Tokens must name `issuer` (`iss`) and `audience` (in `aud`), where given.
    pub fn with_claims(mut self, issuer: Option<String>, audience: Option<String>) -> Self {
        (self.issuer, self.audience) = (issuer, audience);
        self
    }

    /// When the JWKS keys were last taken (Unix seconds), if ever.
    pub fn jwks_at(&self) -> Option<u64> {
        let at = self.jwks_at.load(std::sync::atomic::Ordering::Relaxed);
        (at > 0).then_some(at)
    }

    /// Takes the JWKS keys another `Keys` holds (a reload with the same JWKS URL).
    pub fn keep_jwks_of(&self, other: &Keys) {
        let theirs = other.jwks.read().unwrap_or_else(|p| p.into_inner()).clone();
        *self.jwks.write().unwrap_or_else(|p| p.into_inner()) = theirs;
        let at = other.jwks_at.load(std::sync::atomic::Ordering::Relaxed);
        self.jwks_at.store(at, std::sync::atomic::Ordering::Relaxed);
    }

    /// Replaces the JWKS keys with those of `doc` (RS256 and ES256 keys; others skipped), taken
    /// at `now` (Unix seconds). Returns how many were taken; a document that does not parse
    /// changes nothing, nor does one with no key this server uses unless `take_empty` (the
    /// fetch before said the same: the keys were withdrawn, not lost in a rotation's glitch).
    pub fn set_jwks_at(&self, doc: &[u8], now: u64, take_empty: bool) -> Result<usize, String> {
        let n = self.set_jwks(doc, take_empty)?;
        self.jwks_at
            .store(now.max(1), std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }

    /// Replaces the JWKS keys with those of `doc` (RS256 and ES256 keys; others skipped).
    /// Returns how many were taken; a set with none is refused (the keys held stay) unless
    /// `take_empty`.
    pub fn set_jwks(&self, doc: &[u8], take_empty: bool) -> Result<usize, String> {
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_slice(doc).map_err(|e| format!("JWKS: {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let alg = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                _ => continue,
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.push(Key {
                    kid: jwk.common.key_id.clone(),
                    alg,
                    key,
                });
            }
        }
        // A set with no key this server can use (a glitch in the middle of a rotation) would
        // refuse every token until the next refresh: refused, the keys held stay.
        if keys.is_empty() && !take_empty {
            return Err("JWKS: no RS256 or ES256 key in the set".into());
        }
        let n = keys.len();
        *self.jwks.write().unwrap_or_else(|p| p.into_inner()) = keys;
        Ok(n)
    }

    /// Checks `token` for `action` on `stream` at `now` (Unix seconds).
    pub fn check(
        &self,
        token: Option<&str>,
        action: Action,
        stream: &str,
        now: u64,
    ) -> Result<(), TokenError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)?;
        // Bounded before any decoding: a token is a few hundred bytes.
        if token.len() > 8192 {
            return Err(TokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let jwks = self.jwks.read().unwrap_or_else(|p| p.into_inner());
        // A `kid` picks the key that has it; keys without one are tried too.
        let candidates = self.fixed.iter().chain(jwks.iter()).filter(|k| {
            k.alg == header.alg && (header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
        });
        let mut v = Validation::new(header.alg);
        // exp and nbf are checked below, on our clock; no audience is asked for.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let claims = candidates
            .take(16)
            .find_map(|k| jsonwebtoken::decode::<Claims>(token, &k.key, &v).ok())
            .ok_or(TokenError::Invalid)?
            .claims;
        if now > claims.exp.saturating_add(self.leeway) {
            return Err(TokenError::Expired(claims.exp));
        }
        if let Some(nbf) = claims.nbf {
            if now.saturating_add(self.leeway) < nbf {
                return Err(TokenError::NotYet(nbf));
            }
        }
        if self
            .issuer
            .as_ref()
            .is_some_and(|i| claims.iss.as_ref() != Some(i))
        {
            return Err(TokenError::WrongIssuer);
        }
        if let Some(want) = &self.audience {
            if !claims.aud.as_ref().is_some_and(|a| a.names(want)) {
                return Err(TokenError::WrongAudience);
            }
        }
        if claims.action != action.as_str() {
            return Err(TokenError::WrongAction(action.as_str()));
        }
        if !matches(&claims.stream, stream) {
            return Err(TokenError::WrongStream);
        }
        Ok(())
    }
}

/// Whether `pattern` (with at most one `*`, matching any run of characters) matches `name`.
pub fn matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len() && name.starts_with(head) && name.ends_with(tail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn token(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn keys() -> Keys {
        Keys::new(Some(SECRET), &[], 30).unwrap()
    }

    fn claims(action: &str, stream: &str, exp: u64) -> serde_json::Value {
        serde_json::json!({"action": action, "stream": stream, "exp": exp})
    }

    #[test]
    fn a_jwks_with_no_key_this_server_uses_is_refused_until_a_second_fetch_says_it_too() {
        let k = keys();
        assert!(k.set_jwks_at(br#"{"keys":[]}"#, NOW, false).is_err());
        let hmac = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256"}]}"#;
        assert!(k.set_jwks_at(hmac, NOW, false).is_err());
        let tried = k.jwks_at();
        assert_eq!(tried, None, "not counted as fetched: tried again soon");
        // Said again by the next fetch: the keys were withdrawn.
        assert_eq!(k.set_jwks_at(hmac, NOW, true), Ok(0));
        assert_eq!(k.jwks_at(), Some(NOW));
        assert!(k.set_jwks_at(b"not json", NOW, true).is_err());
    }

    #[test]
    fn an_issuer_and_an_audience_when_configured_must_be_the_tokens() {
        let k = keys().with_claims(Some("https://idp.example/".into()), Some("zerocast".into()));
        let exp = NOW + 60;
        let with = |extra: serde_json::Value| {
            let mut c = claims("read", "cam", exp);
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            k.check(Some(&token(c)), Action::Read, "cam", NOW)
        };
        let iss = "https://idp.example/";
        assert_eq!(
            with(serde_json::json!({"iss": iss, "aud": "zerocast"})),
            Ok(())
        );
        assert_eq!(
            with(serde_json::json!({"iss": iss, "aud": ["other", "zerocast"]})),
            Ok(())
        );
        assert_eq!(
            with(serde_json::json!({"aud": "zerocast"})),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            with(serde_json::json!({"iss": "https://evil.example/", "aud": "zerocast"})),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            with(serde_json::json!({"iss": iss, "aud": ["other"]})),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            with(serde_json::json!({"iss": iss})),
            Err(TokenError::WrongAudience)
        );
        // Without them configured, neither is asked for.
        let c = claims("read", "cam", exp);
        assert_eq!(
            keys().check(Some(&token(c)), Action::Read, "cam", NOW),
            Ok(())
        );
    }

    #[test]
    fn a_token_grants_its_action_on_its_streams_until_it_expires() {
        let k = keys();
        let t = token(claims("read", "cams/*", NOW + 60));
        assert_eq!(k.check(Some(&t), Action::Read, "cams/front", NOW), Ok(()));
        assert_eq!(
            k.check(Some(&t), Action::Read, "other", NOW),
            Err(TokenError::WrongStream)
        );
        assert_eq!(
            k.check(Some(&t), Action::Publish, "cams/front", NOW),
            Err(TokenError::WrongAction("publish"))
        );
    }

    #[test]
    fn expiry_and_not_before_hold_with_the_leeway() {
        let k = keys();
        let t = token(claims("publish", "show", NOW));
        assert_eq!(k.check(Some(&t), Action::Publish, "show", NOW + 30), Ok(()));
        assert_eq!(
            k.check(Some(&t), Action::Publish, "show", NOW + 31),
            Err(TokenError::Expired(NOW))
        );
        let mut c = claims("publish", "show", NOW + 600);
        c["nbf"] = (NOW + 100).into();
        let t = token(c);
        assert_eq!(
            k.check(Some(&t), Action::Publish, "show", NOW + 69),
            Err(TokenError::NotYet(NOW + 100))
        );
        assert_eq!(k.check(Some(&t), Action::Publish, "show", NOW + 70), Ok(()));
    }

    #[test]
    fn a_token_without_exp_a_bad_signature_or_garbage_is_invalid() {
        let k = keys();
        let no_exp = token(serde_json::json!({"action": "read", "stream": "*"}));
        assert_eq!(
            k.check(Some(&no_exp), Action::Read, "a", NOW),
            Err(TokenError::Invalid)
        );
        let other = encode(
            &Header::new(Algorithm::HS256),
            &claims("read", "*", NOW + 60),
            &EncodingKey::from_secret(b"another secret, 32 bytes long!!!"),
        )
        .unwrap();
        assert_eq!(
            k.check(Some(&other), Action::Read, "a", NOW),
            Err(TokenError::Invalid)
        );
        for junk in ["x", "a.b.c", "....", &"A".repeat(10_000)] {
            assert_eq!(
                k.check(Some(junk), Action::Read, "a", NOW),
                Err(TokenError::Invalid)
            );
        }
        assert_eq!(
            k.check(None, Action::Read, "a", NOW),
            Err(TokenError::Missing)
        );
    }

    #[test]
    fn an_alg_none_token_is_refused() {
        let k = keys();
        let body = "eyJhY3Rpb24iOiJyZWFkIiwic3RyZWFtIjoiKiIsImV4cCI6OTk5OTk5OTk5OX0";
        let none = format!("eyJhbGciOiJub25lIn0.{body}.");
        assert_eq!(
            k.check(Some(&none), Action::Read, "a", NOW),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn patterns_match_a_prefix_a_suffix_or_everything() {
        assert!(matches("*", "anything"));
        assert!(matches("cams/*", "cams/1"));
        assert!(!matches("cams/*", "cam"));
        assert!(matches("*-hd", "show-hd"));
        assert!(matches("a*a", "aa"));
        assert!(!matches("a*a", "a"));
        assert!(matches("show", "show") && !matches("show", "shows"));
    }
}
