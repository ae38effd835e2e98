//! The client subcommands: `get`, `clip` and `seek` (against a running server), `index` (a local file,
//! no server), `publish` and `watch` (live streams). Results go to standard output, progress and
//! notes to standard error.

use crate::serve::shutdown_signal;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `get`: fetches `size` bytes of the video at `url` from `offset`, or from the keyframe at or
/// before the timecode `at`, into `output` or standard output.
pub async fn get(
    url: &str,
    at: Option<&str>,
    offset: Option<u64>,
    size: u64,
    output: Option<&Path>,
) -> Result<()> {
    if let Some(tc) = at {
        match write_to(output, async |mut out| {
            client::request_clip(url, Some(tc), None, Some(size), &mut out).await
        })
        .await
        {
            Ok(n) => {
                eprintln!("{n} bytes of the clip from {tc}");
                return Ok(());
            }
            // A container the server does not clip: the raw bytes from the keyframe's offset.
            Err(e) if e.is_unprocessable() => {
                eprintln!("{e}; the raw bytes from the keyframe follow")
            }
            Err(e) => return Err(e.into()),
        }
    }
    let offset = match (at, offset) {
        (Some(tc), _) => {
            let s = client::timecode_to_index(url, tc).await?;
            eprintln!(
                "{tc}: keyframe {} ({:.3} s) at byte {}",
                s.keyframe.timecode.as_deref().unwrap_or("-"),
                s.keyframe.seconds,
                s.offset
            );
            s.offset
        }
        (None, Some(o)) => o,
        (None, None) => 0,
    };
    let n = write_to(output, async |mut out| {
        client::request_chunk(url, offset, size, &mut out).await
    })
    .await?;
    eprintln!("{n} bytes from offset {offset}");
    Ok(())
}

/// `zerocast clip`: the clip between two times, whole.
pub async fn clip(
    url: &str,
    start: Option<&str>,
    end: Option<&str>,
    output: Option<&Path>,
) -> Result<()> {
    let n = write_to(output, async |mut out| {
        client::request_clip(url, start, end, None, &mut out).await
    })
    .await?;
    eprintln!("{n} bytes");
    Ok(())
}

/// Runs `fetch` into the output file or standard output. A regular file (or a new one) is
/// written as a dotfile beside it and renamed over it once all of it came: a failure leaves the
/// file that was there (and no partial one). Anything else (`/dev/null`, a FIFO, a symlink) is
/// written to as it is.
async fn write_to<F>(output: Option<&Path>, fetch: F) -> Result<u64, client::Error>
where
    F: AsyncFnOnce(&mut (dyn tokio::io::AsyncWrite + Unpin + Send)) -> client::Result<u64>,
{
    let Some(path) = output else {
        return fetch(&mut tokio::io::stdout()).await;
    };
    let regular = match std::fs::symlink_metadata(path) {
        Ok(m) => m.file_type().is_file(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    };
    if !regular {
        let mut f = tokio::fs::File::create(path)
            .await
            .map_err(client::Error::Output)?;
        return fetch(&mut f).await;
    }
    let partial = partial_path(path);
    let _ = tokio::fs::remove_file(&partial).await;
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .await
        .map_err(client::Error::Output)?;
    let written = async {
        let n = fetch(&mut f).await?;
        f.sync_all().await.map_err(client::Error::Output)?;
        tokio::fs::rename(&partial, path)
            .await
            .map_err(client::Error::Output)?;
        Ok(n)
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    written
}

/// A local file's bytes, mapped rather than read: `index` and `publish` take files of any size.
fn map(path: &Path) -> Result<bytes::Bytes> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    // A pipe or a device (`<(curl ...)`, /dev/stdin) cannot be mapped: read it, up to a bound
    // (a live source piped in never ends: `publish` paces a whole file by its timestamps).
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        const MAX: u64 = 4 << 30;
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(&file, MAX + 1), &mut data)
            .with_context(|| format!("reading {}", path.display()))?;
        if data.len() as u64 > MAX {
            bail!(
                "{} holds more than 4 GiB: save it to a file first (for a live source, \
                 publish with ffmpeg: -re -i SRC -c copy -f mpegts http://HOST/live/NAME)",
                path.display()
            );
        }
        return Ok(data.into());
    }
    // SAFETY: the mapping is read-only and private to this command, and lives as long as the
    // `Bytes` that owns it. A file truncated while the command reads it would fault it, as it
    // would any mmap-based reader; files given to `index` and `publish` are not being written.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes::Bytes::from_owner(map))
}

/// A new file at `path`, for this command alone: whatever was there (a partial file left by
/// a run that was killed, or a link planted in its place) is removed first, not written
/// through.
async fn fresh(path: &Path) -> Result<tokio::fs::File> {
    let _ = tokio::fs::remove_file(path).await;
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .with_context(|| format!("creating {}", path.display()))
}

/// Ends a watch's output: flushed and renamed over `output` if anything was written, removed
/// if nothing was (what was at `output` stays then). Returns the bytes kept.
async fn keep(
    file: Option<tokio::fs::File>,
    partial: Option<&Path>,
    output: Option<&Path>,
) -> Result<u64> {
    use tokio::io::AsyncWriteExt;
    let Some(mut f) = file else {
        return Ok(0);
    };
    f.flush().await.context("writing the output")?;
    // Written in place (not a regular file): nothing to rename.
    let (Some(partial), Some(output)) = (partial, output) else {
        return Ok(0);
    };
    let len = f.metadata().await.map_or(0, |m| m.len());
    drop(f);
    if len == 0 {
        let _ = tokio::fs::remove_file(partial).await;
        return Ok(0);
    }
    tokio::fs::rename(partial, output)
        .await
        .with_context(|| format!("renaming {} to {}", partial.display(), output.display()))?;
    Ok(len)
}

/// `dir/.name.partial` for `dir/name`: where a download goes until it is whole.
fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "download".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.partial"))
}

/// One line on standard output; an error when it is closed (`| head`), which `main` turns into
/// a clean exit instead of `println!`'s panic.
fn say(line: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(line)?;
    out.write_all(b"\n")
}

/// What `seek` prints: with `--json` this struct as JSON, otherwise one tab-separated line
/// that starts with the offset.
#[derive(Debug, Serialize, PartialEq)]
struct SeekOutput {
    offset: u64,
    keyframe_seconds: f64,
    keyframe_timecode: Option<String>,
    requested_seconds: f64,
    frame_rate: Option<String>,
}

impl From<client::Seek> for SeekOutput {
    fn from(s: client::Seek) -> Self {
        SeekOutput {
            offset: s.offset,
            keyframe_seconds: s.keyframe.seconds,
            keyframe_timecode: s.keyframe.timecode,
            requested_seconds: s.requested.seconds,
            frame_rate: s.frame_rate,
        }
    }
}

impl SeekOutput {
    /// `OFFSET<TAB>keyframe TIMECODE (SECONDS s) for REQUESTED (SECONDS s)`.
    fn line(&self, requested: &str) -> String {
        format!(
            "{}\tkeyframe {} ({:.3} s) for {} ({:.3} s)",
            self.offset,
            self.keyframe_timecode.as_deref().unwrap_or("-"),
            self.keyframe_seconds,
            requested,
            self.requested_seconds
        )
    }
}

/// `seek`: prints where the keyframe at or before `timecode` starts in the video at `url`.
pub async fn seek(url: &str, timecode: &str, json: bool) -> Result<()> {
    let out = SeekOutput::from(client::timecode_to_index(url, timecode).await?);
    if json {
        say(format_args!("{}", serde_json::to_string_pretty(&out)?))?;
    } else {
        say(format_args!("{}", out.line(timecode)))?;
    }
    Ok(())
}

/// `index`: prints the keyframe table of a local file, or with `at` the one keyframe at or
/// before that time.
pub fn index(path: &Path, at: Option<&str>) -> Result<()> {
    let data = map(path)?;
    let info = media::index(&data).with_context(|| format!("indexing {}", path.display()))?;
    let rate = info.frame_rate();
    if let Some(tc) = at {
        let t = media::timecode::parse(tc, rate)?;
        let p = info.seek(t)?;
        say(format_args!(
            "{}\tkeyframe {} ({:.3} s) for {tc}",
            p.keyframe.offset,
            rate.map(|r| media::timecode::format(p.keyframe.time, r))
                .unwrap_or_default(),
            p.keyframe.time.as_secs_f64()
        ))?;
        return Ok(());
    }
    let v = info.video.as_ref();
    say(format_args!(
        "# {} {} {}x{} {} fps, duration {:.3} s, {} keyframes",
        info.container.name(),
        v.map_or("-", |v| v.codec.as_str()),
        v.and_then(|v| v.width).unwrap_or(0),
        v.and_then(|v| v.height).unwrap_or(0),
        rate.map_or("-".into(), |r| r.to_string()),
        info.duration.as_secs_f64(),
        info.keyframes.len()
    ))?;
    if info.keyframes.is_empty() && info.video.is_none() {
        bail!("{} has no video track to index", path.display());
    }
    say(format_args!("# index\tseconds\ttimecode\toffset"))?;
    for (i, k) in info.keyframes.iter().enumerate() {
        say(format_args!(
            "{i}\t{:.6}\t{}\t{}",
            k.time.as_secs_f64(),
            rate.map(|r| media::timecode::format(k.time, r))
                .unwrap_or_default(),
            k.offset
        ))?;
    }
    Ok(())
}

/// `publish`: sends an MPEG-TS file (or an MP4, remuxed to MPEG-TS in memory first) to the live
/// stream at `url`, paced in real time, once or (`looped`) until interrupted.
pub async fn publish(file: &Path, url: &str, key: Option<&str>, looped: bool) -> Result<()> {
    let data = map(file)?;
    // MP4 is remuxed to MPEG-TS in memory first (H.264/H.265 + AAC).
    let data = match media::index::detect(&data) {
        media::Container::Mp4 => media::ts::mux::from_mp4(&data)
            .with_context(|| format!("remuxing {} to MPEG-TS", file.display()))?
            .into(),
        _ => data,
    };
    let progress = |p: &client::live::Published| {
        let again = match p.reconnects {
            0 => String::new(),
            n => format!(", connected again {n}×"),
        };
        eprint!(
            "\rpublished {:.1} MB in {:.0} s ({:.2} Mbit/s), loop {}{again}   ",
            p.bytes as f64 / 1e6,
            p.elapsed.as_secs_f64(),
            p.bytes as f64 * 8.0 / p.elapsed.as_secs_f64().max(0.001) / 1e6,
            p.loops + 1
        );
    };
    // A signal ends the body properly: the stream ends at once (not after the server's grace).
    let done = client::live::publish(url, key, data, looped, progress, shutdown_signal()).await?;
    eprintln!();
    eprintln!(
        "\rpublished {} bytes in {:.1} s ({} pass{})",
        done.bytes,
        done.elapsed.as_secs_f64(),
        done.loops,
        if done.loops == 1 { "" } else { "es" }
    );
    Ok(())
}

/// `watch`: reads the live stream at `url`, printing keyframe arrivals and the bitrate, saving
/// it to `output`, for `duration` seconds or until the stream ends or a signal comes.
pub async fn watch(url: &str, output: Option<&Path>, duration: Option<f64>) -> Result<()> {
    // A URL watch cannot follow is refused before anything is created.
    client::live::LiveUrl::parse_watch(url)?;
    // Written beside the file until the watch ends (what was there stays if nothing came);
    // what is not a regular file (/dev/null, a FIFO a player reads, a link) is written as it is.
    let in_place =
        output.filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| !m.file_type().is_file()));
    let partial = output.filter(|_| in_place.is_none()).map(partial_path);
    let mut file = match (&partial, in_place) {
        (Some(p), _) => Some(fresh(p).await?),
        (None, Some(p)) => Some(
            tokio::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .await
                .with_context(|| format!("opening {}", p.display()))?,
        ),
        (None, None) => None,
    };
    let duration = duration.map(Duration::from_secs_f64);
    let events = |e: client::live::WatchEvent<'_>| match e {
        client::live::WatchEvent::Keyframe(at) => {
            say(format_args!("{:8.3} s  keyframe", at.as_secs_f64()))
        }
        client::live::WatchEvent::Progress(w) => say(format_args!(
            "{:8.3} s  {:.2} Mbit/s, {} bytes, {} keyframes",
            w.elapsed.as_secs_f64(),
            w.bitrate / 1e6,
            w.bytes,
            w.keyframes
        )),
    };
    let watching = client::live::watch(url, file.as_mut(), duration, events);
    let seen = tokio::select! {
        r = watching => r,
        () = shutdown_signal() => {
            keep(file, partial.as_deref(), output).await?;
            return Ok(());
        }
    };
    // What came before a failure is kept too (a recording up to the stall), unless nothing did.
    let kept = keep(file, partial.as_deref(), output).await?;
    let seen = match seen {
        Ok(seen) => seen,
        Err(e) if kept > 0 => {
            let to = output.map_or(String::new(), |o| o.display().to_string());
            return Err(anyhow::Error::new(e).context(format!("{kept} bytes saved to {to}")));
        }
        Err(e) => return Err(e.into()),
    };
    say(format_args!(
        "{} bytes, {} keyframes in {:.1} s; first keyframe after {}; {}",
        seen.bytes,
        seen.keyframes,
        seen.elapsed.as_secs_f64(),
        seen.first_keyframe.map_or("-".into(), |d| format!(
            "{:.0} ms",
            d.as_secs_f64() * 1000.0
        )),
        if seen.ended {
            "the stream ended"
        } else {
            "stopped"
        }
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(timecode: Option<&str>, frame_rate: Option<&str>) -> client::Seek {
        client::Seek {
            offset: 123456,
            keyframe: client::TimePoint {
                seconds: 4154.9,
                timecode: timecode.map(str::to_string),
            },
            keyframe_index: 7,
            requested: client::TimePoint {
                seconds: 4154.93,
                timecode: None,
            },
            frame_rate: frame_rate.map(str::to_string),
            size: 1 << 30,
        }
    }

    /// `seek --json` prints valid JSON with the same keys as ever, `null` where the server has no
    /// timecode or frame rate (it used to print Rust's `Some("...")`/`None` there).
    #[test]
    fn seek_json_is_valid_json() {
        let out = SeekOutput::from(answer(Some("01:09:14;27"), Some("29.97")));
        let j: serde_json::Value =
            serde_json::from_str(&serde_json::to_string_pretty(&out).unwrap()).unwrap();
        assert_eq!(
            j,
            serde_json::json!({
                "offset": 123456,
                "keyframe_seconds": 4154.9,
                "keyframe_timecode": "01:09:14;27",
                "requested_seconds": 4154.93,
                "frame_rate": "29.97",
            })
        );
        let out = SeekOutput::from(answer(None, None));
        let j: serde_json::Value =
            serde_json::from_str(&serde_json::to_string_pretty(&out).unwrap()).unwrap();
        assert!(j["keyframe_timecode"].is_null() && j["frame_rate"].is_null());
    }

    #[test]
    fn seek_line_starts_with_the_offset() {
        let out = SeekOutput::from(answer(Some("01:09:14;27"), Some("29.97")));
        assert_eq!(
            out.line("1h9m14.93s"),
            "123456\tkeyframe 01:09:14;27 (4154.900 s) for 1h9m14.93s (4154.930 s)"
        );
        let out = SeekOutput::from(answer(None, None));
        assert_eq!(
            out.line("4154.93"),
            "123456\tkeyframe - (4154.900 s) for 4154.93 (4154.930 s)"
        );
    }
}
