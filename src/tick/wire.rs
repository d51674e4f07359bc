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

use std::borrow::Cow;
use std::fmt;

use chrono::SecondsFormat;
use rust_decimal::Decimal;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

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

    /// The field a message's key names: case, `_`, `-` and spaces do not matter. Read without
    /// allocating (every key of every record comes here).
    fn named(key: &str) -> Option<Field> {
        // As tickpipe writes them: no normalizing.
        match key {
            "timestamp" => return Some(Field::Timestamp),
            "symbol" => return Some(Field::Symbol),
            "open" => return Some(Field::Open),
            "high" => return Some(Field::High),
            "low" => return Some(Field::Low),
            "close" => return Some(Field::Close),
            "volume" => return Some(Field::Volume),
            "source" => return Some(Field::Source),
            "produced_at" => return Some(Field::ProducedAt),
            _ => {}
        }
        // The longest name (`producedat`) is 10 bytes: a longer key names no field.
        let mut name = [0u8; 10];
        let mut len = 0;
        let mut keep = |c: u8| {
            if len == name.len() {
                return false;
            }
            name[len] = c;
            len += 1;
            true
        };
        let fits = if key.is_ascii() {
            key.bytes()
                .filter(|c| !matches!(c, b'_' | b'-' | b' '))
                .all(|c| keep(c.to_ascii_lowercase()))
        } else {
            // Unicode lowercasing can make ASCII of a non-ASCII letter (the Kelvin sign).
            key.chars()
                .filter(|c| !matches!(c, '_' | '-' | ' '))
                .flat_map(char::to_lowercase)
                .all(|c| c.is_ascii() && keep(c as u8))
        };
        if !fits {
            return None;
        }
        Some(match &name[..len] {
            b"timestamp" | b"datetime" | b"date" | b"time" => Field::Timestamp,
            b"symbol" | b"bankname" | b"ticker" => Field::Symbol,
            b"open" => Field::Open,
            b"high" => Field::High,
            b"low" => Field::Low,
            b"close" => Field::Close,
            b"volume" => Field::Volume,
            b"source" => Field::Source,
            b"producedat" => Field::ProducedAt,
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
        let message: Message =
            serde_json::from_slice(bytes).map_err(|e| format!("not a tick message: {e}"))?;
        if let Some(clash) = message.clash {
            return Err(clash);
        }
        let fields = &message.fields;
        // A field's value as text: strings as they are, numbers as written.
        let text = |field: Field| -> Result<Option<Cow<str>>, String> {
            match &fields[field as usize] {
                None | Some((_, Scalar::Null)) => Ok(None),
                Some((_, Scalar::Text(s))) => Ok(Some(Cow::Borrowed(s.trim()))),
                Some((_, Scalar::Number(n))) => number_text(n)
                    .map(|text| Some(Cow::Owned(text)))
                    .map_err(|e| format!("{}: {e}", field.name())),
                Some((key, Scalar::Other(kind))) => Err(format!(
                    "not a tick message: {key:?} is {kind}, not a number or a string"
                )),
            }
        };
        let required = |field: Field| -> Result<Cow<str>, String> {
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
            symbol: required(Field::Symbol)?.into_owned(),
            open: price(Field::Open)?,
            high: price(Field::High)?,
            low: price(Field::Low)?,
            close: price(Field::Close)?,
            volume: parse_volume(&required(Field::Volume)?)?,
            source: text(Field::Source)?
                .map(Cow::into_owned)
                .unwrap_or_default(),
            produced_at: match &fields[Field::ProducedAt as usize] {
                // As tickpipe writes it: no detour through text.
                Some((_, Scalar::Number(n))) if n.is_i64() => n.as_i64().unwrap_or_default(),
                _ => match text(Field::ProducedAt)? {
                    Some(t) => t
                        .parse()
                        .map_err(|_| format!("produced_at {t:?} is not microseconds"))?,
                    None => 0,
                },
            },
        };
        let rounded = tick.fit_decimals(reading.excess_decimals)?;
        tick.validate()?;
        Ok((tick, rounded))
    }
}

/// A message's fields, read in one pass and borrowed from its bytes where no JSON escape
/// stands in the way (a `Map` of `Value`s allocated every key and value of every record).
struct Message<'a> {
    fields: [Option<(Cow<'a, str>, Scalar<'a>)>; Field::COUNT],
    /// Two keys naming the same field.
    clash: Option<String>,
}

/// A field's value.
enum Scalar<'a> {
    Null,
    Text(Cow<'a, str>),
    Number(serde_json::Number),
    /// A boolean, an array or an object: what it is.
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Message<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Message<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message<'de>, A::Error> {
                let mut message = Message {
                    fields: Default::default(),
                    clash: None,
                };
                while let Some(Text(key)) = map.next_key::<Text>()? {
                    let Some(field) = Field::named(&key) else {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    let value = map.next_value::<Scalar>()?;
                    match &message.fields[field as usize] {
                        // The same key again: the last one counts, as in any JSON object.
                        Some((other, _)) if *other != key => {
                            message.clash.get_or_insert_with(|| {
                                format!(
                                    "not a tick message: fields {other:?} and {key:?} both give \
                                     the {}",
                                    field.name()
                                )
                            });
                        }
                        _ => message.fields[field as usize] = Some((key, value)),
                    }
                }
                Ok(message)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// A JSON string, borrowed when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_str(ScalarVisitor)
            .and_then(|scalar| match scalar {
                Scalar::Text(text) => Ok(Text(text)),
                _ => Err(serde::de::Error::custom("a key is not a string")),
            })
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other("a boolean"))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Number(v.into()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Number(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
        serde_json::Number::from_f64(v)
            .map(Scalar::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("an object"))
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
    fn escaped_strings_repeated_keys_and_other_fields_read_as_json_says() {
        // `\u0046` is F; a key repeated exactly counts once, its last value; unknown fields
        // of any shape are skipped.
        let json = br#"{"Symbol":"HD\u0046C","timestamp":"2024-01-02T09:15:00Z","open":1,
            "high":"2","low":1,"close":"1.5","volume":10,"volume":12,"extra":{"a":[1,{"b":2}]},
            "Produced-At":"5"}"#;
        let t = Tick::from_json(json, chrono_tz::UTC).unwrap();
        assert_eq!(t.symbol, "HDFC");
        assert_eq!(t.volume, 12.into());
        assert_eq!(t.produced_at, 5);
        let nested = br#"{"symbol":["HDFC"],"timestamp":"2024-01-02T09:15:00Z","open":1,
            "high":2,"low":1,"close":1,"volume":1}"#;
        let reason = Tick::from_json(nested, chrono_tz::UTC).unwrap_err();
        assert!(reason.contains("\"symbol\" is an array"), "{reason}");
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
