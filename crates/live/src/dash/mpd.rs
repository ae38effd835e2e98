//! The dynamic MPD of a stream's LL-DASH output.
//!
//! URIs are relative to the manifest: `dash/init-v{version}.mp4` and `dash/v$Number$.m4s` (video),
//! `dash/init-a{version}.mp4` and `dash/a$Number$.m4s` (audio); `carry` (a signed link's query) is
//! appended to each.

use crate::llhls::wallclock::rfc3339_ms;
use crate::llhls::{Dvr, LlHls, LlPast, LlSegment, PeriodStart};
use std::fmt::Write as _;

/// What a manifest is rendered with, besides the stream.
#[derive(Debug, Clone, Copy)]
pub struct Manifest<'a> {
    /// Now, Unix ms (`publishTime`).
    pub now_ms: u64,
    /// Appended to every URI as its query (a signed link's credentials).
    pub carry: Option<&'a str>,
    /// The absolute URL of the server's clock (`UTCTiming`, ISO 8601 in the body).
    pub clock_url: &'a str,
}

/// The two tracks: representation id, content type, MIME type.
const TRACKS: [(&str, &str, &str); 2] = [("v", "video", "video/mp4"), ("a", "audio", "audio/mp4")];

/// The latency a player aims for, and the bounds it keeps to (`ServiceDescription`), ms.
const LATENCY_TARGET_MS: u64 = 1000;
const LATENCY_MIN_MS: u64 = 500;
const LATENCY_MAX_MS: u64 = 3000;

/// The id of each Period's `ProducerReferenceTime`, which the `Latency` refers to (not 0:
/// dash.js reads `referenceId || NaN`).
const PRODUCER_REFERENCE_ID: u32 = 1;

fn secs(ms: u64) -> String {
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

/// A segment as the manifest lists it: kept, or remembered and read from a recording.
#[derive(Debug, Clone, Copy)]
struct Listed {
    msn: u64,
    period: PeriodStart,
    /// Its start on its Period's timeline, ms.
    period_ms: u64,
    init: u64,
    complete: bool,
    /// When its first frame reached the ingest, Unix ms.
    wall_ms: Option<u64>,
    /// Each track's bytes (its own fragments), for the bandwidth.
    track_bytes: [u64; 2],
}

impl Listed {
    fn kept(s: &LlSegment) -> Listed {
        Listed {
            msn: s.msn,
            period: s.period,
            period_ms: s.period_ms(),
            init: s.init,
            complete: s.complete,
            wall_ms: s.wall_ms,
            track_bytes: [0, 1].map(|t| {
                s.parts
                    .iter()
                    .flat_map(|p| &p.tracks[t])
                    .map(|b| b.len() as u64)
                    .sum()
            }),
        }
    }

    fn past(p: &LlPast) -> Listed {
        Listed {
            msn: p.msn,
            period: p.period,
            period_ms: p.period_ms,
            init: p.init,
            complete: true,
            wall_ms: p.wall_ms,
            track_bytes: p.track_bytes,
        }
    }
}

/// The manifest, or `None` before the stream has a segment.
pub fn mpd(ll: &LlHls, m: &Manifest<'_>) -> Option<String> {
    mpd_with(ll, m, None)
}

/// The manifest with a DVR window: the segments [`LlHls::playlist_with`] lists.
pub fn mpd_with(ll: &LlHls, m: &Manifest<'_>, dvr: Option<&Dvr<'_>>) -> Option<String> {
    let mut out = shared_with(ll, m, dvr)?;
    out.push_str(&clock(m.clock_url));
    Some(out)
}

/// [`mpd_with`] up to the `UTCTiming` it ends with, which names the host the player asked
/// ([`clock`]): what every player of the stream shares (`m.clock_url` is not read).
pub fn shared_with(ll: &LlHls, m: &Manifest<'_>, dvr: Option<&Dvr<'_>>) -> Option<String> {
    let epoch = ll.epoch_ms()?;
    let limits = ll.limits();
    let q = m
        .carry
        .map_or(String::new(), |c| xml_attr(&format!("?{c}")));
    let (from_past, unlisted) = ll.listing(dvr);
    let past = ll.past_segments();
    let kept: Vec<&LlSegment> = ll.segments().skip(unlisted).collect();
    let listed: Vec<Listed> = past
        .skip(from_past)
        .map(Listed::past)
        .chain(kept.iter().map(|s| Listed::kept(s)))
        .collect();
    let first = listed.first()?;
    let min_segment = u64::try_from(limits.min_segment.as_millis()).unwrap_or(u64::MAX);
    let part_ms = u64::try_from(limits.part_target.as_millis()).unwrap_or(u64::MAX);
    // What a segment not yet complete is listed as lasting: at least as long as any segment is
    // (the target duration and the half second it may round up from), so that dash.js, which
    // looks for the next segment at the listed end of the last one, lands in the next one.
    let expected = ll.target_duration().as_secs().saturating_mul(1000) + 500;
    let mut durations: Vec<u64> = ll
        .past_segments()
        .skip(from_past)
        .map(|p| u64::try_from(p.duration.as_millis()).unwrap_or(u64::MAX))
        .chain(kept.iter().map(|s| duration_ms(s, expected, part_ms)))
        .collect();
    // Where a listed segment begins on the MPD's timeline (its Period's start plus its place in
    // it).
    let at = |s: &Listed| {
        s.period
            .at_ms
            .saturating_add(s.period_ms.saturating_sub(s.period.origin_ms))
    };
    // How far back the window reaches: from the first listed segment's start to the last one's
    // end, a gap in the media included (a sum of durations would leave it out, and a player
    // would place the window's start after its first segments).
    let last_end = listed.last().map_or(0, |l| {
        at(l).saturating_add(durations.last().copied().unwrap_or(0))
    });
    let depth = last_end.saturating_sub(at(first));
    // While the stream is live, the segment after the open one is listed too (at the open one's
    // expected end): a player asks for it as soon as it has the open one, and the request is held
    // until it begins, instead of waiting for the next manifest to name it.
    // Not when the next one begins a new Period (a new init segment): a player would take it
    // with this Period's init segment.
    let next = listed
        .last()
        .filter(|s| !s.complete && !ll.is_ended() && !ll.period_change_pending())
        .map(|s| Next {
            t: s.period_ms + durations.last().copied().unwrap_or(expected),
        });
    if next.is_some() {
        durations.push(expected);
    }
    let mut out = String::with_capacity(1024 + 64 * listed.len());
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" \
         type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" ",
        rfc3339_ms(epoch),
        rfc3339_ms(m.now_ms),
    );
    if ll.is_ended() {
        let _ = write!(out, "mediaPresentationDuration=\"{}\" ", secs(last_end));
    } else {
        let _ = write!(out, "minimumUpdatePeriod=\"{}\" ", secs(min_segment));
    }
    let _ = writeln!(
        out,
        "timeShiftBufferDepth=\"{}\" maxSegmentDuration=\"{}\" minBufferTime=\"{}\">",
        secs(depth.max(min_segment)),
        secs(expected),
        secs(part_ms),
    );
    let _ = writeln!(
        out,
        "  <ServiceDescription id=\"0\">\n    <Latency referenceId=\"{PRODUCER_REFERENCE_ID}\" target=\"{LATENCY_TARGET_MS}\" \
         min=\"{LATENCY_MIN_MS}\" max=\"{LATENCY_MAX_MS}\"/>\n    \
         <PlaybackRate min=\"0.96\" max=\"1.04\"/>\n  </ServiceDescription>"
    );
    // One Period per run of segments that share their PeriodStart.
    let mut i = 0;
    while i < listed.len() {
        let period = listed[i].period;
        let n = listed[i..]
            .iter()
            .take_while(|s| s.period == period)
            .count();
        let run = &listed[i..i + n];
        // The next segment belongs to the last Period.
        let upcoming = next.filter(|_| i + n == listed.len());
        let ds = &durations[i..(i + n + usize::from(upcoming.is_some())).min(durations.len())];
        period_xml(&mut out, ll, period, run, ds, upcoming, &q, expected);
        i += n;
    }
    Some(out)
}

/// A manifest rendered without a carry ([`shared_with`]), with `carry` written into its URIs as
/// rendering with it would: a text pass over the one shared render, for a signed link's player.
pub fn with_query(shared: &str, carry: &str) -> String {
    let q = xml_attr(&format!("?{carry}"));
    let mut out = String::with_capacity(shared.len() + 8 * q.len());
    let mut rest = shared;
    // Each URI attribute (`initialization="..."`, `media="..."`): the query before its quote.
    while let Some(at) = ["initialization=\"", "media=\""]
        .iter()
        .filter_map(|a| rest.find(a).map(|i| i + a.len()))
        .min()
    {
        let (head, tail) = rest.split_at(at);
        out.push_str(head);
        let end = tail.find('"').unwrap_or(tail.len());
        out.push_str(&tail[..end]);
        out.push_str(&q);
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The end of a manifest whose `UTCTiming` names `clock_url`.
pub fn clock(clock_url: &str) -> String {
    format!(
        "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"{}\"/>\n</MPD>\n",
        xml_attr(clock_url)
    )
}

/// The segment after the open one: its expected start on the Period's timeline.
#[derive(Debug, Clone, Copy)]
struct Next {
    t: u64,
}

/// How long a listed segment lasts: its duration, or for the open one what it is expected to
/// (`expected`, or longer when it already is).
fn duration_ms(s: &LlSegment, expected: u64, part_ms: u64) -> u64 {
    if s.complete {
        return u64::try_from(s.duration.as_millis()).unwrap_or(u64::MAX);
    }
    let played: u64 = s
        .parts
        .iter()
        .filter(|p| p.complete)
        .map(|p| u64::try_from(p.duration.as_millis()).unwrap_or(0))
        .sum();
    (played + part_ms).max(expected)
}

#[allow(clippy::too_many_arguments)]
fn period_xml(
    out: &mut String,
    ll: &LlHls,
    period: PeriodStart,
    run: &[Listed],
    durations: &[u64],
    next: Option<Next>,
    q: &str,
    expected: u64,
) {
    let Some(first) = run.first() else {
        return;
    };
    let Some(init) = ll.init_version(first.init) else {
        return;
    };
    let _ = writeln!(
        out,
        "  <Period id=\"p{}\" start=\"{}\">",
        period.at_ms,
        secs(period.at_ms)
    );
    // The ingest's wall clock at the latest segment of the Period that knows it: what the
    // `ServiceDescription`'s latency is measured against (its `referenceId`), and what lets a
    // player see the publisher's clock drift from the timeline (DVB-DASH 10.20.4).
    let reference = run
        .iter()
        .rev()
        .find_map(|s| s.wall_ms.map(|w| (w, s.period_ms)));
    for (t, track) in init.tracks.iter().enumerate() {
        let Some(track) = track else {
            continue;
        };
        let (id, content, mime) = TRACKS[t];
        // The stream instance's directory (hex digits and `/`: nothing to escape).
        let d = &ll.dir;
        let _ = writeln!(
            out,
            "    <AdaptationSet id=\"{t}\" contentType=\"{content}\" mimeType=\"{mime}\" \
             segmentAlignment=\"true\" startWithSAP=\"1\">"
        );
        if let Some((wall_ms, presentation_ms)) = reference {
            let _ = writeln!(
                out,
                "      <ProducerReferenceTime id=\"{PRODUCER_REFERENCE_ID}\" type=\"encoder\" \
                 wallClockTime=\"{}\" presentationTime=\"{presentation_ms}\"/>",
                rfc3339_ms(wall_ms)
            );
        }
        let _ = writeln!(
            out,
            "      <SegmentTemplate timescale=\"1000\" presentationTimeOffset=\"{}\" startNumber=\"{}\" \
             initialization=\"{d}dash/init-{id}{}.mp4{q}\" media=\"{d}dash/{id}$Number$.m4s{q}\" \
             availabilityTimeOffset=\"{}\" availabilityTimeComplete=\"false\">\n        \
             <SegmentTimeline>",
            period.origin_ms,
            first.msn,
            first.init,
            // A segment is available from half a second before it begins: the request is held
            // until then, and streamed as it is written.
            (expected + 500) as f64 / 1000.0,
        );
        let starts = run.iter().map(|s| s.period_ms).chain(next.map(|n| n.t));
        for (t, d) in starts.zip(durations) {
            let _ = writeln!(out, "          <S t=\"{t}\" d=\"{d}\"/>");
        }
        let _ = write!(
            out,
            "        </SegmentTimeline>\n      </SegmentTemplate>\n      \
             <Representation id=\"{id}\" codecs=\"{}\" bandwidth=\"{}\"",
            xml_attr(&track.codecs),
            bandwidth(run, durations, t),
        );
        let (a, b) = track.shape;
        if t == 0 {
            let _ = writeln!(out, " width=\"{a}\" height=\"{b}\"/>");
        } else {
            let _ = writeln!(
                out,
                " audioSamplingRate=\"{a}\">\n        <AudioChannelConfiguration \
                 schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" \
                 value=\"{b}\"/>\n      </Representation>"
            );
        }
        out.push_str("    </AdaptationSet>\n");
    }
    out.push_str("  </Period>\n");
}

/// Bits per second of track `t` over the complete segments of `run`, which last `durations` ms
/// (1 Mbit/s before one is complete).
fn bandwidth(run: &[Listed], durations: &[u64], t: usize) -> u64 {
    let (bytes, ms) = run
        .iter()
        .zip(durations)
        .filter(|(s, _)| s.complete)
        .fold((0u64, 0u64), |(b, ms), (s, d)| {
            (b.saturating_add(s.track_bytes[t]), ms.saturating_add(*d))
        });
    match ms {
        0 => 1_000_000,
        _ => (bytes * 8 * 1000 / ms).max(1),
    }
}

/// `s` as an XML attribute value (between double quotes).
fn xml_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}
