//! Rollups: bars and their indicators, one definition for the processor (which stores the
//! one-minute ones with every batch) and the dashboard (which re-buckets them into longer
//! intervals).
//!
//! A trading session is a UTC calendar day. Prices stay exact decimals; EMA and volatility are
//! floats, computed step by step from the stored previous value, so a recomputation from any
//! bar on gives bit-identical results.
//!
//! Every sum is checked: volumes add up exactly as [`VolumeSum`]s (`i128` counts of 10^-8) and
//! turnovers in decimals whose overflow is an [`OutOfRange`] error, never a panic or a wrap.
//! A row's turnover is its close × volume rounded to 8 places, half away from zero (what
//! MySQL's `ROUND(Close * Volume, 8)` gives).
//! A row's own turnover is bounded by [`crate::tick::MAX_ROW_TURNOVER`] when it is checked, so
//! a session would need about 10^8 rows of the largest turnover before one of its sums failed.

use std::collections::VecDeque;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use thiserror::Error;

use crate::tick::VOLUME_SCALE;

/// Bars the longest indicator looks back over.
pub const LOOKBACK: usize = 50;
/// The moving averages' windows (bars): SMA_20 and SMA_50.
const SMA_WINDOWS: [usize; 2] = [20, 50];
/// 1/20 and 1/50, exact: a mean is a multiplication, not a division for every bar.
const SMA_RECIPROCALS: [Decimal; 2] = [
    Decimal::from_parts(5, 0, 0, false, 2),
    Decimal::from_parts(2, 0, 0, false, 2),
];
/// Decimal places of stored SMA and VWAP values.
const INDICATOR_DP: u32 = 8;

/// A figure of the rollups that does not fit its type: the rollup is skipped and reported, the
/// rows it summarises stay stored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0} is too large to represent")]
pub struct OutOfRange(pub &'static str);

/// A sum of volumes, exact: a count of 10^-8 units (a volume has at most [`VOLUME_SCALE`]
/// places), wide enough that no sum of stored volumes loses a digit. Stored in DECIMAL(38,8)
/// columns as text, since a `Decimal` holds only 28 digits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct VolumeSum(i128);

impl VolumeSum {
    pub const ZERO: VolumeSum = VolumeSum(0);
    const UNIT: i128 = 10i128.pow(VOLUME_SCALE);

    /// One row's volume.
    pub fn of(volume: Decimal) -> Result<VolumeSum, OutOfRange> {
        let volume = volume.normalize();
        let places = VOLUME_SCALE
            .checked_sub(volume.scale())
            .ok_or(OutOfRange("a volume with more than 8 decimal places"))?;
        volume
            .mantissa()
            .checked_mul(10i128.pow(places))
            .map(VolumeSum)
            .ok_or(OutOfRange("a volume"))
    }

    pub fn checked_add(self, other: VolumeSum) -> Option<VolumeSum> {
        self.0.checked_add(other.0).map(VolumeSum)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// As a decimal: exact below about 7.9 × 10^20, beyond that with as many decimal places
    /// as a decimal's 28 digits leave (the rest rounded off), whole from 7.9 × 10^28 on.
    pub fn to_decimal(self) -> Result<Decimal, OutOfRange> {
        (0..=VOLUME_SCALE)
            .find_map(|dropped| {
                let unit = 10i128.pow(dropped);
                let rounded = (self.0 + unit / 2) / unit;
                Decimal::try_from_i128_with_scale(rounded, VOLUME_SCALE - dropped).ok()
            })
            .map(|d| d.normalize())
            .ok_or(OutOfRange("a volume sum as a decimal"))
    }

    /// As a double, correctly rounded from the exact sum: what `CAST(Volume AS DOUBLE)` of the
    /// stored DECIMAL gives (MySQL, too, reads the decimal's text with a correctly rounding
    /// `strtod`).
    pub fn to_f64(self) -> f64 {
        // Both exact doubles: IEEE division rounds the exact quotient correctly, as `strtod`
        // rounds the exact decimal (the same number).
        const EXACT: u128 = 1 << f64::MANTISSA_DIGITS;
        if self.0.unsigned_abs() <= EXACT {
            return self.0 as f64 / Self::UNIT as f64;
        }
        self.to_string()
            .parse()
            .expect("a volume sum's text is a number")
    }

    /// Appends the sum as [`Display`](fmt::Display) writes it.
    pub fn write_text(self, out: &mut Vec<u8>) {
        crate::tick::write_fixed_point(out, self.0, VOLUME_SCALE, true);
    }

    /// Reads the text of a stored DECIMAL (`CAST(Volume AS CHAR)`).
    pub fn parse(text: &str) -> Result<VolumeSum, String> {
        let bad = || format!("{text:?} is not a stored volume");
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) {
            return Err(bad());
        }
        if fraction.len() > VOLUME_SCALE as usize {
            return Err(bad());
        }
        let fraction = format!("{fraction:0<width$}", width = VOLUME_SCALE as usize);
        let whole: i128 = whole.parse().map_err(|_| bad())?;
        let fraction: i128 = fraction.parse().map_err(|_| bad())?;
        whole
            .checked_mul(Self::UNIT)
            .and_then(|w| w.checked_add(fraction))
            .map(VolumeSum)
            .ok_or_else(bad)
    }
}

/// Plain decimal text without trailing zeros (`1200`, `35.92724`): what MySQL and JSON take.
impl fmt::Display for VolumeSum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Vec::with_capacity(40);
        self.write_text(&mut text);
        f.write_str(std::str::from_utf8(&text).expect("digits, a sign and a point are ASCII"))
    }
}

/// Written as a string, like prices: exact, whoever reads it.
impl serde::Serialize for VolumeSum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Open, high, low, close and volume over an interval (a row of `stock_data` is a bar too).
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Start of the interval (for a stored row: its timestamp).
    pub start: DateTime<Utc>,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    /// Sum of the rows' volumes.
    pub volume: VolumeSum,
    /// Sum of the rows' turnovers (close × volume, to 8 places).
    pub turnover: Decimal,
    /// Rows of `stock_data` in the bar.
    pub ticks: i64,
}

impl Bar {
    /// A stored row as a bar of its own.
    pub fn from_row(
        start: DateTime<Utc>,
        [open, high, low, close]: [Decimal; 4],
        volume: Decimal,
    ) -> Result<Bar, OutOfRange> {
        Ok(Bar {
            start,
            open,
            high,
            low,
            close,
            volume: VolumeSum::of(volume)?,
            turnover: close
                .checked_mul(volume)
                .ok_or(OutOfRange("a row's turnover (close × volume)"))?
                .round_dp_with_strategy(8, RoundingStrategy::MidpointAwayFromZero),
            ticks: 1,
        })
    }

    /// Adds a later bar (or row) of the same interval.
    pub fn absorb(&mut self, later: &Bar) -> Result<(), OutOfRange> {
        self.high = self.high.max(later.high);
        self.low = self.low.min(later.low);
        self.close = later.close;
        self.volume = self
            .volume
            .checked_add(later.volume)
            .ok_or(OutOfRange("a bar's volume"))?;
        self.turnover = self
            .turnover
            .checked_add(later.turnover)
            .ok_or(OutOfRange("a bar's turnover"))?;
        self.ticks = self.ticks.saturating_add(later.ticks);
        Ok(())
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
pub fn bucket(
    bars: impl IntoIterator<Item = Bar>,
    interval: Interval,
) -> Result<Vec<Bar>, OutOfRange> {
    let mut out: Vec<Bar> = Vec::new();
    for bar in bars {
        let start = interval.floor(bar.start);
        match out.last_mut() {
            Some(last) if last.start == start => last.absorb(&bar)?,
            _ => out.push(Bar { start, ..bar }),
        }
    }
    Ok(out)
}

/// Indicators of one bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Indicators {
    pub sma_20: Option<Decimal>,
    pub sma_50: Option<Decimal>,
    pub ema_20: f64,
    pub vwap: Option<Decimal>,
    pub volatility_20: Option<f64>,
    pub session_volume: VolumeSum,
    pub session_turnover: Decimal,
}

/// What computing the next bar's indicators needs from the bars before it.
#[derive(Debug, Clone, Default)]
pub struct IndicatorState {
    /// Closes of up to the last [`LOOKBACK`] bars, oldest first.
    closes: VecDeque<Decimal>,
    /// The log returns between those closes (one fewer), oldest first.
    returns: VecDeque<f64>,
    /// Sums of the last [`SMA_WINDOWS`] closes (exact: sums of decimals), kept as bars come
    /// rather than added up again for every bar.
    sums: [Decimal; 2],
    /// The newest close as a double (for its log return and the EMA).
    last_close: f64,
    ema_20: Option<f64>,
    session: Option<NaiveDate>,
    session_volume: VolumeSum,
    session_turnover: Decimal,
}

impl IndicatorState {
    /// The state after the bars whose closes are `closes` (oldest first); `last` is the last
    /// of them as stored: its start, EMA and session volume and turnover.
    pub fn resume(
        closes: impl IntoIterator<Item = Decimal>,
        last: Option<(DateTime<Utc>, f64, VolumeSum, Decimal)>,
    ) -> IndicatorState {
        let mut state = IndicatorState::default();
        for close in closes {
            state
                .push_close(close)
                .expect("fifty closes of DECIMAL(22,8) columns sum within a Decimal");
        }
        if let Some((start, ema, volume, turnover)) = last {
            state.ema_20 = Some(ema);
            state.session = Some(start.date_naive());
            state.session_volume = volume;
            state.session_turnover = turnover;
        }
        state
    }

    /// Indicators of `bar`, the bar after those already seen.
    pub fn next(&mut self, bar: &Bar) -> Result<Indicators, OutOfRange> {
        self.push_close(bar.close)?;

        // A non-finite stored EMA restarts it.
        let close = self.last_close;
        let ema_20 = match self.ema_20.filter(|e| e.is_finite()) {
            None => close,
            Some(previous) => previous + (2.0 / 21.0) * (close - previous),
        };
        self.ema_20 = Some(ema_20);

        let session = bar.start.date_naive();
        if self.session != Some(session) {
            self.session = Some(session);
            self.session_volume = VolumeSum::ZERO;
            self.session_turnover = Decimal::ZERO;
        }
        self.session_volume = self
            .session_volume
            .checked_add(bar.volume)
            .ok_or(OutOfRange("a session's volume"))?;
        self.session_turnover = self
            .session_turnover
            .checked_add(bar.turnover)
            .ok_or(OutOfRange("a session's turnover"))?;
        let vwap = match self.session_volume {
            volume if volume.is_zero() => None,
            volume => {
                let volume = volume
                    .to_decimal()
                    .map_err(|_| OutOfRange("a session's volume"))?;
                Some(
                    self.session_turnover
                        .checked_div(volume)
                        .ok_or(OutOfRange("a session's VWAP"))?
                        .round_dp(INDICATOR_DP),
                )
            }
        };

        Ok(Indicators {
            sma_20: self.sma(0),
            sma_50: self.sma(1),
            ema_20,
            vwap,
            volatility_20: self.volatility(20),
            session_volume: self.session_volume,
            session_turnover: self.session_turnover,
        })
    }

    /// Takes `close` into the windows: the oldest close leaves each full one.
    fn push_close(&mut self, close: Decimal) -> Result<(), OutOfRange> {
        for (sum, n) in self.sums.iter_mut().zip(SMA_WINDOWS) {
            let leaving = self.closes.len().checked_sub(n).map(|i| self.closes[i]);
            *sum = sum
                .checked_add(close)
                .and_then(|sum| sum.checked_sub(leaving.unwrap_or_default()))
                .ok_or(OutOfRange("a moving average"))?;
        }
        if self.closes.len() == LOOKBACK {
            self.closes.pop_front();
            self.returns.pop_front();
        }
        // A close converts to f64 (any Decimal does).
        let close_f64 = close.to_f64().unwrap_or(f64::NAN);
        if !self.closes.is_empty() {
            self.returns.push_back((close_f64 / self.last_close).ln());
        }
        self.closes.push_back(close);
        self.last_close = close_f64;
        Ok(())
    }

    /// Mean close of the last `SMA_WINDOWS[window]` bars.
    fn sma(&self, window: usize) -> Option<Decimal> {
        let n = SMA_WINDOWS[window];
        if self.closes.len() < n {
            return None;
        }
        // n is 20 or 50: the mean of 8-place closes has a finite expansion, so the sum's
        // order of additions cannot change it. The product may keep trailing zeros a quotient
        // would not (2.00 for 2): the same value and stored text, but normalize it before a
        // `to_f64`, whose result depends on the scale.
        Some((self.sums[window] * SMA_RECIPROCALS[window]).round_dp(INDICATOR_DP))
    }

    /// Sample standard deviation of the last `n` one-bar log returns.
    fn volatility(&self, n: usize) -> Option<f64> {
        if self.returns.len() < n {
            return None;
        }
        let returns = self.returns.range(self.returns.len() - n..);
        let mean = returns.clone().sum::<f64>() / n as f64;
        let variance = returns.map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        // A close of zero from another writer makes a log return infinite: no figure then.
        Some(variance.sqrt()).filter(|v| v.is_finite())
    }
}

/// Indicators for each of `bars` (time-ordered, no history before them).
pub fn indicators(bars: &[Bar]) -> Result<Vec<Indicators>, OutOfRange> {
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
        Bar::from_row(
            at(minute, second),
            [close, close, close, close],
            volume.into(),
        )
        .unwrap()
    }

    fn whole(volume: i128) -> VolumeSum {
        VolumeSum::parse(&volume.to_string()).unwrap()
    }

    #[test]
    fn rows_bucket_into_minutes() {
        let rows = vec![
            Bar::from_row(at(0, 0), [dec!(10), dec!(12), dec!(9), dec!(11)], dec!(5)).unwrap(),
            Bar::from_row(
                at(0, 30),
                [dec!(11), dec!(13), dec!(10), dec!(10.5)],
                dec!(7),
            )
            .unwrap(),
            row(1, 5, dec!(20), 1),
        ];
        let bars = bucket(rows, Interval::M1).unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].start, minute(at(0, 30)));
        assert_eq!(
            (bars[0].open, bars[0].high, bars[0].low, bars[0].close),
            (dec!(10), dec!(13), dec!(9), dec!(10.5))
        );
        assert_eq!((bars[0].volume, bars[0].ticks), (whole(12), 2));
        assert_eq!(bars[0].turnover, dec!(128.5));
    }

    #[test]
    fn sma_and_vwap_are_exact_and_wait_for_enough_bars() {
        let bars: Vec<Bar> = (0..20)
            .map(|i| row(i, 0, Decimal::from(i + 1), 2))
            .collect();
        let values = indicators(&bars).unwrap();
        assert_eq!(values[18].sma_20, None);
        assert_eq!(values[19].sma_20, Some(dec!(10.5)));
        assert_eq!(values[19].sma_50, None);
        // Same volume on every bar: VWAP is the mean close so far.
        assert_eq!(values[19].vwap, Some(dec!(10.5)));
        assert_eq!(values[19].volatility_20, None);
    }

    #[test]
    fn moving_averages_kept_as_bars_come_equal_the_mean_of_each_window() {
        // Closes of 0 to 8 places, so the running sums carry scales the window no longer has.
        let closes: Vec<Decimal> = (0..300_i64)
            .map(|i| Decimal::new(1_000_000_000 + i * 7_919 % 100_003, (i % 9) as u32))
            .collect();
        let bars: Vec<Bar> = closes
            .iter()
            .enumerate()
            .map(|(i, c)| row(i as i64, 0, *c, 1))
            .collect();
        let values = indicators(&bars).unwrap();
        for (i, value) in values.iter().enumerate() {
            for (n, sma) in [(20, value.sma_20), (50, value.sma_50)] {
                let expected = (i + 1 >= n).then(|| {
                    let sum: Decimal = closes[i + 1 - n..=i].iter().sum();
                    (sum / Decimal::from(n)).round_dp(INDICATOR_DP)
                });
                assert_eq!(sma, expected, "SMA_{n} of bar {i}");
            }
        }
    }

    #[test]
    fn resuming_from_stored_state_gives_identical_values() {
        let bars: Vec<Bar> = (0..80)
            .map(|i| row(i, 0, dec!(100) + Decimal::from(i % 7) / dec!(3), 10 + i))
            .collect();
        let all = indicators(&bars).unwrap();
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
        let resumed: Vec<Indicators> = bars[cut..].iter().map(|b| state.next(b).unwrap()).collect();
        assert_eq!(resumed, all[cut..]);
    }

    #[test]
    fn volumes_beyond_i64_add_up_exactly() {
        // Two rows of the largest volume in one minute: the bar and the session hold the
        // exact sum (a wrapping i64 would go negative).
        let rows = vec![row(0, 0, dec!(1), i64::MAX), row(0, 1, dec!(1), i64::MAX)];
        let bars = bucket(rows, Interval::M1).unwrap();
        assert_eq!(bars[0].volume, whole(2 * i64::MAX as i128));
        let values = indicators(&bars).unwrap();
        assert_eq!(values[0].session_volume, whole(2 * i64::MAX as i128));
        assert_eq!(values[0].vwap, Some(dec!(1)));
    }

    #[test]
    fn sums_that_do_not_fit_are_errors_not_panics() {
        // close × volume beyond a decimal's 96 bits.
        let huge = Bar::from_row(at(0, 0), [dec!(1e10); 4], dec!(9_000_000_000_000_000_000));
        assert_eq!(
            huge.unwrap_err(),
            OutOfRange("a row's turnover (close × volume)")
        );
        // Turnovers that fit one by one but not summed.
        let big = || row(0, 0, dec!(7e9), 9_000_000_000_000_000_000);
        let bars = bucket([big(), big()], Interval::M1);
        assert_eq!(bars.unwrap_err(), OutOfRange("a bar's turnover"));
        let mut state = IndicatorState::default();
        state.next(&big()).unwrap();
        let mut later = big();
        later.start = at(1, 0);
        assert_eq!(
            state.next(&later).unwrap_err(),
            OutOfRange("a session's turnover")
        );
    }

    #[test]
    fn fractional_volumes_add_up_exactly() {
        // Crypto base volumes of 8 places: no float and no rounding in the sums.
        let rows = [dec!(35.92724), dec!(0.00000001), dec!(12.5)]
            .map(|v| Bar::from_row(at(0, 0), [dec!(42298.61); 4], v).unwrap());
        let bars = bucket(rows, Interval::M1).unwrap();
        assert_eq!(bars[0].volume.to_string(), "48.42724001");
        assert_eq!(bars[0].volume.to_decimal().unwrap(), dec!(48.42724001));
        // Each row's turnover to 8 places, half away from zero, as MySQL's ROUND does.
        let half = Bar::from_row(at(0, 0), [dec!(0.00000005); 4], dec!(0.1)).unwrap();
        assert_eq!(half.turnover, dec!(0.00000001));
        // Text as MySQL returns it, and back.
        for text in [
            "0",
            "1200",
            "35.92724",
            "99999999999999999999999999999.99999999",
        ] {
            assert_eq!(VolumeSum::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            VolumeSum::parse("1200.00000000").unwrap().to_string(),
            "1200"
        );
        for bad in ["", "-1", "1.123456789", "1e5", ".5"] {
            assert!(VolumeSum::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(VolumeSum::of(dec!(0.000000001)).is_err());
        // Sums beyond a decimal's 28 digits at 8 places keep what places fit.
        let huge = VolumeSum::parse("12345678901234567890123.45678901").unwrap();
        assert_eq!(
            huge.to_decimal().unwrap(),
            dec!(12345678901234567890123.456789)
        );
    }

    #[test]
    fn the_moving_averages_reciprocals_are_exact() {
        for (n, reciprocal) in SMA_WINDOWS.into_iter().zip(SMA_RECIPROCALS) {
            assert_eq!(reciprocal * Decimal::from(n), Decimal::ONE);
            assert_eq!(reciprocal, Decimal::ONE / Decimal::from(n));
        }
    }

    #[test]
    fn volume_sums_convert_to_the_double_their_text_reads_as() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let edge = 1i128 << 53;
        let mut sums: Vec<i128> = vec![0, 1, -1, edge - 1, edge, edge + 1, -edge, -edge - 1];
        sums.extend((0..100_000).map(|_| rng.random::<i128>() >> rng.random_range(40..=127)));
        for sum in sums {
            let sum = VolumeSum(sum);
            let text: f64 = sum.to_string().parse().unwrap();
            assert_eq!(sum.to_f64().to_bits(), text.to_bits(), "{sum}");
        }
    }

    #[test]
    fn a_session_of_the_largest_volumes_still_has_a_vwap() {
        // Eight rows of the largest volume a row may have: the sum passes 7.9e20.
        let largest = dec!(99999999999999999999.99999999);
        let rows: Vec<Bar> = (0..8)
            .map(|i| Bar::from_row(at(i, 0), [dec!(0.5); 4], largest).unwrap())
            .collect();
        let values = indicators(&bucket(rows, Interval::M1).unwrap()).unwrap();
        assert_eq!(values[7].vwap, Some(dec!(0.5)));
    }
}
