//! `tickpipe status`: is the broker up, is MySQL up, and how far the processor is behind
//! (per partition: the topic's high watermark against the offset committed with the rows).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use sqlx::Row;

use crate::broker::Broker;
use crate::config::Config;
use crate::health::{StageBoard, StageHealth, StageState};
use crate::state::{Endpoints, StateDir};
use crate::store::Store;

#[derive(Debug, Serialize)]
pub struct Status {
    pub broker: BrokerStatus,
    pub mysql: MysqlStatus,
    pub partitions: Vec<PartitionStatus>,
    /// Records in the topics not yet committed to MySQL.
    pub lag: Option<i64>,
    /// Rows in `stock_data`, counted; none when only estimated (a large table, without
    /// `--exact`).
    pub rows: Option<i64>,
    /// The table statistics' estimate of `stock_data`'s rows when they were not counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_estimated: Option<i64>,
    /// Rows in `rejected_ticks`, counted; none when only estimated.
    pub rejected: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_estimated: Option<i64>,
    /// The stages of a running `up` (empty when none runs).
    pub stages: BTreeMap<String, StageHealth>,
    /// The processors sharing the ticks topic's work, and what each holds.
    pub processors: Vec<crate::store::Processor>,
    /// The latest things that went wrong with partitions themselves, newest first.
    pub incidents: Vec<IncidentStatus>,
}

#[derive(Debug, Serialize)]
pub struct IncidentStatus {
    pub at: chrono::DateTime<chrono::Utc>,
    pub topic: String,
    pub partition: i32,
    pub kind: String,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct BrokerStatus {
    pub bootstrap: String,
    pub healthy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MysqlStatus {
    pub host: String,
    pub port: u16,
    pub socket: Option<String>,
    pub database: String,
    pub healthy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    pub high_watermark: i64,
    pub committed: i64,
    pub lag: i64,
}

impl Status {
    /// Both services answer and no stage is down.
    pub fn healthy(&self) -> bool {
        self.broker.healthy && self.mysql.healthy && !self.degraded()
    }

    /// Whether a stage of `up` is down (failed, waiting to restart).
    pub fn degraded(&self) -> bool {
        self.stages.values().any(StageHealth::is_down)
    }
}

/// Per partition of `topic`: its high watermark, the next offset `committed` in MySQL (the
/// earliest still in Kafka when none is), and the records between them.
pub async fn partitions(
    broker: &Broker,
    topic: &str,
    committed: &BTreeMap<i32, i64>,
) -> Result<Vec<PartitionStatus>> {
    Ok(broker
        .watermarks(topic)
        .await?
        .into_iter()
        .map(|(partition, earliest, high)| {
            let done = committed.get(&partition).copied().unwrap_or(earliest);
            PartitionStatus {
                topic: topic.to_string(),
                partition,
                high_watermark: high,
                committed: done,
                lag: (high - done).max(0),
            }
        })
        .collect())
}

/// Collects the status; a service that does not answer within a few seconds is reported down.
/// Row counts of large tables are estimates unless `exact`.
pub async fn collect(config: &Config, exact: bool) -> Result<Status> {
    let endpoints = Endpoints::resolve(config)?;
    let deadline = Duration::from_secs(5);
    let broker = Broker::connect(&endpoints.broker, deadline).await;
    let store = Store::connect(&endpoints.mysql, deadline).await;
    let target = &endpoints.mysql;
    let mut status = Status {
        broker: BrokerStatus {
            bootstrap: endpoints.broker.bootstrap.clone(),
            healthy: false,
            error: None,
        },
        mysql: MysqlStatus {
            host: if target.host == "localhost" {
                "127.0.0.1".into()
            } else {
                target.host.clone()
            },
            port: target.port,
            socket: target.socket.as_ref().map(|s| s.display().to_string()),
            database: target.database.clone(),
            healthy: store.is_ok(),
            error: store.as_ref().err().map(|e| format!("{e:#}")),
        },
        partitions: Vec::new(),
        lag: None,
        rows: None,
        rows_estimated: None,
        rejected: None,
        rejected_estimated: None,
        stages: StageBoard::read(&StateDir::new(&config.state_dir).stages_file())
            .unwrap_or_default(),
        processors: Vec::new(),
        incidents: Vec::new(),
    };
    if let Ok(store) = &store {
        if let Ok(counts) = store.counts(exact).await {
            let split = |count: crate::store::Count| {
                if count.exact {
                    (Some(count.rows), None)
                } else {
                    (None, Some(count.rows))
                }
            };
            (status.rows, status.rows_estimated) = split(counts.stored);
            (status.rejected, status.rejected_estimated) = split(counts.rejected);
        }
        status.incidents = recent_incidents(store).await.unwrap_or_default();
        status.processors = store
            .processors(&config.topics.ticks)
            .await
            .unwrap_or_default();
    }
    let broker = match broker {
        Ok(broker) => broker,
        Err(e) => {
            status.broker.error = Some(format!("{e:#}"));
            return Ok(status);
        }
    };
    let mut lag = 0;
    for topic in [&config.topics.ticks, &config.topics.dlq] {
        let committed = match &store {
            Ok(store) => store.offsets(topic).await.unwrap_or_default(),
            Err(_) => Default::default(),
        };
        match partitions(&broker, topic, &committed).await {
            Ok(found) => {
                status.broker.healthy = true;
                lag += found.iter().map(|p| p.lag).sum::<i64>();
                status.partitions.extend(found);
            }
            Err(e) => status.broker.error = Some(format!("{e:#}")),
        }
    }
    if status.broker.healthy && status.mysql.healthy {
        status.lag = Some(lag);
    }
    Ok(status)
}

async fn recent_incidents(store: &Store) -> Result<Vec<IncidentStatus>> {
    let rows = sqlx::query(
        "SELECT happened_at, topic, `partition`, kind, detail FROM pipeline_incidents \
         ORDER BY id DESC LIMIT 10",
    )
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(IncidentStatus {
                at: r.try_get::<chrono::NaiveDateTime, _>(0)?.and_utc(),
                topic: r.try_get(1)?,
                partition: r.try_get(2)?,
                kind: r.try_get(3)?,
                detail: r.try_get(4)?,
            })
        })
        .collect()
}

/// The human-readable form.
pub fn render(status: &Status) -> String {
    let up = |ok: bool| if ok { "up" } else { "DOWN" };
    let mut out = vec![
        format!(
            "broker  {:4}  {}{}",
            up(status.broker.healthy),
            status.broker.bootstrap,
            status
                .broker
                .error
                .as_ref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default()
        ),
        format!(
            "mysql   {:4}  {}:{} database {}{}",
            up(status.mysql.healthy),
            status.mysql.host,
            status.mysql.port,
            status.mysql.database,
            status
                .mysql
                .error
                .as_ref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default()
        ),
    ];
    for (name, stage) in &status.stages {
        let state = match stage.state {
            StageState::Running => "running",
            StageState::Restarting => "DOWN (restarting)",
            StageState::Finished => "finished",
            StageState::Stopped => "stopped",
        };
        out.push(format!(
            "{name:<9} {state}{}{}{}",
            match stage.restarts {
                0 => String::new(),
                n => format!(", {n} restart(s)"),
            },
            stage
                .counts
                .iter()
                .map(|(what, n)| format!(", {what} {n}"))
                .collect::<String>(),
            stage
                .last_error
                .as_ref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        ));
    }
    if status.degraded() {
        out.push("appliance DEGRADED: a stage is down".into());
    }
    let show = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
    let count = |counted: Option<i64>, estimated: Option<i64>| match (counted, estimated) {
        (None, Some(estimate)) => format!("≈ {estimate}"),
        (counted, _) => show(counted),
    };
    let estimated = status.rows_estimated.is_some() || status.rejected_estimated.is_some();
    out.push(format!(
        "rows {}   rejected {}   lag {}{}",
        count(status.rows, status.rows_estimated),
        count(status.rejected, status.rejected_estimated),
        show(status.lag),
        if estimated {
            "   (≈: table statistics; `status --exact` counts)"
        } else {
            ""
        }
    ));
    for p in &status.processors {
        out.push(format!(
            "processor pid {} on {} ({}{}): {}",
            p.pid,
            p.host,
            p.role,
            if p.live { "" } else { ", not renewing" },
            if p.holds.is_empty() {
                "nothing yet".to_string()
            } else {
                p.holds.join(" ")
            }
        ));
    }
    if !status.partitions.is_empty() {
        out.push(format!(
            "{:<24} {:>9} {:>14} {:>12} {:>10}",
            "topic", "partition", "high_watermark", "committed", "lag"
        ));
        for p in &status.partitions {
            out.push(format!(
                "{:<24} {:>9} {:>14} {:>12} {:>10}",
                p.topic, p.partition, p.high_watermark, p.committed, p.lag
            ));
        }
    }
    for incident in &status.incidents {
        out.push(format!(
            "incident {} {}/{} {}: {}",
            incident.at.format("%Y-%m-%d %H:%M:%S"),
            incident.topic,
            incident.partition,
            incident.kind,
            incident.detail
        ));
    }
    out.join("\n")
}
