//! The exactly-once batch write: in one transaction, a check that the processor still holds
//! the batch's partitions, the batch's rows with their symbols' rollups marked stale
//! (`rollup_pending`), the refused records (once per source) and the offsets the batch
//! reached. Either all of it commits or none of it; the rollups follow in transactions of their
//! own. A replayed row is written again and marks its symbol stale from its minute: the rollups
//! are recomputed to the same figures (a re-run over old files recomputes from their start).
//!
//! The rows go in as one `LOAD DATA LOCAL INFILE` from memory (`bulk`). When the server refuses
//! that, or a value draws a warning or an error, they go in as multi-row INSERTs instead: every
//! statement then carries at most [`Store::max_statement_bytes`](super::Store) of values, and
//! one MySQL refuses for its data is split in halves until the records it refuses are found
//! (MySQL undoes only the failed statement, so the transaction goes on); those are quarantined
//! with the server's reason and the rest commits. Every statement has a deadline.

use mysql_async::{Conn, Value};

use super::Store;
use super::bulk::{self, Statement, datetime, decimal, placeholders, text};
use super::error::StoreError;
use super::infile;
use super::lease::{self, Member, Unit};
use crate::tick::{Reject, Tick};

/// Rows per INSERT statement (when MySQL refuses LOAD DATA, or a batch's rows are searched for
/// the ones it refuses): 7 placeholders each stays far under MySQL's 65,535 limit.
pub const ROWS_PER_STATEMENT: usize = 4096;
/// Refused records per insert statement (5 placeholders each).
const REJECTS_PER_STATEMENT: usize = 4000;

/// The columns of `stock_data` a batch's load file holds, in its order ([`load_file`]).
const LOADED_COLUMNS: &str = "`Timestamp`, Bank_Name, Open, High, Low, Close, Volume";

/// Something that happened to a partition itself (not to a record), stored with the batch
/// that handled it and shown by `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub topic: String,
    pub partition: i32,
    /// `records_deleted`, `offset_past_end` or `topic_recreated`.
    pub kind: &'static str,
    pub detail: String,
}

/// The next offset of a partition after a batch, and the identity of its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    pub topic: String,
    pub partition: i32,
    pub next: i64,
    pub topic_id: Option<String>,
}

/// One batch of what the fetch loops handed over.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The processor, whose leases on the batch's partitions are checked in its transaction.
    pub member: &'a Member,
    pub ticks: &'a [Tick],
    pub rejects: &'a [Reject],
    /// Where the batch reached in each partition.
    pub offsets: &'a [Reached],
    pub incidents: &'a [Incident],
}

/// Rows of one statement all refused alike from which the cause is taken for the server's
/// set-up rather than the data.
const SETUP_SUSPECT_ROWS: usize = 8;

/// What a committed batch did beyond storing its rows.
#[derive(Debug, Default)]
pub struct Committed {
    /// Rows of the batch that MySQL refused, now in `rejected_ticks` (stage `store`).
    pub refused_rows: Vec<Reject>,
}

impl Store {
    /// Stores a batch in one transaction (see the module documentation).
    pub async fn write_batch(&self, batch: Batch<'_>) -> Result<Committed, StoreError> {
        let deadline = self.statement_timeout;
        let mut conn = self.bulk.take(deadline).await?;
        let result = async {
            bulk::exec(
                &mut conn,
                "starting a transaction",
                deadline,
                "BEGIN",
                Vec::new(),
            )
            .await?;
            let committed = self.write_batch_on(&mut conn, batch).await?;
            bulk::exec(
                &mut conn,
                "committing the batch",
                deadline,
                "COMMIT",
                Vec::new(),
            )
            .await?;
            Ok(committed)
        }
        .await;
        self.bulk.finish(conn, &result);
        result
    }

    async fn write_batch_on(
        &self,
        conn: &mut Conn,
        Batch {
            member,
            ticks,
            rejects,
            offsets,
            incidents,
        }: Batch<'_>,
    ) -> Result<Committed, StoreError> {
        let deadline = self.statement_timeout;
        let partitions = offsets.iter().map(|reached| Unit::Partition {
            topic: reached.topic.clone(),
            partition: reached.partition,
        });
        lease::check(conn, member, partitions, deadline).await?;
        let rows = last_per_key(ticks);
        let refused: Vec<(&Tick, String)> =
            if rows.is_empty() || self.load_rows(conn, &rows).await? {
                Vec::new()
            } else {
                let mut refused = Vec::new();
                for chunk in byte_chunks(
                    &rows,
                    row_bytes,
                    self.max_statement_bytes,
                    ROWS_PER_STATEMENT,
                ) {
                    refused.extend(self.isolating(conn, chunk, upsert_rows).await?);
                }
                refused
            };
        // The rollups follow from the rows: their symbols are stale from their earliest row on
        // (marked here once per symbol; the per-row trigger leaves tickpipe's sessions alone).
        // A replayed row marks too: recomputing unchanged rows is harmless, and cheaper than
        // reading every row back to see whether it changed.
        mark_stale(conn, &rows, deadline).await?;

        let refused_rows: Vec<Reject> = refused
            .iter()
            .map(|(tick, reason)| {
                let source = if tick.source.is_empty() {
                    format!("{}@{}", tick.symbol, tick.timestamp.to_rfc3339())
                } else {
                    tick.source.clone()
                };
                let raw = String::from_utf8_lossy(&tick.to_json()).into_owned();
                Reject::refused_by_store(&source, reason, &raw)
            })
            .collect();
        let all_rejects: Vec<&Reject> = rejects.iter().chain(&refused_rows).collect();
        for chunk in byte_chunks(
            &all_rejects,
            reject_bytes,
            self.max_statement_bytes,
            REJECTS_PER_STATEMENT,
        ) {
            // A dead letter MySQL refuses (a field that does not fit) is kept in a form that
            // fits, with the server's reason.
            let bad = self.isolating(conn, chunk, insert_rejects).await?;
            let replaced: Vec<Reject> = bad
                .into_iter()
                .map(|(r, reason)| Reject::refused_by_store(&r.source, &reason, &r.raw))
                .collect();
            let replaced: Vec<&Reject> = replaced.iter().collect();
            for chunk in byte_chunks(
                &replaced,
                reject_bytes,
                self.max_statement_bytes,
                REJECTS_PER_STATEMENT,
            ) {
                let Statement { sql, params } = insert_rejects(chunk);
                bulk::exec(conn, "inserting rejected_ticks", deadline, &sql, params).await?;
            }
        }
        for incident in incidents {
            let params = vec![
                text(&incident.topic),
                Value::Int(incident.partition.into()),
                text(incident.kind),
                text(&incident.detail),
            ];
            bulk::exec(
                conn,
                "recording an incident",
                deadline,
                "INSERT INTO pipeline_incidents (happened_at, topic, `partition`, kind, detail) \
                 VALUES (UTC_TIMESTAMP(6), ?, ?, ?, ?)",
                params,
            )
            .await?;
        }
        for run in prepared_shapes(offsets) {
            let Statement { sql, params } = store_offsets(run);
            bulk::exec(conn, "storing offsets", deadline, &sql, params).await?;
        }
        Ok(Committed { refused_rows })
    }

    /// Loads `rows` in one `LOAD DATA LOCAL INFILE` from memory: whether they are in (see
    /// [`BulkConnections::load_or_undo`](super::bulk::BulkConnections::load_or_undo) for when
    /// they are not: the rows then go in as INSERTs, which find the ones MySQL refuses).
    async fn load_rows(&self, conn: &mut Conn, rows: &[&Tick]) -> Result<bool, StoreError> {
        let deadline = self.statement_timeout;
        let load_deadline = deadline * (1 + rows.len() / ROWS_PER_STATEMENT) as u32;
        let sql = infile::statement("stock_data", LOADED_COLUMNS);
        let packet = self.max_statement_bytes.min(bulk::LOAD_PACKET);
        let file = load_file(rows);
        let what = "writing a batch";
        self.bulk
            .load_or_undo(conn, what, deadline, load_deadline, &sql, file, packet)
            .await
    }

    /// Runs the statement `build` makes for `items`; when MySQL refuses its data, splits the
    /// items in halves until the refused ones are found, and returns them with the reason.
    async fn isolating<'i, T>(
        &self,
        conn: &mut Conn,
        items: &[&'i T],
        build: fn(&[&T]) -> Statement,
    ) -> Result<Vec<(&'i T, String)>, StoreError> {
        let mut refused = Vec::new();
        let mut todo: Vec<&[&'i T]> = vec![items];
        while let Some(part) = todo.pop() {
            if part.is_empty() {
                continue;
            }
            let Statement { sql, params } = build(part);
            let result = bulk::exec(
                conn,
                "writing a batch",
                self.statement_timeout,
                &sql,
                params,
            )
            .await;
            match result {
                Ok(_) => {}
                Err(StoreError::Data {
                    number, message, ..
                }) => {
                    if let [item] = part {
                        refused.push((*item, format!("error {number}: {message}")));
                    } else {
                        let (a, b) = part.split_at(part.len() / 2);
                        todo.push(b);
                        todo.push(a);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        // A statement's every row refused for the same reason is the server's set-up (a schema
        // change, a trigger, a mode), not bad data: stop instead of quarantining the batch.
        if items.len() >= SETUP_SUSPECT_ROWS && refused.len() == items.len() {
            let first = &refused[0].1;
            if refused.iter().all(|(_, reason)| reason == first) {
                return Err(StoreError::Setup {
                    rows: items.len(),
                    reason: first.clone(),
                });
            }
        }
        Ok(refused)
    }
}

/// Marks the rollups of the symbols of `rows` (in key order) stale from each one's earliest
/// minute, in one statement in symbol order (writers lock `rollup_pending` rows alike).
async fn mark_stale(
    conn: &mut Conn,
    rows: &[&Tick],
    deadline: std::time::Duration,
) -> Result<(), StoreError> {
    let mut earliest: Vec<&Tick> = rows.to_vec();
    earliest.dedup_by(|later, first| later.symbol == first.symbol);
    for chunk in earliest
        .chunks(ROWS_PER_STATEMENT)
        .flat_map(prepared_shapes)
    {
        let mut params = Vec::with_capacity(chunk.len() * 2);
        for tick in chunk {
            params.push(text(&tick.symbol));
            params.push(datetime(crate::rollup::minute(tick.timestamp)));
        }
        let sql = format!(
            "INSERT INTO rollup_pending (Bank_Name, From_Minute) VALUES {} \
             ON DUPLICATE KEY UPDATE From_Minute = \
             LEAST(COALESCE(From_Minute, VALUES(From_Minute)), VALUES(From_Minute))",
            placeholders(chunk.len(), 2)
        );
        bulk::exec(conn, "marking rollups stale", deadline, &sql, params).await?;
    }
    Ok(())
}

/// The batch's rows in key order (symbol, time), the last one of each key only: rows go to
/// InnoDB in its primary key's order, and writers that share a symbol lock its rows alike.
fn last_per_key(ticks: &[Tick]) -> Vec<&Tick> {
    let mut rows: Vec<&Tick> = ticks.iter().collect();
    // Stable: of equal keys, the one fetched last stays last.
    rows.sort_by(|a, b| (&a.symbol, a.timestamp).cmp(&(&b.symbol, b.timestamp)));
    rows.dedup_by(|later, earlier| {
        let same = later.symbol == earlier.symbol && later.timestamp == earlier.timestamp;
        if same {
            // `dedup_by` keeps the earlier: it takes the later one's place.
            std::mem::swap(later, earlier);
        }
        same
    });
    rows
}

/// `rows` as the batch's load file (`LOADED_COLUMNS`): `2024-01-02 09:15:00⇥HDFC⇥1520.5⇥…⇥1200⏎`.
pub fn load_file(rows: &[&Tick]) -> Vec<u8> {
    let mut file = Vec::with_capacity(rows.len() * 96);
    for t in rows {
        infile::write_datetime(&mut file, t.timestamp);
        file.push(b'\t');
        // A checked symbol has no control characters; escaped all the same.
        infile::write_text_field(&mut file, &t.symbol);
        for value in [t.open, t.high, t.low, t.close, t.volume] {
            file.push(b'\t');
            infile::write_decimal_field(&mut file, value);
        }
        file.push(b'\n');
    }
    file
}

/// The multi-row upsert of `ticks` into `stock_data` (at most [`ROWS_PER_STATEMENT`]).
fn upsert_rows(ticks: &[&Tick]) -> Statement {
    let mut params = Vec::with_capacity(ticks.len() * 7);
    for t in ticks {
        params.extend([
            datetime(t.timestamp),
            text(&t.symbol),
            decimal(t.open),
            decimal(t.high),
            decimal(t.low),
            decimal(t.close),
            decimal(t.volume),
        ]);
    }
    let sql = format!(
        "INSERT INTO stock_data (`Timestamp`, Bank_Name, Open, High, Low, Close, Volume) \
         VALUES {} ON DUPLICATE KEY UPDATE Open = VALUES(Open), High = VALUES(High), \
         Low = VALUES(Low), Close = VALUES(Close), Volume = VALUES(Volume)",
        placeholders(ticks.len(), 7)
    );
    Statement { sql, params }
}

fn insert_rejects(rejects: &[&Reject]) -> Statement {
    let mut params = Vec::with_capacity(rejects.len() * 5);
    for r in rejects {
        params.extend([
            text(&r.source),
            text(&r.stage),
            text(&r.reason),
            text(&r.raw),
            datetime(r.rejected_at),
        ]);
    }
    let sql = format!(
        "INSERT IGNORE INTO rejected_ticks (source, stage, reason, raw, rejected_at) VALUES {}",
        placeholders(rejects.len(), 5)
    );
    Statement { sql, params }
}

fn store_offsets(offsets: &[Reached]) -> Statement {
    let mut params = Vec::with_capacity(offsets.len() * 4);
    for r in offsets {
        params.extend([
            text(&r.topic),
            Value::Int(r.partition.into()),
            Value::Int(r.next),
            r.topic_id.as_deref().map_or(Value::NULL, text),
        ]);
    }
    let rows = vec!["(?, ?, ?, ?, UTC_TIMESTAMP(6))"; offsets.len()].join(", ");
    let sql = format!(
        "INSERT INTO pipeline_offsets (topic, `partition`, next_offset, topic_id, updated_at) \
         VALUES {rows} ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset), \
         topic_id = COALESCE(VALUES(topic_id), topic_id), updated_at = VALUES(updated_at)"
    );
    Statement { sql, params }
}

/// Bytes a row adds to an upsert statement, generously (binary protocol: lengths and types).
fn row_bytes(tick: &&Tick) -> usize {
    tick.symbol.len() + 7 * 24
}

/// Bytes a refused record adds to an insert statement.
fn reject_bytes(reject: &&Reject) -> usize {
    reject.source.len() + reject.stage.len() + reject.reason.len() + reject.raw.len() + 5 * 24
}

/// Splits `items` into runs of a power-of-two length, the longest first. A statement of
/// N rows is prepared once per connection and N of any length would make each batch's
/// remainder a new statement to prepare (as costly to MariaDB as running it): with
/// power-of-two runs there are a dozen shapes in all.
pub(super) fn prepared_shapes<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let run;
        (run, rest) = rest.split_at(1 << rest.len().ilog2());
        Some(run)
    })
}

/// Splits `items` into runs of at most `max_items` whose `bytes` add up to at most
/// `max_bytes` (a single larger item goes alone), each run of a length
/// [`prepared_shapes`] gives.
fn byte_chunks<T>(
    items: &[T],
    bytes: impl Fn(&T) -> usize,
    max_bytes: usize,
    max_items: usize,
) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let b = bytes(item);
        if i > start && (size + b > max_bytes || i - start >= max_items) {
            chunks.push(&items[start..i]);
            (start, size) = (i, 0);
        }
        size += b;
    }
    if start < items.len() {
        chunks.push(&items[start..]);
    }
    chunks.into_iter().flat_map(prepared_shapes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Timelike, Utc};

    fn tick(symbol: &str, minute: u32, close: i64) -> Tick {
        Tick {
            symbol: symbol.into(),
            timestamp: chrono::TimeZone::with_ymd_and_hms(&Utc, 2024, 1, 2, 9, minute, 0).unwrap(),
            close: close.into(),
            ..crate::tick::tests::tick()
        }
    }

    #[test]
    fn a_batch_keeps_the_last_row_of_each_key_in_key_order() {
        let ticks = [
            tick("B", 1, 1),
            tick("A", 2, 2),
            tick("B", 1, 3),
            tick("A", 1, 4),
            tick("B", 1, 5),
            tick("A", 2, 6),
        ];
        let kept: Vec<(&str, u32, i64)> = last_per_key(&ticks)
            .iter()
            .map(|t| {
                let close = t.close.try_into().unwrap();
                (t.symbol.as_str(), t.timestamp.minute(), close)
            })
            .collect();
        assert_eq!(kept, [("A", 1, 4), ("A", 2, 6), ("B", 1, 5)]);
    }

    #[test]
    fn the_load_file_escapes_what_would_split_a_row() {
        let odd = tick("A\\B\tC\nD", 3, 7);
        let file = String::from_utf8(load_file(&[&odd])).unwrap();
        let fields: Vec<&str> = file.strip_suffix('\n').unwrap().split('\t').collect();
        assert_eq!(fields.len(), 7, "{file:?}");
        assert_eq!(fields[0], "2024-01-02 09:03:00");
        assert_eq!(fields[1], "A\\\\B\\tC\\nD");
        assert_eq!(fields[5], "7");
    }

    #[test]
    fn statements_come_in_power_of_two_shapes_and_keep_order() {
        let items: Vec<usize> = (0..4096 + 1000).collect();
        let runs: Vec<&[usize]> = byte_chunks(&items, |_| 1, usize::MAX, ROWS_PER_STATEMENT);
        let lengths: Vec<usize> = runs.iter().map(|r| r.len()).collect();
        assert_eq!(lengths, [4096, 512, 256, 128, 64, 32, 8]);
        assert_eq!(runs.concat(), items);
    }

    #[test]
    fn chunks_respect_bytes_and_counts_and_keep_order() {
        let items: Vec<usize> = vec![10, 10, 10, 50, 10, 200, 10];
        let chunks = byte_chunks(&items, |b| *b, 40, 2);
        assert_eq!(
            chunks,
            vec![
                &[10, 10][..],
                &[10][..],
                &[50][..],
                &[10][..],
                &[200][..],
                &[10][..]
            ]
        );
        let flat: Vec<usize> = chunks.concat();
        assert_eq!(flat, items);
        assert!(byte_chunks(&Vec::<usize>::new(), |b| *b, 40, 2).is_empty());
    }
}
