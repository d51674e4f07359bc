//! Read queries of the dashboard and API: symbols, latest quotes, bars with their indicators.
//! Everything read here is committed, whoever wrote it (this processor, another process, or a
//! Spark job on the same tables): the store is the source of truth.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::Row;
use sqlx::mysql::MySqlRow;

use super::Store;
use crate::rollup::{Bar, Indicators, VolumeSum};

/// A row of `latest_quotes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quote {
    pub symbol: String,
    /// Time of the symbol's newest row.
    pub timestamp: DateTime<Utc>,
    pub price: Decimal,
    pub prev_close: Option<Decimal>,
    pub change: Option<Decimal>,
    pub change_pct: Option<f64>,
    pub day_volume: VolumeSum,
    /// When the processor committed it.
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Every symbol's latest quote, by symbol.
    pub async fn quotes(&self) -> Result<Vec<Quote>> {
        let rows = sqlx::query(
            "SELECT Bank_Name, `Timestamp`, Price, Prev_Close, Price_Change, Change_Pct, \
             CAST(Day_Volume AS CHAR), Updated_At FROM latest_quotes ORDER BY Bank_Name",
        )
        .fetch_all(&self.pool)
        .await
        .context("reading latest_quotes")?;
        rows.iter()
            .map(|r| {
                Ok(Quote {
                    symbol: r.try_get(0)?,
                    timestamp: r.try_get::<NaiveDateTime, _>(1)?.and_utc(),
                    price: r.try_get(2)?,
                    prev_close: r.try_get(3)?,
                    change: r.try_get(4)?,
                    change_pct: r.try_get(5)?,
                    day_volume: volume_sum(r.try_get(6)?)?,
                    updated_at: r.try_get::<NaiveDateTime, _>(7)?.and_utc(),
                })
            })
            .collect()
    }

    /// Whether `symbol` has any stored bar.
    pub async fn has_symbol(&self, symbol: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM latest_quotes WHERE Bank_Name = ?")
            .bind(symbol)
            .fetch_optional(&self.pool)
            .await
            .context("reading latest_quotes")?;
        Ok(row.is_some())
    }

    /// The newest `limit` one-minute bars of `symbol` starting at or after `from`, oldest first,
    /// with their indicators.
    pub async fn bars_1m(
        &self,
        symbol: &str,
        from: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<(Bar, Indicators)>> {
        // DATETIME's first day stands for "from the start".
        let from = from.map_or(NaiveDate::from_ymd_opt(1000, 1, 1).unwrap().into(), |t| {
            t.naive_utc()
        });
        let rows = sqlx::query(
            "SELECT `Timestamp`, Open, High, Low, Close, CAST(Volume AS CHAR), Turnover, Ticks, \
                    SMA_20, SMA_50, EMA_20, VWAP, Volatility_20, CAST(Session_Volume AS CHAR), \
                    Session_Turnover \
             FROM bars_1m WHERE Bank_Name = ? AND `Timestamp` >= ? \
             ORDER BY `Timestamp` DESC LIMIT ?",
        )
        .bind(symbol)
        .bind(from)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .context("reading bars_1m")?;
        rows.iter().rev().map(bar_with_indicators).collect()
    }

    /// Closes of the newest `n` one-minute bars of `symbol`, oldest first.
    pub async fn recent_closes(&self, symbol: &str, n: usize) -> Result<Vec<Decimal>> {
        let rows = sqlx::query(
            "SELECT Close FROM bars_1m WHERE Bank_Name = ? ORDER BY `Timestamp` DESC LIMIT ?",
        )
        .bind(symbol)
        .bind(n as i64)
        .fetch_all(&self.pool)
        .await
        .context("reading bars_1m")?;
        Ok(rows.iter().rev().map(|r| r.get(0)).collect())
    }
}

fn bar_with_indicators(r: &MySqlRow) -> Result<(Bar, Indicators)> {
    Ok((
        Bar {
            start: r.try_get::<NaiveDateTime, _>(0)?.and_utc(),
            open: r.try_get(1)?,
            high: r.try_get(2)?,
            low: r.try_get(3)?,
            close: r.try_get(4)?,
            volume: volume_sum(r.try_get(5)?)?,
            turnover: r.try_get(6)?,
            ticks: r.try_get::<i32, _>(7)?.into(),
        },
        Indicators {
            sma_20: r.try_get(8)?,
            sma_50: r.try_get(9)?,
            ema_20: r.try_get(10)?,
            vwap: r.try_get(11)?,
            volatility_20: r.try_get(12)?,
            session_volume: volume_sum(r.try_get(13)?)?,
            session_turnover: r.try_get(14)?,
        },
    ))
}

/// A stored volume sum (DECIMAL(38,8), read as text: it can hold more than a `Decimal`).
fn volume_sum(text: String) -> Result<VolumeSum> {
    VolumeSum::parse(&text).map_err(anyhow::Error::msg)
}
