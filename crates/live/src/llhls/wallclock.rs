//! Wall-clock times as LL-HLS writes them: NTP timestamps (what the ingest stamps, and what `prft`
//! carries) to Unix milliseconds, and those to RFC 3339 (`EXT-X-PROGRAM-DATE-TIME`).

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_SECS: u64 = 2_208_988_800;

/// Unix milliseconds of an NTP timestamp (32.32 fixed point); `None` before 1970.
pub fn ntp_to_unix_ms(ntp: u64) -> Option<u64> {
    let secs = (ntp >> 32).checked_sub(NTP_UNIX_SECS)?;
    let ms = ((ntp & 0xffff_ffff) * 1000) >> 32;
    Some(secs * 1000 + ms)
}

/// `2026-11-26T05:01:02.345Z` for a time in Unix milliseconds (the proleptic Gregorian calendar,
/// UTC; days to a civil date after H. Hinnant's `civil_from_days`).
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let days = unix_ms / 86_400_000;
    let rem = unix_ms % 86_400_000;
    let (h, m, s, ms) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    // Days since 0000-03-01, in 400-year eras of 146,097 days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

/// Unix milliseconds of `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC only, as [`rfc3339_ms`] writes it and
/// as a user types a wall-clock time); `None` for anything else or a time before 1970.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter().try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
        || !matches!(b[b.len() - 1], b'Z' | b'z')
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, m, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let ms = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            let n = digits(20..19 + frac.len() + 1)?;
            // To milliseconds: the first three digits.
            let scale = 10u64.pow(frac.len() as u32);
            n * 1000 / scale
        }
        _ => return None,
    };
    let days_in = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let max_day = if month == 2 && leap {
        29
    } else {
        *days_in.get(month.checked_sub(1)? as usize)?
    };
    if year < 1970 || day == 0 || day > max_day || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    // Days from the civil date (H. Hinnant's `days_from_civil`), years counted from March.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(((days * 24 + h) * 60 + m) * 60_000 + sec * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_times_parse_back_and_malformed_ones_do_not() {
        for ms in [0, 951_782_400_000, 1_795_741_262_345, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)), Some(ms), "{ms}");
        }
        assert_eq!(
            parse_rfc3339_ms("2026-11-25T20:15:00Z"),
            Some(1_795_637_700_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-25T20:15:00.5Z"),
            Some(1_795_637_700_500)
        );
        for bad in [
            "",
            "2026-11-25",
            "2026-11-25T20:15:00",
            "2026-11-25T20:15:00+01:00",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-11-25T20:15:00.Z",
            "2026-11-25T20:15:0xZ",
            "+026-11-25T20:15:00Z",
            "2026-11-25T20:15:00.1234567890Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn dates_are_written_in_utc_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        // `date -u -d @1795741262.345 +%FT%T.%3NZ`
        assert_eq!(rfc3339_ms(1_795_741_262_345), "2026-11-27T01:01:02.345Z");
        // A leap day and the turn of a century that is not a leap year.
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(u64::MAX / 4).len(), 24 + 5);
    }

    #[test]
    fn an_ntp_time_is_unix_time_moved_by_seventy_years() {
        let ntp = (NTP_UNIX_SECS + 10) << 32 | (1 << 31);
        assert_eq!(ntp_to_unix_ms(ntp), Some(10_500));
        assert_eq!(ntp_to_unix_ms(5 << 32), None);
    }
}
