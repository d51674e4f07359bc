//! The exactly-once batch write: in one transaction, a check that the processor still holds
//! the batch's partitions, the batch's rows with their symbols' rollups marked stale
//! (`rollup_pending`), the refused records (once per source) and the offsets the batch
//! reached. Either all of it commits or none of it; the rollups follow in transactions of their
//! own. A replayed row is written again and marks its symbol stale from its minute: the rollups
//! are recomputed to the same figures (a re-run over old files recomputes from their start).
//!
//! Every statement has a deadline, and every statement carries at most
//! [`Store::max_statement_bytes`](super::Store) of values. A statement MySQL refuses for its data
//! is split in halves until the records it refuses are found (MySQL undoes only the failed
//! statement, so the transaction goes on); those are quarantined with the server's reason and
//! the rest commits.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use sqlx::{Connection, MySql, MySqlConnection, QueryBuilder};

use super::Store;
use super::error::{StoreError, timed};
use super::lease::{self, Member, Unit};
use crate::tick::{Reject, Tick};

/// Rows per upsert statement: 7 placeholders each stays far under MySQL's 65,535 limit.
pub const ROWS_PER_STATEMENT: usize = 4096;
/// Refused records per insert statement (5 placeholders each).
const REJECTS_PER_STATEMENT: usize = 4000;

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
        let mut connection = timed("connecting to MySQL", deadline, self.pool.acquire()).await?;
        let result = async {
            // sqlx rolls the transaction back if it is dropped uncommitted (an error, or this
            // future dropped when another writer failed): never half a batch.
            let mut tx = timed("starting a transaction", deadline, connection.begin()).await?;
            let committed = self.write_batch_on(&mut tx, batch).await?;
            timed("committing the batch", deadline, tx.commit()).await?;
            Ok(committed)
        }
        .await;
        if result.is_err() {
            // A statement may still run (or hang) on the server: never reuse the connection.
            connection.close_on_drop();
        }
        result
    }

    async fn write_batch_on(
        &self,
        tx: &mut MySqlConnection,
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
        lease::check(tx, member, partitions, deadline).await?;
        let rows = last_per_key(ticks);
        let mut refused: Vec<(&Tick, String)> = Vec::new();
        for chunk in byte_chunks(
            &rows,
            row_bytes,
            self.max_statement_bytes,
            ROWS_PER_STATEMENT,
        ) {
            refused.extend(self.isolating(tx, chunk, upsert_rows).await?);
        }
        // The rollups follow from the rows: their symbols are stale from their earliest row on
        // (marked here once per symbol; the per-row trigger leaves tickpipe's sessions alone).
        // A replayed row marks too: recomputing unchanged rows is harmless, and cheaper than
        // reading every row back to see whether it changed.
        mark_stale(tx, &rows, deadline).await?;

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
            let bad = self.isolating(tx, chunk, insert_rejects).await?;
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
                let mut statement = insert_rejects(chunk);
                timed(
                    "inserting rejected_ticks",
                    deadline,
                    statement.build().execute(&mut *tx),
                )
                .await?;
            }
        }
        for incident in incidents {
            let insert = sqlx::query(
                "INSERT INTO pipeline_incidents (happened_at, topic, `partition`, kind, detail) \
                 VALUES (UTC_TIMESTAMP(6), ?, ?, ?, ?)",
            )
            .bind(&incident.topic)
            .bind(incident.partition)
            .bind(incident.kind)
            .bind(&incident.detail);
            timed("recording an incident", deadline, insert.execute(&mut *tx)).await?;
        }
        for run in prepared_shapes(offsets) {
            let mut statement = store_offsets(run);
            timed(
                "storing offsets",
                deadline,
                statement.build().execute(&mut *tx),
            )
            .await?;
        }
        Ok(Committed { refused_rows })
    }

    /// Runs the statement `build` makes for `items`; when MySQL refuses its data, splits the
    /// items in halves until the refused ones are found, and returns them with the reason.
    async fn isolating<'i, T>(
        &self,
        tx: &mut MySqlConnection,
        items: &[&'i T],
        build: fn(&[&T]) -> QueryBuilder<MySql>,
    ) -> Result<Vec<(&'i T, String)>, StoreError> {
        let mut refused = Vec::new();
        let mut todo: Vec<&[&'i T]> = vec![items];
        while let Some(part) = todo.pop() {
            if part.is_empty() {
                continue;
            }
            let mut statement = build(part);
            let result = timed(
                "writing a batch",
                self.statement_timeout,
                statement.build().execute(&mut *tx),
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
    tx: &mut MySqlConnection,
    rows: &[&Tick],
    deadline: std::time::Duration,
) -> Result<(), StoreError> {
    let mut earliest: Vec<&Tick> = rows.to_vec();
    earliest.dedup_by(|later, first| later.symbol == first.symbol);
    for chunk in earliest
        .chunks(ROWS_PER_STATEMENT)
        .flat_map(prepared_shapes)
    {
        let mut statement: QueryBuilder<MySql> =
            QueryBuilder::new("INSERT INTO rollup_pending (Bank_Name, From_Minute) ");
        statement.push_values(chunk, |mut row, tick| {
            row.push_bind(&tick.symbol)
                .push_bind(crate::rollup::minute(tick.timestamp).naive_utc());
        });
        statement.push(
            " ON DUPLICATE KEY UPDATE From_Minute = \
             LEAST(COALESCE(From_Minute, VALUES(From_Minute)), VALUES(From_Minute))",
        );
        timed(
            "marking rollups stale",
            deadline,
            statement.build().execute(&mut *tx),
        )
        .await?;
    }
    Ok(())
}

/// The batch's rows in key order (symbol, time), the last one of each key only: rows go to
/// InnoDB in its primary key's order, and writers that share a symbol lock its rows alike.
fn last_per_key(ticks: &[Tick]) -> Vec<&Tick> {
    let mut by_key: BTreeMap<(&str, DateTime<Utc>), &Tick> = BTreeMap::new();
    for tick in ticks {
        by_key.insert((&tick.symbol, tick.timestamp), tick);
    }
    by_key.into_values().collect()
}

/// The multi-row upsert of `ticks` into `stock_data` (at most [`ROWS_PER_STATEMENT`]).
pub fn upsert_rows(ticks: &[&Tick]) -> QueryBuilder<MySql> {
    let mut insert: QueryBuilder<MySql> = QueryBuilder::new(
        "INSERT INTO stock_data (`Timestamp`, Bank_Name, Open, High, Low, Close, Volume) ",
    );
    insert.push_values(ticks, |mut row, t| {
        row.push_bind(t.timestamp.naive_utc())
            .push_bind(&t.symbol)
            .push_bind(t.open)
            .push_bind(t.high)
            .push_bind(t.low)
            .push_bind(t.close)
            .push_bind(t.volume);
    });
    insert.push(
        " ON DUPLICATE KEY UPDATE Open = VALUES(Open), High = VALUES(High), \
         Low = VALUES(Low), Close = VALUES(Close), Volume = VALUES(Volume)",
    );
    insert
}

fn insert_rejects(rejects: &[&Reject]) -> QueryBuilder<MySql> {
    let mut insert: QueryBuilder<MySql> = QueryBuilder::new(
        "INSERT IGNORE INTO rejected_ticks (source, stage, reason, raw, rejected_at) ",
    );
    insert.push_values(rejects, |mut row, r| {
        row.push_bind(&r.source)
            .push_bind(&r.stage)
            .push_bind(&r.reason)
            .push_bind(&r.raw)
            .push_bind(r.rejected_at.naive_utc());
    });
    insert
}

fn store_offsets(offsets: &[Reached]) -> QueryBuilder<MySql> {
    let mut upsert: QueryBuilder<MySql> = QueryBuilder::new(
        "INSERT INTO pipeline_offsets (topic, `partition`, next_offset, topic_id, updated_at) ",
    );
    upsert.push_values(offsets, |mut row, r| {
        row.push_bind(&r.topic)
            .push_bind(r.partition)
            .push_bind(r.next)
            .push_bind(&r.topic_id)
            .push("UTC_TIMESTAMP(6)");
    });
    upsert.push(
        " ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset), \
         topic_id = COALESCE(VALUES(topic_id), topic_id), updated_at = VALUES(updated_at)",
    );
    upsert
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
