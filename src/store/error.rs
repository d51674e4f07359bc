//! MySQL errors by kind, told apart by the server's error number (never its message): what a
//! writer retries, what it isolates as bad data, and what stops it. Errors of both drivers
//! (sqlx, and mysql_async for the batch writes) sort the same way.

use std::future::Future;
use std::time::Duration;

use sqlx::mysql::MySqlDatabaseError;
use thiserror::Error;

use crate::retry::Verdict;

#[derive(Debug, Error)]
pub enum StoreError {
    /// The server is unreachable, restarting, out of connections, or a lock or deadlock
    /// rolled the work back: the same work can succeed later.
    #[error("{what}: {source}")]
    Transient {
        what: &'static str,
        /// The server's error number, when the server sent one.
        number: Option<u16>,
        source: Cause,
    },
    /// No answer within the statement deadline (a stalled server, or a lock held elsewhere).
    #[error("{what}: MySQL did not answer within {deadline:?}")]
    Timeout {
        what: &'static str,
        deadline: Duration,
    },
    /// MySQL refused the values of a statement: one of its records is bad.
    #[error("{what}: MySQL refused the data (error {number}): {message}")]
    Data {
        what: &'static str,
        number: u16,
        message: String,
    },
    /// Every row of a statement refused for the same reason: the server's set-up, not the data.
    #[error(
        "MySQL refused all {rows} rows of a statement alike ({reason}): check the table's set-up"
    )]
    Setup { rows: usize, reason: String },
    /// Another processor took over work this one held (it was paused past its lease's expiry,
    /// or taken for dead): this one must stop, committing nothing more.
    #[error(
        "another processor took over {what}: this one stops (its uncommitted records are the \
         new holder's to store)"
    )]
    LeaseLost { what: String },
    /// The rollups' capture of other writers' rows cannot go on as it was set up (the server
    /// dropped its binary log, `stock_data` lost its key columns): `tickpipe up` sets it up again.
    #[error("{0}")]
    Capture(String),
    /// Anything else (a missing table, a missing privilege, a bug): retrying cannot help.
    #[error("{what}: {source}")]
    Permanent {
        what: &'static str,
        number: Option<u16>,
        source: Cause,
    },
}

/// The driver's own error under a [`StoreError`].
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

impl StoreError {
    /// Sorts a sqlx error by what can be done about it.
    pub fn classify(what: &'static str, error: sqlx::Error) -> StoreError {
        // The connection broke or never came: the server may be back soon.
        let broken = matches!(
            error,
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_)
        );
        let number = server_error_number(&error);
        let message = match &error {
            sqlx::Error::Database(db) => db.message().to_string(),
            other => other.to_string(),
        };
        Self::sort(what, number, broken, message, error.into())
    }

    /// Sorts a mysql_async error (the batch writes) by what can be done about it.
    pub fn classify_async(what: &'static str, error: mysql_async::Error) -> StoreError {
        use mysql_async::DriverError;
        let (number, broken) = match &error {
            mysql_async::Error::Server(server) => (Some(server.code), false),
            // The connection broke, or lost its place in the protocol: the server may be back
            // soon. Other driver errors (a value that does not convert, a refused file
            // request, an unknown login plugin) stay whatever is retried.
            mysql_async::Error::Io(_)
            | mysql_async::Error::Driver(
                DriverError::ConnectionClosed
                | DriverError::PacketOutOfOrder
                | DriverError::UnexpectedPacket { .. }
                | DriverError::PoolDisconnected,
            ) => (None, true),
            _ => (None, false),
        };
        let message = match &error {
            mysql_async::Error::Server(server) => server.message.clone(),
            other => other.to_string(),
        };
        Self::sort(what, number, broken, message, error.into())
    }

    fn sort(
        what: &'static str,
        number: Option<u16>,
        broken: bool,
        message: String,
        source: Cause,
    ) -> StoreError {
        match number {
            _ if broken => StoreError::Transient {
                what,
                number,
                source,
            },
            Some(n) if TRANSIENT.contains(&n) => StoreError::Transient {
                what,
                number,
                source,
            },
            Some(n) if DATA.contains(&n) => StoreError::Data {
                what,
                number: n,
                message,
            },
            _ => StoreError::Permanent {
                what,
                number,
                source,
            },
        }
    }

    /// The server's error number, when the server refused something.
    pub fn number(&self) -> Option<u16> {
        match self {
            StoreError::Transient { number, .. } | StoreError::Permanent { number, .. } => *number,
            StoreError::Data { number, .. } => Some(*number),
            _ => None,
        }
    }

    /// Retry what may pass later; stop on data (the caller isolates it) and on the rest.
    pub fn verdict(&self) -> Verdict {
        match self {
            StoreError::Transient { .. } | StoreError::Timeout { .. } => Verdict::Retry,
            StoreError::Data { .. }
            | StoreError::Setup { .. }
            | StoreError::LeaseLost { .. }
            | StoreError::Capture(_)
            | StoreError::Permanent { .. } => Verdict::Stop,
        }
    }
}

/// The MySQL server's error number of an error, if the server sent one.
pub fn server_error_number(error: &sqlx::Error) -> Option<u16> {
    match error {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// A value read back that does not decode: a schema or a bug, not the data of a batch.
impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::Permanent {
            what: "reading a stored value",
            number: server_error_number(&error),
            source: error.into(),
        }
    }
}

/// Errors that go away: lock wait timeout, deadlock, too many connections, server shutting
/// down, connection killed, query interrupted, statement time limits, network and handshake
/// errors, read-only mode (a failover), disk full while writing.
const TRANSIENT: [u16; 20] = [
    1021, 1040, 1043, 1053, 1152, 1153, 1158, 1159, 1160, 1161, 1180, 1203, 1205, 1213, 1290, 1317,
    1836, 1927, 1969, 3024,
];

/// Errors about the values in a statement: a column cannot be NULL, a value out of range or
/// truncated, an incorrect date/number/string, data too long, invalid characters, a duplicate
/// unique key, a check constraint, a trigger's SIGNAL, illegal mix of collations.
const DATA: [u16; 19] = [
    1048, 1062, 1264, 1265, 1267, 1270, 1271, 1292, 1300, 1366, 1367, 1406, 1411, 1416, 1644, 1690,
    3819, 4025, 4078,
];

/// Runs one statement (or connection request) under `deadline`, classifying its error.
pub async fn timed<T>(
    what: &'static str,
    deadline: Duration,
    call: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(StoreError::classify(what, e)),
        Err(_) => Err(StoreError::Timeout { what, deadline }),
    }
}
