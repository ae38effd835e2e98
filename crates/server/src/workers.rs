//! Worker threads: one single-threaded tokio runtime per core, each owning the connections handed
//! to it, nginx-style. The acceptor (on the runtime that calls `Server::run`) deals connections
//! out in turn; from then on a connection's every wake-up, read and write happens on its worker's
//! thread, until it becomes a live viewer: viewer loops run on the fan-out runtime
//! (`live::fanout`), so that they never queue ahead of requests.
//!
//! Why not tokio's work-stealing runtime for connections: a request/response connection gains
//! nothing from moving between threads, and pays for it on every wake-up (atomic task state, the
//! shared injection queue, parking and unparking idle workers with futex calls). Measured in
//! docs/benchmarks.md (`workers = 0` in the config file is the work-stealing way, for comparison).
//! Why not one `SO_REUSEPORT` listener per worker: a second server started on the same port by
//! mistake would then share the traffic silently instead of failing to bind.
//!
//! What crosses threads is what already did: a live stream's ring and wake-up channels are shared
//! by viewers on every worker, and a wake-up from another thread reaches a worker's runtime
//! through its injection queue.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A connection and what to run on it, once it is registered with the worker's runtime.
type Job = (
    std::net::TcpStream,
    Box<dyn FnOnce(TcpStream) -> Task + Send>,
);

pub(crate) struct Workers {
    senders: Mutex<Vec<mpsc::UnboundedSender<Job>>>,
    next: AtomicUsize,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Workers {
    /// Starts `count` worker threads (0: none; connections run on the caller's runtime).
    pub(crate) fn start(count: usize) -> io::Result<Workers> {
        let mut senders = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
            let thread = std::thread::Builder::new()
                .name(format!("zerocast-worker-{i}"))
                .spawn(move || {
                    rt.block_on(async move {
                        while let Some((sock, run)) = rx.recv().await {
                            match TcpStream::from_std(sock) {
                                Ok(sock) => {
                                    tokio::spawn(run(sock));
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "could not register a connection")
                                }
                            }
                        }
                    });
                    // Dropping the runtime here ends what is still open on this worker.
                })?;
            senders.push(tx);
            threads.push(thread);
        }
        Ok(Workers {
            senders: Mutex::new(senders),
            next: AtomicUsize::new(0),
            threads: Mutex::new(threads),
        })
    }

    /// No worker threads.
    pub(crate) fn none() -> Workers {
        Workers {
            senders: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Runs `run(sock)` on the next worker in turn (or here, without workers).
    pub(crate) fn spawn<F, Fut>(&self, sock: TcpStream, run: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        if senders.is_empty() {
            drop(senders);
            tokio::spawn(run(sock));
            return;
        }
        let i = self.next.fetch_add(1, Relaxed) % senders.len();
        // Leaving this runtime's reactor: the worker registers the socket with its own.
        let sock = match sock.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not hand a connection to a worker");
                return;
            }
        };
        let job: Job = (sock, Box::new(move |s| Box::pin(run(s)) as Task));
        if senders[i].send(job).is_err() {
            tracing::warn!("worker {i} is gone; connection dropped");
        }
    }

    /// Closes the workers' queues and waits for their threads: what is still open ends.
    pub(crate) fn stop(&self) {
        self.senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.threads.lock().map_or(0, |t| t.len()))
            .finish()
    }
}
