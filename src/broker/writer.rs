//! Sends keyed records to one topic: a buffer per partition, flushed when full or when its
//! oldest record has waited `linger`; one sender task per partition keeps one batch in flight
//! (per-key order is kept) and retries a failed batch with bounded backoff.
//!
//! Each record carries the caller's sequence number; [`TopicWriter::oldest_unacked`] tells
//! the first one not yet acknowledged, so a producer that fails can resume from there.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use chrono::Utc;
use rskafka::client::error::ProtocolError;
use rskafka::client::partition::{Compression, PartitionClient};
use rskafka::record::Record;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Broker, CallError};
use crate::retry::{Backoff, Verdict, retry};

/// How long a batch is retried before the producer gives up (the broker had a minute to come
/// back).
const SEND_GIVE_UP: Duration = Duration::from_secs(60);

/// Uncompressed bytes per produce request: well under the broker's message size limit
/// (10 MiB here, 1 MiB by default on other brokers), whatever the records carry.
pub const MAX_BATCH_BYTES: usize = 900 * 1024;

struct Buffer {
    records: Vec<Record>,
    bytes: usize,
    since: Option<Instant>,
    /// Sequence number of the first record buffered.
    first: Option<u64>,
}

/// Per partition, the first sequence number of each batch sent and not yet acknowledged, in
/// order (a partition's batches are acknowledged in the order they were sent).
type InFlight = Arc<Mutex<Vec<VecDeque<u64>>>>;

pub struct TopicWriter {
    topic: String,
    buffers: Vec<Buffer>,
    senders: Vec<mpsc::Sender<Vec<Record>>>,
    tasks: JoinSet<Result<u64>>,
    batch_records: usize,
    in_flight: InFlight,
}

impl TopicWriter {
    /// A writer to `topic`. After `cancel`, a batch the broker does not take is not retried
    /// (Ctrl-C does not wait a minute for a broker that is gone).
    pub async fn open(
        broker: &Broker,
        topic: &str,
        batch_records: usize,
        compression: Compression,
        cancel: &CancellationToken,
    ) -> Result<Self> {
        let partitions = broker.partition_count(topic).await?;
        let mut senders = Vec::new();
        let mut tasks = JoinSet::new();
        let in_flight: InFlight = Arc::new(Mutex::new(vec![VecDeque::new(); partitions as usize]));
        for p in 0..partitions {
            let client = broker.partition(topic, p).await?;
            // Two batches queued per partition: the reader waits instead of buffering more.
            let (tx, rx) = mpsc::channel(2);
            senders.push(tx);
            tasks.spawn(send_batches(
                client,
                rx,
                compression,
                in_flight.clone(),
                cancel.clone(),
            ));
        }
        Ok(TopicWriter {
            topic: topic.to_string(),
            buffers: (0..partitions)
                .map(|_| Buffer {
                    records: Vec::new(),
                    bytes: 0,
                    since: None,
                    first: None,
                })
                .collect(),
            senders,
            tasks,
            batch_records,
            in_flight,
        })
    }

    /// Queues record number `seq` (increasing); waits when the partition's sender is behind
    /// (backpressure).
    pub async fn push(&mut self, key: &[u8], value: Vec<u8>, seq: u64) -> Result<()> {
        let p = super::partition_for_key(key, self.buffers.len() as i32) as usize;
        let buffer = &mut self.buffers[p];
        buffer.since.get_or_insert_with(Instant::now);
        buffer.first.get_or_insert(seq);
        buffer.bytes += key.len() + value.len();
        buffer.records.push(Record {
            key: Some(key.to_vec()),
            value: Some(value),
            headers: Default::default(),
            timestamp: Utc::now(),
        });
        if buffer.records.len() >= self.batch_records || buffer.bytes >= MAX_BATCH_BYTES {
            self.flush(p).await?;
        }
        Ok(())
    }

    /// Sends every buffer whose oldest record has waited at least `linger`.
    pub async fn flush_older_than(&mut self, linger: Duration) -> Result<()> {
        for p in 0..self.buffers.len() {
            if self.buffers[p].since.is_some_and(|t| t.elapsed() >= linger) {
                self.flush(p).await?;
            }
        }
        Ok(())
    }

    /// The sequence number of the first record not yet acknowledged (buffered or in flight),
    /// if any.
    pub fn oldest_unacked(&self) -> Option<u64> {
        let buffered = self.buffers.iter().filter_map(|b| b.first).min();
        let in_flight = lock(&self.in_flight)
            .iter()
            .filter_map(|q| q.front().copied())
            .min();
        buffered.into_iter().chain(in_flight).min()
    }

    async fn flush(&mut self, p: usize) -> Result<()> {
        let buffer = &mut self.buffers[p];
        buffer.since = None;
        buffer.bytes = 0;
        let Some(first) = buffer.first.take() else {
            return Ok(());
        };
        lock(&self.in_flight)[p].push_back(first);
        let batch = std::mem::replace(&mut buffer.records, Vec::with_capacity(self.batch_records));
        if self.senders[p].send(batch).await.is_err() {
            // The sender task ended early: it failed; report its error.
            return Err(self.first_error().await);
        }
        Ok(())
    }

    async fn first_error(&mut self) -> anyhow::Error {
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Err(e)) => return e.context(format!("sending to {}", self.topic)),
                Err(e) => return anyhow!("sender task for {} failed: {e}", self.topic),
                Ok(Ok(_)) => {}
            }
        }
        anyhow!("sending to {} stopped", self.topic)
    }

    /// Sends what is buffered, waits until every batch is acknowledged; returns bytes sent.
    pub async fn finish(mut self) -> Result<u64> {
        for p in 0..self.buffers.len() {
            self.flush(p).await?;
        }
        self.senders.clear();
        let mut bytes = 0;
        while let Some(joined) = self.tasks.join_next().await {
            bytes += joined.context("sender task panicked")??;
        }
        Ok(bytes)
    }
}

/// One partition's sender: each batch acknowledged (acks=all) before the next goes.
async fn send_batches(
    client: Arc<PartitionClient>,
    mut batches: mpsc::Receiver<Vec<Record>>,
    compression: Compression,
    in_flight: InFlight,
    cancel: CancellationToken,
) -> Result<u64> {
    let mut bytes = 0u64;
    while let Some(batch) = batches.recv().await {
        bytes += batch
            .iter()
            .map(|r| r.approximate_size() as u64)
            .sum::<u64>();
        send_with_retry(&client, batch, compression, &cancel).await?;
        lock(&in_flight)[client.partition() as usize].pop_front();
    }
    Ok(bytes)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends one batch to a partition (acks=all), retrying for up to [`SEND_GIVE_UP`] while the
/// broker is away, and not once `cancel` fired; a batch the broker refuses as such (too
/// large, invalid, not allowed) is not retried.
pub async fn send_with_retry(
    client: &PartitionClient,
    batch: Vec<Record>,
    compression: Compression,
    cancel: &CancellationToken,
) -> Result<()> {
    // rskafka takes the records by value: each attempt sends a copy. A retried batch may
    // already be stored; the store upserts by (symbol, timestamp), so a duplicate changes
    // nothing.
    retry(
        "producing",
        Backoff::service(Some(SEND_GIVE_UP)),
        cancel,
        || super::call("producing", client.produce(batch.clone(), compression)),
        |e: &CallError| match e.code() {
            Some(
                ProtocolError::MessageTooLarge
                | ProtocolError::RecordListTooLarge
                | ProtocolError::InvalidRecord
                | ProtocolError::CorruptMessage
                | ProtocolError::TopicAuthorizationFailed
                | ProtocolError::ClusterAuthorizationFailed,
            ) => Verdict::Stop,
            _ => Verdict::Retry,
        },
    )
    .await
    .map(|_| ())
    .map_err(|failure| {
        anyhow::Error::new(failure.into_inner()).context(format!(
            "sending to {}/{}",
            client.topic(),
            client.partition()
        ))
    })
}

/// Splits records into produce requests of at most [`MAX_BATCH_BYTES`] (one record each at
/// least), in order.
pub fn byte_bounded(records: Vec<Record>) -> Vec<Vec<Record>> {
    let mut batches = vec![Vec::new()];
    let mut bytes = 0;
    for record in records {
        let size = record.approximate_size();
        if bytes + size > MAX_BATCH_BYTES && !batches.last().is_some_and(Vec::is_empty) {
            batches.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        batches.last_mut().expect("never empty").push(record);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_under_the_byte_limit_and_keep_order() {
        let record = |i: u8, size: usize| Record {
            key: Some(vec![i]),
            value: Some(vec![0; size]),
            headers: Default::default(),
            timestamp: Utc::now(),
        };
        let records: Vec<Record> = (0..40).map(|i| record(i, 64 * 1024)).collect();
        let batches = byte_bounded(records);
        assert!(batches.len() >= 3);
        for batch in &batches {
            let bytes: usize = batch.iter().map(Record::approximate_size).sum();
            assert!(bytes <= MAX_BATCH_BYTES, "{bytes}");
        }
        let keys: Vec<u8> = batches
            .iter()
            .flatten()
            .map(|r| r.key.as_ref().unwrap()[0])
            .collect();
        assert_eq!(keys, (0..40).collect::<Vec<u8>>());
        // A record larger than the limit still goes, alone.
        assert_eq!(byte_bounded(vec![record(1, 2 * MAX_BATCH_BYTES)]).len(), 1);
    }
}
