//! The control API, behind the admin token (`Authorization: Bearer TOKEN`): disconnect a
//! stream's publisher, disconnect its viewers, drain the server (`POST /api/drain`: what SIGTERM
//! does, for a load balancer's or orchestrator's hook). The same token keeps the read-only API (JSON and
//! `/metrics`) private when `private_api` is set. Without a token configured the control API is
//! off (403), so nothing can be kicked by accident of configuration.

use super::{json, Route};
use crate::body::Chunks;
use crate::error::Error;
use crate::live::same_key;
use crate::state::State;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};

/// Checks the request's bearer token against the admin token.
pub(super) fn authorize<B>(state: &State, req: &Request<B>) -> Result<(), Error> {
    let Some(token) = &state.config().admin_token else {
        return Err(Error::AdminNotConfigured);
    };
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or(Error::AdminRequired)?;
    if same_key(token, presented) {
        Ok(())
    } else {
        Err(Error::WrongAdminToken)
    }
}

#[derive(serde::Serialize)]
struct Kicked<'a> {
    stream: &'a str,
    publisher: String,
}

#[derive(serde::Serialize)]
struct Draining {
    draining: bool,
    delay_seconds: f64,
}

#[derive(serde::Serialize)]
struct Dropped<'a> {
    stream: &'a str,
    viewers: u64,
}

/// `DELETE /api/streams/{name}/publisher` and `/viewers`.
pub(super) fn control<B>(
    r: Route<'_>,
    state: &State,
    req: &Request<B>,
) -> Result<Response<Chunks>, Error> {
    authorize(state, req)?;
    let stream = |name: &str| {
        state
            .live
            .get(name)
            .ok_or_else(|| Error::UnknownStream(name.into()))
    };
    match r {
        Route::KickPublisher(name) => {
            let publisher = stream(name)?
                .kick_publisher()
                .ok_or_else(|| Error::NoPublisher(name.into()))?;
            tracing::info!(stream = name, %publisher, "publisher disconnected through the control API");
            let doc = Kicked {
                stream: name,
                publisher: publisher.to_string(),
            };
            Ok(json(StatusCode::OK, &doc))
        }
        Route::DropViewers(name) => {
            let viewers = stream(name)?.drop_viewers();
            tracing::info!(
                stream = name,
                viewers,
                "viewers disconnected through the control API"
            );
            Ok(json(
                StatusCode::OK,
                &Dropped {
                    stream: name,
                    viewers,
                },
            ))
        }
        Route::Drain => {
            let delay = state.config().drain_delay;
            tracing::info!(?delay, "drain asked for through the control API");
            // Draining from this answer on (`/readyz` answers 503 as soon as the client knows),
            // not from when the serving loop next turns to the notice.
            state
                .draining
                .store(true, std::sync::atomic::Ordering::SeqCst);
            state.drain.notify_one();
            Ok(json(
                StatusCode::ACCEPTED,
                &Draining {
                    draining: true,
                    delay_seconds: delay.as_secs_f64(),
                },
            ))
        }
        _ => Err(Error::NoRoute),
    }
}
