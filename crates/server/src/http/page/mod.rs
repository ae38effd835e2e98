//! The page at `/`: live streams with a player each, their stats and the URLs of every output;
//! the library with each title's facts, a player where the browser can play the container, and
//! a timecode box that asks `/api/videos/{id}/seek` and seeks the player to the keyframe it names.
//!
//! No outside scripts: the HTML is rendered here from the same documents the JSON API serves
//! (`TitleDoc`; the live part is drawn by page.js from `/api/streams`), with page.css and
//! page.js inlined. page.js plays a live stream from its `.mp4` output through a small MSE loop
//! (it reads each fragment's `prft` to show how far behind the ingest the picture is), or as
//! native HLS (`ll.m3u8`) where the browser plays HLS itself and has no MSE (iPhone Safari).
//! Each live player has a rewind box: any `t` the server's DVR takes (`-30`, `-00:05:00`, a
//! wall-clock time) restarts it on `.mp4?t=...`, played from there at normal speed (reading at
//! most 30 s ahead); `Live` goes back to the edge.
//!
//! A browser opens at most six HTTP/1.1 connections to a server, and a live player holds one for
//! as long as it plays: titles load nothing until played or sought (`preload=none`), and only
//! the first two live streams start by themselves (the others on a click).

use crate::api::TitleDoc;
use crate::library::{encode_id, Library};
use std::fmt::Write as _;

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `1:02:03` or `2:03` for a duration in seconds.
fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s / 3600 {
        0 => format!("{}:{:02}", s / 60, s % 60),
        h => format!("{h}:{:02}:{:02}", s / 60 % 60, s % 60),
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.0} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// Whether a browser may play the title in a `<video>` (page.js hides the player when
/// `canPlayType` says no, e.g. H.265).
fn playable(d: &TitleDoc) -> bool {
    matches!(d.container.as_str(), "mp4" | "webm")
}

/// The page; `rtmp_port`: where RTMP publishers and players connect, if anywhere.
pub(crate) fn index(lib: &Library, rtmp_port: Option<u16>) -> String {
    let titles: Vec<TitleDoc> = lib.titles().map(|t| TitleDoc::new(t)).collect();
    let mut s = String::with_capacity(16 << 10);
    let _ = write!(
        s,
        "<!doctype html><html lang=en><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>zerocast</title><style>{CSS}</style>\
         <body data-rtmp-port=\"{}\"><header><h1>zerocast</h1><nav>\
         <a href=\"#live\">Live</a><a href=\"#library\">Library</a>\
         <a href=\"/api/streams\">API</a><a href=\"/metrics\">Metrics</a></nav></header><main>\
         <section id=live><h2>Live</h2>\
         <p id=live-empty>No live stream right now. Publish one with \
         <code>ffmpeg -re -i show.mp4 -c copy -f flv rtmp://<span class=host></span>/live/show</code>; \
         it appears here by itself.</p><div id=streams class=grid></div></section>\
         <section id=library><h2>Library <small>{} titles</small></h2><div class=grid>",
        rtmp_port.map_or(String::new(), |p| p.to_string()),
        titles.len()
    );
    for d in &titles {
        title(&mut s, d);
    }
    s.push_str("</div></section></main><script>");
    s.push_str(JS);
    s.push_str("</script>");
    s
}

/// One title's card.
fn title(s: &mut String, d: &TitleDoc) {
    let id = html_escape(&d.id);
    let url = html_escape(&d.url);
    let api = html_escape(&format!("/api/videos/{}", encode_id(&d.id)));
    let _ = write!(
        s,
        "<article class=\"card title\" data-id=\"{id}\" data-seek=\"{api}/seek\"><h3>{id}</h3>"
    );
    let mime = html_escape(&d.content_type);
    if playable(d) {
        let _ = write!(
            s,
            "<video controls preload=none playsinline muted src=\"{url}\" data-type=\"{mime}\"></video>"
        );
    } else {
        let name = match d.container.as_str() {
            "mpegts" => "MPEG-TS",
            other => other,
        };
        let _ = write!(
            s,
            "<div class=noplayer><p>Browsers do not play {} files: open it in a player such as \
             <code>ffplay</code>, <code>mpv</code> or VLC, from the links below{}.</p></div>",
            html_escape(name),
            if d.hls_url.is_some() {
                " (Safari plays its HLS)"
            } else {
                ""
            }
        );
    }
    s.push_str("<dl class=facts>");
    if let Some(secs) = d.duration_seconds {
        let _ = write!(s, "<dt>duration</dt><dd>{}</dd>", clock(secs));
    }
    if let Some(v) = &d.video_codec {
        let _ = write!(s, "<dt>video</dt><dd>{}", html_escape(v));
        if let (Some(w), Some(h)) = (d.width, d.height) {
            let _ = write!(s, " {w}×{h}");
        }
        if let Some(fps) = d.frames_per_second {
            let _ = write!(s, " {} fps", (fps * 100.0).round() / 100.0);
        }
        s.push_str("</dd>");
    }
    if let Some(a) = &d.audio_codec {
        let _ = write!(s, "<dt>audio</dt><dd>{}</dd>", html_escape(a));
    }
    if let Some(src) = &d.source {
        let _ = write!(s, "<dt>stored</dt><dd>{}</dd>", html_escape(src));
    }
    let _ = write!(
        s,
        "<dt>file</dt><dd>{} · {}</dd></dl>",
        html_escape(&d.container),
        size(d.size)
    );
    if d.seekable {
        s.push_str(
            "<form class=seek><label>Timecode <input name=t placeholder=\"01:09:14:28\" \
             autocomplete=off spellcheck=false></label><button>Seek</button>\
             <output aria-live=polite></output></form>",
        );
    } else if let Some(e) = &d.index_error {
        let _ = write!(s, "<p class=warn>Not seekable: {}</p>", html_escape(e));
    }
    let _ = write!(
        s,
        "<p class=links><a href=\"{url}\">bytes</a> · <a href=\"{api}\">info</a>"
    );
    if let Some(hls) = &d.hls_url {
        let _ = write!(s, " · <a href=\"{}\">HLS</a>", html_escape(hls));
    }
    if let Some(dash) = &d.dash_url {
        let _ = write!(s, " · <a href=\"{}\">DASH</a>", html_escape(dash));
    }
    s.push_str("</p></article>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_as_people_write_them() {
        assert_eq!(clock(8.0), "0:08");
        assert_eq!(clock(4154.93), "1:09:15");
        assert_eq!(size(330_128), "322 KiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
        assert_eq!(
            html_escape("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }
}
