//! The `serve` subcommand: merges flags and config file, binds the listeners (first, so that a
//! port in use is reported before a long library load), loads the library (with a progress bar
//! on a terminal, log lines otherwise) or the embedded demo library, and runs the server until
//! SIGINT/SIGTERM (`shutdown_signal`, also used by `publish` and `watch`).

use crate::cli::{LogFormat, ServeArgs};
use crate::config::{self, FileConfig};
use crate::demo;
use anyhow::{Context, Result};
use server::{Library, Listeners, LoadEvent, Server};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Runs `serve` with its flags and the config file already read.
/// `log_flag`: `--log-format` as given (the format in use is the flag's, else the file's).
pub async fn run(args: ServeArgs, file: FileConfig, log_flag: Option<LogFormat>) -> Result<()> {
    let log_format = file.log_format(log_flag);
    // First of all: a SIGHUP (`systemctl reload`, logrotate) during the start (a library load,
    // an object store's first listing) is queued for the reloader, instead of ending the
    // process by its default action.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    // And SIGINT and SIGTERM: during the start, one ends the process at once; right after it,
    // it drains the server (see `Stops`).
    let stops = Stops::listen();
    // A file-size limit (`ulimit -f`) reached by a recording must fail that write (EFBIG, and the
    // recording ends with a log line), not kill the server: SIGXFSZ is handled, and ignored.
    let _file_size_limit =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ))
            .context("installing the SIGXFSZ handler")?;
    raise_descriptor_limit();
    let config_file = args.config.clone();
    let config::Settings {
        config,
        cache_budget: budget,
        library,
        watch,
    } = config::merge(args.clone(), file)?;
    let library_dir = library.clone();
    // Before anything is made in it (the recordings' directories): a library that is not there
    // (a mount not up yet) is an error, not an empty directory made on the root disk.
    if let Some(dir) = library.as_ref().filter(|d| !d.is_dir()) {
        anyhow::bail!("the library {} is not a directory", dir.display());
    }
    let listeners = Listeners::bind(&config)?;
    // Recording files a stopped server was writing become titles (cut to whole packets).
    let mut rule_dirs: Vec<_> = config.record.iter().map(|r| r.dir.clone()).collect();
    // Rules may share a directory (the default one): each is locked and recovered once.
    rule_dirs.sort();
    rule_dirs.dedup();
    // Held until the server stops: one server records into a directory. (Those that cannot
    // be written are left out, logged.)
    let recording_locks = server::record::files::lock(&rule_dirs).context("recording")?;
    let rule_dirs: Vec<_> = recording_locks.iter().map(|(d, _)| d.clone()).collect();
    for (file, cut) in
        tokio::task::spawn_blocking(move || server::record::files::recover(&rule_dirs)).await?
    {
        tracing::warn!(file = %file.display(), cut_bytes = cut, "recovered a recording the last run did not finish");
    }
    let library = match library {
        Some(dir) => {
            let dir2 = dir.clone();
            tokio::task::spawn_blocking(move || load_library(&dir2, budget))
                .await?
                .with_context(|| format!("loading the library {}", dir.display()))?
        }
        None if !config.store.sources.is_empty() => Library::default(),
        None => {
            tracing::info!("no --library given: serving the embedded demo library");
            let lib = Library::from_static(demo::FILES, SystemTime::now());
            for t in lib.titles() {
                report(&LoadEvent::Loaded {
                    title: t,
                    bytes: t.len(),
                    read: Duration::ZERO,
                    indexed: Duration::ZERO,
                });
            }
            lib
        }
    };
    let plain = config.plain_http;
    // Object storage's blocks share the memory budget with the titles held in memory.
    let cached: u64 = library.titles().filter(|t| t.cached).map(|t| t.len()).sum();
    let stores = if config.store.sources.is_empty() {
        None
    } else {
        let env = |n: &str| std::env::var(n).ok();
        let stores = server::store::Stores::new(&config.store, budget.saturating_sub(cached), env)
            .map_err(anyhow::Error::msg)
            .context("object storage")?;
        Some(stores)
    };
    let wait = config.store.start_wait;
    let server = Server::new(config, listeners, library);
    if let Some(stores) = stores {
        let urls: Vec<String> = stores.sources.iter().map(|s| s.url.clone()).collect();
        let cache_bytes = stores.blocks.limit();
        // Serving starts after the first listing, or after `start_wait` without it.
        if let Some(r) = server.set_stores(stores, wait).await {
            tracing::info!(
                sources = ?urls, titles = r.titles, cache_bytes,
                seconds = r.took.as_secs_f64(), "object storage listed"
            );
        }
    }
    // From here on a stop signal drains the server (before, it ended the start).
    if let Some(s) = &stops {
        s.running();
    }
    if plain {
        tracing::info!(addr = %server.local_addr(), "listening; open http://{}/ in a browser", server.local_addr());
    }
    for a in server.https_addrs() {
        tracing::info!(addr = %a, encryption = %encryption(), "HTTPS (HTTP/2 and HTTP/1.1): https://{a}/");
    }
    if let Some(a) = server.rtmp_addr() {
        tracing::info!(addr = %a, "RTMP ingest: rtmp://{a}/live/NAME");
    }
    if let Some(a) = server.rtmps_addr() {
        tracing::info!(addr = %a, encryption = %encryption(), "RTMPS: rtmps://{a}/live/NAME");
    }
    let reloader = crate::reload::Reloader {
        args,
        config_file,
        library: library_dir,
        budget,
        watch,
        log: (log_flag, log_format),
        server: server.reloader(),
        tls: server.tls_reloader(),
    };
    let reload = tokio::spawn(crate::reload::run(hangups, reloader, watch));
    server.run(stopped(stops)).await;
    reload.abort();
    Ok(())
}

/// Where TLS records are encrypted, for the listeners' log lines.
fn encryption() -> &'static str {
    if server::tls::kernel_tls_available() {
        "user space (rustls); the kernel offers kTLS, but the key hand-over to it is not built yet"
    } else {
        "user space (rustls); this kernel has no tls ULP (kTLS)"
    }
}

/// Loads the library in `dir`: a progress bar on a terminal, a log line per title otherwise;
/// then one summary log line.
fn load_library(dir: &Path, budget: u64) -> Result<Library> {
    // Before the first title is mapped (its errors are told when the server starts).
    let _ = server::truncated::install();
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} loading [{bar:40}] {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let started = std::time::Instant::now();
    let (mut read_time, mut index_time) = (Duration::ZERO, Duration::ZERO);
    let lib = Library::load(dir, budget, |ev| match (&bar, &ev) {
        (_, LoadEvent::Loaded { read, indexed, .. }) if bar.is_none() => {
            read_time += *read;
            index_time += *indexed;
            report(&ev)
        }
        (Some(b), LoadEvent::Found { bytes, .. }) => b.set_length(*bytes),
        (
            Some(b),
            LoadEvent::Loaded {
                title,
                bytes,
                read,
                indexed,
            },
        ) => {
            read_time += *read;
            index_time += *indexed;
            b.inc(*bytes);
            b.set_message(title.id.clone());
            if let Err(e) = &title.index {
                b.suspend(|| tracing::warn!(id = %title.id, reason = %e, "cannot index; served as plain bytes without seek"));
            }
        }
        _ => report(&ev),
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // Files of no known container are served as plain bytes, but nothing a player can play.
    if lib
        .titles()
        .all(|t| t.container == media::Container::Unknown)
    {
        tracing::warn!(
            files = lib.len(),
            "no titles found in {} (MP4, MPEG-TS, WebM/Matroska)",
            dir.display()
        );
    }
    let bytes: u64 = lib.titles().map(|t| t.len()).sum();
    let cached: u64 = lib.titles().filter(|t| t.cached).map(|t| t.len()).sum();
    tracing::info!(
        titles = lib.len(),
        bytes,
        cached_bytes = cached,
        mapped_bytes = bytes - cached,
        index_bytes = lib.titles().map(|t| t.index_bytes()).sum::<usize>(),
        package_bytes = lib.titles().map(|t| t.package_memory()).sum::<usize>(),
        seconds = started.elapsed().as_secs_f64(),
        read_seconds = read_time.as_secs_f64(),
        index_seconds = index_time.as_secs_f64(),
        "library loaded"
    );
    let huge = server::shmem::huge_mode();
    if cached >= 2 << 20 && matches!(huge.as_deref(), Some("never" | "deny")) {
        tracing::info!(
            "titles held in memory are in 4 KiB pages ({} is [{}]); with `advise` there they \
             are in 2 MiB pages, which takes about 40 % off the CPU of sending large ranges \
             (docs/benchmarks.md section 12)",
            server::shmem::SHMEM_HUGE,
            huge.unwrap_or_default()
        );
    }
    Ok(lib)
}

/// One log line for a library load event.
fn report(ev: &LoadEvent<'_>) {
    match ev {
        LoadEvent::Found { files, bytes } => tracing::info!(files, bytes, "scanning library"),
        LoadEvent::Loaded { title, bytes, .. } => match &title.index {
            Ok(i) => tracing::info!(
                id = %title.id, bytes, container = title.container.name(), cached = title.cached,
                keyframes = i.keyframes.len(), duration = i.duration.as_secs_f64(), "loaded"
            ),
            Err(e) => {
                tracing::warn!(id = %title.id, bytes, reason = %e, "cannot index; served as plain bytes without seek")
            }
        },
        LoadEvent::Skipped { path, reason } => {
            tracing::warn!(path = %path.display(), %reason, "skipped")
        }
    }
}

/// The soft descriptor limit raised to the hard one (a service's soft limit is often 1024, far
/// below what it may take: one descriptor per connection); said in the log when it changes.
fn raise_descriptor_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let was = getrlimit(Resource::Nofile);
    let (Some(soft), Some(hard)) = (was.current, was.maximum) else {
        return;
    };
    if soft >= hard {
        return;
    }
    let raised = rustix::process::Rlimit {
        current: Some(hard),
        maximum: Some(hard),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(from = soft, to = hard, "descriptor limit raised"),
        Err(e) => tracing::warn!(soft, hard, error = %e, "could not raise the descriptor limit"),
    }
}

/// The stop signals (SIGINT, SIGTERM), listened for from when this is made. Before the server
/// runs ([`stopped`] first polled), the first one ends the process at once (a start has nothing
/// to drain: a long library load or object-storage listing is not waited out); after, the first
/// is a stop and a second ends the process at once (exit status 1): a stop that hangs (a disk
/// that does not answer) can still be cut short. Listened for before the first comes, so a
/// second that follows at once is not lost.
pub struct Stops {
    taken: tokio::sync::watch::Receiver<u32>,
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Stops {
    /// `None` where the handlers cannot be installed ([`stopped`] then waits on Ctrl-C).
    pub fn listen() -> Option<Stops> {
        use std::sync::atomic::Ordering::Relaxed;
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt()).ok()?;
        let mut term = signal(SignalKind::terminate()).ok()?;
        let (tx, taken) = tokio::sync::watch::channel(0u32);
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let run = running.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                let n = *tx.borrow() + 1;
                if !run.load(Relaxed) {
                    tracing::info!("signal received during the start: exiting");
                    std::process::exit(0);
                }
                if n >= 2 {
                    tracing::warn!("a second signal: exiting at once");
                    std::process::exit(1);
                }
                tx.send_replace(n);
            }
        });
        Some(Stops { taken, running })
    }

    /// The server runs: a stop signal from now on is a stop, not the end of a start.
    pub fn running(&self) {
        self.running
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (see [`Stops`]).
pub async fn shutdown_signal() {
    stopped(Stops::listen()).await;
}

/// Resolves on the first stop signal [`Stops`] takes from now on; one that came before, while
/// the server started, ended the process.
pub async fn stopped(stops: Option<Stops>) {
    let Some(Stops { mut taken, running }) = stops else {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("signal received");
        return;
    };
    running.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = taken.wait_for(|n| *n >= 1).await;
    tracing::info!("signal received");
}
