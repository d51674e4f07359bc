//! The managed MySQL: the system's MariaDB (or MySQL) server binary run as a child with a
//! private data directory, port and Unix socket under the state directory.
//!
//! First start: `mariadb-install-db` creates the data directory with password-less root
//! accounts. Until root is secured the server runs with `--skip-networking` (our socket only,
//! in a 0700 directory): no local user can reach it through a port and leave an account
//! behind. The supervisor gives root a generated password (plus Unix-socket login for the OS
//! user running the server), drops the other root accounts, and only then starts the server
//! with its port. Every start reports accounts tickpipe did not create.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sqlx::Row;

use super::child::{ChildSpec, Supervised, stop_orphan};
use crate::config::MysqlConfig;
use crate::state::{APP_USER, BI_USER, Credentials, StateDir, check_socket_path};
use crate::store::{self, MysqlTarget, native_password_hash};

pub struct ManagedMysql {
    pub child: Supervised,
    /// The server as root (through the socket).
    pub root: MysqlTarget,
}

pub async fn start(
    config: &MysqlConfig,
    state: &StateDir,
    port: u16,
    credentials: &Credentials,
) -> Result<ManagedMysql> {
    let dir = state.private_dir("mysql")?;
    let socket = state.mysql_socket();
    check_socket_path(&socket)?;
    let server = find_program(&["mariadbd", "mysqld"]).context(
        "no MariaDB/MySQL server binary found (install it with scripts/install-mariadb.sh, \
         or set mysql.mode = \"external\")",
    )?;
    let data = dir.join("data");
    if !data.join("mysql").exists() {
        initialize(&data).await?;
    }
    let pid_file = dir.join("mysqld.pid");
    stop_orphan(
        &pid_file,
        &dir.display().to_string(),
        Duration::from_secs(60),
    )
    .await;
    let root = MysqlTarget {
        host: "localhost".into(),
        port,
        socket: Some(socket.clone()),
        database: config.database.clone(),
        user: "root".into(),
        password: credentials.root_password.clone(),
    };

    // Root not secured yet (a new data directory, or a first start that stopped before it
    // was): socket only until it is.
    let secured = dir.join("root-secured");
    if !secured.exists() {
        let child = run_server(&server, config, state, None)?;
        let result = secure_root(&root, config.startup_timeout).await;
        child.stop().await;
        result.with_context(|| {
            format!(
                "securing the root account of a new data directory (see {})",
                dir.join("error.log").display()
            )
        })?;
        std::fs::write(&secured, b"")?;
    }

    let child = run_server(&server, config, state, Some(port))?;
    let checked = async {
        let pool = store::connect_pool(&root, false, config.startup_timeout).await?;
        // Also at every start: a first start may have stopped between securing root and
        // dropping the other root accounts.
        let result = async {
            drop_other_roots(&pool).await?;
            report_foreign_accounts(&pool).await
        }
        .await;
        pool.close().await;
        result
    };
    if let Err(e) = checked.await {
        child.stop().await;
        return Err(e.context(format!("see {}", dir.join("error.log").display())));
    }
    Ok(ManagedMysql { child, root })
}

/// Runs the server on the state directory: with `port`, or socket only (`None`).
fn run_server(
    server: &Path,
    config: &MysqlConfig,
    state: &StateDir,
    port: Option<u16>,
) -> Result<Supervised> {
    let dir = state.mysql_dir();
    let socket = state.mysql_socket();
    let _ = std::fs::remove_file(&socket);
    let data = dir.join("data");
    let mut args = vec![
        "--no-defaults".to_string(),
        format!("--datadir={}", data.display()),
        format!("--socket={}", socket.display()),
        format!("--pid-file={}", dir.join("mysqld.pid").display()),
        format!("--log-error={}", dir.join("error.log").display()),
        format!("--tmpdir={}", private_tmp(&data)?.display()),
        format!("--innodb-buffer-pool-size={}", config.buffer_pool),
        "--skip-name-resolve".into(),
        "--character-set-server=utf8mb4".into(),
        "--collation-server=utf8mb4_unicode_ci".into(),
        "--default-time-zone=+00:00".into(),
        // The processor's batches go in as LOAD DATA LOCAL INFILE from its memory. Only users
        // with INSERT can load (the BI user cannot); the file a client sends is its own.
        "--local-infile=1".into(),
        "--max-connections=200".into(),
        // The binary log, in ROW format, is how the rollup stage learns of rows other writers
        // commit (src/store/capture.rs): no trigger on stock_data costs every row's writer.
        // tickpipe's own sessions leave it (they mark their rows themselves); synced at each
        // commit, so a machine's crash cannot keep a commit the log lost.
        "--log-bin=binlog".into(),
        "--server-id=1".into(),
        "--binlog-format=ROW".into(),
        "--binlog-row-image=FULL".into(),
        "--sync-binlog=1".into(),
        // A rollup stage away longer than this recomputes every symbol (its position purged).
        "--binlog-expire-logs-seconds=604800".into(),
    ];
    match port {
        Some(port) => args.extend([
            format!("--port={port}"),
            format!("--bind-address={}", config.bind),
        ]),
        None => args.push("--skip-networking".into()),
    }
    if is_root() {
        // mariadbd refuses to run as root unless told to.
        args.push("--user=root".into());
    }
    Supervised::start(ChildSpec {
        name: "mysql",
        program: server.to_path_buf(),
        args,
        log_file: dir.join("stdout.log"),
        pid_file: dir.join("supervised.pid"),
        stop_timeout: Duration::from_secs(60),
    })
}

/// The server's own directory for temporary files, beside its data directory.
fn private_tmp(data: &Path) -> Result<PathBuf> {
    let tmp = data.with_file_name("tmp");
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    Ok(tmp)
}

/// Creates the data directory (atomically: a half-made one is never reused).
async fn initialize(data: &Path) -> Result<()> {
    let install = find_program(&["mariadb-install-db", "mysql_install_db"]).context(
        "mariadb-install-db not found (install MariaDB with scripts/install-mariadb.sh)",
    )?;
    let partial = data.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    let user = if is_root() {
        "root".to_string()
    } else {
        current_user()
    };
    let output = tokio::process::Command::new(&install)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", partial.display()))
        .arg(format!("--user={user}"))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        // Temporary tables in a directory of its own: in the shared /tmp, a file left by an
        // earlier server with the same pid made a bootstrap fail.
        .arg(format!("--tmpdir={}", private_tmp(data)?.display()))
        .output()
        .await
        .with_context(|| format!("running {}", install.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed: {}{}",
            install.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::rename(&partial, data)?;
    Ok(())
}

/// Gives root the generated password and removes every other root account. Root has no
/// password on a new data directory; it has the stored one if an earlier start secured it.
async fn secure_root(root: &MysqlTarget, deadline: Duration) -> Result<()> {
    // The root password's hash stays out of the binary log, which the app user may read.
    let connect = |target| store::connect_pool_skipping_binlog(target, false, deadline, true);
    let pool = match connect(&root.as_user("root", "")).await {
        Ok(pool) => pool,
        Err(e) if store::is_access_denied(&e) => connect(root).await?,
        Err(e) => return Err(e),
    };
    let hash = native_password_hash(&root.password);
    store::execute_admin(
        &pool,
        format!(
            "ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING '{hash}' \
             OR unix_socket"
        ),
    )
    .await
    .context("setting the root password")?;
    drop_other_roots(&pool).await?;
    pool.close().await;
    Ok(())
}

/// Removes every root account but root@localhost (which logs in by password or socket).
async fn drop_other_roots(pool: &sqlx::MySqlPool) -> Result<()> {
    let others =
        sqlx::query("SELECT Host FROM mysql.user WHERE User = 'root' AND Host <> 'localhost'")
            .fetch_all(pool)
            .await?;
    for row in others {
        let host: String = row.try_get(0)?;
        let host = host.replace('\\', "\\\\").replace('\'', "''");
        store::execute_admin(pool, format!("DROP USER 'root'@'{host}'")).await?;
    }
    Ok(())
}

/// Warns about accounts tickpipe did not create (someone else's, or left by an intrusion):
/// tickpipe never drops them itself.
async fn report_foreign_accounts(pool: &sqlx::MySqlPool) -> Result<()> {
    let accounts = sqlx::query(
        "SELECT User, Host FROM mysql.user WHERE NOT ( \
             (User = 'root' AND Host = 'localhost') \
             OR (User IN ('mariadb.sys', 'mysql') AND Host = 'localhost') \
             OR (User = 'PUBLIC' AND Host = '') \
             OR (User IN (?, ?) AND Host = '%')) \
         ORDER BY User, Host",
    )
    .bind(APP_USER)
    .bind(BI_USER)
    .fetch_all(pool)
    .await
    .context("listing MySQL accounts")?;
    if !accounts.is_empty() {
        let names = accounts
            .iter()
            .map(|r| {
                let (user, host): (String, String) = (r.get(0), r.get(1));
                format!("'{user}'@'{host}'")
            })
            .collect::<Vec<_>>()
            .join(", ");
        tracing::warn!(
            "MySQL has accounts tickpipe did not create: {names}; unless you added them, drop \
             them as root (password: root_password in credentials.json)"
        );
    }
    Ok(())
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin"].map(PathBuf::from));
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn current_user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "mysql".into())
}
