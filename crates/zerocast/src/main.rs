//! `zerocast`: serve a video library; fetch chunks, seek by timecode and index files from the shell.
//!
//! Exit codes: 0 success, 1 failure (server down, unknown id, bad timecode, I/O, a port in use),
//! 2 bad usage (clap's errors, and a URL the command cannot take).
//!
//! This file parses the command line, sets up logging (for `serve`), dispatches and turns the
//! result into the exit code. The rest: `cli` (the clap types), `config` (the config file and its
//! merge with the flags), `serve` (the server), `commands` (the client subcommands), `demo` (the
//! embedded demo library), `size` (byte sizes like `20MiB`).

mod cli;
mod commands;
mod config;
mod demo;
mod reload;
mod serve;
mod size;

use anyhow::Result;
use clap::Parser;
use cli::{Cli, Command, LogFormat};
use config::FileConfig;
use std::io::IsTerminal;

/// glibc's malloc serves allocations from 128 KiB up with their own mappings, but raises that
/// threshold (up to 32 MiB) each time such a mapping is freed; after a burst of live streams,
/// their receive slabs and buffers then come from the heap, whose fragmentation keeps the memory
/// after the streams end (300 streams: 1.3 GiB of RSS kept, 19 MiB with the threshold fixed;
/// docs/benchmarks.md §6). Fixing it at glibc's own default gives the memory back to the system.
fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any other thread
    // exists, with a valid option and value.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

fn main() {
    fixed_mmap_threshold();
    // Bad usage: clap prints the error and exits with 2.
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            let client = || e.chain().filter_map(|c| c.downcast_ref::<client::Error>());
            // A closed pipe (`zerocast get ... | head`) is not a failure.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) || client().any(|c| c.is_broken_pipe())
            {
                0
            } else {
                eprintln!("error: {e:#}");
                // A URL the command cannot take is bad usage, like a bad flag.
                if client().any(|c| c.is_bad_url()) {
                    2
                } else {
                    1
                }
            }
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => {
            let file = FileConfig::load(args.config.as_deref())?;
            init_logging(file.log_format(cli.log_format));
            let served = rt.block_on(serve::run(args, file, cli.log_format));
            // A rescan or a disk write still running on the blocking pool is not waited for
            // without end: the server has drained and finished its recordings by now.
            rt.shutdown_timeout(std::time::Duration::from_secs(10));
            served
        }
        Command::Clip {
            url,
            start,
            end,
            output,
        } => rt.block_on(commands::clip(
            &url,
            start.as_deref(),
            end.as_deref(),
            output.as_deref(),
        )),
        Command::Get {
            url,
            at,
            offset,
            size,
            output,
        } => rt.block_on(commands::get(
            &url,
            at.as_deref(),
            offset,
            size,
            output.as_deref(),
        )),
        Command::Seek {
            url,
            timecode,
            json,
        } => rt.block_on(commands::seek(&url, &timecode, json)),
        Command::Index { file, at } => commands::index(&file, at.as_deref()),
        Command::Publish {
            file,
            url,
            key,
            looped,
        } => rt.block_on(commands::publish(&file, &url, key.as_deref(), looped)),
        Command::Watch {
            url,
            output,
            duration,
        } => rt.block_on(commands::watch(&url, output.as_deref(), duration)),
    }
}

/// Logs to standard error; `RUST_LOG` filters (default `info`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
