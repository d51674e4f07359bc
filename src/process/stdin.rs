//! Records handed over on standard input by another Kafka reader — the Spark job
//! (`spark/tickpipe_job.py`) — instead of fetched here: the rest of the processor (checks,
//! quarantine, exactly-once batches with their offsets, the leases, the rollup stage) is the
//! same, so both processors store the same rows, refusals and offsets.
//!
//! The handshake: the processor first prints one line, `{"bootstrap": "host:port,…",
//! "starting_offsets": {topic: {"partition": offset, …}, …}}` — the broker, and where each
//! partition resumes, from the offsets stored in MySQL (Spark's `startingOffsets` format). Then it reads one JSON line per record,
//! `{"topic", "partition", "offset", "value"}` (the value base64, or null), and a line
//! `{"end": …}` after each micro-batch, which lets the writers commit without waiting for more.
//! A record before the next offset a partition expects (a micro-batch Spark runs again) is
//! skipped; a record of a partition the processor did not find at start stops it.
//!
//! Limit: the reader sees records, not transaction markers, so a partition that ends with a
//! transaction's commit marker stays one offset short of its end: `--drain` then does not end.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use base64::Engine;
use rskafka::record::{Record, RecordAndOffset};
use serde::Deserialize;
use std::io::BufRead;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ProcessStats;
use super::fetch::{self, Fetched, TopicKind};
use crate::store::Incident;
use crate::tick::Reading;

/// Lines read ahead of the writers at most.
const LINES_AHEAD: usize = 5000;
/// How often the reader looks for writers that need no more records.
const STOPPED_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// A partition records arrive for: where they go and what is expected next.
pub struct Route {
    pub kind: TopicKind,
    pub topic_id: Option<String>,
    /// Dropped once the writer needs no more (its channel then closes and it finishes).
    pub sender: Option<mpsc::Sender<Fetched>>,
    /// Cancelled when the writer needs no more (its partitions drained).
    pub stop: CancellationToken,
    /// The next offset to hand over; earlier records are skipped.
    pub next: i64,
    /// Sent with the partition's first records.
    pub incidents: Vec<Incident>,
}

/// One line of input.
#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Record {
        topic: String,
        partition: i32,
        offset: i64,
        value: Option<String>,
    },
    End {
        #[allow(dead_code)]
        end: serde_json::Value,
    },
}

/// Prints the handshake line: the broker, and where each partition resumes.
pub fn print_starting_offsets(bootstrap: &str, routes: &BTreeMap<(String, i32), Route>) {
    let mut by_topic: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
    for ((topic, partition), route) in routes {
        by_topic
            .entry(topic)
            .or_default()
            .insert(partition.to_string(), route.next);
    }
    println!(
        "{}",
        serde_json::json!({ "bootstrap": bootstrap, "starting_offsets": by_topic })
    );
}

/// Reads records from standard input until it ends or `stop` fires, handing them to their
/// partitions' writers (a partition's records at the latest when `batch_rows` wait). A malformed line stops the processor (the reader is a program, not a
/// person: it is broken).
pub async fn run(
    mut routes: BTreeMap<(String, i32), Route>,
    batch_rows: usize,
    reading: Reading,
    stats: Arc<ProcessStats>,
    stop: CancellationToken,
) -> Result<()> {
    let mut lines = read_lines();
    let mut held: BTreeMap<(String, i32), Vec<RecordAndOffset>> = BTreeMap::new();
    let mut check = tokio::time::interval(STOPPED_CHECK);
    loop {
        let line = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = check.tick() => {
                // A drained writer finishes once no one can hand it more.
                for route in routes.values_mut() {
                    if route.stop.is_cancelled() {
                        route.sender = None;
                    }
                }
                continue;
            }
            line = lines.recv() => line.transpose().context("reading records from standard input")?,
        };
        let Some(line) = line else {
            // The reader is gone: what it handed over is committed (or read again next time).
            hand_over(&mut routes, &mut held, reading, &stats, true).await;
            return Ok(());
        };
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line)
            .with_context(|| format!("a line on standard input is not a record: {line:.200}"))?;
        match parsed {
            Line::End { .. } => hand_over(&mut routes, &mut held, reading, &stats, true).await,
            Line::Record {
                topic,
                partition,
                offset,
                value,
            } => {
                let key = (topic, partition);
                let Some(route) = routes.get(&key) else {
                    anyhow::bail!(
                        "records of {}/{} arrived, a partition this processor did not find at \
                         start (added while running?): start the job again",
                        key.0,
                        key.1
                    );
                };
                let expected = held
                    .get(&key)
                    .and_then(|records| records.last())
                    .map_or(route.next, |last| last.offset + 1);
                if offset < expected {
                    continue;
                }
                let value = match value {
                    Some(text) => base64::engine::general_purpose::STANDARD
                        .decode(text.as_bytes())
                        .with_context(|| format!("record {offset}'s value is not base64"))?,
                    None => Vec::new(),
                };
                let records = held.entry(key).or_default();
                records.push(RecordAndOffset {
                    record: Record {
                        key: None,
                        value: Some(value),
                        headers: Default::default(),
                        timestamp: chrono::Utc::now(),
                    },
                    offset,
                });
                if records.len() >= batch_rows {
                    hand_over(&mut routes, &mut held, reading, &stats, false).await;
                }
            }
        }
    }
}

/// Standard input's lines, read on a thread of their own: a read blocked on a pipe cannot be
/// cancelled, and tokio's stdin would keep the runtime (so the process) from ending while the
/// other side keeps the pipe open. The channel is bounded: a slow processor slows the reader.
fn read_lines() -> mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = mpsc::channel(LINES_AHEAD);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Decodes and hands over everything held, each partition to its writer; `caught_up` tells
/// the writers nothing more is coming now (they commit without lingering).
async fn hand_over(
    routes: &mut BTreeMap<(String, i32), Route>,
    held: &mut BTreeMap<(String, i32), Vec<RecordAndOffset>>,
    reading: Reading,
    stats: &ProcessStats,
    caught_up: bool,
) {
    for ((topic, partition), records) in std::mem::take(held) {
        let Some(route) = routes.get_mut(&(topic.clone(), partition)) else {
            continue;
        };
        let Some(last) = records.last().map(|r| r.offset) else {
            continue;
        };
        let count = records.len() as u64;
        let mut fetched = Fetched::empty(
            route.kind,
            &topic,
            partition,
            last + 1,
            caught_up,
            &route.topic_id,
        );
        fetched.incidents = std::mem::take(&mut route.incidents);
        let fetched = fetch::decode(fetched, records, reading);
        route.next = last + 1;
        stats
            .fetched
            .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        // A writer that stopped (drained, or failing) takes no more.
        let open = route.sender.as_ref().filter(|_| !route.stop.is_cancelled());
        if let Some(sender) = open
            && sender.send(fetched).await.is_err()
        {
            route.sender = None;
        }
    }
}
