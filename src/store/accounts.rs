//! The database's accounts: the app and BI users and their privileges, and the statements
//! that manage them (which MySQL cannot prepare with parameters).

use anyhow::{Context, Result, bail};
use sha1::{Digest, Sha1};
use sqlx::AssertSqlSafe;
use sqlx::mysql::MySqlPool;

use super::error::server_error_number;

/// MySQL's `mysql_native_password` hash of a password (`*` + hex SHA1(SHA1(password))), so
/// the plain password never appears in SQL text.
pub fn native_password_hash(password: &str) -> String {
    let once = Sha1::digest(password.as_bytes());
    let twice = Sha1::digest(once);
    format!("*{}", hex::encode_upper(twice))
}

/// The database and its users: an app user that reads and writes rows (no DDL, no user admin)
/// and a BI user (who gets its reads once the tables exist: [`grant_bi_reads`]). Their
/// passwords are (re)set to the given ones.
pub async fn ensure_database_and_users(
    admin: &MySqlPool,
    database: &str,
    app: (&str, &str),
    bi: (&str, &str),
) -> Result<()> {
    // Account names and hashes cannot be bound as parameters in CREATE USER / GRANT: they are
    // checked identifiers and hex digests, never user text.
    ensure_identifier(database)?;
    execute_admin(
        admin,
        format!(
            "CREATE DATABASE IF NOT EXISTS `{database}` \
             CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        ),
    )
    .await
    .with_context(|| format!("creating database {database}"))?;
    for (user, password) in [app, bi] {
        ensure_identifier(user)?;
        let hash = native_password_hash(password);
        for statement in [
            format!("CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY PASSWORD '{hash}'"),
            format!("ALTER USER '{user}'@'%' IDENTIFIED BY PASSWORD '{hash}'"),
        ] {
            execute_admin(admin, statement)
                .await
                .with_context(|| format!("setting up MySQL user {user}"))?;
        }
    }
    let (app_user, _) = app;
    execute_admin(
        admin,
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON `{database}`.* TO '{app_user}'@'%'"),
    )
    .await
    .with_context(|| format!("granting {app_user} its privileges"))?;
    Ok(())
}

/// Lets the app user read the managed server's binary log, and leave it: the rollup stage
/// reads other writers' rows there (src/store/capture.rs), and tickpipe's writers, which mark
/// their own, keep their rows out of it. The log is the appliance's own (nothing replicates
/// from it), and the account statements stay out of it.
pub async fn grant_binlog_reading(admin: &MySqlPool, app_user: &str) -> Result<()> {
    ensure_identifier(app_user)?;
    execute_admin(
        admin,
        format!("GRANT REPLICATION SLAVE, BINLOG MONITOR, BINLOG ADMIN ON *.* TO '{app_user}'@'%'"),
    )
    .await
    .with_context(|| format!("granting {app_user} the binary log's reading"))
}

/// What BI tools (and the dashboard, `status`, `/metrics`, which read as the BI user) read: the
/// rows, the rollups, the views, what was refused and the committed offsets (for lag). Not the
/// processors' leases or the rollups' stale ranges: no other account may see, lock or take them.
pub const BI_TABLES: [&str; 11] = [
    "stock_data",
    "alerts",
    "bars_1m",
    "ohlcv_1m",
    "indicators_1m",
    "latest_quotes",
    "rejected_ticks",
    "pipeline_incidents",
    "pipeline_offsets",
    "v_latest_price",
    "v_daily_summary",
];

/// Grants `bi_user` SELECT on [`BI_TABLES`] only (after the migrations made them), taking back
/// the database-wide SELECT earlier releases granted.
pub async fn grant_bi_reads(admin: &MySqlPool, database: &str, bi_user: &str) -> Result<()> {
    ensure_identifier(database)?;
    ensure_identifier(bi_user)?;
    let revoked = execute_admin(
        admin,
        format!("REVOKE ALL PRIVILEGES ON `{database}`.* FROM '{bi_user}'@'%'"),
    )
    .await;
    // 1141: no such grant (a database set up by this release).
    if let Err(e) = revoked
        && !is_server_error(&e, NO_SUCH_GRANT)
    {
        return Err(e.context(format!("revoking the database-wide grant of {bi_user}")));
    }
    for table in BI_TABLES {
        execute_admin(
            admin,
            format!("GRANT SELECT ON `{database}`.`{table}` TO '{bi_user}'@'%'"),
        )
        .await
        .with_context(|| format!("granting {bi_user} SELECT on {table}"))?;
    }
    Ok(())
}

/// ER_NONEXISTING_GRANT.
const NO_SUCH_GRANT: u16 = 1141;

fn is_server_error(error: &anyhow::Error, number: u16) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .and_then(server_error_number)
            == Some(number)
    })
}

/// Runs an account or schema statement, which MySQL cannot prepare with parameters. Callers
/// build it only from checked identifiers and hex digests, never from user text.
pub async fn execute_admin(pool: &MySqlPool, statement: String) -> Result<()> {
    sqlx::raw_sql(AssertSqlSafe(statement))
        .execute(pool)
        .await?;
    Ok(())
}

fn ensure_identifier(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        bail!("{name:?} is not a plain MySQL identifier ([a-zA-Z0-9_], at most 64)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_password_hash_matches_mysql() {
        // SELECT PASSWORD('secret') on MariaDB 10.11.
        assert_eq!(
            native_password_hash("secret"),
            "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
        );
    }
}
