//! How the rollup stage learns which rows of `stock_data` other writers committed (tickpipe's
//! own writers mark their batches' symbols in the batch's transaction): `rollup_capture`.
//!
//! - **The binary log** of the appliance's MariaDB (ROW format, full row images): the rollup
//!   stage reads the table's row events from where it last stopped, marks their symbols stale
//!   and stores the new position in one transaction, so a crash reads the same events again
//!   and marks nothing twice that matters (a mark is a minimum). The writers pay nothing per
//!   row, and tickpipe's sessions, which mark their own, leave the log altogether.
//! - **stock_data's triggers** (0007) on a server of the user's: they mark each row in its
//!   writer's own transaction, at ~0.85 µs of MariaDB's time a row even when they do nothing.
//!
//! Switching is safe both ways: to the log, its position is taken before the triggers are
//! dropped (a row between is marked twice); to the triggers, they are created before every
//! symbol is marked stale (a row the log held and nobody read is recomputed).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::NaiveDateTime;
use sqlx::{AssertSqlSafe, Row};

use super::Store;
use super::binlog::{self, KeyColumns, Position};
use super::error::{StoreError, timed};

/// How other writers' rows reach `rollup_pending`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capture {
    /// `stock_data`'s triggers mark them in the writers' own transactions.
    Triggers,
    /// The rollup stage reads them from the server's binary log, from this position on.
    Binlog(Position),
}

/// Longest one sweep reads before storing what it found: a large backlog goes in several.
const SWEEP_BUDGET: Duration = Duration::from_secs(5);
/// A sweep that has not ended by then (a stalled server) is abandoned and retried.
const SWEEP_DEADLINE: Duration = Duration::from_secs(120);

/// Marks per INSERT (2 placeholders each).
const MARKS_PER_STATEMENT: usize = 1000;

/// The triggers of migration 0007, which creates them again (every statement of it can run
/// twice).
const TRIGGERS_MIGRATION: &str = include_str!("../../sql/0007_rollups_follow_the_table.sql");
const TRIGGERS: [&str; 3] = [
    "stock_data_marks_inserts",
    "stock_data_marks_updates",
    "stock_data_marks_deletes",
];

/// Every symbol's first minute with a row or a bar: marked stale, what a capture missed is
/// recomputed. A plain (consistent, lock-free) read: a writer's open transaction does not hold
/// it up.
const EVERY_SYMBOL_FROM_ITS_START: &str = "\
    SELECT Bank_Name, MIN(First_Minute) FROM ( \
        SELECT Bank_Name, \
               CAST(DATE_FORMAT(MIN(`Timestamp`), '%Y-%m-%d %H:%i:00') AS DATETIME) AS First_Minute \
        FROM stock_data GROUP BY Bank_Name \
        UNION ALL \
        SELECT Bank_Name, MIN(`Timestamp`) FROM bars_1m GROUP BY Bank_Name) AS firsts \
    GROUP BY Bank_Name";

/// ER_MASTER_FATAL_ERROR_READING_BINLOG: the position asked for is not in the log (purged), or
/// the server cannot send what is there.
const POSITION_GONE: u16 = 1236;
/// ER_SPECIFIC_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_ERROR.
const NOT_ALLOWED: u16 = 1227;
const ACCESS_DENIED: u16 = 1045;

impl Store {
    /// Sets the capture up, as the schema's owner after the migrations: the binary log on the
    /// appliance's own server (`appliance`: nothing else reads its log, so tickpipe's sessions
    /// leave it) when it keeps one as the capture needs; the triggers elsewhere. A server of
    /// the user's keeps the triggers: its log may feed replicas, miss a cluster's other nodes,
    /// or be read by accounts tickpipe does not manage.
    pub async fn choose_capture(&self, appliance: bool) -> Result<Capture> {
        let offered = match appliance {
            true => self.binlog_offered().await?,
            false => None,
        };
        let capture = match (offered, self.capture().await?) {
            (Some(_), Capture::Binlog(position)) => {
                // Again, in case a run stopped between the position and the drop.
                self.drop_triggers().await?;
                Capture::Binlog(position)
            }
            (Some(end), Capture::Triggers) => {
                sqlx::query(
                    "UPDATE rollup_capture SET Binlog_File = ?, Binlog_Pos = ?, Read_File = NULL, \
                     Read_Pos = NULL WHERE Id = 1",
                )
                .bind(&end.file)
                .bind(end.offset)
                .execute(&self.pool)
                .await
                .context("storing the binary log's position in rollup_capture")?;
                self.drop_triggers().await?;
                Capture::Binlog(end)
            }
            (None, Capture::Binlog(_)) => {
                self.capture_by_triggers().await?;
                Capture::Triggers
            }
            (None, Capture::Triggers) => Capture::Triggers,
        };
        sqlx::query("UPDATE rollup_capture SET Writers_Skip_Binlog = ? WHERE Id = 1")
            .bind(matches!(capture, Capture::Binlog(_)))
            .execute(&self.pool)
            .await
            .context("updating rollup_capture")?;
        Ok(capture)
    }

    /// Switches to the triggers: created, then every symbol marked stale. Also what a server
    /// without a readable binary log gets from [`Store::choose_capture`].
    pub async fn capture_by_triggers(&self) -> Result<()> {
        sqlx::raw_sql(TRIGGERS_MIGRATION)
            .execute(&self.pool)
            .await
            .context("creating stock_data's triggers (migration 0007)")?;
        let every = self.every_symbol_from_its_start().await?;
        let mut tx = self.pool.begin().await?;
        mark(&mut tx, every).await?;
        sqlx::query(
            "UPDATE rollup_capture SET Binlog_File = NULL, Binlog_Pos = NULL, Read_File = NULL, \
             Read_Pos = NULL WHERE Id = 1",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How other writers' rows are captured now.
    pub async fn capture(&self) -> Result<Capture, StoreError> {
        Ok(match self.binlog_positions().await? {
            Some((from, _)) => Capture::Binlog(from),
            None => Capture::Triggers,
        })
    }

    /// With binary-log capture, one sweep: marks in `rollup_pending` the symbols whose rows
    /// other writers committed, read from the stored position to the log's end (or for
    /// [`SWEEP_BUDGET`]), and stores the next position with them. Each transaction is read by
    /// two sweeps: MariaDB sends a transaction's events a moment before its rows are visible to
    /// other sessions, so a recompute right after the first could miss them; the next sweep
    /// (the next round) marks them again. Returns whether the log has been read to the end it
    /// had when called (always, with triggers).
    pub async fn sweep_capture(&self) -> Result<bool, StoreError> {
        let Some((from, read)) = self.binlog_positions().await? else {
            return Ok(true);
        };
        let end = self.binlog_end().await?.ok_or_else(|| {
            StoreError::Capture(
                "the server keeps no binary log any more: run `tickpipe up` to capture \
                 other writers' rows by triggers"
                    .into(),
            )
        })?;
        if from >= end {
            return Ok(true);
        }
        let found = match tokio::time::timeout(
            SWEEP_DEADLINE,
            binlog::sweep(
                self.bulk.opts(),
                &self.database_name().await?,
                self.key_columns().await?,
                &from,
                SWEEP_BUDGET,
            ),
        )
        .await
        {
            Err(_) => {
                return Err(StoreError::Timeout {
                    what: "reading the binary log",
                    deadline: SWEEP_DEADLINE,
                });
            }
            Ok(Err(e)) if e.number() == Some(POSITION_GONE) => {
                // Purged, or an event MariaDB cannot send a replica like this one (an XA
                // transaction's): everything up to the end is recomputed instead.
                tracing::warn!(
                    "the binary log cannot be read from {}:{} ({e}): recomputing every symbol's rollups",
                    from.file,
                    from.offset
                );
                binlog::Sweep {
                    recompute_all: true,
                    reached: Some(end.clone()),
                    ..Default::default()
                }
            }
            Ok(other) => other?,
        };
        let reached = found.reached.clone().unwrap_or_else(|| from.clone());
        // The next sweep starts where this one's first reading began.
        let next = read.clamp(from.clone(), reached.clone());
        self.store_sweep(&from, &next, &reached, found).await?;
        Ok(reached >= end)
    }

    /// Where the next sweep starts, and how far the last one read.
    async fn binlog_positions(&self) -> Result<Option<(Position, Position)>, StoreError> {
        let row = timed(
            "reading rollup_capture",
            self.statement_timeout,
            sqlx::query(
                "SELECT Binlog_File, Binlog_Pos, Read_File, Read_Pos FROM rollup_capture \
                 WHERE Id = 1",
            )
            .fetch_optional(&self.pool),
        )
        .await?;
        let Some(row) = row else { return Ok(None) };
        let from = match (row.try_get(0)?, row.try_get(1)?) {
            (Some(file), Some(offset)) => Position { file, offset },
            _ => return Ok(None),
        };
        let read = match (row.try_get(2)?, row.try_get(3)?) {
            (Some(file), Some(offset)) => Position { file, offset },
            _ => from.clone(),
        };
        Ok(Some((from, read)))
    }

    /// The sweep's marks and positions, in one transaction; the positions only if nobody moved
    /// them meanwhile (marks are minimums: storing them twice changes nothing).
    async fn store_sweep(
        &self,
        from: &Position,
        next: &Position,
        reached: &Position,
        found: binlog::Sweep,
    ) -> Result<(), StoreError> {
        const WHAT: &str = "storing the binary log's marks";
        let classify = |e| StoreError::classify(WHAT, e);
        let mut marks = found.stale_from;
        if found.recompute_all {
            for (symbol, minute) in self.every_symbol_from_its_start().await? {
                let earliest = marks.entry(symbol).or_insert(minute);
                *earliest = (*earliest).min(minute);
            }
        }
        let mut tx = self.pool.begin().await.map_err(classify)?;
        mark(&mut tx, marks).await.map_err(classify)?;
        sqlx::query(
            "UPDATE rollup_capture SET Binlog_File = ?, Binlog_Pos = ?, Read_File = ?, \
             Read_Pos = ? WHERE Id = 1 AND Binlog_File = ? AND Binlog_Pos = ?",
        )
        .bind(&next.file)
        .bind(next.offset)
        .bind(&reached.file)
        .bind(reached.offset)
        .bind(&from.file)
        .bind(from.offset)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    /// Every symbol and its first minute with a row or a bar.
    async fn every_symbol_from_its_start(
        &self,
    ) -> Result<BTreeMap<String, NaiveDateTime>, StoreError> {
        let firsts: Vec<(String, NaiveDateTime)> = timed(
            "reading every symbol's first minute",
            self.statement_timeout,
            sqlx::query_as(EVERY_SYMBOL_FROM_ITS_START).fetch_all(&self.pool),
        )
        .await?;
        Ok(firsts.into_iter().collect())
    }

    /// The binary log's end, if the server keeps one this capture can read: ROW format, full
    /// row images, and `SHOW MASTER STATUS` allowed.
    async fn binlog_offered(&self) -> Result<Option<Position>> {
        let (on, format, image): (i64, String, String) = sqlx::query_as(
            "SELECT CAST(@@GLOBAL.log_bin AS SIGNED), @@GLOBAL.binlog_format, \
                 @@GLOBAL.binlog_row_image",
        )
        .fetch_one(&self.pool)
        .await
        .context("reading the server's binary log settings")?;
        if on != 1 || format != "ROW" || image != "FULL" {
            return Ok(None);
        }
        match self.binlog_end().await {
            // Not allowed to read it: the triggers it is.
            Err(e) if matches!(e.number(), Some(NOT_ALLOWED | ACCESS_DENIED)) => Ok(None),
            other => Ok(other?),
        }
    }

    /// `SHOW MASTER STATUS`: where the server's binary log ends (`None`: it keeps none).
    async fn binlog_end(&self) -> Result<Option<Position>, StoreError> {
        let row = timed(
            "reading the binary log's end",
            self.statement_timeout,
            sqlx::raw_sql("SHOW MASTER STATUS").fetch_optional(&self.pool),
        )
        .await?;
        row.map(|row| {
            Ok(Position {
                file: row.try_get(0)?,
                offset: row.try_get(1)?,
            })
        })
        .transpose()
        .map_err(|e| StoreError::classify("reading the binary log's end", e))
    }

    async fn database_name(&self) -> Result<String, StoreError> {
        timed(
            "reading the database's name",
            self.statement_timeout,
            sqlx::query_scalar("SELECT DATABASE()").fetch_one(&self.pool),
        )
        .await
    }

    /// Where `Timestamp` and `Bank_Name` are among `stock_data`'s columns now.
    async fn key_columns(&self) -> Result<KeyColumns, StoreError> {
        let places: BTreeMap<String, u64> = timed(
            "reading stock_data's columns",
            self.statement_timeout,
            sqlx::query_as(
                "SELECT COLUMN_NAME, ORDINAL_POSITION FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'stock_data' \
                 AND COLUMN_NAME IN ('Timestamp', 'Bank_Name')",
            )
            .fetch_all(&self.pool),
        )
        .await?
        .into_iter()
        .collect();
        let place = |name: &str| places.get(name).map(|p| *p as usize - 1);
        let columns: i64 = timed(
            "reading stock_data's columns",
            self.statement_timeout,
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'stock_data'",
            )
            .fetch_one(&self.pool),
        )
        .await?;
        match (place("Timestamp"), place("Bank_Name")) {
            (Some(timestamp), Some(symbol)) => Ok(KeyColumns {
                timestamp,
                symbol,
                columns: columns as u64,
            }),
            _ => Err(StoreError::Capture(
                "stock_data has no Timestamp or Bank_Name column: the binary log's rows cannot \
                 be placed"
                    .into(),
            )),
        }
    }

    async fn drop_triggers(&self) -> Result<()> {
        for trigger in TRIGGERS {
            sqlx::raw_sql(AssertSqlSafe(format!("DROP TRIGGER IF EXISTS {trigger}")))
                .execute(&self.pool)
                .await
                .with_context(|| format!("dropping the trigger {trigger}"))?;
        }
        Ok(())
    }
}

/// Marks each symbol stale from its minute (or keeps an earlier mark).
async fn mark(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    marks: BTreeMap<String, NaiveDateTime>,
) -> Result<(), sqlx::Error> {
    let marks: Vec<(String, NaiveDateTime)> = marks.into_iter().collect();
    for chunk in marks.chunks(MARKS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO rollup_pending (Bank_Name, From_Minute) VALUES {} \
             ON DUPLICATE KEY UPDATE From_Minute = \
             LEAST(COALESCE(From_Minute, VALUES(From_Minute)), VALUES(From_Minute))",
            vec!["(?, ?)"; chunk.len()].join(", ")
        );
        let mut insert = sqlx::query(AssertSqlSafe(sql));
        for (symbol, minute) in chunk {
            insert = insert.bind(symbol).bind(minute);
        }
        insert.execute(&mut **tx).await?;
    }
    Ok(())
}
