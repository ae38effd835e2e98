//! The config file's access settings: HTTPS/RTMPS (`tls_*`), JWT keys (`[jwt]`), per-stream
//! rules (`[[auth]]`) and HTTP callbacks (`[callbacks]`), checked and turned into the server's.

use super::FileConfig;
use crate::cli::ServeArgs;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The `[jwt]` table: the keys that verify tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtFile {
    /// HS256 secret (at least 32 bytes).
    pub(super) secret: Option<String>,
    /// RS256/ES256 public keys, PEM files (relative to the config file).
    #[serde(default)]
    pub(super) public_keys: Vec<PathBuf>,
    /// Clock skew tolerated on `exp` and `nbf` (default 30 s).
    leeway_secs: Option<u64>,
    /// A JWKS document's URL (http:// or https://), fetched at start and every
    /// `jwks_refresh_secs` (default 300).
    jwks_url: Option<String>,
    /// The CA that signs the JWKS server's certificate (PEM); default: the system's bundle.
    pub(super) jwks_ca: Option<PathBuf>,
    jwks_refresh_secs: Option<u64>,
    /// The `iss` a token must carry (default: any).
    issuer: Option<String>,
    /// A name a token's `aud` must hold (default: any).
    audience: Option<String>,
}

/// One `[[auth]]` rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthRuleFile {
    /// A stream name or a pattern with one `*`.
    streams: String,
    /// Credentials that admit a publisher: "key", "jwt", "open" (default ["key"]).
    #[serde(default = "key_only")]
    publish: Vec<String>,
    /// Credentials that admit a viewer: "jwt", "open" (default ["open"]).
    #[serde(default = "open_only")]
    read: Vec<String>,
}

fn key_only() -> Vec<String> {
    vec!["key".into()]
}

fn open_only() -> Vec<String> {
    vec!["open".into()]
}

/// The `[callbacks]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbacksFile {
    on_publish: Option<String>,
    on_play: Option<String>,
    on_unpublish: Option<String>,
    /// How long a callback may take (default 3000 ms).
    timeout_ms: Option<u64>,
    /// Admit when a callback cannot be reached (default false: refuse).
    #[serde(default)]
    fail_open: bool,
    /// For https:// callbacks: the CA of the service's certificate (PEM); default: the system's.
    pub(super) ca: Option<PathBuf>,
}

/// The `[callbacks]` table.
pub(super) fn hooks(file: &FileConfig) -> Result<Option<server::auth::hooks::Hooks>> {
    let Some(c) = &file.callbacks else {
        return Ok(None);
    };
    let url = |u: &Option<String>, what: &str| -> Result<Option<server::auth::hooks::Uri>> {
        u.as_deref()
            .map(server::auth::hooks::parse_url)
            .transpose()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("callbacks.{what}"))
    };
    let mut hooks = server::auth::hooks::Hooks::default();
    hooks.on_publish = url(&c.on_publish, "on_publish")?;
    hooks.on_play = url(&c.on_play, "on_play")?;
    hooks.on_unpublish = url(&c.on_unpublish, "on_unpublish")?;
    super::at_most_ten_years("callbacks.timeout_ms", c.timeout_ms.map(|ms| ms / 1000))?;
    hooks.timeout = Duration::from_millis(c.timeout_ms.unwrap_or(3000).max(1));
    hooks.fail_open = c.fail_open;
    hooks.ca = c.ca.clone();
    hooks
        .ready()
        .map_err(anyhow::Error::msg)
        .context("callbacks.ca")?;
    Ok(Some(hooks))
}

/// The `[jwt]` keys and the `[[auth]]` rules.
pub(super) fn auth(file: &FileConfig) -> Result<server::auth::Rules> {
    use server::auth::{Credential, Keys, Rule};
    let jwt = match &file.jwt {
        Some(j) => {
            let pems = j
                .public_keys
                .iter()
                .map(|p| {
                    std::fs::read(p).with_context(|| format!("jwt.public_keys: {}", p.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            let secret = j.secret.as_deref().map(str::as_bytes);
            if secret.is_none() && pems.is_empty() && j.jwks_url.is_none() {
                bail!("[jwt] needs a secret, public_keys or a jwks_url");
            }
            let keys = Keys::new(secret, &pems, j.leeway_secs.unwrap_or(30))
                .map_err(anyhow::Error::msg)?
                .with_claims(j.issuer.clone(), j.audience.clone());
            Some(std::sync::Arc::new(keys))
        }
        None => None,
    };
    let creds = |list: &[String], what: &str, i: usize| -> Result<Vec<Credential>> {
        let c = list
            .iter()
            .map(|s| s.parse::<Credential>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("auth rule {}: {what}", i + 1))?;
        if c.contains(&Credential::Jwt) && jwt.is_none() {
            bail!(
                "auth rule {}: {what} takes jwt, but there is no [jwt] table",
                i + 1
            );
        }
        if c.is_empty() {
            bail!("auth rule {}: {what} is empty (nobody could)", i + 1);
        }
        Ok(c)
    };
    let mut rules = Vec::new();
    for (i, r) in file.auth.iter().enumerate() {
        if !server::auth::valid_pattern(&r.streams) {
            bail!(
                "auth rule {}: streams = '{}': a stream name or a pattern with one * (letters, digits, _ - .)",
                i + 1,
                r.streams
            );
        }
        let read = creds(&r.read, "read", i)?;
        if read.contains(&Credential::Key) {
            bail!(
                "auth rule {}: read: keys are for publishing (use jwt or open)",
                i + 1
            );
        }
        rules.push(Rule {
            streams: r.streams.clone(),
            publish: creds(&r.publish, "publish", i)?,
            read,
        });
    }
    let jwks = match file
        .jwt
        .as_ref()
        .and_then(|j| j.jwks_url.as_ref().map(|u| (j, u)))
    {
        Some((j, url)) => {
            let uri: server::auth::hooks::Uri = url
                .parse()
                .with_context(|| format!("jwt.jwks_url '{url}'"))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                bail!("jwt.jwks_url '{url}': expected http(s)://HOST/PATH");
            }
            let loopback = matches!(uri.host(), Some("localhost" | "127.0.0.1" | "[::1]"));
            if uri.scheme_str() == Some("http") && !loopback {
                // Whoever is on the path could serve keys of their own, and sign any token.
                tracing::warn!(url = %url, "jwt.jwks_url is plain http: the keys that verify tokens can be replaced on the way; use https");
            }
            Some(server::auth::JwksSource {
                url: uri,
                ca: j.jwks_ca.clone(),
                refresh: {
                    super::at_most_ten_years("jwt.jwks_refresh_secs", j.jwks_refresh_secs)?;
                    Duration::from_secs(j.jwks_refresh_secs.unwrap_or(300).max(10))
                },
            })
        }
        None => None,
    };
    Ok(server::auth::Rules { rules, jwt, jwks })
}

/// The HTTPS/RTMPS settings from the flags and the file (flags win; `--tls-listen` replaces the
/// file's list).
pub(super) fn tls(args: &ServeArgs, file: &FileConfig) -> Result<Option<server::tls::TlsConfig>> {
    let listen = match (&args.tls_listen, &file.tls_listen) {
        (flags, _) if !flags.is_empty() => flags.clone(),
        (_, Some(list)) => list.clone(),
        _ => Vec::new(),
    };
    let cert = args.tls_cert.clone().or(file.tls_cert.clone());
    let key = args.tls_key.clone().or(file.tls_key.clone());
    let rtmps = args.rtmps_listen.or(file.rtmps_listen);
    if listen.is_empty() && rtmps.is_none() {
        if cert.is_some() || key.is_some() {
            bail!("tls_cert and tls_key are set but no tls_listen or rtmps_listen uses them");
        }
        if file.redirect_http == Some(true) {
            bail!("redirect_http = true needs an HTTPS listener (tls_listen)");
        }
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (cert, key) else {
        bail!("tls_listen and rtmps_listen need tls_cert and tls_key (PEM files)");
    };
    let mut t = server::tls::TlsConfig::new(listen, cert, key);
    t.rtmps_listen = rtmps;
    if let Some(r) = file.redirect_http {
        if r && t.listen.is_empty() {
            bail!("redirect_http = true needs an HTTPS listener (tls_listen)");
        }
        t.redirect_http = r;
    }
    t.hsts = file.hsts_max_age_secs.map(Duration::from_secs);
    t.cipher_suites = file.tls_cipher_suites.clone().unwrap_or_default();
    t.ktls = file.ktls.unwrap_or(false);
    if let Some(s) = file.tls_handshake_timeout_secs {
        t.handshake_timeout = Duration::from_secs(s.max(1));
    }
    Ok(Some(t))
}

#[cfg(test)]
mod tests {
    use crate::cli::ServeArgs;
    use crate::config::{merge, FileConfig};
    use server::auth::Credential;

    fn merged(text: &str) -> anyhow::Result<crate::config::Settings> {
        let file: FileConfig = toml::from_str(text).expect("parses");
        merge(ServeArgs::default(), file)
    }

    #[test]
    fn rules_callbacks_and_jwt_keys_are_read() {
        let s = merged(
            r#"
            [jwt]
            secret = "0123456789abcdef0123456789abcdef"
            [[auth]]
            streams = "cams-*"
            read = ["jwt", "open"]
            [callbacks]
            on_play = "http://127.0.0.1:9/play"
            timeout_ms = 250
            "#,
        )
        .unwrap();
        let rule = &s.config.auth.rules[0];
        assert_eq!(
            rule.publish,
            [Credential::Key],
            "the default for publishing"
        );
        assert_eq!(rule.read, [Credential::Jwt, Credential::Open]);
        let hooks = s.config.hooks.unwrap();
        assert!(hooks.on_publish.is_none() && hooks.on_play.is_some());
        assert_eq!(hooks.timeout, std::time::Duration::from_millis(250));
        assert!(!hooks.fail_open, "fail-closed by default");
    }

    #[test]
    fn access_settings_that_cannot_work_are_refused_with_the_reason() {
        for (text, expected) in [
            (
                "[[auth]]\nstreams = \"a\"\nread = [\"jwt\"]",
                "takes jwt, but there is no [jwt]",
            ),
            (
                "[[auth]]\nstreams = \"a\"\nread = [\"key\"]",
                "keys are for publishing",
            ),
            (
                "[[auth]]\nstreams = \"a\"\npublish = []",
                "publish is empty",
            ),
            (
                "[[auth]]\nstreams = \"a\"\nread = [\"maybe\"]",
                "'maybe': expected open, key or jwt",
            ),
            ("[jwt]\nsecret = \"short\"", "at least 32 bytes"),
            ("[[auth]]\nstreams = \"a-*-b*\"", "a pattern with one *"),
            (
                "[jwt]\nleeway_secs = 1",
                "needs a secret, public_keys or a jwks_url",
            ),
            (
                "[jwt]\njwks_url = \"ftp://x/k\"",
                "expected http(s)://HOST/PATH",
            ),
            ("[callbacks]\non_play = \"ftp://x/y\"", "callbacks.on_play"),
        ] {
            let e = format!("{:#}", merged(text).expect_err(text));
            assert!(e.contains(expected), "{text}: {e}");
        }
    }
}
