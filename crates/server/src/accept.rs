//! The accept loops of the HTTP and RTMP listeners, and what keeps them working when descriptors
//! run out.
//!
//! - A connection cap (`Config::max_connections`, see conns.rs): a connection over it is answered `503` with `Retry-After`
//!   (HTTP) or closed (RTMP) at once, instead of being served into `EMFILE`.
//! - A reserve descriptor per listener (an open `/dev/null`): when `accept` fails with
//!   `EMFILE`/`ENFILE` anyway, the reserve is closed, the waiting connection accepted and refused
//!   the same way, and the reserve opened again (nginx's and libuv's technique). Without it the
//!   connection would stay queued, `accept` would fail again at once, and the server would answer
//!   no one (not even `/healthz`) until some client went away.
//! - Other accept failures (`ENOBUFS`, `ENOMEM`, or no reserve) back off, 10 ms doubling to 1 s
//!   ([`Backoff`], pure); each episode of failures and refusals is logged once when it starts and
//!   once when accepting works again, with its counts.

use crate::conns::Conns;
use crate::error::Error;
use std::fs::File;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Accept failures and refusals, sans-I/O: how long to wait after a failure, and when an episode
/// starts and ends (each is logged once, not once per failure).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    delay: Duration,
    failures: u64,
    refused: u64,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    fn in_episode(&self) -> bool {
        self.failures + self.refused > 0
    }

    /// An accept failed: how long to wait before the next, and whether this starts an episode.
    pub(crate) fn failed(&mut self) -> (Duration, bool) {
        let first = !self.in_episode();
        self.delay = if self.delay.is_zero() {
            Self::FIRST
        } else {
            (self.delay * 2).min(Self::MAX)
        };
        self.failures += 1;
        (self.delay, first)
    }

    /// A connection was refused (over the cap, or out of descriptors): whether this starts an
    /// episode.
    pub(crate) fn refused(&mut self) -> bool {
        let first = !self.in_episode();
        self.refused += 1;
        first
    }

    /// A connection was accepted and admitted: the episode that ends (failures, refusals), if any.
    pub(crate) fn admitted(&mut self) -> Option<(u64, u64)> {
        let ended = self.in_episode().then_some((self.failures, self.refused));
        *self = Backoff::default();
        ended
    }
}

/// Which listener a loop serves: an HTTP refusal is a 503; an RTMP or TLS one a close (before
/// a handshake there is no way to answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Http,
    Tls,
    Rtmp,
}

/// Whether an accept error means the process or the system is out of descriptors.
fn out_of_descriptors(e: &io::Error) -> bool {
    let errno = e.raw_os_error().map(rustix::io::Errno::from_raw_os_error);
    matches!(
        errno,
        Some(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE)
    )
}

/// Whether an accept error is worth backing off for (resources), rather than one connection's
/// trouble (`ECONNABORTED` and the like).
fn resource_error(e: &io::Error) -> bool {
    let errno = e.raw_os_error().map(rustix::io::Errno::from_raw_os_error);
    out_of_descriptors(e)
        || matches!(
            errno,
            Some(rustix::io::Errno::NOBUFS | rustix::io::Errno::NOMEM)
        )
}

/// Accepts connections until `until` completes, handing each admitted one to `serve`.
pub(crate) async fn run(
    listener: &TcpListener,
    proto: Proto,
    conns: Arc<Conns>,
    until: impl Future<Output = ()>,
    mut serve: impl FnMut(TcpStream, SocketAddr, crate::conns::Admitted),
) {
    tokio::pin!(until);
    let mut reserve = File::open("/dev/null").ok();
    let mut backoff = Backoff::default();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut until => return,
        };
        let e = match accepted {
            Ok((sock, peer)) => {
                match conns.admit(peer.ip()) {
                    Ok(admitted) => {
                        if let Some((failures, refused)) = backoff.admitted() {
                            tracing::info!(
                                ?proto,
                                failures,
                                refused,
                                "accepting connections again"
                            );
                        }
                        serve(sock, peer, admitted);
                    }
                    Err(crate::conns::Refused::Address) => {
                        // Counted in its own family; a client over its share is not news.
                        conns.refused();
                        refuse_lingering(sock, proto);
                    }
                    Err(crate::conns::Refused::Cap) => {
                        conns.refused();
                        if backoff.refused() {
                            tracing::warn!(?proto, max = conns.max(), "connection limit reached; refusing new connections until some close (logged once)");
                        }
                        refuse_lingering(sock, proto);
                    }
                }
                continue;
            }
            Err(e) => e,
        };
        conns.accept_failed();
        if out_of_descriptors(&e) {
            if let Some(spare) = reserve.take() {
                // Free one descriptor, take the waiting connection with it and refuse it.
                drop(spare);
                let pending = std::future::poll_fn(|cx| match listener.poll_accept(cx) {
                    Poll::Ready(r) => Poll::Ready(r.ok()),
                    Poll::Pending => Poll::Ready(None),
                })
                .await;
                if let Some((sock, _)) = pending {
                    conns.refused();
                    if backoff.refused() {
                        tracing::warn!(?proto, error = %e, "out of descriptors; refusing new connections until some close (logged once)");
                    }
                    refuse_briefly(sock, proto).await;
                }
                reserve = File::open("/dev/null").ok();
                if reserve.is_some() {
                    continue;
                }
            }
        } else if !resource_error(&e) {
            tracing::debug!(?proto, error = %e, "accept failed");
            continue;
        }
        let (delay, first) = backoff.failed();
        if first {
            tracing::warn!(?proto, error = %e, "accept failed; backing off (logged once until accepting works again)");
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = &mut until => return,
        }
        if reserve.is_none() {
            reserve = File::open("/dev/null").ok();
        }
    }
}

/// Refused connections being closed gently ([`refuse_lingering`]), oldest first; at most
/// [`MAX_LINGERING`], within the descriptors the connection cap leaves over (`conns::FD_MARGIN`).
static LINGERING: std::sync::Mutex<std::collections::VecDeque<tokio::task::AbortHandle>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());
const MAX_LINGERING: usize = 16;

/// Refuses a connection over the cap (descriptors are left): HTTP gets `503 Service
/// Unavailable` with `Retry-After` (at once: a fresh socket's send buffer takes it whole), its
/// request is read to its end (at most 1 s), and only then is it closed; RTMP and TLS are
/// closed. A request that arrives after an immediate close would reset the connection, and the
/// client would lose the 503 it had been sent. At most [`MAX_LINGERING`] at once: a new one
/// closes the oldest, which has had its answer and (unless the flood is very fast) sent its
/// request; clients that never read or close would otherwise hold every place for their second,
/// and the next client, however well it behaves, would be reset.
fn refuse_lingering(sock: TcpStream, proto: Proto) {
    if proto != Proto::Http {
        return;
    }
    let out = overloaded();
    let sent = sock.try_write(&out).unwrap_or(0);
    let mut lingering = LINGERING.lock().unwrap_or_else(|e| e.into_inner());
    lingering.retain(|t| !t.is_finished());
    while lingering.len() >= MAX_LINGERING {
        if let Some(oldest) = lingering.pop_front() {
            oldest.abort();
        }
    }
    let task = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = sock;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            sock.write_all(out.get(sent..).unwrap_or_default()).await?;
            sock.shutdown().await?;
            let mut sink = [0u8; 2048];
            while sock.read(&mut sink).await? > 0 {}
            Ok::<(), io::Error>(())
        })
        .await;
    });
    lingering.push_back(task.abort_handle());
}

/// The bytes of a refusal: `503 Service Unavailable` with `Retry-After`.
fn overloaded() -> Vec<u8> {
    let resp = Error::Overloaded.response();
    let mut out = Vec::with_capacity(512);
    crate::h1::render_head(&resp, true, &mut out);
    for part in resp.body().parts() {
        out.extend_from_slice(part);
    }
    out
}

/// Refuses the connection taken with the reserve descriptor, which cannot linger (the reserve
/// is opened again only once it is closed): HTTP gets its 503 at once and its request is waited
/// for, at most 5 ms, so that the close is a FIN after the answer rather than a reset that
/// loses it; RTMP and TLS are closed.
async fn refuse_briefly(sock: TcpStream, proto: Proto) {
    if proto == Proto::Http {
        let _ = sock.try_write(&overloaded());
        // A socket just accepted is taken as readable until a read finds nothing: the drain
        // does, and only then does waiting for readiness wait for the request.
        drain(&sock);
        let _ = tokio::time::timeout(Duration::from_millis(5), sock.readable()).await;
        drain(&sock);
    }
}

/// Takes what a refused request has sent so far (at most 64 KiB), so that the close is a FIN
/// rather than a reset.
fn drain(sock: &TcpStream) {
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match sock.try_read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn failures_back_off_from_10_ms_doubling_to_1_s_and_log_once_per_episode() {
        let mut b = Backoff::default();
        let delays: Vec<(Duration, bool)> = (0..10).map(|_| b.failed()).collect();
        assert_eq!(
            delays[0],
            (ms(10), true),
            "the first failure starts an episode"
        );
        assert_eq!(delays[1], (ms(20), false));
        assert_eq!(delays[6], (ms(640), false));
        assert_eq!(delays[7], (ms(1000), false), "capped");
        assert_eq!(delays[9], (ms(1000), false));
        assert!(
            !b.refused(),
            "a refusal inside an episode is not logged again"
        );
        assert_eq!(
            b.admitted(),
            Some((10, 1)),
            "the episode ends with its counts"
        );
        assert_eq!(b.admitted(), None, "and only once");
        assert_eq!(b.failed(), (ms(10), true), "a new episode starts over");
    }

    #[test]
    fn refusals_alone_make_an_episode() {
        let mut b = Backoff::default();
        assert!(b.refused());
        assert!(!b.refused());
        assert!(!b.failed().1);
        assert_eq!(b.admitted(), Some((1, 2)));
    }
}
