//! The rollups, derived from `stock_data` whoever wrote it: per symbol, `bars_1m` (one-minute
//! bars with their indicators) and `latest_quotes` recomputed from the stored rows from the
//! earliest stale minute on. A trigger on `stock_data` records that minute in `rollup_pending` inside the
//! writer's own transaction (migration 0007); [`Store::refresh_rollups`] takes it and
//! recomputes in transactions of its own, so writers only move rows. Recomputing from stored
//! rows (instead of folding new rows into running state) keeps the rollups exact across
//! replays, crashes, late backfills and writers other than tickpipe.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sqlx::{Connection, MySql, MySqlConnection, QueryBuilder, Row};

use super::Store;
use super::batch::prepared_shapes;
use super::error::{StoreError, timed};
use super::lease::{self, Member, Unit};
use crate::alerts::AlertRule;
use crate::rollup::{self, Bar, IndicatorState, Indicators, LOOKBACK, VolumeSum};
use crate::tick::decimal_text;

/// Bars per upsert statement (16 placeholders each, far under the 65,535 limit).
const BARS_PER_STATEMENT: usize = 2048;
/// Rows read per page when recomputing a symbol's rollups.
const ROWS_PER_PAGE: usize = 10_000;

type Result<T> = std::result::Result<T, StoreError>;

impl Store {
    /// Symbols whose rollups are stale (or were being recomputed when a run stopped), the
    /// longest-stale first; at most `limit`.
    pub async fn stale_symbols(&self, limit: usize) -> Result<Vec<String>> {
        let symbols = timed(
            "reading rollup_pending",
            self.statement_timeout,
            sqlx::query_scalar(
                "SELECT Bank_Name FROM rollup_pending \
                 ORDER BY LEAST(COALESCE(From_Minute, Working_From), \
                                COALESCE(Working_From, From_Minute)) LIMIT ?",
            )
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool),
        )
        .await?;
        Ok(symbols)
    }

    /// Recomputes `symbol`'s stale rollups. First, briefly, it takes the stale range (writers
    /// who touch the symbol meanwhile mark it stale again); then it recomputes from reads that
    /// see every row committed before, and lets go of the range it took. A run that
    /// stops between the two leaves the range taken, and the next one takes it again. Only the
    /// holder of the rollup stage ([`Unit::Rollups`]) takes ranges and commits recomputes. A
    /// range a writer holds locked right now (its transaction is open) is skipped: `Skipped`,
    /// to be taken later. `rules`' alerts at the recomputed bars are stored in the same
    /// transaction.
    pub async fn refresh_rollups(
        &self,
        symbol: &str,
        member: &Member,
        rules: &[AlertRule],
    ) -> Result<Refreshed> {
        let deadline = self.statement_timeout;
        let mut tx = timed("starting a transaction", deadline, self.pool.begin()).await?;
        // Only the rollup stage's holder takes ranges: one that lost it (paused and taken
        // over) must not move a range the new holder is recomputing.
        lease::check(&mut tx, member, [Unit::Rollups], deadline).await?;
        let taken: Option<(Option<NaiveDateTime>, Option<NaiveDateTime>)> = timed(
            "taking a stale range",
            deadline,
            sqlx::query_as(
                "SELECT From_Minute, Working_From FROM rollup_pending \
                 WHERE Bank_Name = ? FOR UPDATE SKIP LOCKED",
            )
            .bind(symbol)
            .fetch_optional(&mut *tx),
        )
        .await?;
        let Some(taken) = taken else {
            // Gone (done by now), or locked by a writer whose transaction is open.
            let present = timed(
                "reading a stale range",
                deadline,
                sqlx::query("SELECT 1 FROM rollup_pending WHERE Bank_Name = ?")
                    .bind(symbol)
                    .fetch_optional(&mut *tx),
            )
            .await?;
            return Ok(if present.is_some() {
                Refreshed::Skipped
            } else {
                Refreshed::Done
            });
        };
        let Some(from) = taken.0.into_iter().chain(taken.1).min() else {
            return Ok(Refreshed::Done);
        };
        timed(
            "taking a stale range",
            deadline,
            sqlx::query(
                "UPDATE rollup_pending SET Working_From = ?, From_Minute = NULL \
                 WHERE Bank_Name = ?",
            )
            .bind(from)
            .bind(symbol)
            .execute(&mut *tx),
        )
        .await?;
        timed("taking a stale range", deadline, tx.commit()).await?;

        // A new transaction, READ COMMITTED: each read sees every row committed before it,
        // so every row committed before the range was taken (a row committed later marks the
        // range stale again). No gap locks: two symbols recomputed at once, each clearing its
        // bars from a minute on, never lock each other's gaps (REPEATABLE READ deadlocked them
        // on the gap past the newest bar).
        let mut connection = timed("connecting to MySQL", deadline, self.pool.acquire()).await?;
        let result = async {
            timed(
                "starting a transaction",
                deadline,
                sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .execute(&mut *connection),
            )
            .await?;
            let mut tx = timed("starting a transaction", deadline, connection.begin()).await?;
            lease::check(&mut tx, member, [Unit::Rollups], deadline).await?;
            refresh(&mut tx, symbol, from.and_utc(), deadline).await?;
            let first_bar = rollup::minute(from.and_utc());
            super::alerts::raise(&mut tx, symbol, first_bar, rules, deadline).await?;
            // Let go of the range taken (not one taken since: a crashed run's is taken again), and
            // of the row when nothing is stale. A writer's open transaction may hold the row: the
            // recompute commits anyway, and the range is simply taken again later.
            timed(
                "releasing a stale range",
                deadline,
                sqlx::query("SET SESSION innodb_lock_wait_timeout = 5").execute(&mut *tx),
            )
            .await?;
            let releases = [
                sqlx::query(
                    "UPDATE rollup_pending SET Working_From = NULL \
                     WHERE Bank_Name = ? AND Working_From = ?",
                )
                .bind(symbol)
                .bind(from),
                sqlx::query(
                    "DELETE FROM rollup_pending \
                     WHERE Bank_Name = ? AND From_Minute IS NULL AND Working_From IS NULL",
                )
                .bind(symbol),
            ];
            for release in releases {
                let released = timed(
                    "releasing a stale range",
                    deadline,
                    release.execute(&mut *tx),
                )
                .await;
                match released {
                    Err(StoreError::Transient { .. }) | Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            timed(
                "releasing a stale range",
                deadline,
                sqlx::query("SET SESSION innodb_lock_wait_timeout = DEFAULT").execute(&mut *tx),
            )
            .await?;
            timed("committing rollups", deadline, tx.commit()).await?;
            Ok(Refreshed::Done)
        }
        .await;
        if result.is_err() {
            // A statement may still run (or hang) on the server: never reuse the connection.
            connection.close_on_drop();
        }
        result
    }
}

/// What became of a stale range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// Recomputed (or nothing was stale any more).
    Done,
    /// A writer's open transaction holds it: try again later.
    Skipped,
}

/// Recomputes `symbol`'s bars and indicators from the minute holding `since` to its newest row,
/// and its latest quote; bars from there whose rows are gone (deleted) go too. Rows are read a
/// page at a time, so a late backfill in front of a long history holds one page in memory, not
/// the history.
///
/// A figure too large to represent stops the symbol's rollups at that bar (logged; the rows
/// themselves are stored): the bars before it stay exact.
pub async fn refresh(
    tx: &mut MySqlConnection,
    symbol: &str,
    since: DateTime<Utc>,
    deadline: Duration,
) -> Result<()> {
    let from = rollup::minute(since);
    timed(
        "clearing stale bars",
        deadline,
        sqlx::query("DELETE FROM bars_1m WHERE Bank_Name = ? AND `Timestamp` >= ?")
            .bind(symbol)
            .bind(from.naive_utc())
            .execute(&mut *tx),
    )
    .await?;
    let mut state = resume_state(tx, symbol, from, deadline).await?;
    let mut out = BarWriter::new(symbol, deadline);
    // The bar still open at the end of a page (its minute may go on in the next one).
    let mut open: Option<Bar> = None;
    let mut newest: Option<(DateTime<Utc>, Decimal)> = None;
    let mut after: Option<NaiveDateTime> = None;
    let mut failed = None;
    'pages: loop {
        let page = sqlx::query(
            "SELECT `Timestamp`, Open, High, Low, Close, Volume FROM stock_data \
             WHERE Bank_Name = ? AND `Timestamp` >= ? AND (? IS NULL OR `Timestamp` > ?) \
             ORDER BY `Timestamp` LIMIT ?",
        )
        .bind(symbol)
        .bind(from.naive_utc())
        .bind(after)
        .bind(after)
        .bind(ROWS_PER_PAGE as i64);
        let page = timed(
            "reading rows for the rollups",
            deadline,
            page.fetch_all(&mut *tx),
        )
        .await?;
        for r in &page {
            let at = r.try_get::<NaiveDateTime, _>(0)?.and_utc();
            let close: Decimal = r.try_get(4)?;
            newest = Some((at, close));
            let row = Bar::from_row(
                at,
                [r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, close],
                r.try_get(5)?,
            );
            let row = match row {
                Ok(row) => Bar {
                    start: rollup::minute(at),
                    ..row
                },
                Err(e) => {
                    failed = Some((at, e));
                    break 'pages;
                }
            };
            match open.as_mut() {
                Some(bar) if bar.start == row.start => {
                    if let Err(e) = bar.absorb(&row) {
                        failed = Some((at, e));
                        break 'pages;
                    }
                }
                _ => {
                    if let Some(done) = open.replace(row) {
                        match state.next(&done) {
                            Ok(indicators) => out.push(tx, done, indicators).await?,
                            Err(e) => {
                                failed = Some((done.start, e));
                                break 'pages;
                            }
                        }
                    }
                }
            }
        }
        if page.len() < ROWS_PER_PAGE {
            break;
        }
        after = newest.map(|(at, _)| at.naive_utc());
    }
    if failed.is_none()
        && let Some(done) = open
    {
        match state.next(&done) {
            Ok(indicators) => out.push(tx, done, indicators).await?,
            Err(e) => failed = Some((done.start, e)),
        }
    }
    out.flush(tx).await?;
    if let Some((at, e)) = failed {
        tracing::error!(
            symbol,
            "rollups stop at {at}: {e}; the rows are stored, bars and indicators from there on \
             are not"
        );
        return Ok(());
    }
    // No row from `from` on (they were deleted): the quote is the newest row before, if any.
    let newest = match newest {
        Some(newest) => Some(newest),
        None => timed(
            "reading the newest row",
            deadline,
            sqlx::query_as::<_, (NaiveDateTime, Decimal)>(
                "SELECT `Timestamp`, Close FROM stock_data WHERE Bank_Name = ? \
                 ORDER BY `Timestamp` DESC LIMIT 1",
            )
            .bind(symbol)
            .fetch_optional(&mut *tx),
        )
        .await?
        .map(|(at, close)| (at.and_utc(), close)),
    };
    match newest {
        Some((at, price)) => store_latest_quote(tx, symbol, at, price, deadline).await,
        None => {
            timed(
                "removing a quote without rows",
                deadline,
                sqlx::query("DELETE FROM latest_quotes WHERE Bank_Name = ?")
                    .bind(symbol)
                    .execute(&mut *tx),
            )
            .await?;
            Ok(())
        }
    }
}

/// Bars and their indicators on their way to `bars_1m`, written in
/// multi-row upserts of [`BARS_PER_STATEMENT`].
struct BarWriter<'s> {
    symbol: &'s str,
    deadline: Duration,
    bars: Vec<(Bar, Indicators)>,
}

impl<'s> BarWriter<'s> {
    fn new(symbol: &'s str, deadline: Duration) -> Self {
        BarWriter {
            symbol,
            deadline,
            bars: Vec::new(),
        }
    }

    async fn push(
        &mut self,
        tx: &mut MySqlConnection,
        bar: Bar,
        indicators: Indicators,
    ) -> Result<()> {
        self.bars.push((bar, indicators));
        if self.bars.len() >= BARS_PER_STATEMENT {
            self.flush(tx).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, tx: &mut MySqlConnection) -> Result<()> {
        let bars = std::mem::take(&mut self.bars);
        for run in prepared_shapes(&bars) {
            self.upsert(tx, run).await?;
        }
        Ok(())
    }

    async fn upsert(&self, tx: &mut MySqlConnection, bars: &[(Bar, Indicators)]) -> Result<()> {
        let symbol = self.symbol;
        // Decimals go in as text, written fast (`Decimal`'s own formatting was a fifth of the
        // stage's CPU); volume sums as text too: DECIMAL(38,8) holds more digits than a
        // `Decimal`.
        let texts: Vec<[Option<String>; 9]> = bars
            .iter()
            .map(|(b, i)| {
                [
                    Some(decimal_text(b.open)),
                    Some(decimal_text(b.high)),
                    Some(decimal_text(b.low)),
                    Some(decimal_text(b.close)),
                    Some(b.volume.to_string()),
                    Some(decimal_text(b.turnover)),
                    i.sma_20.map(decimal_text),
                    i.sma_50.map(decimal_text),
                    i.vwap.map(decimal_text),
                ]
            })
            .collect();
        let mut upsert: QueryBuilder<MySql> = QueryBuilder::new(
            "INSERT INTO bars_1m (Bank_Name, `Timestamp`, Open, High, Low, Close, Volume, \
             Turnover, Ticks, SMA_20, SMA_50, EMA_20, VWAP, Volatility_20, Session_Volume, \
             Session_Turnover) ",
        );
        upsert.push_values(bars.iter().zip(&texts), |mut row, ((b, i), t)| {
            row.push_bind(symbol)
                .push_bind(b.start.naive_utc())
                .push_bind(&t[0])
                .push_bind(&t[1])
                .push_bind(&t[2])
                .push_bind(&t[3])
                .push_bind(&t[4])
                .push_bind(&t[5])
                .push_bind(b.ticks.min(i32::MAX as i64) as i32)
                .push_bind(&t[6])
                .push_bind(&t[7])
                .push_bind(i.ema_20)
                .push_bind(&t[8])
                .push_bind(i.volatility_20)
                .push_bind(i.session_volume.to_string())
                .push_bind(decimal_text(i.session_turnover));
        });
        upsert.push(
            " ON DUPLICATE KEY UPDATE Open = VALUES(Open), High = VALUES(High), \
             Low = VALUES(Low), Close = VALUES(Close), Volume = VALUES(Volume), \
             Turnover = VALUES(Turnover), Ticks = VALUES(Ticks), SMA_20 = VALUES(SMA_20), \
             SMA_50 = VALUES(SMA_50), EMA_20 = VALUES(EMA_20), VWAP = VALUES(VWAP), \
             Volatility_20 = VALUES(Volatility_20), Session_Volume = VALUES(Session_Volume), \
             Session_Turnover = VALUES(Session_Turnover)",
        );
        timed(
            "upserting bars_1m",
            self.deadline,
            upsert.build().execute(&mut *tx),
        )
        .await?;
        Ok(())
    }
}

/// Indicator state after the bars before `from`, as stored.
async fn resume_state(
    tx: &mut MySqlConnection,
    symbol: &str,
    from: DateTime<Utc>,
    deadline: Duration,
) -> Result<IndicatorState> {
    let closes = sqlx::query(
        "SELECT Close FROM bars_1m WHERE Bank_Name = ? AND `Timestamp` < ? \
         ORDER BY `Timestamp` DESC LIMIT ?",
    )
    .bind(symbol)
    .bind(from.naive_utc())
    .bind(LOOKBACK as i64);
    let closes = timed(
        "reading the bars before a batch",
        deadline,
        closes.fetch_all(&mut *tx),
    )
    .await?;
    let last = sqlx::query(
        "SELECT `Timestamp`, EMA_20, CAST(Session_Volume AS CHAR), Session_Turnover \
         FROM bars_1m \
         WHERE Bank_Name = ? AND `Timestamp` < ? ORDER BY `Timestamp` DESC LIMIT 1",
    )
    .bind(symbol)
    .bind(from.naive_utc());
    let last = timed(
        "reading the indicators before a batch",
        deadline,
        last.fetch_optional(&mut *tx),
    )
    .await?;
    let closes = closes
        .iter()
        .rev()
        .map(|r| r.try_get::<Decimal, _>(0))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let last = match last {
        None => None,
        Some(r) => {
            let volume: String = r.try_get(2)?;
            Some((
                r.try_get::<NaiveDateTime, _>(0)?.and_utc(),
                r.try_get(1)?,
                VolumeSum::parse(&volume).map_err(|message| StoreError::Data {
                    what: "reading a session's volume",
                    number: 0,
                    message,
                })?,
                r.try_get(3)?,
            ))
        }
    };
    Ok(IndicatorState::resume(closes, last))
}

/// The symbol's latest quote: its newest row, and the change against the last close of the
/// session before the newest row's.
async fn store_latest_quote(
    tx: &mut MySqlConnection,
    symbol: &str,
    newest_at: DateTime<Utc>,
    price: Decimal,
    deadline: Duration,
) -> Result<()> {
    let day = rollup::session_start(newest_at).naive_utc();
    let today = sqlx::query(
        "SELECT (SELECT Open FROM bars_1m WHERE Bank_Name = ? AND `Timestamp` >= ? \
                 ORDER BY `Timestamp` LIMIT 1), \
                MAX(High), MIN(Low), CAST(SUM(Volume) AS CHAR), \
                (SELECT Close FROM bars_1m WHERE Bank_Name = ? AND `Timestamp` < ? \
                 ORDER BY `Timestamp` DESC LIMIT 1) \
         FROM bars_1m WHERE Bank_Name = ? AND `Timestamp` >= ?",
    )
    .bind(symbol)
    .bind(day)
    .bind(symbol)
    .bind(day)
    .bind(symbol)
    .bind(day);
    let today = timed(
        "reading the session for latest_quotes",
        deadline,
        today.fetch_one(&mut *tx),
    )
    .await?;
    let prev_close: Option<Decimal> = today.try_get(4)?;
    // Prices of at most 10^14 cannot overflow here; checked all the same.
    let change = prev_close.and_then(|p| price.checked_sub(p));
    let change_pct = prev_close
        .zip(change)
        .filter(|(p, _)| !p.is_zero())
        .and_then(|(p, c)| {
            c.checked_mul(Decimal::ONE_HUNDRED)?
                .checked_div(p)?
                .to_f64()
        });
    let upsert = sqlx::query(
        "INSERT INTO latest_quotes (Bank_Name, `Timestamp`, Price, Prev_Close, Price_Change, \
         Change_Pct, Day_Open, Day_High, Day_Low, Day_Volume, Updated_At) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6)) \
         ON DUPLICATE KEY UPDATE `Timestamp` = VALUES(`Timestamp`), Price = VALUES(Price), \
         Prev_Close = VALUES(Prev_Close), Price_Change = VALUES(Price_Change), \
         Change_Pct = VALUES(Change_Pct), Day_Open = VALUES(Day_Open), \
         Day_High = VALUES(Day_High), Day_Low = VALUES(Day_Low), \
         Day_Volume = VALUES(Day_Volume), Updated_At = VALUES(Updated_At)",
    )
    .bind(symbol)
    .bind(newest_at.naive_utc())
    .bind(price)
    .bind(prev_close)
    .bind(change)
    .bind(change_pct)
    .bind(today.try_get::<Decimal, _>(0)?)
    .bind(today.try_get::<Decimal, _>(1)?)
    .bind(today.try_get::<Decimal, _>(2)?)
    .bind(today.try_get::<String, _>(3)?);
    timed(
        "upserting latest_quotes",
        deadline,
        upsert.execute(&mut *tx),
    )
    .await?;
    Ok(())
}
