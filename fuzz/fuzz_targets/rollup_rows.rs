//! Extreme but valid rows through the rollups: any sequence of rows that passes the checks
//! buckets into bars and indicators without a panic or a wrap; a sum that does not fit is an
//! error. The prices and volumes are drawn from the whole range the checks allow.
#![no_main]

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;
use tickpipe::rollup::{self, Bar, IndicatorState, Interval, VolumeSum};
use tickpipe::tick::Tick;

/// One row from 18 bytes: seconds after the previous row (2), a price mantissa (8), the price's
/// and the volume's scales and whether the volume is the largest (1), and a volume (7).
fn row(at: i64, bytes: &[u8]) -> Option<Tick> {
    let mantissa = u64::from_le_bytes(bytes[2..10].try_into().ok()?) % 100_000_000_000_000_000;
    let price = Decimal::from_i128_with_scale(mantissa.max(1) as i128, u32::from(bytes[10] % 9));
    let mut volume = [0u8; 8];
    volume[..7].copy_from_slice(&bytes[11..18]);
    // Up to 2^56 units of 10^-0..10^-8, and the largest volume a row can have.
    let volume = if bytes[10] & 0x80 != 0 {
        Decimal::from_i128_with_scale(10i128.pow(28) - 1, 8)
    } else {
        Decimal::from_i128_with_scale(
            i64::from_le_bytes(volume).into(),
            u32::from((bytes[10] >> 4) % 9),
        )
    };
    let tick = Tick {
        timestamp: DateTime::from_timestamp(at, 0)?,
        symbol: "FUZZ".into(),
        open: price,
        high: price,
        low: price,
        close: price,
        volume,
        source: String::new(),
        produced_at: 0,
    };
    tick.validate().is_ok().then_some(tick)
}

fuzz_target!(|data: &[u8]| {
    let mut at = 1_700_000_000i64;
    let mut rows = Vec::new();
    for chunk in data.chunks_exact(18) {
        at += i64::from(u16::from_le_bytes([chunk[0], chunk[1]]));
        if let Some(tick) = row(at, chunk) {
            let bar = Bar::from_row(
                tick.timestamp,
                [tick.open, tick.high, tick.low, tick.close],
                tick.volume,
            )
            .expect("a checked row's turnover fits");
            rows.push(bar);
        }
    }
    for interval in [Interval::M1, Interval::D1] {
        if let Ok(bars) = rollup::bucket(rows.clone(), interval) {
            let sum = |bars: &[Bar]| {
                bars.iter().try_fold(VolumeSum::ZERO, |sum, b| sum.checked_add(b.volume))
            };
            assert_eq!(sum(&bars), sum(&rows));
            let mut state = IndicatorState::default();
            for bar in &bars {
                if state.next(bar).is_err() {
                    break;
                }
            }
        }
    }
});
