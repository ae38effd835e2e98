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

#[cfg(test)]
mod tests {
    use super::*;

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
