//! Price alerts: rules (`[[alerts]]` in `appliance.toml`) evaluated over a symbol's closed
//! one-minute bars (every bar but the newest, which may still grow), whoever wrote the rows.
//! An alert belongs to a bar: its key is (rule, symbol, the bar's minute), so evaluating the
//! same bars again — after a crash, a replay, a recompute — finds the same alerts, stored once
//! each; like the rollups, the stored alerts equal the rules applied to the committed bars
//! (a late row that changes a bar can also take an alert back).
//! Rules fire on the edge: a crossing, or the first bar of a run of bars past a threshold.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

/// One rule, as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WrittenRule", into = "WrittenRule")]
pub struct AlertRule {
    /// Unique: the key of the rule's alerts.
    pub name: String,
    /// One symbol; every symbol when absent.
    pub symbol: Option<String>,
    pub when: Condition,
}

/// What makes a rule fire.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// A bar's close crosses `price` (from below to at-or-above, or from above to
    /// at-or-below) from the previous bar's close.
    Crosses { price: Decimal },
    /// The close is more than `percent` away from the close `within` earlier (the newest bar
    /// at or before then).
    Moves { percent: Decimal, within: Duration },
    /// A bar's volume is more than `times` the average volume of the bars of the `over` before
    /// it (at least 3 of them).
    Volume { times: Decimal, over: Duration },
}

/// A rule as written in `appliance.toml`: `kind` says which of the other keys it takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenRule {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    symbol: Option<String>,
    kind: Kind,
    #[serde(
        default,
        deserialize_with = "number",
        skip_serializing_if = "Option::is_none"
    )]
    price: Option<Decimal>,
    #[serde(
        default,
        deserialize_with = "number",
        skip_serializing_if = "Option::is_none"
    )]
    percent: Option<Decimal>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    within: Option<Duration>,
    #[serde(
        default,
        deserialize_with = "number",
        skip_serializing_if = "Option::is_none"
    )]
    times: Option<Decimal>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    over: Option<Duration>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Crosses,
    Moves,
    Volume,
}

impl TryFrom<WrittenRule> for AlertRule {
    type Error = String;
    fn try_from(w: WrittenRule) -> Result<AlertRule, String> {
        let needs = |key: &str, kind: &str, example: &str| {
            format!("kind = \"{kind}\" needs {key} (such as {key} = {example})")
        };
        let extra = |keys: &[(&str, bool)], kind: &str| {
            keys.iter()
                .find(|(_, present)| *present)
                .map(|(key, _)| format!("{key} is not a key of kind = \"{kind}\""))
        };
        let when = match w.kind {
            Kind::Crosses => {
                if let Some(e) = extra(
                    &[
                        ("percent", w.percent.is_some()),
                        ("within", w.within.is_some()),
                        ("times", w.times.is_some()),
                        ("over", w.over.is_some()),
                    ],
                    "crosses",
                ) {
                    return Err(e);
                }
                Condition::Crosses {
                    price: w.price.ok_or_else(|| needs("price", "crosses", "1700"))?,
                }
            }
            Kind::Moves => {
                if let Some(e) = extra(
                    &[
                        ("price", w.price.is_some()),
                        ("times", w.times.is_some()),
                        ("over", w.over.is_some()),
                    ],
                    "moves",
                ) {
                    return Err(e);
                }
                Condition::Moves {
                    percent: w.percent.ok_or_else(|| needs("percent", "moves", "2"))?,
                    within: w
                        .within
                        .ok_or_else(|| needs("within", "moves", "\"15m\""))?,
                }
            }
            Kind::Volume => {
                if let Some(e) = extra(
                    &[
                        ("price", w.price.is_some()),
                        ("percent", w.percent.is_some()),
                        ("within", w.within.is_some()),
                    ],
                    "volume",
                ) {
                    return Err(e);
                }
                Condition::Volume {
                    times: w.times.ok_or_else(|| needs("times", "volume", "5"))?,
                    over: w.over.ok_or_else(|| needs("over", "volume", "\"30m\""))?,
                }
            }
        };
        Ok(AlertRule {
            name: w.name,
            symbol: w.symbol,
            when,
        })
    }
}

impl From<AlertRule> for WrittenRule {
    fn from(rule: AlertRule) -> WrittenRule {
        let mut written = WrittenRule {
            name: rule.name,
            symbol: rule.symbol,
            kind: Kind::Crosses,
            price: None,
            percent: None,
            within: None,
            times: None,
            over: None,
        };
        match rule.when {
            Condition::Crosses { price } => written.price = Some(price),
            Condition::Moves { percent, within } => {
                (written.kind, written.percent, written.within) =
                    (Kind::Moves, Some(percent), Some(within));
            }
            Condition::Volume { times, over } => {
                (written.kind, written.times, written.over) =
                    (Kind::Volume, Some(times), Some(over));
            }
        }
        written
    }
}

/// The rules of an appliance whose configuration names none: a 2 % move within 15 minutes,
/// and a bar trading 5 times its half-hour average.
pub fn default_rules() -> Vec<AlertRule> {
    vec![
        AlertRule {
            name: "moves-2pct-15m".into(),
            symbol: None,
            when: Condition::Moves {
                percent: Decimal::TWO,
                within: Duration::from_secs(15 * 60),
            },
        },
        AlertRule {
            name: "volume-5x-30m".into(),
            symbol: None,
            when: Condition::Volume {
                times: Decimal::from(5),
                over: Duration::from_secs(30 * 60),
            },
        },
    ]
}

/// A decimal written as a TOML number (`1700`, `1700.25`) or a string (`"1700.25"`), exactly
/// as written.
fn number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Whole(i64),
        // Rust prints a float in the fewest digits that read back to it: what was written.
        Fraction(f64),
        Text(String),
    }
    let text = match Written::deserialize(deserializer)? {
        Written::Whole(n) => n.to_string(),
        Written::Fraction(x) => x.to_string(),
        Written::Text(text) => text,
    };
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a decimal number")))
}

impl AlertRule {
    pub fn applies_to(&self, symbol: &str) -> bool {
        self.symbol.as_deref().is_none_or(|s| s == symbol)
    }

    /// How far back before the first bar evaluated the rule looks.
    pub fn lookback(&self) -> Duration {
        match self.when {
            Condition::Crosses { .. } => Duration::ZERO,
            Condition::Moves { within, .. } => within,
            Condition::Volume { over, .. } => over,
        }
    }

    /// What is wrong with the rule, for the configuration error (`alerts[i].key: fix`).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.name.trim().is_empty() || self.name.len() > 100 {
            return Some(("name", "1 to 100 characters, unique among the rules"));
        }
        match &self.when {
            Condition::Crosses { price } if *price <= Decimal::ZERO => {
                Some(("price", "a price above 0"))
            }
            Condition::Moves { percent, within } => {
                if *percent <= Decimal::ZERO {
                    Some(("percent", "a percentage above 0, such as 2"))
                } else if *within < Duration::from_secs(60) || *within > Duration::from_secs(86_400)
                {
                    Some(("within", "from 1m to 24h, such as \"15m\""))
                } else {
                    None
                }
            }
            Condition::Volume { times, over } => {
                if *times <= Decimal::ONE {
                    Some(("times", "a factor above 1, such as 5"))
                } else if *over < Duration::from_secs(180) || *over > Duration::from_secs(86_400) {
                    Some(("over", "from 3m to 24h, such as \"30m\""))
                } else {
                    None
                }
            }
            Condition::Crosses { .. } => None,
        }
    }
}

/// A one-minute bar as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BarPoint {
    pub minute: DateTime<Utc>,
    pub close: Decimal,
    pub volume: f64,
}

/// An alert a rule raised at a bar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fired {
    pub rule: String,
    pub symbol: String,
    /// The bar's minute.
    pub minute: DateTime<Utc>,
    pub price: Decimal,
    pub detail: String,
}

/// The alerts `rules` raise at `symbol`'s bars from `from` on; `bars` (in time order, closed
/// ones only) start early enough for every rule's lookback and the bar before.
pub fn evaluate(
    rules: &[AlertRule],
    symbol: &str,
    bars: &[BarPoint],
    from: DateTime<Utc>,
) -> Vec<Fired> {
    // The bars' times as nanoseconds, for the rules' windows: chrono's date arithmetic for
    // each bar and rule was a third of the judging's time.
    let times: Vec<i128> = bars.iter().map(|bar| nanos(bar.minute)).collect();
    let mut fired = Vec::new();
    for rule in rules.iter().filter(|r| r.applies_to(symbol)) {
        let mut was_past = None;
        let mut window = Window::default();
        // A factor is a small decimal: a double holds it.
        let volume_factor = match &rule.when {
            Condition::Volume { times, .. } => times.to_f64().unwrap_or(f64::INFINITY),
            _ => f64::INFINITY,
        };
        for (i, bar) in bars.iter().enumerate() {
            let now = match &rule.when {
                Condition::Crosses { price } => crossing(bars, i, *price),
                Condition::Moves { percent, within } => moved(bars, &times, i, *percent, *within),
                Condition::Volume { over, .. } => {
                    window.spiked(bars, &times, i, volume_factor, *over)
                }
            };
            // A crossing is an edge already; the others fire on the first bar past.
            let edge = matches!(
                (&rule.when, &now, &was_past),
                (Condition::Crosses { .. }, Some(_), _) | (_, Some(_), Some(false))
            );
            if edge && bar.minute >= from {
                fired.push(Fired {
                    rule: rule.name.clone(),
                    symbol: symbol.to_string(),
                    minute: bar.minute,
                    price: bar.close,
                    detail: now.clone().unwrap_or_default(),
                });
            }
            was_past = Some(now.is_some());
        }
    }
    fired
}

/// `at` as nanoseconds since the epoch (an `i128` holds every `DateTime`).
fn nanos(at: DateTime<Utc>) -> i128 {
    i128::from(at.timestamp()) * 1_000_000_000 + i128::from(at.timestamp_subsec_nanos())
}

/// [`evaluate`] a page of bars at a time, in bounded memory: each page is judged with the
/// bars of the lookback before it carried over, and its last bar held back to the next page,
/// so the symbol's newest bar (which may still grow) is never judged. Pages in time order,
/// the first starting as [`evaluate`]'s bars do.
pub struct Paged {
    rules: Vec<AlertRule>,
    symbol: String,
    lookback: chrono::TimeDelta,
    carry: Vec<BarPoint>,
    judge_from: DateTime<Utc>,
    /// What was raised so far.
    pub fired: Vec<Fired>,
}

impl Paged {
    pub fn new(
        rules: Vec<AlertRule>,
        symbol: &str,
        from: DateTime<Utc>,
        lookback: Duration,
    ) -> Paged {
        Paged {
            rules,
            symbol: symbol.to_string(),
            lookback: chrono::TimeDelta::from_std(lookback).unwrap_or_default(),
            carry: Vec::new(),
            judge_from: from,
            fired: Vec::new(),
        }
    }

    pub fn page(&mut self, bars: Vec<BarPoint>) {
        if bars.is_empty() {
            return;
        }
        self.carry.extend(bars);
        let held_back = *self.carry.last().expect("bars");
        let judged = &self.carry[..self.carry.len() - 1];
        self.fired
            .extend(evaluate(&self.rules, &self.symbol, judged, self.judge_from));
        self.judge_from = held_back.minute.max(self.judge_from);
        // The held-back bar is judged next, against the bar before it: keep the lookback
        // before that one, and the bar before (as the first page started).
        let before_held = self.carry[self.carry.len().saturating_sub(2)].minute;
        let keep_from = self
            .carry
            .iter()
            .rposition(|bar| bar.minute < before_held - self.lookback)
            .unwrap_or(0);
        self.carry.drain(..keep_from);
    }

    /// The rules judged.
    pub fn rules(&self) -> &[AlertRule] {
        &self.rules
    }
}

fn crossing(bars: &[BarPoint], i: usize, price: Decimal) -> Option<String> {
    let before = bars.get(i.checked_sub(1)?)?.close.normalize();
    let now = bars[i].close.normalize();
    if before < price && now >= price {
        Some(format!("crossed above {price} ({before} → {now})"))
    } else if before > price && now <= price {
        Some(format!("crossed below {price} ({before} → {now})"))
    } else {
        None
    }
}

/// The close against the newest bar at or before `within` earlier — one no older than twice
/// `within` (across a gap in trading there is nothing to compare with). `times`: the bars'
/// [`nanos`].
fn moved(
    bars: &[BarPoint],
    times: &[i128],
    i: usize,
    percent: Decimal,
    within: Duration,
) -> Option<String> {
    let bar = bars[i];
    let within_nanos = within.as_nanos() as i128;
    let then = times[i] - within_nanos;
    let earlier = (0..i)
        .rev()
        .take_while(|&j| times[j] >= then - within_nanos)
        .find(|&j| times[j] <= then)
        .map(|j| bars[j])?;
    if earlier.close.is_zero() {
        return None;
    }
    // |close / earlier − 1| × 100 > percent, without a division for every bar, and exactly
    // (the products of 8-place prices fit a decimal): the quotient, rounded to 28 digits,
    // could disagree within ~1e-27 of the threshold.
    let moved_by = (bar.close - earlier.close)
        .abs()
        .checked_mul(Decimal::ONE_HUNDRED)?;
    if moved_by <= percent.checked_mul(earlier.close.abs())? {
        return None;
    }
    let change = (bar.close / earlier.close - Decimal::ONE) * Decimal::ONE_HUNDRED;
    Some(format!(
        "moved {}{:.2}% in {} ({} → {})",
        if change > Decimal::ZERO { "+" } else { "" },
        change.round_dp(2),
        humantime::format_duration(within),
        earlier.close.normalize(),
        bar.close.normalize()
    ))
}

/// The bars of a volume rule's window before the bar looked at, slid along in one pass.
#[derive(Default)]
struct Window {
    start: usize,
    sum: f64,
}

impl Window {
    /// Bar `i` against the average of the bars of the `over` before it (kept as bars go by).
    /// `times`: the bars' [`nanos`].
    fn spiked(
        &mut self,
        bars: &[BarPoint],
        times: &[i128],
        i: usize,
        factor: f64,
        over: Duration,
    ) -> Option<String> {
        let bar = bars[i];
        let since = times[i] - over.as_nanos() as i128;
        while self.start < i && times[self.start] < since {
            self.sum -= bars[self.start].volume;
            self.start += 1;
        }
        let count = i - self.start;
        // Bar i joins the window for the next bar.
        let average = if count >= 3 {
            Some(self.sum / count as f64)
        } else {
            None
        };
        self.sum += bar.volume;
        let average = average?;
        (average > 0.0 && bar.volume > factor * average).then(|| {
            format!(
                "volume {} is {:.1}× its {} average",
                bar.volume,
                bar.volume / average,
                humantime::format_duration(over)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(closes: &[(i64, &str, f64)]) -> Vec<BarPoint> {
        let start: DateTime<Utc> = "2024-01-02T09:15:00Z".parse().unwrap();
        closes
            .iter()
            .map(|(minute, close, volume)| BarPoint {
                minute: start + chrono::TimeDelta::minutes(*minute),
                close: close.parse().unwrap(),
                volume: *volume,
            })
            .collect()
    }

    fn rule(toml: &str) -> AlertRule {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn a_crossing_fires_once_each_way_and_not_while_it_stays() {
        let crosses = rule("name = 'x'\nkind = 'crosses'\nprice = 100");
        let series = bars(&[
            (0, "99", 1.0),
            (1, "100", 1.0), // up through 100
            (2, "101", 1.0), // stays above
            (3, "100.5", 1.0),
            (4, "99.99", 1.0), // down through
            (5, "98", 1.0),
            (7, "100.01", 1.0), // up again (after a gap)
        ]);
        let fired = evaluate(
            std::slice::from_ref(&crosses),
            "BANK",
            &series,
            series[0].minute,
        );
        let minutes: Vec<i64> = fired
            .iter()
            .map(|f| (f.minute - series[0].minute).num_minutes())
            .collect();
        assert_eq!(minutes, [1, 4, 7]);
        assert!(fired[0].detail.contains("crossed above 100 (99 → 100)"));
        assert!(fired[1].detail.contains("crossed below 100"));
        // Evaluated again from a later bar: the same alerts from there on, none before.
        let again = evaluate(&[crosses], "BANK", &series, series[3].minute);
        assert_eq!(again, fired[1..]);
    }

    #[test]
    fn a_move_fires_on_its_first_bar_past_the_threshold_and_again_after_it_calms() {
        let moves = rule("name = 'm'\nkind = 'moves'\npercent = 2\nwithin = '3m'");
        let series = bars(&[
            (0, "100", 1.0),
            (1, "100", 1.0),
            (2, "101", 1.0),
            (3, "102.5", 1.0), // +2.5 % on minute 0
            (4, "103", 1.0),   // still past: no second alert
            (5, "103", 1.0),   // +1.98 % on minute 2's 101: calm
            (6, "100", 1.0),   // -2.44 % on minute 3: fires again
        ]);
        let fired = evaluate(&[moves], "BANK", &series, series[0].minute);
        let minutes: Vec<i64> = fired
            .iter()
            .map(|f| (f.minute - series[0].minute).num_minutes())
            .collect();
        assert_eq!(minutes, [3, 6]);
        assert!(
            fired[0].detail.starts_with("moved +2.50% in 3m"),
            "{}",
            fired[0].detail
        );
        assert!(
            fired[1].detail.starts_with("moved -2.44% in 3m"),
            "{}",
            fired[1].detail
        );
    }

    #[test]
    fn judged_a_page_at_a_time_the_alerts_are_those_of_all_the_bars_at_once() {
        use rand::{Rng, SeedableRng};
        let rules = [
            rule("name = 'x'\nkind = 'crosses'\nprice = 100"),
            rule("name = 'm'\nkind = 'moves'\npercent = 1\nwithin = '5m'"),
            rule("name = 'v'\nkind = 'volume'\ntimes = 2\nover = '7m'"),
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let (mut minute, mut close) = (0i64, 10_000i64);
        let mut series = Vec::new();
        for _ in 0..400 {
            // Mostly one-minute bars, now and then a gap of up to an hour.
            minute += if rng.random_range(0..20) == 0 {
                rng.random_range(2..60)
            } else {
                1
            };
            close += rng.random_range(-60..=60);
            let volume = if rng.random_range(0..15) == 0 {
                500.0
            } else {
                100.0
            };
            series.push((minute, Decimal::new(close, 2).to_string(), volume));
        }
        let series: Vec<(i64, &str, f64)> = series
            .iter()
            .map(|(m, c, v)| (*m, c.as_str(), *v))
            .collect();
        let bars = bars(&series);
        let whole = evaluate(&rules, "BANK", &bars[..bars.len() - 1], bars[0].minute);
        assert!(
            whole.len() > 20,
            "a series that raises alerts: {}",
            whole.len()
        );
        let lookback = rules.iter().map(AlertRule::lookback).max().unwrap();
        for size in [1, 2, 3, 7, 50, 1000] {
            let mut paged = Paged::new(rules.to_vec(), "BANK", bars[0].minute, lookback);
            for page in bars.chunks(size) {
                paged.page(page.to_vec());
            }
            let mut got = paged.fired.clone();
            let mut want = whole.clone();
            let key = |f: &Fired| (f.rule.clone(), f.minute);
            got.sort_by_key(key);
            want.sort_by_key(key);
            assert_eq!(got, want, "pages of {size}");
        }
    }

    #[test]
    fn a_move_is_not_measured_across_a_gap_in_trading() {
        let moves = rule("name = 'm'\nkind = 'moves'\npercent = 2\nwithin = '15m'");
        // The previous session's close, then the next morning 5 % higher: no bar 15 minutes
        // back, so no "move in 15m".
        let series = bars(&[(0, "100", 1.0), (1000, "105", 1.0), (1001, "105", 1.0)]);
        assert!(evaluate(&[moves], "BANK", &series, series[0].minute).is_empty());
    }

    #[test]
    fn a_volume_spike_needs_three_bars_of_history_and_a_factor_over_their_average() {
        let spike = rule("name = 'v'\nkind = 'volume'\ntimes = 4\nover = '10m'");
        let series = bars(&[
            (0, "1", 100.0),
            (1, "1", 900.0), // too little history
            (2, "1", 100.0),
            (3, "1", 100.0),
            (4, "1", 900.0),  // average of 100, 900, 100, 100 = 300: 3×, not 4×
            (5, "1", 2000.0), // average 420: 4.8×
        ]);
        let fired = evaluate(&[spike], "BANK", &series, series[0].minute);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].minute, series[5].minute);
        assert!(fired[0].detail.contains("is 4.8×"), "{}", fired[0].detail);
    }

    #[test]
    fn a_rule_for_one_symbol_leaves_the_others_alone_and_bad_rules_name_their_key() {
        let one = rule("name = 'h'\nkind = 'crosses'\nsymbol = 'HDFCBANK'\nprice = 1");
        let series = bars(&[(0, "0.5", 1.0), (1, "2", 1.0)]);
        assert!(
            evaluate(
                std::slice::from_ref(&one),
                "SBIN",
                &series,
                series[0].minute
            )
            .is_empty()
        );
        assert_eq!(
            evaluate(&[one], "HDFCBANK", &series, series[0].minute).len(),
            1
        );
        assert_eq!(
            rule("name = 'm'\nkind = 'moves'\npercent = 0\nwithin = '5m'").problem(),
            Some(("percent", "a percentage above 0, such as 2"))
        );
        assert_eq!(
            rule("name = 'v'\nkind = 'volume'\ntimes = 3\nover = '1m'")
                .problem()
                .map(|p| p.0),
            Some("over")
        );
        assert!(toml::from_str::<AlertRule>("name = 'z'\nkind = 'sideways'").is_err());
        let missing = toml::from_str::<AlertRule>("name = 'z'\nkind = 'moves'\npercent = 1")
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("kind = \"moves\" needs within"),
            "{missing}"
        );
        let extra =
            toml::from_str::<AlertRule>("name = 'z'\nkind = 'crosses'\nprice = 1\ntimes = 2")
                .unwrap_err()
                .to_string();
        assert!(
            extra.contains("times is not a key of kind = \"crosses\""),
            "{extra}"
        );
        let typo = toml::from_str::<AlertRule>("name = 'z'\nkind = 'crosses'\nprise = 1")
            .unwrap_err()
            .to_string();
        assert!(typo.contains("unknown field `prise`"), "{typo}");
        // What is read is what is written back (the configuration's defaults go through it).
        let rule = rule("name = 'm'\nkind = 'moves'\npercent = 2.5\nwithin = '15m'");
        let again: AlertRule = toml::from_str(&toml::to_string(&rule).unwrap()).unwrap();
        assert_eq!(again, rule);
    }
}
