//! The page at `/`: the live streams, and a player per title.

use crate::library::{encode_id, Library};
use crate::live::Live;
use std::fmt::Write as _;

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) fn index(lib: &Library, live: &Live) -> String {
    let mut s = String::from(
        "<!doctype html><meta charset=utf-8><title>zerocast</title>\
         <style>body{font-family:sans-serif;margin:2em}video{max-width:480px;display:block}</style>\
         <h1>zerocast library</h1>",
    );
    let streams = live.list();
    if !streams.is_empty() {
        s.push_str("<h1>live</h1><ul>");
        for st in streams {
            let n = html_escape(&st.name);
            let _ = write!(
                s,
                "<li>{n} ({}): <a href=\"/live/{n}.ts\">MPEG-TS</a> · \
                 <a href=\"/live/{n}/index.m3u8\">HLS</a> · <a href=\"/api/streams/{n}\">info</a></li>",
                st.read().lifecycle.state().name()
            );
        }
        s.push_str("</ul>");
    }
    for t in lib.titles() {
        let url = format!("/videos/{}", encode_id(&t.id));
        let id = html_escape(&t.id);
        let _ = write!(
            s,
            "<h2>{id}</h2><p>{} · {} bytes · <a href=\"/api/videos/{}\">info</a></p>",
            t.container.name(),
            t.data.len(),
            encode_id(&t.id)
        );
        if matches!(t.container, media::Container::Mp4 | media::Container::WebM) {
            let _ = write!(s, "<video controls preload=metadata src=\"{url}\"></video>");
        } else {
            let _ = write!(s, "<p><a href=\"{url}\">download</a></p>");
        }
    }
    s
}
