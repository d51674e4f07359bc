//! The `alerts` table: alerts stored by the rollup stage in its recompute's own transaction
//! (each once: keyed by rule, symbol and bar; what the rules no longer raise at the
//! recomputed bars taken back), read back by the API and the live feed.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use mysql_async::{Conn, Row, Value};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::Row as _;

use super::Store;
use super::bulk::{self, column, datetime, decimal, text};
use super::error::StoreError;
use crate::alerts::{self, AlertRule, BarPoint};
use crate::rollup::VolumeSum;

/// Alerts per insert statement (5 placeholders each).
const ALERTS_PER_STATEMENT: usize = 1000;
/// Bars read per page when judging alerts.
const BARS_PER_PAGE: usize = 10_000;

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredAlert {
    pub id: u64,
    pub rule: String,
    pub symbol: String,
    /// The minute of the bar that raised it.
    pub timestamp: DateTime<Utc>,
    pub price: Decimal,
    pub detail: String,
    pub fired_at: DateTime<Utc>,
}

/// A recompute's alerts, judged on its bars as it computes them (not read back): the
/// alerts `rules` raise at the recomputed bars (the closed ones: all but the newest), stored
/// unless stored already; alerts of these rules stored before at those bars that they no
/// longer raise (a late row changed a bar) are taken back. Reading the bars back cost a 1 M-row
/// backfill's rollups ~20 % of their work.
pub(super) struct AlertJudge {
    judge: alerts::Paged,
    /// Recomputed bars not judged yet.
    page: Vec<BarPoint>,
    /// The first bar judged: the stored one before the recompute's, else its first.
    judged_from: DateTime<Utc>,
    /// The recompute's first bar: from it on, a stored alert the rules no longer raise is
    /// taken back. The bar before is judged only when a later bar exists, so its alerts are
    /// added when missing, never taken back.
    recomputed_from: DateTime<Utc>,
}

impl AlertJudge {
    /// Inside a recompute's transaction: a judge for `symbol`'s bars from `from` on, carrying
    /// the stored bars its rules look back on; `None` when no rule applies to `symbol`.
    pub(super) async fn start(
        conn: &mut Conn,
        symbol: &str,
        from: DateTime<Utc>,
        rules: &[AlertRule],
        deadline: Duration,
    ) -> Result<Option<AlertJudge>, StoreError> {
        let applicable: Vec<AlertRule> = rules
            .iter()
            .filter(|rule| rule.applies_to(symbol))
            .cloned()
            .collect();
        let Some(lookback) = applicable.iter().map(AlertRule::lookback).max() else {
            return Ok(None);
        };
        const READING: &str = "reading bars for the alerts";
        // The bar before `from` is judged again: it may have been the newest when the last
        // recompute ended, held back then (it may still have grown) and never judged since.
        // Judging it again is the same judgment (no bar up to it changed), and stored alerts
        // are kept once. Whether a rule fires at a bar depends on it and the bar before, each
        // looking back `lookback`: the bars from the lookback before the bar before that one,
        // and the one before those (the newest at or before a moment is the one looked for).
        let judge_from = newest_bar_before(conn, symbol, from.naive_utc(), deadline).await?;
        let judge_from = judge_from.map_or(from, |minute| minute.and_utc());
        let before = newest_bar_before(conn, symbol, judge_from.naive_utc(), deadline).await?;
        let earliest = before.unwrap_or(judge_from.naive_utc())
            - chrono::TimeDelta::from_std(lookback).unwrap_or_default();
        let earliest = datetime(earliest.and_utc());
        // A page at a time: a rule may look back days. Each page is judged with the bars of
        // the lookback before it carried over, and the last bar held back to the next page:
        // the symbol's newest bar, which may still grow, is never judged (it is once a later
        // one exists).
        let mut judge = AlertJudge {
            judge: alerts::Paged::new(applicable, symbol, judge_from, lookback),
            page: Vec::new(),
            judged_from: judge_from,
            recomputed_from: from,
        };
        let mut after = Value::NULL;
        loop {
            let page: Vec<Row> = bulk::select(
                conn,
                READING,
                deadline,
                "SELECT `Timestamp`, Close, CAST(Volume AS DOUBLE) FROM bars_1m \
                 WHERE Bank_Name = ? AND `Timestamp` >= COALESCE( \
                     (SELECT MAX(`Timestamp`) FROM bars_1m \
                      WHERE Bank_Name = ? AND `Timestamp` < ?), ?) \
                   AND `Timestamp` < ? AND (? IS NULL OR `Timestamp` > ?) \
                 ORDER BY `Timestamp` LIMIT ?",
                vec![
                    text(symbol),
                    text(symbol),
                    earliest.clone(),
                    earliest.clone(),
                    datetime(from),
                    after.clone(),
                    after,
                    Value::Int(BARS_PER_PAGE as i64),
                ],
            )
            .await?;
            if page.is_empty() {
                break;
            }
            let bars = page
                .into_iter()
                .map(|mut row| {
                    Ok(BarPoint {
                        minute: column::<NaiveDateTime>(&mut row, 0, READING)?.and_utc(),
                        close: column(&mut row, 1, READING)?,
                        volume: column(&mut row, 2, READING)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            after = bars.last().map_or(Value::NULL, |bar| datetime(bar.minute));
            judge.judge.page(bars);
        }
        Ok(Some(judge))
    }

    /// The next recomputed bar (in time order, from `from` on), as it is stored.
    pub(super) fn bar(&mut self, minute: DateTime<Utc>, close: Decimal, volume: VolumeSum) {
        self.page.push(BarPoint {
            minute,
            close,
            volume: volume.to_f64(),
        });
        if self.page.len() >= BARS_PER_PAGE {
            self.judge.page(std::mem::take(&mut self.page));
        }
    }

    /// After the recompute's bars: stores what the rules raise and takes back what they no
    /// longer do, in the recompute's transaction.
    pub(super) async fn store(
        mut self,
        conn: &mut Conn,
        symbol: &str,
        deadline: Duration,
    ) -> Result<(), StoreError> {
        self.judge.page(std::mem::take(&mut self.page));
        let from = self.judged_from;
        let applicable = self.judge.rules();
        let fired = &self.judge.fired;
        const STORED: &str = "reading stored alerts";
        let stored: Vec<Row> = bulk::select(
            conn,
            STORED,
            deadline,
            "SELECT Id, Rule, `Timestamp` FROM alerts WHERE Bank_Name = ? AND `Timestamp` >= ?",
            vec![text(symbol), datetime(from)],
        )
        .await?;
        let mut stored_keys = std::collections::HashSet::new();
        for mut row in stored {
            let (id, rule, minute): (u64, String, NaiveDateTime) = (
                column(&mut row, 0, STORED)?,
                column(&mut row, 1, STORED)?,
                column(&mut row, 2, STORED)?,
            );
            let raised = fired
                .iter()
                .any(|f| f.rule == rule && f.minute.naive_utc() == minute);
            if raised {
                stored_keys.insert((rule, minute));
            } else if minute >= self.recomputed_from.naive_utc()
                && applicable.iter().any(|r| r.name == rule)
            {
                bulk::exec(
                    conn,
                    "taking an alert back",
                    deadline,
                    "DELETE FROM alerts WHERE Id = ?",
                    vec![Value::UInt(id)],
                )
                .await?;
            }
        }
        let new: Vec<&alerts::Fired> = fired
            .iter()
            .filter(|f| !stored_keys.contains(&(f.rule.clone(), f.minute.naive_utc())))
            .collect();
        for chunk in new.chunks(ALERTS_PER_STATEMENT) {
            let mut params = Vec::with_capacity(chunk.len() * 5);
            for alert in chunk {
                params.extend([
                    text(&alert.rule),
                    text(&alert.symbol),
                    datetime(alert.minute),
                    decimal(alert.price),
                    text(&truncated(&alert.detail, 500)),
                ]);
            }
            let rows = vec!["(?, ?, ?, ?, ?, UTC_TIMESTAMP(6))"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO alerts (Rule, Bank_Name, `Timestamp`, Price, Detail, Fired_At) \
                 VALUES {rows}"
            );
            bulk::exec(conn, "storing alerts", deadline, &sql, params).await?;
        }
        Ok(())
    }
}

/// The minute of `symbol`'s newest bar before `at`.
async fn newest_bar_before(
    conn: &mut Conn,
    symbol: &str,
    at: NaiveDateTime,
    deadline: Duration,
) -> Result<Option<NaiveDateTime>, StoreError> {
    const WHAT: &str = "reading bars for the alerts";
    let rows: Vec<Row> = bulk::select(
        conn,
        WHAT,
        deadline,
        "SELECT MAX(`Timestamp`) FROM bars_1m WHERE Bank_Name = ? AND `Timestamp` < ?",
        vec![text(symbol), datetime(at.and_utc())],
    )
    .await?;
    match rows.into_iter().next() {
        Some(mut row) => column(&mut row, 0, WHAT),
        None => Ok(None),
    }
}

fn truncated(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

impl Store {
    /// The newest `limit` alerts, newest first.
    pub async fn alerts(&self, limit: usize) -> anyhow::Result<Vec<StoredAlert>> {
        let rows = sqlx::query(
            "SELECT Id, Rule, Bank_Name, `Timestamp`, Price, Detail, Fired_At FROM alerts \
             ORDER BY Id DESC LIMIT ?",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| anyhow::anyhow!("reading alerts: {e}"))?;
        rows.iter()
            .map(|r| {
                Ok(StoredAlert {
                    id: r.try_get(0)?,
                    rule: r.try_get(1)?,
                    symbol: r.try_get(2)?,
                    timestamp: r.try_get::<NaiveDateTime, _>(3)?.and_utc(),
                    price: r.try_get(4)?,
                    detail: r.try_get(5)?,
                    fired_at: r.try_get::<NaiveDateTime, _>(6)?.and_utc(),
                })
            })
            .collect()
    }
}
