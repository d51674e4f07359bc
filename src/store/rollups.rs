//! The rollups a batch maintains inside its own transaction: which of its rows change what is
//! stored, and, per symbol, `ohlcv_1m`, `indicators_1m` and `latest_quotes` recomputed from the
//! stored rows from the earliest changed minute on. Recomputing from stored rows (instead of
//! folding the batch into running state) is what keeps them exact across replays and crashes.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sqlx::{MySql, MySqlConnection, QueryBuilder, Row};

use crate::rollup::{self, Bar, IndicatorState, LOOKBACK};
use crate::tick::Tick;

/// Symbols per change-detection query.
const SYMBOLS_PER_QUERY: usize = 200;
/// Bars per upsert statement (10 placeholders each, far under the 65,535 limit).
const BARS_PER_STATEMENT: usize = 2000;

/// The batch's rows that are new or differ from what is stored (the last one wins when the
/// batch holds a key twice), in key order.
pub async fn changed_rows<'t>(
    tx: &mut MySqlConnection,
    ticks: &'t [Tick],
) -> Result<Vec<&'t Tick>> {
    let mut by_symbol: BTreeMap<&str, BTreeMap<NaiveDateTime, &Tick>> = BTreeMap::new();
    for tick in ticks {
        by_symbol
            .entry(&tick.symbol)
            .or_default()
            .insert(tick.timestamp.naive_utc(), tick);
    }
    let symbols: Vec<_> = by_symbol.iter().collect();
    let mut stored: BTreeMap<(String, NaiveDateTime), ([Decimal; 4], i64)> = BTreeMap::new();
    for chunk in symbols.chunks(SYMBOLS_PER_QUERY) {
        let mut query: QueryBuilder<MySql> = QueryBuilder::new(
            "SELECT Bank_Name, `Timestamp`, Open, High, Low, Close, Volume FROM stock_data WHERE ",
        );
        for (i, (symbol, rows)) in chunk.iter().enumerate() {
            let (first, last) = (rows.keys().next(), rows.keys().next_back());
            if i > 0 {
                query.push(" OR ");
            }
            query
                .push("(Bank_Name = ")
                .push_bind(**symbol)
                .push(" AND `Timestamp` BETWEEN ")
                .push_bind(first)
                .push(" AND ")
                .push_bind(last)
                .push(")");
        }
        for row in query
            .build()
            .fetch_all(&mut *tx)
            .await
            .context("reading the stored rows a batch overlaps")?
        {
            stored.insert(
                (row.get(0), row.get(1)),
                ([row.get(2), row.get(3), row.get(4), row.get(5)], row.get(6)),
            );
        }
    }
    let mut changed = Vec::new();
    for (symbol, rows) in by_symbol {
        for (at, tick) in rows {
            let fresh = ([tick.open, tick.high, tick.low, tick.close], tick.volume);
            if stored.get(&(symbol.to_string(), at)) != Some(&fresh) {
                changed.push(tick);
            }
        }
    }
    Ok(changed)
}

/// Recomputes `symbol`'s bars and indicators from the minute holding `since` to its newest row,
/// and its latest quote.
pub async fn refresh(tx: &mut MySqlConnection, symbol: &str, since: DateTime<Utc>) -> Result<()> {
    let from = rollup::minute(since);
    let rows = sqlx::query(
        "SELECT `Timestamp`, Open, High, Low, Close, Volume FROM stock_data \
         WHERE Bank_Name = ? AND `Timestamp` >= ? ORDER BY `Timestamp`",
    )
    .bind(symbol)
    .bind(from.naive_utc())
    .fetch_all(&mut *tx)
    .await
    .context("reading rows for the rollups")?;
    let Some(newest) = rows.last() else {
        return Ok(());
    };
    let newest_at = newest.get::<NaiveDateTime, _>(0).and_utc();
    let bars = rollup::bucket(
        rows.iter().map(|r| {
            Bar::from_row(
                r.get::<NaiveDateTime, _>(0).and_utc(),
                [r.get(1), r.get(2), r.get(3), r.get(4)],
                r.get(5),
            )
        }),
        rollup::Interval::M1,
    );

    let mut state = resume_state(tx, symbol, from).await?;
    let indicators: Vec<_> = bars.iter().map(|bar| state.next(bar)).collect();
    for (bars, indicators) in bars
        .chunks(BARS_PER_STATEMENT)
        .zip(indicators.chunks(BARS_PER_STATEMENT))
    {
        let mut upsert: QueryBuilder<MySql> = QueryBuilder::new(
            "INSERT INTO ohlcv_1m (Bank_Name, `Timestamp`, Open, High, Low, Close, Volume, \
             Turnover, Ticks) ",
        );
        upsert.push_values(bars, |mut row, b| {
            row.push_bind(symbol)
                .push_bind(b.start.naive_utc())
                .push_bind(b.open)
                .push_bind(b.high)
                .push_bind(b.low)
                .push_bind(b.close)
                .push_bind(b.volume)
                .push_bind(b.turnover)
                .push_bind(b.ticks);
        });
        upsert.push(
            " ON DUPLICATE KEY UPDATE Open = VALUES(Open), High = VALUES(High), \
             Low = VALUES(Low), Close = VALUES(Close), Volume = VALUES(Volume), \
             Turnover = VALUES(Turnover), Ticks = VALUES(Ticks)",
        );
        upsert
            .build()
            .execute(&mut *tx)
            .await
            .context("upserting ohlcv_1m")?;

        let mut upsert: QueryBuilder<MySql> = QueryBuilder::new(
            "INSERT INTO indicators_1m (Bank_Name, `Timestamp`, SMA_20, SMA_50, EMA_20, VWAP, \
             Volatility_20, Session_Volume, Session_Turnover) ",
        );
        upsert.push_values(bars.iter().zip(indicators), |mut row, (b, i)| {
            row.push_bind(symbol)
                .push_bind(b.start.naive_utc())
                .push_bind(i.sma_20)
                .push_bind(i.sma_50)
                .push_bind(i.ema_20)
                .push_bind(i.vwap)
                .push_bind(i.volatility_20)
                .push_bind(i.session_volume)
                .push_bind(i.session_turnover);
        });
        upsert.push(
            " ON DUPLICATE KEY UPDATE SMA_20 = VALUES(SMA_20), SMA_50 = VALUES(SMA_50), \
             EMA_20 = VALUES(EMA_20), VWAP = VALUES(VWAP), Volatility_20 = VALUES(Volatility_20), \
             Session_Volume = VALUES(Session_Volume), Session_Turnover = VALUES(Session_Turnover)",
        );
        upsert
            .build()
            .execute(&mut *tx)
            .await
            .context("upserting indicators_1m")?;
    }
    store_latest_quote(tx, symbol, newest_at, newest.get(4)).await
}

/// Indicator state after the bars before `from`, as stored.
async fn resume_state(
    tx: &mut MySqlConnection,
    symbol: &str,
    from: DateTime<Utc>,
) -> Result<IndicatorState> {
    let closes = sqlx::query(
        "SELECT Close FROM ohlcv_1m WHERE Bank_Name = ? AND `Timestamp` < ? \
         ORDER BY `Timestamp` DESC LIMIT ?",
    )
    .bind(symbol)
    .bind(from.naive_utc())
    .bind(LOOKBACK as i64)
    .fetch_all(&mut *tx)
    .await
    .context("reading the bars before a batch")?;
    let last = sqlx::query(
        "SELECT `Timestamp`, EMA_20, Session_Volume, Session_Turnover FROM indicators_1m \
         WHERE Bank_Name = ? AND `Timestamp` < ? ORDER BY `Timestamp` DESC LIMIT 1",
    )
    .bind(symbol)
    .bind(from.naive_utc())
    .fetch_optional(&mut *tx)
    .await
    .context("reading the indicators before a batch")?;
    Ok(IndicatorState::resume(
        closes.iter().rev().map(|r| r.get::<Decimal, _>(0)),
        last.map(|r| {
            (
                r.get::<NaiveDateTime, _>(0).and_utc(),
                r.get(1),
                r.get(2),
                r.get(3),
            )
        }),
    ))
}

/// The symbol's latest quote: its newest row, and the change against the last close of the
/// session before the newest row's.
async fn store_latest_quote(
    tx: &mut MySqlConnection,
    symbol: &str,
    newest_at: DateTime<Utc>,
    price: Decimal,
) -> Result<()> {
    let day = rollup::session_start(newest_at).naive_utc();
    let today = sqlx::query(
        "SELECT (SELECT Open FROM ohlcv_1m WHERE Bank_Name = ? AND `Timestamp` >= ? \
                 ORDER BY `Timestamp` LIMIT 1), \
                MAX(High), MIN(Low), CAST(SUM(Volume) AS SIGNED), \
                (SELECT Close FROM ohlcv_1m WHERE Bank_Name = ? AND `Timestamp` < ? \
                 ORDER BY `Timestamp` DESC LIMIT 1) \
         FROM ohlcv_1m WHERE Bank_Name = ? AND `Timestamp` >= ?",
    )
    .bind(symbol)
    .bind(day)
    .bind(symbol)
    .bind(day)
    .bind(symbol)
    .bind(day)
    .fetch_one(&mut *tx)
    .await
    .context("reading the session for latest_quotes")?;
    let prev_close: Option<Decimal> = today.get(4);
    let change = prev_close.map(|p| price - p);
    let change_pct = prev_close
        .zip(change)
        .filter(|(p, _)| !p.is_zero())
        .and_then(|(p, c)| (c * Decimal::ONE_HUNDRED / p).to_f64());
    sqlx::query(
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
    .bind(today.get::<Decimal, _>(0))
    .bind(today.get::<Decimal, _>(1))
    .bind(today.get::<Decimal, _>(2))
    .bind(today.get::<i64, _>(3))
    .execute(&mut *tx)
    .await
    .context("upserting latest_quotes")?;
    Ok(())
}
