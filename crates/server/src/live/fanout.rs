//! The workers that write live viewers (`.ts`, `.flv`, RTMP play, HTTP/2 viewer bodies), apart
//! from the workers that accept connections and answer requests (VOD ranges, playlists, the API,
//! ingest).
//!
//! Each video frame wakes every viewer of a stream at once. On shared workers those wake-ups
//! queue ahead of whatever else the worker has to do: a VOD range that arrives just after a frame
//! waited for the writes of every viewer on its worker (docs/benchmarks.md §7: p99 22x a quiet
//! run's with 500 viewers). Here the viewers run on a runtime of their own, whose threads run at
//! a lower scheduling priority (`nice`): the kernel, not a run queue, decides, and a request's
//! thread is run as soon as it wakes. The fan-out still gets the CPU the requests leave (a nice
//! of 5 is about a quarter of the CPU when both want all of it), so viewers are not starved.
//!
//! A viewer's socket stays registered with the main runtime's reactor, which wakes the viewer
//! task here when it becomes writable (tokio drives an I/O resource from the runtime that made
//! it, whichever runtime polls it).

use std::future::Future;
use std::io;
use std::sync::Mutex;
use tokio::runtime::{Handle, Runtime};

/// Where viewers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanoutConfig {
    /// Threads of the fan-out runtime: `None`, one per core; `Some(0)`, none (viewers run on the
    /// request workers, as before the split).
    pub threads: Option<usize>,
    /// The fan-out threads' nice value (0 to 19; higher yields more to the request workers).
    pub nice: i32,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        FanoutConfig {
            threads: None,
            nice: 5,
        }
    }
}

/// The fan-out runtime, or none.
#[derive(Debug)]
pub struct Fanout {
    handle: Option<Handle>,
    /// Owned here so that it ends with the server; taken and shut down without waiting on drop
    /// (which may happen on a worker, where a blocking shutdown would panic).
    runtime: Mutex<Option<Runtime>>,
}

/// The cores this process may run on: the default count of fan-out and worker threads.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl Fanout {
    /// Starts the fan-out threads per `config`. Where the runtime cannot be built (no threads
    /// left), viewers run on the request workers and the reason is logged.
    pub fn start(config: FanoutConfig) -> Fanout {
        let threads = config.threads.unwrap_or_else(cores);
        if threads == 0 {
            return Fanout::inline();
        }
        let nice = config.nice.clamp(0, 19);
        let built = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("zerocast-fanout")
            .on_thread_start(move || {
                // Raising one's own nice needs no privilege. Per thread on Linux (who = 0).
                if let Err(e) = rustix::process::setpriority_process(None, nice) {
                    tracing::warn!("fan-out thread keeps its priority: setpriority: {e}");
                }
            })
            .enable_all()
            .build();
        match built {
            Ok(rt) => {
                tracing::debug!(threads, nice, "live viewers are written by fan-out threads");
                Fanout {
                    handle: Some(rt.handle().clone()),
                    runtime: Mutex::new(Some(rt)),
                }
            }
            Err(e) => {
                tracing::warn!("no fan-out workers ({e}); viewers run on the request workers");
                Fanout::inline()
            }
        }
    }

    /// No runtime of its own: viewers run where they are called.
    pub fn inline() -> Fanout {
        Fanout {
            handle: None,
            runtime: Mutex::new(None),
        }
    }

    /// Whether viewers run on threads of their own.
    pub fn is_separate(&self) -> bool {
        self.handle.is_some()
    }

    /// Runs a viewer to its end on the fan-out workers (the caller's task waits, costing
    /// nothing). An error if the fan-out runtime is gone (the server is stopping).
    pub async fn run<T, F>(&self, viewer: F) -> io::Result<T>
    where
        F: Future<Output = io::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        match &self.handle {
            Some(h) => h.spawn(viewer).await.map_err(io::Error::other)?,
            None => viewer.await,
        }
    }

    /// Starts a viewer task on the fan-out workers.
    pub fn spawn<F>(&self, viewer: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match &self.handle {
            Some(h) => drop(h.spawn(viewer)),
            None => drop(tokio::spawn(viewer)),
        }
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        let rt = self.runtime.get_mut().map_or(None, Option::take);
        if let Some(rt) = rt {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> i32 {
        rustix::process::getpriority_process(None).unwrap()
    }

    #[test]
    fn viewers_run_on_threads_of_their_own_at_the_configured_nice() {
        let f = Fanout::start(FanoutConfig {
            threads: Some(1),
            nice: 7,
        });
        assert!(f.is_separate());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (name, nice) = rt
            .block_on(f.run(async {
                let t = std::thread::current();
                Ok((t.name().map(str::to_owned), nice_of_this_thread()))
            }))
            .unwrap();
        assert_eq!(name.as_deref(), Some("zerocast-fanout"));
        assert_eq!(nice, 7);
    }

    #[test]
    fn with_no_threads_viewers_run_where_they_are_called() {
        let f = Fanout::start(FanoutConfig {
            threads: Some(0),
            nice: 5,
        });
        assert!(!f.is_separate());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let here = std::thread::current().id();
        let there = rt
            .block_on(f.run(async { Ok(std::thread::current().id()) }))
            .unwrap();
        assert_eq!(there, here);
    }

    #[test]
    fn dropping_it_inside_a_runtime_does_not_panic() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let f = Fanout::start(FanoutConfig {
                threads: Some(1),
                nice: 5,
            });
            f.run(async { Ok(()) }).await.unwrap();
            drop(f);
        });
    }
}
