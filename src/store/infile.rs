//! The files `LOAD DATA LOCAL INFILE` reads from memory (`bulk`): the statement that reads
//! one into a table, and each kind of field written as MySQL reads it back exactly.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// The `LOAD DATA` that replaces `columns` of `table` with a load file's rows: tab-separated,
/// `\` escapes ([`write_text_field`]), one row a line. The separators are hex literals: `'\t'`
/// would be two characters under `NO_BACKSLASH_ESCAPES`.
pub(super) fn statement(table: &str, columns: &str) -> String {
    format!(
        "LOAD DATA LOCAL INFILE 'tickpipe-{table}' REPLACE INTO TABLE {table} \
         CHARACTER SET utf8mb4 FIELDS TERMINATED BY 0x09 ESCAPED BY 0x5C \
         LINES TERMINATED BY 0x0A ({columns})"
    )
}

/// Writes `text` as a field of a load file: its own tabs, newlines and backslashes are data,
/// not separators.
pub(super) fn write_text_field(file: &mut Vec<u8>, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'\\' => file.extend_from_slice(b"\\\\"),
            b'\t' => file.extend_from_slice(b"\\t"),
            b'\n' => file.extend_from_slice(b"\\n"),
            b'\r' => file.extend_from_slice(b"\\r"),
            0 => file.extend_from_slice(b"\\0"),
            other => file.push(other),
        }
    }
}

/// Writes `at` as a field of a load file: `2024-01-02 09:15:00`, with `.000123` when it has
/// microseconds. Digits by hand: `write!` and its formatting were ~3 % of the
/// processor's CPU per row.
pub(super) fn write_datetime(file: &mut Vec<u8>, at: DateTime<Utc>) {
    fn two(file: &mut Vec<u8>, n: u32) {
        file.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
    }
    let year = at.year();
    if (0..=9999).contains(&year) {
        two(file, year as u32 / 100);
        two(file, year as u32 % 100);
    } else {
        // Out of DATETIME's range: MySQL refuses it, as it would refuse the INSERT.
        file.extend_from_slice(year.to_string().as_bytes());
    }
    for (separator, n) in [
        (b'-', at.month()),
        (b'-', at.day()),
        (b' ', at.hour()),
        (b':', at.minute()),
        (b':', at.second()),
    ] {
        file.push(separator);
        two(file, n);
    }
    let micros = at.timestamp_subsec_micros().min(999_999);
    if micros > 0 {
        file.push(b'.');
        two(file, micros / 10_000);
        two(file, micros / 100 % 100);
        two(file, micros % 100);
    }
}

/// Writes `value` as a field of a load file, without trailing zeros after the point
/// (`636.73000000` is `636.73`): the same number, and fewer digits for MySQL to read.
pub(super) fn write_decimal_field(file: &mut Vec<u8>, value: rust_decimal::Decimal) {
    crate::tick::write_fixed_point(file, value.mantissa(), value.scale(), true);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rust_decimal::Decimal;

    #[test]
    fn datetimes_are_written_as_mysql_reads_them() {
        let written = |at: DateTime<Utc>| {
            let mut file = Vec::new();
            write_datetime(&mut file, at);
            String::from_utf8(file).unwrap()
        };
        let mut at = Utc.with_ymd_and_hms(2024, 1, 2, 9, 3, 7).unwrap();
        assert_eq!(written(at), "2024-01-02 09:03:07");
        // Against chrono's own formatting, over years, months and microseconds.
        for step in 0..5_000i64 {
            at += chrono::TimeDelta::microseconds(step * 7_919_000_003 + 1);
            let expected = if at.timestamp_subsec_micros() == 0 {
                at.format("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
            };
            assert_eq!(written(at), expected);
        }
        let early = Utc.with_ymd_and_hms(12, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(written(early), "0012-12-31 23:59:59");
    }

    #[test]
    fn decimals_lose_only_their_trailing_zeros() {
        let written = |text: &str| {
            let mut file = b"x".to_vec();
            write_decimal_field(&mut file, text.parse::<Decimal>().unwrap());
            String::from_utf8(file[1..].to_vec()).unwrap()
        };
        for (value, expected) in [
            ("636.73000000", "636.73"),
            ("100.00000000", "100"),
            ("100", "100"),
            ("-0.50", "-0.5"),
            ("0.00000000", "0"),
            ("0.00000001", "0.00000001"),
            ("1200", "1200"),
        ] {
            assert_eq!(written(value), expected, "{value}");
            assert_eq!(
                expected.parse::<Decimal>().unwrap(),
                value.parse::<Decimal>().unwrap()
            );
        }
    }
}
