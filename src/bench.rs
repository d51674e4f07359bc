//! `tickpipe bench`: the pipeline measured side by side with the services' own ceilings, on a
//! private appliance it starts and stops: the producer against Kafka's
//! `kafka-producer-perf-test` (same jars, broker, record size, acks=all), the processor against
//! `LOAD DATA LOCAL INFILE` of the same rows into a copy of the table and against row-by-row
//! inserts, produce → commit latency at steady rates, `up` → ready, and each stage's peak RSS.
//! Every stage runs as its own `tickpipe` process, as users run it, so its memory is its own.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;
use sqlx::MySqlPool;

use crate::broker::Broker;
use crate::config::{Config, Mode};
use crate::generate::{self, GenerateSpec, Layout};
use crate::state::{Endpoints, StateDir};
use crate::store;
use crate::supervisor;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// Symbols and trading days of generated input (375 rows per symbol and day).
    pub symbols: usize,
    pub days: u32,
    /// Runs of each throughput figure (the median is reported).
    pub runs: usize,
    /// Steady rates (rows/s) at which latency is measured, and for how long.
    pub rates: Vec<u32>,
    pub latency_seconds: u32,
    /// How long row-by-row inserts run.
    pub row_by_row_seconds: u32,
}

/// A throughput: the median of its runs, and every run.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub per_second: f64,
    pub mb_per_second: Option<f64>,
    pub runs: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub rate: u32,
    pub rows: u64,
    /// Produce → committed row.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Produce → the row in its symbol's bars and latest quote (what the dashboard and BI
    /// read): p50, p95, p99, max.
    pub in_quotes_ms: [f64; 4],
    /// Produce → a quote at least as new as the row delivered by the dashboard's event stream
    /// to a listening page: p50, p95, p99, max.
    pub on_dashboard_ms: [f64; 4],
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rows: u64,
    pub record_bytes: f64,
    pub runs: usize,
    pub up_ready_seconds: f64,
    pub producer: Throughput,
    pub perf_test: Throughput,
    /// Rows committed per second by `process --drain` (the rows' own time).
    pub processor: Throughput,
    /// When the drain's rollups were all computed, as a multiple of the rows' own time (the
    /// median run's).
    pub rollups_time_factor: f64,
    pub load_data: Throughput,
    pub row_by_row: Throughput,
    pub latency: Vec<Latency>,
    pub peak_rss_mb: PeakRss,
    /// CPU the drain of the median processor run took, per process.
    pub processor_cpu: CpuSplit,
}

/// CPU seconds each process used while the processor drained the topic, and the wall time.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuSplit {
    pub cores: usize,
    pub wall_seconds: f64,
    pub tickpipe: f64,
    pub mariadb: f64,
    pub kafka: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PeakRss {
    pub up: f64,
    pub producer: f64,
    pub processor: f64,
}

pub async fn run(config: &Config, spec: &BenchSpec) -> Result<Report> {
    let work = std::env::temp_dir().join(format!("tickpipe-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = Bench::start(config, spec, &work).await;
    let result = match result {
        Ok(mut bench) => {
            let report = bench.measure().await;
            let up_rss = bench.stop();
            report.map(|mut r| {
                r.peak_rss_mb.up = up_rss;
                r
            })
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&work);
    result
}

struct Bench<'a> {
    spec: &'a BenchSpec,
    work: &'a Path,
    state: PathBuf,
    up: Child,
    up_ready: Duration,
    broker: Broker,
    root: MySqlPool,
    mysql: store::MysqlTarget,
    config: Config,
}

impl<'a> Bench<'a> {
    async fn start(config: &Config, spec: &'a BenchSpec, work: &'a Path) -> Result<Bench<'a>> {
        let state = work.join("state");
        let started = Instant::now();
        let mut up = tickpipe(&state)
            .args(["up", "--services-only"])
            // Free ports: never the ones a running appliance was given.
            .env("TICKPIPE_BROKER__PORT", "0")
            .env("TICKPIPE_MYSQL__PORT", "0")
            .stdout(Stdio::piped())
            .stderr(log_file(work, "up")?)
            .spawn()
            .context("starting the bench appliance")?;
        let mut banner = BufReader::new(up.stdout.take().expect("piped"));
        let mut line = String::new();
        while !line.starts_with("tickpipe is up") {
            line.clear();
            if banner.read_line(&mut line)? == 0 {
                bail!("the bench appliance did not start:\n{}", tail(work, "up"));
            }
        }
        let up_ready = started.elapsed();
        // Keep draining the banner so `up` never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut banner, &mut std::io::sink()));

        let mut config = config.clone();
        config.state_dir = state.clone();
        let endpoints = Endpoints::resolve(&config)?;
        let broker =
            Broker::connect(&endpoints.broker_admin, config.broker.startup_timeout).await?;
        let mysql = match config.mysql.mode {
            Mode::Managed => {
                let credentials = StateDir::new(&state).credentials()?;
                endpoints.mysql.as_user("root", &credentials.root_password)
            }
            Mode::External => endpoints.mysql.clone(),
        };
        let root = store::connect_pool(&mysql, true, config.mysql.startup_timeout).await?;
        Ok(Bench {
            spec,
            work,
            state,
            up,
            up_ready,
            broker,
            root,
            mysql,
            config,
        })
    }

    /// Stops the appliance; its supervisor's own peak RSS in MB (wait4 would add Kafka's and
    /// MariaDB's, which it waited for).
    fn stop(self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.up.id()));
        let peak_kb = status.ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        });
        unsafe { libc::kill(self.up.id() as i32, libc::SIGINT) };
        let _ = finish(self.up);
        peak_kb.unwrap_or(0.0) / 1024.0
    }

    async fn measure(&mut self) -> Result<Report> {
        let data = self.work.join("data");
        let generated = generate::generate(&GenerateSpec {
            out_dir: data.clone(),
            symbols: self.spec.symbols,
            days: self.spec.days,
            start: chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("a valid date"),
            seed: 42,
            layout: Layout::Seed,
        })?;
        let rows = generated.rows;
        let pattern = format!("{}/*.csv", data.display());
        eprintln!(
            "bench: {rows} rows of {} symbols, {} runs each",
            self.spec.symbols, self.spec.runs
        );

        let (mut producer, mut processor, mut processor_cpu) = (Vec::new(), Vec::new(), Vec::new());
        let mut rss = PeakRss::default();
        let mut record_bytes = 0.0;
        for run in 0..self.spec.runs {
            let topic = format!("bench_{run}");
            self.topics(&topic).await?;
            let (out, rss_mb, _) =
                self.stage(&topic, &["produce", "--json", "--data", &pattern])?;
            record_bytes = out["bytes"].as_f64().unwrap_or(0.0) / rows as f64;
            producer.push((
                number(&out, "records_per_second")?,
                number(&out, "mb_per_second")?,
            ));
            rss.producer = rss.producer.max(rss_mb);

            self.empty_tables().await?;
            let (out, rss_mb, cpu) = self.stage(&topic, &["process", "--drain", "--json"])?;
            if out["rows"].as_u64() != Some(rows) {
                bail!("the processor committed {} of {rows} rows", out["rows"]);
            }
            let rows_seconds = number(&out, "rows_seconds")?.max(1e-9);
            processor.push((
                number(&out, "rows_per_second")?,
                (rows_seconds + number(&out, "rollups_after_rows_seconds")?) / rows_seconds,
            ));
            processor_cpu.push(cpu);
            rss.processor = rss.processor.max(rss_mb);
            eprintln!(
                "bench: run {}: producer {:.0} records/s, processor {:.0} rows/s",
                run + 1,
                producer[run].0,
                processor[run].0
            );
        }

        let mut perf_test = Vec::new();
        for run in 0..self.spec.runs {
            perf_test.push(
                self.perf_test(run, rows, record_bytes.round() as usize)
                    .await?,
            );
        }
        let mut load_data = Vec::new();
        for _ in 0..self.spec.runs {
            load_data.push((self.load_data(&generated.files, rows).await?, 0.0));
        }
        let row_by_row = self.row_by_row(&generated.files[0]).await?;

        let mut latency = Vec::new();
        for &rate in &self.spec.rates {
            latency.push(self.latency(rate).await?);
        }
        Ok(Report {
            rows,
            record_bytes,
            runs: self.spec.runs,
            up_ready_seconds: self.up_ready.as_secs_f64(),
            producer: median(&producer, true),
            perf_test: median(&perf_test, true),
            processor: median(&processor, false),
            rollups_time_factor: processor[median_run(&processor)].1,
            processor_cpu: processor_cpu[median_run(&processor)],
            load_data: median(&load_data, false),
            row_by_row: median(&[(row_by_row, 0.0)], false),
            latency,
            peak_rss_mb: rss,
        })
    }

    async fn topics(&self, topic: &str) -> Result<()> {
        let partitions = self.config.topics.partitions;
        self.broker.ensure_topic(topic, partitions).await?;
        self.broker
            .ensure_topic(&format!("{topic}.dlq"), partitions)
            .await?;
        Ok(())
    }

    async fn empty_tables(&self) -> Result<()> {
        for table in store::PIPELINE_TABLES {
            store::execute_admin(&self.root, format!("TRUNCATE TABLE {table}")).await?;
        }
        Ok(())
    }

    /// Runs one `tickpipe` stage on `topic` to completion: its JSON summary and peak RSS.
    /// Runs one `tickpipe` stage on `topic` to completion: its JSON summary, peak RSS, and
    /// the CPU it and the services used meanwhile.
    fn stage(&self, topic: &str, args: &[&str]) -> Result<(Value, f64, CpuSplit)> {
        let services = |file: &str| {
            std::fs::read_to_string(self.state.join(file))
                .ok()
                .and_then(|pid| pid.trim().parse::<i32>().ok())
        };
        let (mariadb, kafka) = (
            services("mysql/mysqld.pid"),
            services("kafka/supervised.pid"),
        );
        let before = (mariadb.and_then(cpu_seconds), kafka.and_then(cpu_seconds));
        let started = Instant::now();
        let child = self.stage_command(topic, args)?;
        let finished = finish(child)?;
        let used = |pid: Option<i32>, before: Option<f64>| {
            pid.and_then(cpu_seconds)
                .zip(before)
                .map_or(f64::NAN, |(after, before)| after - before)
        };
        let cpu = CpuSplit {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            wall_seconds: started.elapsed().as_secs_f64(),
            tickpipe: finished.cpu_seconds,
            mariadb: used(mariadb, before.0),
            kafka: used(kafka, before.1),
        };
        if !finished.ok {
            bail!("tickpipe {args:?} failed:\n{}", tail(self.work, args[0]));
        }
        let out = finished.stdout;
        let summary = serde_json::from_str(out.trim())
            .with_context(|| format!("tickpipe {args:?} printed no JSON summary: {out}"))?;
        Ok((summary, finished.peak_rss_mb, cpu))
    }

    fn stage_command(&self, topic: &str, args: &[&str]) -> Result<Child> {
        tickpipe(&self.state)
            .args(args)
            .env("TICKPIPE_TOPICS__TICKS", topic)
            .env("TICKPIPE_TOPICS__DLQ", format!("{topic}.dlq"))
            .stdout(Stdio::piped())
            .stderr(log_file(self.work, args[0])?)
            .spawn()
            .with_context(|| format!("starting tickpipe {}", args[0]))
    }

    /// Kafka's own producer benchmark on the same broker: records/s and MB/s.
    async fn perf_test(&self, run: usize, rows: u64, record_bytes: usize) -> Result<(f64, f64)> {
        let topic = format!("perf_test_{run}");
        self.topics(&topic).await?;
        let libs = supervisor::kafka_libs(&self.config.broker)?;
        let mut perf_test = Command::new(supervisor::find_java()?);
        perf_test
            .arg("-cp")
            .arg(format!("{}/*", libs.display()))
            .arg("org.apache.kafka.tools.ProducerPerformance");
        // The managed broker's login, as `up` wrote it for Kafka's tools.
        let login = self.state.join("client-admin.properties");
        if login.exists() {
            perf_test.arg("--producer.config").arg(login);
        }
        let output = perf_test
            .args(["--topic", &topic, "--num-records", &rows.to_string()])
            .args([
                "--record-size",
                &record_bytes.to_string(),
                "--throughput",
                "-1",
            ])
            .arg("--producer-props")
            .arg(format!("bootstrap.servers={}", self.broker.bootstrap))
            // The producer's own settings: acks=all, lz4, 20 ms linger, ~1 MB batches.
            .args([
                "acks=all",
                &format!("compression.type={}", self.config.ingest.compression),
                &format!("linger.ms={}", self.config.ingest.linger.as_millis()),
                "batch.size=921600",
            ])
            .output()
            .context("running kafka-producer-perf-test")?;
        let text = String::from_utf8_lossy(&output.stdout);
        // "1000000 records sent, 312500.0 records/sec (44.70 MB/sec), …"
        let last = text
            .lines()
            .rfind(|l| l.contains("records sent"))
            .with_context(|| {
                format!(
                    "kafka-producer-perf-test printed no summary:\n{text}{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            })?;
        let field = |before: &str| -> Result<f64> {
            let end = last.find(before).context("unexpected perf-test summary")?;
            let start = last[..end]
                .trim_end()
                .rfind([' ', '('])
                .map_or(0, |i| i + 1);
            Ok(last[start..end].trim().parse()?)
        };
        Ok((field("records/sec")?, field("MB/sec")?))
    }

    /// `LOAD DATA LOCAL INFILE` of the same rows into a copy of `stock_data`: rows/s.
    async fn load_data(&self, files: &[PathBuf], rows: u64) -> Result<f64> {
        store::execute_admin(
            &self.root,
            "CREATE TABLE IF NOT EXISTS stock_data_load LIKE stock_data".into(),
        )
        .await?;
        store::execute_admin(&self.root, "TRUNCATE TABLE stock_data_load".into()).await?;
        // The appliance starts MariaDB with local_infile off; this one is the bench's own.
        store::execute_admin(&self.root, "SET GLOBAL local_infile = 1".into()).await?;
        let mut sql = String::new();
        for file in files {
            // The generated files' columns are the table's, in its order.
            sql.push_str(&format!(
                "LOAD DATA LOCAL INFILE '{}' INTO TABLE stock_data_load \
                 FIELDS TERMINATED BY ',' IGNORE 1 LINES;",
                file.display()
            ));
        }
        let mut client = Command::new("mariadb");
        client
            .arg("--local-infile=1")
            .arg(format!("--user={}", self.mysql.user))
            .arg(format!("--database={}", self.mysql.database))
            .env("MYSQL_PWD", &self.mysql.password)
            .args(["-e", &sql]);
        match &self.mysql.socket {
            Some(socket) => client.arg(format!("--socket={}", socket.display())),
            None => client.args([
                format!("--host={}", self.mysql.host),
                format!("--port={}", self.mysql.port),
            ]),
        };
        let started = Instant::now();
        let output = client.output().context("running the mariadb client")?;
        let elapsed = started.elapsed();
        if !output.status.success() {
            bail!(
                "LOAD DATA LOCAL INFILE failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let loaded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stock_data_load")
            .fetch_one(&self.root)
            .await?;
        if loaded as u64 != rows {
            bail!("LOAD DATA loaded {loaded} of {rows} rows");
        }
        Ok(rows as f64 / elapsed.as_secs_f64())
    }

    /// One autocommitted INSERT per row (what the original design did): rows/s.
    async fn row_by_row(&self, file: &Path) -> Result<f64> {
        store::execute_admin(&self.root, "TRUNCATE TABLE stock_data_load".into()).await?;
        let text = std::fs::read_to_string(file)?;
        let deadline = Duration::from_secs(self.spec.row_by_row_seconds.into());
        let started = Instant::now();
        let mut inserted = 0u64;
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            sqlx::query(
                "INSERT INTO stock_data_load \
                 (`Timestamp`, Bank_Name, Open, High, Low, Close, Volume) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(f[0])
            .bind(f[1])
            .bind(f[2])
            .bind(f[3])
            .bind(f[4])
            .bind(f[5])
            .bind(f[6])
            .execute(&self.root)
            .await?;
            inserted += 1;
            if started.elapsed() >= deadline {
                break;
            }
        }
        Ok(inserted as f64 / started.elapsed().as_secs_f64())
    }

    /// Produce → commit latency with the producer replaying at a steady `rate` rows/s while
    /// the processor runs.
    async fn latency(&self, rate: u32) -> Result<Latency> {
        const SYMBOLS: u32 = 10;
        let rows = u64::from(rate) * u64::from(self.spec.latency_seconds);
        let dir = self.work.join(format!("latency_{rate}"));
        write_steady_input(&dir, SYMBOLS, rows / u64::from(SYMBOLS))?;
        let topic = format!("latency_{rate}");
        self.topics(&topic).await?;
        self.empty_tables().await?;
        let processor = self.stage_command(&topic, &["process", "--json"])?;
        let dashboard = Dashboard::start(self, &topic)?;
        // The processor is fetching, and the page listening, before the first record is sent.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let pattern = format!("{}/*.csv", dir.display());
        // Each symbol has a row a second: SYMBOLS rows per second of the data's clock.
        let speed = (f64::from(rate) / f64::from(SYMBOLS)).to_string();
        self.stage(
            &topic,
            &["produce", "--json", "--speed", &speed, "--data", &pattern],
        )?;
        let expected = (rows / u64::from(SYMBOLS)) * u64::from(SYMBOLS);
        let started = Instant::now();
        loop {
            let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stock_data")
                .fetch_one(&self.root)
                .await?;
            if stored as u64 >= expected {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the processor committed {stored} of {expected} rows");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The newest rows' quotes reach the page within a poll or two.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let seen = dashboard.stop()?;
        unsafe { libc::kill(processor.id() as i32, libc::SIGINT) };
        let out = finish(processor)?.stdout;
        let summary: Value = serde_json::from_str(out.trim())
            .with_context(|| format!("the processor printed no JSON summary: {out}"))?;
        let on_dashboard = self.on_dashboard(&topic, &seen).await?;
        let ms = |q: &str| number(&summary["latency_ms"], q);
        let quotes = |q: &str| number(&summary["in_quotes_latency_ms"], q);
        Ok(Latency {
            rate,
            rows: expected,
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
}

/// `symbols` files of `per_symbol` rows one second apart, in the minute-bar layout.
impl Bench<'_> {
    /// For every record of `topic`: from its `produced_at` to the first quote of its symbol at
    /// least as new that the page received (p50, p95, p99, max in ms). A row never shown counts
    /// as the end of the watch.
    async fn on_dashboard(&self, topic: &str, seen: &[SeenQuote]) -> Result<[f64; 4]> {
        let mut by_symbol: std::collections::BTreeMap<&str, Vec<&SeenQuote>> = Default::default();
        for quote in seen {
            by_symbol.entry(&quote.symbol).or_default().push(quote);
        }
        let watch_ended = seen.iter().map(|q| q.arrived_us).max().unwrap_or(0);
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
    page: std::thread::JoinHandle<Vec<SeenQuote>>,
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
        Ok(Dashboard { serve, page })
    }

    /// Stops serve (closing the stream): the quotes the page received.
    fn stop(mut self) -> Result<Vec<SeenQuote>> {
        let _ = self.serve.kill();
        let _ = self.serve.wait();
        self.page
            .join()
            .map_err(|_| anyhow::anyhow!("the page's reader panicked"))
    }
}

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

fn tickpipe(state: &Path) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tickpipe"));
    let mut command = Command::new(exe);
    command.arg("--state-dir").arg(state);
    // Every stage dies with the bench, however it ends.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    command
}

fn log_file(work: &Path, stage: &str) -> Result<std::fs::File> {
    Ok(std::fs::File::create(work.join(format!("{stage}.log")))?)
}

/// The last lines a stage logged, for an error message.
fn tail(work: &Path, stage: &str) -> String {
    let text = std::fs::read_to_string(work.join(format!("{stage}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// What a finished child printed and used.
struct Finished {
    stdout: String,
    ok: bool,
    peak_rss_mb: f64,
    cpu_seconds: f64,
}

/// Waits for `child`, reading its stdout.
fn finish(mut child: Child) -> Result<Finished> {
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out)?;
    }
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // wait4, not Child::wait: it also reports the child's peak RSS.
    if unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) } < 0 {
        bail!("waiting for a child: {}", std::io::Error::last_os_error());
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Finished {
        stdout: out,
        ok,
        peak_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
    })
}

/// User + system CPU seconds process `pid` has used so far (Linux /proc).
fn cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(ticks / per_second as f64)
}

fn number(value: &Value, key: &str) -> Result<f64> {
    value[key]
        .as_f64()
        .with_context(|| format!("no {key} in {value}"))
}

/// Which of `runs` is the median by its first figure.
fn median_run(runs: &[(f64, f64)]) -> usize {
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| runs[a].0.total_cmp(&runs[b].0));
    order[order.len() / 2]
}

fn median(runs: &[(f64, f64)], with_mb: bool) -> Throughput {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let middle = sorted[sorted.len() / 2];
    Throughput {
        per_second: middle.0,
        mb_per_second: with_mb.then_some(middle.1),
        runs: runs.iter().map(|r| r.0).collect(),
    }
}

/// The report as a table.
pub fn render(r: &Report) -> String {
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let mb = |t: &Throughput| {
        t.mb_per_second
            .map(|m| format!(", {m:.1} MB/s"))
            .unwrap_or_default()
    };
    let mut lines = vec![
        format!(
            "tickpipe bench: {} rows ({:.0}-byte JSON records), median of {} runs",
            r.rows, r.record_bytes, r.runs
        ),
        String::new(),
        format!(
            "{:<34} {:>26}   {:<44} {:>7}",
            "stage", "tickpipe", "anchor (same run)", "ratio"
        ),
        format!(
            "{:<34} {:>26}   {:<44} {:>6.2}×",
            "producer CSV → Kafka (acks=all)",
            format!("{:.0} rec/s{}", r.producer.per_second, mb(&r.producer)),
            format!(
                "kafka-producer-perf-test {:.0} rec/s{}",
                r.perf_test.per_second,
                mb(&r.perf_test)
            ),
            ratio(r.producer.per_second, r.perf_test.per_second)
        ),
        format!(
            "{:<34} {:>26}   {:<44} {:>6.2}×",
            "processor Kafka → MySQL (1×)",
            format!("{:.0} rows/s", r.processor.per_second),
            format!(
                "LOAD DATA LOCAL INFILE {:.0} rows/s",
                r.load_data.per_second
            ),
            ratio(r.processor.per_second, r.load_data.per_second)
        ),
        format!(
            "{:<34} {:>26}   {:<44} {:>6.1}×",
            "",
            "",
            format!("row-by-row INSERT {:.0} rows/s", r.row_by_row.per_second),
            ratio(r.processor.per_second, r.row_by_row.per_second)
        ),
        format!(
            "{:<34} {:>26}   rollups of the drained rows done at {:.2}× the rows' own time",
            "rollup stage (after the rows)", "", r.rollups_time_factor
        ),
        format!(
            "CPU of the drain (median run, {:.1} s wall × {} cores = {:.1} core-s): tickpipe \
             {:.1} s, MariaDB {:.1} s, Kafka {:.1} s",
            r.processor_cpu.wall_seconds,
            r.processor_cpu.cores,
            r.processor_cpu.cores as f64 * r.processor_cpu.wall_seconds,
            r.processor_cpu.tickpipe,
            r.processor_cpu.mariadb,
            r.processor_cpu.kafka
        ),
        String::new(),
        "latency produce → committed row, → in its bars and latest quote, → on the dashboard \
         (a quote as new received over its event stream; HDR histograms)"
            .into(),
    ];
    for l in &r.latency {
        let [p50, p95, p99, max] = l.in_quotes_ms;
        let [d50, d95, d99, dmax] = l.on_dashboard_ms;
        lines.push(format!(
            "  {:>6} rows/s ({} rows): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
             {:>28}in quotes: p50 {p50:.1} ms, p95 {p95:.1} ms, p99 {p99:.1} ms, max {max:.1} ms\n\
             {:>24}on the page: p50 {d50:.1} ms, p95 {d95:.1} ms, p99 {d99:.1} ms, max {dmax:.1} ms",
            l.rate, l.rows, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, "", ""
        ));
    }
    lines.push(String::new());
    lines.push(format!("up → ready: {:.1} s", r.up_ready_seconds));
    lines.push(format!(
        "peak RSS: producer {:.0} MB, processor {:.0} MB, supervisor (up) {:.0} MB",
        r.peak_rss_mb.producer, r.peak_rss_mb.processor, r.peak_rss_mb.up
    ));
    lines.join("\n")
}
