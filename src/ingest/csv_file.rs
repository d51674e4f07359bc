//! Reads one CSV file into [`Tick`]s, quarantining the lines it cannot use.
//!
//! Layouts are told apart by the header or the first line (`layout`): the seed's
//! `Timestamp,Bank_Name,Open,High,Low,Close,Volume` (symbol in a column), minute bars
//! `timestamp,open,high,low,close,volume` (symbol = the file's name), Yahoo, Stooq, Binance
//! klines and the others the README lists.
//!
//! Timestamps with an offset are taken as written; without one they are read in the
//! configured source zone.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result, bail};
use csv::ByteRecord;
use rust_decimal::Decimal;

use super::layout::{ColumnNames, Columns, When, file_symbol, sniff_delimiter};
use crate::tick::{Reading, Reject, Tick, parse_decimal, parse_timestamp, parse_volume, shorten};

/// What one data line became.
#[derive(Debug)]
pub enum Line {
    Tick(Tick),
    Reject(Reject),
}

/// Longest line read: the rest of a longer one is skipped (never held in memory) and the line
/// is quarantined.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// What passes from the file to the CSV parser: counts the lines, so a record's byte offset
/// gives its line number (the csv crate's own line count drifts on CRLF files and blank lines),
/// and cuts any line longer than [`MAX_LINE_BYTES`] short, noting where.
struct LineCounter<R> {
    inner: R,
    /// Bytes handed to the parser so far.
    offset: u64,
    newlines: Rc<RefCell<Newlines>>,
    /// Bytes of the current record handed over so far.
    line_bytes: usize,
    /// Where in a field the last byte was, as the CSV parser sees it.
    field: FieldState,
    /// The last byte was a CR (so an LF right after it is the same line end).
    after_cr: bool,
    delimiter: u8,
    /// Dropping the rest of an overlong line, up to its end.
    skipping: bool,
    /// Read from `inner`: `chunk[pos..len]` is not handed over yet.
    chunk: Box<[u8]>,
    pos: usize,
    len: usize,
}

/// Where the CSV parser is within a field: a quote opens a quoted field only at its start,
/// and inside one, line ends are data (RFC 4180, as the csv crate reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldState {
    Start,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: it closes the field, or escapes the next quote.
    QuoteInQuoted,
}

impl FieldState {
    fn next(self, b: u8, delimiter: u8) -> FieldState {
        use FieldState::*;
        match (self, b) {
            (Quoted, b'"') => QuoteInQuoted,
            (Quoted, _) => Quoted,
            (Start, b'"') | (QuoteInQuoted, b'"') => Quoted,
            (_, b'\n' | b'\r') => Start,
            (_, b) if b == delimiter => Start,
            _ => Unquoted,
        }
    }
}

/// Offsets of the newlines read ahead of the parser, and how many came before them.
#[derive(Default)]
struct Newlines {
    pending: VecDeque<u64>,
    passed: u64,
    /// Offsets (in what the parser read) where an overlong line was cut short.
    cuts: VecDeque<u64>,
}

impl Newlines {
    /// The 1-based line of a record starting at `offset` (asked in increasing order). The csv
    /// crate may report a record as starting on the newline that ends the line before it.
    fn line_of(&mut self, offset: u64) -> u64 {
        while self.pending.front().is_some_and(|&n| n <= offset) {
            self.pending.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }

    /// Whether a line was cut short before `end` (asked in increasing order).
    fn cut_before(&mut self, end: u64) -> bool {
        let mut cut = false;
        while self.cuts.front().is_some_and(|&c| c < end) {
            self.cuts.pop_front();
            cut = true;
        }
        cut
    }
}

impl<R: Read> LineCounter<R> {
    fn new(inner: R, newlines: Rc<RefCell<Newlines>>, delimiter: u8) -> Self {
        LineCounter {
            delimiter,
            inner,
            offset: 0,
            newlines,
            line_bytes: 0,
            field: FieldState::Start,
            after_cr: false,
            skipping: false,
            chunk: vec![0; 64 * 1024].into_boxed_slice(),
            pos: 0,
            len: 0,
        }
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.pos == self.len {
                self.len = self.inner.read(&mut self.chunk)?;
                self.pos = 0;
                if self.len == 0 {
                    return Ok(0);
                }
            }
            if !self.skipping {
                break;
            }
            match self.chunk[self.pos..self.len]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
            {
                Some(i) => {
                    self.pos += i;
                    self.skipping = false;
                }
                None => self.pos = self.len,
            }
        }
        // Two bytes stay free for ending a line that is cut short.
        let room = buf.len().saturating_sub(2).max(1);
        let mut newlines = self.newlines.borrow_mut();
        let mut written = 0;
        while written < room && self.pos < self.len {
            let b = self.chunk[self.pos];
            if matches!(b, b'\n' | b'\r') && self.field == FieldState::Quoted {
                // No stock layout breaks lines inside a field: a quote left open at the end of
                // a line is closed there, so it costs that line alone, not the lines after it.
                buf[written] = b'"';
                written += 1;
                self.offset += 1;
                self.field = FieldState::QuoteInQuoted;
                if written >= room {
                    break;
                }
            }
            self.pos += 1;
            buf[written] = b;
            written += 1;
            self.offset += 1;
            self.line_bytes += 1;
            // Lines of the file end at LF, CR, or CRLF (counted once), quoted or not.
            let after_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            if b == b'\r' || (b == b'\n' && !after_cr) {
                newlines.pending.push_back(self.offset - 1);
            }
            // A record ends at a line end outside quotes.
            let quoted = self.field == FieldState::Quoted;
            self.field = self.field.next(b, self.delimiter);
            if matches!(b, b'\n' | b'\r') && !quoted {
                self.line_bytes = 0;
            }
            if self.line_bytes > MAX_LINE_BYTES && written + 2 <= buf.len() {
                // End the line here for the parser (closing an open quote), note the cut, and
                // drop the rest of the line as it is read. The added newline is not a line of
                // the file: it is not counted.
                newlines.cuts.push_back(self.offset);
                let close = (self.field == FieldState::Quoted).then_some(b'"');
                for end in [close, Some(b'\n')].into_iter().flatten() {
                    buf[written] = end;
                    written += 1;
                    self.offset += 1;
                }
                (self.line_bytes, self.field, self.skipping) = (0, FieldState::Start, true);
                break;
            }
        }
        Ok(written)
    }
}

/// A CSV file being read, line by line.
pub struct CsvFile {
    reader: csv::Reader<LineCounter<Box<dyn Read>>>,
    newlines: Rc<RefCell<Newlines>>,
    columns: Columns,
    delimiter: u8,
    /// The symbol of files whose rows carry none.
    file_symbol: String,
    /// `file name` used in `file:line` sources.
    name: String,
    reading: Reading,
    /// Lines whose prices were rounded to the stored places.
    rounded: u64,
    /// The first line, already in `record`, is a row (a headerless layout), not a header.
    first_line_is_data: bool,
    record: ByteRecord,
    done: bool,
}

impl CsvFile {
    /// Opens a file and reads its header; a file that cannot be read, or whose header names no
    /// known layout, is an error for the whole file.
    pub fn open(path: &Path, reading: impl Into<Reading>) -> Result<Self> {
        Self::open_with(path, reading, &ColumnNames::default())
    }

    /// [`CsvFile::open`] with the column names of `[ingest.columns]`.
    pub fn open_with(
        path: &Path,
        reading: impl Into<Reading>,
        names: &ColumnNames,
    ) -> Result<Self> {
        if path.is_dir() {
            bail!("{} is a directory, not a CSV file", path.display());
        }
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let symbol = file_symbol(&stem);
        Self::from_reader_with(&source_name(path), symbol, Box::new(file), reading, names)
            .with_context(|| path.display().to_string())
    }

    /// Reads CSV from any source; `name` goes into `name:line` sources, `file_symbol` is the
    /// symbol of layouts whose rows carry none.
    pub fn from_reader(
        name: &str,
        file_symbol: &str,
        input: Box<dyn Read>,
        reading: impl Into<Reading>,
    ) -> Result<Self> {
        Self::from_reader_with(name, file_symbol, input, reading, &ColumnNames::default())
    }

    fn from_reader_with(
        name: &str,
        file_symbol: &str,
        input: Box<dyn Read>,
        reading: impl Into<Reading>,
        names: &ColumnNames,
    ) -> Result<Self> {
        // The header line tells the delimiter; the line counter then reads in chunks of its
        // own (the buffer only lends it the bytes already read).
        let mut input = BufReader::with_capacity(64 * 1024, input);
        let delimiter = sniff_delimiter(input.fill_buf().context("reading the header")?);
        let newlines = Rc::new(RefCell::new(Newlines::default()));
        let counted = LineCounter::new(
            Box::new(input) as Box<dyn Read>,
            newlines.clone(),
            delimiter,
        );
        // Read without headers: a first line of data (Binance's kline dumps) is a row.
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(counted);
        let mut header = ByteRecord::new();
        if !reader
            .read_byte_record(&mut header)
            .context("reading the header")?
            || header.is_empty()
            || (header.len() == 1 && header[0].is_empty())
        {
            bail!("empty file (no header line)");
        }
        let headerless = Columns::headerless_klines(&header).filter(|_| names.is_empty());
        let columns = match headerless {
            Some(columns) => columns,
            None => Columns::from_header(&header, names)?,
        };
        Ok(CsvFile {
            reader,
            newlines,
            columns,
            delimiter,
            file_symbol: file_symbol.to_string(),
            name: name.to_string(),
            reading: reading.into(),
            rounded: 0,
            first_line_is_data: headerless.is_some(),
            record: header,
            done: false,
        })
    }

    /// Lines read so far whose prices were rounded (`ingest.excess_decimals = "round"`).
    pub fn rounded(&self) -> u64 {
        self.rounded
    }

    /// Bytes of the file consumed so far.
    pub fn position(&self) -> u64 {
        self.reader.position().byte()
    }

    /// The next data line, or `None` at the end of the file.
    pub fn next_line(&mut self) -> Option<Line> {
        loop {
            if self.done {
                return None;
            }
            let (result, start) = if std::mem::take(&mut self.first_line_is_data) {
                (Ok(true), 0)
            } else {
                let start = self.reader.position().byte();
                let result = self.reader.read_byte_record(&mut self.record);
                (result, self.record.position().map_or(start, |p| p.byte()))
            };
            let line = self.newlines.borrow_mut().line_of(start);
            match result {
                Ok(false) => return None,
                Ok(true) => {
                    let end = self.reader.position().byte();
                    if self.newlines.borrow_mut().cut_before(end) {
                        let source = format!("{}:{line}", self.name);
                        let reason = format!(
                            "line is longer than {} MiB (the rest of it was skipped)",
                            MAX_LINE_BYTES >> 20
                        );
                        let raw = raw_line(&self.record, self.delimiter);
                        return Some(Line::Reject(Reject::new(source, "ingest", reason, &raw)));
                    }
                    // Blank lines (or lines of delimiters alone) carry nothing to keep or refuse.
                    if self
                        .record
                        .iter()
                        .all(|f| f.iter().all(u8::is_ascii_whitespace))
                    {
                        continue;
                    }
                    let source = format!("{}:{line}", self.name);
                    return Some(match self.parse(&source) {
                        Ok((tick, rounded)) => {
                            self.rounded += u64::from(rounded);
                            Line::Tick(tick)
                        }
                        Err(reason) => Line::Reject(Reject::new(
                            source,
                            "ingest",
                            reason,
                            &raw_line(&self.record, self.delimiter),
                        )),
                    });
                }
                Err(e) => {
                    let source = format!("{}:{line}", self.name);
                    // An I/O error ends the file; a malformed line does not.
                    self.done = matches!(e.kind(), csv::ErrorKind::Io(_));
                    let reason = format!("unreadable CSV: {e}");
                    return Some(Line::Reject(Reject::new(source, "ingest", reason, b"")));
                }
            }
        }
    }

    /// The record as a checked tick, and whether its prices were rounded.
    fn parse(&self, source: &str) -> Result<(Tick, bool), String> {
        let c = &self.columns;
        let r = &self.record;
        // Spreadsheets drop or add empty fields at the end of a line: what matters is that
        // the needed columns are there and nothing else is in the way.
        let extra_empty =
            r.len() > c.width && r.iter().skip(c.width).all(|f| f.trim_ascii().is_empty());
        let short_after_needed = r.len() < c.width && c.last_needed() < r.len();
        if r.len() != c.width && !extra_empty && !short_after_needed {
            return Err(format!("expected {} fields, found {}", c.width, r.len()));
        }
        let field = |i: usize, name: &str| -> Result<&str, String> {
            let text = std::str::from_utf8(&r[i])
                .map_err(|_| format!("{name} is not valid UTF-8"))?
                .trim();
            if text.is_empty() {
                Err(format!("{name} is empty"))
            } else if text.eq_ignore_ascii_case("null") {
                // Yahoo Finance writes a day without data as a row of nulls.
                Err(format!("{name} is null (the line has no data)"))
            } else {
                Ok(text)
            }
        };
        let number = |i: usize, name: &str| -> Result<String, String> {
            // Nasdaq writes prices in dollars: `$181.18`.
            let text = field(i, name)?;
            plain_number(
                text.strip_prefix('$').unwrap_or(text),
                self.delimiter != b',',
            )
            .map_err(|reason| format!("{name}: {reason}"))
        };
        let volume = |i: usize| -> Result<String, String> {
            let text = number(i, "volume")?;
            if c.volume_suffixes {
                with_suffix(&text).map_err(|reason| format!("volume: {reason}"))
            } else {
                Ok(text)
            }
        };
        let price = |i: usize, name: &str| -> Result<Decimal, String> {
            parse_decimal(&number(i, name)?).map_err(|e| format!("{name}: {e}"))
        };
        let time = match c.when {
            When::One(i) => field(i, "timestamp")?.to_string(),
            When::Split { date, time } => {
                format!("{} {}", field(date, "date")?, field(time, "time")?)
            }
        };
        let time = if c.month_first {
            month_first_to_iso(&time)
        } else {
            time
        };
        let symbol = match c.symbol {
            Some(i) => field(i, "symbol")?.to_string(),
            None => self.file_symbol.clone(),
        };
        let mut tick = Tick {
            timestamp: parse_timestamp(&time, self.reading.zone, self.reading.ambiguous_times)?,
            symbol,
            open: price(c.open, "open")?,
            high: price(c.high, "high")?,
            low: price(c.low, "low")?,
            close: price(c.close, "close")?,
            volume: parse_volume(&volume(c.volume)?)?,
            source: source.to_string(),
            produced_at: 0,
        };
        let rounded = tick.fit_decimals(self.reading.excess_decimals)?;
        tick.validate()?;
        Ok((tick, rounded))
    }
}

/// A date written month first (`01/05/2024`, `1/5/2024 09:30`) rewritten year first
/// (`2024-01-05`); anything else as it is (and refused later if it is no date).
fn month_first_to_iso(text: &str) -> String {
    let (date, rest) = text.split_once(' ').map_or((text, ""), |(d, r)| (d, r));
    let parts: Vec<&str> = date.split('/').collect();
    let number = |p: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
    };
    match parts.as_slice() {
        [m, d, y] if number(m, 1..=2) && number(d, 1..=2) && number(y, 4..=4) => {
            let iso = format!("{y}-{m:0>2}-{d:0>2}");
            if rest.is_empty() {
                iso
            } else {
                format!("{iso} {rest}")
            }
        }
        _ => text.to_string(),
    }
}

/// A volume with Investing.com's suffix (`62.38M`, `71.98K`, `1.2B`) as a plain number; `-`
/// (no volume that day) is refused.
fn with_suffix(text: &str) -> Result<String, String> {
    let (digits, scale) = match text.char_indices().last() {
        Some((at, 'K' | 'k')) => (&text[..at], 1_000),
        Some((at, 'M' | 'm')) => (&text[..at], 1_000_000),
        Some((at, 'B' | 'b')) => (&text[..at], 1_000_000_000),
        _ => (text, 1),
    };
    if digits == "-" {
        return Err("missing (written as \"-\")".into());
    }
    let value = parse_decimal(digits)?;
    value
        .checked_mul(Decimal::from(scale))
        .map(|v| v.normalize().to_string())
        .ok_or_else(|| format!("{} is out of range", shorten(text)))
}

/// A number as `parse_decimal` reads it. In a file with `;` or tab between fields a comma
/// may be the decimal mark (`39,455002`); a number with both marks has its decimal mark last
/// and groups of three digits before it (`1.234,50`, `1,234.50`). Anything else with a comma
/// is refused rather than guessed.
fn plain_number(text: &str, comma_may_be_decimal: bool) -> Result<String, String> {
    let (commas, dots) = (text.matches(',').count(), text.matches('.').count());
    let unclear = || {
        format!(
            "{:?} is not a number whose decimal mark is clear",
            shorten(text)
        )
    };
    let grouped = |mark: char, decimal: char| -> Option<String> {
        let (whole, fraction) = match text.rsplit_once(decimal) {
            Some((w, f)) if !f.contains(mark) => (w, Some(f)),
            _ => (text, None),
        };
        let mut groups = whole.trim_start_matches(['-', '+']).split(mark);
        let first = groups.next()?;
        let ok = (1..=3).contains(&first.len())
            && groups.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()));
        ok.then(|| {
            let digits = whole.replace(mark, "");
            fraction.map_or(digits.clone(), |f| format!("{digits}.{f}"))
        })
    };
    let plain = if commas == 0 {
        if !comma_may_be_decimal || dots == 0 {
            return Ok(text.to_string());
        }
        // Dots alone where commas may be decimal: 1.234.567 groups thousands, 39.455002 is a
        // decimal dot, and 1.234 could be either.
        return match grouped('.', ',') {
            Some(digits) if dots > 1 => Ok(digits),
            Some(_) => Err(unclear()),
            None => Ok(text.to_string()),
        };
    } else if dots == 0 {
        // 39,455002 in a `;` file; a comma alone elsewhere is not clear.
        (comma_may_be_decimal && commas == 1).then(|| text.replace(',', "."))
    } else if text.rfind(',') > text.rfind('.') {
        // 1.234,50
        grouped('.', ',')
    } else {
        // 1,234.50
        (dots == 1).then(|| grouped(',', '.')).flatten()
    };
    plain.ok_or_else(|| {
        format!(
            "{:?} is not a number whose decimal mark is clear",
            shorten(text)
        )
    })
}

/// The line as it was read, fields joined by the delimiter (for the quarantine record).
fn raw_line(record: &ByteRecord, delimiter: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, field) in record.iter().enumerate() {
        if i > 0 {
            out.push(delimiter);
        }
        out.extend_from_slice(field);
    }
    out
}

/// How a file is named in `file:line` sources: its path as given, so two files of the same
/// name in different folders keep their own refused lines. A path too long for the 255
/// characters of `rejected_ticks.source` keeps its end and a hash of the whole.
fn source_name(path: &Path) -> String {
    const KEEP: usize = 160;
    let full = path.display().to_string();
    let chars = full.chars().count();
    if chars <= 200 {
        return full;
    }
    use sha1::Digest;
    let hash = hex::encode(&sha1::Sha1::digest(full.as_bytes())[..4]);
    let tail: String = full.chars().skip(chars - KEEP).collect();
    format!("#{hash}…{tail}")
}

/// Expands glob patterns into the files they name, in a stable order. A pattern without glob
/// characters names a file even if it does not exist (so opening it reports the error).
pub fn expand_patterns(patterns: &[String]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for pattern in patterns {
        if !pattern.contains(['*', '?', '[']) {
            files.push(PathBuf::from(pattern));
            continue;
        }
        let mut matched: Vec<PathBuf> = glob::glob(pattern)
            .with_context(|| format!("bad file pattern {pattern:?}"))?
            .filter_map(|p| p.ok())
            .collect();
        if matched.is_empty() {
            bail!("no file matches {pattern:?}");
        }
        matched.sort();
        files.extend(matched);
    }
    files.dedup();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_dates_and_suffixed_volumes_are_read_as_written() {
        assert_eq!(month_first_to_iso("01/05/2024"), "2024-01-05");
        assert_eq!(month_first_to_iso("1/5/2024 09:30"), "2024-01-05 09:30");
        assert_eq!(month_first_to_iso("2024-01-05"), "2024-01-05");
        assert_eq!(with_suffix("62.38M").unwrap(), "62380000");
        assert_eq!(with_suffix("71.98K").unwrap(), "71980");
        assert_eq!(with_suffix("1.2B").unwrap(), "1200000000");
        assert_eq!(with_suffix("500").unwrap(), "500");
        assert!(with_suffix("-").unwrap_err().contains("missing"));
        assert!(with_suffix("12Q").is_err());
    }
    use rust_decimal_macros::dec;

    fn read(name: &str, content: &[u8]) -> Vec<Line> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let mut file = CsvFile::open(&path, chrono_tz::Asia::Kolkata).unwrap();
        std::iter::from_fn(|| file.next_line()).collect()
    }

    #[test]
    fn seed_layout_reads_symbol_from_column_and_zone_from_config() {
        let lines = read(
            "seed.csv",
            b"\xef\xbb\xbfTimestamp,Bank_Name,Open,High,Low,Close,Volume\r\n\
              2024-01-02 09:15:00,HDFC,1520.5,1522,1519.25,1521,1500000000\r\n",
        );
        let Line::Tick(t) = &lines[0] else {
            panic!("{lines:?}")
        };
        assert_eq!(t.symbol, "HDFC");
        assert_eq!(t.timestamp.to_rfc3339(), "2024-01-02T03:45:00+00:00");
        assert_eq!(t.open, dec!(1520.5));
        assert_eq!(t.volume, rust_decimal::Decimal::from(1_500_000_000));
        assert!(t.source.ends_with("/seed.csv:2"), "{}", t.source);
    }

    #[test]
    fn minute_layout_takes_symbol_from_file_name() {
        let lines = read(
            "AAPL.csv",
            b"timestamp,open,high,low,close,volume\n\"2024-01-02T14:30:00Z\",187.15,188.44,187.0,188.0,1000.0\n",
        );
        let Line::Tick(t) = &lines[0] else {
            panic!("{lines:?}")
        };
        assert_eq!(t.symbol, "AAPL");
        assert_eq!(t.volume, rust_decimal::Decimal::from(1000));
    }

    #[test]
    fn bad_lines_are_refused_and_good_ones_around_them_flow() {
        let lines = read(
            "X.csv",
            b"timestamp,open,high,low,close,volume\n\
              2024-01-02 09:15,1,2,1,2,10\n\
              2024-01-02 09:16,1,2,1\n\
              2024-01-02 09:17,abc,2,1,2,10\n\
              \n\
              2024-13-02 09:18,1,2,1,2,10\n\
              2024-01-02 09:19,1,2,1,2,-3\n\
              2024-01-02 09:20,1,2,1,2,2.5e-9\n\
              2024-01-02 09:21,3,2,1,2,10\n\
              2024-01-02 09:22,1,\xff,1,2,10\n\
              2024-01-02 09:23,1,2,1,2,11\n",
        );
        let summary: Vec<String> = lines
            .iter()
            .map(|l| match l {
                Line::Tick(t) => format!("ok {}", t.source),
                Line::Reject(r) => format!("{}: {}", r.source, r.reason),
            })
            .collect();
        let summary: Vec<String> = summary
            .iter()
            .map(|l| l.replace(&format!("{}/", dir_of(&lines)), ""))
            .collect();
        let expected = [
            "ok X.csv:2",
            "X.csv:3: expected 6 fields, found 4",
            "X.csv:4: open: \"abc\" is not a decimal number",
            "X.csv:6: timestamp \"2024-13-02 09:18\" is not a date and time",
            "X.csv:7: volume -3 is negative",
            "X.csv:8: volume 0.0000000025 has more than 8 decimal places (ingest.excess_decimals = \"round\" rounds them)",
            "X.csv:9: open 3 is outside low 1 .. high 2",
            "X.csv:10: high is not valid UTF-8",
            "ok X.csv:11",
        ];
        assert_eq!(summary.len(), expected.len(), "{summary:#?}");
        for (got, want) in summary.iter().zip(expected) {
            assert!(got.starts_with(want), "{got} should start with {want}");
        }
    }

    /// The folder in the lines' sources.
    fn dir_of(lines: &[Line]) -> String {
        let source = match &lines[0] {
            Line::Tick(t) => &t.source,
            Line::Reject(r) => &r.source,
        };
        source.rsplit_once('/').unwrap().0.to_string()
    }

    #[test]
    fn an_overlong_line_is_refused_without_being_held_and_the_next_lines_flow() {
        let mut content =
            b"timestamp,open,high,low,close,volume\n2024-01-02 09:15,1,2,1,2,10\n".to_vec();
        // 3 MiB: a valid-looking start, then spaces; and one with an unterminated quote.
        content.extend_from_slice(b"2024-01-02 09:16,1,2,1,2,10");
        content.extend(std::iter::repeat_n(b' ', 3 << 20));
        content.extend_from_slice(b"\n2024-01-02 09:17,1,2,1,2,11\n\"2024");
        content.extend(std::iter::repeat_n(b'x', 2 << 20));
        content.extend_from_slice(b"\n2024-01-02 09:18,1,2,1,2,12\n");
        let lines = read("X.csv", &content);
        let summary: Vec<String> = lines
            .iter()
            .map(|l| match l {
                Line::Tick(t) => {
                    format!("ok {} {}", t.source.rsplit('/').next().unwrap(), t.volume)
                }
                Line::Reject(r) => format!(
                    "{}: {} ({} bytes kept)",
                    r.source.rsplit('/').next().unwrap(),
                    r.reason,
                    r.raw.len()
                ),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "ok X.csv:2 10",
                "X.csv:3: line is longer than 1 MiB (the rest of it was skipped) (65536 bytes kept)",
                "ok X.csv:4 11",
                "X.csv:5: line is longer than 1 MiB (the rest of it was skipped) (65536 bytes kept)",
                "ok X.csv:6 12",
            ]
        );
    }

    #[test]
    fn cr_only_files_and_stray_quotes_keep_every_line_and_its_number() {
        // Excel's "CSV (Macintosh)": lines end with CR alone; more than 1 MiB of them.
        let mut content = b"timestamp,open,high,low,close,volume\r".to_vec();
        for i in 0..40_000u32 {
            content.extend_from_slice(
                format!("2024-01-02 09:15:{:02},1,2,1,2,{i}\r", i % 60).as_bytes(),
            );
        }
        let lines = read("CR.csv", &content);
        assert_eq!(lines.len(), 40_000);
        let Line::Tick(last) = &lines[39_999] else {
            panic!("{:?}", lines[39_999])
        };
        assert!(last.source.ends_with("CR.csv:40001"), "{}", last.source);
        // A quote inside an unquoted field is data: the lines after it are read as lines.
        let mut content =
            b"Timestamp,Bank_Name,Open,High,Low,Close,Volume\n2024-01-02 09:15:00,HD\"FC,1,1,1,1,1\n"
                .to_vec();
        for i in 0..40_000u32 {
            content.extend_from_slice(format!("2024-01-02 10:00:00,GOOD,1,2,1,2,{i}\n").as_bytes());
        }
        let lines = read("Q.csv", &content);
        let good = lines
            .iter()
            .filter(|l| matches!(l, Line::Tick(t) if t.symbol == "GOOD"))
            .count();
        assert_eq!(good, 40_000);
    }

    #[test]
    fn an_unclosed_quote_costs_its_line_alone() {
        let mut content = b"Timestamp,Bank_Name,Open,High,Low,Close,Volume\n2024-01-02 09:15:00,\"HDFC,1,2,1,2,10\n".to_vec();
        for i in 0..1000u32 {
            content.extend_from_slice(format!("2024-01-02 10:00:00,GOOD,1,2,1,2,{i}\n").as_bytes());
        }
        let lines = read("U.csv", &content);
        assert_eq!(lines.len(), 1001);
        assert!(matches!(&lines[0], Line::Reject(r) if r.reason.contains("expected 7 fields")));
        assert!(lines[1..].iter().all(|l| matches!(l, Line::Tick(_))));
    }

    #[test]
    fn trailing_empty_fields_and_delimiter_only_lines_do_not_refuse_a_line() {
        let lines = read(
            "T.csv",
            b"timestamp,open,high,low,close,volume\n\
              2024-01-02 09:15,1,2,1,2,10,\n\
              ,,,,,\n\
              2024-01-02 09:16,1,2,1,2,11,,\n\
              2024-01-02 09:17,1,2,1,2,12,x\n",
        );
        let kinds: Vec<bool> = lines.iter().map(|l| matches!(l, Line::Tick(_))).collect();
        assert_eq!(
            kinds,
            [true, true, false],
            "a non-empty extra field is refused"
        );
    }

    #[test]
    fn decimal_marks_are_read_when_clear_and_refused_when_not() {
        assert_eq!(plain_number("39,455002", true).unwrap(), "39.455002");
        assert_eq!(plain_number("1.234,50", true).unwrap(), "1234.50");
        assert_eq!(plain_number("1.234.567,5", true).unwrap(), "1234567.5");
        assert_eq!(plain_number("1,234.50", false).unwrap(), "1234.50");
        assert_eq!(plain_number("1,234.50", true).unwrap(), "1234.50");
        assert_eq!(plain_number("187.15", false).unwrap(), "187.15");
        for unclear in ["1,5", "1,2345.6", "12,34,567.8"] {
            assert!(plain_number(unclear, false).is_err(), "{unclear}");
        }
        assert!(plain_number("1.23,4.5", true).is_err());
        // Dots alone in a `;` file: grouping, a decimal dot, or not clear.
        assert_eq!(plain_number("1.234.567", true).unwrap(), "1234567");
        assert_eq!(plain_number("39.455002", true).unwrap(), "39.455002");
        assert!(plain_number("1.234", true).is_err());
        assert_eq!(plain_number("1.234", false).unwrap(), "1.234");
    }

    #[test]
    fn same_named_files_in_different_folders_have_their_own_sources() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = Vec::new();
        for folder in ["a", "b"] {
            std::fs::create_dir(dir.path().join(folder)).unwrap();
            let path = dir.path().join(folder).join("HDFC.csv");
            std::fs::write(&path, "timestamp,open,high,low,close,volume\nbad\n").unwrap();
            let mut file = CsvFile::open(&path, chrono_tz::UTC).unwrap();
            match file.next_line() {
                Some(Line::Reject(r)) => sources.push(r.source),
                other => panic!("{other:?}"),
            }
        }
        assert_ne!(sources[0], sources[1]);
        assert!(sources[0].ends_with("a/HDFC.csv:2"), "{}", sources[0]);
        let long = std::path::PathBuf::from(format!("/{}/HDFC.csv", "d".repeat(400)));
        let name = source_name(&long);
        assert!(
            name.chars().count() < 200 && name.ends_with("HDFC.csv"),
            "{name}"
        );
    }

    #[test]
    fn unknown_layout_and_empty_file_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.csv");
        std::fs::write(&path, "a,b,c\n1,2,3\n").unwrap();
        let e = format!("{:#}", CsvFile::open(&path, chrono_tz::UTC).err().unwrap());
        assert!(
            e.contains("unknown CSV layout") && e.contains(r#"header's columns ["a", "b", "c"]"#),
            "{e}"
        );
        std::fs::write(&path, "").unwrap();
        let e = format!("{:#}", CsvFile::open(&path, chrono_tz::UTC).err().unwrap());
        assert!(e.contains("empty"), "{e}");
        let e = format!(
            "{:#}",
            CsvFile::open(dir.path(), chrono_tz::UTC).err().unwrap()
        );
        assert!(e.contains("is a directory"), "{e}");
    }
}
