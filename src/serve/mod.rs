//! Serve: the HTTP face of the appliance — the dashboard page, a JSON API, Server-Sent Events
//! that push bars and quotes as they commit, `/healthz` and `/metrics`. It reads only what is
//! committed in MySQL, so it works the same beside any processor (this one, another process,
//! or the Spark job). Connections and event streams are bounded (`connections`, `events`).

mod api;
mod assets;
mod connections;
mod events;
mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::Config;
use crate::health::StageBoard;
use crate::process::ProcessStats;
use crate::store::Store;

pub use metrics::Sources as MetricSources;

/// What the handlers share.
struct AppState {
    store: Store,
    feed: events::Feed,
    metrics: MetricSources,
    /// The stages of the `up` serving this, when it is one.
    stages: Option<StageBoard>,
}

/// Binds the configured address (so callers can print it before serving).
pub async fn bind(config: &Config) -> Result<TcpListener> {
    match config.serve.port {
        Some(port) => {
            let address = format!("{}:{port}", config.serve.bind);
            TcpListener::bind(&address)
                .await
                .with_context(|| format!("serving on {address} (change serve.port or serve.bind)"))
        }
        None => bind_first_free(config, &[crate::config::DEFAULT_DASHBOARD_PORT]).await,
    }
}

/// Listens on the first of `ports` (0s skipped) that is free, else on a free port.
pub async fn bind_first_free(config: &Config, ports: &[u16]) -> Result<TcpListener> {
    for port in ports.iter().filter(|p| **p != 0) {
        if let Ok(listener) = TcpListener::bind((config.serve.bind.as_str(), *port)).await {
            return Ok(listener);
        }
    }
    let address = format!("{}:0", config.serve.bind);
    TcpListener::bind(&address)
        .await
        .with_context(|| format!("serving on {address} (change serve.bind)"))
}

/// The dashboard's address for people: `localhost` for loopback.
pub fn url(listener: &TcpListener) -> String {
    match listener.local_addr() {
        Ok(SocketAddr::V4(a)) if a.ip().is_loopback() => format!("http://localhost:{}/", a.port()),
        Ok(a) => format!("http://{a}/"),
        Err(_) => "(unknown address)".into(),
    }
}

/// Serves until `cancel` fires. `broker` and `stats` add lag and processor figures to
/// `/metrics` when available; `stages` puts the health of `up`'s stages in `/healthz`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    store: Store,
    broker: Option<Broker>,
    stats: Option<Arc<ProcessStats>>,
    stages: Option<StageBoard>,
    cancel: CancellationToken,
) -> Result<()> {
    let feed = events::Feed::start(store.clone(), config.serve.max_streams, cancel.clone());
    let state = Arc::new(AppState {
        store,
        feed,
        metrics: MetricSources {
            broker,
            topics: vec![config.topics.ticks.clone(), config.topics.dlq.clone()],
            stats,
        },
        stages,
    });
    let app = Router::new()
        .merge(assets::routes())
        .route("/api/symbols", get(api::symbols))
        .route("/api/quotes", get(api::quotes))
        .route("/api/bars", get(api::bars))
        .route("/api/alerts", get(api::alerts))
        .route("/api/events", get(events::stream))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(metrics::scrape))
        .fallback(api::not_found)
        .with_state(state);
    connections::serve(listener, app, config.serve.max_connections, cancel).await;
    Ok(())
}
