//! Process: Kafka → checked ticks → MySQL, exactly once.
//!
//! One fetch loop per partition (of the ticks topic and of the dead-letter topic) decodes and
//! validates records and hands them through a bounded channel to the writer that owns the
//! partition (`process.writers` of them, each on its own connection); a writer commits each
//! batch's rows, refused records and reached offsets in one MySQL transaction. The rollup
//! stage (`rollups`) follows: it recomputes the bars, indicators and quotes of the symbols the
//! rows made stale, whoever wrote them.
//! On start every loop resumes from the offsets stored in MySQL, so a crash at any point
//! replays only what was not committed, and the upsert makes the replay harmless.
//!
//! Records refused here are also published to the dead-letter topic (before their batch
//! commits: at-least-once there, exactly once in `rejected_ticks`, which keeps one row per
//! source).

mod fetch;
mod rollups;
mod sharing;
mod stats;
mod stdin;

pub use stats::ProcessStats;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rskafka::client::partition::Compression;
use rskafka::record::Record;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::alerts::AlertRule;
use crate::broker::{self, Broker};
use crate::config::Config;
use crate::retry::{self, Backoff, Failure};
use crate::store::{Batch, Incident, Member, Reached, Role, Store, StoreError, StoredOffset, Unit};
use crate::tick::{Reject, Tick};
use fetch::{Fetched, TopicKind};

/// How long the writer keeps retrying a batch against an unreachable MySQL before giving up.
const WRITE_GIVE_UP: Duration = Duration::from_secs(300);

/// Options of one processor run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Stop once everything that was in the topics at start is committed.
    pub drain: bool,
    /// Consume nothing: only keep the rollups following `stock_data`, for rows another
    /// processor writes (a Spark job, a JDBC sink, a bulk load). With `drain`: until every
    /// symbol stale at start is recomputed.
    pub rollups_only: bool,
    /// Records come on standard input from another Kafka reader (the Spark job) instead of
    /// being fetched here (see `stdin`).
    pub from_stdin: bool,
}

/// Consumes until `cancel` fires (or, with `drain`, until caught up), committing what was
/// fetched before returning. Several processors of one pipeline share its partitions
/// (`sharing`); a drain, or records from stdin, needs them all.
pub async fn run(
    config: &Config,
    broker: &Broker,
    store: &Store,
    options: RunOptions,
    stats: Arc<ProcessStats>,
    cancel: CancellationToken,
) -> Result<()> {
    let store = &store
        .clone()
        .with_statement_timeout(config.mysql.statement_timeout);
    let role = if options.rollups_only {
        Role::Rollups
    } else if options.drain || options.from_stdin {
        Role::All
    } else {
        Role::Shared
    };
    let member = store.join(&config.topics.ticks, role).await?;
    let health = sharing::Health::default();
    let result = tokio::select! {
        lost = sharing::keep_membership(store, &member, &health) => Err(lost.into()),
        worked = work_as_member(config, broker, store, &member, &health, options, stats, &cancel) => {
            worked
        }
    };
    // Only this member's rows go: after a lost lease, what it still holds is freed at once.
    store.leave(&member).await;
    result
}

fn is_lease_lost(result: &Result<()>) -> bool {
    matches!(
        result.as_ref().map_err(|e| e.downcast_ref::<StoreError>()),
        Err(Some(StoreError::LeaseLost { .. }))
    )
}

/// The member's work, one generation after another: what it holds changes as processors join
/// and leave, and each change restarts its fetch loops and writers.
#[allow(clippy::too_many_arguments)]
async fn work_as_member(
    config: &Config,
    broker: &Broker,
    store: &Store,
    member: &Member,
    health: &sharing::Health,
    options: RunOptions,
    stats: Arc<ProcessStats>,
    cancel: &CancellationToken,
) -> Result<()> {
    let topics = [config.topics.ticks.clone(), config.topics.dlq.clone()];
    let mut sharer = sharing::Sharer::new(store, broker, member, topics, health).await?;
    let mut holds = BTreeSet::new();
    let now = sharer.look().await?;
    let plan = sharing::plan(member, &holds, &sharer.partitions, &now)?;
    let wanted = plan.take.len();
    sharer.take(&mut holds, plan.take).await;
    if member.role != Role::Shared && holds.len() < wanted {
        // Another processor took a unit between the look and the take: its message names it.
        let now = sharer.look().await?;
        sharing::plan(member, &BTreeSet::new(), &sharer.partitions, &now)?;
        bail!("another processor took part of {}'s work", member.pipeline);
    }
    let now: Vec<String> = holds.iter().map(Unit::to_string).collect();
    tracing::info!(
        holds = now.join(" "),
        "took its share of {}",
        member.pipeline
    );
    loop {
        let generation = cancel.child_token();
        let held = holds.clone();
        stats.measure_rollups(held.contains(&Unit::Rollups));
        let work = work(
            config,
            broker,
            store,
            member,
            &held,
            options,
            stats.clone(),
            generation.clone(),
        );
        tokio::pin!(work);
        let (worked, change) = tokio::select! {
            worked = &mut work => (worked, None),
            change = sharer.until_change(&mut holds) => {
                generation.cancel();
                ((&mut work).await, Some(change?))
            }
        };
        let Some(change) = change.filter(|_| !cancel.is_cancelled()) else {
            return worked;
        };
        // A batch the change cut short is read again by the units' next holder.
        if is_lease_lost(&worked) {
            return worked;
        }
        if let Err(e) = worked {
            tracing::warn!("{e:#}; read again once the work is shared anew");
        }
        if let sharing::Change::GiveUp(units) = change {
            retry::retry(
                "giving units of work up",
                Backoff::service(Some(WRITE_GIVE_UP)),
                cancel,
                || store.give_up(member, &units),
                StoreError::verdict,
            )
            .await
            .map_err(|failure| failure.into_inner())?;
            for unit in &units {
                holds.remove(unit);
            }
        }
        let now: Vec<String> = holds.iter().map(Unit::to_string).collect();
        tracing::info!(holds = now.join(" "), "the work is shared anew");
    }
}

/// One generation of a member's work on the units it `holds`, until `cancel` (or a drain's
/// end).
#[allow(clippy::too_many_arguments)]
async fn work(
    config: &Config,
    broker: &Broker,
    store: &Store,
    member: &Member,
    holds: &BTreeSet<Unit>,
    options: RunOptions,
    stats: Arc<ProcessStats>,
    cancel: CancellationToken,
) -> Result<()> {
    if options.rollups_only {
        follow_rollups(store, member, &config.alerts, options, &stats, &cancel).await
    } else {
        consume(config, broker, store, member, holds, options, stats, cancel).await
    }
}

/// Fetch loops feeding writers for the partitions the member holds, and the rollup stage if
/// it holds that.
#[allow(clippy::too_many_arguments)]
async fn consume(
    config: &Config,
    broker: &Broker,
    store: &Store,
    member: &Member,
    holds: &BTreeSet<Unit>,
    options: RunOptions,
    stats: Arc<ProcessStats>,
    cancel: CancellationToken,
) -> Result<()> {
    let topics = [
        (config.topics.ticks.clone(), TopicKind::Ticks),
        (config.topics.dlq.clone(), TopicKind::DeadLetters),
    ];
    let held = |topic: &str, partition: i32| {
        holds.contains(&Unit::Partition {
            topic: topic.to_string(),
            partition,
        })
    };
    let partitions = holds.iter().filter(|u| **u != Unit::Rollups).count();
    // Partitions are split among the writers: each commits its own partitions' rows,
    // refused records and offsets, and a symbol lives on one partition, so their transactions touch
    // different rows and each partition stays exactly once.
    let writers = config.process.writers.min(partitions);
    // Where each held partition starts, and how far behind it is.
    let mut starts = Vec::new();
    for (topic, kind) in &topics {
        let stored = store.stored_offsets(topic).await?;
        let topic_id = broker.topic_id(topic).await?;
        for (partition, earliest, latest) in broker.watermarks(topic).await? {
            if !held(topic, partition) {
                continue;
            }
            let (start, incidents) = resume_point(
                topic,
                partition,
                stored.get(&partition),
                &topic_id,
                earliest,
            );
            starts.push(Start {
                topic: topic.clone(),
                kind: *kind,
                partition,
                topic_id: topic_id.clone(),
                start,
                latest,
                incidents,
            });
        }
    }
    let lane_of = lanes_by_backlog(&starts, writers);
    let stop_fetching = cancel.child_token();
    let (senders, mut lanes): (Vec<_>, Vec<Lane>) = (0..writers)
        .map(|lane| {
            // Room for one handover per partition: each loop decodes its next while the
            // writer commits.
            let room = lane_of.iter().filter(|&&l| l == lane).count();
            let (tx, rx) = mpsc::channel::<Fetched>(room.max(1));
            let lane = Lane {
                rx,
                drain_targets: BTreeMap::new(),
                stop: stop_fetching.child_token(),
            };
            (tx, lane)
        })
        .unzip();
    // Each fetch loop waits for new records on a connection of its own; opened all at once.
    let mut fetch_clients = if options.from_stdin {
        Vec::new()
    } else {
        let opening = starts
            .iter()
            .map(|s| broker.open_partition(&s.topic, s.partition));
        futures::future::try_join_all(opening).await?
    }
    .into_iter();
    let mut fetchers = tokio::task::JoinSet::new();
    let mut routes = BTreeMap::new();
    for (start, lane) in starts.into_iter().zip(lane_of) {
        let (tx, lane) = (&senders[lane], &mut lanes[lane]);
        let Start {
            topic,
            kind,
            partition,
            topic_id,
            start,
            latest,
            incidents,
        } = start;
        if options.drain && latest > start {
            lane.drain_targets
                .insert((topic.clone(), partition), latest);
        }
        if options.from_stdin {
            let route = stdin::Route {
                kind,
                topic_id,
                sender: Some(tx.clone()),
                stop: lane.stop.clone(),
                next: start,
                incidents,
            };
            routes.insert((topic, partition), route);
            continue;
        }
        let source = fetch::Source {
            client: fetch_clients.next().expect("a client per partition"),
            kind,
            broker: broker.clone(),
            topic_id,
            start,
            incidents,
            reading: config.reading(),
        };
        fetchers.spawn(fetch::run(
            source,
            config.process.clone(),
            stats.clone(),
            tx.clone(),
            lane.stop.clone(),
        ));
    }
    if options.from_stdin {
        stdin::print_starting_offsets(&broker.bootstrap, &routes);
        fetchers.spawn(stdin::run(
            routes,
            config.process.batch_rows,
            config.reading(),
            stats.clone(),
            stop_fetching.clone(),
        ));
    }
    // Only the fetch loops hold senders now: a writer's channel closes when its loops stop.
    drop(senders);
    let mut writers = tokio::task::JoinSet::new();
    for lane in lanes {
        if options.drain && lane.drain_targets.is_empty() {
            lane.stop.cancel();
        }
        let writer = Writer {
            store: store.clone(),
            member: member.clone(),
            dead_letters: DeadLetters::open(broker, &config.topics.dlq, &cancel).await?,
            batch_rows: config.process.batch_rows,
            linger: config.process.batch_linger,
            stats: stats.clone(),
            drain_targets: lane.drain_targets,
            stop_fetching: lane.stop,
            shutdown: cancel.clone(),
        };
        writers.spawn(writer.run(lane.rx));
    }
    // The first writer to fail, or fetch loop to give up, stops the rest (a dropped
    // transaction rolls back).
    let fetch_failure = async {
        while let Some(joined) = fetchers.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return e,
                Err(e) => return anyhow::anyhow!("a fetch loop panicked: {e}"),
            }
        }
        std::future::pending().await
    };
    let written = async {
        if writers.is_empty() {
            // No partition of its own (yet): the member waits for its share.
            cancel.cancelled().await;
            return Ok(());
        }
        while let Some(joined) = writers.join_next().await {
            joined.context("a writer stopped")??;
        }
        Ok(())
    };
    // A drain winds the rollup stage down when the rows are in: the recomputes under way
    // finish, and the catch-up goes on from them.
    let wind_down = CancellationToken::new();
    let rollup_stage = async {
        if holds.contains(&Unit::Rollups) {
            rollups::follow(store, &stats, member, &config.alerts, &wind_down).await
        } else {
            wind_down.cancelled().await;
            Ok(())
        }
    };
    tokio::pin!(rollup_stage);
    let result = tokio::select! {
        written = written => written,
        failure = fetch_failure => Err(failure),
        ended = &mut rollup_stage => Err(match ended {
            Err(failed) => failed.context("the rollup stage failed"),
            Ok(()) => anyhow::anyhow!("the rollup stage stopped before the writers"),
        }),
    };
    // The writers still at work are stopped (their open transactions roll back) before the
    // member gives its partitions up.
    writers.shutdown().await;
    stop_fetching.cancel();
    while fetchers.join_next().await.is_some() {}
    // Drained: the rollups of everything committed are computed before the run ends (a
    // drain holds the rollup stage; Ctrl-C still heard, and drops the recomputes under way).
    if options.drain && result.is_ok() && !cancel.is_cancelled() {
        let _ = stats.rows_drained_at.set(std::time::Instant::now());
        wind_down.cancel();
        tokio::select! {
            ended = &mut rollup_stage => ended.context("the rollup stage failed")?,
            _ = cancel.cancelled() => return result,
        }
        rollups::catch_up(store, &stats, member, &config.alerts, &cancel).await?;
    }
    result
}

/// The rollup stage alone: until `cancel`, or with `drain` until every symbol stale at start
/// is recomputed.
async fn follow_rollups(
    store: &Store,
    member: &Member,
    rules: &[AlertRule],
    options: RunOptions,
    stats: &Arc<ProcessStats>,
    cancel: &CancellationToken,
) -> Result<()> {
    if options.drain {
        return rollups::catch_up(store, stats, member, rules, cancel).await;
    }
    // Stopped by dropping it: Ctrl-C does not wait for the recomputes under way.
    let never = CancellationToken::new();
    tokio::select! {
        ended = rollups::follow(store, stats, member, rules, &never) => {
            ended.context("the rollup stage failed")
        }
        _ = cancel.cancelled() => Ok(()),
    }
}

/// Where a partition's reading starts: the stored offset, unless it belongs to another topic
/// of the same name (deleted and created again: its id differs), whose records are then all
/// read from the earliest.
fn resume_point(
    topic: &str,
    partition: i32,
    stored: Option<&StoredOffset>,
    topic_id: &Option<String>,
    earliest: i64,
) -> (i64, Vec<Incident>) {
    match stored {
        None => (earliest, Vec::new()),
        Some(stored) => match (&stored.topic_id, topic_id) {
            (Some(was), Some(now)) if was != now => {
                let detail = format!(
                    "topic {topic} was deleted and created again (id {was} is now {now}): the \
                     stored offset {} belongs to the old topic; reading the new one from {earliest}",
                    stored.next
                );
                tracing::error!(topic, partition, "{detail}");
                let incident = Incident {
                    topic: topic.to_string(),
                    partition,
                    kind: "topic_recreated",
                    detail,
                };
                (earliest, vec![incident])
            }
            _ => (stored.next, Vec::new()),
        },
    }
}

/// Where a held partition's reading starts, and its end when the run began.
struct Start {
    topic: String,
    kind: TopicKind,
    partition: i32,
    topic_id: Option<String>,
    start: i64,
    latest: i64,
    incidents: Vec<Incident>,
}

/// The writer of each partition: the most behind first, each to the writer with the least
/// backlog so far (then the fewest partitions), no writer taking more than its even share of
/// a topic's partitions (live rates are unknown: with nothing behind, this is round robin).
/// Symbols hash unevenly onto partitions: the bench's 20 put 65 % of the rows on every other
/// one of 6, so on one of two writers by partition number. Shared by backlog it is 45/55, and
/// a 1 M-row backfill's rows commit ~7 % sooner.
fn lanes_by_backlog(starts: &[Start], writers: usize) -> Vec<usize> {
    let backlog = |i: usize| (starts[i].latest - starts[i].start).max(0);
    let mut order: Vec<usize> = (0..starts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(backlog(i)));
    let share = |topic: &str| {
        starts
            .iter()
            .filter(|s| s.topic == topic)
            .count()
            .div_ceil(writers.max(1))
    };
    // Per writer: backlog taken, and partitions taken of each topic.
    let mut backlogs = vec![0i64; writers];
    let mut taken: Vec<BTreeMap<&str, usize>> = vec![BTreeMap::new(); writers];
    let mut lane_of = vec![0; starts.len()];
    for i in order {
        let topic = starts[i].topic.as_str();
        let lane = (0..writers)
            .filter(|&w| taken[w].get(topic).copied().unwrap_or(0) < share(topic))
            .min_by_key(|&w| (backlogs[w], taken[w].values().sum::<usize>()))
            .unwrap_or(0);
        backlogs[lane] += backlog(i);
        *taken[lane].entry(topic).or_default() += 1;
        lane_of[i] = lane;
    }
    lane_of
}

/// A writer's share of the partitions: the channel their fetch loops feed, what draining
/// waits for, and the token that stops those loops.
struct Lane {
    rx: mpsc::Receiver<Fetched>,
    drain_targets: BTreeMap<(String, i32), i64>,
    stop: CancellationToken,
}

/// What the writer has fetched but not committed.
#[derive(Default)]
struct Pending {
    ticks: Vec<Tick>,
    rejects: Vec<Reject>,
    incidents: Vec<Incident>,
    rounded: u64,
    /// Rejects refused by this processor, still to be published to the dead-letter topic.
    new_dead_letters: Vec<Reject>,
    /// Per partition: the next offset reached and the id of its topic.
    offsets: BTreeMap<(String, i32), (i64, Option<String>)>,
    since: Option<Instant>,
}

impl Pending {
    fn records(&self) -> usize {
        self.ticks.len() + self.rejects.len()
    }
    fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

struct Writer {
    store: Store,
    member: Member,
    dead_letters: DeadLetters,
    batch_rows: usize,
    linger: Duration,
    stats: Arc<ProcessStats>,
    drain_targets: BTreeMap<(String, i32), i64>,
    stop_fetching: CancellationToken,
    /// Shutdown asked: a failed commit is not retried.
    shutdown: CancellationToken,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Fetched>) -> Result<()> {
        let mut pending = Pending::default();
        loop {
            let deadline = pending.since.map(|t| t + self.linger);
            tokio::select! {
                fetched = rx.recv() => match fetched {
                    Some(fetched) => {
                        let caught_up = fetched.caught_up;
                        pending.since.get_or_insert_with(Instant::now);
                        pending.ticks.extend(fetched.ticks);
                        pending.rounded += fetched.rounded;
                        if fetched.kind == TopicKind::Ticks {
                            pending.new_dead_letters.extend(fetched.rejects.iter().cloned());
                        }
                        pending.rejects.extend(fetched.rejects);
                        if let Some(end) = fetched.restarted_end {
                            // The partition started over while being read (a recreated topic,
                            // a truncated log): drain what it holds now.
                            let key = (fetched.topic.clone(), fetched.partition);
                            if let Some(target) = self.drain_targets.get_mut(&key) {
                                *target = end;
                            }
                        }
                        pending.incidents.extend(fetched.incidents);
                        pending.offsets.insert(
                            (fetched.topic, fetched.partition),
                            (fetched.next_offset, fetched.topic_id),
                        );
                        if pending.records() >= self.batch_rows || caught_up {
                            self.commit(&mut pending).await?;
                        }
                    }
                    // Every fetch loop stopped: commit what they handed over, and finish.
                    None => {
                        self.commit(&mut pending).await?;
                        // A drain whose input ended short of its targets (the Spark job gone)
                        // did not drain.
                        if !self.drain_targets.is_empty() && !self.shutdown.is_cancelled() {
                            anyhow::bail!(
                                "the input ended before the drain reached the end of {} \
                                 partition(s)",
                                self.drain_targets.len()
                            );
                        }
                        return Ok(());
                    }
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.commit(&mut pending).await?;
                }
            }
        }
    }

    /// Commits the pending batch, retrying what may pass (an unreachable, restarting or
    /// stalled MySQL) for up to [`WRITE_GIVE_UP`]; after shutdown is asked, one attempt only
    /// (what is not committed is read again next time).
    async fn commit(&mut self, pending: &mut Pending) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        if !pending.new_dead_letters.is_empty() {
            self.dead_letters.publish(&pending.new_dead_letters).await?;
        }
        let offsets: Vec<Reached> = pending
            .offsets
            .iter()
            .map(|((topic, partition), (next, topic_id))| Reached {
                topic: topic.clone(),
                partition: *partition,
                next: *next,
                topic_id: topic_id.clone(),
            })
            .collect();
        let started = Instant::now();
        let committed = retry::retry(
            "committing a batch",
            Backoff::service(Some(WRITE_GIVE_UP)),
            &self.shutdown,
            || {
                self.store.write_batch(Batch {
                    member: &self.member,
                    ticks: &pending.ticks,
                    rejects: &pending.rejects,
                    offsets: &offsets,
                    incidents: &pending.incidents,
                })
            },
            StoreError::verdict,
        )
        .await
        .map_err(|failure| match failure {
            Failure::Cancelled(e) => anyhow::Error::new(e).context(format!(
                "stopping with {} fetched records not committed (they are read again next time)",
                pending.records()
            )),
            Failure::Gave(e) => anyhow::Error::new(e).context("the batch was not committed"),
        })?;
        // Rows MySQL refused are in `rejected_ticks` (stage `store`), committed with the batch.
        let refused = committed.refused_rows;
        for reject in &refused {
            tracing::warn!(source = %reject.source, reason = %reject.reason, "row refused by MySQL, quarantined");
        }
        self.stats.rows.fetch_add(
            (pending.ticks.len() - refused.len()) as u64,
            Ordering::Relaxed,
        );
        self.stats.rejected.fetch_add(
            (pending.rejects.len() + refused.len()) as u64,
            Ordering::Relaxed,
        );
        self.stats
            .rounded
            .fetch_add(pending.rounded, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        self.stats.committed(&pending.ticks);
        if !self.drain_targets.is_empty() {
            for ((topic, p), (next, _)) in &pending.offsets {
                if self
                    .drain_targets
                    .get(&(topic.clone(), *p))
                    .is_some_and(|t| next >= t)
                {
                    self.drain_targets.remove(&(topic.clone(), *p));
                }
            }
            if self.drain_targets.is_empty() {
                self.stop_fetching.cancel();
            }
        }
        *pending = Pending::default();
        Ok(())
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Publishes records refused by the processor to the dead-letter topic.
struct DeadLetters {
    partitions: Vec<Arc<rskafka::client::partition::PartitionClient>>,
    /// Shutdown asked: a failed send is not retried.
    shutdown: CancellationToken,
}

impl DeadLetters {
    async fn open(broker: &Broker, topic: &str, shutdown: &CancellationToken) -> Result<Self> {
        let count = broker.partition_count(topic).await?;
        let mut partitions = Vec::new();
        for p in 0..count {
            partitions.push(broker.partition(topic, p).await?);
        }
        Ok(DeadLetters {
            partitions,
            shutdown: shutdown.clone(),
        })
    }

    async fn publish(&self, rejects: &[Reject]) -> Result<()> {
        let mut by_partition: BTreeMap<usize, Vec<Record>> = BTreeMap::new();
        for reject in rejects {
            let p =
                broker::partition_for_key(reject.source.as_bytes(), self.partitions.len() as i32);
            by_partition.entry(p as usize).or_default().push(Record {
                key: Some(reject.source.as_bytes().to_vec()),
                value: Some(reject.to_json()),
                headers: Default::default(),
                timestamp: chrono::Utc::now(),
            });
        }
        for (p, records) in by_partition {
            for batch in broker::byte_bounded(records) {
                broker::send_with_retry(
                    &self.partitions[p],
                    batch,
                    Compression::NoCompression,
                    &self.shutdown,
                )
                .await
                .context("publishing to the dead-letter topic")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(backlogs: &[i64]) -> Vec<Start> {
        backlogs
            .iter()
            .enumerate()
            .map(|(p, &backlog)| Start {
                topic: "ticks".into(),
                kind: TopicKind::Ticks,
                partition: p as i32,
                topic_id: None,
                start: 1_000,
                latest: 1_000 + backlog,
                incidents: Vec::new(),
            })
            .collect()
    }

    fn loads(backlogs: &[i64], lane_of: &[usize], writers: usize) -> Vec<i64> {
        let mut loads = vec![0; writers];
        for (backlog, &lane) in backlogs.iter().zip(lane_of) {
            loads[lane] += backlog;
        }
        loads
    }

    #[test]
    fn the_writers_share_a_backlog_more_evenly_than_by_partition_number() {
        // The bench's 20 symbols on 6 partitions: every other partition held 65 % of the rows.
        let backlogs = [251_250, 0, 150_750, 150_750, 251_250, 201_000];
        let lane_of = lanes_by_backlog(&starts(&backlogs), 2);
        let busiest = *loads(&backlogs, &lane_of, 2).iter().max().unwrap();
        let total: i64 = backlogs.iter().sum();
        // Greedy, most behind first: 251,250 and 201,000 to one writer; 251,250 and both
        // 150,750 to the other.
        assert_eq!(busiest, 251_250 + 2 * 150_750, "{lane_of:?}");
        assert!(busiest < 653_250, "partition number alone gave 653,250");
        // Greedy's bound: an even share plus at most the largest partition.
        assert!(busiest <= total / 2 + 251_250);
    }

    #[test]
    fn partitions_with_nothing_behind_are_dealt_round_robin() {
        let lane_of = lanes_by_backlog(&starts(&[0; 7]), 3);
        assert_eq!(lane_of, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn a_small_backlog_does_not_pile_the_live_partitions_onto_one_writer() {
        // A restart with a live feed: one partition a few records behind, five caught up.
        let mut both = starts(&[0, 0, 0, 0, 0, 5]);
        // The dead-letter topic's partitions, nothing behind, are shared out on their own.
        both.extend(starts(&[0; 6]).into_iter().map(|s| Start {
            topic: "dead letters".into(),
            kind: TopicKind::DeadLetters,
            ..s
        }));
        let lane_of = lanes_by_backlog(&both, 2);
        for topic in ["ticks", "dead letters"] {
            let on_first = both
                .iter()
                .zip(&lane_of)
                .filter(|(s, lane)| s.topic == topic && **lane == 0)
                .count();
            assert_eq!(on_first, 3, "{topic}: {lane_of:?}");
        }
    }

    #[test]
    fn one_writer_takes_every_partition_and_a_partition_behind_its_start_counts_as_none() {
        let mut behind = starts(&[5, 0, 9]);
        behind[1].latest = behind[1].start - 3;
        assert_eq!(lanes_by_backlog(&behind, 1), [0, 0, 0]);
        let lane_of = lanes_by_backlog(&behind, 2);
        assert_ne!(lane_of[0], lane_of[2], "{lane_of:?}");
    }
}
