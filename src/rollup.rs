//! Rollups: bars and their indicators, one definition for the processor (which stores the
//! one-minute ones with every batch) and the dashboard (which re-buckets them into longer
//! intervals).
//!
//! A trading session is a UTC calendar day. Prices stay exact decimals; EMA and volatility are
//! floats, computed step by step from the stored previous value, so a recomputation from any
//! bar on gives bit-identical results.

use std::collections::VecDeque;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// Bars the longest indicator looks back over.
pub const LOOKBACK: usize = 50;
/// Decimal places of stored SMA and VWAP values.
const INDICATOR_DP: u32 = 8;

/// Open, high, low, close and volume over an interval (a row of `stock_data` is a bar too).
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Start of the interval (for a stored row: its timestamp).
    pub start: DateTime<Utc>,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: i64,
    /// Sum of close × volume over the rows in the bar.
    pub turnover: Decimal,
    /// Rows of `stock_data` in the bar.
    pub ticks: i64,
}

impl Bar {
    /// A stored row as a bar of its own.
    pub fn from_row(
        start: DateTime<Utc>,
        [open, high, low, close]: [Decimal; 4],
        volume: i64,
    ) -> Bar {
        Bar {
            start,
            open,
            high,
            low,
            close,
            volume,
            turnover: close * Decimal::from(volume),
            ticks: 1,
        }
    }
}

/// Bar widths the dashboard offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    M1,
    M5,
    M15,
    H1,
    D1,
}

impl Interval {
    pub fn parse(text: &str) -> Option<Interval> {
        Some(match text {
            "1m" => Interval::M1,
            "5m" => Interval::M5,
            "15m" => Interval::M15,
            "1h" => Interval::H1,
            "1d" => Interval::D1,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Interval::M1 => "1m",
            Interval::M5 => "5m",
            Interval::M15 => "15m",
            Interval::H1 => "1h",
            Interval::D1 => "1d",
        }
    }

    /// One-minute bars per bar of this interval.
    pub fn minutes(self) -> i64 {
        match self {
            Interval::M1 => 1,
            Interval::M5 => 5,
            Interval::M15 => 15,
            Interval::H1 => 60,
            Interval::D1 => 1440,
        }
    }

    /// Start of the interval holding `t` (aligned to the Unix epoch, so days are UTC days).
    pub fn floor(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let width = self.minutes() * 60;
        let secs = t.timestamp().div_euclid(width) * width;
        DateTime::from_timestamp(secs, 0).expect("a floored valid time is valid")
    }
}

/// Merges time-ordered bars into bars of `interval`.
pub fn bucket(bars: impl IntoIterator<Item = Bar>, interval: Interval) -> Vec<Bar> {
    let mut out: Vec<Bar> = Vec::new();
    for bar in bars {
        let start = interval.floor(bar.start);
        match out.last_mut() {
            Some(last) if last.start == start => {
                last.high = last.high.max(bar.high);
                last.low = last.low.min(bar.low);
                last.close = bar.close;
                last.volume += bar.volume;
                last.turnover += bar.turnover;
                last.ticks += bar.ticks;
            }
            _ => out.push(Bar { start, ..bar }),
        }
    }
    out
}

/// Indicators of one bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Indicators {
    pub sma_20: Option<Decimal>,
    pub sma_50: Option<Decimal>,
    pub ema_20: f64,
    pub vwap: Option<Decimal>,
    pub volatility_20: Option<f64>,
    pub session_volume: Decimal,
    pub session_turnover: Decimal,
}

/// What computing the next bar's indicators needs from the bars before it.
#[derive(Debug, Clone, Default)]
pub struct IndicatorState {
    /// Closes of up to the last [`LOOKBACK`] bars, oldest first.
    closes: VecDeque<Decimal>,
    ema_20: Option<f64>,
    session: Option<NaiveDate>,
    session_volume: Decimal,
    session_turnover: Decimal,
}

impl IndicatorState {
    /// The state after the bars whose closes are `closes` (oldest first), the last of which
    /// started at `last_start` with the stored EMA and session sums given.
    pub fn resume(
        closes: impl IntoIterator<Item = Decimal>,
        last: Option<(DateTime<Utc>, f64, Decimal, Decimal)>,
    ) -> IndicatorState {
        let mut closes: VecDeque<Decimal> = closes.into_iter().collect();
        while closes.len() > LOOKBACK {
            closes.pop_front();
        }
        let mut state = IndicatorState {
            closes,
            ..Default::default()
        };
        if let Some((start, ema, volume, turnover)) = last {
            state.ema_20 = Some(ema);
            state.session = Some(start.date_naive());
            state.session_volume = volume;
            state.session_turnover = turnover;
        }
        state
    }

    /// Indicators of `bar`, the bar after those already seen.
    pub fn next(&mut self, bar: &Bar) -> Indicators {
        if self.closes.len() == LOOKBACK {
            self.closes.pop_front();
        }
        self.closes.push_back(bar.close);

        let close = bar.close.to_f64().unwrap_or(f64::NAN);
        let ema_20 = match self.ema_20 {
            None => close,
            Some(previous) => previous + (2.0 / 21.0) * (close - previous),
        };
        self.ema_20 = Some(ema_20);

        let session = bar.start.date_naive();
        if self.session != Some(session) {
            self.session = Some(session);
            self.session_volume = Decimal::ZERO;
            self.session_turnover = Decimal::ZERO;
        }
        self.session_volume += Decimal::from(bar.volume);
        self.session_turnover += bar.turnover;
        let vwap = (!self.session_volume.is_zero())
            .then(|| (self.session_turnover / self.session_volume).round_dp(INDICATOR_DP));

        Indicators {
            sma_20: self.sma(20),
            sma_50: self.sma(50),
            ema_20,
            vwap,
            volatility_20: self.volatility(20),
            session_volume: self.session_volume,
            session_turnover: self.session_turnover,
        }
    }

    /// Mean close of the last `n` bars.
    fn sma(&self, n: usize) -> Option<Decimal> {
        if self.closes.len() < n {
            return None;
        }
        let sum: Decimal = self.closes.iter().rev().take(n).sum();
        Some((sum / Decimal::from(n)).round_dp(INDICATOR_DP))
    }

    /// Sample standard deviation of the last `n` one-bar log returns.
    fn volatility(&self, n: usize) -> Option<f64> {
        if self.closes.len() < n + 1 {
            return None;
        }
        let closes: Vec<f64> = self
            .closes
            .iter()
            .skip(self.closes.len() - (n + 1))
            .map(|c| c.to_f64().unwrap_or(f64::NAN))
            .collect();
        let returns: Vec<f64> = closes.windows(2).map(|w| (w[1] / w[0]).ln()).collect();
        let mean = returns.iter().sum::<f64>() / n as f64;
        let variance = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        Some(variance.sqrt())
    }
}

/// Indicators for each of `bars` (time-ordered, no history before them).
pub fn indicators(bars: &[Bar]) -> Vec<Indicators> {
    let mut state = IndicatorState::default();
    bars.iter().map(|bar| state.next(bar)).collect()
}

/// The start of the minute holding `t`.
pub fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    Interval::M1.floor(t)
}

/// The start of the UTC day holding `t`: where a session begins.
pub fn session_start(t: DateTime<Utc>) -> DateTime<Utc> {
    Interval::D1.floor(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn at(minute: i64, second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_040 + minute * 60 + second, 0).unwrap()
    }

    fn row(minute: i64, second: i64, close: Decimal, volume: i64) -> Bar {
        Bar::from_row(at(minute, second), [close, close, close, close], volume)
    }

    #[test]
    fn rows_bucket_into_minutes() {
        let rows = vec![
            Bar::from_row(at(0, 0), [dec!(10), dec!(12), dec!(9), dec!(11)], 5),
            Bar::from_row(at(0, 30), [dec!(11), dec!(13), dec!(10), dec!(10.5)], 7),
            row(1, 5, dec!(20), 1),
        ];
        let bars = bucket(rows, Interval::M1);
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].start, minute(at(0, 30)));
        assert_eq!(
            (bars[0].open, bars[0].high, bars[0].low, bars[0].close),
            (dec!(10), dec!(13), dec!(9), dec!(10.5))
        );
        assert_eq!((bars[0].volume, bars[0].ticks), (12, 2));
        assert_eq!(bars[0].turnover, dec!(128.5));
    }

    #[test]
    fn sma_and_vwap_are_exact_and_wait_for_enough_bars() {
        let bars: Vec<Bar> = (0..20)
            .map(|i| row(i, 0, Decimal::from(i + 1), 2))
            .collect();
        let values = indicators(&bars);
        assert_eq!(values[18].sma_20, None);
        assert_eq!(values[19].sma_20, Some(dec!(10.5)));
        assert_eq!(values[19].sma_50, None);
        // Same volume on every bar: VWAP is the mean close so far.
        assert_eq!(values[19].vwap, Some(dec!(10.5)));
        assert_eq!(values[19].volatility_20, None);
    }

    #[test]
    fn resuming_from_stored_state_gives_identical_values() {
        let bars: Vec<Bar> = (0..80)
            .map(|i| row(i, 0, dec!(100) + Decimal::from(i % 7) / dec!(3), 10 + i))
            .collect();
        let all = indicators(&bars);
        let cut = 57;
        let closes = bars[..cut].iter().map(|b| b.close);
        let before = &all[cut - 1];
        let mut state = IndicatorState::resume(
            closes,
            Some((
                bars[cut - 1].start,
                before.ema_20,
                before.session_volume,
                before.session_turnover,
            )),
        );
        let resumed: Vec<Indicators> = bars[cut..].iter().map(|b| state.next(b)).collect();
        assert_eq!(resumed, all[cut..]);
    }
}
