//! Numbers and times read exactly from text: decimals that never pass through a float,
//! whole volumes, timestamps with or without an offset; and decimals written as text for
//! MySQL, fast (the batch and rollup writes format ten million of them a minute).

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::AmbiguousTimes;

pub(super) fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Appends `value` as `Decimal`'s `Display` writes it (`-1520.50`, `0.0001`), several times
/// faster: its mantissa's digits with the point put in.
pub fn write_decimal(out: &mut Vec<u8>, value: Decimal) {
    write_fixed_point(out, value.mantissa(), value.scale(), false);
}

/// Appends `mantissa` × 10^-`scale` as plain decimal text; `trimmed`: without the zeros that
/// end its fraction (`636.73` for `636.73000000`, `100` for `100.00000000`): the same number,
/// in fewer digits for MySQL to read. Takes an `i128` so that sums wider than a `Decimal`
/// (volume sums) are written the same way.
pub fn write_fixed_point(out: &mut Vec<u8>, mantissa: i128, scale: u32, trimmed: bool) {
    let mut buffer = itoa::Buffer::new();
    let mut digits = buffer.format(mantissa.unsigned_abs()).as_bytes();
    let mut scale = scale as usize;
    if trimmed {
        if mantissa == 0 {
            out.push(b'0');
            return;
        }
        while scale > 0 && digits.last() == Some(&b'0') {
            digits = &digits[..digits.len() - 1];
            scale -= 1;
        }
    }
    if mantissa < 0 {
        out.push(b'-');
    }
    if digits.len() <= scale {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits);
    } else {
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(whole);
        if scale > 0 {
            out.push(b'.');
            out.extend_from_slice(fraction);
        }
    }
}

/// [`write_decimal`] into a new string.
pub fn decimal_text(value: Decimal) -> String {
    let mut out = Vec::with_capacity(24);
    write_decimal(&mut out, value);
    String::from_utf8(out).expect("digits, a sign and a point are ASCII")
}

/// Parses a decimal exactly: `1520.50`, `1e3` and `+7` are accepted; `NaN`, `inf`, `0x10` and
/// anything a float would round are not.
pub fn parse_decimal(text: &str) -> Result<Decimal, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty number".into());
    }
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        Decimal::from_str_exact(text)
    };
    parsed.map_err(|_| {
        let shown = shorten(text);
        let numeric = text
            .trim_start_matches(['+', '-'])
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.');
        if numeric && text.matches('.').count() <= 1 {
            format!("{shown:?} has too many digits")
        } else {
            format!("{shown:?} is not a decimal number")
        }
    })
}

/// A value as shown in a reason: long ones are cut (a reason must stay readable).
pub fn shorten(text: &str) -> String {
    const SHOWN: usize = 40;
    if text.chars().count() <= SHOWN {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(SHOWN).collect::<String>())
    }
}

/// A JSON number as the text it was written as. A JSON number is read as an f64 when it has
/// a fraction or an exponent, which keeps about 15 significant digits: more would be silently
/// rounded, so such a number is refused.
pub(super) fn number_text(n: &serde_json::Number) -> Result<String, String> {
    let text = n.to_string();
    let digits = text
        .chars()
        .take_while(|c| *c != 'e' && *c != 'E')
        .filter(char::is_ascii_digit)
        .count();
    if n.is_f64() && digits > 15 {
        return Err(format!(
            "number {text} has more digits than a JSON number keeps exactly; send prices as strings"
        ));
    }
    Ok(text)
}

/// Reads a volume: shares (`1200`, `1200.0`) or a crypto base volume (`12.34567800`).
pub fn parse_volume(text: &str) -> Result<Decimal, String> {
    parse_decimal(text).map_err(|e| format!("volume: {e}"))
}

/// Reads a timestamp: RFC 3339 with an offset (`T` or a space between date and time); Unix
/// time in seconds (10 digits), milliseconds (13: Binance klines) or microseconds (16: Binance
/// spot klines since 2025); or a date and time without an
/// offset, read in `zone` — `2024-01-02 09:15:00`, `2024/01/02 09:15`, Stooq's
/// `20240102 091500` — or a date alone (the day's start).
///
/// A local time that happens twice (the hour repeated when clocks go back) follows
/// `ambiguous`: refused with a reason unless told which of the two it is.
pub fn parse_timestamp(
    text: &str,
    zone: Tz,
    ambiguous: AmbiguousTimes,
) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    // Ten digits that read as a date and hour (2024010215) are not taken for Unix seconds.
    if text.len() == 10
        && text.bytes().all(|b| b.is_ascii_digit())
        && NaiveDateTime::parse_from_str(&format!("{text}0000"), "%Y%m%d%H%M%S").is_ok()
        && (text.starts_with("19") || text.starts_with("20"))
    {
        return Err(format!(
            "timestamp {text:?} could be Unix seconds or a date and hour: write it with separators"
        ));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) && matches!(text.len(), 10 | 13 | 16) {
        let number: i64 = text
            .parse()
            .map_err(|_| format!("timestamp {text:?} is too large"))?;
        let at = match text.len() {
            10 => DateTime::from_timestamp(number, 0),
            13 => DateTime::from_timestamp_millis(number),
            _ => DateTime::from_timestamp_micros(number),
        };
        return at.ok_or_else(|| format!("timestamp {text:?} is out of range"));
    }
    const NAIVE: [&str; 12] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y/%m/%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
        "%Y%m%d %H%M%S",
        "%Y%m%d %H:%M:%S",
        "%d.%m.%Y %H:%M:%S",
        "%d.%m.%Y %H:%M",
        "%d-%b-%Y %H:%M:%S",
        "%d-%b-%Y %H:%M",
    ];
    // A date alone names a trading day: its bar is that UTC day's, whatever the zone.
    const DATES: [&str; 6] = [
        "%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%d.%m.%Y", "%d-%b-%Y", "%d %b %Y",
    ];
    if let Some(day) = DATES
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(text, f).ok())
    {
        return Ok(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    let naive = NAIVE
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .ok_or_else(|| {
            let shown = shorten(text);
            format!("timestamp {shown:?} is not a date and time (e.g. 2024-01-02 09:15:00)")
        })?;
    match zone.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(first, second) => match ambiguous {
            AmbiguousTimes::Refuse => Err(format!(
                "timestamp {text:?} happens twice in {zone} (clocks went back): it is {} or {}; \
                 give an offset, or set ingest.ambiguous_times = \"earlier\" or \"later\"",
                first.with_timezone(&Utc).format("%H:%M UTC"),
                second.with_timezone(&Utc).format("%H:%M UTC"),
            )),
            AmbiguousTimes::Earlier => Ok(first.with_timezone(&Utc)),
            AmbiguousTimes::Later => Ok(second.with_timezone(&Utc)),
        },
        chrono::LocalResult::None => Err(format!("timestamp {text:?} does not exist in {zone}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_as_display_writes_them() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut values = vec![
            Decimal::ZERO,
            Decimal::MAX,
            Decimal::MIN,
            Decimal::new(5, 28),
            Decimal::new(-152050, 2),
            Decimal::new(1, 0),
            Decimal::new(100, 0),
        ];
        for _ in 0..100_000 {
            let mantissa = rng.random::<i128>() >> rng.random_range(32..=127);
            values.push(Decimal::from_i128_with_scale(
                mantissa,
                rng.random_range(0..=28),
            ));
        }
        for value in values {
            let mut out = Vec::new();
            write_decimal(&mut out, value);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                value.to_string(),
                "{value:?}"
            );
        }
    }

    #[test]
    fn trimmed_decimals_are_the_normalized_display() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut values = vec![
            Decimal::ZERO,
            Decimal::new(0, 8),
            Decimal::new(-0, 3),
            Decimal::new(63673000000, 8),
            Decimal::new(10000000000, 8),
            Decimal::new(-50000000, 8),
        ];
        for _ in 0..100_000 {
            let mantissa = rng.random::<i128>() >> rng.random_range(32..=127);
            // Trailing zeros in the mantissa, as stored decimals have them.
            let mantissa = mantissa / 10i128.pow(rng.random_range(0..=4))
                * 10i128.pow(rng.random_range(0..=4));
            if let Ok(value) = Decimal::try_from_i128_with_scale(mantissa, rng.random_range(0..=28))
            {
                values.push(value);
            }
        }
        for value in values {
            let mut out = Vec::new();
            write_fixed_point(&mut out, value.mantissa(), value.scale(), true);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                value.normalize().to_string(),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_repeated_local_hour_is_refused_or_resolved_as_told() {
        let zone = chrono_tz::America::New_York;
        // 2024-11-03 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
        let reason =
            parse_timestamp("2024-11-03 01:30:00", zone, AmbiguousTimes::Refuse).unwrap_err();
        assert!(
            reason.contains("happens twice") && reason.contains("05:30 UTC or 06:30 UTC"),
            "{reason}"
        );
        let at = |policy| {
            parse_timestamp("2024-11-03 01:30:00", zone, policy)
                .unwrap()
                .to_rfc3339()
        };
        assert_eq!(at(AmbiguousTimes::Earlier), "2024-11-03T05:30:00+00:00");
        assert_eq!(at(AmbiguousTimes::Later), "2024-11-03T06:30:00+00:00");
        // With an offset there is nothing to guess; an hour skipped in spring does not exist.
        let with_offset =
            parse_timestamp("2024-11-03T01:30:00-05:00", zone, AmbiguousTimes::Refuse).unwrap();
        assert_eq!(with_offset.to_rfc3339(), "2024-11-03T06:30:00+00:00");
        assert!(
            parse_timestamp("2024-03-10 02:30:00", zone, AmbiguousTimes::Earlier)
                .unwrap_err()
                .contains("does not exist")
        );
    }

    #[test]
    fn times_people_write_are_read() {
        let utc = |text: &str| {
            parse_timestamp(text, chrono_tz::UTC, AmbiguousTimes::Refuse)
                .unwrap()
                .to_rfc3339()
        };
        assert_eq!(utc("1704186900"), "2024-01-02T09:15:00+00:00");
        assert_eq!(utc("1704186900000"), "2024-01-02T09:15:00+00:00");
        assert_eq!(utc("1735689600000000"), "2025-01-01T00:00:00+00:00");
        assert_eq!(utc("20240102 091500"), "2024-01-02T09:15:00+00:00");
        assert_eq!(utc("20240102"), "2024-01-02T00:00:00+00:00");
        assert_eq!(utc("02.01.2024"), "2024-01-02T00:00:00+00:00");
        assert_eq!(utc("02-Jan-2024"), "2024-01-02T00:00:00+00:00");
        assert_eq!(utc("02.01.2024 09:15"), "2024-01-02T09:15:00+00:00");
        // A date alone is the UTC day, whatever the zone.
        let kolkata = parse_timestamp(
            "2024-01-02",
            chrono_tz::Asia::Kolkata,
            AmbiguousTimes::Refuse,
        );
        assert_eq!(kolkata.unwrap().to_rfc3339(), "2024-01-02T00:00:00+00:00");
        // Ten digits that read as a date and hour are not guessed.
        assert!(
            parse_timestamp("2024010215", chrono_tz::UTC, AmbiguousTimes::Refuse)
                .unwrap_err()
                .contains("write it with separators")
        );
        assert_eq!(
            utc("2015-02-02 09:15:00+05:30"),
            "2015-02-02T03:45:00+00:00"
        );
    }
}
