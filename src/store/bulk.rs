//! The batch writes' own connections, through mysql_async: sqlx cannot answer the file request
//! of `LOAD DATA LOCAL INFILE`, and MariaDB takes rows that way for ~2.9 µs of its CPU each
//! against ~4.65 µs as multi-row prepared INSERTs, whose per-parameter work dominated its
//! profile (README, "What bounds the processor"). The file is the batch, sent from memory:
//! nothing on disk, and a connection answers the server's file request only for the statement
//! that asked.
//!
//! The rollup stage recomputes on them too, and loads its bars the same way: a bar costs
//! MariaDB ~5 µs so, against ~7 µs as a prepared multi-row upsert. The files' format is
//! `infile`'s.
//!
//! A writer takes a connection for one transaction and gives it back after the commit; a
//! connection whose statement failed or ran out of time is dropped, never reused.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};
use mysql_async::prelude::{FromValue, Queryable};
use mysql_async::{Conn, Opts, OptsBuilder, Row, Value};

use super::MysqlTarget;
use super::error::StoreError;

/// Connections kept idle between transactions: one per writer (at most 16) and rollup task (2).
const KEPT_IDLE: usize = 18;

/// Bytes per packet of a load file: mysql_async keeps up to 128 of the buffers it sent
/// packets from, each as large as the largest packet it held (1 MiB packets kept ~17 MB more
/// resident in the rollup stage alone); a packet's own cost is a few bytes of header.
pub(super) const LOAD_PACKET: usize = 64 << 10;

/// Server errors that mean `LOAD DATA LOCAL INFILE` is switched off: ER_NOT_ALLOWED_COMMAND
/// (older servers), MySQL 8's ER_CLIENT_LOCAL_FILES_DISABLED, MariaDB's
/// ER_LOAD_INFILE_CAPABILITY_DISABLED.
const LOAD_DATA_REFUSED: [u16; 3] = [1148, 3948, 4166];

/// Server errors that mean a load file does not fit its table (ER_WARN_TOO_FEW_RECORDS,
/// ER_WARN_TOO_MANY_RECORDS, ER_WARN_NULL_TO_NOTNULL): the INSERTs then find the row.
const LOAD_FILE_REFUSED: [u16; 3] = [1261, 1262, 1263];

pub(super) struct BulkConnections {
    opts: Opts,
    idle: Mutex<Vec<Conn>>,
    idle_transaction: Duration,
    /// The sessions leave the binary log (the appliance's own: `rollup_capture`).
    skip_binlog: bool,
    /// Cleared once the server refuses `LOAD DATA LOCAL INFILE` (`local_infile` off): the rows
    /// then go in as multi-row INSERTs.
    load_data: AtomicBool,
}

impl BulkConnections {
    pub(super) fn new(target: &MysqlTarget, idle_transaction: Duration, skip_binlog: bool) -> Self {
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
            skip_binlog,
            load_data: AtomicBool::new(true),
        }
    }

    /// How this pipeline's connections log in (the binary log's reader connects alike).
    pub(super) fn opts(&self) -> Opts {
        self.opts.clone()
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
        if self.skip_binlog {
            let skip = "SET SESSION sql_log_bin = 0";
            match exec(&mut conn, "connecting to MySQL", deadline, skip, Vec::new()).await {
                Err(e) if e.number() == Some(super::NOT_ALLOWED) => {}
                other => {
                    other?;
                }
            }
        }
        Ok(conn)
    }

    /// Loads `file` by `sql` (an [`infile::statement`](super::infile::statement)) after a
    /// savepoint: whether it went in whole. Not when the server refuses LOAD DATA (then never again), nor when a value drew a
    /// warning or an error: the session is strict, so a value that does not fit fails the load
    /// (or, if a server's mode lets one through, draws a warning and is stored clipped). The load
    /// is then undone (to its savepoint) and the caller INSERTs instead, which refuse what does
    /// not fit, row by row. `deadline` is a statement's; `load_deadline` the load's own (it
    /// carries as many values as several statements).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn load_or_undo(
        &self,
        conn: &mut Conn,
        what: &'static str,
        deadline: Duration,
        load_deadline: Duration,
        sql: &str,
        file: Vec<u8>,
        packet: usize,
    ) -> Result<bool, StoreError> {
        if !self.load_data.load(Ordering::Relaxed) {
            return Ok(false);
        }
        exec(conn, what, deadline, "SAVEPOINT tickpipe_load", Vec::new()).await?;
        match load_data(conn, what, load_deadline, sql, file, packet).await {
            Ok(Done { warnings: 0 }) => return Ok(true),
            Ok(Done { .. }) | Err(StoreError::Data { .. }) => {}
            Err(e) if e.number().is_some_and(|n| LOAD_FILE_REFUSED.contains(&n)) => {}
            Err(e) if e.number().is_some_and(|n| LOAD_DATA_REFUSED.contains(&n)) => {
                if self.load_data.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        "MySQL refuses LOAD DATA LOCAL INFILE (local_infile is off): rows and \
                         bars go in as multi-row INSERTs, at about half the rate"
                    );
                }
            }
            Err(e) => return Err(e),
        }
        let undo = "ROLLBACK TO SAVEPOINT tickpipe_load";
        exec(conn, what, load_deadline, undo, Vec::new()).await?;
        Ok(false)
    }

    /// Ends a transaction's use of `conn`: back to the idle ones after a commit; dropped after
    /// an error (closing it rolls back what it began; a statement may still run, or hang, on
    /// the server), with the idle ones too when the connection broke (the server restarted or
    /// the network failed: they are likely dead as well). A server's error (a lock wait, a
    /// deadlock) leaves the others be.
    pub(super) fn finish<T>(&self, conn: Conn, result: &Result<T, StoreError>) {
        match result {
            Ok(_) => {
                let mut idle = self.idle.lock().expect("no panic holds it");
                if idle.len() < KEPT_IDLE {
                    idle.push(conn);
                }
            }
            Err(StoreError::Transient { number: None, .. }) => {
                self.idle.lock().expect("no panic holds it").clear()
            }
            Err(_) => {}
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
async fn load_data(
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
    // The file was sent, or the load failed before the server asked for it: either way a later
    // request (one no statement of ours made) is refused, never answered with this file.
    conn.set_infile_handler(async { Err(mysql_async::LocalInfileError::NoHandler.into()) });
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

/// Column `index` of `row`, as `T`: a value that is not one (a NULL, a DECIMAL past
/// `Decimal`'s range) stops the caller as sqlx's decoding errors did, never a panic.
pub(super) fn column<T: FromValue>(
    row: &mut Row,
    index: usize,
    what: &'static str,
) -> Result<T, StoreError> {
    let unreadable = |message: String| StoreError::Permanent {
        what,
        number: None,
        source: format!("reading a stored value, column {index}: {message}").into(),
    };
    match row.take_opt(index) {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(unreadable(e.to_string())),
        None => Err(unreadable("no such column".into())),
    }
}

/// A statement and its values.
pub(super) struct Statement {
    pub sql: String,
    pub params: Vec<Value>,
}

/// `(?, ?), (?, ?)` for `rows` rows of `columns` values.
pub(super) fn placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

pub(super) fn text(value: &str) -> Value {
    Value::Bytes(value.as_bytes().to_vec())
}

pub(super) fn decimal(value: rust_decimal::Decimal) -> Value {
    Value::Bytes(crate::tick::decimal_text(value).into_bytes())
}

pub(super) fn datetime(at: DateTime<Utc>) -> Value {
    Value::Date(
        at.year() as u16,
        at.month() as u8,
        at.day() as u8,
        at.hour() as u8,
        at.minute() as u8,
        at.second() as u8,
        at.timestamp_subsec_micros().min(999_999),
    )
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
