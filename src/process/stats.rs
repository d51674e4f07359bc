//! A running processor's live counters: rows, refusals and batches, commit times, and the
//! latencies from produce to the committed row and to its rollups (what `bench`, `/metrics`
//! and a drain's summary report).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::tick::Tick;

/// Live counters of a running processor.
#[derive(Debug)]
pub struct ProcessStats {
    /// Records handed from the fetch loops to the writer; minus `rows + rejected`, what is
    /// held in memory (bounded: the channel and one batch).
    pub fetched: AtomicU64,
    pub rows: AtomicU64,
    pub rejected: AtomicU64,
    /// Ticks whose prices were rounded to the stored places (`ingest.excess_decimals`).
    pub rounded: AtomicU64,
    pub batches: AtomicU64,
    /// Seconds each batch took to commit (rows, refused records and offsets), retries included.
    pub commit_seconds: Histogram,
    /// Microseconds from a row's `produced_at` (the producer's clock) to its commit.
    pub latency_us: std::sync::Mutex<hdrhistogram::Histogram<u64>>,
    /// Microseconds from a row's `produced_at` to its symbol's bars and latest quote
    /// including it (what the dashboard and BI then read).
    pub quote_latency_us: std::sync::Mutex<hdrhistogram::Histogram<u64>>,
    /// When a drain had committed every row (its rollups then still being computed).
    pub rows_drained_at: std::sync::OnceLock<std::time::Instant>,
    /// `produced_at` of committed rows whose rollups are not computed yet, per symbol, and
    /// how many there are in all.
    awaiting_rollups: std::sync::Mutex<(BTreeMap<String, Vec<i64>>, usize)>,
    /// This processor runs the rollup stage: the rows' wait for it is measured.
    rollups_here: std::sync::atomic::AtomicBool,
}

/// Rows whose wait for the rollups is measured at once (beyond: not measured), all symbols.
const MEASURED_AT_ONCE: usize = 1_000_000;

impl ProcessStats {
    /// Rows of `ticks` committed now: their commit latency, and their wait for the rollups.
    pub(super) fn committed(&self, ticks: &[Tick]) {
        let now = chrono::Utc::now().timestamp_micros();
        let produced = ticks.iter().filter(|t| t.produced_at > 0);
        if let Ok(mut latency) = self.latency_us.lock() {
            for tick in produced.clone() {
                latency.saturating_record((now - tick.produced_at).max(0) as u64);
            }
        }
        if !self.rollups_here.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(mut awaiting) = self.awaiting_rollups.lock() {
            let (by_symbol, count) = &mut *awaiting;
            for tick in produced {
                if *count >= MEASURED_AT_ONCE {
                    break;
                }
                match by_symbol.get_mut(&tick.symbol) {
                    Some(times) => times.push(tick.produced_at),
                    None => {
                        by_symbol.insert(tick.symbol.clone(), vec![tick.produced_at]);
                    }
                }
                *count += 1;
            }
        }
    }

    /// Whether this processor runs the rollup stage (another processor's rollups are not
    /// measured here).
    pub(super) fn measure_rollups(&self, here: bool) {
        if !self.rollups_here.swap(here, Ordering::Relaxed) || here {
            return;
        }
        if let Ok(mut awaiting) = self.awaiting_rollups.lock() {
            *awaiting = Default::default();
        }
    }

    /// The committed rows of `symbol` not yet in its rollups (taken: the caller reports them).
    pub(super) fn awaiting_rollups(&self, symbol: &str) -> Vec<i64> {
        let Ok(mut awaiting) = self.awaiting_rollups.lock() else {
            return Vec::new();
        };
        let (by_symbol, count) = &mut *awaiting;
        let taken = by_symbol.remove(symbol).unwrap_or_default();
        *count -= taken.len();
        taken
    }

    /// Puts back what [`Self::awaiting_rollups`] took when the rollups were not computed.
    pub(super) fn not_yet_rolled_up(&self, symbol: &str, produced: Vec<i64>) {
        if let Ok(mut awaiting) = self.awaiting_rollups.lock() {
            let (by_symbol, count) = &mut *awaiting;
            *count += produced.len();
            by_symbol
                .entry(symbol.to_string())
                .or_default()
                .extend(produced);
        }
    }

    /// Symbols with committed rows not yet counted as in their rollups.
    pub(super) fn symbols_awaiting_rollups(&self) -> Vec<String> {
        self.awaiting_rollups
            .lock()
            .map(|awaiting| awaiting.0.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Rows produced at `produced` are in their symbol's rollups now.
    pub(super) fn rolled_up(&self, produced: &[i64]) {
        let now = chrono::Utc::now().timestamp_micros();
        if let Ok(mut latency) = self.quote_latency_us.lock() {
            for at in produced {
                latency.saturating_record((now - at).max(0) as u64);
            }
        }
    }
}

impl Default for ProcessStats {
    fn default() -> Self {
        ProcessStats {
            fetched: AtomicU64::default(),
            rows: AtomicU64::default(),
            rejected: AtomicU64::default(),
            rounded: AtomicU64::default(),
            batches: AtomicU64::default(),
            // 1 ms to ~33 s.
            commit_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            latency_us: std::sync::Mutex::new(latency_histogram()),
            quote_latency_us: std::sync::Mutex::new(latency_histogram()),
            rows_drained_at: std::sync::OnceLock::new(),
            awaiting_rollups: Default::default(),
            rollups_here: Default::default(),
        }
    }
}

/// 1 µs to an hour (longer waits count as an hour), 3 significant figures.
fn latency_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}
