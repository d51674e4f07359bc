//! MySQL: connecting with a deadline, the schema (migrations in `sql/`), the database users,
//! the exactly-once batch write with its rollups (`batch`), the leases by which processors share
//! a pipeline's work (`lease`), errors by kind (`error`), and the read queries.

mod accounts;
mod alerts;
mod batch;
mod binlog;
mod bulk;
mod capture;
mod error;
mod infile;
mod lease;
mod read;
mod rollups;

pub use accounts::{
    ensure_database_and_users, execute_admin, grant_bi_reads, grant_binlog_reading,
    native_password_hash,
};
pub use alerts::StoredAlert;
pub use batch::{Batch, Committed, Incident, Reached, load_file};
pub use binlog::Position;
pub use capture::Capture;
pub use error::StoreError;
pub use lease::{Holder, LEASE_TTL, Member, Processor, RENEW_EVERY, Role, Seen, Sharing, Unit};
pub use read::Quote;
pub use rollups::{Refreshed, bar_file};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio_util::sync::CancellationToken;

use crate::retry::{Backoff, retry};
use error::{server_error_number, timed};
use serde::{Deserialize, Serialize};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Executor, Row};

/// The tables the pipeline fills (what a fresh start empties).
pub const PIPELINE_TABLES: [&str; 8] = [
    "stock_data",
    "alerts",
    "rejected_ticks",
    "pipeline_offsets",
    "bars_1m",
    "latest_quotes",
    "pipeline_incidents",
    // Last: emptying stock_data marks every symbol stale.
    "rollup_pending",
];

/// Where a MySQL server is and who connects.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MysqlTarget {
    pub host: String,
    pub port: u16,
    /// Unix socket of a managed server (preferred over TCP when set).
    pub socket: Option<PathBuf>,
    pub database: String,
    pub user: String,
    #[serde(skip_serializing)]
    #[serde(default)]
    pub password: String,
}

impl MysqlTarget {
    /// Reads `mysql://user:password@host:port/database` (`?socket=/path` for a local socket).
    pub fn from_url(text: &str) -> Result<Self> {
        let url = url::Url::parse(text).context("mysql.url is not a valid mysql:// URL")?;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let database = url.path().trim_start_matches('/');
        if database.is_empty() {
            bail!("mysql.url names no database (mysql://user:password@host:3306/stock_market)");
        }
        let socket = url
            .query_pairs()
            .find(|(k, _)| k == "socket")
            .map(|(_, v)| PathBuf::from(v.into_owned()));
        Ok(MysqlTarget {
            host: url.host_str().unwrap_or("localhost").to_string(),
            port: url.port().unwrap_or(3306),
            socket,
            database: decode(database),
            user: decode(url.username()),
            password: decode(url.password().unwrap_or("")),
        })
    }

    fn options(&self, with_database: bool) -> MySqlConnectOptions {
        let mut options = MySqlConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .charset("utf8mb4");
        // An empty password must be sent as none at all (a fresh server's root).
        if !self.password.is_empty() {
            options = options.password(&self.password);
        }
        if let Some(socket) = &self.socket {
            options = options.socket(socket);
        }
        if with_database {
            options = options.database(&self.database);
        }
        options
    }

    /// The same server and database as another user.
    pub fn as_user(&self, user: &str, password: &str) -> Self {
        MysqlTarget {
            user: user.into(),
            password: password.into(),
            ..self.clone()
        }
    }
}

/// Where a partition's processing stands in MySQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOffset {
    pub next: i64,
    /// Kafka's id of the topic the offset belongs to (`None`: written before ids were kept,
    /// or by a broker that reports none).
    pub topic_id: Option<String>,
}

/// A pool of connections to the pipeline's database.
#[derive(Clone)]
pub struct Store {
    pub pool: MySqlPool,
    /// The batch writes' own connections (`bulk`).
    bulk: Arc<bulk::BulkConnections>,
    /// Longest any statement of a batch may take before the batch is abandoned (and retried).
    pub statement_timeout: Duration,
    /// Values per statement, in bytes: half the server's `max_allowed_packet`, at most 4 MiB.
    pub max_statement_bytes: usize,
}

impl Store {
    /// Statement deadline until [`Store::with_statement_timeout`] sets another.
    pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

    /// Connects to the target's database, retrying until `deadline`.
    pub async fn connect(target: &MysqlTarget, deadline: Duration) -> Result<Self> {
        let mut pool = connect_pool(target, true, deadline).await?;
        let skip_binlog = writers_skip_binlog(&pool).await?;
        if skip_binlog {
            pool.close().await;
            pool = connect_pool_skipping_binlog(target, true, deadline, true).await?;
        }
        let packet: i64 = sqlx::query_scalar("SELECT CAST(@@max_allowed_packet AS SIGNED)")
            .fetch_one(&pool)
            .await
            .context("reading max_allowed_packet")?;
        Ok(Store {
            pool,
            bulk: Arc::new(bulk::BulkConnections::new(
                target,
                lease::IDLE_TRANSACTION,
                skip_binlog,
            )),
            statement_timeout: Self::DEFAULT_STATEMENT_TIMEOUT,
            max_statement_bytes: (packet.max(64 * 1024) as usize / 2).min(4 << 20),
        })
    }

    pub fn with_statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// Applies the migrations in `sql/` (embedded in the binary).
    pub async fn migrate(&self) -> Result<()> {
        migrator()
            .run(&self.pool)
            .await
            .context("applying the schema migrations in sql/")
    }

    /// Next offset to read per partition of `topic`, as committed with the rows.
    pub async fn offsets(&self, topic: &str) -> Result<BTreeMap<i32, i64>> {
        Ok(self
            .stored_offsets(topic)
            .await?
            .into_iter()
            .map(|(p, stored)| (p, stored.next))
            .collect())
    }

    /// Next offset per partition of `topic`, with the identity of the topic it was read from.
    pub async fn stored_offsets(&self, topic: &str) -> Result<BTreeMap<i32, StoredOffset>> {
        let rows = sqlx::query(
            "SELECT `partition`, next_offset, topic_id FROM pipeline_offsets WHERE topic = ?",
        )
        .bind(topic)
        .fetch_all(&self.pool)
        .await
        .context("reading pipeline_offsets")?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    r.try_get::<i32, _>(0)?,
                    StoredOffset {
                        next: r.try_get(1)?,
                        topic_id: r.try_get(2)?,
                    },
                ))
            })
            .collect()
    }

    /// Rows in `stock_data` and `rejected_ticks`: counted when `exact` or when the table
    /// statistics say a table is small (a count then takes milliseconds), else the table
    /// statistics' estimate — a `COUNT(*)` of 10 M rows takes seconds.
    pub async fn counts(&self, exact: bool) -> Result<Counts> {
        let estimated = sqlx::query(
            "SELECT TABLE_NAME, CAST(COALESCE(TABLE_ROWS, 0) AS SIGNED) \
             FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('stock_data', 'rejected_ticks')",
        )
        .fetch_all(&self.pool)
        .await
        .context("reading table statistics")?;
        let estimate = |table: &str| {
            estimated
                .iter()
                .find(|row| row.get::<String, _>(0) == table)
                .map(|row| row.get::<i64, _>(1))
                .unwrap_or(0)
        };
        let count = async |table: &'static str| -> Result<Count> {
            let estimate = estimate(table);
            if !exact && estimate > COUNTED_UP_TO {
                return Ok(Count {
                    rows: estimate,
                    exact: false,
                });
            }
            let rows: i64 =
                sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(&self.pool)
                    .await
                    .with_context(|| format!("counting {table}"))?;
            Ok(Count { rows, exact: true })
        };
        Ok(Counts {
            stored: count("stock_data").await?,
            rejected: count("rejected_ticks").await?,
        })
    }
}

/// Tables the statistics call this small are counted row by row (milliseconds).
const COUNTED_UP_TO: i64 = 200_000;

/// A table's rows, counted or estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Count {
    pub rows: i64,
    /// Counted (`COUNT(*)`), not the table statistics' estimate.
    pub exact: bool,
}

/// Rows in `stock_data` and `rejected_ticks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub stored: Count,
    pub rejected: Count,
}

/// The schema migrations in `sql/`, embedded in the binary, oldest first.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./sql")
}

/// Whether the server's binary log is the appliance's own, which tickpipe's sessions leave
/// (`rollup_capture`).
async fn writers_skip_binlog(pool: &MySqlPool) -> Result<bool> {
    let skip = sqlx::query_scalar("SELECT Writers_Skip_Binlog FROM rollup_capture WHERE Id = 1")
        .fetch_optional(pool)
        .await;
    match skip {
        Ok(skip) => Ok(skip.unwrap_or(false)),
        // Before the migrations made it; or a reader (the BI user) that may not see it, and
        // writes nothing.
        Err(e) if matches!(server_error_number(&e), Some(NO_SUCH_TABLE | TABLE_DENIED)) => {
            Ok(false)
        }
        Err(e) => Err(anyhow::Error::new(e).context("reading rollup_capture")),
    }
}

/// ER_NO_SUCH_TABLE, ER_TABLEACCESS_DENIED_ERROR.
const NO_SUCH_TABLE: u16 = 1146;
const TABLE_DENIED: u16 = 1142;

/// Connects a pool, retrying until the server answers `SELECT 1` or `deadline` passes. A
/// refusal (wrong credentials, an unknown database) is not retried: it will not fix itself.
pub async fn connect_pool(
    target: &MysqlTarget,
    with_database: bool,
    deadline: Duration,
) -> Result<MySqlPool> {
    connect_pool_skipping_binlog(target, with_database, deadline, false).await
}

/// [`connect_pool`], whose sessions leave the binary log when `skip_binlog` (the appliance's
/// log, which only the rollups' capture reads; a session not allowed to is logged).
pub async fn connect_pool_skipping_binlog(
    target: &MysqlTarget,
    with_database: bool,
    deadline: Duration,
    skip_binlog: bool,
) -> Result<MySqlPool> {
    let where_ = match &target.socket {
        Some(socket) => format!("socket {}", socket.display()),
        None => format!("{}:{}", target.host, target.port),
    };
    // One attempt never outlasts the whole wait.
    let per_attempt = deadline.clamp(Duration::from_millis(500), Duration::from_secs(10));
    let attempt = || async {
        let pool = timed(
            "connecting",
            per_attempt,
            MySqlPoolOptions::new()
                // Opened as needed, up to what a processor can use at once: reads and short
                // transactions (the stale symbols listed, the membership's renewal, the API's
                // reads); the batch writes and the rollups' ranges and recomputes have their
                // own (`bulk`).
                .max_connections(22)
                .acquire_timeout(Duration::from_secs(10))
                // Every session works in UTC, whatever the server's zone.
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        // UTC; and tickpipe's writers mark a batch's stale rollups themselves,
                        // once per symbol (stock_data's trigger marks every other writer's rows).
                        conn.execute("SET time_zone = '+00:00', @tickpipe_marks_rollups = 1")
                            .await?;
                        // A transaction of ours left idle (a paused process) ends, releasing
                        // its locks. MariaDB only: MySQL has no such setting (1193).
                        let idle = format!(
                            "SET SESSION idle_transaction_timeout = {}",
                            lease::IDLE_TRANSACTION.as_secs()
                        );
                        match conn.execute(AssertSqlSafe(idle)).await {
                            Err(e) if server_error_number(&e) == Some(UNKNOWN_VARIABLE) => {}
                            other => {
                                other?;
                            }
                        }
                        if skip_binlog {
                            match conn.execute("SET SESSION sql_log_bin = 0").await {
                                Err(e) if server_error_number(&e) == Some(NOT_ALLOWED) => {}
                                other => {
                                    other?;
                                }
                            }
                        }
                        Ok(())
                    })
                })
                .connect_with(target.options(with_database)),
        )
        .await?;
        timed(
            "SELECT 1",
            per_attempt,
            sqlx::query("SELECT 1").execute(&pool),
        )
        .await?;
        Ok::<_, StoreError>(pool)
    };
    retry(
        &format!("connecting to MySQL at {where_}"),
        Backoff::startup(deadline),
        &CancellationToken::new(),
        attempt,
        StoreError::verdict,
    )
    .await
    .map_err(|failure| {
        let error = failure.into_inner();
        let message = if matches!(error, StoreError::Permanent { .. }) {
            format!("MySQL at {where_} refused user {}", target.user)
        } else {
            format!("MySQL at {where_} did not answer SELECT 1 within {deadline:?}")
        };
        anyhow::Error::new(error).context(message)
    })
}

/// ER_UNKNOWN_SYSTEM_VARIABLE.
pub(super) const UNKNOWN_VARIABLE: u16 = 1193;

/// ER_SPECIFIC_ACCESS_DENIED_ERROR (a session variable this account may not set).
pub(super) const NOT_ALLOWED: u16 = 1227;

/// Whether an error (anywhere in its chain) is MySQL refusing the login: access denied.
pub fn is_access_denied(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<StoreError>(),
            Some(error @ StoreError::Permanent { .. }) if error.number() == Some(ACCESS_DENIED)
        )
    })
}

/// ER_ACCESS_DENIED_ERROR.
const ACCESS_DENIED: u16 = 1045;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_is_read_with_its_parts() {
        let t = MysqlTarget::from_url("mysql://app:p%40ss@db.example:3307/stock_market").unwrap();
        assert_eq!(t.host, "db.example");
        assert_eq!(t.port, 3307);
        assert_eq!(t.user, "app");
        assert_eq!(t.password, "p@ss");
        assert_eq!(t.database, "stock_market");
    }
}
