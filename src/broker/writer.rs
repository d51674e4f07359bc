//! Sends keyed records to one topic: a buffer per partition, flushed when full or when its
//! oldest record has waited `linger`; one sender task per partition keeps one batch in flight
//! (per-key order is kept) and retries a failed batch with bounded backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use chrono::Utc;
use rskafka::client::partition::{Compression, PartitionClient};
use rskafka::record::Record;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::Broker;

/// Attempts per batch before the producer gives up (the broker had minutes to come back).
const SEND_ATTEMPTS: u32 = 12;

struct Buffer {
    records: Vec<Record>,
    since: Option<Instant>,
}

pub struct TopicWriter {
    topic: String,
    buffers: Vec<Buffer>,
    senders: Vec<mpsc::Sender<Vec<Record>>>,
    tasks: JoinSet<Result<u64>>,
    batch_records: usize,
}

impl TopicWriter {
    pub async fn open(
        broker: &Broker,
        topic: &str,
        batch_records: usize,
        compression: Compression,
    ) -> Result<Self> {
        let partitions = broker.partition_count(topic).await?;
        let mut senders = Vec::new();
        let mut tasks = JoinSet::new();
        for p in 0..partitions {
            let client = broker.partition(topic, p).await?;
            // Two batches queued per partition: the reader waits instead of buffering more.
            let (tx, rx) = mpsc::channel(2);
            senders.push(tx);
            tasks.spawn(send_batches(client, rx, compression));
        }
        Ok(TopicWriter {
            topic: topic.to_string(),
            buffers: (0..partitions)
                .map(|_| Buffer {
                    records: Vec::new(),
                    since: None,
                })
                .collect(),
            senders,
            tasks,
            batch_records,
        })
    }

    /// Queues one record; waits when the partition's sender is behind (backpressure).
    pub async fn push(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        let p = super::partition_for_key(key, self.buffers.len() as i32) as usize;
        let buffer = &mut self.buffers[p];
        buffer.since.get_or_insert_with(Instant::now);
        buffer.records.push(Record {
            key: Some(key.to_vec()),
            value: Some(value),
            headers: Default::default(),
            timestamp: Utc::now(),
        });
        if buffer.records.len() >= self.batch_records {
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

    async fn flush(&mut self, p: usize) -> Result<()> {
        let buffer = &mut self.buffers[p];
        buffer.since = None;
        if buffer.records.is_empty() {
            return Ok(());
        }
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
) -> Result<u64> {
    let mut bytes = 0u64;
    while let Some(batch) = batches.recv().await {
        bytes += batch
            .iter()
            .map(|r| r.approximate_size() as u64)
            .sum::<u64>();
        send_with_retry(&client, batch, compression).await?;
    }
    Ok(bytes)
}

/// Sends one batch to a partition (acks=all), retrying with backoff for about a minute.
pub async fn send_with_retry(
    client: &PartitionClient,
    mut batch: Vec<Record>,
    compression: Compression,
) -> Result<()> {
    let mut backoff = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        // rskafka takes the records by value: keep a copy while a retry may follow. A retried
        // batch may already be stored; the store upserts by (symbol, timestamp), so a
        // duplicate changes nothing.
        let records = if attempt == SEND_ATTEMPTS {
            std::mem::take(&mut batch)
        } else {
            batch.clone()
        };
        match super::timed("producing", client.produce(records, compression)).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < SEND_ATTEMPTS => {
                tracing::warn!(
                    topic = client.topic(),
                    partition = client.partition(),
                    attempt,
                    "produce failed, retrying in {backoff:?}: {e:#}"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
