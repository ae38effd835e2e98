'use strict';
// zerocast's page: live streams (drawn from /api/streams every 2 s), their players and stats,
// and the timecode boxes of the library. No outside scripts.
const $ = (sel, el = document) => el.querySelector(sel);
const make = (tag, props = {}, ...kids) => {
  const e = Object.assign(document.createElement(tag), props);
  for (const k of kids) e.append(k);
  return e;
};
const host = location.hostname.includes(':') ? `[${location.hostname}]` : location.hostname;
const rtmpPort = document.body.dataset.rtmpPort;
for (const e of document.querySelectorAll('.host')) e.textContent = `${host}:${rtmpPort || 1935}`;

function rate(bps) {
  if (bps >= 1e6) return (bps / 1e6).toFixed(2) + ' Mbit/s';
  if (bps >= 1e3) return (bps / 1e3).toFixed(0) + ' kbit/s';
  return bps + ' bit/s';
}
function since(secs) {
  const s = Math.floor(secs), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
  return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + (s % 60) + 's';
}

// --- A live player: the stream's fragmented MP4 through Media Source Extensions. Each top-level
// box is appended in order; a `prft` box says when the next fragment's frame reached the ingest,
// so the page knows how far behind the picture is. Where MSE is missing and the browser plays
// HLS itself (iPhone Safari), the LL-HLS playlist instead (latency from its PROGRAM-DATE-TIME).
// `t`: a DVR start (`-30`, `-00:05:00`, a time from the stream's start, a wall-clock time): the
// server starts at the keyframe at or before it and goes on to the live edge; the player then
// plays on from there at normal speed instead of chasing the edge, and reads only so far ahead.
class LivePlayer {
  // `asked`: the response to `.mp4?t=` already fetched (and its abort controller), when the
  // caller checked the server takes that time before it stopped the player it replaces.
  constructor(video, name, t, said, asked) {
    this.video = video;
    this.name = name;
    this.t = t || '';
    this.said = said || (() => {});
    this.stamp = null; // [media seconds, wall clock ms] of the latest prft
    this.asked = asked ? asked.resp : null;
    this.abort = asked ? asked.abort : new AbortController();
    this.queue = [];
    if (window.MediaSource) this.mse();
    else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = `/live/${encodeURIComponent(name)}/ll.m3u8`;
      video.play().catch(() => {});
    } else video.src = `/live/${encodeURIComponent(name)}.mp4`;
  }
  latency() {
    const v = this.video;
    if (v.getStartDate && !isNaN(v.getStartDate().getTime())) {
      return Date.now() - (v.getStartDate().getTime() + v.currentTime * 1000);
    }
    if (!this.stamp || v.readyState < 2) return null;
    const [media, wall] = this.stamp;
    return Date.now() - (wall + (v.currentTime - media) * 1000);
  }
  stop() {
    this.abort.abort();
    if (this.url) URL.revokeObjectURL(this.url);
    this.video.removeAttribute('src');
    this.video.load();
  }
  get stopped() { return this.abort.signal.aborted; }
  async mse() {
    const ms = new MediaSource();
    this.url = URL.createObjectURL(ms);
    this.video.src = this.url;
    await new Promise((ok) => ms.addEventListener('sourceopen', ok, { once: true }));
    if (this.stopped) return;
    this.video.dataset.phase = 'open';
    let resp = this.asked;
    const query = this.t ? '?t=' + encodeURIComponent(this.t) : '';
    try {
      resp = resp || await fetch(`/live/${encodeURIComponent(this.name)}.mp4${query}`, { signal: this.abort.signal });
    } catch (e) { if (!this.stopped) this.video.dataset.phase = 'fetch failed: ' + e; return; }
    if (this.stopped) return;
    this.video.dataset.phase = 'response ' + resp.status;
    if (!resp.ok) {
      // The server's reason (a time outside the DVR window names the window).
      let why = '';
      try { why = (await resp.json()).error; } catch (e) {}
      if (!this.stopped) this.said(why || `HTTP ${resp.status} ${resp.statusText}`.trim(), true);
      return;
    }
    this.said(this.t ? `from ${this.t}, then on to the live edge` : '', false);
    const reader = resp.body.getReader();
    let buf = new Uint8Array(0), init = [], sb = null, got = 0;
    for (;;) {
      // A rewound player reads at most half a minute ahead of what it shows: the server sends
      // the recording as fast as it is read, and a SourceBuffer holds only so much.
      while (this.t && this.ahead() > 30 && !this.abort.signal.aborted) {
        await new Promise((ok) => setTimeout(ok, 500));
      }
      let chunk;
      try { chunk = await reader.read(); } catch (e) { chunk = { done: true }; }
      if (chunk.done) {
        // A rewound player paused for longer than the server waits for a reader is let go.
        if (this.t && !this.stopped) this.said('the stream ended here; press Play or Live to go on', true);
        break;
      }
      got += chunk.value.length;
      if (!sb) this.video.dataset.phase = `read ${got} bytes, ${buf.length} held, first box ${String.fromCharCode(...(buf.length >= 8 ? buf.subarray(4, 8) : chunk.value.subarray(4, 8)))}`;
      const joined = new Uint8Array(buf.length + chunk.value.length);
      joined.set(buf); joined.set(chunk.value, buf.length);
      buf = joined;
      let at = 0;
      while (buf.length - at >= 8) {
        const dv = new DataView(buf.buffer, buf.byteOffset + at);
        const size = dv.getUint32(0);
        const type = String.fromCharCode(...buf.subarray(at + 4, at + 8));
        if (size < 8) return; // not a box stream: give up rather than guess
        if (buf.length - at < size) break;
        const box = buf.slice(at, at + size);
        at += size;
        if (type === 'ftyp') init = [box];
        else if (type === 'moov') {
          init.push(box);
          const mime = `video/mp4; codecs="${codecs(box)}"`;
          if (!sb) {
            if (!MediaSource.isTypeSupported(mime)) { this.video.dataset.error = mime; return; }
            sb = ms.addSourceBuffer(mime);
            this.video.dataset.phase = 'playing ' + mime;
            sb.mode = 'segments';
            sb.addEventListener('updateend', () => this.pump(sb));
          }
          for (const b of init) this.append(sb, b);
        } else if (type === 'prft') {
          const v = new DataView(box.buffer);
          const ntp = Number(v.getBigUint64(16));
          const secs = Math.floor(ntp / 2 ** 32) - 2208988800, frac = (ntp % 2 ** 32) / 2 ** 32;
          const media = box[8] === 1 ? Number(v.getBigUint64(24)) : v.getUint32(24);
          this.stamp = [media / 1000, (secs + frac) * 1000];
        } else if (sb) this.append(sb, box);
      }
      buf = buf.slice(at);
      this.chase();
    }
  }
  ahead() {
    const b = this.video.buffered;
    return b.length ? b.end(b.length - 1) - this.video.currentTime : 0;
  }
  append(sb, box) {
    this.queue.push(box);
    this.pump(sb);
  }
  pump(sb) {
    if (sb.updating || !this.queue.length) return;
    try { sb.appendBuffer(this.queue.shift()); } catch (e) { this.queue.length = 0; }
  }
  // Stay near the live edge: start at the newest data, jump ahead after a stall, and close the
  // rest (the GOP the stream starts with) by playing a tenth faster: frames arrive as soon as
  // the ingest has them, so a quarter of a second of buffer is enough.
  // A rewound player starts at the first frame and plays at normal speed.
  chase() {
    const v = this.video, b = v.buffered;
    if (!b.length) return;
    const start = b.start(b.length - 1), end = b.end(b.length - 1), ahead = end - v.currentTime;
    if (this.t) {
      // Start at the first frame; step over a gap (a publisher's reconnect) to what follows it.
      for (let i = 0; i < b.length; i++) {
        if (v.currentTime < b.start(i)) { v.currentTime = b.start(i); break; }
        if (v.currentTime < b.end(i)) break;
      }
      // Started once; after that a pause is the viewer's.
      if (!this.started) { this.started = true; v.play().catch(() => {}); }
      return;
    }
    if (v.currentTime < start || ahead > 3) v.currentTime = Math.max(start, end - 0.3);
    else v.playbackRate = ahead > 0.25 ? 1.1 : 1;
    if (v.paused) v.play().catch(() => {});
  }
}

// The codecs parameter of an init segment: avc1.PPCCLL from avcC, hvc1 from hvcC, mp4a.40.N,
// Opus.
function codecs(moov) {
  const find = (name) => {
    for (let i = 4; i + 4 <= moov.length; i++) {
      if (moov[i] === name.charCodeAt(0) && moov[i + 1] === name.charCodeAt(1) &&
          moov[i + 2] === name.charCodeAt(2) && moov[i + 3] === name.charCodeAt(3)) return i + 4;
    }
    return -1;
  };
  const out = [], hex = (b) => b.toString(16).padStart(2, '0');
  let i = find('avcC');
  if (i > 0) out.push('avc1.' + hex(moov[i + 1]) + hex(moov[i + 2]) + hex(moov[i + 3]));
  else if (find('hvcC') > 0) out.push('hvc1.1.6.L93.B0');
  if (find('mp4a') > 0) out.push('mp4a.40.2');
  else if (find('Opus') > 0) out.push('opus');
  return out.join(',');
}

// --- Live streams.
const cards = new Map();
function urlList(doc) {
  const base = location.origin;
  const rows = [
    ['MP4', base + doc.mp4_url], ['LL-HLS', base + doc.ll_hls_url], ['DASH', base + doc.dash_url],
    ['HLS', base + doc.hls_url],
    ['TS', base + doc.ts_url], ['FLV', base + doc.flv_url],
  ];
  if (rtmpPort) rows.push(['RTMP', `rtmp://${host}:${rtmpPort}/live/${doc.name}`]);
  return make('ul', { className: 'urls' }, ...rows.map(([k, u]) => make('li', {}, make('span', { textContent: k }), make('code', { textContent: u }))));
}
// Live players that start by themselves: each holds one of the browser's (about six) HTTP/1.1
// connections to this server for as long as it plays.
const AUTOPLAY = 2;
// How long a rewind waits for the server's answer before it replaces the player anyway (ms).
const ASK_MS = 4000;
function addCard(doc) {
  const video = make('video', { muted: true, autoplay: true, playsInline: true, controls: true });
  const badge = make('span', { className: 'badge' });
  const stats = make('dl', { className: 'stats' });
  // DVR: play from a time back (the server's ring, then its recording), or from the live edge.
  const input = make('input', { name: 't', placeholder: '-30 or -00:05:00', autocomplete: 'off' });
  const said = make('output');
  const edge = make('button', { type: 'button', className: 'edge', textContent: 'Live' });
  const rewind = make('form', { className: 'seek rewind' },
    make('label', {}, 'Rewind to', input), make('button', { textContent: 'Play' }), edge, said);
  const el = make('article', { className: 'card stream' }, make('h3', {}, doc.name, badge), video, rewind, stats, urlList(doc));
  el.dataset.name = doc.name;
  $('#streams').append(el);
  const card = { el, badge, stats, player: null, presses: 0 };
  const tell = (text, error) => { said.textContent = text; said.className = error ? 'error' : ''; };
  // A time back is asked first: one the server refuses (outside the window, malformed) shows its
  // reason and leaves the player that plays as it is.
  const play = async (t) => {
    // Only the newest press counts (a Live pressed while a time is asked wins).
    const press = ++card.presses;
    let asked;
    if (t && window.MediaSource) {
      const abort = new AbortController();
      tell('asking…', false);
      // The browser holds about six connections to this server and every playing player one:
      // an answer that does not come soon is asked again by the new player, the old one stopped.
      const waited = setTimeout(() => {
        if (press !== card.presses) return;
        card.presses++; // this ask is over: its answer, should it come, is dropped
        abort.abort();
        replace(t);
      }, ASK_MS);
      try {
        const resp = await fetch(`/live/${encodeURIComponent(doc.name)}.mp4?t=${encodeURIComponent(t)}`, { signal: abort.signal });
        clearTimeout(waited);
        if (!resp.ok) {
          let why = '';
          try { why = (await resp.json()).error; } catch (e) {}
          if (press === card.presses) tell(why || `HTTP ${resp.status} ${resp.statusText}`.trim(), true);
          return;
        }
        asked = { resp, abort };
      } catch (e) {
        clearTimeout(waited);
        if (press === card.presses && !abort.signal.aborted) tell('could not ask the server: ' + e, true);
        return;
      }
      if (press !== card.presses) { asked.abort.abort(); return; }
    }
    replace(t, asked);
  };
  const replace = (t, asked) => {
    if (card.player) card.player.stop();
    const go = $('.watch', el);
    if (go) go.remove();
    el.dataset.rewound = t || '';
    card.player = new LivePlayer(video, doc.name, t, tell, asked);
  };
  const start = () => { if (!card.player) play(''); };
  rewind.addEventListener('submit', (e) => { e.preventDefault(); play(input.value.trim()); });
  edge.addEventListener('click', () => { input.value = ''; play(''); });
  // Without MSE the player is the LL-HLS playlist: the browser's own controls seek in its DVR
  // window, where it has one (a stream recorded as fMP4 with hls_dvr_secs).
  if (!window.MediaSource) rewind.hidden = true;
  if ([...cards.values()].filter((c) => c.player).length < AUTOPLAY) start();
  else {
    const go = make('button', { className: 'watch', textContent: '▶ Watch' });
    go.addEventListener('click', () => { go.remove(); start(); });
    video.before(go);
  }
  cards.set(doc.name, card);
  return card;
}
function update(card, doc) {
  card.badge.textContent = doc.state;
  card.badge.className = 'badge ' + doc.state;
  const v = doc.viewers;
  const lat = card.player ? card.player.latency() : null;
  const rows = [
    ['uptime', since(doc.uptime_seconds)],
    ['input', rate(doc.input_bitrate)],
    ['codecs', [doc.video_codec, ...doc.audio_codecs].filter(Boolean).join(' + ') || '…'],
    ['viewers', `mp4 ${v.mp4} · ts ${v.ts} · flv ${v.flv} · rtmp ${v.rtmp} · hls ${v.hls_segment_requests} requests`],
    ['latency', lat === null ? '…' : (lat / 1000).toFixed(2) + ' s behind the ingest'],
    ['rewind', doc.dvr_window_seconds >= 1 ? 'up to ' + since(doc.dvr_window_seconds) + ' back' : '…'],
  ];
  card.stats.replaceChildren(...rows.flatMap(([k, val]) => [make('dt', { textContent: k }), make('dd', { textContent: val })]));
  card.el.dataset.latencyMs = lat === null ? '' : Math.round(lat);
}
async function refresh() {
  let docs;
  try { docs = await (await fetch('/api/streams')).json(); } catch (e) { return; }
  const names = new Set(docs.map((d) => d.name));
  for (const d of docs) update(cards.get(d.name) || addCard(d), d);
  for (const [n, c] of cards) if (!names.has(n)) { c.presses++; if (c.player) c.player.stop(); c.el.remove(); cards.delete(n); }
  $('#live-empty').hidden = docs.length > 0;
}
refresh();
setInterval(refresh, 2000);

// --- Library: players the browser cannot play are replaced by a note; timecode boxes seek.
for (const v of document.querySelectorAll('.title video')) {
  v.addEventListener('error', () => v.replaceWith(make('div', { className: 'noplayer', textContent: 'This browser cannot play this file.' })));
}
async function seek(card, t) {
  const out = $('output', card), video = $('video', card);
  out.className = '';
  out.textContent = 'seeking…';
  let r, doc;
  try {
    r = await fetch(card.dataset.seek + '?t=' + encodeURIComponent(t));
    doc = await r.json();
  } catch (e) { out.className = 'error'; out.textContent = String(e); return; }
  if (!r.ok) { out.className = 'error'; out.textContent = doc.error || r.statusText; return; }
  out.textContent = `keyframe ${doc.keyframe.timecode} at byte ${doc.offset.toLocaleString('en')} of ${doc.size.toLocaleString('en')}`;
  card.dataset.offset = doc.offset;
  card.dataset.keyframe = doc.keyframe.seconds;
  if (video) {
    // A title loads nothing until asked (preload=none): its metadata first, then the seek.
    if (video.readyState < 1) {
      video.preload = 'metadata';
      video.load();
      await new Promise((ok) => video.addEventListener('loadedmetadata', ok, { once: true }));
    }
    video.addEventListener('seeked', () => { card.dataset.seeked = video.currentTime; }, { once: true });
    video.currentTime = doc.keyframe.seconds;
  }
}
for (const form of document.querySelectorAll('form.seek')) {
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    seek(form.closest('.title'), form.elements.t.value.trim());
  });
}
