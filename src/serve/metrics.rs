//! `/metrics` in the Prometheus (OpenMetrics) text format: lag per partition from the broker's
//! watermarks and the offsets committed in MySQL, refused records, the age of the newest
//! commit, and, when the processor runs in this process (`up`), its counters and batch commit
//! latency histogram.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use super::AppState;
use crate::broker::Broker;
use crate::process::ProcessStats;
use crate::status;

/// Where the figures come from besides MySQL.
pub struct Sources {
    pub broker: Option<Broker>,
    pub topics: Vec<String>,
    pub stats: Option<Arc<ProcessStats>>,
}

type Labels = Vec<(String, String)>;

pub async fn scrape(State(state): State<Arc<AppState>>) -> Response {
    match collect(&state).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}\n")).into_response(),
    }
}

async fn collect(state: &AppState) -> anyhow::Result<String> {
    let mut registry = Registry::with_prefix("tickpipe");
    let sources = &state.metrics;

    if let Some(stats) = &sources.stats {
        let counter =
            |v: &std::sync::atomic::AtomicU64| ConstCounter::new(v.load(Ordering::Relaxed));
        registry.register(
            "records_fetched",
            "Records the processor fetched from Kafka",
            counter(&stats.fetched),
        );
        registry.register(
            "rows_written",
            "Rows the processor committed to stock_data",
            counter(&stats.rows),
        );
        registry.register(
            "records_rejected",
            "Refused records the processor committed to rejected_ticks",
            counter(&stats.rejected),
        );
        registry.register(
            "batches",
            "Transactions the processor committed",
            counter(&stats.batches),
        );
        registry.register(
            "batch_commit_seconds",
            "Time to commit one batch (rows, rollups, offsets) to MySQL",
            stats.commit_seconds.clone(),
        );
    }

    registry.register(
        "event_polls",
        "Polls of latest_quotes for live dashboards (none while no dashboard listens)",
        ConstCounter::new(state.feed.polls.load(Ordering::Relaxed)),
    );
    registry.register(
        "event_streams",
        "Live event streams (open dashboards)",
        ConstGauge::new(state.feed.open_streams() as i64),
    );

    // Counted while small, the table statistics' estimate beyond: a scrape stays quick.
    let counts = state.store.counts(false).await?;
    registry.register(
        "stored_rows",
        "Rows in stock_data (counted up to 200,000, estimated from table statistics beyond)",
        ConstGauge::new(counts.stored.rows),
    );
    registry.register(
        "rejected_rows",
        "Rows in rejected_ticks (counted up to 200,000, estimated from table statistics beyond)",
        ConstGauge::new(counts.rejected.rows),
    );
    let quotes = state.store.quotes().await?;
    registry.register(
        "symbols",
        "Symbols with a latest quote",
        ConstGauge::new(quotes.len() as i64),
    );
    if let Some(newest) = quotes.iter().map(|q| q.updated_at).max() {
        let age = (chrono::Utc::now() - newest).as_seconds_f64().max(0.0);
        registry.register(
            "newest_commit_age_seconds",
            "Seconds since the newest latest_quotes row was committed",
            ConstGauge::new(age),
        );
    }

    if let Some(broker) = &sources.broker {
        let lag: Family<Labels, Gauge> = Family::default();
        let mut total = 0;
        for topic in &sources.topics {
            let committed = state.store.offsets(topic).await?;
            for p in status::partitions(broker, topic, &committed).await? {
                total += p.lag;
                lag.get_or_create(&vec![
                    ("topic".into(), p.topic),
                    ("partition".into(), p.partition.to_string()),
                ])
                .set(p.lag);
            }
        }
        registry.register(
            "partition_lag_records",
            "Records in Kafka not yet committed to MySQL, per partition",
            lag,
        );
        registry.register(
            "lag_records",
            "Records in Kafka not yet committed to MySQL",
            ConstGauge::new(total),
        );
    }

    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}
