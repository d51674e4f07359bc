//! The JSON API: symbols, quotes (with sparklines) and bars (with indicators), checked
//! parameters (400 with the reason), and `/healthz`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::TimeDelta;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use serde_json::json;

use super::AppState;
use crate::rollup::{self, Bar, Indicators, Interval, LOOKBACK, VolumeSum};
use crate::store::Quote;

/// Closes in a watchlist sparkline.
const SPARKLINE_BARS: usize = 30;
const DEFAULT_BARS: usize = 500;
const MAX_BARS: usize = 5000;
/// One-minute bars read at most to build longer bars.
const MAX_MINUTES_READ: usize = 200_000;

/// An error answered as `{"error": "..."}`.
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        tracing::warn!("API request failed: {e:#}");
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable".into(),
        )
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// A bar as the API shows it: prices exact (decimal strings), indicators as numbers.
#[derive(Debug, Serialize)]
pub struct BarJson {
    /// Start of the bar, Unix seconds (UTC).
    time: i64,
    open: Decimal,
    high: Decimal,
    low: Decimal,
    close: Decimal,
    volume: VolumeSum,
    sma_20: Option<f64>,
    sma_50: Option<f64>,
    ema_20: Option<f64>,
    vwap: Option<f64>,
}

impl BarJson {
    pub fn new(bar: &Bar, indicators: &Indicators) -> Self {
        let float = |d: Option<Decimal>| d.and_then(|d| d.to_f64());
        BarJson {
            time: bar.start.timestamp(),
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
            sma_20: float(indicators.sma_20),
            sma_50: float(indicators.sma_50),
            ema_20: Some(indicators.ema_20).filter(|v| v.is_finite()),
            vwap: float(indicators.vwap),
        }
    }
}

#[derive(Serialize)]
pub struct QuoteJson {
    #[serde(flatten)]
    quote: Quote,
    sparkline: Vec<f64>,
}

#[derive(Serialize)]
pub struct BarsJson {
    symbol: String,
    interval: &'static str,
    bars: Vec<BarJson>,
}

pub async fn symbols(State(state): State<Arc<AppState>>) -> ApiResult<Vec<String>> {
    let quotes = state.store.quotes().await?;
    Ok(Json(quotes.into_iter().map(|q| q.symbol).collect()))
}

pub async fn quotes(State(state): State<Arc<AppState>>) -> ApiResult<Vec<QuoteJson>> {
    let mut out = Vec::new();
    for quote in state.store.quotes().await? {
        let closes = state
            .store
            .recent_closes(&quote.symbol, SPARKLINE_BARS)
            .await?;
        out.push(QuoteJson {
            sparkline: closes.iter().filter_map(|c| c.to_f64()).collect(),
            quote,
        });
    }
    Ok(Json(out))
}

/// Alerts `/api/alerts` returns when no limit is given, and at most.
const DEFAULT_ALERTS: usize = 50;
const MAX_ALERTS: usize = 1000;

/// `GET /api/alerts?limit=50`: the newest alerts, newest first.
pub async fn alerts(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Vec<crate::store::StoredAlert>> {
    if let Some(unknown) = params.keys().find(|k| k.as_str() != "limit") {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {unknown:?} (limit)"
        )));
    }
    let limit = limit_param(&params, DEFAULT_ALERTS, MAX_ALERTS)?;
    Ok(Json(state.store.alerts(limit).await?))
}

/// `GET /api/bars?symbol=HDFC&interval=1m&limit=500`: the newest bars, oldest first.
pub async fn bars(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<BarsJson> {
    if let Some(unknown) = params
        .keys()
        .find(|k| !["symbol", "interval", "limit"].contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {unknown:?} (symbol, interval, limit)"
        )));
    }
    let symbol = params
        .get("symbol")
        .ok_or_else(|| ApiError::bad_request("symbol is required"))?;
    if symbol.is_empty() || symbol.chars().count() > 64 || symbol.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "symbol must be 1-64 characters without control characters",
        ));
    }
    let interval = match params.get("interval") {
        None => Interval::M1,
        Some(text) => Interval::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "interval {text:?} is not one of 1m, 5m, 15m, 1h, 1d"
            ))
        })?,
    };
    let limit = limit_param(&params, DEFAULT_BARS, MAX_BARS)?;
    if !state.store.has_symbol(symbol).await? {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no bars for symbol {symbol:?}"),
        ));
    }
    let bars = match interval {
        Interval::M1 => state
            .store
            .bars_1m(symbol, None, limit)
            .await?
            .iter()
            .map(|(bar, indicators)| BarJson::new(bar, indicators))
            .collect(),
        _ => longer_bars(&state, symbol, interval, limit).await?,
    };
    Ok(Json(BarsJson {
        symbol: symbol.clone(),
        interval: interval.name(),
        bars,
    }))
}

/// Bars of a longer interval, built from the stored one-minute bars, with indicators computed
/// on them (warmed up over [`LOOKBACK`] bars before the first one shown).
async fn longer_bars(
    state: &AppState,
    symbol: &str,
    interval: Interval,
    limit: usize,
) -> anyhow::Result<Vec<BarJson>> {
    let Some((newest, _)) = state.store.bars_1m(symbol, None, 1).await?.pop() else {
        return Ok(Vec::new());
    };
    let from = interval.floor(newest.start)
        - TimeDelta::minutes(interval.minutes() * (limit + LOOKBACK - 1) as i64);
    let minutes = state
        .store
        .bars_1m(symbol, Some(from), MAX_MINUTES_READ)
        .await?;
    let truncated = minutes.len() == MAX_MINUTES_READ;
    let mut bars = rollup::bucket(minutes.into_iter().map(|(bar, _)| bar), interval)?;
    if truncated && !bars.is_empty() {
        // Its first minutes were not read.
        bars.remove(0);
    }
    let indicators = rollup::indicators(&bars)?;
    let skip = bars.len().saturating_sub(limit);
    Ok(bars
        .iter()
        .zip(&indicators)
        .skip(skip)
        .map(|(bar, indicators)| BarJson::new(bar, indicators))
        .collect())
}

/// `GET /healthz`: 200 `ok` when MySQL answers and no stage of `up` is down; 503 `degraded`
/// while a stage is down (restarting), 503 `unavailable` when MySQL does not answer.
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let stages = state
        .stages
        .as_ref()
        .map(|b| b.snapshot())
        .unwrap_or_default();
    let mysql = sqlx::query("SELECT 1").execute(&state.store.pool).await;
    let degraded = stages.values().any(|s| s.is_down());
    let (code, status) = match (&mysql, degraded) {
        (Err(_), _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (Ok(_), true) => (StatusCode::SERVICE_UNAVAILABLE, "degraded"),
        (Ok(_), false) => (StatusCode::OK, "ok"),
    };
    let mysql = match mysql {
        Ok(_) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    (
        code,
        Json(json!({ "status": status, "mysql": mysql, "stages": stages })),
    )
        .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "no such page".into())
}

/// The `limit` parameter: `default` when absent, else a number from 1 to `max`.
fn limit_param(
    params: &HashMap<String, String>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match params.get("limit") {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("limit {text:?} is not a number from 1 to {max}"))
            }),
    }
}
