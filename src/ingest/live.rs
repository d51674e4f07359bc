//! The demo's live market: once the replay is done, each replayed symbol's random walk goes on
//! from its last close, one tick per symbol every `live.every`, stamped with the wall clock, so
//! bars form and quotes move on the dashboard while you watch.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::Config;
use crate::tick::Tick;

/// A symbol's newest tick, where its walk goes on from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Last {
    pub timestamp: DateTime<Utc>,
    pub close: Decimal,
    /// The replayed tick's volume: the walk's ticks share it out (it does not drift).
    pub volume: Decimal,
}

/// The newest tick of each symbol seen so far (by the replay, then by the walk itself), kept
/// across restarts of the producer stage.
#[derive(Debug, Default)]
pub struct Market {
    last: Mutex<BTreeMap<String, Last>>,
}

impl Market {
    /// Remembers what a replay saw (a symbol's newer tick wins).
    pub fn saw(&self, ticks: BTreeMap<String, Last>) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        for (symbol, tick) in ticks {
            match last.get(&symbol) {
                Some(known) if known.timestamp >= tick.timestamp => {}
                _ => {
                    last.insert(symbol, tick);
                }
            }
        }
    }

    /// Moves each known symbol's walk to a newer stored price (`(symbol, time, price)`): the
    /// walk goes on from its last stored step, not from the replayed history.
    pub fn resume(&self, stored: impl IntoIterator<Item = (String, DateTime<Utc>, Decimal)>) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        for (symbol, at, price) in stored {
            if let Some(known) = last.get_mut(&symbol)
                && known.timestamp < at
            {
                (known.timestamp, known.close) = (at, price);
            }
        }
    }

    pub fn symbols(&self) -> usize {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The next tick of every symbol at `now`, each one step of `every` of its walk on.
    fn step(&self, now: DateTime<Utc>, every: Duration, rng: &mut impl Rng) -> Vec<Tick> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let mut ticks = Vec::with_capacity(last.len());
        for (symbol, was) in last.iter_mut() {
            // History stamped after now (a file from the future) keeps its order.
            let at = if now > was.timestamp {
                now
            } else {
                was.timestamp + TimeDelta::seconds(1)
            };
            let tick = next_tick(symbol, was, at, every, rng);
            (was.timestamp, was.close) = (tick.timestamp, tick.close);
            ticks.push(tick);
        }
        ticks
    }
}

/// A step's volatility per second: a lively stock (about 0.3 % a minute, 1.2 % in 15).
const SIGMA_PER_SECOND: f64 = 0.0004;

/// One step of `every` of a walk: a move of [`SIGMA_PER_SECOND`] scaled to the step, prices kept
/// to the last close's decimal places (at least cents), a volume near the step's share of the
/// replayed one-minute volume (so a live bar trades about what a replayed one did).
fn next_tick(
    symbol: &str,
    was: &Last,
    at: DateTime<Utc>,
    every: Duration,
    rng: &mut impl Rng,
) -> Tick {
    let seconds = every.as_secs_f64();
    let places = was.close.scale().max(2);
    let price = |factor: f64| {
        let value = was.close.to_f64().unwrap_or(1.0) * factor;
        Decimal::from_f64(value)
            .unwrap_or(was.close)
            .round_dp(places)
            .max(Decimal::new(1, places))
    };
    let step = Normal::new(0.0_f64, SIGMA_PER_SECOND * seconds.sqrt()).expect("valid normal");
    let wick = Normal::new(0.0_f64, SIGMA_PER_SECOND * seconds.sqrt() / 3.0).expect("valid normal");
    let open = was.close;
    let close = price(step.sample(rng).exp());
    let high = open.max(close).max(price(1.0 + wick.sample(rng).abs()));
    let low = open.min(close).min(price(1.0 - wick.sample(rng).abs()));
    let noise = LogNormal::new(0.0, 0.35).expect("valid lognormal");
    let volume = (was.volume.to_f64().unwrap_or(60.0) * seconds / 60.0 * noise.sample(rng))
        .clamp(1.0, 1e12)
        .round();
    Tick {
        timestamp: at,
        symbol: symbol.to_string(),
        open,
        high,
        low,
        close,
        volume: Decimal::from_f64(volume).unwrap_or(Decimal::ONE),
        source: format!("live:{symbol}@{}", at.to_rfc3339()),
        produced_at: 0,
    }
}

/// Produces the walk's ticks every `config.live.every` until `cancel`.
pub async fn run(
    config: &Config,
    broker: &Broker,
    market: &Market,
    cancel: CancellationToken,
) -> Result<()> {
    if market.symbols() == 0 {
        tracing::info!("live ticks: no symbol was replayed, nothing to go on from");
        cancel.cancelled().await;
        return Ok(());
    }
    let mut ticks = super::topic_writer(config, broker, &config.topics.ticks, &cancel).await?;
    tracing::info!(
        symbols = market.symbols(),
        "live ticks: each symbol's walk goes on, one tick every {:?}",
        config.live.every
    );
    let mut every = tokio::time::interval(config.live.every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Sendable (the stage runs on any worker thread), seeded from the OS.
    let mut rng = rand::rngs::StdRng::from_os_rng();
    let mut seq = 0;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = cancel.cancelled() => break,
        }
        let now = Utc::now()
            .duration_trunc(TimeDelta::milliseconds(1))
            .unwrap_or_else(|_| Utc::now());
        for mut tick in market.step(now, config.live.every, &mut rng) {
            if let Err(reason) = tick.validate() {
                tracing::warn!(symbol = tick.symbol, "live tick skipped: {reason}");
                continue;
            }
            seq += 1;
            tick.produced_at = Utc::now().timestamp_micros();
            ticks
                .push(tick.symbol.as_bytes(), tick.to_json(), seq)
                .await?;
        }
        ticks.flush_older_than(Duration::ZERO).await?;
    }
    ticks.finish().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_go_on_from_the_last_close_in_its_places_and_stay_valid() {
        let market = Market::default();
        let start: DateTime<Utc> = "2024-01-02T15:29:00Z".parse().unwrap();
        market.saw(BTreeMap::from([
            (
                "HDFCBANK".to_string(),
                Last {
                    timestamp: start,
                    close: Decimal::new(164_250, 2),
                    volume: Decimal::from(12_000),
                },
            ),
            (
                "BTCUSDT".to_string(),
                Last {
                    timestamp: start,
                    close: Decimal::new(4_312_345_678_901, 8),
                    volume: Decimal::new(5, 1),
                },
            ),
        ]));
        // An older tick of a symbol does not replace its newer one.
        market.saw(BTreeMap::from([(
            "HDFCBANK".to_string(),
            Last {
                timestamp: start - TimeDelta::minutes(1),
                close: Decimal::ONE,
                volume: Decimal::ONE,
            },
        )]));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut now: DateTime<Utc> = "2026-11-26T10:00:00Z".parse().unwrap();
        let mut previous = BTreeMap::from([
            ("BTCUSDT".to_string(), Decimal::new(4_312_345_678_901, 8)),
            ("HDFCBANK".to_string(), Decimal::new(164_250, 2)),
        ]);
        for _ in 0..500 {
            let ticks = market.step(now, Duration::from_secs(1), &mut rng);
            assert_eq!(ticks.len(), 2);
            for tick in ticks {
                tick.validate().unwrap();
                assert_eq!(tick.timestamp, now);
                assert_eq!(tick.open, previous[&tick.symbol], "opens at the last close");
                let places = if tick.symbol == "BTCUSDT" { 8 } else { 2 };
                assert!(tick.close.scale() <= places, "{}", tick.close);
                let moved = (tick.close / tick.open - Decimal::ONE).abs();
                assert!(moved < Decimal::new(1, 2), "a step under 1 %: {moved}");
                previous.insert(tick.symbol.clone(), tick.close);
            }
            now += TimeDelta::seconds(1);
        }
        // Resumed from stored prices: a newer one moves the walk, an older or unknown one not.
        let stored_at = now + TimeDelta::seconds(30);
        market.resume([
            ("HDFCBANK".to_string(), stored_at, Decimal::new(170_000, 2)),
            ("BTCUSDT".to_string(), start, Decimal::ONE),
            ("UNKNOWN".to_string(), stored_at, Decimal::ONE),
        ]);
        assert_eq!(market.symbols(), 2);
        let next = market.step(
            stored_at + TimeDelta::seconds(1),
            Duration::from_secs(1),
            &mut rng,
        );
        let hdfc = next.iter().find(|t| t.symbol == "HDFCBANK").unwrap();
        assert_eq!(
            hdfc.open,
            Decimal::new(170_000, 2),
            "goes on from the stored price"
        );
        let btc = next.iter().find(|t| t.symbol == "BTCUSDT").unwrap();
        assert_eq!(
            btc.open, previous["BTCUSDT"],
            "an older stored price is ignored"
        );

        // A symbol whose history runs past now goes on after its own last tick.
        let future = Market::default();
        let later = now + TimeDelta::days(1);
        future.saw(BTreeMap::from([(
            "LATER".to_string(),
            Last {
                timestamp: later,
                close: Decimal::TEN,
                volume: Decimal::TEN,
            },
        )]));
        assert_eq!(
            future.step(now, Duration::from_secs(1), &mut rng)[0].timestamp,
            later + TimeDelta::seconds(1)
        );
    }
}
