//! One partition's fetch loop: reads from the next uncommitted offset, decodes and checks each
//! record, and hands the result to the writer (waiting when the writer is behind).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rskafka::client::error::ProtocolError;
use rskafka::client::partition::{OffsetAt, PartitionClient};
use rskafka::record::RecordAndOffset;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ProcessStats;
use crate::broker::{self, Broker, CallError};
use crate::config::ProcessConfig;
use crate::retry::{Backoff, Failure, Verdict, retry};
use crate::store::Incident;
use crate::tick::{Reading, Reject, Tick};

/// Longest the broker holds a fetch open waiting for new records.
const FETCH_WAIT_MS: i32 = 250;
/// How long a partition's fetches may keep failing before the processor gives up (and `up`
/// restarts it): a broker restart takes seconds.
const FETCH_GIVE_UP: Duration = Duration::from_secs(300);
/// How often a fetch loop checks that its topic is still the same one (by its id).
const IDENTITY_CHECK: Duration = Duration::from_secs(5);

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
    /// What went wrong with the partition itself (records deleted before they were read).
    pub incidents: Vec<Incident>,
    /// Kafka's id of the topic the records came from.
    pub topic_id: Option<String>,
    /// Ticks whose prices were rounded to the stored places.
    pub rounded: u64,
    /// Set when reading started over from another offset while running (a recreated topic,
    /// a truncated log): the partition's end then, for `--drain`.
    pub restarted_end: Option<i64>,
}

impl Fetched {
    pub(super) fn empty(
        kind: TopicKind,
        topic: &str,
        partition: i32,
        next_offset: i64,
        caught_up: bool,
        topic_id: &Option<String>,
    ) -> Self {
        Fetched {
            kind,
            topic: topic.to_string(),
            partition,
            next_offset,
            caught_up,
            ticks: Vec::new(),
            rejects: Vec::new(),
            incidents: Vec::new(),
            topic_id: topic_id.clone(),
            rounded: 0,
            restarted_end: None,
        }
    }
}

/// A partition to read, and where.
pub struct Source {
    pub client: Arc<PartitionClient>,
    pub kind: TopicKind,
    /// To check now and then that the topic is still the one being read.
    pub broker: Broker,
    /// Kafka's id of the topic (when the broker reports ids).
    pub topic_id: Option<String>,
    pub start: i64,
    /// What to record with the first batch (found while choosing `start`).
    pub incidents: Vec<Incident>,
    /// How messages' text becomes ticks (source zone, excess decimals).
    pub reading: Reading,
}

pub async fn run(
    source: Source,
    limits: ProcessConfig,
    stats: Arc<ProcessStats>,
    tx: mpsc::Sender<Fetched>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let Source {
        client,
        kind,
        broker,
        mut topic_id,
        start: mut offset,
        incidents,
        reading,
    } = source;
    let topic = client.topic().to_string();
    let partition = client.partition();
    let what = format!("fetching {topic}/{partition}");
    let mut identity_checked = Instant::now();
    if !incidents.is_empty() {
        let handover = Fetched {
            incidents,
            ..Fetched::empty(kind, &topic, partition, offset, false, &topic_id)
        };
        if tx.send(handover).await.is_err() {
            return Ok(());
        }
    }
    loop {
        // A topic deleted and created again under the same name goes on at the old offsets
        // without an error: its id tells.
        if identity_checked.elapsed() >= IDENTITY_CHECK {
            identity_checked = Instant::now();
            if let Some((earliest, incident, now)) =
                recreated(&broker, &client, &topic_id, offset).await
            {
                topic_id = Some(now);
                offset = earliest;
                let handover = restarted(&client, kind, offset, &topic_id, incident).await;
                if tx.send(handover).await.is_err() {
                    return Ok(());
                }
            }
        }
        // Committed records only: transaction markers and aborted transactions of other
        // producers are skipped, and `next_offset` moves past them.
        let fetch = retry(
            &what,
            Backoff::service(Some(FETCH_GIVE_UP)),
            &cancel,
            || {
                broker::call(
                    "fetching",
                    client.fetch_records_committed(offset, 1..limits.fetch_bytes, FETCH_WAIT_MS),
                )
            },
            |e: &CallError| match e.code() {
                Some(
                    ProtocolError::OffsetOutOfRange
                    | ProtocolError::TopicAuthorizationFailed
                    | ProtocolError::ClusterAuthorizationFailed,
                ) => Verdict::Stop,
                _ => Verdict::Retry,
            },
        );
        let fetched = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            fetched = fetch => fetched,
        };
        let fetched = match fetched {
            Ok(fetched) => fetched,
            Err(Failure::Cancelled(_)) => return Ok(()),
            Err(Failure::Gave(e)) if e.code() != Some(ProtocolError::OffsetOutOfRange) => {
                // Not allowed, or failing for minutes: the processor stops (and `up` restarts
                // it, reporting the error) rather than stall this partition unseen.
                return Err(anyhow::Error::new(e).context(format!(
                    "reading {topic}/{partition} at offset {offset} failed for {FETCH_GIVE_UP:?}"
                )));
            }
            Err(Failure::Gave(_)) => {
                // Out of range may be a recreated topic: its id tells first.
                let (next, incident) = match recreated(&broker, &client, &topic_id, offset).await {
                    Some((earliest, incident, now)) => {
                        topic_id = Some(now);
                        (earliest, Some(incident))
                    }
                    None => recover_offset(&client, offset, &cancel).await,
                };
                offset = next;
                if let Some(incident) = incident {
                    let handover = restarted(&client, kind, offset, &topic_id, incident).await;
                    if tx.send(handover).await.is_err() {
                        return Ok(());
                    }
                }
                continue;
            }
        };
        let end = if fetched.last_stable_offset >= 0 {
            fetched.last_stable_offset
        } else {
            fetched.high_watermark
        };
        if fetched.records.is_empty() {
            if fetched.next_offset > offset {
                // Only markers or aborted records: the writer still commits the new offset.
                offset = fetched.next_offset;
                let handover =
                    Fetched::empty(kind, &topic, partition, offset, offset >= end, &topic_id);
                if tx.send(handover).await.is_err() {
                    return Ok(());
                }
            }
            continue;
        }
        // Hand over at most `batch_rows` at a time, so a batch never outgrows batch_rows.
        let mut records = fetched.records.into_iter().peekable();
        while records.peek().is_some() {
            let chunk: Vec<_> = records.by_ref().take(limits.batch_rows).collect();
            let next_offset = if records.peek().is_none() {
                fetched.next_offset
            } else {
                chunk.last().map(|r| r.offset + 1).unwrap_or(offset)
            };
            let fetched = decode(
                Fetched::empty(
                    kind,
                    &topic,
                    partition,
                    next_offset,
                    next_offset >= end,
                    &topic_id,
                ),
                chunk,
                reading,
            );
            let count = (fetched.ticks.len() + fetched.rejects.len()) as u64;
            if tx.send(fetched).await.is_err() {
                return Ok(());
            }
            stats.fetched.fetch_add(count, Ordering::Relaxed);
            offset = next_offset;
        }
    }
}

/// Decodes and checks records into `fetched`. A refused record's source is
/// `topic/partition/offset`, with `@` and the start of the topic's id when the broker reports
/// one, so a recreated topic's records never share a source with the old one's.
pub(super) fn decode(
    mut fetched: Fetched,
    records: Vec<RecordAndOffset>,
    reading: Reading,
) -> Fetched {
    let incarnation = fetched
        .topic_id
        .as_ref()
        .map(|id| format!("@{}", &id[..id.len().min(8)]))
        .unwrap_or_default();
    // Where a refused record came from (built only for those: most records are good).
    let coordinates = |offset: i64| {
        format!(
            "{}/{}/{offset}{incarnation}",
            fetched.topic, fetched.partition
        )
    };
    let (mut ticks, mut rejects, mut rounded) = (Vec::with_capacity(records.len()), Vec::new(), 0);
    for record in records {
        let value = record.record.value.unwrap_or_default();
        match fetched.kind {
            TopicKind::Ticks => match Tick::read_json(&value, reading) {
                Ok((tick, was_rounded)) => {
                    rounded += u64::from(was_rounded);
                    ticks.push(tick)
                }
                Err(reason) => rejects.push(Reject::new(
                    coordinates(record.offset),
                    "process",
                    reason,
                    &value,
                )),
            },
            TopicKind::DeadLetters => match Reject::from_json(&value) {
                Ok(reject) => rejects.push(reject),
                Err(reason) => rejects.push(Reject::new(
                    coordinates(record.offset),
                    "process",
                    reason,
                    &value,
                )),
            },
        }
    }
    fetched.ticks.extend(ticks);
    fetched.rejects.extend(rejects);
    fetched.rounded += rounded;
    fetched
}

/// Tells the writer that reading started over at `offset` while running, why, and where the
/// partition ends now (for `--drain`).
async fn restarted(
    client: &PartitionClient,
    kind: TopicKind,
    offset: i64,
    topic_id: &Option<String>,
    incident: Incident,
) -> Fetched {
    let end = broker::timed("reading an offset", client.get_offset(OffsetAt::Latest)).await;
    Fetched {
        incidents: vec![incident],
        restarted_end: end.ok(),
        ..Fetched::empty(
            kind,
            client.topic(),
            client.partition(),
            offset,
            false,
            topic_id,
        )
    }
}

/// Whether the topic being read was deleted and created again (its id changed): then the
/// earliest offset of the new one, the incident, and the new id. A failed look-up is not a
/// change.
async fn recreated(
    broker: &Broker,
    client: &PartitionClient,
    known: &Option<String>,
    offset: i64,
) -> Option<(i64, Incident, String)> {
    let topic = client.topic();
    let now = broker.topic_id(topic).await.ok().flatten()?;
    let was = known.as_ref()?;
    if *was == now {
        return None;
    }
    let earliest = broker::timed("reading an offset", client.get_offset(OffsetAt::Earliest))
        .await
        .ok()?;
    let detail = format!(
        "topic {topic} was deleted and created again (id {was} is now {now}) while being read at \
         offset {offset}; reading the new one from {earliest}"
    );
    tracing::error!(topic, partition = client.partition(), "{detail}");
    Some((
        earliest,
        Incident {
            topic: topic.to_string(),
            partition: client.partition(),
            kind: "topic_recreated",
            detail,
        },
        now,
    ))
}

/// Where to go on when `offset` is outside the partition, and what happened. Records the
/// broker deleted (retention) before they were processed are reported, and reading goes on
/// from the earliest one kept; an offset past the end (the log was truncated, or the topic
/// deleted and recreated) is reported, and reading starts again from the earliest record, so
/// none of the partition's present records is skipped (rows already stored are upserted
/// unchanged).
async fn recover_offset(
    client: &PartitionClient,
    offset: i64,
    cancel: &CancellationToken,
) -> (i64, Option<Incident>) {
    let bounds = retry(
        "reading a partition's offsets",
        Backoff::service(None),
        cancel,
        || async {
            let earliest = broker::call("reading an offset", client.get_offset(OffsetAt::Earliest));
            let latest = broker::call("reading an offset", client.get_offset(OffsetAt::Latest));
            Ok::<_, CallError>((earliest.await?, latest.await?))
        },
        |_| Verdict::Retry,
    )
    .await;
    let Ok((earliest, latest)) = bounds else {
        return (offset, None);
    };
    let (topic, partition) = (client.topic().to_string(), client.partition());
    let incident = if offset < earliest {
        Incident {
            topic,
            partition,
            kind: "records_deleted",
            detail: format!(
                "records {offset}..{earliest} were deleted by the broker (retention) before they were processed"
            ),
        }
    } else if offset > latest {
        Incident {
            topic,
            partition,
            kind: "offset_past_end",
            detail: format!(
                "the stored offset {offset} is past the partition's end {latest}: the log was \
                 truncated or the topic recreated; reading again from {earliest}"
            ),
        }
    } else {
        // In range again (a leader moved): go on where we were.
        return (offset, None);
    };
    tracing::error!(
        topic = incident.topic,
        partition,
        kind = incident.kind,
        "{}",
        incident.detail
    );
    (earliest, Some(incident))
}
