//! The rollup stage: keeps `bars_1m` (bars and indicators) and `latest_quotes` following
//! `stock_data`, whoever wrote it, by recomputing the symbols marked stale (`rollup_pending`:
//! by tickpipe's writers, and for other writers' rows by the table's triggers or from the
//! server's binary log, which each round reads first), each in transactions of its own,
//! beside the writers.
//!
//! Each recompute is a task of its own, as each writer is: while one computes on a core,
//! another's statements go on (in one task they waited for each other's computing). The stage
//! runs [`AT_ONCE`] of them whether the writers are catching up a backlog or not: on the
//! bench's 1 M-row backfill, stepping back while the rows went in (one at a time, resting)
//! gave the rows more than half of the drain and left the rollups done at ~2× the rows' time,
//! against 1.7–1.8× without (README, "What bounds the processor"). Resting a quarter of each
//! round took them back to 1.8–2.0×.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::ProcessStats;
use crate::alerts::AlertRule;
use crate::retry::{self, Backoff, Failure};
use crate::store::{Member, Refreshed, Store, StoreError};

/// Pause when nothing is stale (or what is stale is held by writers).
const IDLE: Duration = Duration::from_millis(100);
/// Stale symbols taken per round.
const PER_ROUND: usize = 256;
/// Symbols recomputed at once, each on its own connection: MySQL computes one while tickpipe
/// reads or sends the other. Three at once on the bench's 1 M-row backfill slowed the rows by
/// a fifth, and the whole drain took as long (MariaDB's CPU grew with its latches contending).
const AT_ONCE: usize = 2;
/// A MySQL that fails this long stops the stage (the processor reports it and is restarted).
const GIVE_UP: Duration = Duration::from_secs(300);

/// Recomputes stale rollups as they appear, until `wind_down` (then the recomputes under way
/// finish first: a drain's [`catch_up`] goes on from their work); returns early only with an
/// error retrying cannot fix.
pub async fn follow(
    store: &Store,
    stats: &Arc<ProcessStats>,
    member: &Member,
    rules: &[AlertRule],
    wind_down: &CancellationToken,
) -> Result<()> {
    while !wind_down.is_cancelled() {
        let done = round(store, stats, member, rules, wind_down).await?;
        if done == 0 {
            tokio::select! {
                _ = tokio::time::sleep(IDLE) => {}
                _ = wind_down.cancelled() => {}
            }
        }
    }
    Ok(())
}

/// Recomputes, once each, the symbols stale when the writers finished (`process --drain`):
/// the rollups then include every row committed before. Symbols others keep writing do not
/// hold it up.
pub async fn catch_up(
    store: &Store,
    stats: &Arc<ProcessStats>,
    member: &Member,
    rules: &[AlertRule],
    cancel: &CancellationToken,
) -> Result<()> {
    // The log read to its end, then once more after the recomputes: a transaction's rows
    // become visible a moment after the log has it (src/store/capture.rs).
    while !capture(store, cancel).await? && !cancel.is_cancelled() {}
    recompute_stale(store, stats, member, rules, cancel).await?;
    capture(store, cancel).await?;
    recompute_stale(store, stats, member, rules, cancel).await
}

/// Recomputes, once each, the symbols stale now.
async fn recompute_stale(
    store: &Store,
    stats: &Arc<ProcessStats>,
    member: &Member,
    rules: &[AlertRule],
    cancel: &CancellationToken,
) -> Result<()> {
    let mut left: BTreeSet<String> = stale(store, usize::MAX, cancel)
        .await?
        .into_iter()
        .collect();
    while !left.is_empty() && !cancel.is_cancelled() {
        let held: BTreeSet<String> =
            refresh_all(store, stats, member, rules, cancel, &left, cancel)
                .await?
                .into_iter()
                .filter(|(_, outcome)| *outcome == Refreshed::Skipped)
                .map(|(symbol, _)| symbol)
                .collect();
        if !held.is_empty() {
            tokio::time::sleep(IDLE).await;
        }
        left = held;
    }
    Ok(())
}

/// One round over the longest-stale symbols, starting none after `wind_down`: how many were
/// recomputed.
async fn round(
    store: &Store,
    stats: &Arc<ProcessStats>,
    member: &Member,
    rules: &[AlertRule],
    wind_down: &CancellationToken,
) -> Result<usize> {
    let never = CancellationToken::new();
    // Symbols with rows committed before the stale ones are read: those not stale then have
    // rollups that include them already (or the rows changed nothing).
    let committed_before = stats.symbols_awaiting_rollups();
    capture(store, &never).await?;
    if wind_down.is_cancelled() {
        return Ok(0);
    }
    let stale = stale(store, PER_ROUND, &never).await?;
    let outcomes = refresh_all(store, stats, member, rules, &never, &stale, wind_down).await?;
    // A short list is every stale symbol: the others' rows are in their rollups.
    if stale.len() < PER_ROUND {
        for symbol in committed_before.iter().filter(|s| !stale.contains(s)) {
            stats.rolled_up(&stats.awaiting_rollups(symbol));
        }
    }
    Ok(outcomes
        .iter()
        .filter(|(_, outcome)| *outcome == Refreshed::Done)
        .count())
}

/// Recomputes `symbols`, [`AT_ONCE`] at a time, each a task of its own (the next symbol to the
/// first recompute that is done, so none waits while another goes on alone), counting each
/// one's committed rows as in its rollups when done: what became of each. None is started
/// after `stop_starting`; those started finish.
async fn refresh_all<'s>(
    store: &Store,
    stats: &Arc<ProcessStats>,
    member: &Member,
    rules: &[AlertRule],
    cancel: &CancellationToken,
    symbols: impl IntoIterator<Item = &'s String>,
    stop_starting: &CancellationToken,
) -> Result<Vec<(String, Refreshed)>> {
    let rules: Arc<[AlertRule]> = rules.into();
    let mut symbols = symbols.into_iter();
    let mut running = JoinSet::new();
    let mut outcomes = Vec::new();
    loop {
        while running.len() < AT_ONCE && !stop_starting.is_cancelled() {
            let Some(symbol) = symbols.next() else { break };
            let (store, stats, member, rules, cancel, symbol) = (
                store.clone(),
                stats.clone(),
                member.clone(),
                rules.clone(),
                cancel.clone(),
                symbol.clone(),
            );
            running.spawn(async move {
                // Taken before the range: every row counted here is committed, so in the
                // recompute.
                let awaiting = stats.awaiting_rollups(&symbol);
                let outcome = refresh(&store, &symbol, &member, &rules, &cancel).await?;
                match outcome {
                    Refreshed::Done => stats.rolled_up(&awaiting),
                    Refreshed::Skipped => stats.not_yet_rolled_up(&symbol, awaiting),
                }
                anyhow::Ok((symbol, outcome))
            });
        }
        match running.join_next().await {
            Some(finished) => outcomes.push(finished.context("a recompute stopped")??),
            None => return Ok(outcomes),
        }
    }
}

/// Other writers' rows committed so far marked stale (one sweep of the binary log, where the
/// capture is by the log; the triggers mark them as they commit): whether the log was read to
/// its end.
async fn capture(store: &Store, cancel: &CancellationToken) -> Result<bool> {
    retry::retry(
        "reading other writers' rows from the binary log",
        Backoff::service(Some(GIVE_UP)),
        cancel,
        || store.sweep_capture(),
        StoreError::verdict,
    )
    .await
    .map_err(|failure| failure.into_inner().into())
}

async fn stale(store: &Store, limit: usize, cancel: &CancellationToken) -> Result<Vec<String>> {
    retry::retry(
        "reading stale rollups",
        Backoff::service(Some(GIVE_UP)),
        cancel,
        || store.stale_symbols(limit),
        StoreError::verdict,
    )
    .await
    .map_err(|failure| failure.into_inner().into())
}

async fn refresh(
    store: &Store,
    symbol: &str,
    member: &Member,
    rules: &[AlertRule],
    cancel: &CancellationToken,
) -> Result<Refreshed> {
    retry::retry(
        "recomputing rollups",
        Backoff::service(Some(GIVE_UP)),
        cancel,
        || store.refresh_rollups(symbol, member, rules),
        StoreError::verdict,
    )
    .await
    .map_err(|failure: Failure<StoreError>| failure.into_inner().into())
}
