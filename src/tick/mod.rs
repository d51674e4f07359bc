//! The domain record: one OHLCV bar for one symbol ([`Tick`]) and its validation; its Kafka
//! message form (`wire`), the record of what was refused (`reject`), and the exact reading of
//! numbers and times from text (`text`). One definition, used by every stage.

mod reject;
mod text;
mod wire;

pub use reject::Reject;
pub use text::{
    decimal_text, parse_decimal, parse_timestamp, parse_volume, shorten, write_decimal,
    write_fixed_point,
};

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Longest symbol the store accepts (`Bank_Name VARCHAR(64)`).
pub const MAX_SYMBOL_CHARS: usize = 64;
/// Prices are stored as DECIMAL(22,8): equity feeds print 6 decimals, crypto feeds 8.
pub const PRICE_SCALE: u32 = 8;
const PRICE_INTEGER_DIGITS: u32 = 14;
/// Volumes are stored as DECIMAL(28,8): shares are whole, crypto base volumes have 8 places.
pub const VOLUME_SCALE: u32 = 8;
const VOLUME_INTEGER_DIGITS: u32 = 20;
/// Largest close × volume a row may have (10^20, five orders of magnitude above any real
/// bar's traded value in any currency): rollups sum turnovers per minute and per session, and
/// this bound keeps those sums far inside what a decimal holds.
pub const MAX_ROW_TURNOVER: Decimal =
    Decimal::from_parts(1_661_992_960, 1_808_227_885, 5, false, 0);

/// What to do with a price or volume of more decimal places than are stored ([`PRICE_SCALE`],
/// [`VOLUME_SCALE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExcessDecimals {
    /// Quarantine the record with the reason.
    #[default]
    Refuse,
    /// Round to the stored places, half to even (counted).
    Round,
}

/// What to do with a local time (no offset) that happens twice in the source zone: the hour
/// repeated when clocks go back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmbiguousTimes {
    /// Quarantine the record with the reason: two real rows are never written onto one.
    #[default]
    Refuse,
    /// The first of the two (before the clocks went back).
    Earlier,
    /// The second of the two.
    Later,
}

/// How input text becomes a tick: the zone of times written without an offset, and the
/// policies for times that happen twice there and for prices with more decimal places than
/// are stored.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    pub zone: Tz,
    pub ambiguous_times: AmbiguousTimes,
    pub excess_decimals: ExcessDecimals,
}

impl From<Tz> for Reading {
    /// Times in `zone`; ambiguous times and excess decimals refused.
    fn from(zone: Tz) -> Self {
        Reading {
            zone,
            ambiguous_times: AmbiguousTimes::Refuse,
            excess_decimals: ExcessDecimals::Refuse,
        }
    }
}

/// One OHLCV bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    pub timestamp: DateTime<Utc>,
    pub symbol: String,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    /// Shares, contracts or coins: whole for equities, up to 8 decimal places for crypto.
    pub volume: Decimal,
    /// Where the record came from: `file:line` for CSV input.
    pub source: String,
    /// Producer clock when it was sent, microseconds since the Unix epoch.
    pub produced_at: i64,
}

impl Tick {
    /// Checks the record against the rules every stored row obeys; the error is the reason
    /// recorded with a quarantined record.
    pub fn validate(&self) -> Result<(), String> {
        // What DATETIME stores; outside it MySQL would refuse the whole batch.
        let year = self.timestamp.year();
        if !(1000..=9999).contains(&year) {
            return Err(format!(
                "timestamp {} is outside the years 1000-9999",
                self.timestamp
            ));
        }
        if self.timestamp.nanosecond() >= 1_000_000_000 {
            return Err("timestamp is a leap second, which MySQL cannot store".into());
        }
        check_symbol(&self.symbol)?;
        for (name, price) in self.prices() {
            if price <= Decimal::ZERO {
                return Err(format!("{name} {price} is not a positive price"));
            }
            check_digits(name, price, PRICE_INTEGER_DIGITS, PRICE_SCALE)?;
        }
        if self.low > self.high {
            return Err(format!("low {} is above high {}", self.low, self.high));
        }
        for (name, price) in [("open", self.open), ("close", self.close)] {
            if price < self.low || price > self.high {
                return Err(format!(
                    "{name} {price} is outside low {} .. high {}",
                    self.low, self.high
                ));
            }
        }
        if self.volume.is_sign_negative() && !self.volume.is_zero() {
            return Err(format!("volume {} is negative", self.volume));
        }
        check_digits("volume", self.volume, VOLUME_INTEGER_DIGITS, VOLUME_SCALE)?;
        match self.close.checked_mul(self.volume) {
            Some(turnover) if turnover <= MAX_ROW_TURNOVER => {}
            _ => {
                return Err(format!(
                    "close {} × volume {} is beyond the largest turnover a row may have (1e20)",
                    self.close, self.volume
                ));
            }
        }
        Ok(())
    }

    /// Applies `policy` to prices and a volume with more decimal places than are stored
    /// (trailing zeros do not count): `Ok(true)` when some were rounded, the reason when refused.
    pub fn fit_decimals(&mut self, policy: ExcessDecimals) -> Result<bool, String> {
        let mut rounded = false;
        for (name, value, scale) in [
            ("open", &mut self.open, PRICE_SCALE),
            ("high", &mut self.high, PRICE_SCALE),
            ("low", &mut self.low, PRICE_SCALE),
            ("close", &mut self.close, PRICE_SCALE),
            ("volume", &mut self.volume, VOLUME_SCALE),
        ] {
            if value.scale() <= scale || value.normalize().scale() <= scale {
                continue;
            }
            match policy {
                ExcessDecimals::Refuse => {
                    return Err(format!(
                        "{name} {value} has more than {scale} decimal places \
                         (ingest.excess_decimals = \"round\" rounds them)"
                    ));
                }
                ExcessDecimals::Round => {
                    *value =
                        value.round_dp_with_strategy(scale, RoundingStrategy::MidpointNearestEven);
                    rounded = true;
                }
            }
        }
        Ok(rounded)
    }

    fn prices(&self) -> [(&'static str, Decimal); 4] {
        [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
        ]
    }
}

/// A stored number has at most `scale` decimal places (trailing zeros do not count) and fewer
/// than `integer_digits` digits before the point: what its DECIMAL column holds.
fn check_digits(name: &str, value: Decimal, integer_digits: u32, scale: u32) -> Result<(), String> {
    if value.scale() > scale && value.normalize().scale() > scale {
        return Err(format!(
            "{name} {value} has more than {scale} decimal places"
        ));
    }
    // |trunc(v)| ≥ 10^n exactly when |v| ≥ 10^n: no truncation needed.
    if value.abs() >= Decimal::from(10i128.pow(integer_digits)) {
        return Err(format!(
            "{name} {value} has more than {integer_digits} integer digits"
        ));
    }
    Ok(())
}

/// A symbol is a key in Kafka and in MySQL: it must mean the same in both. MariaDB compares
/// keys with trailing spaces ignored (`'HDFC' = 'HDFC '`), so spaces around a symbol are
/// refused here (readers trim them first); characters that do not show (zero-width, direction
/// marks, BOM, tags) would make two symbols look alike, so they are refused too.
fn check_symbol(symbol: &str) -> Result<(), String> {
    if symbol.trim().is_empty() {
        return Err("symbol is empty".into());
    }
    if symbol.trim().len() != symbol.len() {
        return Err(format!("symbol {symbol:?} has spaces around it"));
    }
    if symbol.chars().count() > MAX_SYMBOL_CHARS {
        return Err(format!(
            "symbol is longer than {MAX_SYMBOL_CHARS} characters"
        ));
    }
    if symbol.chars().any(char::is_control) {
        return Err("symbol contains control characters".into());
    }
    if let Some(c) = symbol.chars().find(|&c| invisible(c)) {
        return Err(format!(
            "symbol contains the invisible character U+{:04X}",
            c as u32
        ));
    }
    Ok(())
}

/// Characters that print as nothing or change the direction of text: Unicode format
/// characters (category Cf), variation selectors, fillers, and spaces other than U+0020.
fn invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
        || (c.is_whitespace() && c != ' ')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    pub(crate) fn tick() -> Tick {
        Tick {
            timestamp: "2024-01-02T09:15:00Z".parse().unwrap(),
            symbol: "HDFC".into(),
            open: dec!(1520.50),
            high: dec!(1522),
            low: dec!(1519.25),
            close: dec!(1521.0001),
            volume: dec!(1_500_000_000),
            source: "HDFC.csv:2".into(),
            produced_at: 1_700_000_000_000_000,
        }
    }

    #[test]
    fn validation_names_the_problem() {
        type Mutation = fn(&mut Tick);
        let cases: Vec<(Mutation, &str)> = vec![
            (|t| t.symbol = " ".into(), "symbol is empty"),
            (|t| t.low = dec!(0), "low 0 is not a positive price"),
            (|t| t.open = dec!(-1), "open -1 is not a positive price"),
            (|t| t.low = dec!(1530), "low 1530 is above high"),
            (|t| t.close = dec!(1523), "close 1523 is outside"),
            (|t| t.volume = dec!(-5), "volume -5 is negative"),
            (
                |t| t.volume = dec!(0.000000001),
                "volume 0.000000001 has more than 8 decimal places",
            ),
            (
                |t| t.volume = dec!(100_000_000_000_000_000_000),
                "volume 100000000000000000000 has more than 20 integer digits",
            ),
            (
                |t| t.high = dec!(1522.000000001),
                "more than 8 decimal places",
            ),
            (|t| t.symbol = "X".repeat(65), "longer than 64"),
            (|t| t.symbol = "HDFC ".into(), "spaces around it"),
            (
                |t| t.symbol = "HD\u{200B}FC".into(),
                "invisible character U+200B",
            ),
            (
                |t| t.symbol = "\u{202E}HDFC".into(),
                "invisible character U+202E",
            ),
            (
                |t| t.symbol = "HD\u{00A0}FC".into(),
                "invisible character U+00A0",
            ),
            (
                |t| t.symbol = "HDFC\u{FEFF}".into(),
                "invisible character U+FEFF",
            ),
            (
                |t| {
                    t.close = dec!(1e10);
                    t.high = dec!(1e10);
                    t.volume = dec!(9_000_000_000_000_000_000);
                },
                "beyond the largest turnover",
            ),
            (
                |t| t.timestamp = "0999-12-31T23:59:59Z".parse().unwrap(),
                "outside the years 1000-9999",
            ),
        ];
        for (mutate, expected) in cases {
            let mut t = tick();
            mutate(&mut t);
            let reason = t.validate().unwrap_err();
            assert!(
                reason.contains(expected),
                "{reason} should contain {expected}"
            );
        }
        // Trailing zeros beyond the scale are exact, not extra digits.
        let mut t = tick();
        t.high = dec!(1522.000000);
        assert!(t.validate().is_ok());
    }

    #[test]
    fn rejects_are_bounded_in_stored_bytes_whoever_made_them() {
        // Invalid UTF-8 triples in size when decoded: the cut is in decoded bytes.
        let reject = Reject::new("s".into(), "ingest", "r".into(), &vec![0xff; 200_000]);
        assert!(
            reject.raw.len() <= Reject::MAX_RAW_BYTES,
            "{}",
            reject.raw.len()
        );
        assert!(reject.raw.starts_with('\u{FFFD}'));
        // A dead letter from another producer: huge fields, a date MySQL cannot store.
        let foreign = serde_json::json!({
            "source": "x".repeat(1000), "stage": "a-very-long-stage-name", "reason": "y".repeat(5000),
            "raw": "é".repeat(1_000_000), "rejected_at": "+12000-01-01T00:00:00Z",
        });
        let reject = Reject::from_json(foreign.to_string().as_bytes()).unwrap();
        assert_eq!(reject.source.chars().count(), 255);
        assert_eq!(reject.stage.chars().count(), 16);
        assert_eq!(reject.reason.chars().count(), 1000);
        assert!(reject.raw.len() <= Reject::MAX_RAW_BYTES);
        assert!(reject.rejected_at.year() < 10000);
    }

    #[test]
    fn excess_decimals_are_refused_or_rounded_half_to_even() {
        let mut t = tick();
        t.close = dec!(1521.000000005);
        assert!(
            t.clone()
                .fit_decimals(ExcessDecimals::Refuse)
                .unwrap_err()
                .contains("close 1521.000000005 has more than 8 decimal places")
        );
        assert_eq!(t.fit_decimals(ExcessDecimals::Round), Ok(true));
        assert_eq!(t.close, dec!(1521.00000000));
        t.close = dec!(1521.000000015);
        t.fit_decimals(ExcessDecimals::Round).unwrap();
        assert_eq!(t.close, dec!(1521.00000002));
        // Six and eight places are stored as they are; trailing zeros are no excess.
        t.close = dec!(39.455002);
        t.high = dec!(1522.1234567800);
        assert_eq!(t.fit_decimals(ExcessDecimals::Refuse), Ok(false));
        assert_eq!(t.close, dec!(39.455002));
        // A crypto base volume of 8 places is stored as it is; a ninth is rounded or refused.
        t.volume = dec!(12.34567891);
        assert_eq!(t.fit_decimals(ExcessDecimals::Refuse), Ok(false));
        t.volume = dec!(0.123456785);
        assert!(
            t.clone()
                .fit_decimals(ExcessDecimals::Refuse)
                .unwrap_err()
                .contains("volume 0.123456785 has more than 8 decimal places")
        );
        assert_eq!(t.fit_decimals(ExcessDecimals::Round), Ok(true));
        assert_eq!(t.volume, dec!(0.12345678));
    }

    #[test]
    fn the_turnover_bound_is_ten_to_the_twentieth() {
        assert_eq!(MAX_ROW_TURNOVER, Decimal::from(10u128.pow(20)));
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("1e3").unwrap(), dec!(1000));
        assert_eq!(parse_decimal(" 0.1 ").unwrap(), dec!(0.1));
        for bad in ["", "NaN", "inf", "-Infinity", "1,5", "0x10", "1.2.3"] {
            assert!(parse_decimal(bad).is_err(), "{bad} should be refused");
        }
    }
}
