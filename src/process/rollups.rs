//! The rollup stage: keeps `bars_1m` (bars and indicators) and `latest_quotes` following
//! `stock_data`, whoever wrote it, by recomputing the symbols marked stale (`rollup_pending`:
//! by tickpipe's writers, and for other writers' rows by the table's triggers or from the
//! server's binary log, which each round reads first), each in transactions of its own,
//! beside the writers.
//!
//! While this processor's writers catch up a backlog (a replay, a backfill, a restart after
//! downtime) the stage steps back: one symbol at a time, resting as long as each round took,
//! for at most [`STEP_BACK_AT_MOST`] at a time before a full round. The rows then get most of
//! the machine and the rollups follow in long ranges. On the bench's 1 M-row backfill (three
//! writers) the rollups are done within 1.7–1.9× the rows' time, and the whole drain takes
//! ~8 s however the stage is scheduled (the bar writes are MariaDB's largest cost): resting
//! 1.5 or 2 rounds, or three recomputes at once after the rows, moved only the split between
//! the two, within the runs' noise. Caught up, every round follows at once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::{StreamExt, TryStreamExt};
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
/// reads or sends the other. More cost MariaDB more CPU for little time: a 1 M-row backfill's
/// rollups alone took 5.0, 4.9 and 4.8 s at 2, 3 and 4 at once.
const AT_ONCE: usize = 2;
/// Symbols recomputed at once while the writers catch up a backlog.
const AT_ONCE_CATCHING_UP: usize = 1;
/// After a round while the writers catch up, the stage rests this share of the round's time.
const REST_CATCHING_UP: f64 = 1.0;
/// Longest the stage steps back at a time, rests included: how stale the rollups may fall
/// behind a backfill before a full round. On the bench's 10 M-row backfill (~60 s of rows),
/// 10 s gave the rows 141 k rows/s (rollups done at 1.39×), 30 s 151 k (1.46×), 60 s 179 k
/// (1.76×).
const STEP_BACK_AT_MOST: Duration = Duration::from_secs(60);
/// A MySQL that fails this long stops the stage (the processor reports it and is restarted).
const GIVE_UP: Duration = Duration::from_secs(300);

/// Recomputes stale rollups as they appear; returns only with an error retrying cannot fix.
pub async fn follow(
    store: &Store,
    stats: &ProcessStats,
    member: &Member,
    rules: &[AlertRule],
) -> anyhow::Error {
    let never = CancellationToken::new();
    let mut stepping_back_since: Option<Instant> = None;
    loop {
        // Stepping back lasts STEP_BACK_AT_MOST at a time: a full round then catches the
        // rollups up, so a load that keeps the writers' batches full leaves them no staler.
        let step_back = stats.catching_up()
            && stepping_back_since
                .get_or_insert_with(Instant::now)
                .elapsed()
                < STEP_BACK_AT_MOST;
        if !step_back {
            stepping_back_since = None;
        }
        let at_once = if step_back {
            AT_ONCE_CATCHING_UP
        } else {
            AT_ONCE
        };
        let started = Instant::now();
        let result = round(store, stats, member, rules, &never, at_once).await;
        if step_back {
            // In slices: the rest ends with the backlog, and with the step back.
            let rest_until = (Instant::now() + started.elapsed().mul_f64(REST_CATCHING_UP))
                .min(stepping_back_since.unwrap_or_else(Instant::now) + STEP_BACK_AT_MOST);
            while stats.catching_up() && Instant::now() < rest_until {
                tokio::time::sleep(IDLE.min(rest_until - Instant::now())).await;
            }
        }
        match result {
            Ok(Round { done: 0, .. }) => tokio::time::sleep(IDLE).await,
            Ok(_) => {}
            Err(e) => return e,
        }
    }
}

/// Recomputes, once each, the symbols stale when the writers finished (`process --drain`):
/// the rollups then include every row committed before. Symbols others keep writing do not
/// hold it up.
pub async fn catch_up(
    store: &Store,
    stats: &ProcessStats,
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
    stats: &ProcessStats,
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
            refresh_all(store, stats, member, rules, cancel, &left, AT_ONCE)
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

/// What a round did.
struct Round {
    done: usize,
}

/// One round over the longest-stale symbols.
async fn round(
    store: &Store,
    stats: &ProcessStats,
    member: &Member,
    rules: &[AlertRule],
    never: &CancellationToken,
    at_once: usize,
) -> Result<Round> {
    // Symbols with rows committed before the stale ones are read: those not stale then have
    // rollups that include them already (or the rows changed nothing).
    let committed_before = stats.symbols_awaiting_rollups();
    capture(store, never).await?;
    let stale = stale(store, PER_ROUND, never).await?;
    let done = refresh_all(store, stats, member, rules, never, &stale, at_once)
        .await?
        .iter()
        .filter(|(_, outcome)| *outcome == Refreshed::Done)
        .count();
    // A short list is every stale symbol: the others' rows are in their rollups.
    if stale.len() < PER_ROUND {
        for symbol in committed_before.iter().filter(|s| !stale.contains(s)) {
            stats.rolled_up(&stats.awaiting_rollups(symbol));
        }
    }
    Ok(Round { done })
}

/// Recomputes `symbols`, `at_once` at a time (each next symbol to the first recompute that
/// is done, so none waits while another goes on alone), counting each one's committed rows as
/// in its rollups when done: what became of each.
async fn refresh_all<'s>(
    store: &Store,
    stats: &ProcessStats,
    member: &Member,
    rules: &[AlertRule],
    cancel: &CancellationToken,
    symbols: impl IntoIterator<Item = &'s String>,
    at_once: usize,
) -> Result<Vec<(String, Refreshed)>> {
    let refreshes: Vec<_> = symbols
        .into_iter()
        .map(|symbol| async move {
            // Taken before the range: every row counted here is committed, so in the
            // recompute.
            let awaiting = stats.awaiting_rollups(symbol);
            let outcome = refresh(store, symbol, member, rules, cancel).await?;
            match outcome {
                Refreshed::Done => stats.rolled_up(&awaiting),
                Refreshed::Skipped => stats.not_yet_rolled_up(symbol, awaiting),
            }
            anyhow::Ok((symbol.clone(), outcome))
        })
        .collect();
    futures::stream::iter(refreshes)
        .buffer_unordered(at_once.max(1))
        .try_collect()
        .await
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
