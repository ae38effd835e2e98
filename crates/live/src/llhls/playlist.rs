//! The LL-HLS media playlist of a stream, full or as a delta update.
//!
//! URIs are relative to the playlist: `init{version}.mp4`, `{msn}.m4s` (a segment),
//! `{msn}.{part}.m4s` (a part); `carry` (a signed link's query) is appended to every one of them.

use super::cut::{LlHls, LlSegment, Part};
use super::past::Dvr;
use super::wallclock::rfc3339_ms;
use std::fmt::Write as _;
use std::time::Duration;

/// `PART-HOLD-BACK` in part targets (RFC 8216bis: at least two, three recommended).
const PART_HOLD_BACK: u32 = 3;
/// Parts are listed for the segments within this many target durations of the end.
const PARTS_LISTED_FOR: u64 = 3;
/// `CAN-SKIP-UNTIL` in target durations (the minimum RFC 8216bis allows).
const SKIP_UNTIL: u64 = 6;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl LlHls {
    /// URIs become `{dir}init{v}.mp4`, `{dir}{msn}.m4s`, `{dir}{msn}.{part}.m4s` (and DASH's
    /// `{dir}dash/...`): a directory that names the stream instance, so that a stream published
    /// again under the same name lists new URIs (its segments, parts and init segments are
    /// immutable in every cache that holds the last one's). `dir` ends with `/`, or is empty.
    pub fn with_dir(mut self, dir: String) -> Self {
        self.dir = dir;
        self
    }

    /// `CAN-SKIP-UNTIL`, seconds.
    pub fn skip_until(&self) -> u64 {
        SKIP_UNTIL * self.target_secs
    }

    /// The media playlist; `skip`: a delta update (segments older than `CAN-SKIP-UNTIL` from the
    /// end replaced by `EXT-X-SKIP`).
    pub fn playlist(&self, skip: bool, carry: Option<&str>) -> String {
        self.playlist_with(skip, carry, None)
    }

    /// The media playlist, with a DVR window (see [`LlHls::listing`]): before the segments in
    /// memory, the newest run of those that left it whose bytes the recording holds.
    pub fn playlist_with(&self, skip: bool, carry: Option<&str>, dvr: Option<&Dvr<'_>>) -> String {
        let q = carry.map_or(String::new(), |c| format!("?{c}"));
        let d = &self.dir;
        let (from_past, unlisted) = self.listing(dvr);
        let listed: Vec<Entry> = self
            .past
            .iter()
            .skip(from_past)
            .map(|p| Entry {
                msn: p.msn,
                played: p.duration,
                discontinuity: p.discontinuity,
                init: p.init,
                wall_ms: p.wall_ms,
                complete: true,
                parts: &[],
            })
            .chain(self.segments.iter().skip(unlisted).map(|s| Entry {
                msn: s.msn,
                played: self.played(s),
                discontinuity: s.discontinuity,
                init: s.init,
                wall_ms: s.wall_ms,
                complete: s.complete,
                parts: &s.parts,
            }))
            .collect();
        // Discontinuities remembered or kept but not listed count as slid out.
        let disc_seq = self.discontinuity_seq
            + self
                .past
                .iter()
                .take(from_past)
                .map(|p| u64::from(p.discontinuity))
                .sum::<u64>()
            + self
                .segments
                .iter()
                .take(unlisted)
                .map(|s| u64::from(s.discontinuity))
                .sum::<u64>();
        let total: Duration = listed.iter().map(|s| s.played).sum();
        // A delta update leaves out the segments that start more than CAN-SKIP-UNTIL before the
        // end (never the open one), up to the first discontinuity listed: a player counts
        // discontinuities from the tags it sees (hls.js numbers the segments after a skipped
        // `EXT-X-DISCONTINUITY` as if it were not there, and stops on the mismatch).
        let mut skipped = 0;
        // What the segments still written out play for, to the end.
        let mut to_end = total;
        if skip {
            for s in &listed {
                if !s.complete
                    || s.discontinuity
                    || to_end <= Duration::from_secs(self.skip_until())
                {
                    break;
                }
                to_end = to_end.saturating_sub(s.played);
                skipped += 1;
            }
        }
        let part_target = self.limits.part_target;
        let first = listed.first().map_or(self.next_msn(), |s| s.msn);
        let mut out = String::with_capacity(512 + 64 * listed.len());
        let _ = write!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{}\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3},CAN-SKIP-UNTIL={:.1}\n\
             #EXT-X-PART-INF:PART-TARGET={:.3}\n\
             #EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-DISCONTINUITY-SEQUENCE:{disc_seq}\n",
            self.target_secs,
            secs(part_target) * f64::from(PART_HOLD_BACK),
            self.skip_until() as f64,
            secs(part_target),
        );
        if skipped > 0 {
            let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
        // Parts are listed from the segment that starts within three target durations of the end.
        let parts_from = Duration::from_secs(PARTS_LISTED_FOR * self.target_secs);
        let mut init = None;
        for s in listed.iter().skip(skipped) {
            let with_parts = to_end <= parts_from || !s.complete;
            to_end = to_end.saturating_sub(s.played);
            if s.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if init != Some(s.init) {
                let _ = writeln!(out, "#EXT-X-MAP:URI=\"{d}init{}.mp4{q}\"", s.init);
                init = Some(s.init);
            }
            if let Some(wall) = s.wall_ms {
                let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339_ms(wall));
            }
            if with_parts {
                for (i, p) in s.parts.iter().enumerate().filter(|(_, p)| p.complete) {
                    let _ = write!(
                        out,
                        "#EXT-X-PART:DURATION={:.3},URI=\"{d}{}.{i}.m4s{q}\"",
                        secs(p.duration),
                        s.msn
                    );
                    out.push_str(if p.independent {
                        ",INDEPENDENT=YES\n"
                    } else {
                        "\n"
                    });
                }
            }
            if s.complete {
                let _ = writeln!(out, "#EXTINF:{:.3},\n{d}{}.m4s{q}", secs(s.played), s.msn);
            }
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        } else if let Some((msn, i)) = self.hint() {
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{d}{msn}.{i}.m4s{q}\""
            );
        }
        out
    }

    /// How long a kept segment plays: its duration, or its complete parts' while it is open.
    fn played(&self, s: &LlSegment) -> Duration {
        if s.complete {
            s.duration
        } else {
            s.parts
                .iter()
                .filter(|p| p.complete)
                .map(|p| p.duration)
                .sum()
        }
    }
}

/// `playlist` (rendered without a query) with `query` appended to every URI, as
/// [`LlHls::playlist_with`] given it writes them: one render shared by the requests of signed
/// links, each of which only has its query written in.
pub fn with_query(playlist: &str, query: &str) -> String {
    let mut out = String::with_capacity(playlist.len() + playlist.len() / 8);
    for line in playlist.lines() {
        if !line.starts_with('#') {
            if !line.is_empty() {
                out.push_str(line);
                out.push('?');
                out.push_str(query);
            }
        } else {
            // Each `URI="..."` attribute: the query before its closing quote.
            let mut rest = line;
            while let Some(at) = rest.find("URI=\"") {
                let (head, tail) = rest.split_at(at + 5);
                out.push_str(head);
                let end = tail.find('"').unwrap_or(tail.len());
                out.push_str(&tail[..end]);
                out.push('?');
                out.push_str(query);
                rest = &tail[end..];
            }
            out.push_str(rest);
        }
        out.push('\n');
    }
    out
}

/// A segment as the playlist lists it, kept or remembered (a remembered one lists no parts).
struct Entry<'a> {
    msn: u64,
    /// How long it plays: its duration, or its complete parts' while it is open.
    played: Duration,
    discontinuity: bool,
    init: u64,
    wall_ms: Option<u64>,
    complete: bool,
    parts: &'a [Part],
}
