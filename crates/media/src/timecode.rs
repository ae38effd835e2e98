//! Time strings a person or a player types, to exact [`MediaTime`]s and back.
//!
//! | form            | example         | meaning                                                      |
//! |-----------------|-----------------|--------------------------------------------------------------|
//! | `HH:MM:SS:FF`   | `01:09:14:28`   | SMPTE non-drop: frame `(h*3600+m*60+s)*N+f` at the real rate  |
//! | `HH:MM:SS;FF`   | `01:09:14;28`   | SMPTE 12M drop-frame (29.97 and 59.94 only)                   |
//! | `HH:MM:SS.mmm`  | `01:09:14.933`  | wall-clock hours, minutes, seconds and a decimal fraction    |
//! | `MM:SS[.mmm]`   | `09:14.5`       | the same without hours                                        |
//! | seconds         | `4154.93`       | decimal seconds                                               |
//! | units           | `1h9m14s`       | hours, minutes, seconds (seconds may have a fraction)        |
//!
//! `N` is the nominal frame count per second (30 for 29.97). A frame-count timecode turns into time
//! through the title's real rate: at 30000/1001, non-drop `00:01:00:00` is frame 1800, 60.06 s,
//! while drop-frame `00:01:00;02` is frame 1800 too (frames `;00` and `;01` do not exist at minutes
//! not divisible by ten).

use crate::error::{Error, Result};
use crate::time::{FrameRate, MediaTime};

const FORMS: &str =
    "expected HH:MM:SS:FF, HH:MM:SS;FF (drop-frame), HH:MM:SS.mmm, seconds (4154.93) or 1h9m14s";

fn bad(input: &str, why: impl std::fmt::Display) -> Error {
    Error::Timecode(format!("malformed time '{input}': {why}"))
}

fn int(input: &str, field: &str, what: &str) -> Result<u64> {
    if field.is_empty() || field.len() > 9 || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            input,
            format!("{what} '{field}' is not a number; {FORMS}"),
        ));
    }
    field.parse().map_err(|_| bad(input, FORMS))
}

/// Parses `I[.F]` decimal seconds into an exact time (at most 9 fractional digits).
fn decimal(input: &str, field: &str) -> Result<MediaTime> {
    let (i, f) = field.split_once('.').unwrap_or((field, ""));
    let whole = int(input, i, "seconds")?;
    if f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(input, format!("fraction '{f}' is not 1-9 digits")));
    }
    let scale = 10u64.pow(f.len() as u32);
    let frac = if f.is_empty() {
        0
    } else {
        int(input, f, "fraction")?
    };
    let ticks = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(frac))
        .filter(|t| *t <= i64::MAX as u64)
        .ok_or_else(|| bad(input, "too large"))?;
    Ok(MediaTime::new(ticks as i64, scale as u32))
}

fn below(input: &str, v: u64, limit: u64, what: &str) -> Result<u64> {
    if v >= limit {
        return Err(bad(
            input,
            format!("{what} {v} out of range (0-{})", limit - 1),
        ));
    }
    Ok(v)
}

/// Parses any supported form. `rate` is the title's frame rate, needed only for the frame forms.
pub fn parse(input: &str, rate: Option<FrameRate>) -> Result<MediaTime> {
    let s = input.trim();
    if s.is_empty() {
        return Err(bad(input, format!("empty; {FORMS}")));
    }
    if s.starts_with('-') {
        return Err(bad(input, "negative times do not exist"));
    }
    if s.bytes().any(|b| b.is_ascii_alphabetic()) {
        return units(input, s);
    }
    let drop = s.contains(';');
    let fields: Vec<&str> = s.split([':', ';']).collect();
    if drop && (s.matches(';').count() != 1 || !s.rsplit(':').next().unwrap_or("").contains(';')) {
        return Err(bad(
            input,
            "';' may only separate the frames in HH:MM:SS;FF",
        ));
    }
    match fields.len() {
        1 => decimal(input, s),
        // MM:SS[.mmm] (minutes unbounded) or HH:MM:SS[.mmm] (minutes below 60).
        2 => clock(input, 0, int(input, fields[0], "minutes")?, fields[1]),
        3 => {
            let h = int(input, fields[0], "hours")?;
            let m = below(input, int(input, fields[1], "minutes")?, 60, "minutes")?;
            clock(input, h, m, fields[2])
        }
        4 => frames(input, &fields, drop, rate),
        _ => Err(bad(input, FORMS)),
    }
}

/// Hours, minutes and a decimal seconds field (below 60) as one time.
fn clock(input: &str, h: u64, m: u64, secs: &str) -> Result<MediaTime> {
    let secs = decimal(input, secs)?;
    below(
        input,
        secs.ticks as u64 / u64::from(secs.scale),
        60,
        "seconds",
    )?;
    let whole = h
        .checked_mul(3600)
        .and_then(|x| x.checked_add(m.checked_mul(60)?))
        .ok_or_else(|| bad(input, "too large"))?;
    add_whole_seconds(input, secs, whole)
}

fn add_whole_seconds(input: &str, t: MediaTime, secs: u64) -> Result<MediaTime> {
    let extra = secs
        .checked_mul(u64::from(t.scale))
        .and_then(|e| i64::try_from(e).ok())
        .and_then(|e| e.checked_add(t.ticks))
        .ok_or_else(|| bad(input, "too large"))?;
    Ok(MediaTime::new(extra, t.scale))
}

fn frames(input: &str, f: &[&str], drop: bool, rate: Option<FrameRate>) -> Result<MediaTime> {
    let rate = rate.ok_or_else(|| {
        Error::Timecode(format!(
            "timecode '{input}' counts frames but this title has no known frame rate; give seconds instead"
        ))
    })?;
    let n = u64::from(rate.nominal());
    let h = int(input, f[0], "hours")?;
    let m = below(input, int(input, f[1], "minutes")?, 60, "minutes")?;
    let s = below(input, int(input, f[2], "seconds")?, 60, "seconds")?;
    let ff = int(input, f[3], "frames")?;
    if ff >= n {
        return Err(bad(
            input,
            format!("frame {ff} out of range for {rate} fps (0-{})", n - 1),
        ));
    }
    // Hours reach 10^9 and a rate up to 10,000 fps: checked throughout.
    let mut frame = h
        .checked_mul(3600)
        .and_then(|x| x.checked_add(m * 60 + s))
        .and_then(|x| x.checked_mul(n))
        .and_then(|x| x.checked_add(ff))
        .ok_or_else(|| bad(input, "too large"))?;
    if drop {
        let d = u64::from(rate.drop_frames().ok_or_else(|| {
            Error::Timecode(format!(
                "drop-frame timecode '{input}' needs a 29.97 or 59.94 fps title; this one is {rate} fps (use ':' before the frames)"
            ))
        })?);
        if s == 0 && ff < d && m % 10 != 0 {
            return Err(bad(
                input,
                format!(
                    "frames 00-{:02} do not exist at the start of minute {m} in drop-frame",
                    d - 1
                ),
            ));
        }
        let minutes = h * 60 + m;
        frame -= d * (minutes - minutes / 10);
    }
    Ok(rate.frame_time(frame))
}

fn units(input: &str, s: &str) -> Result<MediaTime> {
    let mut total = MediaTime::ZERO;
    let mut rest = s;
    let mut seen = String::new();
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| c.is_ascii_alphabetic())
            .ok_or_else(|| bad(input, format!("number without a unit (h, m or s); {FORMS}")))?;
        let (num, tail) = rest.split_at(end);
        let unit = tail.chars().next().unwrap_or('?');
        rest = &tail[unit.len_utf8()..];
        if seen.contains(unit) {
            return Err(bad(input, format!("unit '{unit}' given twice")));
        }
        seen.push(unit);
        let mult = match unit {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            other => return Err(bad(input, format!("unknown unit '{other}'; {FORMS}"))),
        };
        let v = if unit == 's' {
            decimal(input, num)?
        } else {
            MediaTime::new(int(input, num, "count")? as i64, 1)
        };
        let v = MediaTime::new(
            v.ticks
                .checked_mul(mult)
                .ok_or_else(|| bad(input, "too large"))?,
            v.scale,
        );
        // Common scale: the finer of the two (both are powers of ten or 1).
        let scale = total.scale.max(v.scale);
        let sum = total
            .rescale(scale)
            .checked_add(v.rescale(scale))
            .ok_or_else(|| bad(input, "too large"))?;
        total = MediaTime::new(sum, scale);
    }
    Ok(total)
}

/// Formats `t` as `HH:MM:SS:FF` at `rate`, or as drop-frame `HH:MM:SS;FF` for 29.97/59.94.
pub fn format(t: MediaTime, rate: FrameRate) -> String {
    let n = u64::from(rate.nominal());
    let mut frame = rate.frame_at(t);
    let sep = match rate.drop_frames() {
        Some(d) => {
            let d = u64::from(d);
            let per_10min = n * 600 - d * 9;
            let per_min = n * 60 - d;
            let tens = frame / per_10min;
            let rem = frame % per_10min;
            frame += d * 9 * tens;
            if rem > d {
                frame += d * ((rem - d) / per_min);
            }
            ';'
        }
        None => ':',
    };
    let ff = frame % n;
    let secs = frame / n;
    format!(
        "{:02}:{:02}:{:02}{sep}{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        ff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NTSC: FrameRate = FrameRate {
        num: 30000,
        den: 1001,
    };
    const FILM: FrameRate = FrameRate { num: 24, den: 1 };

    fn secs(s: &str, r: FrameRate) -> f64 {
        parse(s, Some(r)).unwrap().as_secs_f64()
    }

    #[test]
    fn every_form() {
        assert_eq!(secs("01:09:14:12", FILM), 4154.5);
        assert_eq!(secs("4154.93", FILM), 4154.93);
        assert_eq!(secs("01:09:14.930", FILM), 4154.93);
        assert_eq!(secs("1h9m14s", FILM), 4154.0);
        assert_eq!(secs("1h9m14.5s", FILM), 4154.5);
        assert_eq!(secs("90s", FILM), 90.0);
        assert_eq!(secs("09:14.5", FILM), 554.5);
        assert_eq!(secs("00:00:00:00", NTSC), 0.0);
    }

    #[test]
    fn a_frame_count_too_large_for_the_rate_is_an_error_not_an_overflow() {
        let fast = FrameRate {
            num: u32::MAX,
            den: 1,
        };
        let e = parse("999999999:00:00:00", Some(fast)).unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
        // A title cannot state such a rate: it has none.
        assert_eq!(FrameRate::from_frame_duration(1_000_000_000, 1), None);
        assert!(FrameRate::from_frame_duration(10_000, 1).is_some());
    }

    #[test]
    fn non_drop_counts_frames_at_the_real_rate() {
        // Frame 1800 at 29.97 fps is 60.06 s.
        let t = parse("00:01:00:00", Some(NTSC)).unwrap();
        assert_eq!(t, MediaTime::new(1800 * 1001, 30000));
    }

    #[test]
    fn drop_frame_smpte_12m() {
        // 00:01:00;02 is the frame right after 00:00:59;29 (frame 1799).
        assert_eq!(
            parse("00:01:00;02", Some(NTSC)).unwrap(),
            NTSC.frame_time(1800)
        );
        // Ten minutes are exactly 17982 frames.
        assert_eq!(
            parse("00:10:00;00", Some(NTSC)).unwrap(),
            NTSC.frame_time(17982)
        );
        // One hour of drop-frame is 107892 frames, 3600.0036 s: within a frame of real time.
        let hour = parse("01:00:00;00", Some(NTSC)).unwrap();
        assert_eq!(hour, NTSC.frame_time(107_892));
        assert!((hour.as_secs_f64() - 3600.0).abs() < 0.01);
        let e = parse("00:01:00;01", Some(NTSC)).unwrap_err().to_string();
        assert!(e.contains("do not exist"), "{e}");
        assert!(parse("00:10:00;00", Some(NTSC)).is_ok());
        let e = parse("00:00:01;00", Some(FILM)).unwrap_err().to_string();
        assert!(e.contains("29.97"), "{e}");
    }

    #[test]
    fn formats_round_trip() {
        for frame in [0u64, 1, 1799, 1800, 1801, 17981, 17982, 107_891, 123_456] {
            let t = NTSC.frame_time(frame);
            let s = format(t, NTSC);
            assert_eq!(parse(&s, Some(NTSC)).unwrap(), t, "{frame} -> {s}");
            let t = FILM.frame_time(frame);
            let s = format(t, FILM);
            assert_eq!(parse(&s, Some(FILM)).unwrap(), t, "{frame} -> {s}");
        }
        assert_eq!(format(NTSC.frame_time(1800), NTSC), "00:01:00;02");
        assert_eq!(format(MediaTime::new(4154, 1), FILM), "01:09:14:00");
    }

    #[test]
    fn malformed_input_says_why() {
        for (s, why) in [
            ("", "empty"),
            ("abc", "unknown unit"),
            ("01:61:00:00", "minutes 61"),
            ("00:00:00:24", "frame 24 out of range"),
            ("-5", "negative"),
            ("1:2:3:4:5", "expected"),
            ("12..5", "fraction"),
            ("5x", "unknown unit"),
            ("1h1h", "twice"),
            ("99999999999999999999", "not a number"),
            ("00:00;00:00", "';'"),
        ] {
            let e = parse(s, Some(FILM)).unwrap_err().to_string();
            assert!(e.contains(why), "{s}: {e}");
        }
        let e = parse("00:00:01:00", None).unwrap_err().to_string();
        assert!(e.contains("no known frame rate"), "{e}");
    }

    #[test]
    fn random_strings_never_panic() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = b"0123456789:;.hms -x";
        for _ in 0..20_000 {
            let len = rng.usize(0..16);
            let s: String = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())] as char)
                .collect();
            let _ = parse(&s, Some(NTSC));
        }
    }
}
