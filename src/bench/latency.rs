//! Latency at steady rates: produce → committed row, → in the rollups (both reported by the
//! processor) and → on the dashboard (a page listening to `tickpipe serve`'s event stream).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::child::{finish, interrupt, log_file, tail, tickpipe};
use super::{Bench, Latency, number};
use crate::generate;

/// Steady input on a topic of its own: files with one row a second per symbol, replayed at
/// the rate asked.
pub(super) struct SteadyInput {
    pub(super) topic: String,
    pattern: String,
    speed: String,
    /// Rows the replay sends.
    pub(super) rows: u64,
}

impl Bench<'_> {
    /// Produce → commit latency with the producer replaying at a steady `rate` rows/s while
    /// the processor runs.
    pub(super) async fn latency(&self, rate: u32) -> Result<Latency> {
        let steady = self.steady_input("latency", rate).await?;
        let topic = steady.topic.clone();
        let processor = self.stage_command(&topic, &["process", "--json"])?;
        // Blocking calls (spawning, waiting for the port): off the runtime's other tasks.
        let dashboard = tokio::task::block_in_place(|| Dashboard::start(self, &topic))?;
        // The processor is fetching, and the page listening, before the first record is sent.
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.replay_and_wait(&steady, "the processor", Duration::from_secs(60))
            .await?;
        // The newest rows' quotes reach the page within a poll or two.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (seen, watch_ended) = dashboard.stop()?;
        interrupt(&processor);
        let out = finish(processor)?.stdout;
        let summary: Value = serde_json::from_str(out.trim())
            .with_context(|| format!("the processor printed no JSON summary: {out}"))?;
        let on_dashboard = self.on_dashboard(&topic, &seen, watch_ended).await?;
        let ms = |q: &str| number(&summary["latency_ms"], q);
        let quotes = |q: &str| number(&summary["in_quotes_latency_ms"], q);
        Ok(Latency {
            rate,
            rows: steady.rows,
            p50_ms: ms("p50")?,
            p95_ms: ms("p95")?,
            p99_ms: ms("p99")?,
            max_ms: ms("max")?,
            in_quotes_ms: [
                quotes("p50")?,
                quotes("p95")?,
                quotes("p99")?,
                quotes("max")?,
            ],
            on_dashboard_ms: on_dashboard,
        })
    }

    /// Writes `rate` × `latency_seconds` rows of steady input, creates its topic
    /// (`<prefix>_<rate>`) and empties the tables.
    pub(super) async fn steady_input(&self, prefix: &str, rate: u32) -> Result<SteadyInput> {
        const SYMBOLS: u32 = 10;
        let per_symbol =
            u64::from(rate) * u64::from(self.spec.latency_seconds) / u64::from(SYMBOLS);
        let topic = format!("{prefix}_{rate}");
        let dir = self.work.join(&topic);
        write_steady_input(&dir, SYMBOLS, per_symbol)?;
        self.topics(&topic).await?;
        self.empty_tables().await?;
        Ok(SteadyInput {
            pattern: format!("{}/*.csv", dir.display()),
            // Each symbol has a row a second: SYMBOLS rows per second of the data's clock.
            speed: (f64::from(rate) / f64::from(SYMBOLS)).to_string(),
            rows: per_symbol * u64::from(SYMBOLS),
            topic,
        })
    }

    /// Replays `steady` and waits until `who` (the processor running) has committed all of it,
    /// at most `patience` after the replay ends.
    pub(super) async fn replay_and_wait(
        &self,
        steady: &SteadyInput,
        who: &str,
        patience: Duration,
    ) -> Result<()> {
        self.stage(
            &steady.topic,
            &[
                "produce",
                "--json",
                "--speed",
                &steady.speed,
                "--data",
                &steady.pattern,
            ],
        )?;
        let started = Instant::now();
        loop {
            let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stock_data")
                .fetch_one(&self.root)
                .await?;
            if stored as u64 >= steady.rows {
                return Ok(());
            }
            if started.elapsed() > patience {
                bail!("{who} committed {stored} of {} rows", steady.rows);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    /// For every record of `topic`: from its `produced_at` to the first quote of its symbol at
    /// least as new that the page received (p50, p95, p99, max in ms). A row never shown counts
    /// as shown when the watch ended (`watch_ended`, µs since the epoch).
    async fn on_dashboard(
        &self,
        topic: &str,
        seen: &[SeenQuote],
        watch_ended: i64,
    ) -> Result<[f64; 4]> {
        if seen.is_empty() {
            bail!(
                "the dashboard's event stream sent no quote:\n{}",
                tail(self.work, "serve")
            );
        }
        let mut by_symbol: std::collections::BTreeMap<&str, Vec<&SeenQuote>> = Default::default();
        for quote in seen {
            by_symbol.entry(&quote.symbol).or_default().push(quote);
        }
        let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
        let reading = self.config.reading();
        for (partition, _, latest) in self.broker.watermarks(topic).await? {
            let client = self.broker.partition(topic, partition).await?;
            let mut offset = 0;
            while offset < latest {
                let fetched = client
                    .fetch_records_committed(offset, 1..4_000_000, 1_000)
                    .await?;
                if fetched.next_offset <= offset {
                    break;
                }
                offset = fetched.next_offset;
                for record in fetched.records {
                    let value = record.record.value.unwrap_or_default();
                    let Ok((tick, _)) = crate::tick::Tick::read_json(&value, reading) else {
                        continue;
                    };
                    let shown = by_symbol.get(tick.symbol.as_str()).and_then(|quotes| {
                        quotes
                            .iter()
                            .find(|q| q.timestamp >= tick.timestamp)
                            .map(|q| q.arrived_us)
                    });
                    let waited = shown.unwrap_or(watch_ended) - tick.produced_at;
                    histogram.saturating_record(waited.max(0) as u64);
                }
            }
        }
        let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        Ok([ms(0.5), ms(0.95), ms(0.99), histogram.max() as f64 / 1000.0])
    }
}

/// A quote the page received, and when (µs since the epoch, this machine's clock).
struct SeenQuote {
    symbol: String,
    timestamp: chrono::DateTime<chrono::Utc>,
    arrived_us: i64,
}

/// `tickpipe serve` on a free port, and a page listening to its event stream (a thread reading
/// `/api/events`, as the dashboard's EventSource does).
struct Dashboard {
    serve: Child,
    page: Option<std::thread::JoinHandle<Vec<SeenQuote>>>,
}

impl Dashboard {
    fn start(bench: &Bench<'_>, topic: &str) -> Result<Dashboard> {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
            .local_addr()?
            .port();
        let serve = tickpipe(&bench.state)
            .arg("serve")
            .env("TICKPIPE_TOPICS__TICKS", topic)
            .env("TICKPIPE_TOPICS__DLQ", format!("{topic}.dlq"))
            .env("TICKPIPE_SERVE__PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(log_file(bench.work, "serve")?)
            .spawn()
            .context("starting tickpipe serve")?;
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while ureq::get(&format!("{base}/healthz")).call().is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "tickpipe serve did not answer:\n{}",
                    tail(bench.work, "serve")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let events = ureq::get(&format!("{base}/api/events"))
            .call()
            .context("opening the dashboard's event stream")?;
        let page = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut event = String::new();
            let reader = BufReader::new(events.into_body().into_reader());
            // Ends when serve stops and the stream closes.
            for line in reader.lines() {
                let Ok(line) = line else { break };
                if let Some(name) = line.strip_prefix("event:") {
                    event = name.trim().to_string();
                } else if let Some(data) = line.strip_prefix("data:")
                    && event == "quote"
                    && let Ok(quote) = serde_json::from_str::<Value>(data.trim())
                    && let (Some(symbol), Some(Ok(timestamp))) = (
                        quote["symbol"].as_str(),
                        quote["timestamp"]
                            .as_str()
                            .map(|t| t.parse::<chrono::DateTime<chrono::Utc>>()),
                    )
                {
                    seen.push(SeenQuote {
                        symbol: symbol.to_string(),
                        timestamp,
                        arrived_us: chrono::Utc::now().timestamp_micros(),
                    });
                }
            }
            seen
        });
        Ok(Dashboard {
            serve,
            page: Some(page),
        })
    }

    /// Stops serve (closing the stream): the quotes the page received, and when the watch
    /// ended (µs since the epoch).
    fn stop(mut self) -> Result<(Vec<SeenQuote>, i64)> {
        let ended = chrono::Utc::now().timestamp_micros();
        let _ = self.serve.kill();
        let _ = self.serve.wait();
        let seen = self
            .page
            .take()
            .map(|page| page.join())
            .transpose()
            .map_err(|_| anyhow::anyhow!("the page's reader panicked"))?;
        Ok((seen.unwrap_or_default(), ended))
    }
}

impl Drop for Dashboard {
    /// A bench that fails half-way leaves no serve behind (its stream then closes too).
    fn drop(&mut self) {
        let _ = self.serve.kill();
        let _ = self.serve.wait();
    }
}

/// `symbols` files of `per_symbol` rows one second apart, in the minute-bar layout.
fn write_steady_input(dir: &Path, symbols: u32, per_symbol: u64) -> Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid time");
    for s in 0..symbols {
        let file =
            std::fs::File::create(dir.join(format!("{}.csv", generate::symbol_name(s as usize))))?;
        let mut out = std::io::BufWriter::new(file);
        writeln!(out, "timestamp,open,high,low,close,volume")?;
        for i in 0..per_symbol {
            let at = start + chrono::TimeDelta::seconds(i as i64);
            let price = 1000 + (i % 97) as i64;
            writeln!(
                out,
                "{},{price}.00,{price}.50,{price}.00,{price}.25,{}",
                at.format("%Y-%m-%d %H:%M:%S"),
                100 + i % 1000
            )?;
        }
    }
    Ok(())
}
