//! The domain record: one OHLCV bar for one symbol ([`Tick`]), its validation, and its Kafka
//! message form. One definition, used by every stage.
//!
//! Message contract (topic `stock_ticks`): key = symbol, value = JSON
//! `{"timestamp":"2024-01-02T09:15:00Z","symbol":"HDFC","open":"1520.5","high":"1522",
//!   "low":"1519.25","close":"1521","volume":1200,"source":"HDFC.csv:2","produced_at":1700000000000000}`.
//! Prices are decimal strings and never pass through a float.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

/// Longest symbol the store accepts (`Bank_Name VARCHAR(64)`).
pub const MAX_SYMBOL_CHARS: usize = 64;
/// Prices are stored as DECIMAL(18,4).
pub const PRICE_SCALE: u32 = 4;
const PRICE_INTEGER_DIGITS: u32 = 14;
/// Largest close × volume a row may have (10^20, five orders of magnitude above any real
/// bar's traded value in any currency): rollups sum turnovers per minute and per session, and
/// this bound keeps those sums far inside what a decimal holds.
pub const MAX_ROW_TURNOVER: Decimal =
    Decimal::from_parts(1_661_992_960, 1_808_227_885, 5, false, 0);

/// One OHLCV bar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    pub timestamp: DateTime<Utc>,
    pub symbol: String,
    #[serde(with = "exact_decimal")]
    pub open: Decimal,
    #[serde(with = "exact_decimal")]
    pub high: Decimal,
    #[serde(with = "exact_decimal")]
    pub low: Decimal,
    #[serde(with = "exact_decimal")]
    pub close: Decimal,
    pub volume: i64,
    /// Where the record came from: `file:line` for CSV input.
    #[serde(default)]
    pub source: String,
    /// Producer clock when it was sent, microseconds since the Unix epoch.
    #[serde(default)]
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
            if price.scale() > PRICE_SCALE && price.normalize().scale() > PRICE_SCALE {
                return Err(format!(
                    "{name} {price} has more than {PRICE_SCALE} decimal places"
                ));
            }
            if price.trunc() >= Decimal::from(10i64.pow(PRICE_INTEGER_DIGITS)) {
                return Err(format!(
                    "{name} {price} has more than {PRICE_INTEGER_DIGITS} integer digits"
                ));
            }
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
        if self.volume < 0 {
            return Err(format!("volume {} is negative", self.volume));
        }
        match self.close.checked_mul(Decimal::from(self.volume)) {
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

    fn prices(&self) -> [(&'static str, Decimal); 4] {
        [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
        ]
    }

    /// The Kafka message value.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&WireTick::from(self)).expect("a tick always serializes")
    }

    /// Decodes and validates a Kafka message value written by any producer. The symbol is
    /// trimmed, as a CSV field is.
    pub fn from_json(bytes: &[u8]) -> Result<Tick, String> {
        let mut tick: Tick =
            serde_json::from_slice(bytes).map_err(|e| format!("not a tick message: {e}"))?;
        let trimmed = tick.symbol.trim();
        if trimmed.len() != tick.symbol.len() {
            tick.symbol = trimmed.to_string();
        }
        tick.validate()?;
        Ok(tick)
    }
}

/// The serialized form: timestamps always in RFC 3339 UTC with the `Z` offset.
#[derive(Serialize)]
struct WireTick<'a> {
    timestamp: String,
    symbol: &'a str,
    #[serde(with = "exact_decimal")]
    open: Decimal,
    #[serde(with = "exact_decimal")]
    high: Decimal,
    #[serde(with = "exact_decimal")]
    low: Decimal,
    #[serde(with = "exact_decimal")]
    close: Decimal,
    volume: i64,
    source: &'a str,
    produced_at: i64,
}

impl<'a> From<&'a Tick> for WireTick<'a> {
    fn from(t: &'a Tick) -> Self {
        WireTick {
            timestamp: t.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            symbol: &t.symbol,
            open: t.open,
            high: t.high,
            low: t.low,
            close: t.close,
            volume: t.volume,
            source: &t.source,
            produced_at: t.produced_at,
        }
    }
}

/// A record the pipeline refused, with why and where it came from. It goes to the dead-letter
/// topic and to `rejected_ticks`; nothing refused disappears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// Where the refused input came from (`file:line`, or `topic/partition/offset`), so a
    /// replay quarantines it once.
    pub source: String,
    /// The stage that refused it: `ingest` or `process`.
    pub stage: String,
    pub reason: String,
    /// The raw input, lossily decoded as UTF-8 and cut to [`Reject::MAX_RAW_BYTES`] bytes.
    pub raw: String,
    pub rejected_at: DateTime<Utc>,
}

impl Reject {
    /// Raw input kept per record, in bytes of UTF-8 (after lossy decoding, which turns each
    /// invalid byte into a 3-byte U+FFFD).
    pub const MAX_RAW_BYTES: usize = 64 * 1024;
    const MAX_SOURCE_CHARS: usize = 255;
    const MAX_STAGE_CHARS: usize = 16;
    const MAX_REASON_CHARS: usize = 1000;

    pub fn new(source: String, stage: &str, reason: String, raw: &[u8]) -> Self {
        // Decoding a prefix keeps a long raw input from being decoded whole.
        let head = &raw[..raw.len().min(Self::MAX_RAW_BYTES)];
        Reject {
            source,
            stage: stage.to_string(),
            reason,
            raw: String::from_utf8_lossy(head).into_owned(),
            rejected_at: Utc::now(),
        }
        .bounded()
    }

    /// Every field cut to what `rejected_ticks` stores, whoever made the record.
    fn bounded(mut self) -> Self {
        self.source = truncate_chars(&self.source, Self::MAX_SOURCE_CHARS);
        self.stage = truncate_chars(&self.stage, Self::MAX_STAGE_CHARS);
        self.reason = truncate_chars(&self.reason, Self::MAX_REASON_CHARS);
        if self.raw.len() > Self::MAX_RAW_BYTES {
            let mut cut = Self::MAX_RAW_BYTES;
            while !self.raw.is_char_boundary(cut) {
                cut -= 1;
            }
            self.raw.truncate(cut);
        }
        let year = self.rejected_at.year();
        if !(1000..=9999).contains(&year) || self.rejected_at.nanosecond() >= 1_000_000_000 {
            self.rejected_at = Utc::now();
        }
        self
    }

    /// A record MySQL itself refused (its values do not fit a column, say): quarantined with
    /// the server's reason under the same source, so a replay finds it already recorded.
    pub fn refused_by_store(source: &str, reason: &str, raw: &str) -> Self {
        Reject::new(
            source.to_string(),
            "store",
            format!("refused by MySQL: {reason}"),
            raw.as_bytes(),
        )
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a reject always serializes")
    }

    /// A dead letter from the topic, written by any producer: cut to what is stored.
    pub fn from_json(bytes: &[u8]) -> Result<Reject, String> {
        serde_json::from_slice::<Reject>(bytes)
            .map(Reject::bounded)
            .map_err(|e| format!("not a dead-letter record: {e}"))
    }
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

fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
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

/// Serde for prices: written as strings; read from strings, or from JSON numbers as written
/// (non-Rust producers often send numbers).
mod exact_decimal {
    use super::*;

    pub fn serialize<S: serde::Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            String(String),
            Number(serde_json::Number),
        }
        let text = match Text::deserialize(d)? {
            Text::String(s) => s,
            // A JSON number is read as an f64, which keeps about 15 significant digits: more
            // would be silently rounded.
            Text::Number(n) => {
                let text = n.to_string();
                let digits = text
                    .chars()
                    .take_while(|c| *c != 'e' && *c != 'E')
                    .filter(char::is_ascii_digit)
                    .count();
                if n.is_f64() && digits > 15 {
                    return Err(serde::de::Error::custom(format!(
                        "number {text} has more digits than a JSON number keeps exactly; send prices as strings"
                    )));
                }
                text
            }
        };
        parse_decimal(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn tick() -> Tick {
        Tick {
            timestamp: "2024-01-02T09:15:00Z".parse().unwrap(),
            symbol: "HDFC".into(),
            open: dec!(1520.50),
            high: dec!(1522),
            low: dec!(1519.25),
            close: dec!(1521.0001),
            volume: 1_500_000_000,
            source: "HDFC.csv:2".into(),
            produced_at: 1_700_000_000_000_000,
        }
    }

    #[test]
    fn json_round_trip_is_exact() {
        let t = tick();
        let json = t.to_json();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(text.contains(r#""open":"1520.50""#), "{text}");
        assert!(
            text.contains(r#""timestamp":"2024-01-02T09:15:00Z""#),
            "{text}"
        );
        assert_eq!(Tick::from_json(&json).unwrap(), t);
    }

    #[test]
    fn numbers_and_offsets_from_other_producers_are_read() {
        let json = br#"{"timestamp":"2024-01-02T14:45:00+05:30","symbol":"SBIN","open":600.1,
            "high":601,"low":599.95,"close":600.5,"volume":10}"#;
        let t = Tick::from_json(json).unwrap();
        assert_eq!(t.open, dec!(600.1));
        assert_eq!(
            t.timestamp,
            "2024-01-02T09:15:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(t.source, "");
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
            (|t| t.volume = -5, "volume -5 is negative"),
            (|t| t.high = dec!(1522.00001), "more than 4 decimal places"),
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
                    t.volume = 9_000_000_000_000_000_000;
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
    fn malformed_messages_are_refused_with_a_reason() {
        for (bytes, expected) in [
            (&b"not json"[..], "not a tick message"),
            (br#"{"symbol":"A"}"#, "missing field"),
            (
                br#"{"timestamp":"2024-01-02T09:15:00Z","symbol":"A","open":"NaN","high":"1","low":"1","close":"1","volume":1}"#,
                "not a decimal",
            ),
            (
                br#"{"timestamp":"yesterday","symbol":"A","open":"1","high":"1","low":"1","close":"1","volume":1}"#,
                "not a tick message",
            ),
            (
                br#"{"timestamp":"2024-01-02T09:15:00Z","symbol":"A","open":"1","high":"1","low":"1","close":"1","volume":1.5}"#,
                "not a tick message",
            ),
        ] {
            let reason = Tick::from_json(bytes).unwrap_err();
            assert!(reason.contains(expected), "{reason} should contain {expected}");
        }
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
