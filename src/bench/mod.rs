//! `tickpipe bench`: the pipeline measured side by side with the services' own ceilings, on a
//! private appliance it starts and stops: the producer against Kafka's
//! `kafka-producer-perf-test` (same jars, broker, record size, acks=all), the processor against
//! `LOAD DATA LOCAL INFILE` of the same rows into a copy of the table and against row-by-row
//! inserts (`anchors`), latency at steady rates from produce to the committed row, the rollups
//! and the dashboard (`latency`), `up` → ready, each stage's peak RSS and the CPU the drain took
//! in each process. Every stage runs as its own `tickpipe` process, as users run it, so its
//! memory and CPU are its own (`child`). `render` prints the report.

mod anchors;
mod child;
mod latency;
mod render;
mod spark;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;
use sqlx::MySqlPool;

use crate::broker::Broker;
use crate::config::{Config, Mode};
use crate::generate::{self, GenerateSpec, Layout};
use crate::proc_stat::cpu_seconds;
use crate::state::{Endpoints, StateDir};
use crate::store;
use child::{finish, interrupt, log_file, tail, tickpipe};
pub use render::render;

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
    /// `scripts/spark.sh`, to measure the Spark job too.
    pub spark: Option<PathBuf>,
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
    /// The Spark job on the same topic, when asked for.
    pub spark: Option<spark::SparkReport>,
    /// `tickpipe status` with the drained rows in the table.
    pub status: StatusTiming,
}

/// How long `tickpipe status` takes with the bench's rows stored, and what it reported.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StatusTiming {
    pub rows_stored: u64,
    pub default_ms: f64,
    pub default_rows: i64,
    /// The default's count was a `COUNT(*)`, not the table statistics' estimate.
    pub default_exact: bool,
    pub exact_ms: f64,
    pub exact_rows: i64,
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
    // Each rate's step has a topic of its own (`latency_<rate>`): a rate given twice would
    // measure its topic's re-creation (seconds), not the pipeline.
    if let Some(rate) = spec
        .rates
        .iter()
        .enumerate()
        .find_map(|(i, rate)| spec.rates[..i].contains(rate).then_some(rate))
    {
        bail!("--rates: {rate} is given twice; give each rate once");
    }
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
    /// The managed server (whose binary log the anchors leave).
    managed: bool,
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
            Mode::Managed | Mode::Container => {
                let credentials = StateDir::new(&state).credentials()?;
                endpoints.mysql.as_user("root", &credentials.root_password)
            }
            Mode::External => endpoints.mysql.clone(),
        };
        // On the managed server the anchors leave its binary log, as the processor's sessions
        // do: both load a table without a trigger and without the log.
        let managed = config.mysql.mode == Mode::Managed;
        let root = store::connect_pool_skipping_binlog(
            &mysql,
            true,
            config.mysql.startup_timeout,
            managed,
        )
        .await?;
        Ok(Bench {
            spec,
            work,
            state,
            up,
            up_ready,
            broker,
            root,
            managed,
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
        interrupt(&self.up);
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

        let status = self.status_timing(rows)?;

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

        self.settle().await?;
        let mut latency = Vec::new();
        for &rate in &self.spec.rates {
            latency.push(self.latency(rate).await?);
        }
        let spark = match &self.spec.spark {
            Some(script) => {
                let rate = self.spec.rates.first().copied().unwrap_or(1000);
                Some(self.spark(script, "bench_0", rows, rate).await?)
            }
            None => None,
        };
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
            spark,
            status,
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

    /// Lets the machine finish what the throughput phases left behind before the latency
    /// steps, which measure live operation: the pipeline's tables emptied (their millions of
    /// rows dropped), the kernel's dirty page cache written out (Kafka's logs of the runs and
    /// the producer anchor: hundreds of MB), and MariaDB's buffer pool flushed. Otherwise their
    /// write-back stalled the steps' commits now and then (at 1 M rows, steps with p99s of
    /// 96–183 ms, at 10 M 836–988 ms, where the same steps on a settled machine stay near 50).
    async fn settle(&self) -> Result<()> {
        self.empty_tables().await?;
        let started = Instant::now();
        let dirty_mb = page_cache_dirty_mb();
        // Blocking, and seconds long: off the runtime's other tasks.
        tokio::task::block_in_place(nix::unistd::sync);
        eprintln!(
            "bench: the kernel wrote out {dirty_mb:.0} MB of dirty page cache in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        const DIRTY: &str = "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_PAGES_DIRTY'";
        let dirty = || async {
            let pages: String = sqlx::query_scalar(DIRTY).fetch_one(&self.root).await?;
            anyhow::Ok(pages.parse::<u64>().unwrap_or(0))
        };
        let started = Instant::now();
        let before = dirty().await?;
        let pct: f64 = sqlx::query_scalar("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")
            .fetch_one(&self.root)
            .await?;
        // A setting of the bench's own server: flush everything now, then as before.
        store::execute_admin(
            &self.root,
            "SET GLOBAL innodb_max_dirty_pages_pct = 0".into(),
        )
        .await?;
        let mut left = before;
        while left > 100 && started.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            left = dirty().await?;
        }
        sqlx::query("SET GLOBAL innodb_max_dirty_pages_pct = ?")
            .bind(pct)
            .execute(&self.root)
            .await?;
        eprintln!(
            "bench: MariaDB wrote out {} dirty pages in {:.1} s before the latency steps",
            before.saturating_sub(left),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    async fn empty_tables(&self) -> Result<()> {
        for table in store::PIPELINE_TABLES {
            store::execute_admin(&self.root, format!("TRUNCATE TABLE {table}")).await?;
        }
        Ok(())
    }

    /// Runs one `tickpipe` stage on `topic` to completion: its JSON summary, peak RSS, and
    /// the CPU it and the services used meanwhile.
    fn stage(&self, topic: &str, args: &[&str]) -> Result<(Value, f64, CpuSplit)> {
        let services = |file: &str| {
            std::fs::read_to_string(self.state.join(file))
                .ok()
                .and_then(|pid| pid.trim().parse::<u32>().ok())
        };
        let (mariadb, kafka) = (
            services("mysql/mysqld.pid"),
            services("kafka/supervised.pid"),
        );
        let before = (mariadb.and_then(cpu_seconds), kafka.and_then(cpu_seconds));
        let started = Instant::now();
        let child = self.stage_command(topic, args)?;
        let finished = finish(child)?;
        let used = |pid: Option<u32>, before: Option<f64>| {
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

    /// Times `tickpipe status --json`, then with `--exact`, as a user runs them.
    fn status_timing(&self, rows_stored: u64) -> Result<StatusTiming> {
        let run = |args: &[&str]| -> Result<(f64, Value)> {
            let started = Instant::now();
            let output = tickpipe(&self.state)
                .args(args)
                .stderr(Stdio::null())
                .output()
                .context("running tickpipe status")?;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            let status: Value = serde_json::from_slice(&output.stdout)
                .context("tickpipe status printed no JSON")?;
            Ok((ms, status))
        };
        let (default_ms, default) = run(&["status", "--json"])?;
        let (exact_ms, exact) = run(&["status", "--json", "--exact"])?;
        Ok(StatusTiming {
            rows_stored,
            default_ms,
            default_rows: default["rows"]
                .as_i64()
                .or(default["rows_estimated"].as_i64())
                .unwrap_or(-1),
            default_exact: default["rows"].is_i64(),
            exact_ms,
            exact_rows: exact["rows"].as_i64().unwrap_or(-1),
        })
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

/// The kernel's page cache waiting to be written (`Dirty` + `Writeback` of /proc/meminfo), MB.
fn page_cache_dirty_mb() -> f64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |key: &str| {
        meminfo
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    (kb("Dirty:") + kb("Writeback:")) / 1024.0
}
