//! Lines whose (symbol, timestamp) a replay already sent: the store keeps one row per key, so
//! a second line either changes nothing (identical: collapsed) or replaces the first
//! (conflicting: the later one wins). Both are counted, and a conflict is logged with the
//! source of both lines. Memory stays bounded: keys are remembered for the last
//! [`WINDOW`] lines of the replay (duplicates in a file are near each other; further apart,
//! they are stored the same way, only not counted).

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use crate::tick::Tick;

/// Lines whose keys are remembered.
pub const WINDOW: usize = 262_144;

/// What a line is, compared with the lines before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    New,
    /// Same key, same figures: the store keeps one row.
    Identical,
    /// Same key, other figures: this line replaces the one from `earlier`.
    Conflicting {
        earlier: Arc<str>,
    },
}

/// The keys of recent lines, with their figures and sources.
#[derive(Debug, Default)]
pub struct Duplicates {
    seen: HashMap<(u64, i64), (u64, Arc<str>)>,
    order: VecDeque<(u64, i64)>,
    pub identical: u64,
    pub conflicting: u64,
}

impl Duplicates {
    /// Remembers `tick` and tells whether its key was seen before.
    pub fn check(&mut self, tick: &Tick) -> Seen {
        let key = (hash(&tick.symbol), tick.timestamp.timestamp_micros());
        let figures = hash(&(tick.open, tick.high, tick.low, tick.close, tick.volume));
        let source: Arc<str> = Arc::from(tick.source.as_str());
        match self.seen.insert(key, (figures, source)) {
            Some((earlier, _)) if earlier == figures => {
                self.identical += 1;
                Seen::Identical
            }
            Some((_, earlier)) => {
                self.conflicting += 1;
                Seen::Conflicting { earlier }
            }
            None => {
                self.order.push_back(key);
                if self.order.len() > WINDOW
                    && let Some(oldest) = self.order.pop_front()
                {
                    self.seen.remove(&oldest);
                }
                Seen::New
            }
        }
    }
}

fn hash(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn tick(symbol: &str, minute: i64, close: i64, source: &str) -> Tick {
        let price = Decimal::from(close);
        Tick {
            timestamp: chrono::DateTime::from_timestamp(1_704_186_900 + minute * 60, 0).unwrap(),
            symbol: symbol.into(),
            open: price,
            high: price,
            low: price,
            close: price,
            volume: rust_decimal::Decimal::ONE,
            source: source.into(),
            produced_at: 0,
        }
    }

    #[test]
    fn identical_and_conflicting_lines_are_told_apart() {
        let mut seen = Duplicates::default();
        assert_eq!(seen.check(&tick("A", 0, 10, "a.csv:2")), Seen::New);
        assert_eq!(seen.check(&tick("B", 0, 10, "b.csv:2")), Seen::New);
        assert_eq!(seen.check(&tick("A", 0, 10, "a.csv:3")), Seen::Identical);
        assert_eq!(
            seen.check(&tick("A", 0, 11, "a2.csv:7")),
            Seen::Conflicting {
                earlier: "a.csv:3".into()
            }
        );
        assert_eq!((seen.identical, seen.conflicting), (1, 1));
    }

    #[test]
    fn memory_is_bounded_by_the_window() {
        let mut seen = Duplicates::default();
        for minute in 0..(WINDOW as i64 + 10) {
            seen.check(&tick("A", minute, 10, "a.csv"));
        }
        assert!(seen.seen.len() <= WINDOW && seen.order.len() <= WINDOW);
        // The oldest keys are forgotten: not counted, stored the same way downstream.
        assert_eq!(seen.check(&tick("A", 0, 10, "a.csv")), Seen::New);
    }
}
