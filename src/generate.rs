//! `tickpipe generate`: realistic synthetic one-minute OHLCV bars for N bank symbols, one CSV
//! per symbol, deterministic for a seed. A random walk in whole cents (so every price is exact)
//! with an intraday U-shaped volume profile, over weekday sessions 09:15–15:29.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};
use rust_decimal::Decimal;

/// Bank symbols used first; more symbols are named BANK<n>.
const BANKS: [&str; 12] = [
    "HDFCBANK",
    "ICICIBANK",
    "SBIN",
    "KOTAKBANK",
    "AXISBANK",
    "INDUSINDBK",
    "BANKBARODA",
    "PNB",
    "FEDERALBNK",
    "IDFCFIRSTB",
    "AUBANK",
    "BANDHANBNK",
];
const SESSION_MINUTES: u32 = 375;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// `Timestamp,Bank_Name,Open,High,Low,Close,Volume` (the seed's table)
    Seed,
    /// `timestamp,open,high,low,close,volume`, symbol in the file name
    Minute,
}

#[derive(Debug, Clone)]
pub struct GenerateSpec {
    pub out_dir: PathBuf,
    pub symbols: usize,
    pub days: u32,
    pub start: NaiveDate,
    pub seed: u64,
    pub layout: Layout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub files: Vec<PathBuf>,
    pub rows: u64,
}

pub fn symbol_name(i: usize) -> String {
    BANKS
        .get(i)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("BANK{}", i + 1))
}

pub fn generate(spec: &GenerateSpec) -> Result<Generated> {
    if spec.symbols == 0 || spec.days == 0 {
        bail!("generate needs at least one symbol and one day");
    }
    std::fs::create_dir_all(&spec.out_dir)
        .with_context(|| format!("creating {}", spec.out_dir.display()))?;
    let sessions: Vec<NaiveDate> = spec
        .start
        .iter_days()
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .take(spec.days as usize)
        .collect();
    let mut generated = Generated {
        files: Vec::new(),
        rows: 0,
    };
    for i in 0..spec.symbols {
        let symbol = symbol_name(i);
        let path = spec.out_dir.join(format!("{symbol}.csv"));
        generated.rows += write_symbol(&path, &symbol, i, &sessions, spec)?;
        generated.files.push(path);
    }
    Ok(generated)
}

fn write_symbol(
    path: &Path,
    symbol: &str,
    index: usize,
    sessions: &[NaiveDate],
    spec: &GenerateSpec,
) -> Result<u64> {
    let mut rng =
        StdRng::seed_from_u64(spec.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut out =
        csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?;
    match spec.layout {
        Layout::Seed => out.write_record([
            "Timestamp",
            "Bank_Name",
            "Open",
            "High",
            "Low",
            "Close",
            "Volume",
        ])?,
        Layout::Minute => {
            out.write_record(["timestamp", "open", "high", "low", "close", "volume"])?
        }
    }
    // Price in cents; per-minute volatility about 0.08 %.
    let mut cents: i64 = rng.random_range(20_000..200_000);
    let step = Normal::new(0.0, 0.0004).expect("valid normal");
    let noise = LogNormal::new(0.0, 0.35).expect("valid lognormal");
    let base_volume: f64 = rng.random_range(5_000.0..80_000.0);
    let open_time = NaiveTime::from_hms_opt(9, 15, 0).expect("valid time");
    let mut rows = 0;
    for day in sessions {
        // Overnight gap.
        cents = move_price(cents, step.sample(&mut rng) * 5.0);
        for minute in 0..SESSION_MINUTES {
            let open = cents;
            let (mut high, mut low) = (open, open);
            for _ in 0..4 {
                cents = move_price(cents, step.sample(&mut rng));
                high = high.max(cents);
                low = low.min(cents);
            }
            let close = cents;
            let x = minute as f64 / (SESSION_MINUTES - 1) as f64;
            let profile = 0.6 + 2.4 * (2.0 * x - 1.0).powi(2);
            let volume = (base_volume * profile * noise.sample(&mut rng)).round() as i64;
            let at = day.and_time(open_time) + chrono::Duration::minutes(minute as i64);
            let stamp = at.format("%Y-%m-%d %H:%M:%S").to_string();
            let prices = [open, high, low, close].map(|c| Decimal::new(c, 2).to_string());
            let volume = volume.to_string();
            match spec.layout {
                Layout::Seed => out.write_record([
                    stamp.as_str(),
                    symbol,
                    &prices[0],
                    &prices[1],
                    &prices[2],
                    &prices[3],
                    &volume,
                ])?,
                Layout::Minute => out.write_record([
                    stamp.as_str(),
                    &prices[0],
                    &prices[1],
                    &prices[2],
                    &prices[3],
                    &volume,
                ])?,
            }
            rows += 1;
        }
    }
    out.flush()?;
    Ok(rows)
}

/// One random-walk step in whole cents, never below one rupee.
fn move_price(cents: i64, relative: f64) -> i64 {
    ((cents as f64) * (1.0 + relative)).round().max(100.0) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::csv_file::{CsvFile, Line};

    fn spec(dir: &Path, layout: Layout) -> GenerateSpec {
        GenerateSpec {
            out_dir: dir.to_path_buf(),
            symbols: 3,
            days: 2,
            start: NaiveDate::from_ymd_opt(2024, 1, 5).unwrap(), // a Friday
            seed: 7,
            layout,
        }
    }

    #[test]
    fn output_is_deterministic_valid_and_readable() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let made = generate(&spec(a.path(), Layout::Seed)).unwrap();
        generate(&spec(b.path(), Layout::Seed)).unwrap();
        assert_eq!(made.rows, 3 * 2 * 375);
        for file in &made.files {
            let name = file.file_name().unwrap();
            assert_eq!(
                std::fs::read(file).unwrap(),
                std::fs::read(b.path().join(name)).unwrap()
            );
            let mut reader = CsvFile::open(file, chrono_tz::UTC).unwrap();
            let mut days = std::collections::BTreeSet::new();
            while let Some(line) = reader.next_line() {
                match line {
                    Line::Tick(t) => {
                        days.insert(t.timestamp.date_naive());
                    }
                    Line::Reject(r) => panic!("generated line refused: {r:?}"),
                }
            }
            // Friday and the following Monday: weekends are skipped.
            let days: Vec<String> = days.iter().map(|d| d.to_string()).collect();
            assert_eq!(days, ["2024-01-05", "2024-01-08"]);
        }
    }

    #[test]
    fn minute_layout_names_files_by_symbol() {
        let dir = tempfile::tempdir().unwrap();
        let made = generate(&spec(dir.path(), Layout::Minute)).unwrap();
        let mut reader = CsvFile::open(&made.files[1], chrono_tz::UTC).unwrap();
        let Some(Line::Tick(t)) = reader.next_line() else {
            panic!()
        };
        assert_eq!(t.symbol, "ICICIBANK");
    }
}
