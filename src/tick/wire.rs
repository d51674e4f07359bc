//! The Kafka message form of a tick: what tickpipe writes, and what it accepts from any
//! producer.
//!
//! Written (key = symbol): `{"timestamp":"2024-01-02T09:15:00Z","symbol":"HDFC","open":"1520.5",
//! "high":"1522","low":"1519.25","close":"1521","volume":"1200","source":"data/HDFC.csv:2",
//! "produced_at":1700000000000000}`; prices and volumes are decimal strings and never pass
//! through a float.
//!
//! Accepted: a JSON object whose field names match in any case, `_`, `-` and spaces ignored —
//! `timestamp` (or `datetime`, `date`, `time`), `symbol` (or `bank_name`, `ticker`), `open`,
//! `high`, `low`, `close`, `volume`, and optionally `source` and `produced_at`; other fields are
//! ignored. Numbers may be JSON numbers or strings (the original design's Python producer sends
//! `json.dumps(row)` of a CSV row: every value a string). A timestamp without an offset is read
//! in `ingest.source_timezone`.

use chrono::SecondsFormat;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use super::text::{number_text, parse_decimal, parse_timestamp, parse_volume};
use super::{Reading, Tick};

/// The fields of a tick message, in the order of [`Field::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Timestamp,
    Symbol,
    Open,
    High,
    Low,
    Close,
    Volume,
    Source,
    ProducedAt,
}

impl Field {
    const COUNT: usize = 9;

    /// The field a message's key names: case, `_`, `-` and spaces do not matter.
    fn named(key: &str) -> Option<Field> {
        let name: String = key
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        Some(match name.as_str() {
            "timestamp" | "datetime" | "date" | "time" => Field::Timestamp,
            "symbol" | "bankname" | "ticker" => Field::Symbol,
            "open" => Field::Open,
            "high" => Field::High,
            "low" => Field::Low,
            "close" => Field::Close,
            "volume" => Field::Volume,
            "source" => Field::Source,
            "producedat" => Field::ProducedAt,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Field::Timestamp => "timestamp",
            Field::Symbol => "symbol",
            Field::Open => "open",
            Field::High => "high",
            Field::Low => "low",
            Field::Close => "close",
            Field::Volume => "volume",
            Field::Source => "source",
            Field::ProducedAt => "produced_at",
        }
    }
}

impl Tick {
    /// The Kafka message value.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&WireTick::from(self)).expect("a tick always serializes")
    }

    /// Decodes and checks a Kafka message value written by any producer (see the module
    /// documentation), read as `reading` says (the zone of times without an offset, excess
    /// decimals). The symbol is trimmed, as a CSV field is. `Ok` tells whether prices were
    /// rounded.
    pub fn from_json(bytes: &[u8], reading: impl Into<Reading>) -> Result<Tick, String> {
        Self::read_json(bytes, reading.into()).map(|(tick, _)| tick)
    }

    /// [`Tick::from_json`], also telling whether prices were rounded.
    pub fn read_json(bytes: &[u8], reading: Reading) -> Result<(Tick, bool), String> {
        let zone = reading.zone;
        let object: serde_json::Map<String, Value> =
            serde_json::from_slice(bytes).map_err(|e| format!("not a tick message: {e}"))?;
        let mut fields: [Option<(&str, &Value)>; Field::COUNT] = [None; Field::COUNT];
        for (key, value) in &object {
            let Some(field) = Field::named(key) else {
                continue;
            };
            if let Some((other, _)) = fields[field as usize] {
                return Err(format!(
                    "not a tick message: fields {other:?} and {key:?} both give the {}",
                    field.name()
                ));
            }
            fields[field as usize] = Some((key, value));
        }
        // A field's value as text: strings as they are, numbers as written.
        let text = |field: Field| -> Result<Option<String>, String> {
            match fields[field as usize] {
                None | Some((_, Value::Null)) => Ok(None),
                Some((_, Value::String(s))) => Ok(Some(s.trim().to_string())),
                Some((_, Value::Number(n))) => number_text(n)
                    .map(Some)
                    .map_err(|e| format!("{}: {e}", field.name())),
                Some((key, other)) => Err(format!(
                    "not a tick message: {key:?} is {}, not a number or a string",
                    kind_of(other)
                )),
            }
        };
        let required = |field: Field| -> Result<String, String> {
            text(field)?
                .ok_or_else(|| format!("not a tick message: missing field `{}`", field.name()))
        };
        let price = |field: Field| -> Result<Decimal, String> {
            parse_decimal(&required(field)?).map_err(|e| format!("{}: {e}", field.name()))
        };
        let mut tick = Tick {
            timestamp: parse_timestamp(
                &required(Field::Timestamp)?,
                zone,
                reading.ambiguous_times,
            )?,
            symbol: required(Field::Symbol)?,
            open: price(Field::Open)?,
            high: price(Field::High)?,
            low: price(Field::Low)?,
            close: price(Field::Close)?,
            volume: parse_volume(&required(Field::Volume)?)?,
            source: text(Field::Source)?.unwrap_or_default(),
            produced_at: match text(Field::ProducedAt)? {
                Some(t) => t
                    .parse()
                    .map_err(|_| format!("produced_at {t:?} is not microseconds"))?,
                None => 0,
            },
        };
        let rounded = tick.fit_decimals(reading.excess_decimals)?;
        tick.validate()?;
        Ok((tick, rounded))
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The serialized form: timestamps always in RFC 3339 UTC with the `Z` offset.
#[derive(Serialize)]
struct WireTick<'a> {
    timestamp: String,
    symbol: &'a str,
    #[serde(serialize_with = "as_text")]
    open: Decimal,
    #[serde(serialize_with = "as_text")]
    high: Decimal,
    #[serde(serialize_with = "as_text")]
    low: Decimal,
    #[serde(serialize_with = "as_text")]
    close: Decimal,
    #[serde(serialize_with = "as_text")]
    volume: Decimal,
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

/// Prices and volumes are written as strings: exact, whoever reads them.
fn as_text<S: serde::Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use rust_decimal_macros::dec;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn json_round_trip_is_exact() {
        let t = super::super::tests::tick();
        let json = t.to_json();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(text.contains(r#""open":"1520.50""#), "{text}");
        assert!(text.contains(r#""volume":"1500000000""#), "{text}");
        assert!(
            text.contains(r#""timestamp":"2024-01-02T09:15:00Z""#),
            "{text}"
        );
        assert_eq!(Tick::from_json(&json, chrono_tz::UTC).unwrap(), t);
    }

    #[test]
    fn numbers_and_offsets_from_other_producers_are_read() {
        let json = br#"{"timestamp":"2024-01-02T14:45:00+05:30","symbol":"SBIN","open":600.1,
            "high":601,"low":599.95,"close":600.5,"volume":10}"#;
        let t = Tick::from_json(json, chrono_tz::UTC).unwrap();
        assert_eq!(t.open, dec!(600.1));
        assert_eq!(t.timestamp, utc("2024-01-02T09:15:00Z"));
        assert_eq!(t.source, "");
    }

    #[test]
    fn the_original_producers_rows_are_read_in_the_source_zone() {
        // Python: json.dumps(row) of a csv.DictReader row of the seed's file.
        let json = br#"{"Timestamp": "2024-01-02 09:15:00", "Bank_Name": "HDFCBANK",
            "Open": "1520.5", "High": "1522", "Low": "1519.25", "Close": "1521",
            "Volume": "1200"}"#;
        let t = Tick::from_json(json, chrono_tz::Asia::Kolkata).unwrap();
        assert_eq!(t.symbol, "HDFCBANK");
        assert_eq!(t.timestamp, utc("2024-01-02T03:45:00Z"));
        assert_eq!((t.close, t.volume), (dec!(1521), dec!(1200)));
        // Any case, spaces or dashes in names; numbers or strings; volume "1200.0".
        let json = br#"{"DATE-TIME":"2024-01-02T09:15:00Z","ticker":" SBIN ","OPEN":"1",
            "high":1,"Low":"1","close":1.0,"VOLUME":"1200.0","Adj Close":"0.9"}"#;
        let t = Tick::from_json(json, chrono_tz::UTC).unwrap();
        assert_eq!((t.symbol.as_str(), t.volume), ("SBIN", dec!(1200)));
        // A crypto base volume as a number or a string, exactly.
        let json = br#"{"timestamp":1704067200000,"symbol":"BTCUSDT","open":"42283.58",
            "high":"42298.62","low":"42261.02","close":"42298.61","volume":35.92724}"#;
        let t = Tick::from_json(json, chrono_tz::UTC).unwrap();
        assert_eq!(t.volume, dec!(35.92724));
        assert_eq!(Tick::from_json(&t.to_json(), chrono_tz::UTC).unwrap(), t);
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        for (bytes, expected) in [
            (&b"not json"[..], "not a tick message"),
            (br#"[1,2]"#, "not a tick message"),
            (br#"{"symbol":"A"}"#, "missing field `timestamp`"),
            (
                br#"{"timestamp":"2024-01-02T09:15:00Z","symbol":"A","open":"NaN","high":"1","low":"1","close":"1","volume":1}"#,
                "not a decimal",
            ),
            (
                br#"{"timestamp":"yesterday","symbol":"A","open":"1","high":"1","low":"1","close":"1","volume":1}"#,
                "\"yesterday\" is not a date and time",
            ),
            (
                br#"{"timestamp":"2024-01-02T09:15:00Z","symbol":"A","open":"1","high":"1","low":"1","close":"1","volume":-1.5}"#,
                "volume -1.5 is negative",
            ),
            (
                br#"{"timestamp":"2024-01-02T09:15:00Z","symbol":"A","open":[1],"high":"1","low":"1","close":"1","volume":1}"#,
                "\"open\" is an array, not a number or a string",
            ),
            (
                br#"{"Timestamp":"2024-01-02T09:15:00Z","timestamp":"2024-01-03T09:15:00Z","symbol":"A","open":"1","high":"1","low":"1","close":"1","volume":1}"#,
                "both give the timestamp",
            ),
        ] {
            let reason = Tick::from_json(bytes, chrono_tz::UTC).unwrap_err();
            assert!(reason.contains(expected), "{reason} should contain {expected}");
        }
    }
}
