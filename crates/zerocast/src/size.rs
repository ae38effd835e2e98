//! Human byte sizes: `20MiB`, `1GB`, `512k`, `1048576`.

/// [`parse`], for how many bytes to fetch: at least one.
pub fn parse_some(s: &str) -> Result<u64, String> {
    match parse(s)? {
        0 => Err(format!("'{s}' is no bytes: ask for at least one")),
        n => Ok(n),
    }
}

/// Parses a size. Decimal units are powers of 1000 (`k`, `KB`, `MB`, `GB`, `TB`), binary units
/// powers of 1024 (`KiB`, `MiB`, `GiB`, `TiB`); a bare number is bytes.
pub fn parse(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 20MiB, 1GB, 1048576)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        "t" | "tb" => 1000u64.pow(4),
        "tib" => 1 << 40,
        u => {
            return Err(format!(
                "unknown size unit '{u}' in '{s}' (use B, KB, KiB, MB, MiB, GB, GiB)"
            ))
        }
    };
    let v = n * mult as f64;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(v.round() as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse("20MiB").unwrap(), 20 << 20);
        assert_eq!(super::parse("1GB").unwrap(), 1_000_000_000);
        assert_eq!(super::parse("1.5KiB").unwrap(), 1536);
        assert_eq!(super::parse("4096").unwrap(), 4096);
        assert!(super::parse("20 parsecs").is_err());
        assert!(super::parse("").is_err());
    }

    #[test]
    fn a_size_to_fetch_is_at_least_one_byte() {
        assert_eq!(super::parse_some("1").unwrap(), 1);
        for none in ["0", "0.4", "0KiB"] {
            let e = super::parse_some(none).unwrap_err();
            assert!(e.contains("ask for at least one"), "{none}: {e}");
        }
    }
}
