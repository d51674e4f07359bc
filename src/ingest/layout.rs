//! Which column of a CSV file holds what, told from its header by the names people's files use
//! (the seed's, Yahoo Finance, Stooq, Alpha Vantage, NSE, Nasdaq and Investing.com exports,
//! split date and time columns)
//! or mapped in `[ingest.columns]`, or — for Binance's headerless kline dumps — from a first line
//! that is already data; the field delimiter, told from the header line (a `;` header means
//! decimal commas, as European spreadsheets write them); and the symbol a file's name gives.

use anyhow::{Result, bail};
use csv::ByteRecord;
use serde::{Deserialize, Serialize};

/// Column names given in `[ingest.columns]`; an empty one is found from the header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColumnNames {
    /// Date and time in one column.
    pub timestamp: String,
    /// Or a date column and a time column.
    pub date: String,
    pub time: String,
    pub symbol: String,
    pub open: String,
    pub high: String,
    pub low: String,
    pub close: String,
    pub volume: String,
}

impl ColumnNames {
    /// No column mapped: the header decides.
    pub fn is_empty(&self) -> bool {
        *self == ColumnNames::default()
    }
}

/// Where the time of a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// One column with date and time (or a date alone: the day's start).
    One(usize),
    /// A date column and a time column.
    Split { date: usize, time: usize },
}

/// Column positions of the fields a tick needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    pub when: When,
    /// `None`: the symbol is the file name's.
    pub symbol: Option<usize>,
    pub open: usize,
    pub high: usize,
    pub low: usize,
    pub close: usize,
    pub volume: usize,
    pub width: usize,
    /// Dates written month first (`01/05/2024` is 5 January): the US exports that say so by
    /// their header (Nasdaq's `Close/Last`; Investing.com's `Vol.` and `Change %`).
    pub month_first: bool,
    /// Volumes written with a K/M/B suffix (Investing.com's `62.38M`).
    pub volume_suffixes: bool,
}

/// The names each field goes by (compared after [`normalize`]).
const TIMESTAMP: &[&str] = &[
    "timestamp",
    "datetime",
    "date_time",
    "time_stamp",
    "open_time",
    "unix",
];
const DATE: &[&str] = &["date", "trade_date"];
const TIME: &[&str] = &["time"];
const SYMBOL: &[&str] = &["bank_name", "symbol", "ticker", "instrument"];
const OPEN: &[&str] = &["open", "open_price"];
const HIGH: &[&str] = &["high", "high_price"];
const LOW: &[&str] = &["low", "low_price"];
const CLOSE: &[&str] = &["close", "close_price", "close/last", "last", "price"];
const VOLUME: &[&str] = &["volume", "vol", "vol.", "shares_traded"];

/// A header name as compared: lower case, without a BOM, spaces, `<>` (Stooq's `<CLOSE>`)
/// and surrounding quotes; inner spaces and dashes become `_`.
pub fn normalize(name: &[u8]) -> String {
    String::from_utf8_lossy(name)
        .trim()
        .trim_start_matches('\u{feff}')
        .trim_matches(['<', '>', '"', ' '])
        .to_lowercase()
        .replace([' ', '-'], "_")
}

impl Columns {
    /// The last column a tick needs.
    pub fn last_needed(&self) -> usize {
        let when = match self.when {
            When::One(at) => at,
            When::Split { date, time } => date.max(time),
        };
        [
            when,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
        ]
        .into_iter()
        .chain(self.symbol)
        .max()
        .unwrap_or(0)
    }

    /// The columns of Binance's kline dumps (data.binance.vision), which have no header: open
    /// time in Unix milliseconds or microseconds, open, high, low, close, base volume, then
    /// close time, quote volume and counts (ignored) — when `first_line` is such a line.
    pub fn headerless_klines(first_line: &ByteRecord) -> Option<Columns> {
        let epoch = first_line
            .get(0)
            .is_some_and(|t| matches!(t.len(), 13 | 16) && t.iter().all(u8::is_ascii_digit));
        let numbers = (1..=5).all(|i| {
            first_line
                .get(i)
                .and_then(|f| std::str::from_utf8(f).ok())
                .is_some_and(|f| f.trim().parse::<f64>().is_ok_and(f64::is_finite))
        });
        (epoch && numbers).then_some(Columns {
            when: When::One(0),
            symbol: None,
            open: 1,
            high: 2,
            low: 3,
            close: 4,
            volume: 5,
            width: first_line.len(),
            month_first: false,
            volume_suffixes: false,
        })
    }

    /// The columns of a header, by `names` where given, else by the names files use.
    pub fn from_header(header: &ByteRecord, names: &ColumnNames) -> Result<Columns> {
        let found: Vec<String> = header.iter().map(normalize).collect();
        // Aliases in the order given (`close` before `last`), whatever the column order.
        let position = |given: &str, aliases: &[&str]| -> Option<usize> {
            if given.is_empty() {
                aliases
                    .iter()
                    .find_map(|alias| found.iter().position(|n| n == alias))
            } else {
                let given = normalize(given.as_bytes());
                found.iter().position(|n| *n == given)
            }
        };
        // A mapped date (and time) is what the user means, whatever else the header has.
        let mapped_date = !names.date.is_empty() || !names.time.is_empty();
        let timestamp = if mapped_date && names.timestamp.is_empty() {
            None
        } else {
            position(&names.timestamp, TIMESTAMP)
        };
        let when = match (
            timestamp,
            position(&names.date, DATE),
            position(&names.time, TIME),
        ) {
            (Some(at), _, _) => Some(When::One(at)),
            (None, Some(date), Some(time)) => Some(When::Split { date, time }),
            (None, Some(date), None) | (None, None, Some(date)) => Some(When::One(date)),
            (None, None, None) => None,
        };
        let [open, high, low, close, volume] = [
            (&names.open, OPEN),
            (&names.high, HIGH),
            (&names.low, LOW),
            (&names.close, CLOSE),
            (&names.volume, VOLUME),
        ]
        .map(|(given, aliases)| position(given, aliases));
        let missing: Vec<&str> = [
            ("time", when.is_some()),
            ("open", open.is_some()),
            ("high", high.is_some()),
            ("low", low.is_some()),
            ("close", close.is_some()),
            ("volume", volume.is_some()),
        ]
        .into_iter()
        .filter(|(_, found)| !found)
        .map(|(name, _)| name)
        .collect();
        let has = |name: &str| found.iter().any(|n| n == name);
        let investing = has("vol.") && has("change_%");
        match (when, open, high, low, close, volume) {
            (Some(when), Some(open), Some(high), Some(low), Some(close), Some(volume)) => {
                Ok(Columns {
                    when,
                    symbol: position(&names.symbol, SYMBOL),
                    open,
                    high,
                    low,
                    close,
                    volume,
                    width: found.len(),
                    month_first: has("close/last") || investing,
                    volume_suffixes: investing,
                })
            }
            _ => bail!(
                "unknown CSV layout: no {} column{} among the header's columns {found:?}; a file \
                 needs a time (one of {TIMESTAMP:?}, or {DATE:?} with or without {TIME:?}), \
                 {OPEN:?}, {HIGH:?}, {LOW:?}, {CLOSE:?} and {VOLUME:?} (and optionally \
                 {SYMBOL:?}, else the file's name is the symbol); name your columns in \
                 appliance.toml [ingest.columns] (e.g. close = \"Schluss\")",
                missing.join(", "),
                if missing.len() > 1 { "s" } else { "" },
            ),
        }
    }
}

/// The symbol of a file whose rows carry none: its name without the extension, except that
/// Binance's dumps name the pair and the interval first: one-minute and one-second klines
/// (`BTCUSDT-1m-2024-01-01.csv`) are the pair's rows (`BTCUSDT`); longer intervals keep the
/// interval (`ETHUSDT-1h-2024-01.csv` is `ETHUSDT-1h`), so an hourly bar never lands on the
/// minute row of the same time.
pub fn file_symbol(stem: &str) -> &str {
    let parts: Vec<&str> = stem.split('-').collect();
    let interval = |p: &str| {
        let unit = p.trim_start_matches(|c: char| c.is_ascii_digit());
        unit.len() < p.len() && matches!(unit, "s" | "m" | "h" | "d" | "w" | "mo")
    };
    let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    let binance = match parts.as_slice() {
        [_, i, y, m] => interval(i) && digits(y, 4) && digits(m, 2),
        [_, i, y, m, d] => interval(i) && digits(y, 4) && digits(m, 2) && digits(d, 2),
        _ => false,
    };
    if !binance || parts[0].is_empty() {
        stem
    } else if matches!(parts[1], "1m" | "1s") {
        parts[0]
    } else {
        &stem[..parts[0].len() + 1 + parts[1].len()]
    }
}

/// The field delimiter of a file, from its first line: the most frequent of `,` `;` and tab
/// (outside quotes), `,` when none is there.
pub fn sniff_delimiter(first_line: &[u8]) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for &b in first_line {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            _ if !quoted => {
                for (d, n) in counts.iter_mut() {
                    if *d == b {
                        *n += 1;
                    }
                }
            }
            _ => {}
        }
    }
    counts
        .iter()
        .max_by_key(|(_, n)| *n)
        .filter(|(_, n)| *n > 0)
        .map_or(b',', |(d, _)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(header: &str) -> Result<Columns> {
        let record = ByteRecord::from(header.split(',').collect::<Vec<_>>());
        Columns::from_header(&record, &ColumnNames::default())
    }

    #[test]
    fn the_layouts_people_download_are_recognised() {
        // Yahoo: symbol from the file name, `Adj Close` ignored.
        let yahoo = columns("Date,Open,High,Low,Close,Adj Close,Volume").unwrap();
        assert_eq!(
            (yahoo.when, yahoo.symbol, yahoo.close, yahoo.volume),
            (When::One(0), None, 4, 6)
        );
        // Stooq's ASCII export: split date and time, `<...>` names, a ticker column.
        let stooq =
            columns("<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>")
                .unwrap();
        assert_eq!(
            (stooq.when, stooq.symbol, stooq.volume),
            (When::Split { date: 2, time: 3 }, Some(0), 8)
        );
        // Alpha Vantage and the seed.
        assert_eq!(
            columns("timestamp,open,high,low,close,volume")
                .unwrap()
                .when,
            When::One(0)
        );
        assert_eq!(
            columns("Timestamp,Bank_Name,Open,High,Low,Close,Volume")
                .unwrap()
                .symbol,
            Some(1)
        );
        // Aliases by preference, not by column order: `Close` over an earlier `Last`.
        let last = columns("Date,Last,Open,High,Low,Close,Volume").unwrap();
        assert_eq!(last.close, 5);
        // Split columns by other names, a `Ticker` anywhere.
        let split = columns("Ticker,Date,Time,Open,High,Low,Close,Volume").unwrap();
        assert_eq!(split.when, When::Split { date: 1, time: 2 });
    }

    #[test]
    fn us_exports_say_their_date_order_by_their_header() {
        let nasdaq = columns("Date,Close/Last,Volume,Open,High,Low").unwrap();
        assert_eq!(
            (nasdaq.close, nasdaq.volume, nasdaq.month_first),
            (1, 2, true)
        );
        assert!(!nasdaq.volume_suffixes);
        let investing = columns("Date,Price,Open,High,Low,Vol.,Change %").unwrap();
        assert_eq!((investing.close, investing.volume), (1, 5));
        assert!(investing.month_first && investing.volume_suffixes);
        // Other layouts keep ISO dates.
        assert!(
            !columns("Date,Open,High,Low,Close,Volume")
                .unwrap()
                .month_first
        );
    }

    #[test]
    fn binance_klines_are_read_with_or_without_a_header() {
        let line = "1704067200000,42283.58000000,42298.62000000,42261.02000000,42298.61000000,\
                    35.92724000,1704067259999,1519569.94719130,1327,17.94432000,758970.84785570,0";
        let record = ByteRecord::from(line.split(',').collect::<Vec<_>>());
        let klines = Columns::headerless_klines(&record).unwrap();
        assert_eq!(
            (klines.when, klines.symbol, klines.close, klines.volume),
            (When::One(0), None, 4, 5)
        );
        // A header line, or a date in the first field, is not a kline.
        let header = ByteRecord::from(vec!["open_time", "open", "high", "low", "close", "volume"]);
        assert_eq!(Columns::headerless_klines(&header), None);
        let dated = ByteRecord::from(vec!["2024-01-01", "1", "1", "1", "1", "1"]);
        assert_eq!(Columns::headerless_klines(&dated), None);
        // The futures dumps' header.
        let futures = columns(
            "open_time,open,high,low,close,volume,close_time,quote_volume,count,\
             taker_buy_volume,taker_buy_quote_volume,ignore",
        )
        .unwrap();
        assert_eq!((futures.when, futures.volume), (When::One(0), 5));
    }

    #[test]
    fn binance_file_names_give_the_pair() {
        assert_eq!(file_symbol("BTCUSDT-1m-2024-01-01"), "BTCUSDT");
        assert_eq!(file_symbol("BTCUSDT-1s-2024-01"), "BTCUSDT");
        // Longer bars keep their interval: they are not the pair's minute rows.
        assert_eq!(file_symbol("ETHUSDT-1h-2024-01"), "ETHUSDT-1h");
        assert_eq!(file_symbol("BNBUSDT-1mo-2023-12"), "BNBUSDT-1mo");
        // Other names stay whole, dashes and all.
        assert_eq!(file_symbol("BRK-B"), "BRK-B");
        assert_eq!(file_symbol("HDFC"), "HDFC");
        assert_eq!(file_symbol("NIFTY-50-2024-01"), "NIFTY-50-2024-01");
    }

    #[test]
    fn an_unknown_layout_names_what_it_found_and_what_it_takes() {
        let error = format!(
            "{:#}",
            columns("Datum,Erster,Hoch,Tief,Schluss,Stücke").unwrap_err()
        );
        assert!(
            error.contains(r#"["datum", "erster", "hoch", "tief", "schluss", "stücke"]"#),
            "{error}"
        );
        assert!(
            error.contains("[ingest.columns]") && error.contains("\"close\""),
            "{error}"
        );
        // Mapped explicitly, the same header reads.
        let names = ColumnNames {
            date: "Datum".into(),
            open: "Erster".into(),
            high: "Hoch".into(),
            low: "Tief".into(),
            close: "Schluss".into(),
            volume: "Stücke".into(),
            ..ColumnNames::default()
        };
        let record = ByteRecord::from(vec!["Datum", "Erster", "Hoch", "Tief", "Schluss", "Stücke"]);
        let mapped = Columns::from_header(&record, &names).unwrap();
        assert_eq!((mapped.when, mapped.close), (When::One(0), 4));
    }

    #[test]
    fn the_delimiter_is_told_from_the_header_line() {
        assert_eq!(sniff_delimiter(b"Date,Open,High\n1;2;3"), b',');
        assert_eq!(sniff_delimiter(b"Datum;Erster;Hoch;Tief\r\n"), b';');
        assert_eq!(sniff_delimiter(b"date\topen\thigh\n"), b'\t');
        assert_eq!(sniff_delimiter(b"\"a;b\",c,d\n"), b',');
        assert_eq!(sniff_delimiter(b"nothing"), b',');
    }
}
