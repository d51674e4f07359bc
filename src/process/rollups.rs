//! The rollup stage: keeps `ohlcv_1m`, `indicators_1m` and `latest_quotes` following
//! `stock_data`, whoever wrote it, by recomputing the symbols the table's trigger marked stale
//! (`rollup_pending`), each in transactions of its own, beside the writers.

use std::time::Duration;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::ProcessStats;
use crate::retry::{self, Backoff, Failure};
use crate::store::{Store, StoreError};

/// Pause when nothing is stale.
const IDLE: Duration = Duration::from_millis(100);
/// Stale symbols taken per round.
const PER_ROUND: usize = 256;
/// A MySQL that fails this long stops the stage (the processor reports it and is restarted).
const GIVE_UP: Duration = Duration::from_secs(300);

/// Recomputes stale rollups as they appear; returns only with an error retrying cannot fix.
pub async fn follow(store: &Store, stats: &ProcessStats) -> anyhow::Error {
    loop {
        match round(store, stats).await {
            Ok(0) => tokio::time::sleep(IDLE).await,
            Ok(_) => {}
            Err(e) => return e,
        }
    }
}

/// Recomputes until nothing is stale (`process --drain`, once the writers are done).
pub async fn catch_up(store: &Store, stats: &ProcessStats) -> Result<()> {
    while round(store, stats).await? > 0 {}
    Ok(())
}

/// One round over the longest-stale symbols; how many there were.
async fn round(store: &Store, stats: &ProcessStats) -> Result<usize> {
    let never = CancellationToken::new();
    // Symbols with rows committed before the stale ones are read: those not stale then have
    // rollups that include them already (or the rows changed nothing).
    let committed_before = stats.symbols_awaiting_rollups();
    let stale = retry::retry(
        "reading stale rollups",
        Backoff::service(Some(GIVE_UP)),
        &never,
        || store.stale_symbols(PER_ROUND),
        StoreError::verdict,
    )
    .await
    .map_err(Failure::into_inner)?;
    for symbol in &stale {
        // Taken before the range: every row counted here is committed, so in the recompute.
        let awaiting = stats.awaiting_rollups(symbol);
        retry::retry(
            "recomputing rollups",
            Backoff::service(Some(GIVE_UP)),
            &never,
            || store.refresh_rollups(symbol),
            StoreError::verdict,
        )
        .await
        .map_err(Failure::into_inner)?;
        stats.rolled_up(&awaiting);
    }
    for symbol in committed_before.iter().filter(|s| !stale.contains(s)) {
        stats.rolled_up(&stats.awaiting_rollups(symbol));
    }
    Ok(stale.len())
}
