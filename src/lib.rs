//! tickpipe: a real-time stock market pipeline in one binary.
//!
//! ```text
//! CSV files ─▶ ingest ─▶ Kafka (stock_ticks, stock_ticks.dlq) ─▶ process ─▶ MySQL ─▶ serve
//!          └──────────── supervisor: starts, health-checks, restarts, stops ─────────────┘
//! ```
//! Data flows one way through the modules; every stage depends only on [`tick`], [`rollup`],
//! [`config`], [`broker`] and [`store`] (and `serve` on the processor's live counters).

pub mod alerts;
pub mod appliance;
pub mod bench;
pub mod broker;
pub mod config;
pub mod generate;
pub mod health;
pub mod ingest;
pub mod proc_stat;
pub mod process;
pub mod retry;
pub mod rollup;
pub mod serve;
pub mod state;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod tick;
