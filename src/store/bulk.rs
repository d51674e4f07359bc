//! The batch writes' own connections, through mysql_async: sqlx cannot answer the file request
//! of `LOAD DATA LOCAL INFILE`, and MariaDB takes rows that way for ~2.9 µs of its CPU each
//! against ~4.65 µs as multi-row prepared INSERTs, whose per-parameter work dominated its
//! profile (README, "What bounds the processor"). The file is the batch, sent from memory:
//! nothing on disk, and a connection answers the server's file request only for the statement
//! that asked.
//!
//! A writer takes a connection for one transaction and gives it back after the commit; a
//! connection whose statement failed or ran out of time is dropped, never reused.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Value};

use super::MysqlTarget;
use super::error::StoreError;

/// Connections kept idle between batches: one per writer (at most 16).
const KEPT_IDLE: usize = 16;

pub(super) struct BulkConnections {
    opts: Opts,
    idle: Mutex<Vec<Conn>>,
    idle_transaction: Duration,
    /// Cleared once the server refuses `LOAD DATA LOCAL INFILE` (`local_infile` off): the rows
    /// then go in as multi-row INSERTs.
    load_data: AtomicBool,
}

impl BulkConnections {
    pub(super) fn new(target: &MysqlTarget, idle_transaction: Duration) -> Self {
        let mut opts = OptsBuilder::default()
            .user(Some(&target.user))
            .db_name(Some(&target.database))
            // Every session in UTC; tickpipe's writers mark a batch's stale rollups themselves
            // (stock_data's trigger marks every other writer's rows); strict, whatever the
            // server's default mode: a value that does not fit is refused, never stored
            // clipped (what the batch's INSERTs rely on to find the rows MySQL refuses).
            .setup(vec![
                "SET NAMES utf8mb4, time_zone = '+00:00', @tickpipe_marks_rollups = 1, \
                 sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'STRICT_ALL_TABLES')",
            ])
            .stmt_cache_size(Some(128))
            .tcp_nodelay(true);
        if !target.password.is_empty() {
            opts = opts.pass(Some(&target.password));
        }
        opts = match &target.socket {
            Some(socket) => opts
                .socket(Some(socket.to_string_lossy()))
                .ip_or_hostname("localhost"),
            None => opts
                .ip_or_hostname(&target.host)
                .tcp_port(target.port)
                .prefer_socket(false),
        };
        BulkConnections {
            opts: opts.into(),
            idle: Mutex::new(Vec::new()),
            idle_transaction,
            load_data: AtomicBool::new(true),
        }
    }

    /// An idle connection, or a new one.
    pub(super) async fn take(&self, deadline: Duration) -> Result<Conn, StoreError> {
        if let Some(conn) = self.idle.lock().expect("no panic holds it").pop() {
            return Ok(conn);
        }
        let mut conn = within(
            "connecting to MySQL",
            deadline,
            Conn::new(self.opts.clone()),
        )
        .await?;
        // A transaction of ours left idle (a paused process) ends, releasing its locks.
        // MariaDB only: MySQL has no such setting.
        let idle = format!(
            "SET SESSION idle_transaction_timeout = {}",
            self.idle_transaction.as_secs()
        );
        match exec(
            &mut conn,
            "connecting to MySQL",
            deadline,
            &idle,
            Vec::new(),
        )
        .await
        {
            Err(e) if e.number() == Some(super::UNKNOWN_VARIABLE) => {}
            other => {
                other?;
            }
        }
        Ok(conn)
    }

    /// Drops the idle connections: one broke, so the server restarted or the network failed,
    /// and the others are likely dead too.
    pub(super) fn forget_idle(&self) {
        self.idle.lock().expect("no panic holds it").clear();
    }

    /// A connection whose transaction ended (committed) goes back for the next batch.
    pub(super) fn give_back(&self, conn: Conn) {
        let mut idle = self.idle.lock().expect("no panic holds it");
        if idle.len() < KEPT_IDLE {
            idle.push(conn);
        }
    }

    pub(super) fn load_data_allowed(&self) -> bool {
        self.load_data.load(Ordering::Relaxed)
    }

    pub(super) fn refuse_load_data(&self) {
        if self.load_data.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                "MySQL refuses LOAD DATA LOCAL INFILE (local_infile is off): rows go in as \
                 multi-row INSERTs, at about half the rate"
            );
        }
    }
}

/// What a statement did.
pub(super) struct Done {
    pub warnings: u16,
}

/// Runs `sql` with `params` (none: the text protocol) under `deadline`.
pub(super) async fn exec(
    conn: &mut Conn,
    what: &'static str,
    deadline: Duration,
    sql: &str,
    params: Vec<Value>,
) -> Result<Done, StoreError> {
    if params.is_empty() {
        within(what, deadline, conn.query_drop(sql)).await?;
    } else {
        within(what, deadline, conn.exec_drop(sql, params)).await?;
    }
    Ok(Done {
        warnings: conn.get_warnings(),
    })
}

/// Runs `LOAD DATA LOCAL INFILE` `sql`, answering the server's file request with `data`, sent
/// in packets of at most `packet` bytes (a packet past the server's `max_allowed_packet` is
/// refused).
pub(super) async fn load_data(
    conn: &mut Conn,
    what: &'static str,
    deadline: Duration,
    sql: &str,
    data: Vec<u8>,
    packet: usize,
) -> Result<Done, StoreError> {
    use futures::StreamExt;
    let data = bytes::Bytes::from(data);
    let packet = packet.max(1);
    let packets: Vec<std::io::Result<bytes::Bytes>> = (0..data.len())
        .step_by(packet)
        .map(|start| Ok(data.slice(start..(start + packet).min(data.len()))))
        .collect();
    conn.set_infile_handler(async move { Ok(futures::stream::iter(packets).boxed()) });
    let done = exec(conn, what, deadline, sql, Vec::new()).await;
    if done.is_err() {
        // A refused load leaves the handler, and the batch it holds, on the connection.
        conn.set_infile_handler(async { Ok(futures::stream::empty().boxed()) });
    }
    done
}

/// The rows a SELECT returns, as `T`.
pub(super) async fn select<T: mysql_async::prelude::FromRow + Send + 'static>(
    conn: &mut Conn,
    what: &'static str,
    deadline: Duration,
    sql: &str,
    params: Vec<Value>,
) -> Result<Vec<T>, StoreError> {
    within(what, deadline, conn.exec(sql, params)).await
}

async fn within<T>(
    what: &'static str,
    deadline: Duration,
    call: impl Future<Output = mysql_async::Result<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(StoreError::classify_async(what, e)),
        Err(_) => Err(StoreError::Timeout { what, deadline }),
    }
}
