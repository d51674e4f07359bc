//! Reading the server's binary log (ROW format) as a replica does, from a position to its
//! current end: which symbols' minutes of `stock_data` the committed transactions there wrote,
//! changed or deleted, and the position after the last whole transaction read.
//!
//! A non-blocking dump (`BINLOG_DUMP_NON_BLOCK`): the server sends what it has and ends the
//! stream, so one call is one sweep and never waits for writers. The rows are found by the
//! columns' places in the table (a MariaDB table map carries no column names), looked up when
//! the sweep starts; an event that does not match them (the table altered since) asks for a
//! full recompute instead of guessing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime};
use futures::StreamExt;
use mysql_async::binlog::EventType;
use mysql_async::binlog::events::EventData;
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::{BinlogStreamRequest, Conn, Opts, Value};

use super::error::StoreError;

/// A place in the binary log: a file and the offset of an event in it. Ordered as the log is
/// (its files' names are numbered with leading zeros).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub file: String,
    pub offset: u64,
}

/// Where `Timestamp` and `Bank_Name` are among `stock_data`'s columns (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KeyColumns {
    pub timestamp: usize,
    pub symbol: usize,
    /// How many columns the table has.
    pub columns: u64,
}

/// What a sweep found.
#[derive(Debug, Default)]
pub(super) struct Sweep {
    /// Each symbol's earliest minute written, changed or deleted.
    pub stale_from: BTreeMap<String, NaiveDateTime>,
    /// Rows the log holds that could not be placed: every symbol must be recomputed.
    pub recompute_all: bool,
    /// After the last whole transaction read (`None`: none was).
    pub reached: Option<Position>,
}

/// Reads from `from` to the log's end, or until `budget` has passed (then up to the end of the
/// transaction being read). ER_MASTER_FATAL_ERROR_READING_BINLOG (1236) when `from` is gone
/// (purged).
pub(super) async fn sweep(
    opts: Opts,
    database: &str,
    key: KeyColumns,
    from: &Position,
    budget: Duration,
) -> Result<Sweep, StoreError> {
    const WHAT: &str = "reading the binary log";
    let conn = Conn::new(opts)
        .await
        .map_err(|e| StoreError::classify_async(WHAT, e))?;
    // A replica's id of its own: two readers with one id would cut each other off.
    let reader_id = 0x4000_0000 | (rand::random::<u32>() >> 2);
    let request = BinlogStreamRequest::new(reader_id)
        .with_non_blocking()
        .with_filename(from.file.as_bytes())
        .with_pos(from.offset);
    let mut stream = conn
        .get_binlog_stream(request)
        .await
        .map_err(|e| StoreError::classify_async(WHAT, e))?;
    let started = Instant::now();
    let mut found = Sweep::default();
    let mut file = from.file.clone();
    let mut in_transaction = false;
    // The rotate the server sends first only repeats the file asked for, before the format
    // event that says how long the events' checksums are (its name is read with the checksum).
    // Later ones (a new file after a restart) are read right.
    let mut format_known = false;
    while let Some(event) = stream.next().await {
        let event = event.map_err(|e| StoreError::classify_async(WHAT, e))?;
        let Ok(kind) = event.header().event_type() else {
            // MariaDB's own events (compressed rows among them): inside a transaction they may
            // hold rows that cannot be placed.
            if in_transaction {
                found.recompute_all = true;
            }
            continue;
        };
        let end = u64::from(event.header().log_pos());
        let data = event
            .read_data()
            .map_err(|e| StoreError::classify_async(WHAT, mysql_async::Error::Io(e.into())))?;
        let transaction_ended = match (kind, data) {
            (EventType::FORMAT_DESCRIPTION_EVENT, _) => {
                format_known = true;
                false
            }
            (EventType::ROTATE_EVENT, Some(EventData::RotateEvent(rotate))) if format_known => {
                file = rotate.name().into_owned();
                // Between transactions: the next file's first event is a whole place to be.
                if !in_transaction {
                    found.reached = Some(Position {
                        file: file.clone(),
                        offset: rotate.position(),
                    });
                }
                false
            }
            (_, Some(EventData::QueryEvent(query))) => {
                let text = query.query();
                let xa = text.get(..3).is_some_and(|w| w.eq_ignore_ascii_case("XA "));
                if text.eq_ignore_ascii_case("BEGIN") || (xa && text[3..].starts_with("START")) {
                    in_transaction = true;
                    false
                } else if xa {
                    // An XA transaction's rows are logged at its PREPARE and become visible at
                    // its COMMIT, perhaps long after both sweeps: recompute then.
                    let commit = text[3..].starts_with("COMMIT");
                    found.recompute_all |= commit;
                    commit || text[3..].starts_with("ROLLBACK")
                } else if !in_transaction
                    || text.eq_ignore_ascii_case("COMMIT")
                    || text.eq_ignore_ascii_case("ROLLBACK")
                {
                    // A statement of its own (DDL), or the end of a non-transactional write.
                    true
                } else {
                    // A statement logged as such inside a transaction (a writer not in ROW
                    // format) on this database: its rows cannot be known. MariaDB's stand-ins
                    // for events a replica like this one does not read are comments.
                    if !text.starts_with('#') && query.schema() == database {
                        found.recompute_all = true;
                    }
                    false
                }
            }
            (_, Some(EventData::XidEvent(_) | EventData::XaPrepareLogEvent(_))) => true,
            (_, Some(EventData::RowsEvent(rows))) => {
                let table = stream.get_tme(rows.table_id());
                match table {
                    Some(table)
                        if table.database_name() == database
                            && table.table_name() == "stock_data" =>
                    {
                        // Logged before the table last changed shape: its places may differ.
                        if table.columns_count() != key.columns {
                            found.recompute_all = true;
                            continue;
                        }
                        for row in rows.rows(table) {
                            match row {
                                Ok((before, after)) => {
                                    for image in [before, after].into_iter().flatten() {
                                        match place(&image, key) {
                                            Some((symbol, minute)) => {
                                                let earliest = found
                                                    .stale_from
                                                    .entry(symbol)
                                                    .or_insert(minute);
                                                *earliest = (*earliest).min(minute);
                                            }
                                            None => found.recompute_all = true,
                                        }
                                    }
                                }
                                Err(_) => found.recompute_all = true,
                            }
                        }
                    }
                    Some(_) => {}
                    // Rows of a table whose map was not sent: cannot be placed.
                    None => found.recompute_all = true,
                }
                false
            }
            _ => false,
        };
        if transaction_ended {
            in_transaction = false;
        }
        // Between transactions every event's end is a whole place to be (the header events of
        // a new file too, so a sweep there reaches the end). A rotate's end is in the file it
        // closes: its arm stored the next file's start.
        if !in_transaction && end > 0 && kind != EventType::ROTATE_EVENT {
            found.reached = Some(Position {
                file: file.clone(),
                offset: end,
            });
            if started.elapsed() > budget {
                break;
            }
        }
    }
    // A non-blocking dump's connection is closed by the server at the end.
    let _ = stream.close().await;
    Ok(found)
}

/// The symbol and minute of a row image, if its key columns are where `key` says.
fn place(row: &BinlogRow, key: KeyColumns) -> Option<(String, NaiveDateTime)> {
    let symbol = match row.as_ref(key.symbol)? {
        BinlogValue::Value(Value::Bytes(bytes)) => String::from_utf8(bytes.clone()).ok()?,
        _ => return None,
    };
    let minute = match row.as_ref(key.timestamp)? {
        &BinlogValue::Value(Value::Date(year, month, day, hour, minute, _, _)) => {
            NaiveDate::from_ymd_opt(i32::from(year), u32::from(month), u32::from(day))?
                .and_hms_opt(u32::from(hour), u32::from(minute), 0)?
        }
        _ => return None,
    };
    Some((symbol, minute))
}
