//! The `tickpipe` command line.

/// jemalloc: see Cargo.toml.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use tickpipe::bench;
use tickpipe::broker::Broker;
use tickpipe::config::{Config, Sources};
use tickpipe::generate::{self, GenerateSpec, Layout};
use tickpipe::ingest::{self, csv_file};
use tickpipe::process::{self, ProcessStats, RunOptions};
use tickpipe::serve;
use tickpipe::state::Endpoints;
use tickpipe::status;
use tickpipe::store::Store;
use tickpipe::supervisor::{self, UpOptions};

/// A real-time stock market pipeline: CSV → Kafka → MySQL, in one binary.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file [default: ./appliance.toml if present]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// State directory of the appliance (overrides `state_dir`)
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Log lines on stderr: text for people (coloured only on a terminal), or one JSON object
    /// per line for log collectors
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Start Kafka and MySQL, create topics and schema, run the processor and the producer
    Up {
        /// CSV files to replay (glob; repeatable) [default: ingest.data]
        #[arg(long, value_name = "GLOB")]
        data: Vec<String>,
        /// Start only the services (topics, schema, users); run the stages yourself
        #[arg(long)]
        services_only: bool,
        /// After the replay, produce no live ticks (`live.enabled = false` for this run)
        #[arg(long)]
        no_live: bool,
        /// A temporary state directory and free ports, everything removed at exit
        #[arg(long)]
        ephemeral: bool,
        /// Once ready, print one JSON line with every endpoint and credential (no banner)
        #[arg(long)]
        json: bool,
    },
    /// Replay CSV files into Kafka
    Produce {
        /// CSV files to replay (glob; repeatable) [default: ingest.data]
        #[arg(long, value_name = "GLOB")]
        data: Vec<String>,
        /// 0 = as fast as possible; N = N times the data's own clock [default: ingest.speed]
        #[arg(long)]
        speed: Option<f64>,
        /// Print the summary as JSON
        #[arg(long)]
        json: bool,
    },
    /// Consume Kafka into MySQL, exactly once
    Process {
        /// Exit once everything in the topics at start is committed
        #[arg(long)]
        drain: bool,
        /// Consume nothing; only keep the rollups following rows other processors write
        /// (a Spark job, a bulk load). With --drain: exit once those stale now are recomputed
        #[arg(long)]
        rollups_only: bool,
        /// Read records from standard input (JSON lines from another Kafka reader, the Spark
        /// job) instead of fetching them; first prints where each partition resumes
        #[arg(long, conflicts_with = "rollups_only")]
        from_stdin: bool,
        /// Print the summary as JSON
        #[arg(long)]
        json: bool,
    },
    /// Serve the dashboard, JSON API, live events, /metrics and /healthz
    Serve,
    /// Health of the services, lag per partition, row counts
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
        /// Count every row (a large table's count is otherwise the table statistics' estimate)
        #[arg(long)]
        exact: bool,
    },
    /// Measure the pipeline beside Kafka's and MySQL's own ceilings, on a private appliance
    Bench {
        /// Symbols of generated input
        #[arg(long, default_value_t = 20)]
        symbols: usize,
        /// Trading days per symbol (375 rows each; 20 × 134 = 1,005,000 rows)
        #[arg(long, default_value_t = 134)]
        days: u32,
        /// Runs per throughput figure (the median is reported)
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Steady rates (rows/s) for the latency figures
        #[arg(long, value_delimiter = ',', default_value = "1000,5000,20000")]
        rates: Vec<u32>,
        /// Seconds of steady input per latency rate
        #[arg(long, default_value_t = 10)]
        latency_seconds: u32,
        /// Seconds of row-by-row inserts
        #[arg(long, default_value_t = 5)]
        row_by_row_seconds: u32,
        /// Also measure the Spark job on the same topic (the launcher script; installs pyspark
        /// on first use)
        #[arg(long, value_name = "SCRIPT", num_args = 0..=1,
              default_missing_value = "scripts/spark.sh")]
        spark: Option<std::path::PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Write synthetic one-minute OHLCV CSVs for bank symbols
    Generate {
        /// Output directory
        #[arg(long, default_value = "data")]
        out: PathBuf,
        /// Number of symbols
        #[arg(long, default_value_t = 8)]
        symbols: usize,
        /// Trading days (weekdays) per symbol; each has 375 one-minute bars
        #[arg(long, default_value_t = 5)]
        days: u32,
        /// First day
        #[arg(long, default_value = "2024-01-01")]
        start: chrono::NaiveDate,
        /// Random seed (same seed, same files)
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = Layout::Seed)]
        layout: Layout,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rskafka=error,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        // Colour escapes only where a terminal renders them, not into files and pipes.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime = tokio::runtime::Runtime::new().expect("starting the async runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tickpipe: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let data = match &cli.command {
        Command::Up { data, .. } | Command::Produce { data, .. } => data.clone(),
        _ => Vec::new(),
    };
    let sources = Sources {
        file: cli.config.clone(),
        state_dir: cli.state_dir.clone(),
        data,
    };
    match cli.command {
        Command::Generate {
            out,
            symbols,
            days,
            start,
            seed,
            layout,
        } => {
            let made = generate::generate(&GenerateSpec {
                out_dir: out.clone(),
                symbols,
                days,
                start,
                seed,
                layout,
            })?;
            println!(
                "wrote {} rows in {} files to {}",
                made.rows,
                made.files.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Up {
            services_only,
            no_live,
            ephemeral,
            json,
            ..
        } => {
            let mut config = Config::load(&sources)?;
            if no_live {
                config.live.enabled = Some(false);
            }
            let options = UpOptions {
                services_only,
                ephemeral,
                json,
            };
            supervisor::up(config, options).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Produce { speed, json, .. } => {
            let mut config = Config::load(&sources)?;
            if let Some(speed) = speed {
                config.ingest.speed = speed;
                config.validate()?;
            }
            produce(config, json).await
        }
        Command::Process {
            drain,
            rollups_only,
            from_stdin,
            json,
        } => {
            let config = Config::load(&sources)?;
            consume(
                config,
                RunOptions {
                    drain,
                    rollups_only,
                    from_stdin,
                },
                json,
            )
            .await
        }
        Command::Bench {
            symbols,
            days,
            runs,
            rates,
            latency_seconds,
            row_by_row_seconds,
            spark,
            json,
        } => {
            let config = Config::load(&sources)?;
            let spec = bench::BenchSpec {
                symbols,
                days,
                runs: runs.max(1),
                rates,
                latency_seconds,
                row_by_row_seconds,
                spark,
            };
            let report = bench::run(&config, &spec).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", bench::render(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => {
            let config = Config::load(&sources)?;
            serve(config).await
        }
        Command::Status { json, exact } => {
            let config = Config::load(&sources)?;
            let status = status::collect(&config, exact).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!("{}", status::render(&status));
            }
            Ok(if status.healthy() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

async fn produce(config: Config, json: bool) -> Result<ExitCode> {
    let endpoints = Endpoints::resolve(&config)?;
    let broker = Broker::connect(&endpoints.broker, config.broker.startup_timeout).await?;
    let files = csv_file::expand_patterns(&config.ingest.data)?;
    let cancel = supervisor::shutdown_on_signal()?;
    let summary = ingest::produce(
        &config,
        &broker,
        files,
        cancel,
        std::io::stderr().is_terminal() && !json,
        &ingest::Progress::default(),
    )
    .await?;
    let seconds = summary.elapsed.as_secs_f64().max(1e-9);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "records": summary.records,
                "rejected": summary.rejected,
                "rounded": summary.rounded,
                "duplicates": {
                    "identical": summary.duplicates_identical,
                    "conflicting": summary.duplicates_conflicting,
                },
                "files": summary.files,
                "bytes": summary.bytes,
                "seconds": seconds,
                "records_per_second": summary.records_per_second(),
                "mb_per_second": summary.bytes as f64 / 1e6 / seconds,
            })
        );
    } else {
        println!(
            "produced {} records ({} quarantined, {} rounded, {} identical and {} conflicting duplicates) from {} files in {:.2?}: {:.0} records/s, {:.1} MB/s",
            summary.records,
            summary.rejected,
            summary.rounded,
            summary.duplicates_identical,
            summary.duplicates_conflicting,
            summary.files,
            summary.elapsed,
            summary.records_per_second(),
            summary.bytes as f64 / 1e6 / seconds,
        );
    }
    for (file, error) in &summary.failed_files {
        eprintln!("tickpipe: skipped {}: {error}", file.display());
    }
    Ok(if summary.failed_files.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn serve(config: Config) -> Result<ExitCode> {
    let endpoints = Endpoints::resolve(&config)?;
    let store = Store::connect(&endpoints.reader, config.mysql.startup_timeout).await?;
    // Lag figures need the broker; the dashboard does not.
    let broker = match Broker::connect(&endpoints.broker, config.broker.startup_timeout).await {
        Ok(broker) => Some(broker),
        Err(e) => {
            tracing::warn!("serving without lag metrics: {e:#}");
            None
        }
    };
    let listener = serve::bind(&config).await?;
    println!("tickpipe dashboard on {}", serve::url(&listener));
    let cancel = supervisor::shutdown_on_signal()?;
    serve::run(listener, config, store, broker, None, None, cancel).await?;
    Ok(ExitCode::SUCCESS)
}

async fn consume(config: Config, options: RunOptions, json: bool) -> Result<ExitCode> {
    let endpoints = Endpoints::resolve(&config)?;
    let broker = Broker::connect(&endpoints.broker, config.broker.startup_timeout).await?;
    let store = Store::connect(&endpoints.mysql, config.mysql.startup_timeout).await?;
    let cancel = supervisor::shutdown_on_signal()?;
    let stats = Arc::new(ProcessStats::default());
    let reporter = {
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let rows = stats.rows.load(Ordering::Relaxed);
                if rows != last {
                    tracing::info!(rows, rate = (rows - last) / 5, "committed");
                    last = rows;
                }
            }
        })
    };
    let started = std::time::Instant::now();
    let result = process::run(&config, &broker, &store, options, stats.clone(), cancel).await;
    reporter.abort();
    result?;
    let elapsed = started.elapsed();
    // A drain: the rows' own time, and how long their rollups took after.
    let rows_elapsed = stats
        .rows_drained_at
        .get()
        .map_or(elapsed, |at| at.duration_since(started));
    let rows = stats.rows.load(Ordering::Relaxed);
    let latency = stats.latency_us.lock().expect("no panic holds it").clone();
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    let in_quotes = stats
        .quote_latency_us
        .lock()
        .expect("no panic holds it")
        .clone();
    let quotes_ms = |q: f64| in_quotes.value_at_quantile(q) as f64 / 1000.0;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "rows": rows,
                "rejected": stats.rejected.load(Ordering::Relaxed),
                "rounded": stats.rounded.load(Ordering::Relaxed),
                "batches": stats.batches.load(Ordering::Relaxed),
                "seconds": elapsed.as_secs_f64(),
                "rows_seconds": rows_elapsed.as_secs_f64(),
                "rows_per_second": rows as f64 / rows_elapsed.as_secs_f64().max(1e-9),
                "rollups_after_rows_seconds": (elapsed - rows_elapsed).as_secs_f64(),
                "latency_ms": {
                    "rows": latency.len(),
                    "p50": ms(0.5), "p95": ms(0.95), "p99": ms(0.99), "max": ms(1.0),
                },
                "in_quotes_latency_ms": {
                    "rows": in_quotes.len(),
                    "p50": quotes_ms(0.5), "p95": quotes_ms(0.95), "p99": quotes_ms(0.99),
                    "max": quotes_ms(1.0),
                },
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "committed {rows} rows ({} rounded) and {} rejected records in {} batches in {elapsed:.2?}: {:.0} rows/s",
        stats.rounded.load(Ordering::Relaxed),
        stats.rejected.load(Ordering::Relaxed),
        stats.batches.load(Ordering::Relaxed),
        rows as f64 / elapsed.as_secs_f64().max(1e-9),
    );
    Ok(ExitCode::SUCCESS)
}
