//! Keeps the JWT keys of a JWKS URL fresh: fetched at start, then every `refresh` (and within
//! seconds after a reload that brings a new URL), into the `auth::Keys` of the settings in force.
//! A fetch that fails, a document that does not parse, or a set with no key this server uses
//! keeps the keys already held, and is logged; the next try is 10 s later (a set with no usable
//! key said by two fetches in a row is taken: the keys were withdrawn).

use crate::auth::JwksSource;
use crate::state::State;
use std::sync::Arc;
use std::time::Duration;

/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the settings are looked at (a new URL after a reload, a failed fetch).
const TICK: Duration = Duration::from_secs(5);

/// Runs until the task is dropped.
pub(crate) async fn keep_fresh(state: Arc<State>) {
    let mut failed_at: Option<u64> = None;
    // The last fetch's document was refused: a set with no usable key said twice is taken.
    let mut refused = false;
    loop {
        let config = state.config();
        if let (Some(src), Some(keys)) = (&config.auth.jwks, &config.auth.jwt) {
            let now = crate::auth::unix_now();
            let due = keys
                .jwks_at()
                .is_none_or(|at| now >= at.saturating_add(src.refresh.as_secs()));
            let resting = failed_at.is_some_and(|at| now < at + 10);
            if due && !resting {
                match fetch(src).await {
                    Ok(doc) => match keys.set_jwks_at(&doc, now, refused) {
                        Ok(0) => {
                            (failed_at, refused) = (None, false);
                            tracing::warn!(url = %src.url, "JWKS has no key this server uses, twice: every JWT is refused until it has");
                        }
                        Ok(n) => {
                            (failed_at, refused) = (None, false);
                            tracing::info!(url = %src.url, keys = n, "JWKS fetched");
                        }
                        Err(e) => {
                            (failed_at, refused) = (Some(now), true);
                            tracing::warn!(url = %src.url, error = %e, "JWKS refused; the keys held stay");
                        }
                    },
                    Err(e) => {
                        failed_at = Some(now);
                        tracing::warn!(url = %src.url, error = %e, "JWKS fetch failed; the keys held stay");
                    }
                }
            }
        }
        drop(config);
        tokio::time::sleep(TICK).await;
    }
}

async fn fetch(src: &JwksSource) -> Result<bytes::Bytes, String> {
    let tls = match src.url.scheme_str() {
        Some("https") => Some(crate::outbound::tls_client(src.ca.as_deref())?),
        _ => None,
    };
    let get = crate::outbound::request(
        http::Method::GET,
        &src.url,
        None,
        bytes::Bytes::new(),
        tls.as_ref(),
    );
    match tokio::time::timeout(FETCH_TIMEOUT, get).await {
        Ok(Ok((status, body))) if status.is_success() => Ok(body),
        Ok(Ok((status, _))) => Err(format!("answered {status}")),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {FETCH_TIMEOUT:?}")),
    }
}
