//! Bad input everywhere it enters — CSV lines, CSV files, Kafka messages, configuration — gets
//! a clear reason or error, never a panic, and the good records around it flow on.

use std::path::Path;

use tickpipe::config::{Config, Sources};
use tickpipe::ingest::csv_file::{CsvFile, Line};
use tickpipe::tick::Tick;

const HEADER: &str = "Timestamp,Bank_Name,Open,High,Low,Close,Volume";
const GOOD_BEFORE: &str = "2024-01-02 09:15:00,GOOD,100,101,99,100.5,10";
const GOOD_AFTER: &str = "2024-01-02 09:17:00,GOOD,100,101,99,100.5,11";

/// Reads header + good line + `bad` + good line; returns what the bad line became (`Ok` =
/// accepted) after checking that both good lines were kept.
fn read_between_good_lines(bad: &[u8], zone: chrono_tz::Tz) -> Result<Tick, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.csv");
    let mut content = format!("{HEADER}\n{GOOD_BEFORE}\n").into_bytes();
    content.extend_from_slice(bad);
    content.extend_from_slice(format!("\n{GOOD_AFTER}\n").as_bytes());
    std::fs::write(&path, content).unwrap();
    let mut file = CsvFile::open(&path, zone).unwrap();
    let lines: Vec<Line> = std::iter::from_fn(|| file.next_line()).collect();
    assert_eq!(lines.len(), 3, "one line per input line");
    let volumes: Vec<rust_decimal::Decimal> = [&lines[0], &lines[2]]
        .iter()
        .map(|l| match l {
            Line::Tick(t) => t.volume,
            Line::Reject(r) => panic!("a good line was refused: {r:?}"),
        })
        .collect();
    assert_eq!(volumes, [10.into(), 11.into()]);
    match &lines[1] {
        Line::Tick(t) => Ok(t.clone()),
        Line::Reject(r) => {
            assert!(r.source.ends_with("/input.csv:3"), "{}", r.source);
            assert_eq!(r.stage, "ingest");
            assert!(r.raw.len() <= 64 * 1024, "raw input is cut to 64 KiB");
            Err(r.reason.clone())
        }
    }
}

#[test]
fn bad_csv_lines_are_quarantined_with_their_reason() {
    let huge = format!(
        "2024-01-02 09:16:00,GOOD,{},101,99,100,1",
        "9".repeat(10 * 1024 * 1024)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "too few fields",
            b"2024-01-02 09:16:00,GOOD,100,101,99".to_vec(),
            "expected 7 fields, found 5",
        ),
        (
            "too many fields",
            b"2024-01-02 09:16:00,GOOD,100,101,99,100,1,extra".to_vec(),
            "expected 7 fields, found 8",
        ),
        (
            "empty field",
            b"2024-01-02 09:16:00,GOOD,,101,99,100,1".to_vec(),
            "open is empty",
        ),
        (
            "not a number",
            b"2024-01-02 09:16:00,GOOD,abc,101,99,100,1".to_vec(),
            "open: \"abc\" is not a decimal",
        ),
        (
            "NaN",
            b"2024-01-02 09:16:00,GOOD,NaN,101,99,100,1".to_vec(),
            "\"NaN\" is not a decimal",
        ),
        (
            "Infinity",
            b"2024-01-02 09:16:00,GOOD,100,Infinity,99,100,1".to_vec(),
            "\"Infinity\" is not a decimal",
        ),
        (
            "negative volume",
            b"2024-01-02 09:16:00,GOOD,100,101,99,100,-1".to_vec(),
            "volume -1 is negative",
        ),
        (
            "volume finer than 10^-8",
            b"2024-01-02 09:16:00,GOOD,100,101,99,100,1.123456789".to_vec(),
            "volume 1.123456789 has more than 8 decimal places",
        ),
        (
            "volume out of range",
            b"2024-01-02 09:16:00,GOOD,1,1,1,1,123456789012345678901".to_vec(),
            "volume 123456789012345678901 has more than 20 integer digits",
        ),
        (
            "too many decimals",
            b"2024-01-02 09:16:00,GOOD,100.123456789,101,99,100,1".to_vec(),
            "more than 8 decimal places",
        ),
        (
            "too many integer digits",
            b"2024-01-02 09:16:00,GOOD,100,123456789012345,99,100,1".to_vec(),
            "more than 14 integer digits",
        ),
        (
            "zero price",
            b"2024-01-02 09:16:00,GOOD,100,101,0,100,1".to_vec(),
            "low 0 is not a positive price",
        ),
        (
            "negative price",
            b"2024-01-02 09:16:00,GOOD,-100,101,99,100,1".to_vec(),
            "open -100 is not a positive price",
        ),
        (
            "low above high",
            b"2024-01-02 09:16:00,GOOD,100,99,101,100,1".to_vec(),
            "low 101 is above high 99",
        ),
        (
            "open above high",
            b"2024-01-02 09:16:00,GOOD,102,101,99,100,1".to_vec(),
            "open 102 is outside low 99 .. high 101",
        ),
        (
            "close below low",
            b"2024-01-02 09:16:00,GOOD,100,101,99,98,1".to_vec(),
            "close 98 is outside",
        ),
        (
            "unparseable date",
            b"yesterday,GOOD,100,101,99,100,1".to_vec(),
            "timestamp \"yesterday\" is not a date",
        ),
        (
            "impossible date",
            b"2024-02-30 09:16:00,GOOD,100,101,99,100,1".to_vec(),
            "timestamp \"2024-02-30 09:16:00\"",
        ),
        (
            "empty symbol",
            b"2024-01-02 09:16:00,,100,101,99,100,1".to_vec(),
            "symbol is empty",
        ),
        (
            "symbol too long",
            format!("2024-01-02 09:16:00,{},100,101,99,100,1", "S".repeat(65)).into_bytes(),
            "longer than 64",
        ),
        (
            "non-UTF-8 bytes",
            b"2024-01-02 09:16:00,G\xffD,100,101,99,100,1".to_vec(),
            "symbol is not valid UTF-8",
        ),
        (
            "quoted number with comma",
            b"2024-01-02 09:16:00,GOOD,\"100,5\",101,99,100,1".to_vec(),
            "\"100,5\" is not a number whose decimal mark is clear",
        ),
        (
            "a 10 MB line",
            huge.into_bytes(),
            "line is longer than 1 MiB",
        ),
    ];
    assert!(cases.len() >= 20);
    for (kind, line, expected) in cases {
        let reason = read_between_good_lines(&line, chrono_tz::UTC).expect_err(kind);
        assert!(
            reason.contains(expected),
            "{kind}: {reason:?} should contain {expected:?}"
        );
    }
}

#[test]
fn awkward_but_valid_csv_is_read() {
    // Quoted fields, an exponent, a zone with a daylight-saving gap.
    let t = read_between_good_lines(
        b"\"2024-01-02 09:16:00\",\"GOOD, LTD\",\"1e2\",101,99,100,7",
        chrono_tz::UTC,
    )
    .unwrap();
    assert_eq!(
        (t.symbol.as_str(), t.open.to_string().as_str()),
        ("GOOD, LTD", "100")
    );
    let reason = read_between_good_lines(
        b"2024-03-10 02:30:00,GOOD,100,101,99,100,1",
        chrono_tz::America::New_York,
    )
    .unwrap_err();
    assert!(
        reason.contains("does not exist in America/New_York"),
        "{reason}"
    );
}

#[test]
fn bad_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, content: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    };
    let cases = [
        (write("empty.csv", b""), "empty file (no header line)"),
        (
            write("unknown.csv", b"when,what,price\n1,2,3\n"),
            "unknown CSV layout: no time, open, high, low, volume columns among the header's columns [\"when\", \"what\", \"price\"]",
        ),
        (
            write("nohigh.csv", b"timestamp,open,low,close,volume\n"),
            "no high column",
        ),
        (dir.path().join("missing.csv"), "No such file"),
        (dir.path().to_path_buf(), "is a directory"),
    ];
    for (path, expected) in cases {
        let error = format!(
            "{:#}",
            CsvFile::open(&path, chrono_tz::UTC)
                .err()
                .expect("an error")
        );
        assert!(
            error.contains(expected),
            "{}: {error:?} should contain {expected:?}",
            path.display()
        );
    }
    // A BOM and CRLF line ends are fine.
    let path = write(
        "bom.csv",
        format!("\u{feff}{HEADER}\r\n{GOOD_BEFORE}\r\n").as_bytes(),
    );
    let mut file = CsvFile::open(&path, chrono_tz::UTC).unwrap();
    assert!(matches!(file.next_line(), Some(Line::Tick(_))));
}

#[test]
fn foreign_kafka_messages_are_refused_with_their_reason() {
    let huge_symbol = format!(
        r#"{{"timestamp":"2024-01-02T09:15:00Z","symbol":"{}","open":"1","high":"1","low":"1","close":"1","volume":1}}"#,
        "X".repeat(2 * 1024 * 1024)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", b"".to_vec(), "not a tick message"),
        ("not JSON", b"hello".to_vec(), "not a tick message"),
        ("JSON array", b"[1,2,3]".to_vec(), "not a tick message"),
        ("missing keys", br#"{"symbol":"A","open":"1"}"#.to_vec(), "missing field"),
        (
            "wrong type",
            br#"{"timestamp":"2024-01-02T09:15:00Z","symbol":"A","open":"1","high":"1","low":"1","close":"1","volume":true}"#.to_vec(),
            "\"volume\" is a boolean, not a number or a string",
        ),
        (
            "not a number",
            br#"{"timestamp":"2024-01-02T09:15:00Z","symbol":"A","open":"1","high":"1","low":"1","close":"1","volume":"many"}"#.to_vec(),
            "volume: \"many\" is not a decimal number",
        ),
        (
            "a time that does not exist in the source zone",
            br#"{"timestamp":"2024-01-02 25:15:00","symbol":"A","open":"1","high":"1","low":"1","close":"1","volume":1}"#.to_vec(),
            "is not a date and time",
        ),
        (
            "price as float NaN string",
            br#"{"timestamp":"2024-01-02T09:15:00Z","symbol":"A","open":"nan","high":"1","low":"1","close":"1","volume":1}"#.to_vec(),
            "is not a decimal",
        ),
        (
            "fails the checks",
            br#"{"timestamp":"2024-01-02T09:15:00Z","symbol":"A","open":"5","high":"1","low":"1","close":"1","volume":1}"#.to_vec(),
            "open 5 is outside",
        ),
        ("huge", huge_symbol.into_bytes(), "longer than 64"),
        (
            "price as a JSON number a float would round",
            br#"{"timestamp":"2024-01-02T09:15:00Z","symbol":"A","open":12345678901234.5678,"high":"1","low":"1","close":"1","volume":1}"#.to_vec(),
            "send prices as strings",
        ),
        (
            "leap second",
            br#"{"timestamp":"2016-12-31T23:59:60Z","symbol":"A","open":"1","high":"1","low":"1","close":"1","volume":1}"#.to_vec(),
            "leap second",
        ),
        ("invalid UTF-8", b"{\"symbol\":\"\xff\"}".to_vec(), "not a tick message"),
    ];
    for (kind, bytes, expected) in cases {
        let reason = Tick::from_json(&bytes, chrono_tz::UTC).expect_err(kind);
        assert!(
            reason.contains(expected),
            "{kind}: {reason:?} should contain {expected:?}"
        );
    }
}

fn load_config(dir: &Path, toml: &str) -> String {
    let file = dir.join("appliance.toml");
    std::fs::write(&file, toml).unwrap();
    let sources = Sources {
        file: Some(file),
        ..Sources::default()
    };
    format!("{:#}", Config::load(&sources).expect_err(toml))
}

#[test]
fn bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, expected) in [
        (
            "[topics]\npartitions = 0\n",
            "topics.partitions: must be between 1 and 1000",
        ),
        ("[topics]\npartitions = \"six\"\n", "partitions"),
        ("[topics]\nticks = \"bad topic!\"\n", "topics.ticks"),
        (
            "[ingest]\nsource_timezone = \"Mars/Olympus\"\n",
            "ingest.source_timezone",
        ),
        ("[ingest]\nspeed = -1.0\n", "ingest.speed"),
        ("[ingest]\nspeed = 1e-300\n", "ingest.speed"),
        ("[ingest]\nlinger = \"soon\"\n", "linger"),
        ("[broker]\nmode = \"external\"\n", "broker.bootstrap"),
        ("[broker]\nmode = \"docker\"\n", "mode"),
        ("[mysql]\ndatabase = \"x; DROP\"\n", "mysql.database"),
        ("unknown_key = 1\n", "unknown_key"),
        ("this is not toml", "appliance.toml"),
    ] {
        let error = load_config(dir.path(), toml);
        assert!(
            error.contains(expected),
            "{toml:?}: {error:?} should contain {expected:?}"
        );
    }
}
