//! `zerocast`: serve a video library; fetch chunks, seek by timecode and index files from the shell.
//!
//! Exit codes: 0 success, 1 failure (server down, unknown id, bad timecode, I/O), 2 bad usage.
//!
//! This file parses the command line, sets up logging (for `serve`), dispatches and turns the
//! result into the exit code. The rest: `cli` (the clap types), `config` (the config file and its
//! merge with the flags), `serve` (the server), `commands` (the client subcommands), `demo` (the
//! embedded demo library), `size` (byte sizes like `20MiB`).

mod cli;
mod commands;
mod config;
mod demo;
mod serve;
mod size;

use anyhow::Result;
use clap::Parser;
use cli::{Cli, Command, LogFormat};
use config::FileConfig;
use std::io::IsTerminal;

fn main() {
    // Bad usage: clap prints the error and exits with 2.
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            // A closed pipe (`zerocast get ... | head`) is not a failure.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                0
            } else {
                eprintln!("error: {e:#}");
                1
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
            rt.block_on(serve::run(args, file))
        }
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
