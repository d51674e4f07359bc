//! The supervisor behind `tickpipe up`: starts (or connects to) the broker and MySQL, waits
//! until both answer, creates the topics, the schema and the users, runs the processor and the
//! producer, and on SIGINT/SIGTERM stops everything in order. The only module that knows about
//! processes.

mod bi_files;
mod child;
mod containers;
mod kafka;
mod mariadb;
mod ready;
mod stage;

/// Whether a Docker daemon answers (the container modes need one).
pub use containers::{docker_answers, docker_host};
/// Where Kafka's jars and Java are: also used to run Kafka's own tools beside the appliance.
pub use kafka::{find_java, kafka_libs};

use std::fs::File;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, Endpoint};
use crate::config::{Config, DEFAULT_DASHBOARD_PORT, Mode};
use crate::health::StageBoard;
use crate::ingest::{self, csv_file, live};
use crate::process::{self, ProcessStats, RunOptions};
use crate::serve;
use crate::state::{APP_USER, ApplianceInfo, BI_USER, Ports, StateDir};
use crate::store::{self, MysqlTarget, Store};

/// What `up` runs besides the services.
#[derive(Debug, Clone, Copy)]
pub struct UpOptions {
    /// Only the broker and MySQL (with topics, schema and users): stages run by hand.
    pub services_only: bool,
    /// A temporary state directory and free ports, everything removed at exit.
    pub ephemeral: bool,
    /// Once ready, one JSON line on stdout with every endpoint and credential
    /// ([`crate::appliance::Ready`]) instead of the banner.
    pub json: bool,
}

/// Runs the appliance until SIGINT or SIGTERM.
pub async fn up(mut config: Config, options: UpOptions) -> Result<()> {
    let started = Instant::now();
    // Removed when `up` returns, after the services stopped.
    let _ephemeral = if options.ephemeral {
        let dir = tempfile::Builder::new()
            .prefix("tickpipe-")
            .tempdir()
            .context("making a temporary state directory")?;
        config.state_dir = dir.path().to_path_buf();
        (config.broker.port, config.mysql.port, config.serve.port) = (0, 0, Some(0));
        Some(dir)
    } else {
        None
    };
    let root = config.ensure_state_dir()?;
    let state = StateDir::new(&root);
    let _lock = lock_state_dir(&state)?;
    // An earlier `up` that was killed leaves its endpoints behind: they are stale now.
    let _ = std::fs::remove_file(state.appliance_file());
    let _ = std::fs::remove_file(state.stages_file());

    let shutdown = shutdown_on_signal()?;
    budget_file_descriptors(config.serve.max_connections);

    // A container mode without Docker fails here, before anything starts.
    for (mode, key) in [
        (config.broker.mode, "broker.mode"),
        (config.mysql.mode, "mysql.mode"),
    ] {
        if mode == Mode::Container {
            containers::docker_answers(&containers::docker_host(), key).await?;
        }
    }
    let ports = choose_ports(&config, &state)?;
    let credentials = state.credentials()?;

    // Both services start at once; each waits for its own health.
    let (mysql, kafka) = tokio::join!(
        start_mysql(&config, &state, ports, &credentials),
        start_broker(&config, &state, &ports, &credentials)
    );
    let mut services = Services::default();
    let mysql = match mysql {
        Ok((managed, target)) => {
            services.mysql = managed;
            target
        }
        Err(e) => {
            if let Ok((Some(k), _)) = kafka {
                k.stop().await;
            }
            return Err(e);
        }
    };
    let brokers = match kafka {
        Ok((managed, brokers)) => {
            services.kafka = managed;
            brokers
        }
        Err(e) => {
            services.stop().await;
            return Err(e);
        }
    };

    let result = run_pipeline(
        &config, &state, options, &brokers, &mysql, started, shutdown,
    )
    .await;
    let _ = std::fs::remove_file(state.appliance_file());
    services.stop().await;
    result
}

/// The broker as its administrator (topics) and as the stages' login.
struct Brokers {
    admin: Broker,
    app: Broker,
}

/// A service the appliance runs: a child process, or a Docker container.
enum Running {
    Kafka(kafka::ManagedKafka),
    Mysql(mariadb::ManagedMysql),
    Container(containers::Container),
}

impl Running {
    async fn stop(self) {
        match self {
            Running::Kafka(kafka) => kafka.child.stop().await,
            Running::Mysql(mysql) => mysql.child.stop().await,
            Running::Container(container) => container.stop().await,
        }
    }
}

#[derive(Default)]
struct Services {
    kafka: Option<Running>,
    mysql: Option<Running>,
}

impl Services {
    /// The broker stops first (nothing consumes any more), then MySQL.
    async fn stop(self) {
        if let Some(kafka) = self.kafka {
            kafka.stop().await;
        }
        if let Some(mysql) = self.mysql {
            mysql.stop().await;
        }
    }
}

async fn run_pipeline(
    config: &Config,
    state: &StateDir,
    options: UpOptions,
    brokers: &Brokers,
    mysql: &MysqlTarget,
    started: Instant,
    shutdown: CancellationToken,
) -> Result<()> {
    let partitions = brokers
        .admin
        .ensure_topic(&config.topics.ticks, config.topics.partitions)
        .await?;
    brokers
        .admin
        .ensure_topic(&config.topics.dlq, config.topics.partitions)
        .await?;
    let broker = &brokers.app;
    state.write_appliance(&ApplianceInfo {
        pid: std::process::id(),
        bootstrap: broker.bootstrap.clone(),
        mysql: mysql.as_user(APP_USER, ""),
        started_at: chrono::Utc::now(),
    })?;

    let store = Store::connect(mysql, config.mysql.startup_timeout).await?;
    let dashboard = if options.services_only {
        None
    } else {
        Some(bind_dashboard(config, state).await?)
    };
    let files = if options.services_only {
        Vec::new()
    } else {
        match csv_file::expand_patterns(&config.ingest.data) {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!("nothing to replay: {e:#}");
                Vec::new()
            }
        }
    };
    // What BI tools read as: the read-only BI user where the appliance made one.
    let bi_reader = match config.mysql.mode {
        Mode::Managed | Mode::Container => {
            mysql.as_user(BI_USER, &state.credentials()?.bi_password)
        }
        Mode::External => mysql.clone(),
    };
    // Files for BI tools only where the appliance made the read-only BI user (an external
    // URL's user may write).
    let bi_files = if config.mysql.mode.is_ours() {
        Some(bi_files::write(state, &bi_reader)?)
    } else {
        None
    };
    if options.json {
        let ready = ready::ready(
            config,
            state,
            broker,
            mysql,
            dashboard.as_ref().map(serve::url),
        )?;
        ready::print(&ready)?;
    } else {
        print_banner(
            config,
            state,
            broker,
            mysql,
            partitions,
            &files,
            bi_files.as_ref(),
            dashboard.as_ref().map(serve::url),
            started,
        );
    }

    let Some(dashboard) = dashboard else {
        shutdown.cancelled().await;
        return Ok(());
    };
    let board = StageBoard::persisted(state.stages_file());
    let stats = Arc::new(ProcessStats::default());
    let processor = {
        let (config, broker, store, stats) =
            (config.clone(), broker.clone(), store.clone(), stats.clone());
        let shutdown = shutdown.clone();
        stage::supervise("processor", board.clone(), shutdown.clone(), move || {
            let (config, broker, store, stats, shutdown) = (
                config.clone(),
                broker.clone(),
                store.clone(),
                stats.clone(),
                shutdown.clone(),
            );
            async move {
                process::run(
                    &config,
                    &broker,
                    &store,
                    RunOptions::default(),
                    stats,
                    shutdown,
                )
                .await
            }
        })
    };
    // The dashboard reads as the read-only BI user where the appliance made one.
    let reader = match config.mysql.mode {
        Mode::Managed | Mode::Container => {
            Store::connect(&bi_reader, config.mysql.startup_timeout).await?
        }
        Mode::External => store.clone(),
    };
    let server = {
        let address = dashboard.local_addr()?;
        let mut listener = Some(dashboard);
        let (config, broker, stats, board_for_health) =
            (config.clone(), broker.clone(), stats.clone(), board.clone());
        let shutdown = shutdown.clone();
        stage::supervise("dashboard", board.clone(), shutdown.clone(), move || {
            // A restart listens on the same address again.
            let bound = listener.take();
            let (config, reader, broker, stats, board, shutdown) = (
                config.clone(),
                reader.clone(),
                broker.clone(),
                stats.clone(),
                board_for_health.clone(),
                shutdown.clone(),
            );
            async move {
                let listener = match bound {
                    Some(listener) => listener,
                    None => tokio::net::TcpListener::bind(address).await?,
                };
                serve::run(
                    listener,
                    config,
                    reader,
                    Some(broker),
                    Some(stats),
                    Some(board),
                    shutdown,
                )
                .await
            }
        })
    };
    let producer = {
        let (config, broker, store) = (config.clone(), broker.clone(), store.clone());
        let shutdown = shutdown.clone();
        // Shared by the producer's runs: a restart resumes after what was acknowledged, and
        // the live walk where it was.
        let progress = Arc::new(ingest::Progress::default());
        let market = Arc::new(live::Market::default());
        let counts = board.clone();
        stage::supervise("producer", board.clone(), shutdown.clone(), move || {
            let (config, broker, store, files, shutdown, progress, market, board) = (
                config.clone(),
                broker.clone(),
                store.clone(),
                files.clone(),
                shutdown.clone(),
                progress.clone(),
                market.clone(),
                counts.clone(),
            );
            async move {
                let replayed = replay(&config, &broker, files, shutdown.clone(), &progress, &board);
                market.saw(replayed.await?);
                if config.live_ticks() && !shutdown.is_cancelled() {
                    // The walk goes on from what is stored: after a restart, from its last step.
                    market.resume(
                        store
                            .quotes()
                            .await?
                            .into_iter()
                            .map(|q| (q.symbol, q.timestamp, q.price)),
                    );
                    live::run(&config, &broker, &market, shutdown).await?;
                }
                Ok(())
            }
        })
    };

    shutdown.cancelled().await;
    tracing::info!("stopping: producer, then processor, dashboard, then services");
    let _ = producer.await;
    let _ = processor.await;
    let _ = server.await;
    let _ = std::fs::remove_file(state.stages_file());
    if tokio::time::timeout(Duration::from_secs(5), store.pool.close())
        .await
        .is_err()
    {
        tracing::warn!("MySQL did not close its connections within 5 s");
    }
    Ok(())
}

/// Replays the data files once: each symbol's newest tick.
async fn replay(
    config: &Config,
    broker: &Broker,
    files: Vec<std::path::PathBuf>,
    shutdown: CancellationToken,
    progress: &ingest::Progress,
    board: &StageBoard,
) -> Result<std::collections::BTreeMap<String, live::Last>> {
    if files.is_empty() {
        return Ok(Default::default());
    }
    let summary = ingest::produce(config, broker, files, shutdown, false, progress).await?;
    board.count(
        "producer",
        &[
            ("records", summary.records),
            ("quarantined", summary.rejected),
            ("rounded", summary.rounded),
            ("duplicates_identical", summary.duplicates_identical),
            ("duplicates_conflicting", summary.duplicates_conflicting),
        ],
    );
    tracing::info!(
        records = summary.records,
        quarantined = summary.rejected,
        failed_files = summary.failed_files.len(),
        "replay finished in {:.1?} ({:.0} records/s)",
        summary.elapsed,
        summary.records_per_second()
    );
    Ok(summary.last)
}

async fn start_mysql(
    config: &Config,
    state: &StateDir,
    ports: Ports,
    credentials: &crate::state::Credentials,
) -> Result<(Option<Running>, MysqlTarget)> {
    let (running, root) = match config.mysql.mode {
        Mode::External => {
            let target = MysqlTarget::from_url(&config.mysql.url)?;
            let store = Store::connect(&target, config.mysql.startup_timeout).await?;
            store.migrate().await?;
            // A server of the user's: the triggers capture other writers' rows.
            store.choose_capture(false).await?;
            store.pool.close().await;
            return Ok((None, target));
        }
        Mode::Managed => {
            let managed = mariadb::start(&config.mysql, state, ports.mysql, credentials).await?;
            let root = managed.root.clone();
            (Running::Mysql(managed), root)
        }
        Mode::Container => {
            let startup = config.mysql.startup_timeout;
            let container =
                containers::start_mariadb(ports.mysql, &credentials.root_password, startup).await?;
            let root = MysqlTarget {
                host: "127.0.0.1".into(),
                port: ports.mysql,
                socket: None,
                database: config.mysql.database.clone(),
                user: "root".into(),
                password: credentials.root_password.clone(),
            };
            (Running::Container(container), root)
        }
    };
    if let Err(e) = set_up_database(config, &root, credentials).await {
        running.stop().await;
        return Err(e);
    }
    let app = root.as_user(APP_USER, &credentials.app_password);
    Ok((Some(running), app))
}

/// The database, its users, the schema and the BI user's grants, as `root`.
async fn set_up_database(
    config: &Config,
    root: &MysqlTarget,
    credentials: &crate::state::Credentials,
) -> Result<()> {
    let managed = config.mysql.mode == Mode::Managed;
    // The accounts' statements stay out of the managed server's binary log, which the app
    // user may read (the rollups' capture).
    let admin =
        store::connect_pool_skipping_binlog(root, false, config.mysql.startup_timeout, managed)
            .await?;
    store::ensure_database_and_users(
        &admin,
        &config.mysql.database,
        (APP_USER, &credentials.app_password),
        (BI_USER, &credentials.bi_password),
    )
    .await?;
    let schema = Store::connect(root, config.mysql.startup_timeout).await?;
    schema.migrate().await?;
    if managed {
        store::grant_binlog_reading(&admin, APP_USER).await?;
    }
    // The managed server's log is the appliance's own: the rollups' capture reads it.
    schema.choose_capture(managed).await?;
    schema.pool.close().await;
    store::grant_bi_reads(&admin, &config.mysql.database, BI_USER).await?;
    admin.close().await;
    Ok(())
}

async fn start_broker(
    config: &Config,
    state: &StateDir,
    ports: &Ports,
    credentials: &crate::state::Credentials,
) -> Result<(Option<Running>, Brokers)> {
    let timeout = config.broker.startup_timeout;
    let (running, bootstrap) = match config.broker.mode {
        Mode::External => {
            let broker = Broker::wait_healthy(&config.broker.external_endpoint(), timeout).await?;
            let brokers = Brokers {
                admin: broker.clone(),
                app: broker,
            };
            return Ok((None, brokers));
        }
        Mode::Managed => {
            let managed = kafka::start(&config.broker, state, ports, credentials).await?;
            let bootstrap = managed.bootstrap.clone();
            (Running::Kafka(managed), bootstrap)
        }
        Mode::Container => {
            let container =
                containers::start_redpanda(ports.kafka, credentials, &config.topics, timeout)
                    .await?;
            (
                Running::Container(container),
                format!("127.0.0.1:{}", ports.kafka),
            )
        }
    };
    let login = |login| Endpoint {
        bootstrap: bootstrap.clone(),
        login: Some(login),
    };
    let ready = async {
        let admin = Broker::wait_healthy(&login(credentials.kafka_admin()), timeout).await?;
        state.write_client_properties(&bootstrap, credentials)?;
        if let Running::Kafka(_) = running {
            kafka::grant_acls(&config.broker, state, &bootstrap).await?;
        }
        let app = Broker::connect(&login(credentials.kafka_app()), timeout).await?;
        anyhow::Ok(Brokers { admin, app })
    };
    match ready.await {
        Ok(brokers) => Ok((Some(running), brokers)),
        Err(e) => {
            let see = match running {
                Running::Kafka(_) => state
                    .kafka_dir()
                    .join("logs/server.log")
                    .display()
                    .to_string(),
                _ => "the container's logs (docker logs)".into(),
            };
            running.stop().await;
            Err(e.context(format!("see {see}")))
        }
    }
}

/// The dashboard's listener: on `serve.port` when set (taken: an error naming the key);
/// else on the port this state directory used last, else the default port, else a free one —
/// recorded for the next run, so a second appliance on the machine gets a dashboard of its own.
async fn bind_dashboard(config: &Config, state: &StateDir) -> Result<tokio::net::TcpListener> {
    let recorded = state.read_ports().dashboard;
    let listener = match config.serve.port {
        Some(_) => serve::bind(config).await?,
        None => serve::bind_first_free(config, &[recorded, DEFAULT_DASHBOARD_PORT]).await?,
    };
    let port = listener.local_addr()?.port();
    if config.serve.port.is_none() && port != recorded {
        let mut ports = state.read_ports();
        ports.dashboard = port;
        state.write_ports(&ports)?;
    }
    Ok(listener)
}

/// Ports for the managed services: configured ones, else those recorded last time if still
/// free, else new free ones; recorded for the next run.
fn choose_ports(config: &Config, state: &StateDir) -> Result<Ports> {
    let recorded = state.read_ports();
    let pick = |configured: u16, recorded: u16, bind: &str, taken: &[u16]| -> Result<u16> {
        if configured != 0 {
            return Ok(configured);
        }
        if recorded != 0
            && !taken.contains(&recorded)
            && TcpListener::bind((bind, recorded)).is_ok()
        {
            return Ok(recorded);
        }
        loop {
            let port = TcpListener::bind((bind, 0))
                .with_context(|| format!("finding a free port on {bind}"))?
                .local_addr()?
                .port();
            if !taken.contains(&port) {
                return Ok(port);
            }
        }
    };
    // The dashboard's recorded port stays its own.
    let dashboard = recorded.dashboard;
    let kafka = pick(
        config.broker.port,
        recorded.kafka,
        &config.broker.bind,
        &[dashboard],
    )?;
    let kafka_controller = pick(
        0,
        recorded.kafka_controller,
        &config.broker.bind,
        &[dashboard, kafka],
    )?;
    let mysql = pick(
        config.mysql.port,
        recorded.mysql,
        &config.mysql.bind,
        &[dashboard, kafka, kafka_controller],
    )?;
    let ports = Ports {
        kafka,
        kafka_controller,
        mysql,
        dashboard,
    };
    state.write_ports(&ports)?;
    Ok(ports)
}

/// Holds an exclusive lock on the state directory for as long as the file stays open; the
/// kernel drops it when the process dies, however it dies.
fn lock_state_dir(state: &StateDir) -> Result<File> {
    let file = File::create(state.lock_file())
        .with_context(|| format!("creating {}", state.lock_file().display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another `tickpipe up` is running on state directory {} (stop it first, or use \
             another --state-dir)",
            state.root.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", state.lock_file().display()))
        }
    }
}

/// A token cancelled on the first SIGINT or SIGTERM.
pub fn shutdown_on_signal() -> Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        for signals in 1.. {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            if signals == 1 {
                tracing::info!("stopping (signal again to exit at once)");
                cancel.cancel();
            } else {
                // Children are told to stop by their parent-death signal.
                eprintln!("tickpipe: exiting at once on a second signal");
                std::process::exit(130);
            }
        }
    });
    Ok(token)
}

#[allow(clippy::too_many_arguments)]
fn print_banner(
    config: &Config,
    state: &StateDir,
    broker: &Broker,
    mysql: &MysqlTarget,
    partitions: i32,
    files: &[std::path::PathBuf],
    bi_files: Option<&bi_files::BiFiles>,
    dashboard: Option<String>,
    started: Instant,
) {
    let socket = mysql
        .socket
        .as_ref()
        .map(|s| format!(", socket {}", s.display()))
        .unwrap_or_default();
    let tcp_host = if mysql.host == "localhost" {
        "127.0.0.1"
    } else {
        &mysql.host
    };
    let mut lines = vec![
        format!(
            "tickpipe is up in {:.1?} (state: {})",
            started.elapsed(),
            state.root.display()
        ),
        format!(
            "  Kafka      {}  topics {} ({partitions} partitions), {}",
            broker.bootstrap, config.topics.ticks, config.topics.dlq
        ),
        format!(
            "  MySQL      {tcp_host}:{}{socket}  database {}",
            mysql.port, mysql.database
        ),
    ];
    if config.broker.mode.is_ours() {
        lines.push(format!(
            "  Kafka auth SASL/SCRAM-SHA-512; Kafka's tools and Spark: {} (read-only), \
             client-app.properties (writes)",
            state.root.join("client.properties").display()
        ));
    }
    if config.mysql.mode.is_ours() {
        lines.push(format!(
            "  BI / SQL   server {tcp_host}:{}, database {}, user {BI_USER} (read-only); \
             password: bi_password in {}",
            mysql.port,
            mysql.database,
            state.credentials_file().display()
        ));
    }
    if let Some(bi_files) = bi_files {
        lines.push(format!(
            "  BI files   {} (Power BI), {}, {} (ODBC DSN {})",
            bi_files.pbids.display(),
            bi_files.grafana.display(),
            bi_files.odbc.display(),
            bi_files::ODBC_DSN
        ));
    }
    match dashboard {
        None => lines.push(
            "  Stages     not started (--services-only): run `tickpipe produce`, `process`, `serve`"
                .into(),
        ),
        Some(url) => {
            let then = if config.live_ticks() {
                format!(
                    ", then synthetic live ticks every {:?} (--no-live: none)",
                    config.live.every
                )
            } else {
                String::new()
            };
            lines.push(format!(
                "  Processor  running;  producer replaying {} file(s){then}",
                files.len()
            ));
            lines.push(format!(
                "  Dashboard  {url}  (API /api, live /api/events, /metrics, /healthz)"
            ));
        }
    }
    lines.push("  Stop with Ctrl-C; `tickpipe status` shows progress.".into());
    println!("{}", lines.join("\n"));
}

/// Raises this process's open-file limit to what the system allows (up to 65,536) and checks
/// that the web server's connections take at most a quarter of it: the producer's files and
/// the processor's connections get the rest.
fn budget_file_descriptors(max_connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let wanted = hard.min(65_536).max(soft);
    let soft = match setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
        Ok(()) => wanted,
        Err(_) => soft,
    };
    if max_connections as u64 > soft / 4 {
        tracing::warn!(
            "serve.max_connections = {max_connections} is more than a quarter of the {soft} \
             files this process may open: lower it, or raise the limit (ulimit -n), so the web \
             server cannot starve the pipeline"
        );
    }
}
