//! One partition's fetch loop: reads from the next uncommitted offset, decodes and checks each
//! record, and hands the result to the writer (waiting when the writer is behind).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rskafka::client::partition::{OffsetAt, PartitionClient};
use rskafka::record::RecordAndOffset;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ProcessStats;
use crate::broker;
use crate::config::ProcessConfig;
use crate::tick::{Reject, Tick};

/// Longest the broker holds a fetch open waiting for new records.
const FETCH_WAIT_MS: i32 = 250;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// Tick messages: decoded and validated.
    Ticks,
    /// Dead letters: recorded in `rejected_ticks` as they are.
    DeadLetters,
}

/// What one fetch produced.
pub struct Fetched {
    pub kind: TopicKind,
    pub topic: String,
    pub partition: i32,
    /// The offset after the last record handed over.
    pub next_offset: i64,
    /// Whether the partition had nothing more at the time of the fetch.
    pub caught_up: bool,
    pub ticks: Vec<Tick>,
    pub rejects: Vec<Reject>,
}

pub async fn run(
    client: Arc<PartitionClient>,
    kind: TopicKind,
    mut offset: i64,
    limits: ProcessConfig,
    stats: Arc<ProcessStats>,
    tx: mpsc::Sender<Fetched>,
    cancel: CancellationToken,
) {
    let topic = client.topic().to_string();
    let partition = client.partition();
    let mut backoff = Duration::from_millis(100);
    loop {
        let fetch = tokio::time::timeout(
            broker::CALL_DEADLINE,
            client.fetch_records(offset, 1..limits.fetch_bytes, FETCH_WAIT_MS),
        );
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            result = fetch => result,
        };
        let (records, high_watermark) = match result {
            Ok(Ok(fetched)) => {
                backoff = Duration::from_millis(100);
                fetched
            }
            Ok(Err(e)) if broker::is_offset_out_of_range(&e) => {
                offset = recover_offset(&client, offset).await;
                continue;
            }
            failure => {
                let error = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {:?}", broker::CALL_DEADLINE),
                };
                tracing::warn!(
                    topic,
                    partition,
                    "fetch failed, retrying in {backoff:?}: {error}"
                );
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if records.is_empty() {
            continue;
        }
        // Hand over at most `max_records` at a time, so a batch never outgrows batch_rows.
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let chunk: Vec<_> = records.by_ref().take(limits.batch_rows).collect();
            let next_offset = chunk.last().map(|r| r.offset + 1).unwrap_or(offset);
            let fetched = decode(
                kind,
                &topic,
                partition,
                chunk,
                next_offset,
                next_offset >= high_watermark,
            );
            let count = (fetched.ticks.len() + fetched.rejects.len()) as u64;
            if tx.send(fetched).await.is_err() {
                return;
            }
            stats.fetched.fetch_add(count, Ordering::Relaxed);
            offset = next_offset;
        }
    }
}

fn decode(
    kind: TopicKind,
    topic: &str,
    partition: i32,
    records: Vec<RecordAndOffset>,
    next_offset: i64,
    caught_up: bool,
) -> Fetched {
    let mut fetched = Fetched {
        kind,
        topic: topic.to_string(),
        partition,
        next_offset,
        caught_up,
        ticks: Vec::with_capacity(records.len()),
        rejects: Vec::new(),
    };
    for record in records {
        let coordinates = format!("{topic}/{partition}/{}", record.offset);
        let value = record.record.value.unwrap_or_default();
        match kind {
            TopicKind::Ticks => match Tick::from_json(&value) {
                Ok(tick) => fetched.ticks.push(tick),
                Err(reason) => {
                    fetched
                        .rejects
                        .push(Reject::new(coordinates, "process", reason, &value))
                }
            },
            TopicKind::DeadLetters => match Reject::from_json(&value) {
                Ok(reject) => fetched.rejects.push(reject),
                Err(reason) => {
                    fetched
                        .rejects
                        .push(Reject::new(coordinates, "process", reason, &value))
                }
            },
        }
    }
    fetched
}

/// Where to go on when `offset` is outside the partition: records the broker deleted
/// (retention) before they were processed are reported, and reading goes on from the earliest
/// one kept.
async fn recover_offset(client: &PartitionClient, offset: i64) -> i64 {
    let earliest = broker::timed("reading an offset", client.get_offset(OffsetAt::Earliest)).await;
    let latest = broker::timed("reading an offset", client.get_offset(OffsetAt::Latest)).await;
    match (earliest, latest) {
        (Ok(earliest), Ok(_)) if offset < earliest => {
            tracing::error!(
                topic = client.topic(),
                partition = client.partition(),
                "records {offset}..{earliest} were deleted by the broker before they were processed"
            );
            earliest
        }
        (Ok(earliest), Ok(latest)) if offset > latest => {
            tracing::error!(
                topic = client.topic(),
                partition = client.partition(),
                "stored offset {offset} is past the end ({latest}): the topic was recreated; reading from {earliest}"
            );
            earliest
        }
        _ => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            offset
        }
    }
}
