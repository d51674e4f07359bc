//! Ingest: CSV files → [`Tick`](crate::tick::Tick)s → Kafka (`stock_ticks`, keyed by symbol),
//! refused lines → the dead-letter topic.
//!
//! A reader thread parses the files and merges them by timestamp (so several symbols tick
//! together, as in a live market), pacing them when a speed is set; the async side batches
//! the records per partition and sends each batch with bounded retries.

pub mod csv_file;
mod duplicates;
pub mod layout;
pub mod live;
mod replay;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::broker::{self, Broker, TopicWriter};
use crate::config::Config;
use csv_file::Line;
use duplicates::{Duplicates, Seen};

/// What a producer run did.
#[derive(Debug, Default, Clone)]
pub struct ProduceSummary {
    pub files: usize,
    pub records: u64,
    pub rejected: u64,
    /// Records whose prices were rounded to the stored places (`ingest.excess_decimals`).
    pub rounded: u64,
    /// Records whose (symbol, timestamp) an earlier line of the run had, with the same figures
    /// (one row is stored) and with other figures (the later line wins).
    pub duplicates_identical: u64,
    pub duplicates_conflicting: u64,
    pub bytes: u64,
    /// Files that could not be read at all, with why.
    pub failed_files: Vec<(PathBuf, String)>,
    pub elapsed: Duration,
    /// Each symbol's newest tick sent (where the demo's live walk goes on from).
    pub last: BTreeMap<String, live::Last>,
}

impl ProduceSummary {
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How far a replay got: the lines (in the replay's merged order, ticks and refused lines
/// alike) known to be acknowledged by the broker. A replay started again over the same files,
/// unchanged, skips them: it resumes where the failed one stopped (a few lines may go twice,
/// which the store's upsert makes harmless). Files that changed (size, modification time,
/// which of them could be read) start the replay over, since the merged order may differ.
#[derive(Debug, Default)]
pub struct Progress {
    acknowledged: AtomicU64,
    /// The files the acknowledged lines were read from.
    files: std::sync::Mutex<Option<u64>>,
}

impl Progress {
    /// A replay whose first `lines` lines are known to be acknowledged.
    pub fn after(lines: u64) -> Self {
        Progress {
            acknowledged: AtomicU64::new(lines),
            files: Default::default(),
        }
    }

    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    fn advance(&self, lines: u64) {
        self.acknowledged.fetch_max(lines, Ordering::Relaxed);
    }

    /// Lines to skip when replaying `files` now: none if they are not the files the progress
    /// was made on.
    fn resume_over(&self, files: &[PathBuf]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for file in files {
            file.hash(&mut hasher);
            match std::fs::metadata(file) {
                Ok(m) => (m.len(), m.modified().ok()).hash(&mut hasher),
                Err(_) => "unreadable".hash(&mut hasher),
            }
        }
        let fingerprint = hasher.finish();
        let mut known = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if known.replace(fingerprint).is_some_and(|f| f != fingerprint) {
            self.acknowledged.store(0, Ordering::Relaxed);
        }
        self.acknowledged()
    }
}

/// Replays `files` into the ticks topic until they end or `cancel` fires, skipping the lines
/// `resume` already saw acknowledged (and recording more there as they are).
pub async fn produce(
    config: &Config,
    broker: &Broker,
    files: Vec<PathBuf>,
    cancel: CancellationToken,
    progress: bool,
    resume: &Progress,
) -> Result<ProduceSummary> {
    let started = Instant::now();
    let mut ticks = topic_writer(config, broker, &config.topics.ticks, &cancel).await?;
    let mut dead = topic_writer(config, broker, &config.topics.dlq, &cancel).await?;

    let total_bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    let bar = progress_bar(progress, total_bytes);
    let skip = resume.resume_over(&files);
    if skip > 0 {
        tracing::info!("resuming the replay after {skip} acknowledged lines");
    }
    let counters = Arc::new(replay::Counters::default());
    let mut replay = replay::start(
        replay::Spec {
            files: files.clone(),
            reading: config.reading(),
            columns: config.ingest.columns.clone(),
            speed: config.ingest.speed,
            skip,
        },
        counters.clone(),
        cancel.clone(),
    );

    let mut summary = ProduceSummary {
        files: files.len(),
        ..ProduceSummary::default()
    };
    let linger = config.ingest.linger;
    let mut tick_timer = tokio::time::interval(linger.max(Duration::from_millis(1)));
    tick_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Lines of the replay so far, skipped ones included (the reader drops those).
    let mut seq = skip;
    let mut duplicates = Duplicates::default();
    loop {
        tokio::select! {
            line = replay.lines.recv() => {
                let Some(line) = line else { break };
                seq += 1;
                match line {
                    Line::Tick(mut tick) => {
                        if let Seen::Conflicting { earlier } = duplicates.check(&tick) {
                            tracing::warn!(
                                symbol = %tick.symbol,
                                timestamp = %tick.timestamp,
                                "{} has other figures than {earlier} for the same time: the later line wins",
                                tick.source
                            );
                        }
                        remember_newest(&mut summary.last, &tick);
                        tick.produced_at = chrono::Utc::now().timestamp_micros();
                        ticks.push(tick.symbol.as_bytes(), tick.to_json(), seq).await?;
                        summary.records += 1;
                    }
                    Line::Reject(reject) => {
                        tracing::warn!(source = %reject.source, reason = %reject.reason, "line quarantined");
                        dead.push(reject.source.as_bytes(), reject.to_json(), seq).await?;
                        summary.rejected += 1;
                    }
                }
            }
            _ = tick_timer.tick() => {
                ticks.flush_older_than(linger).await?;
                dead.flush_older_than(linger).await?;
                // Every line before the oldest unacknowledged one is acknowledged.
                let oldest = ticks.oldest_unacked().into_iter().chain(dead.oldest_unacked()).min();
                resume.advance(oldest.map_or(seq, |s| s - 1));
                bar.set_position(counters.bytes.load(Ordering::Relaxed));
                bar.set_message(format!("{} records, {} quarantined", summary.records, summary.rejected));
            }
        }
    }
    summary.bytes = ticks.finish().await? + dead.finish().await?;
    if !cancel.is_cancelled() {
        resume.advance(seq);
    }
    summary.failed_files = replay.finish()?;
    summary.rounded = counters.rounded.load(Ordering::Relaxed);
    summary.duplicates_identical = duplicates.identical;
    summary.duplicates_conflicting = duplicates.conflicting;
    for (file, error) in &summary.failed_files {
        tracing::error!(file = %file.display(), "file skipped: {error}");
    }
    summary.elapsed = started.elapsed();
    bar.finish_and_clear();
    Ok(summary)
}

/// A writer to `topic` with the producer's batching and compression (`ingest.*`).
async fn topic_writer(
    config: &Config,
    broker: &Broker,
    topic: &str,
    cancel: &CancellationToken,
) -> Result<TopicWriter> {
    let compression = broker::compression(&config.ingest.compression).expect("validated at load");
    TopicWriter::open(
        broker,
        topic,
        config.ingest.batch_records,
        compression,
        cancel,
    )
    .await
}

fn remember_newest(last: &mut BTreeMap<String, live::Last>, tick: &crate::tick::Tick) {
    let newest = live::Last {
        timestamp: tick.timestamp,
        close: tick.close,
        volume: tick.volume,
    };
    match last.get_mut(&tick.symbol) {
        Some(known) if known.timestamp > tick.timestamp => {}
        Some(known) => *known = newest,
        None => {
            last.insert(tick.symbol.clone(), newest);
        }
    }
}

fn progress_bar(visible: bool, total_bytes: u64) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}) {msg}",
        )
        .expect("valid template"),
    );
    bar
}
