//! Server-Sent Events: one poller reads `latest_quotes` (one row per symbol) every
//! [`POLL`] while a page listens, and for each symbol whose quote changed publishes the quote
//! and the one-minute bars since its previous quote to every connected page; and the alerts
//! stored since the last poll (on a page's first poll, the newest few: the page drops those it
//! has). Diffing a snapshot
//! of committed rows, not a timestamp watermark, means a transaction that commits late is never
//! missed. Streams are capped (`serve.max_streams`); past the cap a page gets a 503.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::json;
use tokio::sync::{Semaphore, broadcast};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{BroadcastStream, IntervalStream};
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::api::BarJson;
use crate::rollup;
use crate::store::{Quote, Store};

const POLL: Duration = Duration::from_millis(200);
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Bars sent for one symbol in one update at most.
const MAX_BARS_PER_UPDATE: usize = 100;
/// Alerts sent on a page's first poll.
const FIRST_ALERTS: usize = 20;
/// The newest alerts each poll reads: an alert whose transaction commits after newer ones
/// (two recomputes at once) is still among them, and sent then.
const ALERTS_READ: usize = 200;

/// The poller's output, shared by all connected pages.
pub struct Feed {
    tx: broadcast::Sender<Event>,
    /// One permit per live stream.
    streams: Arc<Semaphore>,
    max_streams: usize,
    /// Polls of `latest_quotes` so far (in `/metrics`: none while no page listens).
    pub polls: Arc<AtomicU64>,
    /// Ends the poller and every open stream (else they would hold the server open).
    cancel: CancellationToken,
}

impl Feed {
    /// Starts the poller for at most `max_streams` pages; it stops with `cancel`.
    pub fn start(store: Store, max_streams: usize, cancel: CancellationToken) -> Feed {
        let (tx, _) = broadcast::channel(1024);
        let polls = Arc::new(AtomicU64::new(0));
        let (sender, counted) = (tx.clone(), polls.clone());
        let stop = cancel.clone();
        tokio::spawn(async move {
            // What the listening pages were last sent: nothing yet, so the first poll after
            // a page connects sends every quote (and its bar), and a change committed between
            // the page's load and that poll is not missed.
            let mut seen = Seen::default();
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                // Nobody listens: no queries.
                if sender.receiver_count() == 0 {
                    seen = Seen::default();
                    continue;
                }
                counted.fetch_add(1, Ordering::Relaxed);
                match poll(&store, &sender, &seen).await {
                    Ok(now) => seen = now,
                    Err(e) => tracing::debug!("event poll failed: {e:#}"),
                }
            }
        });
        Feed {
            tx,
            streams: Arc::new(Semaphore::new(max_streams)),
            max_streams,
            polls,
            cancel,
        }
    }
}

impl Feed {
    /// Event streams open now.
    pub fn open_streams(&self) -> usize {
        self.max_streams - self.streams.available_permits()
    }
}

/// What the listening pages were sent: each symbol's quote, and which of the newest alerts
/// (`None` before the first poll).
#[derive(Default)]
struct Seen {
    quotes: BTreeMap<String, Quote>,
    alerts: Option<std::collections::BTreeSet<u64>>,
}

/// Publishes what changed since `seen` and returns the new snapshot.
async fn poll(store: &Store, tx: &broadcast::Sender<Event>, seen: &Seen) -> anyhow::Result<Seen> {
    let mut newest = store.alerts(ALERTS_READ).await?;
    newest.reverse();
    let unsent: Vec<_> = match &seen.alerts {
        // A page's first poll: the newest few (it drops those its load already showed).
        None => newest.iter().rev().take(FIRST_ALERTS).rev().collect(),
        Some(sent) => newest.iter().filter(|a| !sent.contains(&a.id)).collect(),
    };
    for alert in unsent {
        tx.send(event("alert", alert))?;
    }
    let alerts = Some(newest.iter().map(|a| a.id).collect());
    let quotes = poll_quotes(store, tx, &seen.quotes).await?;
    Ok(Seen { quotes, alerts })
}

/// Publishes the quotes (and bars) that changed since `seen`; the new snapshot.
async fn poll_quotes(
    store: &Store,
    tx: &broadcast::Sender<Event>,
    seen: &BTreeMap<String, Quote>,
) -> anyhow::Result<BTreeMap<String, Quote>> {
    let now: BTreeMap<String, Quote> = store
        .quotes()
        .await?
        .into_iter()
        .map(|q| (q.symbol.clone(), q))
        .collect();
    for (symbol, quote) in &now {
        let before = seen.get(symbol);
        if before == Some(quote) {
            continue;
        }
        tx.send(event("quote", &quote))?;
        // The bars from the previous quote's minute on (late rows may also change older
        // bars; the page re-reads those when it reloads).
        let from = before.map_or(quote.timestamp, |b| b.timestamp.min(quote.timestamp));
        let bars = store
            .bars_1m(symbol, Some(rollup::minute(from)), MAX_BARS_PER_UPDATE)
            .await?;
        for (bar, indicators) in &bars {
            let data = json!({ "symbol": symbol, "bar": BarJson::new(bar, indicators) });
            tx.send(event("bar", &data))?;
        }
    }
    Ok(now)
}

fn event(name: &str, data: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().comment("unencodable"))
}

/// `GET /api/events`: quote and bar events as they commit, and a heartbeat with the server's
/// clock (the page measures freshness against it); 503 past `serve.max_streams`.
pub async fn stream(State(state): State<Arc<AppState>>) -> Response {
    match state.feed.streams.clone().try_acquire_owned() {
        Ok(permit) => {
            // The permit lives as long as the stream: a page that goes away frees it.
            let events = live(&state.feed).map(move |event| {
                let _held = &permit;
                event
            });
            Sse::new(events)
                .keep_alive(KeepAlive::default())
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "30")],
            "too many live dashboards on this tickpipe (serve.max_streams); try again later\n",
        )
            .into_response(),
    }
}

fn live(feed: &Feed) -> impl Stream<Item = Result<Event, Infallible>> + use<> {
    let updates = BroadcastStream::new(feed.tx.subscribe())
        // A page too slow to keep up skips what it missed; it still gets the next updates.
        .filter_map(|event| event.ok());
    let heartbeats = IntervalStream::new(tokio::time::interval(HEARTBEAT))
        .map(|_| event("heartbeat", &json!({ "now": chrono::Utc::now() })));
    let events = futures::StreamExt::take_until(
        heartbeats.merge(updates),
        feed.cancel.clone().cancelled_owned(),
    );
    events.map(Ok)
}
