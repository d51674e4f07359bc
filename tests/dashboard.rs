//! The last mile: rollups checked against figures computed here from the input files, the
//! JSON API and `/metrics` of `tickpipe serve`, and the dashboard in a real browser (Debian's
//! Chromium driven by Playwright) showing a row committed while the page is open.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime, Timelike};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sqlx::Row;

use common::*;

static SHARED_TABLES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A row of the generated input.
#[derive(Clone)]
struct Trade {
    symbol: String,
    at: NaiveDateTime,
    ohlc: [Decimal; 4],
    volume: i64,
}

/// Tick-level CSVs (one to four rows a minute, some without volume) over two UTC days, in the
/// `timestamp,open,high,low,close,volume` layout named after the symbol.
/// `days` trading sessions of 130 minutes from 4 March 2024, one to four trades a minute.
fn write_trades(dir: &Path, symbols: &[&str], days: u64, seed: u64) -> Vec<Trade> {
    let mut state = seed | 1;
    let mut random = move |n: u64| {
        // xorshift64: reproducible and independent of tickpipe's generator.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let cents = |c: i64| Decimal::new(c, 2);
    let mut trades = Vec::new();
    for symbol in symbols {
        let mut file = std::fs::File::create(dir.join(format!("{symbol}.csv"))).unwrap();
        writeln!(file, "timestamp,open,high,low,close,volume").unwrap();
        let mut price: i64 = 50_000 + random(50_000) as i64;
        let first = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
        for date in first.iter_days().take(days as usize) {
            for minute in 0..130 {
                let start =
                    date.and_hms_opt(9, 15, 0).unwrap() + chrono::TimeDelta::minutes(minute);
                for second in [0, 15, 30, 45].into_iter().take(1 + random(4) as usize) {
                    let open = price;
                    price = (price + random(41) as i64 - 20).max(100);
                    let high = open.max(price) + random(5) as i64;
                    let low = (open.min(price) - random(5) as i64).max(1);
                    let volume = if random(10) == 0 {
                        0
                    } else {
                        random(5000) as i64
                    };
                    let at = start + chrono::TimeDelta::seconds(second);
                    let ohlc = [cents(open), cents(high), cents(low), cents(price)];
                    writeln!(
                        file,
                        "{},{},{},{},{},{volume}",
                        at.format("%Y-%m-%d %H:%M:%S"),
                        ohlc[0],
                        ohlc[1],
                        ohlc[2],
                        ohlc[3]
                    )
                    .unwrap();
                    trades.push(Trade {
                        symbol: symbol.to_string(),
                        at,
                        ohlc,
                        volume,
                    });
                }
            }
        }
    }
    trades
}

/// A one-minute bar and its indicators, computed here the plain way.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    ohlc: [Decimal; 4],
    volume: i64,
    sma_20: Option<Decimal>,
    sma_50: Option<Decimal>,
    ema_20: f64,
    vwap: Option<Decimal>,
}

fn expected_bars(trades: &[Trade]) -> BTreeMap<(String, NaiveDateTime), Expected> {
    let mut minutes: BTreeMap<(String, NaiveDateTime), Vec<&Trade>> = BTreeMap::new();
    for t in trades {
        let minute = t.at.with_second(0).unwrap();
        minutes
            .entry((t.symbol.clone(), minute))
            .or_default()
            .push(t);
    }
    let mut out = BTreeMap::new();
    let mut closes: Vec<Decimal> = Vec::new();
    let (mut ema, mut day_volume, mut day_turnover) = (0.0, Decimal::ZERO, Decimal::ZERO);
    let mut previous: Option<(String, NaiveDate)> = None;
    for ((symbol, minute), rows) in &minutes {
        let first_of_symbol = previous.as_ref().is_none_or(|(s, _)| s != symbol);
        if first_of_symbol {
            closes.clear();
        }
        if previous.as_ref() != Some(&(symbol.clone(), minute.date())) {
            day_volume = Decimal::ZERO;
            day_turnover = Decimal::ZERO;
        }
        previous = Some((symbol.clone(), minute.date()));
        let close = rows.last().unwrap().ohlc[3];
        let volume: i64 = rows.iter().map(|r| r.volume).sum();
        closes.push(close);
        let c = close.to_f64().unwrap();
        ema = if first_of_symbol {
            c
        } else {
            ema + 2.0 / 21.0 * (c - ema)
        };
        day_volume += Decimal::from(volume);
        day_turnover += rows
            .iter()
            .map(|r| r.ohlc[3] * Decimal::from(r.volume))
            .sum::<Decimal>();
        let mean = |n: usize| {
            (closes.len() >= n).then(|| {
                (closes[closes.len() - n..].iter().sum::<Decimal>() / Decimal::from(n)).round_dp(8)
            })
        };
        out.insert(
            (symbol.clone(), *minute),
            Expected {
                ohlc: [
                    rows[0].ohlc[0],
                    rows.iter().map(|r| r.ohlc[1]).max().unwrap(),
                    rows.iter().map(|r| r.ohlc[2]).min().unwrap(),
                    close,
                ],
                volume,
                sma_20: mean(20),
                sma_50: mean(50),
                ema_20: ema,
                vwap: (!day_volume.is_zero()).then(|| (day_turnover / day_volume).round_dp(8)),
            },
        );
    }
    out
}

async fn stored_bars(pool: &sqlx::MySqlPool) -> BTreeMap<(String, NaiveDateTime), Expected> {
    sqlx::query(
        "SELECT o.Bank_Name, o.`Timestamp`, o.Open, o.High, o.Low, o.Close, CAST(o.Volume AS SIGNED), \
                i.SMA_20, i.SMA_50, i.EMA_20, i.VWAP \
         FROM ohlcv_1m o JOIN indicators_1m i USING (Bank_Name, `Timestamp`)",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            (r.get(0), r.get(1)),
            Expected {
                ohlc: [r.get(2), r.get(3), r.get(4), r.get(5)],
                volume: r.get(6),
                sma_20: r.get(7),
                sma_50: r.get(8),
                ema_20: r.get(9),
                vwap: r.get(10),
            },
        )
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_match_independent_figures_after_a_crash_and_a_replay() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let pool = fresh_pipeline(appliance, "roll").await;
    let mut env = topics_env("roll");
    env.push(("TICKPIPE_PROCESS__BATCH_ROWS".into(), "97".into()));
    let env = as_refs(&env);
    let dir = tempfile::tempdir().unwrap();
    // Six sessions (~5,900 rows, ~60 batches): the kill after the first batch lands
    // mid-stream even when the test is scheduled late (two sessions once all went in first).
    const SESSIONS: u64 = 6;
    let trades = write_trades(dir.path(), &["ALPHA", "BETA", "GAMMA"], SESSIONS, 7);
    let pattern = format!("{}/*.csv", dir.path().display());
    appliance.run(&["produce", "--data", &pattern], &env);

    // The processor dies mid-stream (batches of 97 rows end mid-minute); then the files are
    // replayed (every record twice in the topic) and the processor drains.
    let mut process = appliance
        .tickpipe(&["process"])
        .envs(env.iter().copied())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while stored_rows(&pool).await == 0 && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    process.kill().unwrap();
    process.wait().unwrap();
    let at_crash = stored_rows(&pool).await;
    assert!(
        at_crash > 0 && at_crash < trades.len() as i64,
        "the processor was not killed mid-stream ({at_crash} of {} rows)",
        trades.len()
    );
    appliance.run(&["produce", "--data", &pattern], &env);
    appliance.run(&["process", "--drain"], &env);

    let expected = expected_bars(&trades);
    let stored = stored_bars(&pool).await;
    assert_eq!(
        stored.len(),
        expected.len(),
        "one bar per symbol and minute"
    );
    for (key, want) in &expected {
        let got = &stored[key];
        let relative = ((got.ema_20 - want.ema_20) / want.ema_20).abs();
        assert!(
            relative < 1e-12,
            "EMA_20 of {key:?}: {} vs {}",
            got.ema_20,
            want.ema_20
        );
        let exact = |e: &Expected| (e.ohlc, e.volume, e.sma_20, e.sma_50, e.vwap);
        assert_eq!(exact(got), exact(want), "bar {key:?}");
    }

    // Latest quotes: the newest row, against the previous day's last close.
    let quotes = sqlx::query(
        "SELECT Bank_Name, Price, Prev_Close, CAST(Day_Volume AS SIGNED) FROM latest_quotes",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(quotes.len(), 3);
    for q in quotes {
        let symbol: String = q.get(0);
        let rows: Vec<&Trade> = trades.iter().filter(|t| t.symbol == symbol).collect();
        let last = rows.last().unwrap();
        let day_before = rows
            .iter()
            .rev()
            .find(|t| t.at.date() < last.at.date())
            .unwrap();
        let day_volume: i64 = rows
            .iter()
            .filter(|t| t.at.date() == last.at.date())
            .map(|t| t.volume)
            .sum();
        assert_eq!(q.get::<Decimal, _>(1), last.ohlc[3], "{symbol} price");
        assert_eq!(
            q.get::<Option<Decimal>, _>(2),
            Some(day_before.ohlc[3]),
            "{symbol} previous close"
        );
        assert_eq!(q.get::<i64, _>(3), day_volume, "{symbol} day volume");
    }

    // The BI view of each session agrees with the bars.
    let days =
        sqlx::query("SELECT Bank_Name, Trade_Date, Open, Close, Volume, VWAP FROM v_daily_summary")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        days.len(),
        3 * SESSIONS as usize,
        "a row per session and symbol"
    );
    for d in days {
        let (symbol, date): (String, NaiveDate) = (d.get(0), d.get(1));
        let bars: Vec<&Expected> = expected
            .range((symbol.clone(), date.into())..)
            .take_while(|((s, t), _)| *s == symbol && t.date() == date)
            .map(|(_, e)| e)
            .collect();
        assert_eq!(d.get::<Decimal, _>(2), bars[0].ohlc[0]);
        assert_eq!(d.get::<Decimal, _>(3), bars.last().unwrap().ohlc[3]);
        assert_eq!(
            d.get::<Decimal, _>(4),
            Decimal::from(bars.iter().map(|b| b.volume).sum::<i64>())
        );
        assert_eq!(d.get::<Option<Decimal>, _>(5), bars.last().unwrap().vwap);
    }
}

fn scrape(body: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("/metrics is not Prometheus text ({e}):\n{body}"))
}

fn sample(scrape: &prometheus_parse::Scrape, name: &str) -> prometheus_parse::Value {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
        .value
        .clone()
}

/// A gauge's or counter's value (OpenMetrics `_total` counters parse as untyped here).
fn number(scrape: &prometheus_parse::Scrape, name: &str) -> f64 {
    use prometheus_parse::Value::*;
    match sample(scrape, name) {
        Gauge(v) | Counter(v) | Untyped(v) => v,
        other => panic!("{name} is {other:?}"),
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_serves_what_is_stored_refuses_bad_parameters_and_exports_metrics() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let pool = fresh_pipeline(appliance, "api").await;
    let env = topics_env("api");
    let env = as_refs(&env);
    let dir = tempfile::tempdir().unwrap();
    let trades = write_trades(dir.path(), &["DELTA", "EPSILON"], 2, 11);
    let pattern = format!("{}/*.csv", dir.path().display());
    appliance.run(&["produce", "--data", &pattern], &env);
    appliance.run(&["process", "--drain"], &env);
    let (mut server, url) = serve(appliance, &env);

    let (status, body) = http_get(&format!("{url}/api/symbols"));
    assert_eq!(
        (status, json(&body)),
        (200, serde_json::json!(["DELTA", "EPSILON"]))
    );

    let (status, body) = http_get(&format!("{url}/api/quotes"));
    assert_eq!(status, 200);
    let quotes = json(&body);
    let delta = trades.iter().rfind(|t| t.symbol == "DELTA").unwrap();
    assert_eq!(quotes[0]["symbol"], "DELTA");
    assert_eq!(
        quotes[0]["price"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap(),
        delta.ohlc[3]
    );
    assert_eq!(quotes[0]["sparkline"].as_array().unwrap().len(), 30);

    // The newest bars, oldest first, as stored.
    let (status, body) = http_get(&format!("{url}/api/bars?symbol=DELTA&interval=1m&limit=3"));
    assert_eq!(status, 200);
    let bars = json(&body)["bars"].as_array().unwrap().clone();
    let stored = sqlx::query(
        "SELECT UNIX_TIMESTAMP(`Timestamp`), Close, CAST(Volume AS SIGNED) FROM ohlcv_1m \
         WHERE Bank_Name = 'DELTA' ORDER BY `Timestamp` DESC LIMIT 3",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (bar, row) in bars.iter().zip(stored.iter().rev()) {
        assert_eq!(bar["time"].as_i64(), Some(row.get::<i64, _>(0)));
        assert_eq!(
            bar["close"].as_str().unwrap().parse::<Decimal>().unwrap(),
            row.get::<Decimal, _>(1)
        );
        assert_eq!(
            bar["volume"].as_str().map(|v| v.parse::<i64>().unwrap()),
            Some(row.get::<i64, _>(2))
        );
    }
    // A day bar sums its minutes.
    let (_, body) = http_get(&format!("{url}/api/bars?symbol=DELTA&interval=1d&limit=10"));
    let days = json(&body)["bars"].as_array().unwrap().clone();
    assert_eq!(days.len(), 2);
    let last_day = delta.at.date();
    let day_volume: i64 = trades
        .iter()
        .filter(|t| t.symbol == "DELTA" && t.at.date() == last_day)
        .map(|t| t.volume)
        .sum();
    assert_eq!(
        days[1]["volume"]
            .as_str()
            .map(|v| v.parse::<i64>().unwrap()),
        Some(day_volume)
    );

    for (query, status) in [
        ("", 400),
        ("symbol=", 400),
        ("symbol=DELTA&interval=7m", 400),
        ("symbol=DELTA&limit=0", 400),
        ("symbol=DELTA&limit=5001", 400),
        ("symbol=DELTA&limit=ten", 400),
        ("symbol=DELTA&sort=asc", 400),
        ("symbol=%07BELL", 400),
        ("symbol=NOPE", 404),
    ] {
        let (got, body) = http_get(&format!("{url}/api/bars?{query}"));
        assert_eq!(got, status, "/api/bars?{query}: {body}");
        assert!(json(&body)["error"].is_string(), "{body}");
    }
    assert_eq!(http_get(&format!("{url}/api/nothing")).0, 404);

    let (status, body) = http_get(&format!("{url}/healthz"));
    assert_eq!((status, json(&body)["status"].as_str()), (200, Some("ok")));

    // /metrics parses as Prometheus text and says the topics are drained.
    let (status, body) = http_get(&format!("{url}/metrics"));
    assert_eq!(status, 200);
    let scrape = scrape(&body);
    assert_eq!(number(&scrape, "tickpipe_lag_records"), 0.0);
    assert_eq!(number(&scrape, "tickpipe_symbols"), 2.0);
    assert_eq!(number(&scrape, "tickpipe_rejected_rows"), 0.0);
    let partitions = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "tickpipe_partition_lag_records")
        .count();
    assert_eq!(
        partitions,
        6 + 2,
        "a lag figure per partition of both topics"
    );

    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_a_row_committed_while_it_is_open_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 3, 2, 5);
    let expected_rows: i64 = input_totals(&csv_files(dir.path()))
        .values()
        .map(|t| t.0)
        .sum();
    let pattern = format!("{}/*.csv", dir.path().display());
    let appliance = Appliance::start(&["--data", &pattern], &[]);
    let pool = appliance.root_pool().await;
    let start = Instant::now();
    while stored_rows(&pool).await < expected_rows {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the replay did not land"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let mut browser = std::process::Command::new("node")
        .arg("tests/browser/dashboard.mjs")
        .arg(appliance.dashboard_url())
        .arg(&screenshot)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running node (scripts/install-browser.sh installs the browser test's parts)");
    let mut lines = BufReader::new(browser.stdout.take().unwrap()).lines();
    let mut next_line = move || lines.next().and_then(Result::ok).unwrap_or_default();
    let ready = next_line();
    let symbol = ready
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("the page did not get ready: {ready}"))
        .to_string();

    // A new newest row for the charted symbol, through the real pipeline.
    let newest = sqlx::query(
        "SELECT `Timestamp`, Close FROM stock_data WHERE Bank_Name = ? \
         ORDER BY `Timestamp` DESC LIMIT 1",
    )
    .bind(&symbol)
    .fetch_one(&pool)
    .await
    .unwrap();
    let at = newest.get::<NaiveDateTime, _>(0) + chrono::TimeDelta::minutes(1);
    let price = newest.get::<Decimal, _>(1) + Decimal::new(12345, 4);
    let file = dir.path().join("late").join(format!("{symbol}.csv"));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        format!(
            "Timestamp,Bank_Name,Open,High,Low,Close,Volume\n{},{symbol},{price},{price},{price},{price},100\n",
            at.format("%Y-%m-%d %H:%M:%S")
        ),
    )
    .unwrap();
    appliance.run(&["produce", "--data", file.to_str().unwrap()], &[]);
    let committed = Instant::now();
    while sqlx::query("SELECT 1 FROM stock_data WHERE Bank_Name = ? AND `Timestamp` = ?")
        .bind(&symbol)
        .bind(at)
        .fetch_optional(&pool)
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            committed.elapsed() < Duration::from_secs(10),
            "the new row was not committed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut stdin = browser.stdin.take().unwrap();
    writeln!(stdin, "COMMITTED {symbol} {price}").unwrap();

    let result = next_line();
    let result = json(
        result
            .strip_prefix("RESULT ")
            .unwrap_or_else(|| panic!("the page did not show the new row: {result}")),
    );
    assert!(browser.wait().unwrap().success());
    eprintln!("dashboard: {result}; screenshot {}", screenshot.display());
    assert_eq!(result["console_errors"], serde_json::json!([]), "{result}");
    assert!(result["bars"].as_i64().unwrap() > 0, "{result}");
    let elapsed = result["elapsed_ms"].as_f64().unwrap();
    assert!(
        elapsed <= 1000.0,
        "the committed row took {elapsed} ms to show"
    );

    // `up` serves the processor's own counters too.
    let (_, body) = http_get(&format!("{}metrics", appliance.dashboard_url()));
    let scrape = scrape(&body);
    assert_eq!(
        number(&scrape, "tickpipe_rows_written_total"),
        (expected_rows + 1) as f64,
        "rows written"
    );
    match sample(&scrape, "tickpipe_batch_commit_seconds") {
        prometheus_parse::Value::Histogram(buckets) => {
            assert!(
                buckets.last().unwrap().count > 0.0,
                "no batch latency recorded"
            )
        }
        other => panic!("batch latency is {other:?}"),
    }
}

/// The demo as a new user runs it: `up` replays the history and then keeps producing live
/// ticks, so the page changes by itself within 10 s of opening it, with no produce by the
/// test; the page fits, nothing clipped, from 1,024 to 1,920 px wide (screenshots of both);
/// and an alert raised by rows the test then produces shows up on the open page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_updates_by_itself_fits_and_shows_alerts() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 12, 1, 9);
    let replayed: i64 = input_totals(&csv_files(dir.path()))
        .values()
        .map(|t| t.0)
        .sum();
    let config = dir.path().join("demo.toml");
    std::fs::write(
        &config,
        "[live]\nenabled = true\n\n[[alerts]]\nname = \"million\"\nkind = \"crosses\"\n\
         symbol = \"ALERTPAGE\"\nprice = 1000000\n",
    )
    .unwrap();
    let pattern = format!("{}/*.csv", dir.path().display());
    let appliance = Appliance::start(
        &["--config", config.to_str().unwrap(), "--data", &pattern],
        &[("TICKPIPE_LIVE__ENABLED", "true")],
    );
    let pool = appliance.root_pool().await;
    let start = Instant::now();
    while stored_rows(&pool).await < replayed {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the replay did not land"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut browser = std::process::Command::new("node")
        .arg("tests/browser/demo.mjs")
        .arg(appliance.dashboard_url())
        .arg(screenshots)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running node (scripts/install-browser.sh installs the browser test's parts)");
    let mut lines = BufReader::new(browser.stdout.take().unwrap()).lines();
    let mut next_line = move || lines.next().and_then(Result::ok).unwrap_or_default();
    let updated = next_line();
    assert_eq!(
        updated, "UPDATED",
        "the page did not update by itself: {updated}"
    );

    // Rows of a new symbol whose close crosses the rule's price, and one more that closes that
    // bar, through the pipeline.
    let late = dir.path().join("late");
    std::fs::create_dir_all(&late).unwrap();
    let now = chrono::Utc::now().naive_utc() - chrono::TimeDelta::minutes(5);
    let mut csv = String::from("Timestamp,Bank_Name,Open,High,Low,Close,Volume\n");
    for (minute, close) in [(0, "999999.5"), (1, "1000000.25"), (2, "1000000.5")] {
        let at = (now + chrono::TimeDelta::minutes(minute)).format("%Y-%m-%d %H:%M:00");
        csv.push_str(&format!(
            "{at},ALERTPAGE,{close},{close},{close},{close},10\n"
        ));
    }
    std::fs::write(late.join("ALERTPAGE.csv"), csv).unwrap();
    appliance.run(
        &[
            "--config",
            config.to_str().unwrap(),
            "produce",
            "--data",
            late.join("ALERTPAGE.csv").to_str().unwrap(),
        ],
        &[],
    );
    let mut stdin = browser.stdin.take().unwrap();
    writeln!(stdin, "ALERT ALERTPAGE").unwrap();

    let result = next_line();
    let result = json(
        result
            .strip_prefix("RESULT ")
            .unwrap_or_else(|| panic!("the demo page test failed: {result}")),
    );
    assert!(browser.wait().unwrap().success());
    eprintln!("demo: {result}; screenshots in {}", screenshots.display());
    assert_eq!(result["layout_problems"], serde_json::json!([]), "{result}");
    assert_eq!(result["console_errors"], serde_json::json!([]), "{result}");
    assert!(
        result["updated_ms"].as_f64().unwrap() <= 10_000.0,
        "{result}"
    );
    let shown = result["alert"].as_str().unwrap();
    assert!(
        shown.contains("crossed above 1000000 (999999.5 → 1000000.25)"),
        "{result}"
    );
    let (_, api) = http_get(&format!("{}api/alerts?limit=5", appliance.dashboard_url()));
    let api = json(&api);
    assert_eq!(api[0]["rule"], "million", "{api}");
    assert_eq!(api[0]["symbol"], "ALERTPAGE", "{api}");

    // What moved the page is live ticks through the pipeline: rows beyond the replay, each
    // symbol's newest stamped within the last minute, bars forming.
    let (rows, fresh_symbols, live_bars): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM stock_data), \
                (SELECT COUNT(*) FROM latest_quotes \
                 WHERE `Timestamp` > UTC_TIMESTAMP() - INTERVAL 1 MINUTE), \
                (SELECT COUNT(*) FROM bars_1m \
                 WHERE `Timestamp` > UTC_TIMESTAMP() - INTERVAL 2 MINUTE)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        rows > replayed,
        "no live rows: {rows} stored, {replayed} replayed"
    );
    assert_eq!(fresh_symbols, 12, "every replayed symbol ticks live");
    assert!(live_bars >= 12, "live bars: {live_bars}");
}

/// Two appliances on one machine, neither with `serve.port` set: each gets a dashboard of its
/// own (the first 8080 if free, the second a free port), both serve; the second, restarted,
/// gets its port back; a port set in the configuration that is taken is an error naming
/// `serve.port`.
#[test]
fn two_appliances_on_one_machine_both_serve_their_dashboards() {
    let first = Appliance::start_on_default_port(tempfile::tempdir().unwrap(), &[]);
    let second = Appliance::start_on_default_port(tempfile::tempdir().unwrap(), &[]);
    let (first_url, second_url) = (first.dashboard_url(), second.dashboard_url());
    assert_ne!(first_url, second_url);
    for url in [&first_url, &second_url] {
        let (code, page) = http_get(url);
        assert_eq!(code, 200, "{url}");
        assert!(page.contains("tickpipe"), "{url}: {page}");
        assert_eq!(http_get(&format!("{url}api/quotes")).0, 200, "{url}");
    }

    let again = Appliance::start_on_default_port(second.kill(), &[]);
    assert_eq!(
        again.dashboard_url(),
        second_url,
        "the recorded port, again"
    );

    let port = first_url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let state = tempfile::tempdir().unwrap();
    let refused = std::process::Command::new(BIN)
        .arg("--state-dir")
        .arg(state.path())
        .arg("up")
        .env("TICKPIPE_SERVE__PORT", &port)
        .env("TICKPIPE_LIVE__ENABLED", "false")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains(&format!("serving on 127.0.0.1:{port} (change serve.port")),
        "{said}"
    );
    drop(first);
}
